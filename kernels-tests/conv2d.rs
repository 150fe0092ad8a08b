//! conv2d and conv_transpose2d (implicit GEMMs on the matmul's tiles) against their CPU
//! twins on fresh random inputs with NaN-poisoned outputs, over the shapes that break
//! index arithmetic: batch 1, a 1×1 image, odd images (7×5), 4×4 and 5×5 kernels, stride
//! 1 and 2, padding 0 and 2, 3 input channels, 5 output channels; every backward against
//! central finite differences of the twin's forward.
//!
//! Tolerance: ‖gpu − ref‖ ≤ 1e-5·‖|x|·|w|‖ (f32 accumulation over up to a few hundred
//! terms, relative to the size of the terms since sums may cancel); finite differences of
//! the f64 twin within 1e-4.

use vaegan::kernels::conv2d;
use vaegan::reference;
use vaegan::types::{Act, ConvGeom};

use crate::common::*;

const TOL: f64 = 1e-5;

/// (batch, in h×w×c, out c, kernel, stride, pad)
fn geometries() -> Vec<ConvGeom> {
    let cases = [
        (1, (1, 1, 1), 1, (1, 1), 1, 0),
        (1, (7, 5, 3), 5, (5, 5), 1, 2),
        (2, (7, 5, 3), 5, (4, 4), 2, 0),
        (3, (8, 8, 4), 8, (5, 5), 2, 2),
        (1, (6, 9, 5), 3, (4, 4), 1, 2),
        (2, (9, 7, 2), 6, (5, 5), 2, 2),
        (1, (1, 1, 3), 5, (5, 5), 2, 2),
        // Channels in quads (x and dy read as vec4s) and an odd b·oh·ow = 3: the weight
        // gradient's K runs past its last whole quad, into the scalar loads of vec4-bound x.
        (1, (5, 3, 4), 4, (3, 3), 1, 0),
    ];
    // Without sweeps: stride 1 with padding, stride 2 without, stride 2 with, batch 1 and 2,
    // the quads with an odd K.
    swept(&cases, &[1, 2, 5, 7]).iter().map(|&(b, i, o, k, s, p)| ConvGeom::conv(b, i, o, k, s, p).unwrap()).collect()
}

/// |x| and |w| through the same computation: the scale of the terms a result sums.
fn forward_mag(g: &ConvGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    reference::conv2d::conv2d_forward(g, Act::None, &abs(x), &abs(w), None)
}

gpu_test! {
    async fn conv2d_forward_matches_twin() {
        let mut rng = rng("conv2d_forward_matches_twin");
        // One activation per geometry, in turn: each epilogue is checked, and every pipeline
        // compiled (one per geometry, activation and role) is one more on slow drivers.
        for (i, g) in geometries().into_iter().enumerate() {
            {
                let act = [Act::None, Act::Relu, Act::Tanh, Act::LeakyRelu(0.2), Act::Sigmoid][i % 5];
                let (x, w, bias) = (as_f32(&randn(&mut rng, g.input_len())), as_f32(&randn(&mut rng, g.weight_len())), as_f32(&randn(&mut rng, g.out_c)));
                let y = poisoned(g.output_len());
                let l = conv2d::conv2d_forward(gpu(), &g, act, &upload(&x), &upload(&w), Some(&upload(&bias)), &y).unwrap();
                gpu().run([&l]).unwrap();
                let want = reference::conv2d::conv2d_forward(&g, act, &x, &w, Some(&bias));
                let mag: Vec<f64> = forward_mag(&g, &x, &w).iter().map(|m| m + 1.0).collect();
                assert_close_mag(&format!("conv2d {g} {act}"), &download(&y).await, &want, &mag, TOL);
            }
        }
    }
}

/// dx of `g` from dy and w by the GEMM and by the narrow kernel, in that order, each into
/// a NaN-poisoned buffer, checking that each path ran what it names.
async fn gemm_and_narrow_dx(g: &ConvGeom, dyb: &vaegan::GpuBuffer, wb: &vaegan::GpuBuffer) -> Vec<Vec<f64>> {
    let mut outs = vec![];
    for path in [conv2d::InputPath::Gemm, conv2d::InputPath::Narrow] {
        let out = poisoned(g.input_len());
        let launches = conv2d::conv2d_backward_input_via(gpu(), g, path, dyb, wb, &out).unwrap();
        assert_eq!(launches.iter().any(|l| l.name.contains("narrow")), path == conv2d::InputPath::Narrow, "{g}: {path:?} ran {:?}", launches[0].name);
        gpu().run(&launches).unwrap();
        outs.push(download(&out).await);
    }
    outs
}

gpu_test! {
    /// The narrow kernel writes its taps out unrolled up to `NARROW_UNROLL` channel groups;
    /// past that it loops over them. The suite's geometries all unroll: here one that loops
    /// (25 taps × 3 quads × 16 outputs), against the twin and bit for bit against the GEMM.
    async fn the_narrow_kernel_loops_over_taps_past_its_unroll_limit() {
        let mut rng = rng("the_narrow_kernel_loops_over_taps_past_its_unroll_limit");
        let g = ConvGeom::conv(2, (6, 5, 16), 12, (5, 5), 1, 2).unwrap();
        const { assert!(25 * 3 * 16 > conv2d::NARROW_UNROLL, "the geometry no longer reaches the loop") };
        let (w, dy) = (as_f32(&randn(&mut rng, g.weight_len())), as_f32(&randn(&mut rng, g.output_len())));
        let (wb, dyb) = (upload(&w), upload(&dy));
        let outs = gemm_and_narrow_dx(&g, &dyb, &wb).await;
        let want = reference::conv2d::conv2d_backward_input(&g, &dy, &w);
        let mag = reference::conv2d::conv2d_backward_input(&g, &abs(&dy), &abs(&w));
        assert_close_mag(&format!("conv2d dx {g}, narrow with a loop"), &outs[1], &want, &mag, TOL);
        assert_same_bits(&format!("conv2d dx {g}: narrow with a loop vs GEMM"), &outs[1], &outs[0]);
    }
}

gpu_test! {
    async fn conv2d_backwards_match_twin_and_finite_differences() {
        let mut rng = rng("conv2d_backwards_match_twin_and_finite_differences");
        for g in geometries() {
            let (x, w, dy) = (as_f32(&randn(&mut rng, g.input_len())), as_f32(&randn(&mut rng, g.weight_len())), as_f32(&randn(&mut rng, g.output_len())));
            let (dx, dw) = (poisoned(g.input_len()), poisoned(g.weight_len()));
            let (xb, wb, dyb) = (upload(&x), upload(&w), upload(&dy));
            let mut launches = conv2d::conv2d_backward_input(gpu(), &g, &dyb, &wb, &dx).unwrap();
            // Untimed (the suite's tile is forced), Auto takes the narrow kernel up to 4 channels.
            let narrow = g.in_c <= conv2d::NARROW_UNTIMED_CHANNELS;
            assert_eq!(launches.iter().any(|l| l.name.contains("narrow")), narrow, "{g}: Auto ran {}", launches[0].name);
            launches.push(conv2d::conv2d_backward_weight(gpu(), &g, &xb, &dyb, &dw).unwrap());
            gpu().run(&launches).unwrap();
            let (want_dx, want_dw) = (reference::conv2d::conv2d_backward_input(&g, &dy, &w), reference::conv2d::conv2d_backward_weight(&g, &x, &dy));
            let mag_dx = reference::conv2d::conv2d_backward_input(&g, &abs(&dy), &abs(&w));
            let mag_dw = reference::conv2d::conv2d_backward_weight(&g, &abs(&x), &abs(&dy));
            let (got_dx, got_dw) = (download(&dx).await, download(&dw).await);
            assert_close_mag(&format!("conv2d dx {g}"), &got_dx, &want_dx, &mag_dx, TOL);
            assert_close_mag(&format!("conv2d dw {g}"), &got_dw, &want_dw, &mag_dw, TOL);
            // L = Σ dy·conv(x, w): its gradients are dx and dw.
            let loss_x = |x: &[f64]| dot(&dy, &reference::conv2d::conv2d_forward(&g, Act::None, x, &w, None));
            let loss_w = |w: &[f64]| dot(&dy, &reference::conv2d::conv2d_forward(&g, Act::None, &x, w, None));
            check_grad(&format!("conv2d dx {g}"), &mut rng, loss_x, &x, &got_dx);
            check_grad(&format!("conv2d dw {g}"), &mut rng, loss_w, &w, &got_dw);
            // Where the narrow kernel serves c_in, it and the GEMM give the same bits, and the
            // path Auto took (narrow up to 4 channels, the GEMM above without a tuner) too.
            if g.in_c <= conv2d::NARROW_MAX_CHANNELS {
                let outs = gemm_and_narrow_dx(&g, &dyb, &wb).await;
                assert_same_bits(&format!("conv2d dx {g}: narrow vs GEMM"), &outs[1], &outs[0]);
                assert_same_bits(&format!("conv2d dx {g}: Auto vs GEMM"), &got_dx, &outs[0]);
            } else {
                assert!(conv2d::conv2d_backward_input_via(gpu(), &g, conv2d::InputPath::Narrow, &dyb, &wb, &dx).is_err(), "{g}: narrow took c_in > 16");
            }
        }
    }
}

gpu_test! {
    /// Transposed convolutions, including the decoder's exact 2× upsampling 8 → 16 (5×5,
    /// stride 2, pad 2, output padding 1), odd sizes and a 1×1 input.
    async fn conv_transpose2d_matches_twin_and_finite_differences() {
        let mut rng = rng("conv_transpose2d_matches_twin_and_finite_differences");
        // (batch, in h×w×c, out c, kernel, stride, pad, out_pad)
        let cases =
            [(2, (8, 8, 6), 4, (5, 5), 2, 2, 1), (1, (1, 1, 3), 5, (4, 4), 2, 1, 0), (1, (3, 5, 5), 3, (5, 5), 1, 2, 0), (3, (4, 3, 2), 3, (4, 4), 2, 1, 1)];
        for (b, i, o, k, s, p, op) in swept(&cases, &[0, 2]) {
            let g = ConvGeom::transposed(b, i, o, k, s, p, op).unwrap();
            if i.0 == 8 {
                assert_eq!((g.in_h, g.in_w), (16, 16), "8 → 16 exactly");
            }
            // The transposed convolution's input is g's output side, its output g's input side.
            let (x, w, bias, dy) = (
                as_f32(&randn(&mut rng, g.output_len())),
                as_f32(&randn(&mut rng, g.weight_len())),
                as_f32(&randn(&mut rng, g.in_c)),
                as_f32(&randn(&mut rng, g.input_len())),
            );
            let (y, dx, dw) = (poisoned(g.input_len()), poisoned(g.output_len()), poisoned(g.weight_len()));
            let (xb, wb, dyb) = (upload(&x), upload(&w), upload(&dy));
            let mut launches = conv2d::conv_transpose2d_forward(gpu(), &g, Act::Relu, &xb, &wb, Some(&upload(&bias)), &y).unwrap();
            launches.push(conv2d::conv_transpose2d_backward_input(gpu(), &g, &dyb, &wb, &dx).unwrap());
            launches.push(conv2d::conv_transpose2d_backward_weight(gpu(), &g, &xb, &dyb, &dw).unwrap());
            gpu().run(&launches).unwrap();
            let what = format!("conv_transpose2d {g}");
            let want_y = reference::conv2d::conv_transpose2d_forward(&g, Act::Relu, &x, &w, Some(&bias));
            let mag_y: Vec<f64> = reference::conv2d::conv_transpose2d_forward(&g, Act::None, &abs(&x), &abs(&w), None).iter().map(|m| m + 1.0).collect();
            assert_close_mag(&format!("{what} forward"), &download(&y).await, &want_y, &mag_y, TOL);
            let (got_dx, got_dw) = (download(&dx).await, download(&dw).await);
            let want_dx = reference::conv2d::conv_transpose2d_backward_input(&g, &dy, &w);
            let want_dw = reference::conv2d::conv_transpose2d_backward_weight(&g, &x, &dy);
            let mag_dx = reference::conv2d::conv_transpose2d_backward_input(&g, &abs(&dy), &abs(&w));
            let mag_dw = reference::conv2d::conv_transpose2d_backward_weight(&g, &abs(&x), &abs(&dy));
            assert_close_mag(&format!("{what} dx"), &got_dx, &want_dx, &mag_dx, TOL);
            assert_close_mag(&format!("{what} dw"), &got_dw, &want_dw, &mag_dw, TOL);
            let loss_x = |x: &[f64]| dot(&dy, &reference::conv2d::conv_transpose2d_forward(&g, Act::None, x, &w, None));
            let loss_w = |w: &[f64]| dot(&dy, &reference::conv2d::conv_transpose2d_forward(&g, Act::None, &x, w, None));
            check_grad(&format!("{what} dx"), &mut rng, loss_x, &x, &got_dx);
            check_grad(&format!("{what} dw"), &mut rng, loss_w, &w, &got_dw);
            // The narrow kernel and the GEMM give the same bits (bias and activation included).
            if g.in_c <= conv2d::NARROW_MAX_CHANNELS {
                let mut outs = vec![];
                for path in [conv2d::InputPath::Gemm, conv2d::InputPath::Narrow] {
                    let out = poisoned(g.input_len());
                    let launches = conv2d::conv_transpose2d_forward_via(gpu(), &g, Act::Relu, path, &xb, &wb, Some(&upload(&bias)), &out).unwrap();
                    gpu().run(&launches).unwrap();
                    outs.push(download(&out).await);
                }
                assert_same_bits(&format!("{what} forward: narrow vs GEMM"), &outs[1], &outs[0]);
                assert_same_bits(&format!("{what} forward: Auto vs GEMM"), &download(&y).await, &outs[0]);
            }
        }
    }
}

gpu_test! {
    /// Every tile kind computes the same convolution (the gathered loaders serve all three).
    async fn conv2d_runs_on_every_tile_the_adapter_has() {
        let mut rng = rng("conv2d_runs_on_every_tile_the_adapter_has");
        let g = ConvGeom::conv(2, (7, 5, 3), 5, (5, 5), 2, 2).unwrap();
        let (x, w) = (as_f32(&randn(&mut rng, g.input_len())), as_f32(&randn(&mut rng, g.weight_len())));
        let want = reference::conv2d::conv2d_forward(&g, Act::None, &x, &w, None);
        let mag = forward_mag(&g, &x, &w);
        let all: Vec<_> = vaegan::kernels::autotune::class_candidates(vaegan::gpu::AdapterClass::Cpu)
            .into_iter()
            .chain(vaegan::kernels::autotune::class_candidates(vaegan::gpu::AdapterClass::Gpu))
            .collect();
        // Without sweeps: the class default and the suite's tile.
        let all = if sweeps() { all } else { vec![vaegan::kernels::matmul::Tile::class_default(gpu()), vaegan::kernels::matmul::Tile::default_for(gpu())] };
        let runnable: Vec<_> = all.into_iter().filter(|t| t.check(gpu()).is_ok()).collect();
        assert!(!runnable.is_empty(), "no candidate tile runs on this adapter");
        for tile in runnable {
            let y = poisoned(g.output_len());
            let l = conv2d::conv2d_forward_tiled(gpu(), &g, Act::None, &upload(&x), &upload(&w), None, &y, tile).unwrap();
            gpu().run([&l]).unwrap();
            assert_close_mag(&format!("conv2d {g} on {tile}"), &download(&y).await, &want, &mag, TOL);
        }
    }
}

gpu_test! {
    async fn bad_geometries_and_buffers_are_refused_clearly() {
        let err = ConvGeom::conv(1, (3, 3, 1), 1, (5, 5), 1, 0).unwrap_err();
        assert!(err.contains("larger than the 3x3 image"), "{err}");
        let err = ConvGeom::transposed(1, (8, 8, 1), 1, (5, 5), 2, 2, 2).unwrap_err();
        assert!(err.contains("output padding 2 must be smaller than the stride 2"), "{err}");
        let g = ConvGeom::conv(1, (4, 4, 3), 2, (3, 3), 1, 1).unwrap();
        let err = conv2d::conv2d_forward(gpu(), &g, Act::None, &poisoned(47), &poisoned(g.weight_len()), None, &poisoned(g.output_len())).err().unwrap();
        assert!(err.to_string().contains("x has 47 elements, expected 48"), "{err}");
    }
}

/// The suite's convolutions run on `common::test_tile`; models run on the tile no tuning
/// chose (`Tile::untuned`): the adapter class's default, where that is the 8-lane subgroup
/// tile 32x8, narrowed to 32x4 for GEMMs of up to 32 columns. Every loader — the forward's
/// im2col, the input gradient's stride phases, the weight gradient's, the transposed
/// forward's — at three stride-2 geometries with partial tiles, whose GEMMs are all at most
/// 16 columns wide, all 17–32 and all wider (`Tile::for_columns`' three bands), against the twin (a second device,
/// whose GEMMs keep those tiles); each GEMM's pipeline is checked to be on the tile expected.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn convolutions_on_the_untuned_tiles_match_twin() {
    use vaegan::kernels::matmul::Tile;
    let dev = fresh_gpu(false);
    assert!(dev.forced_tile.is_none() && Tile::default_for(&dev) == Tile::class_default(&dev));
    let mut rng = rng("convolutions_on_the_untuned_tiles_match_twin");
    let up = |v: &[f64]| dev.upload_f32("x", &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
    let out = |n: usize| {
        let b = dev.zeros("y", n, vaegan::DType::F32).unwrap();
        dev.poison(&b);
        b
    };
    let read = |b: &vaegan::GpuBuffer| dev.download_f32(b).unwrap().into_iter().map(|v| v as f64).collect::<Vec<_>>();
    // (in_c, out_c): every GEMM's N is one of the two (forward and weight gradient: out_c;
    // input gradient and the transposed forward: in_c, where 2 channels take the narrow kernel).
    for (in_c, out_c) in [(2, 6), (20, 24), (36, 40)] {
        let wide = Tile::class_default(&dev);
        let tile = match in_c.max(out_c) {
            _ if wide != Tile::subgroup(32, 8) => wide,
            0..=16 => Tile::subgroup_rows(24, 4, 4, 2),
            17..=32 => Tile::subgroup(32, 4),
            _ => wide,
        };
        let g = ConvGeom::conv(2, (9, 7, in_c), out_c, (5, 5), 2, 2).unwrap();
        let (x, w, dy) = (as_f32(&randn(&mut rng, g.input_len())), as_f32(&randn(&mut rng, g.weight_len())), as_f32(&randn(&mut rng, g.output_len())));
        let (y, dx, dw) = (out(g.output_len()), out(g.input_len()), out(g.weight_len()));
        let (xb, wb, dyb) = (up(&x), up(&w), up(&dy));
        let compiled = dev.pipeline_sources().len();
        let mut launches = vec![conv2d::conv2d_forward(&dev, &g, Act::None, &xb, &wb, None, &y).unwrap()];
        launches.extend(conv2d::conv2d_backward_input(&dev, &g, &dyb, &wb, &dx).unwrap());
        launches.push(conv2d::conv2d_backward_weight(&dev, &g, &xb, &dyb, &dw).unwrap());
        // The transposed convolution of the same geometry maps dy's side to x's.
        let t = ConvGeom::transposed(2, (5, 4, out_c), in_c, (5, 5), 2, 2, 0).unwrap();
        assert_eq!((t.in_h, t.in_w), (9, 7));
        let ty = out(t.input_len());
        launches.extend(conv2d::conv_transpose2d_forward(&dev, &t, Act::None, &dyb, &wb, None, &ty).unwrap());
        dev.run(&launches).unwrap();
        let gemms: Vec<String> = dev.pipeline_sources()[compiled..].iter().map(|p| p.key.clone()).filter(|k| k.starts_with("matmul/conv/")).collect();
        assert!(gemms.len() >= 2, "{g}: at least the forward's and the weight gradient's GEMMs, got {gemms:?}");
        for key in &gemms {
            assert!(key.contains(&format!("/{tile}/")), "{g}: expected every GEMM on {tile}, got {key}");
        }
        let r = &reference::conv2d::conv2d_forward;
        assert_close_mag(&format!("conv2d {g} on {tile}"), &read(&y), &r(&g, Act::None, &x, &w, None), &forward_mag(&g, &x, &w), TOL);
        let mag_dx = reference::conv2d::conv2d_backward_input(&g, &abs(&dy), &abs(&w));
        assert_close_mag(&format!("conv2d dx {g} on {tile}"), &read(&dx), &reference::conv2d::conv2d_backward_input(&g, &dy, &w), &mag_dx, TOL);
        let mag_dw = reference::conv2d::conv2d_backward_weight(&g, &abs(&x), &abs(&dy));
        assert_close_mag(&format!("conv2d dw {g} on {tile}"), &read(&dw), &reference::conv2d::conv2d_backward_weight(&g, &x, &dy), &mag_dw, TOL);
        let want_t = reference::conv2d::conv_transpose2d_forward(&t, Act::None, &dy, &w, None);
        let mag_t = reference::conv2d::conv_transpose2d_forward(&t, Act::None, &abs(&dy), &abs(&w), None);
        assert_close_mag(&format!("conv_transpose2d {t} on {tile}"), &read(&ty), &want_t, &mag_t, TOL);
    }
}

/// Channels in multiples of 4 are read a quad at a time: x in the forward and the weight
/// gradient, dy in the input gradient, and w in the input gradient stored N×K (NT), whose
/// quads along k are four contiguous output channels — each operand bound as vec4s
/// (`va1`, `vb1` in the pipeline's key). Where c_out is not a multiple of 4, the input
/// gradient reads w as K×N (NN) in scalars. Both against the twin.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn channel_quads_load_as_vec4s() {
    let dev = fresh_gpu(false);
    let mut rng = rng("channel_quads_load_as_vec4s");
    let up = |v: &[f64]| dev.upload_f32("x", &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
    let out = |n: usize| {
        let b = dev.zeros("y", n, vaegan::DType::F32).unwrap();
        dev.poison(&b);
        b
    };
    let read = |b: &vaegan::GpuBuffer| dev.download_f32(b).unwrap().into_iter().map(|v| v as f64).collect::<Vec<_>>();
    // (in_c, out_c, stride): in_c above the narrow kernel's 4, so every input gradient is a GEMM.
    for (in_c, out_c, stride) in [(8, 12, 2), (8, 12, 1), (8, 6, 2)] {
        let g = ConvGeom::conv(2, (7, 6, in_c), out_c, (3, 3), stride, 1).unwrap();
        let (x, w, dy) = (randn(&mut rng, g.input_len()), randn(&mut rng, g.weight_len()), randn(&mut rng, g.output_len()));
        let (y, dx, dw) = (out(g.output_len()), out(g.input_len()), out(g.weight_len()));
        let compiled = dev.pipeline_sources().len();
        let forward = conv2d::conv2d_forward(&dev, &g, Act::None, &up(&x), &up(&w), None, &y).unwrap();
        let weight = conv2d::conv2d_backward_weight(&dev, &g, &up(&x), &up(&dy), &dw).unwrap();
        let input = conv2d::conv2d_backward_input(&dev, &g, &up(&dy), &up(&w), &dx).unwrap();
        dev.run([&forward, &weight]).unwrap();
        dev.run(&input).unwrap();
        let keys: Vec<String> = dev.pipeline_sources()[compiled..].iter().map(|p| p.key.clone()).collect();
        let of = |loader: &str| keys.iter().filter(|k| k.contains(&format!("/{loader}/"))).cloned().collect::<Vec<_>>();
        let reads_x = [of("conv_input"), of("conv_input_k")].concat();
        assert_eq!(reads_x.len(), 2, "{g}: the forward's and the weight gradient's GEMMs, got {keys:?}");
        for k in &reads_x {
            assert!(k.contains("/va1/"), "{g}: x's quads as vec4s, got {k}");
        }
        let (nk, kn) = if stride == 1 { ("conv_weight_nk", "conv_weight_t") } else { ("conv_weight_nk_phase", "conv_weight_t_phase") };
        let inputs = [of(nk), of(kn)].concat();
        assert!(!inputs.is_empty(), "{g}: no input-gradient GEMM among {keys:?}");
        for k in &inputs {
            let want = if out_c % 4 == 0 { format!("/{nk}/") } else { format!("/{kn}/") };
            assert!(k.contains(&want), "{g}: the input gradient's B should be {want}, got {k}");
            let layout = if out_c % 4 == 0 { "/nt/" } else { "/nn/" };
            assert!(k.contains(layout) && k.contains(&format!("/va{}/vb{}/", (out_c % 4 == 0) as u8, (out_c % 4 == 0) as u8)), "{g}: {k}");
        }
        let r = &reference::conv2d::conv2d_forward;
        assert_close_mag(&format!("conv2d {g}"), &read(&y), &r(&g, Act::None, &x, &w, None), &forward_mag(&g, &x, &w), TOL);
        let mag_dx = reference::conv2d::conv2d_backward_input(&g, &abs(&dy), &abs(&w));
        assert_close_mag(&format!("conv2d dx {g}"), &read(&dx), &reference::conv2d::conv2d_backward_input(&g, &dy, &w), &mag_dx, TOL);
        let mag_dw = reference::conv2d::conv2d_backward_weight(&g, &abs(&x), &abs(&dy));
        assert_close_mag(&format!("conv2d dw {g}"), &read(&dw), &reference::conv2d::conv2d_backward_weight(&g, &x, &dy), &mag_dw, TOL);
    }
}

/// With autotuning on, an input gradient of up to 16 channels is timed on the GEMM and on
/// the narrow kernel once (on at most `TIMED_IMAGES` images), the faster recorded and taken
/// (and right); above 16 the GEMM,
/// untimed. (Untimed, up to 4 channels take the narrow kernel: the suite's device, whose
/// tile is forced, checks that in `conv2d_backwards_match_twin_and_finite_differences`.)
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn autotune_picks_the_input_gradient_path_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let mut dev = tuning_gpu(&cache);
    // Every timing here is the test's point: a slow backend (GL beside other work spent the
    // default 30 s before the last geometry) must not run out of budget.
    dev.tuner.as_mut().expect("a tuning device").budget = std::time::Duration::from_secs(3600);
    let dev = dev;
    let mut rng = rng("autotune_picks_the_input_gradient_path_once");
    let up = |v: &[f64]| dev.upload_f32("x", &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
    let saved =
        || -> std::collections::HashMap<String, String> { std::fs::read_to_string(&cache).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or_default() };
    // The input gradient of `g` on random tensors, checked against the twin: its launches.
    let tuned_dx = |g: &ConvGeom, rng: &mut rand::rngs::StdRng| {
        let (w, dy) = (as_f32(&randn(rng, g.weight_len())), as_f32(&randn(rng, g.output_len())));
        let dx = dev.zeros("dx", g.input_len(), vaegan::DType::F32).unwrap();
        dev.poison(&dx);
        let launches = conv2d::conv2d_backward_input(&dev, g, &up(&dy), &up(&w), &dx).unwrap();
        dev.run(&launches).unwrap();
        let got: Vec<f64> = dev.download_f32(&dx).unwrap().into_iter().map(|v| v as f64).collect();
        let mag = reference::conv2d::conv2d_backward_input(g, &abs(&dy), &abs(&w));
        assert_close_mag(&format!("conv2d dx {g}, tuned"), &got, &reference::conv2d::conv2d_backward_input(g, &dy, &w), &mag, TOL);
        launches
    };
    for (in_c, timed) in [(2, true), (8, true), (20, false)] {
        let g = ConvGeom::conv(2, (9, 7, in_c), 6, (5, 5), 2, 2).unwrap();
        let launches = tuned_dx(&g, &mut rng);
        let key = vaegan::kernels::autotune::conv_key(&dev, "conv input gradient", &g);
        let ran_narrow = launches.iter().any(|l| l.name.contains("narrow"));
        match saved().get(&key) {
            Some(choice) => {
                assert!(timed, "{g}: {in_c} channels were timed");
                assert_eq!(choice == "narrow", ran_narrow, "{g}: recorded {choice}, ran {}", launches[0].name);
            }
            None => {
                assert!(!timed, "{g}: {in_c} channels were not timed ({:?})", saved());
                assert!(!ran_narrow, "{g}: ran {}", launches[0].name);
            }
        }
    }
    // A larger batch is timed on `TIMED_IMAGES` of its images (the narrow kernel's pipeline
    // names its geometry), then run whole on the path chosen, and right.
    let g = ConvGeom::conv(conv2d::TIMED_IMAGES + 36, (9, 7, 8), 6, (5, 5), 2, 2).unwrap();
    let timed = ConvGeom { batch: conv2d::TIMED_IMAGES, ..g };
    let launches = tuned_dx(&g, &mut rng);
    assert!(saved().contains_key(&vaegan::kernels::autotune::conv_key(&dev, "conv input gradient", &g)), "{g}: the choice is kept for the whole batch");
    let narrow_keys: Vec<String> = dev.pipeline_sources().into_iter().map(|p| p.key).filter(|k| k.starts_with("conv2d_narrow/")).collect();
    assert!(narrow_keys.iter().any(|k| k.starts_with(&format!("conv2d_narrow/{timed}/"))), "{g}: timed on {timed}, pipelines {narrow_keys:?}");
    assert!(
        !narrow_keys.iter().any(|k| k.starts_with(&format!("conv2d_narrow/{g}/"))) || launches.iter().any(|l| l.name.contains("narrow")),
        "{g}: timed whole"
    );
}

/// With autotuning on, a convolution's GEMMs get their tiles as dense matmuls do: timed once
/// per geometry and role on first use, recorded (one of the adapter's candidates), read
/// back by the next process; the result matches the twin on whichever tile won.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn autotune_tunes_convolution_tiles_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let g = ConvGeom::conv(8, (16, 16, 8), 16, (5, 5), 2, 2).unwrap(); // 512×16×200: 3.3 MFLOP, over the tuning floor
    let mut rng = rng("autotune_tunes_convolution_tiles_once");
    let (x, w) = (as_f32(&randn(&mut rng, g.input_len())), as_f32(&randn(&mut rng, g.weight_len())));
    let want = reference::conv2d::conv2d_forward(&g, Act::None, &x, &w, None);
    let forward = |dev: &vaegan::Gpu| {
        let up = |v: &[f64]| dev.upload_f32("x", &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
        let y = dev.zeros("y", g.output_len(), vaegan::DType::F32).unwrap();
        dev.poison(&y);
        dev.run([&conv2d::conv2d_forward(dev, &g, Act::None, &up(&x), &up(&w), None, &y).unwrap()]).unwrap();
        let got: Vec<f64> = dev.download_f32(&y).unwrap().into_iter().map(|v| v as f64).collect();
        assert_close_mag(&format!("conv2d {g}, tuned"), &got, &want, &forward_mag(&g, &x, &w), TOL);
    };
    let dev = tuning_gpu(&cache);
    forward(&dev);
    let saved: std::collections::HashMap<String, String> = serde_json::from_str(&std::fs::read_to_string(&cache).expect("the cache is written")).unwrap();
    let (key, tile) =
        saved.iter().find(|(k, _)| k.contains(&g.to_string()) && k.contains("conv_input/")).unwrap_or_else(|| panic!("no conv entry in {saved:?}"));
    let tile: vaegan::kernels::matmul::Tile = tile.parse().unwrap();
    assert!(vaegan::kernels::autotune::candidates(&dev).contains(&tile), "{tile} is not a candidate");
    drop(dev);
    let dev = tuning_gpu(&cache);
    assert_eq!(dev.tuner.as_ref().unwrap().cached(key), Some(tile.to_string()), "read back from disk");
    forward(&dev);
    let again: std::collections::HashMap<String, String> = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(again, saved, "nothing tuned twice");
}
