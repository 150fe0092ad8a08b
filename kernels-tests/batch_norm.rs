//! batch_norm against its CPU twin on fresh random inputs with NaN-poisoned outputs:
//! rows×channels from a single row (batch 1 of a 1×1 image) to a 64×64 image's worth,
//! channel counts that are not powers of two, inputs of mean 1e4 and spread 1 (where
//! E[x²] − E[x]² would cancel in f32), each case with another fused activation; the
//! backward against the twin and, for the smooth activations (ReLU's kink moves with the
//! batch statistics, so no input can be kept away from it), against central finite
//! differences of the twin's forward; the running statistics after several steps;
//! evaluation mode; the fused layer's bits against batch norm then the activation kernel.
//!
//! Tolerances: forward and backward ‖gpu − ref‖/‖ref‖ ≤ 1e-4 (f32 sums over up to 4096
//! rows); statistics of the offset inputs within 1e-3 relative (f32 holds 1e4 + x to ~1e-3).

use vaegan::kernels::batch_norm::{self, BatchNormSettings};
use vaegan::kernels::elementwise;
use vaegan::reference;
use vaegan::types::Act;

use crate::common::*;

const TOL: f64 = 1e-4;

struct Case {
    rows: usize,
    channels: usize,
    offset: f64,
    act: Act,
}

fn cases() -> Vec<Case> {
    vec![
        Case { rows: 1, channels: 1, offset: 0.0, act: Act::None },
        Case { rows: 1, channels: 5, offset: 0.0, act: Act::Relu },
        Case { rows: 7, channels: 3, offset: 0.0, act: Act::LeakyRelu(0.2) },
        Case { rows: 35, channels: 5, offset: 0.0, act: Act::Tanh },
        Case { rows: 4096, channels: 3, offset: 0.0, act: Act::Sigmoid },
        Case { rows: 100, channels: 64, offset: 0.0, act: Act::Relu },
        Case { rows: 45, channels: 6, offset: 0.0, act: Act::None },
        // The normalisation is checked from y itself: no activation.
        Case { rows: 300, channels: 7, offset: 1e4, act: Act::None },
    ]
}

/// Finite differences hold where the activation is smooth (see the header).
fn smooth(act: Act) -> bool {
    matches!(act, Act::None | Act::Tanh | Act::Sigmoid)
}

gpu_test! {
    async fn batch_norm_forward_and_running_statistics_match_twin() {
        let mut rng = rng("batch_norm_forward_and_running_statistics_match_twin");
        for Case { rows, channels, offset, act } in cases() {
            let s = BatchNormSettings { eps: 1e-5, momentum: 0.1, act };
            let n = rows * channels;
            let x: Vec<f64> = as_f32(&randn(&mut rng, n).iter().map(|v| v + offset).collect::<Vec<_>>());
            let (gamma, beta) = (as_f32(&uniform(&mut rng, channels, 0.5, 1.5)), as_f32(&randn(&mut rng, channels)));
            let (rm0, rv0) = (as_f32(&randn(&mut rng, channels)), as_f32(&uniform(&mut rng, channels, 0.5, 2.0)));
            let (xb, gb, bb, rm, rv) = (upload(&x), upload(&gamma), upload(&beta), upload(&rm0), upload(&rv0));
            let (mean, invstd, y) = (poisoned(channels), poisoned(channels), poisoned(n));
            // The partials are poisoned too: every one the combine reads must have been written.
            let partials = poisoned(batch_norm::scratch_len(rows, channels));
            let l = batch_norm::batch_norm_forward(gpu(), rows, channels, s, &xb, &gb, &bb, &rm, &rv, &mean, &invstd, &y, &partials).unwrap();
            gpu().run(&l).unwrap();
            let (wy, wmean, winvstd, wrm, wrv) = reference::batch_norm::batch_norm_forward(rows, channels, 1e-5, 0.1, act, &x, &gamma, &beta, (&rm0, &rv0));
            let what = format!("batch_norm+{act} {rows}x{channels} offset {offset}");
            let tol = if offset > 0.0 { 1e-3 } else { TOL };
            assert_close(&format!("{what} y"), &download(&y).await, &wy, tol);
            assert_close(&format!("{what} mean"), &download(&mean).await, &wmean, TOL);
            assert_close(&format!("{what} invstd"), &download(&invstd).await, &winvstd, tol);
            assert_close(&format!("{what} running mean"), &download(&rm).await, &wrm, TOL);
            assert_close(&format!("{what} running var"), &download(&rv).await, &wrv, tol);
            if offset > 0.0 {
                // Normalised despite the offset: per channel, mean ≈ 0 and variance ≈ 1 (γ = 1-ish
                // aside), where a one-pass E[x²] − E[x]² would leave noise of order 1e4²·2⁻²⁴ ≈ 6.
                let (m, inv, _) = reference::batch_norm::batch_norm_stats(
                    rows,
                    channels,
                    1e-5,
                    &download(&y).await.iter().enumerate().map(|(i, v)| (v - beta[i % channels]) / gamma[i % channels]).collect::<Vec<_>>(),
                );
                assert!(m.iter().all(|v| v.abs() < 1e-2), "{what}: means {m:?}");
                assert!(inv.iter().all(|v| (v - 1.0).abs() < 1e-2), "{what}: 1/std {inv:?}");
            }
        }
    }
}

gpu_test! {
    async fn batch_norm_backward_matches_twin_and_finite_differences() {
        let mut rng = rng("batch_norm_backward_matches_twin_and_finite_differences");
        for Case { rows, channels, offset, act } in cases().into_iter().filter(|c| c.rows > 1 && c.rows * c.channels <= 20_000) {
            let s = BatchNormSettings { act, ..BatchNormSettings::default() };
            let n = rows * channels;
            let x: Vec<f64> = as_f32(&randn(&mut rng, n).iter().map(|v| v + offset).collect::<Vec<_>>());
            let (gamma, beta, dy) = (as_f32(&uniform(&mut rng, channels, 0.5, 1.5)), as_f32(&randn(&mut rng, channels)), as_f32(&randn(&mut rng, n)));
            let (xb, gb, bb) = (upload(&x), upload(&gamma), upload(&beta));
            let (rm, rv) = (upload(&vec![0.0; channels]), upload(&vec![1.0; channels]));
            let (mean, invstd, y) = (poisoned(channels), poisoned(channels), poisoned(n));
            let (dx, dgamma, dbeta) = (poisoned(n), poisoned(channels), poisoned(channels));
            let partials = poisoned(batch_norm::scratch_len(rows, channels));
            let mut l = batch_norm::batch_norm_forward(gpu(), rows, channels, s, &xb, &gb, &bb, &rm, &rv, &mean, &invstd, &y, &partials).unwrap();
            l.extend(
                batch_norm::batch_norm_backward(gpu(), rows, channels, act, &xb, Some(&y), &upload(&dy), &gb, &mean, &invstd, &dx, &dgamma, &dbeta, &partials).unwrap(),
            );
            gpu().run(&l).unwrap();
            // The twin reads act' through its own forward's y.
            let wy = reference::batch_norm::batch_norm_forward(rows, channels, 1e-5, 0.1, act, &x, &gamma, &beta, (&vec![0.0; channels], &vec![1.0; channels])).0;
            let (wdx, wdg, wdb) = reference::batch_norm::batch_norm_backward(rows, channels, 1e-5, act, &x, Some(&wy), &dy, &gamma);
            let what = format!("batch_norm+{act} backward {rows}x{channels} offset {offset}");
            let tol = if offset > 0.0 { 1e-3 } else { TOL };
            let (gdx, gdg, gdb) = (download(&dx).await, download(&dgamma).await, download(&dbeta).await);
            assert_close(&format!("{what} dx"), &gdx, &wdx, tol);
            if offset > 0.0 {
                // x̂ = (x − μ)·invstd with μ ≈ 1e4 held in f32 (its rounding alone is ulp/2 =
                // 4.9e-4): every x̂ of a channel shifts by δμ·invstd, so dγ = Σ dy·x̂ carries
                // δμ·Σ dy — relative to |Σ dy| as well as to dγ, which may be smaller
                // (measured 1.4e-3 of dγ alone on Chromium's SwiftShader).
                let sum_dy: Vec<f64> = (0..channels).map(|c| (0..rows).map(|r| dy[r * channels + c]).sum::<f64>().abs()).collect();
                let magnitude: Vec<f64> = wdg.iter().zip(&sum_dy).map(|(g, d)| g.abs() + d).collect();
                assert_close_mag(&format!("{what} dgamma"), &gdg, &wdg, &magnitude, tol);
            } else {
                assert_close(&format!("{what} dgamma"), &gdg, &wdg, tol);
            }
            assert_close(&format!("{what} dbeta"), &gdb, &wdb, TOL);
            if offset == 0.0 && smooth(act) {
                let fwd = |x: &[f64], g: &[f64], b: &[f64]| {
                    reference::batch_norm::batch_norm_forward(rows, channels, 1e-5, 0.1, act, x, g, b, (&vec![0.0; channels], &vec![1.0; channels])).0
                };
                check_grad(&format!("{what} dx"), &mut rng, |x| dot(&dy, &fwd(x, &gamma, &beta)), &x, &gdx);
                check_grad(&format!("{what} dgamma"), &mut rng, |g| dot(&dy, &fwd(&x, g, &beta)), &gamma, &gdg);
                check_grad(&format!("{what} dbeta"), &mut rng, |b| dot(&dy, &fwd(&x, &gamma, b)), &beta, &gdb);
            }
        }
    }
}

gpu_test! {
    async fn batch_norm_eval_uses_running_statistics() {
        let mut rng = rng("batch_norm_eval_uses_running_statistics");
        for (rows, channels, act) in [(1, 1, Act::None), (7, 5, Act::LeakyRelu(0.2)), (256, 3, Act::Tanh), (33, 4, Act::Sigmoid), (9, 2, Act::Relu)] {
            let s = BatchNormSettings { act, ..BatchNormSettings::default() };
            let n = rows * channels;
            let x = as_f32(&randn(&mut rng, n));
            let (gamma, beta) = (as_f32(&uniform(&mut rng, channels, 0.5, 1.5)), as_f32(&randn(&mut rng, channels)));
            let (rm, rv) = (as_f32(&randn(&mut rng, channels)), as_f32(&uniform(&mut rng, channels, 0.5, 2.0)));
            let y = poisoned(n);
            let l = batch_norm::batch_norm_forward_eval(gpu(), rows, channels, s, &upload(&x), &upload(&gamma), &upload(&beta), &upload(&rm), &upload(&rv), &y)
                .unwrap();
            gpu().run([&l]).unwrap();
            let want = reference::batch_norm::batch_norm_forward_eval(channels, 1e-5, act, &x, &gamma, &beta, &rm, &rv);
            assert_close(&format!("batch_norm+{act} eval {rows}x{channels}"), &download(&y).await, &want, TOL);
        }
    }
}

gpu_test! {
    async fn batch_norm_refuses_bad_settings_and_lengths() {
        let c = poisoned(3);
        let err = batch_norm::batch_norm_forward_eval(gpu(), 4, 3, BatchNormSettings { eps: 0.0, ..BatchNormSettings::default() }, &poisoned(12), &c, &c, &c, &c, &poisoned(12))
            .err()
            .unwrap();
        assert!(err.to_string().contains("must be > 0"), "{err}");
        let err = batch_norm::batch_norm_forward_eval(gpu(), 4, 3, BatchNormSettings::default(), &poisoned(11), &c, &c, &c, &c, &poisoned(12)).err().unwrap();
        assert!(err.to_string().contains("x has 11 elements, expected 12"), "{err}");
        // 130 rows are three runs of partials: a scratch sized for two is refused by name.
        let (x, c) = (poisoned(130 * 3), poisoned(3));
        let short = poisoned(batch_norm::scratch_len(128, 3));
        let err = batch_norm::batch_norm_forward(gpu(), 130, 3, BatchNormSettings::default(), &x, &c, &c, &c, &c, &c, &c, &x, &short).err().unwrap();
        assert!(err.to_string().contains("scratch has 12 elements, needs 18"), "{err}");
        let err = batch_norm::batch_norm_backward(gpu(), 130, 3, Act::None, &x, None, &x, &c, &c, &c, &x, &c, &c, &short).err().unwrap();
        assert!(err.to_string().contains("scratch has 12 elements, needs 18"), "{err}");
        // An activation's derivative is read through y: without it, a clear refusal; a y of
        // the wrong length is named.
        let full = poisoned(batch_norm::scratch_len(130, 3));
        let err = batch_norm::batch_norm_backward(gpu(), 130, 3, Act::Tanh, &x, None, &x, &c, &c, &c, &x, &c, &c, &full).err().unwrap();
        assert!(err.to_string().contains("the backward through tanh needs the forward's output y"), "{err}");
        let err = batch_norm::batch_norm_backward(gpu(), 130, 3, Act::Relu, &x, Some(&poisoned(12)), &x, &c, &c, &c, &x, &c, &c, &full).err().unwrap();
        assert!(err.to_string().contains("y has 12 elements, expected 390"), "{err}");
    }
}

gpu_test! {
    async fn fused_activation_gives_the_unfused_bits() {
        // batch_norm+act against batch_norm, then the activation kernel, then (backward) the
        // activation's backward kernel and batch_norm's: the fused passes compute the same
        // expressions (activations.wgsl's functions) in registers.
        let mut rng = rng("fused_activation_gives_the_unfused_bits");
        let (rows, channels) = (150, 5);
        let n = rows * channels;
        for act in [Act::Relu, Act::LeakyRelu(0.2), Act::Tanh, Act::Sigmoid] {
            let (x, dy) = (as_f32(&randn(&mut rng, n)), as_f32(&randn(&mut rng, n)));
            let (gamma, beta) = (as_f32(&uniform(&mut rng, channels, 0.5, 1.5)), as_f32(&randn(&mut rng, channels)));
            let (xb, dyb, gb, bb) = (upload(&x), upload(&dy), upload(&gamma), upload(&beta));
            let run = |fused: bool| {
                let (rm, rv) = (upload(&vec![0.0; channels]), upload(&vec![1.0; channels]));
                let (mean, invstd, pre, y) = (poisoned(channels), poisoned(channels), poisoned(n), poisoned(n));
                let (dpre, dx, dgamma, dbeta) = (poisoned(n), poisoned(n), poisoned(channels), poisoned(channels));
                let partials = poisoned(batch_norm::scratch_len(rows, channels));
                let mut l;
                if fused {
                    let s = BatchNormSettings { act, ..BatchNormSettings::default() };
                    l = batch_norm::batch_norm_forward(gpu(), rows, channels, s, &xb, &gb, &bb, &rm, &rv, &mean, &invstd, &y, &partials).unwrap();
                    l.extend(batch_norm::batch_norm_backward(gpu(), rows, channels, act, &xb, Some(&y), &dyb, &gb, &mean, &invstd, &dx, &dgamma, &dbeta, &partials).unwrap());
                } else {
                    let s = BatchNormSettings::default();
                    l = batch_norm::batch_norm_forward(gpu(), rows, channels, s, &xb, &gb, &bb, &rm, &rv, &mean, &invstd, &pre, &partials).unwrap();
                    l.push(elementwise::activation_forward(gpu(), act, &pre, &y).unwrap());
                    l.push(elementwise::activation_backward(gpu(), act, &y, &dyb, &dpre).unwrap());
                    l.extend(batch_norm::batch_norm_backward(gpu(), rows, channels, Act::None, &xb, None, &dpre, &gb, &mean, &invstd, &dx, &dgamma, &dbeta, &partials).unwrap());
                }
                gpu().run(&l).unwrap();
                (y, dx, dgamma, dbeta)
            };
            let (fused, unfused) = (run(true), run(false));
            for (what, a, b) in [("y", &fused.0, &unfused.0), ("dx", &fused.1, &unfused.1), ("dgamma", &fused.2, &unfused.2), ("dbeta", &fused.3, &unfused.3)] {
                let (a, b) = (download(a).await, download(b).await);
                assert!(a.iter().all(|v| v.is_finite()), "batch_norm+{act} {what}: not finite");
                // Bits, not a tolerance: a compiler may contract a multiply-add differently
                // in the two shaders, which this would show.
                let differ = a.iter().zip(&b).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
                let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
                assert!(differ == 0, "batch_norm+{act} {what}: {differ} of {} values differ from the unfused kernels' (worst by {worst:e})", a.len());
            }
        }
    }
}
