//! matmul vs its CPU twin on odd and model shapes, all three layouts, every epilogue and
//! both default tiles; a linear layer's backward vs finite differences.

use vaegan::kernels::matmul::{matmul, Kind, MatmulSpec, Tile};
use vaegan::kernels::{elementwise, reduce};
use vaegan::reference;
use vaegan::types::Act;
use vaegan::types::Trans;

use crate::common::*;

/// f32 accumulation over K ≤ 784 terms: error ~√K·2⁻²⁴ ≈ 2e-6 of ‖|A|·|B| + |bias|‖.
const TOL_F32: f64 = 1e-5;

const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (7, 13, 29),
    (127, 255, 63),
    (64, 512, 784), // mnist-mlp layer 1 at batch 64: 64×784 · 784×512
    (1, 5, 3),
    (3, 1, 17),
    (33, 17, 5),
    (16, 16, 16),
    (20, 36, 8),
];

/// Register, workgroup-memory and (where subgroups are 8 lanes wide) subgroup tiles, of
/// sizes that leave partial tiles on every odd shape.
/// Without sweeps (`common::sweeps`), one of each kind.
fn tiles() -> Vec<Tile> {
    let mut t = swept(
        &[
            Tile::register(16, 16, 8, 8),
            Tile::register(4, 4, 16, 16),
            Tile::register(8, 4, 8, 4),
            Tile::shared(4, 4, 16, 16),
            Tile::shared(8, 4, 4, 8),
            Tile::shared(4, 8, 8, 4),
        ],
        &[2, 5],
    );
    if has_subgroup_kernel() {
        t.extend(swept(
            &[Tile::subgroup(32, 8), Tile::subgroup(8, 4), Tile::subgroup(16, 12), Tile::subgroup_rows(8, 4, 4, 2), Tile::subgroup_rows(16, 8, 2, 4)],
            &[2, 3, 4],
        ));
    }
    t
}

async fn check(rng: &mut rand::rngs::StdRng, spec: MatmulSpec, with_bias: bool) {
    // A and B hold M·K and K·N elements whatever the layout.
    let (na, nb) = (spec.m * spec.k, spec.k * spec.n);
    let a = as_f32(&randn(rng, na));
    let b = as_f32(&randn(rng, nb));
    let bias = as_f32(&randn(rng, spec.n));
    let c = poisoned(spec.m * spec.n);
    let bias_buf = upload(&bias);
    let launch = matmul(gpu(), &spec, &upload(&a), &upload(&b), with_bias.then_some(&bias_buf), &c).unwrap();
    gpu().run([&launch]).unwrap();
    let want = reference::matmul::matmul(spec.m, spec.n, spec.k, spec.trans, &a, &b, with_bias.then_some(&bias[..]), spec.act);
    // Element-wise the sum may cancel; f32's error is relative to |A|·|B| + |bias|.
    let abs_bias = abs(&bias);
    let magnitude = reference::matmul::matmul(spec.m, spec.n, spec.k, spec.trans, &abs(&a), &abs(&b), with_bias.then_some(&abs_bias[..]), Act::None);
    assert_close_mag(&format!("{} tile {:?}", launch.name, spec.tile), &download(&c).await, &want, &magnitude, TOL_F32);
}

gpu_test! {
    async fn matmul_all_layouts_and_shapes() {
        let mut rng = rng("matmul_all_layouts_and_shapes");
        // Without sweeps: odd shapes, a single row and a single column, the model's shape.
        for (m, n, k) in swept(&SHAPES, &[1, 3, 5, 6]) {
            for trans in [Trans::NN, Trans::NT, Trans::TN] {
                for tile in tiles() {
                    check(&mut rng, MatmulSpec::new(m, n, k, trans).tile(tile), false).await;
                }
            }
        }
    }
}

gpu_test! {
    /// On the adapter class's default tiles (what models run on untuned, wide and narrow; the
    /// rest of the suite runs on `common::test_tile`) and on the suite's tile.
    async fn matmul_fused_epilogues() {
        let mut rng = rng("matmul_fused_epilogues");
        let acts = [Act::None, Act::Relu, Act::LeakyRelu(0.2), Act::Tanh, Act::Sigmoid];
        // The class default, as it applies to narrow products (`Tile::for_columns`), the suite's.
        let mut tiles = vec![Tile::class_default(gpu())];
        for t in [Tile::class_default(gpu()).for_columns(1), Tile::default_for(gpu())] {
            if !tiles.contains(&t) {
                tiles.push(t);
            }
        }
        for tile in tiles {
            for (m, n, k) in swept(&[(1, 1, 1), (7, 13, 29), (64, 512, 784), (33, 10, 20)], &[1, 3]) {
                for act in acts {
                    check(&mut rng, MatmulSpec::new(m, n, k, Trans::NN).act(act).tile(tile), true).await;
                }
                check(&mut rng, MatmulSpec::new(m, n, k, Trans::NT).act(Act::Relu).tile(tile), true).await;
                check(&mut rng, MatmulSpec::new(m, n, k, Trans::TN).act(Act::Sigmoid).tile(tile), true).await;
            }
        }
    }
}

gpu_test! {
    /// A layer y = act(x·W + b) and L = Σ w⊙y: the GPU backward (activation backward, dX = dY·Wᵀ,
    /// dW = Xᵀ·dY, db = column sums) against central differences of the f64 forward.
    async fn linear_layer_backward_matches_finite_differences() {
        let mut rng = rng("linear_layer_backward_matches_finite_differences");
        for &(batch, inp, out) in &[(1, 1, 1), (5, 7, 3), (17, 33, 9)] {
            for act in [Act::None, Act::Relu, Act::LeakyRelu(0.2), Act::Tanh, Act::Sigmoid] {
                // Draw until no pre-activation lies within 1e-4 of ReLU's kink, so that central
                // differences (steps of 1e-6) never straddle it.
                let (x, w, b) = loop {
                    let x = as_f32(&randn(&mut rng, batch * inp));
                    let w = as_f32(&uniform(&mut rng, inp * out, -0.5, 0.5));
                    let b = as_f32(&uniform(&mut rng, out, -0.5, 0.5));
                    let pre = reference::matmul::matmul(batch, out, inp, Trans::NN, &x, &w, Some(&b), Act::None);
                    if pre.iter().all(|v| v.abs() > 1e-4) {
                        break (x, w, b);
                    }
                };
                let upstream = as_f32(&randn(&mut rng, batch * out));
                let forward = |x: &[f64], w: &[f64], b: &[f64]| {
                    let y = reference::matmul::matmul(batch, out, inp, Trans::NN, x, w, Some(b), act);
                    dot(&y, &upstream)
                };
                let g = gpu();
                let (xb, wb, bb, ub) = (upload(&x), upload(&w), upload(&b), upload(&upstream));
                let y = poisoned(batch * out);
                let dpre = poisoned(batch * out);
                let dx = poisoned(batch * inp);
                let dw = poisoned(inp * out);
                let db = poisoned(out);
                let fwd = matmul(g, &MatmulSpec::new(batch, out, inp, Trans::NN).act(act), &xb, &wb, Some(&bb), &y).unwrap();
                let pre_buf = poisoned(batch * out);
                let pre_launch = matmul(g, &MatmulSpec::new(batch, out, inp, Trans::NN), &xb, &wb, Some(&bb), &pre_buf).unwrap();
                let saved = if act.backward_reads_output() { &y } else { &pre_buf };
                let act_bwd = elementwise::activation_backward(g, act, saved, &ub, &dpre).unwrap();
                let dx_l = matmul(g, &MatmulSpec::new(batch, inp, out, Trans::NT), &dpre, &wb, None, &dx).unwrap();
                let dw_l = matmul(g, &MatmulSpec::new(inp, out, batch, Trans::TN), &xb, &dpre, None, &dw).unwrap();
                let db_l = reduce::column_sum(g, &dpre, batch, out, &db).unwrap();
                g.run([&fwd, &pre_launch, &act_bwd, &dx_l, &dw_l, &db_l]).unwrap();
                let what = format!("layer {batch}x{inp}->{out} {}", act.name());
                check_grad(&format!("{what} dX"), &mut rng, |x| forward(x, &w, &b), &x, &download(&dx).await);
                check_grad(&format!("{what} dW"), &mut rng, |w| forward(&x, w, &b), &w, &download(&dw).await);
                check_grad(&format!("{what} db"), &mut rng, |b| forward(&x, &w, b), &b, &download(&db).await);
            }
        }
    }
}

gpu_test! {
    async fn matmul_rejects_wrong_shapes() {
        let g = gpu();
        let a = upload(&[1.0; 6]);
        let b = upload(&[1.0; 6]);
        let c = poisoned(4);
        let err = matmul(g, &MatmulSpec::new(2, 2, 3, Trans::NN), &a, &b, None, &c);
        assert!(err.is_ok(), "2x3·3x2 is valid: {:?}", err.err());
        let err = matmul(g, &MatmulSpec::new(2, 2, 4, Trans::NN), &a, &b, None, &c).err().expect("A is 2x3, not 2x4");
        let text = err.to_string();
        assert!(text.contains("matmul nn 2x2x4") && text.contains("A (2x4)"), "unclear error: {text}");
        let err = matmul(g, &MatmulSpec::new(0, 2, 3, Trans::NN), &a, &b, None, &c).err().expect("M = 0");
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn pipelines_compile_once_per_variant() {
    // A device of its own, so that no concurrent test touches its cache.
    let g = fresh_gpu(false);
    let a = g.upload_f32("a", &[1.0; 15]).unwrap();
    let b = g.upload_f32("b", &[1.0; 15]).unwrap();
    let c = g.zeros("c", 9, vaegan::DType::F32).unwrap();
    g.poison(&c);
    let spec = MatmulSpec::new(3, 3, 5, Trans::NN).tile(Tile::register(4, 8, 2, 2));
    assert_eq!(g.pipelines_compiled(), 0);
    for _ in 0..3 {
        matmul(&g, &spec, &a, &b, None, &c).unwrap();
    }
    assert_eq!(g.pipelines_compiled(), 1, "one variant prepared three times compiles once");
    matmul(&g, &spec.act(Act::Relu), &a, &b, None, &c).unwrap();
    assert_eq!(g.pipelines_compiled(), 2, "another epilogue is another variant");
    let launch = matmul(&g, &spec, &a, &b, None, &c).unwrap();
    g.run([&launch]).unwrap();
    assert_eq!(g.download_f32(&c).unwrap(), vec![5.0; 9]);
}

gpu_test! {
    /// Every tile computes each output with the same FMA chain over k, so tiles change speed,
    /// never bits — which is what makes autotuning safe for reproducible runs.
    async fn all_tiles_give_the_same_bits() {
        let mut rng = rng("all_tiles_give_the_same_bits");
        for trans in [Trans::NN, Trans::NT, Trans::TN] {
            let (m, n, k) = (37, 29, 53);
            let a = upload(&randn(&mut rng, m * k));
            let b = upload(&randn(&mut rng, k * n));
            let mut first: Option<Vec<u8>> = None;
            let classes = [vaegan::gpu::AdapterClass::Cpu, vaegan::gpu::AdapterClass::Gpu];
            let all: Vec<Tile> = classes.into_iter().flat_map(vaegan::kernels::autotune::class_candidates).chain(tiles()).collect();
            // Without sweeps: the class's default and the suite's tile, beside one of each kind.
            let all = if sweeps() { all } else { [Tile::class_default(gpu()), Tile::default_for(gpu())].into_iter().chain(tiles()).collect() };
            let runnable: Vec<Tile> = all.into_iter().filter(|t| t.check(gpu()).is_ok()).collect();
            assert!(runnable.iter().any(|t| t.kind == Kind::Shared) && runnable.iter().any(|t| t.kind == Kind::Register));
            for tile in runnable {
                let c = poisoned(m * n);
                let l = matmul(gpu(), &MatmulSpec::new(m, n, k, trans).act(Act::Tanh).tile(tile), &a, &b, None, &c).unwrap();
                gpu().run([&l]).unwrap();
                let bits = gpu().download_bytes_async(&c).await.unwrap();
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert_eq!(f, &bits, "{trans:?} tile {tile:?} differs"),
                }
            }
        }
    }
}

/// An m×k matrix of 0.5 times a k×n one of 0.25 on `g`, with the tile `g` picks (its default,
/// forced or tuned one); checks that every element is 0.125·k.
#[cfg(not(target_arch = "wasm32"))]
fn constant_product(g: &vaegan::Gpu, m: usize, n: usize, k: usize) {
    let a = g.upload_f32("a", &vec![0.5; m * k]).unwrap();
    let b = g.upload_f32("b", &vec![0.25; k * n]).unwrap();
    let c = g.zeros("c", m * n, vaegan::DType::F32).unwrap();
    let l = matmul(g, &MatmulSpec::new(m, n, k, Trans::NN), &a, &b, None, &c).unwrap();
    g.run([&l]).unwrap();
    assert!(g.download_f32(&c).unwrap().iter().all(|&v| v == 0.5 * 0.25 * k as f32));
}

/// With autotuning on, the first matmul of a shape class times the candidates, keeps the
/// fastest and writes the cache; a new device reads it back without tuning again.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn autotune_chooses_once_and_caches_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let open = || tuning_gpu(&cache);
    let g = open();
    let (m, n, k) = (64, 96, 96); // over a MFLOP: smaller products keep the default untuned
    constant_product(&g, m, n, k);
    let text = std::fs::read_to_string(&cache).expect("the cache file is written");
    let saved: std::collections::HashMap<String, String> = serde_json::from_str(&text).unwrap();
    assert_eq!(saved.len(), 1, "{text}");
    let key = vaegan::kernels::autotune::key(&g, Trans::NN, vaegan::DType::F32, m, n, k);
    let chosen = g.tuner.as_ref().unwrap().cached(&key).unwrap();
    drop(g);
    let g2 = open();
    let tuner = g2.tuner.as_ref().unwrap();
    assert_eq!(tuner.cached(&key), Some(chosen), "read back from disk");
    // A nearby shape falls in the same class (powers of two) and reuses the choice.
    let near = vaegan::kernels::autotune::key(&g2, Trans::NN, vaegan::DType::F32, 60, 90, 70);
    assert_eq!(near, key);
    drop(g2);
    // With the budget spent, a new shape keeps the default tile and is left for a later run.
    let mut g3 = open();
    g3.tuner.as_mut().unwrap().budget = std::time::Duration::ZERO;
    let (m, n, k) = (128, 128, 128);
    constant_product(&g3, m, n, k);
    let key = vaegan::kernels::autotune::key(&g3, Trans::NN, vaegan::DType::F32, m, n, k);
    assert_eq!(g3.tuner.as_ref().unwrap().cached(&key), None, "tuned past the budget");
    let saved: std::collections::HashMap<String, String> = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(saved.len(), 1);
}

gpu_test! {
    /// The subgroup kernel runs where subgroups are exactly 8 lanes (lavapipe on AVX2) and is
    /// then the default; elsewhere asking for it is a clear error, not a wrong answer.
    async fn subgroup_tile_where_subgroups_are_eight_lanes() {
        let g = gpu();
        let a = upload(&[1.0; 12]);
        let b = upload(&[1.0; 12]);
        let c = poisoned(9);
        let spec = MatmulSpec::new(3, 3, 4, Trans::NN).tile(Tile::subgroup(8, 4));
        if has_subgroup_kernel() {
            assert_eq!(Tile::class_default(g).kind, if g.class == vaegan::gpu::AdapterClass::Cpu { Kind::Subgroup } else { Kind::Shared });
            let l = matmul(g, &spec, &a, &b, None, &c).unwrap();
            g.run([&l]).unwrap();
            assert_eq!(download(&c).await, vec![4.0; 9]);
        } else {
            let err = matmul(g, &spec, &a, &b, None, &c).err().expect("no 8-lane subgroups: refused");
            assert!(err.to_string().contains("subgroups of exactly 8 lanes"), "{err}");
        }
        // Tiles a workgroup cannot hold are refused with the reason.
        let err = matmul(g, &MatmulSpec::new(3, 3, 4, Trans::NN).tile(Tile::shared(64, 64, 16, 16)), &a, &b, None, &c).err().unwrap();
        assert!(err.to_string().contains("workgroup memory"), "{err}");
        for text in ["16x16@8x8", "32x8@8/subgroup", "32x4@4x2/subgroup", "4x4@16x16/shared"] {
            assert_eq!(text.parse::<Tile>().unwrap().to_string(), text);
        }
        assert_eq!("32x4@4x2/subgroup".parse::<Tile>().unwrap(), Tile::subgroup_rows(32, 4, 4, 2));
        assert_eq!("32x4@8x1/subgroup".parse::<Tile>().unwrap(), Tile::subgroup(32, 4));
        assert!("4x4@16x16/fast".parse::<Tile>().is_err());
        // Row groups: 8 lanes in all, and each group's rows a whole number of lane rounds.
        if has_subgroup_kernel() {
            for bad in [Tile::subgroup_rows(32, 4, 4, 4), Tile::subgroup_rows(4, 4, 4, 2)] {
                let err = matmul(g, &MatmulSpec::new(3, 3, 4, Trans::NN).tile(bad), &a, &b, None, &c).err().expect("refused");
                assert!(err.to_string().contains("8 lanes (columns × row groups)"), "{bad}: {err}");
            }
        }
    }
}

/// A GEMM that names no tile and is not tuned runs on `Tile::untuned`: where the class
/// default is the 8-lane subgroup tile 32x8 (64 columns a workgroup), a product of up to 16
/// columns runs on 24x4@4x2 (lanes in two row groups), one of 17–32 on 32x4, wider ones on
/// 32x8 — with the same bits; a forced tile wins.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn an_untuned_narrow_product_takes_the_narrow_subgroup_tile() {
    let mut g = fresh_gpu(false);
    assert!(g.tuner.is_none() && g.forced_tile.is_none());
    let wide = Tile::class_default(&g);
    let mut rng = rng("an_untuned_narrow_product_takes_the_narrow_subgroup_tile");
    let m = 37;
    let run = |spec: MatmulSpec, a: &vaegan::GpuBuffer, b: &vaegan::GpuBuffer| {
        let c = g.zeros("C", spec.m * spec.n, vaegan::DType::F32).unwrap();
        g.poison(&c);
        let compiled = g.pipeline_sources().len();
        g.run([&matmul(&g, &spec, a, b, None, &c).unwrap()]).unwrap();
        let keys: Vec<String> = g.pipeline_sources()[compiled..].iter().map(|p| p.key.clone()).collect();
        (g.download_f32(&c).unwrap(), keys)
    };
    // Each (N, K, activation) compiles a pipeline of its own on first use, whichever tile it
    // takes (N % 4 and K % 4 pick the vector loads of B and A, and the epilogue is compiled
    // in; on adapters whose default is not the subgroup tile every product takes the same
    // tile, so no two cases may share all three), so the one new pipeline is the one the GEMM
    // ran on; the wide tile's runs come after.
    let mut untuned = vec![];
    for (n, k, act) in [(5, 9, Act::Relu), (16, 9, Act::None), (20, 8, Act::Relu), (30, 9, Act::None), (33, 8, Act::None), (40, 8, Act::None)] {
        let want = match n {
            _ if wide != Tile::subgroup(32, 8) => wide,
            0..=16 => Tile::subgroup_rows(24, 4, 4, 2),
            17..=32 => Tile::subgroup(32, 4),
            _ => wide,
        };
        assert_eq!(Tile::untuned(&g, n), want, "N = {n}");
        let to_gpu = |len: usize, rng: &mut rand::rngs::StdRng| {
            g.upload_f32("operand", &as_f32(&randn(rng, len)).iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap()
        };
        let (a, b) = (to_gpu(m * k, &mut rng), to_gpu(k * n, &mut rng));
        let (c, keys) = run(MatmulSpec::new(m, n, k, Trans::NN).act(act), &a, &b);
        assert!(keys.len() == 1 && keys[0].contains(&format!("/{want}/")), "N = {n}: expected a pipeline on {want}, got {keys:?}");
        untuned.push((n, k, act, a, b, c));
    }
    for (n, k, act, a, b, c) in untuned {
        let (on_wide, _) = run(MatmulSpec::new(m, n, k, Trans::NN).act(act).tile(wide), &a, &b);
        assert!(c.iter().zip(&on_wide).all(|(x, y)| x.to_bits() == y.to_bits() && !x.is_nan()), "N = {n}: the untuned tile and {wide} differ");
    }
    let forced = Tile::register(8, 4, 8, 4);
    forced.force_on(&mut g).unwrap();
    assert_eq!(Tile::untuned(&g, 16), forced, "a forced tile wins over the narrowing");
}

/// `Tile::force_on` (VAEGAN_TILE): checked against the adapter, then the tile of every GEMM
/// that names none, with autotuning bypassed.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn a_forced_tile_is_checked_and_replaces_default_and_tuning() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let mut g = tuning_gpu(&cache);
    assert_eq!(Tile::default_for(&g), Tile::class_default(&g));
    let err = Tile::shared(64, 64, 16, 16).force_on(&mut g).expect_err("more workgroup memory than any adapter has");
    assert!(err.to_string().contains("workgroup memory"), "{err}");
    assert!(g.forced_tile.is_none(), "a refused tile is not kept");
    let tile = Tile::register(8, 4, 8, 4);
    tile.force_on(&mut g).unwrap();
    assert_eq!(Tile::default_for(&g), tile);
    // A shape autotuning would time (over a MFLOP): with a forced tile it is not tuned.
    constant_product(&g, 64, 96, 96);
    assert!(!cache.exists(), "nothing was tuned under a forced tile");
}
