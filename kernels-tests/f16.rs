//! f16 storage: matmul with f16 operands and f32 accumulation where the adapter has
//! SHADER_F16, and the f32 fallback where it has not.

use half::f16;
use vaegan::kernels::matmul::{matmul, Kind, MatmulSpec, Tile};
use vaegan::reference;
use vaegan::types::{Act, Trans};
use vaegan::DType;

use crate::common::*;

fn round_f16(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| f16::from_f64(v).to_f64()).collect()
}

/// f16's unit roundoff (round to nearest: 2⁻¹¹) and f32's (2⁻²⁴).
const U_F16: f64 = 1.0 / 2048.0;
const U_F32: f64 = 1.0 / 16_777_216.0;
/// Half the spacing of f16's subnormals: the absolute error of rounding |x| < 2⁻¹⁴.
const F16_SUBNORMAL_HALF_ULP: f64 = 1.0 / 33_554_432.0;

/// γₙ = n·u/(1 − n·u): the classical bound on the relative error of a sum of n products
/// in arithmetic with unit roundoff u, relative to the sum of the products' magnitudes
/// (Higham, Accuracy and Stability of Numerical Algorithms, §3.1). FMAs round less often;
/// the bound still holds.
fn gamma(n: usize, u: f64) -> f64 {
    n as f64 * u / (1.0 - n as f64 * u)
}

gpu_test! {
    /// f16 operands, f32 accumulation, in the forward's layout (NN) and both backward roles
    /// (dA = dC·Bᵀ is NT, dB = Aᵀ·dC is TN), on a tile of every kind the adapter runs, at odd
    /// shapes and batch 1. Bounds element by element, from the two unit roundoffs and K:
    /// - against the exact product of the f16-rounded inputs Â, B̂ (rounded on the host, as the
    ///   executor's casts do): |C − ÂB̂ − bias| ≤ γ_{K+1}(2⁻²⁴)·(|Â||B̂| + |bias|), the f32
    ///   sum's own error, plus K·2⁻¹²⁶ where a driver flushes subnormal products;
    /// - against the original f32 inputs, the rounding of each operand on top:
    ///   |ÂB̂ − AB| ≤ E_A|B| + |A|E_B + E_A·E_B with E = 2⁻¹¹|x| + 2⁻²⁵ (subnormals);
    /// ReLU, 1-Lipschitz, keeps both. And every tile gives the same bits, as in f32.
    async fn f16_matmul_errors_stay_within_their_roundoff_bounds_on_every_tile() {
        let g = gpu();
        has_f16();
        let mut rng = rng("f16_matmul_errors_stay_within_their_roundoff_bounds_on_every_tile");
        let mut tiles = vec![Tile::class_default(g), Tile::register(8, 4, 8, 4), Tile::shared(4, 4, 16, 16)];
        if has_subgroup_kernel() {
            tiles.extend([Tile::subgroup(8, 4), Tile::subgroup_rows(8, 4, 4, 2)]);
        }
        let mut tiles: Vec<Tile> = tiles.into_iter().filter(|t| t.check(g).is_ok()).collect();
        if g.features.shader_f16 {
            assert!(tiles.iter().any(|t| t.kind == Kind::Register) && tiles.iter().any(|t| t.kind == Kind::Shared), "{tiles:?}");
        } else {
            // The f32 fallback: the tiles are the matmul tests' business (GL compiles slowly).
            tiles.truncate(1);
        }
        let mut checked = 0;
        for &(m, n, k) in &[(1, 13, 29), (37, 29, 53), (64, 31, 784)] {
            for trans in [Trans::NN, Trans::NT, Trans::TN] {
                // Magnitudes over four decades, so that some operands are f16 subnormals.
                let scaled = |rng: &mut rand::rngs::StdRng, len: usize| -> Vec<f64> {
                    let r = randn(rng, len);
                    as_f32(&r.iter().enumerate().map(|(i, v)| v * 10f64.powi((i % 5) as i32 - 4)).collect::<Vec<_>>())
                };
                let a = scaled(&mut rng, m * k);
                let b = scaled(&mut rng, k * n);
                let bias = as_f32(&randn(&mut rng, n));
                let (af, bf): (Vec<f32>, Vec<f32>) = (a.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
                let (ab, bb) = (g.upload_half_or_f32("a", &af).unwrap(), g.upload_half_or_f32("b", &bf).unwrap());
                let expected = if g.features.shader_f16 { DType::F16 } else { DType::F32 };
                assert_eq!(ab.dtype, expected, "upload_half_or_f32 must pick f16 exactly when SHADER_F16 is there");
                let (ra, rb) = if g.features.shader_f16 { (round_f16(&a), round_f16(&b)) } else { (a.clone(), b.clone()) };
                let mm = |x: &[f64], y: &[f64], bias: Option<&[f64]>, act| reference::matmul::matmul(m, n, k, trans, x, y, bias, act);
                let exact = mm(&ra, &rb, Some(&bias), Act::Relu);
                let original = mm(&a, &b, Some(&bias), Act::Relu);
                let accumulation = mm(&abs(&ra), &abs(&rb), Some(&abs(&bias)), Act::None);
                let e = |x: &[f64]| -> Vec<f64> {
                    let u = if g.features.shader_f16 { U_F16 } else { 0.0 };
                    let sub = if g.features.shader_f16 { F16_SUBNORMAL_HALF_ULP } else { 0.0 };
                    x.iter().map(|v| u * v.abs() + sub).collect()
                };
                let (ea, eb) = (e(&a), e(&b));
                let (sa, sb) = (mm(&ea, &abs(&b), None, Act::None), mm(&abs(&a), &eb, None, Act::None));
                let se = mm(&ea, &eb, None, Act::None);
                let flush = k as f64 * f32::MIN_POSITIVE as f64;
                let mut first: Option<Vec<f64>> = None;
                for &tile in &tiles {
                    let c = poisoned(m * n);
                    let l = matmul(g, &MatmulSpec::new(m, n, k, trans).act(Act::Relu).tile(tile), &ab, &bb, Some(&upload(&bias)), &c).unwrap();
                    g.run([&l]).unwrap();
                    let got = download(&c).await;
                    let what = format!("{} on {tile:?}", l.name);
                    for i in 0..m * n {
                        assert!(got[i].is_finite(), "{what}: element {i} is {}", got[i]);
                        let own = gamma(k + 1, U_F32) * accumulation[i] + flush;
                        let err = (got[i] - exact[i]).abs();
                        assert!(err <= own, "{what}: element {i} is {:e}, the product of the rounded inputs {:e}: error {err:.3e} > bound {own:.3e}", got[i], exact[i]);
                        let rounding = sa[i] + sb[i] + se[i];
                        let err = (got[i] - original[i]).abs();
                        assert!(err <= own + rounding, "{what}: element {i} is {:e}, the f32 inputs' product {:e}: error {err:.3e} > bound {:.3e}", got[i], original[i], own + rounding);
                    }
                    match &first {
                        None => first = Some(got),
                        Some(f) => assert_same_bits(&format!("{what} against {:?}", tiles[0]), &got, f),
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 9 * tiles.len());
    }
}

/// The fallback, forced: a device opened without SHADER_F16 stores f32 and still computes
/// the right product; asking it for f16 explicitly is a clear error.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn without_shader_f16_half_storage_falls_back_to_f32() {
    let g = fresh_gpu(true);
    assert!(!g.features.shader_f16);
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let ab = g.upload_half_or_f32("a", &a).unwrap();
    assert_eq!(ab.dtype, DType::F32);
    let c = g.zeros("c", 4, DType::F32).unwrap();
    g.poison(&c);
    // [[1,2,3],[4,5,6]] · [[1,2,3],[4,5,6]]ᵀ
    let l = matmul(&g, &MatmulSpec::new(2, 2, 3, Trans::NT), &ab, &ab, None, &c).unwrap();
    g.run([&l]).unwrap();
    assert_eq!(g.download_f32(&c).unwrap(), vec![14.0, 32.0, 32.0, 77.0]);
    let err = g.upload_f16("a", &a).expect_err("no SHADER_F16 on this device");
    assert!(err.to_string().contains("SHADER_F16"), "{err}");
}

/// The device, which must have SHADER_F16 — but on GL (llvmpipe) and in the browser
/// (Chromium's SwiftShader exposes no shader-f16), where the tests check that f16 is refused.
fn require_f16() -> &'static vaegan::Gpu {
    let g = gpu();
    let exempt = cfg!(target_arch = "wasm32") || std::env::var("VAEGAN_TEST_BACKEND").is_ok_and(|b| b == "gl");
    assert!(g.features.shader_f16 || exempt, "{} has no SHADER_F16: the mixed-precision tests need it (lavapipe has it)", g.describe());
    g
}

gpu_test! {
    /// f32 → f16 cast vs its twin: round to nearest even (at most 1 f16 ulp apart, should a
    /// driver round otherwise), overflow to ±inf, subnormals kept, every element written.
    async fn to_f16_cast_matches_twin() {
        let g = require_f16();
        if !g.features.shader_f16 {
            let src = g.upload_f32("x", &[1.0]).unwrap();
            let dst = g.zeros("y", 1, DType::F32).unwrap();
            assert!(vaegan::kernels::cast::to_f16(g, &src, &dst).is_err(), "an f32 destination is refused");
            return;
        }
        let mut rng = rng("to_f16_cast_matches_twin");
        for n in [1, 1000, 70_001] {
            let mut x = as_f32(&randn(&mut rng, n));
            let specials = [70000.0, -1e6, 65504.0, 3e-6, -6e-8, 1e-9, 0.0, 1.0 / 3.0];
            for (i, s) in specials.iter().enumerate().take(n) {
                x[i] = *s;
            }
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let src = g.upload_f32("x", &xf).unwrap();
            let dst = g.zeros("y", n, DType::F16).unwrap();
            g.poison(&dst);
            let l = vaegan::kernels::cast::to_f16(g, &src, &dst).unwrap();
            g.run([&l]).unwrap();
            let bytes = g.download_bytes_async(&dst).await.unwrap();
            let got: Vec<f16> = bytes.chunks(2).take(n).map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]]))).collect();
            let want = reference::cast::to_f16(&xf);
            for i in 0..n {
                let (gv, wv) = (got[i].to_f32(), want[i]);
                assert!(!gv.is_nan(), "element {i} of {n} unwritten or NaN (input {})", xf[i]);
                let ulp = (f16::from_f32(wv).to_bits() as i32 - got[i].to_bits() as i32).abs();
                assert!(gv == wv || (wv.is_finite() && ulp <= 1), "element {i}: f16({}) = {gv}, twin {wv}", xf[i]);
            }
        }
    }
}

gpu_test! {
    /// The mixed-precision step against the f32 step from the same weights and batch: the
    /// gradients (unscaled by the loss scale) agree to a tolerance, the losses to 1 %, and five
    /// Adam steps lower the loss alike (see below).
    ///
    /// What the gradient tolerance guards is the loss scale, not precision: a missing, doubled
    /// or unremoved scale is off by 100 % or more of the norm. The precision of the f16 path
    /// is bounded from the unit roundoffs where a bound exists, per kernel: the casts
    /// (`to_f16_cast_matches_twin`, exact rounding) and the matmuls, the only ops that read
    /// f16 (`f16_matmul_errors_stay_within_their_roundoff_bounds_on_every_tile`, element by
    /// element from 2⁻¹¹, 2⁻²⁴ and K, every tile kind, both backward layouts). For a whole
    /// step no such bound exists: a pre-activation that f16 rounding moves across ReLU's kink
    /// switches a whole path of gradient on or off, by an amount set by the weights, not by ε.
    /// Measured relative errors: typically 5e-4; worst over 30 runs 5.1e-2 (VAE) and 4.4e-2
    /// (VAE-GAN, whose discriminator gradient is a small difference of large terms); hence
    /// 0.1 and 0.2, well under the 1.0 of a scale error.
    async fn mixed_precision_step_tracks_f32() {
        use vaegan::graph::gpu_exec::LOSS_SCALE;
        use vaegan::graph::{ExecOptions, GpuExecutor};
        use vaegan::model::{build_step, Mode, ModelConfig};
        use vaegan::types::AdamParams;
        use vaegan::types::Precision;
        let g = require_f16();
        if !g.features.shader_f16 {
            let step = build_step(&ModelConfig::mnist_mlp(), 2, 1).unwrap();
            let err = GpuExecutor::new(g, step.graph, ExecOptions { precision: Precision::F16, ..Default::default() }).err().unwrap();
            assert!(err.to_string().contains("SHADER_F16"), "{err}");
            return;
        }
        let mut rng = rng("mixed_precision_step_tracks_f32");
        for (mode, tol) in [(Mode::Vae, 0.1), (Mode::VaeGan, 0.2)] {
            let config = ModelConfig { mode, ..ModelConfig::mnist_mlp() };
            let batch = 8;
            let step = build_step(&config, batch, 5).unwrap();
            let x: Vec<f32> = as_f32(&uniform(&mut rng, batch * 784, 0.0, 1.0)).iter().map(|&v| v as f32).collect();
            let run = |precision: Precision, adam: bool| {
                let groups = step.graph.groups.len();
                let update = adam.then(|| vec![AdamParams::new(1e-3).into(); groups]);
                let mut exec = GpuExecutor::new(g, step.graph.clone(), ExecOptions { seed: 9, reuse: true, update, precision }).unwrap();
                exec.wait_for_readback = true;
                exec.set_input(step.x, &x).unwrap();
                exec
            };
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let rel = |a: &[f64], b: &[f64]| norm(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>()) / norm(b).max(1e-30);
            let f64s = |v: &[f32], s: f32| v.iter().map(|&x| x as f64 / s as f64).collect::<Vec<f64>>();

            // Gradients of one step.
            let (mut e32, mut e16) = (run(Precision::F32, false), run(Precision::F16, false));
            assert_eq!(e16.loss_scale(), LOSS_SCALE);
            for e in [&mut e32, &mut e16] {
                e.step_with(true, None).unwrap();
            }
            let (o32, o16) = (e32.wait_outputs().unwrap(), e16.wait_outputs().unwrap());
            for ((name, a), (_, b)) in o32[0].1.iter().zip(&o16[0].1) {
                assert!(((a - b) / a.abs().max(1e-3)).abs() < 1e-2, "{mode:?} loss {name}: f32 {a}, f16 {b}");
            }
            for group in &step.graph.groups {
                for (&p, &d) in group.params.iter().zip(&group.grads) {
                    let want = f64s(&e32.read_async(d).await.unwrap(), 1.0);
                    let got = f64s(&e16.read_async(d).await.unwrap(), LOSS_SCALE);
                    assert!(got.iter().all(|v| v.is_finite()), "{}: non-finite gradient", step.graph.name(p));
                    let r = rel(&got, &want);
                    assert!(r < tol, "{mode:?} {} ∂/∂{}: the f16 gradient is off by {r:.2e} of its norm", group.name, step.graph.name(p));
                }
            }

            // Five Adam steps on the same batch: the reconstruction loss falls alike (the f16
            // weight copies follow every update), and Adam's moments are in true units (a
            // missing 1/S would make them 1024× too large). Weight changes themselves are not
            // compared: Adam moves every weight by about ±lr whatever its gradient's size, so
            // weights whose gradient is below f16's rounding move differently in the two runs.
            let (mut a32, mut a16) = (run(Precision::F32, true), run(Precision::F16, true));
            for e in [&mut a32, &mut a16] {
                for _ in 0..6 {
                    e.step_with(true, None).unwrap();
                }
            }
            let watched = if mode == Mode::Vae { "loss" } else { "bce" };
            let first = |o: &Vec<(u64, Vec<(String, f32)>)>| {
                o.iter().map(|(_, v)| v.iter().find(|(n, _)| n == watched).expect("the loss is an output").1 as f64).collect::<Vec<f64>>()
            };
            let (l32, l16) = (first(&a32.wait_outputs().unwrap()), first(&a16.wait_outputs().unwrap()));
            let (drop32, drop16) = (l32[0] - l32[5], l16[0] - l16[5]);
            assert!(
                drop32 > 0.0 && (drop16 - drop32).abs() < 0.2 * drop32,
                "{mode:?}: over five steps the loss fell by {drop32} in f32, {drop16} in f16 ({l32:?} vs {l16:?})"
            );
            let ((m32, v32), (m16, v16)) = (a32.read_moments_async().await.unwrap(), a16.read_moments_async().await.unwrap());
            // The trajectories part after the first step (the discriminator's chaotically), so
            // compare sizes: a scale error would be a factor of 1024 or 1024².
            for (a, b) in m32.iter().zip(&m16).chain(v32.iter().zip(&v16)) {
                let ratio = norm(&f64s(&b.2, 1.0)) / norm(&f64s(&a.2, 1.0)).max(1e-30);
                assert!((0.5..2.0).contains(&ratio), "{mode:?} {}: Adam's moments are {ratio:.3e}× those of the f32 run", a.0);
            }
        }
    }
}
