//! reparameterisation: the GPU's Philox bits and normals against the CPU twin, z and its
//! backward against twins and finite differences, and the distribution of ε.

use vaegan::kernels::reparam;
use vaegan::reference;
use vaegan::types::RngKey;

use crate::common::*;

/// One exp in f32: relative error ~1e-6.
const TOL: f64 = 1e-5;

/// Values through Box–Muller: WGSL guarantees cos and sin only to 2^-11 (4.9e-4) absolute
/// on [−π, π] (log to 2^-21 near 1, 3 ULP elsewhere), so ε = r·cos θ with E[r²] = 2 may
/// be off by up to ~7e-4 normwise on a conforming implementation: 1e-3 wherever the
/// implementation is not known (a GPU's driver, the browser: Chromium's SwiftShader measured
/// 1.1e-4). Mesa's CPU drivers (lavapipe, llvmpipe) evaluate them in f32 with polynomial
/// approximations good to a few ULP, measured within ~1e-6 normwise: there 1e-5, so that a
/// precision loss of ten times what they do fails. A wrong formula is off by O(1).
fn trig_tol() -> f64 {
    let info = &gpu().info;
    let mesa_cpu = info.name.contains("llvmpipe") || info.driver.contains("llvmpipe");
    if mesa_cpu && !cfg!(target_arch = "wasm32") {
        1e-5
    } else {
        1e-3
    }
}

async fn draw(n: usize, key: RngKey) -> (Vec<f64>, Vec<u8>) {
    let zeros = upload(&vec![0.0; n]);
    let (z, eps) = (poisoned(n), poisoned(n));
    let l = reparam::reparam_forward(gpu(), key, &zeros, &zeros, &z, &eps).unwrap();
    gpu().run([&l]).unwrap();
    (download(&eps).await, gpu().download_bytes_async(&eps).await.unwrap())
}

gpu_test! {
    async fn philox_known_answers() {
        // Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors).
        assert_eq!(reference::reparam::philox4x32_10([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(reference::reparam::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            reference::reparam::philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}

gpu_test! {
    async fn gpu_normals_match_twin() {
        for (n, key) in [
            (1, RngKey { seed: 0, step: 0, stream: 0 }),
            (7, RngKey { seed: 42, step: 3, stream: 1 }),
            (4099, RngKey { seed: 0xdead_beef_cafe, step: 1 << 33, stream: 7 }),
        ] {
            let (eps, _) = draw(n, key).await;
            assert_close(&format!("ε n={n} {key:?}"), &eps, &reference::reparam::normals(n, key), trig_tol());
        }
    }
}

gpu_test! {
    async fn same_key_same_bits_other_keys_differ() {
        let n = 10_000;
        let key = RngKey { seed: 1234, step: 17, stream: 2 };
        let (_, a) = draw(n, key).await;
        let (_, b) = draw(n, key).await;
        assert_eq!(a, b, "the same (seed, step, stream) must give the same bits");
        for other in [RngKey { step: 18, ..key }, RngKey { stream: 3, ..key }, RngKey { seed: 1235, ..key }] {
            let (_, c) = draw(n, other).await;
            let same = a.chunks(4).zip(c.chunks(4)).filter(|(x, y)| x == y).count();
            assert!(same < 10, "{other:?} repeats {same} of {n} draws of {key:?}");
        }
    }
}

/// Standard normal CDF through erfc (Numerical Recipes' erfcc, fractional error < 1.2e-7).
fn phi(x: f64) -> f64 {
    let z = (-x / std::f64::consts::SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * poly.exp();
    let erfc = if -x / std::f64::consts::SQRT_2 >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

gpu_test! {
    /// Over 2²⁰ draws: mean within 5 standard errors of 0, variance within 1 ± 0.01, and the
    /// Kolmogorov–Smirnov distance to N(0, 1) under 1.95/√n (the 0.1 % critical value).
    async fn normals_are_standard_normal() {
        let n = 1 << 20;
        for key in [RngKey { seed: 2024, step: 0, stream: 0 }, RngKey { seed: 7, step: 123_456, stream: 5 }] {
            let (mut eps, _) = draw(n, key).await;
            let mean = eps.iter().sum::<f64>() / n as f64;
            let var = eps.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / (n - 1) as f64;
            assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "{key:?}: mean {mean}");
            assert!((var - 1.0).abs() < 0.01, "{key:?}: variance {var}");
            eps.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let d = eps
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let f = phi(x);
                    (f - i as f64 / n as f64).abs().max((f - (i + 1) as f64 / n as f64).abs())
                })
                .fold(0.0, f64::max);
            assert!(d < 1.95 / (n as f64).sqrt(), "{key:?}: KS distance {d}");
        }
    }
}

gpu_test! {
    async fn reparam_forward_and_backward_match_twins_and_finite_differences() {
        let mut rng = rng("reparam_forward_and_backward_match_twins_and_finite_differences");
        for n in [1, 5, 64 * 32, 1001] {
            let key = RngKey { seed: 99, step: n as u64, stream: 1 };
            let mu = as_f32(&randn(&mut rng, n));
            let lv = as_f32(&uniform(&mut rng, n, -3.0, 2.0));
            let dz = as_f32(&randn(&mut rng, n));
            let (mub, lvb) = (upload(&mu), upload(&lv));
            let (z, eps, dmu, dlv) = (poisoned(n), poisoned(n), poisoned(n), poisoned(n));
            let fwd = reparam::reparam_forward(gpu(), key, &mub, &lvb, &z, &eps).unwrap();
            let bwd = reparam::reparam_backward(gpu(), &lvb, &eps, &upload(&dz), &dmu, &dlv).unwrap();
            gpu().run([&fwd, &bwd]).unwrap();
            let (wz, weps) = reference::reparam::reparam_forward(key, &mu, &lv);
            // z = μ + ε·σ may cancel: compare against |μ| + |ε·σ|.
            let magnitude: Vec<f64> = mu.iter().zip(&lv).zip(&weps).map(|((m, l), e)| m.abs() + (e * (0.5 * l).exp()).abs()).collect();
            assert_close_mag(&format!("z n={n}"), &download(&z).await, &wz, &magnitude, trig_tol());
            assert_close(&format!("ε n={n}"), &download(&eps).await, &weps, trig_tol());
            let (wdmu, wdlv) = reference::reparam::reparam_backward(&lv, &weps, &dz);
            let (gdmu, gdlv) = (download(&dmu).await, download(&dlv).await);
            assert_close(&format!("dμ n={n}"), &gdmu, &wdmu, TOL);
            assert_close(&format!("dlogσ² n={n}"), &gdlv, &wdlv, trig_tol());
            // ε is fixed by the key, so z is a smooth function of (μ, logσ²).
            check_grad(&format!("dμ n={n}"), &mut rng, |m| dot(&reference::reparam::reparam_forward(key, m, &lv).0, &dz), &mu, &gdmu);
            // dlogσ² carries the GPU's ε: Box–Muller's accuracy.
            check_grad_tol(&format!("dlogσ² n={n}"), &mut rng, |l| dot(&reference::reparam::reparam_forward(key, &mu, l).0, &dz), &lv, &gdlv, trig_tol());
        }
    }
}

gpu_test! {
    async fn set_key_redraws_without_rebuilding() {
        let n = 64;
        let zeros = upload(&vec![0.0; n]);
        let (z, eps) = (poisoned(n), poisoned(n));
        let key = RngKey { seed: 5, step: 1, stream: 0 };
        let l = reparam::reparam_forward(gpu(), key, &zeros, &zeros, &z, &eps).unwrap();
        let next = RngKey { step: 2, ..key };
        reparam::set_key(gpu(), &l, n, next);
        gpu().run([&l]).unwrap();
        assert_close("ε after set_key", &download(&eps).await, &reference::reparam::normals(n, next), trig_tol());
    }
}

gpu_test! {
    async fn randn_draws_the_same_normals_as_reparam() {
        for (n, key) in [(1, RngKey { seed: 3, step: 4, stream: 5 }), (1027, RngKey { seed: 77, step: 1, stream: 9 })] {
            let out = poisoned(n);
            let l = reparam::randn(gpu(), key, &out).unwrap();
            gpu().run([&l]).unwrap();
            let (eps, _) = draw(n, key).await;
            assert_close(&format!("randn n={n}"), &download(&out).await, &eps, 0.0);
            assert_close(&format!("randn n={n} vs twin"), &download(&out).await, &reference::reparam::normals(n, key), trig_tol());
        }
    }
}

gpu_test! {
    /// A replica that holds rows r·n … of a batch split over processes draws exactly those
    /// rows' numbers: the draws from block k on are the single draw's elements 4k … .
    async fn draws_from_a_later_block_are_the_tail_of_one_draw() {
        let key = RngKey { seed: 31, step: 9, stream: 1 };
        let whole = reference::reparam::normals(4 * 37, key);
        for (first_block, n) in [(0u32, 20usize), (5, 60), (12, 7), (36, 4)] {
            let out = poisoned(n);
            let l = reparam::randn(gpu(), key, &out).unwrap();
            reparam::set_key_from(gpu(), &l, n, key, first_block);
            gpu().run([&l]).unwrap();
            let at = 4 * first_block as usize;
            assert_close(&format!("randn from block {first_block}"), &download(&out).await, &whole[at..at + n], trig_tol());
            assert_close(&format!("twin from block {first_block}"), &reference::reparam::normals_from(n, key, first_block), &whole[at..at + n], 0.0);
        }
    }
}
