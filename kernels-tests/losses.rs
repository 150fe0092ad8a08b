//! losses: BCE on probabilities and on logits, squared error; forward and backward vs
//! twins and finite differences.

use vaegan::kernels::losses;
use vaegan::reference;

use rand::Rng;

use crate::common::*;

/// f32 log/exp per element and a tree sum: relative error ~1e-6.
const TOL: f64 = 1e-5;
const SIZES: [usize; 4] = [1, 100, 64 * 784, 4097];

gpu_test! {
    async fn bce_prob_forward_backward() {
        let mut rng = rng("bce_prob_forward_backward");
        for n in SIZES {
            // Away from the clamp at 1e-7, where the loss has a kink.
            let p = as_f32(&uniform(&mut rng, n, 0.01, 0.99));
            let t = as_f32(&uniform(&mut rng, n, 0.0, 1.0));
            let (g, scale) = (1.5, 1.0 / 64.0);
            let (pb, tb) = (upload(&p), upload(&t));
            let (loss, dp) = (poisoned(1), poisoned(n));
            let mut ls = losses::bce_prob(gpu(), &pb, &tb, scale as f32, &loss, &scratch(losses::scratch_lens(n))).unwrap();
            ls.push(losses::bce_prob_backward(gpu(), &pb, &tb, &upload(&[g]), scale as f32, &dp).unwrap());
            gpu().run(&ls).unwrap();
            assert_close(&format!("bce_prob n={n}"), &download(&loss).await, &[reference::losses::bce_prob(&p, &t, scale)], TOL);
            let got = download(&dp).await;
            assert_close(&format!("bce_prob_backward n={n}"), &got, &reference::losses::bce_prob_backward(&p, &t, g, scale), TOL);
            check_grad(&format!("bce_prob n={n}"), &mut rng, |p| g * reference::losses::bce_prob(p, &t, scale), &p, &got);
        }
    }
}

gpu_test! {
    async fn bce_prob_clamps_saturated_probabilities() {
        let p = [0.0, 1.0, 0.0, 1.0];
        let t = [1.0, 0.0, 0.0, 1.0];
        let loss = poisoned(1);
        let ls = losses::bce_prob(gpu(), &upload(&p), &upload(&t), 1.0, &loss, &scratch(losses::scratch_lens(4))).unwrap();
        gpu().run(&ls).unwrap();
        // Two confident mistakes: p = 0 is clamped to 1e-7 and p = 1 to 1 − 1e-7, which is
        // 1 − 2⁻²³ in f32; the confident right answers cost (almost) nothing. Large and finite.
        let hi = (1.0f32 - 1e-7f32) as f64;
        let want = -(1e-7f32 as f64).ln() - (1.0 - hi).ln();
        let got = download(&loss).await[0];
        assert!(got.is_finite() && (got - want).abs() < 1e-3 * want, "clamped BCE {got}, expected {want}");
    }
}

gpu_test! {
    async fn bce_logits_forward_backward_and_stability() {
        let mut rng = rng("bce_logits_forward_backward_and_stability");
        for n in SIZES {
            let mut l = as_f32(&uniform(&mut rng, n, -8.0, 8.0));
            let t = as_f32(&uniform(&mut rng, n, 0.0, 1.0));
            if n > 2 {
                l[0] = 90.0; // exp(90) overflows f32: the stable form must not
                l[1] = -90.0;
            }
            let (g, scale) = (-0.7, 0.5);
            let (lb, tb) = (upload(&l), upload(&t));
            let (loss, dl) = (poisoned(1), poisoned(n));
            let mut ls = losses::bce_logits(gpu(), &lb, &tb, scale as f32, &loss, &scratch(losses::scratch_lens(n))).unwrap();
            ls.push(losses::bce_logits_backward(gpu(), &lb, &tb, &upload(&[g]), scale as f32, &dl).unwrap());
            gpu().run(&ls).unwrap();
            // max(l, 0) − l·t cancels where t is near the target σ(l) picks (l = 8, t = 0.999:
            // a loss of ~1e-2 from terms of 8): compare against the sum of the terms' sizes.
            let size = scale * l.iter().zip(&t).map(|(&l, &t)| l.max(0.0) + (l * t).abs() + (-l.abs()).exp().ln_1p()).sum::<f64>();
            assert_close_mag(&format!("bce_logits n={n}"), &download(&loss).await, &[reference::losses::bce_logits(&l, &t, scale)], &[size], TOL);
            let got = download(&dl).await;
            // σ(l) − t cancels where the target is near the probability: compare against the
            // size of its terms, |g·scale|·(σ(l) + t).
            let magnitude: Vec<f64> = l.iter().zip(&t).map(|(&l, &t)| (g * scale).abs() * (1.0 / (1.0 + (-l).exp()) + t)).collect();
            assert_close_mag(&format!("bce_logits_backward n={n}"), &got, &reference::losses::bce_logits_backward(&l, &t, g, scale), &magnitude, TOL);
            check_grad(&format!("bce_logits n={n}"), &mut rng, |l| g * reference::losses::bce_logits(l, &t, scale), &l, &got);
        }
    }
}

gpu_test! {
    async fn sq_err_forward_backward() {
        let mut rng = rng("sq_err_forward_backward");
        for n in SIZES {
            let a = as_f32(&randn(&mut rng, n));
            let b = as_f32(&randn(&mut rng, n));
            let (g, scale) = (2.0, 0.5 / 64.0);
            let (ab, bb) = (upload(&a), upload(&b));
            let (loss, da, db) = (poisoned(1), poisoned(n), poisoned(n));
            let mut ls = losses::sq_err(gpu(), &ab, &bb, scale as f32, &loss, &scratch(losses::scratch_lens(n))).unwrap();
            ls.push(losses::sq_err_backward(gpu(), &ab, &bb, &upload(&[g]), scale as f32, &da, &db).unwrap());
            gpu().run(&ls).unwrap();
            assert_close(&format!("sq_err n={n}"), &download(&loss).await, &[reference::losses::sq_err(&a, &b, scale)], TOL);
            let (wa, wb) = reference::losses::sq_err_backward(&a, &b, g, scale);
            let (ga, gb) = (download(&da).await, download(&db).await);
            assert_close(&format!("sq_err_backward da n={n}"), &ga, &wa, TOL);
            assert_close(&format!("sq_err_backward db n={n}"), &gb, &wb, TOL);
            check_grad(&format!("sq_err da n={n}"), &mut rng, |a| g * reference::losses::sq_err(a, &b, scale), &a, &ga);
            check_grad(&format!("sq_err db n={n}"), &mut rng, |b| g * reference::losses::sq_err(&a, b, scale), &b, &gb);
        }
    }
}

gpu_test! {
    /// Softmax cross-entropy: one-hot labels and soft targets, including rows whose logits
    /// would overflow exp without the row maximum subtracted.
    async fn softmax_ce_forward_backward() {
        let mut rng = rng("softmax_ce_forward_backward");
        for (rows, cols) in [(1, 1), (1, 10), (7, 3), (128, 10), (300, 13)] {
            let mut l = as_f32(&uniform(&mut rng, rows * cols, -6.0, 6.0));
            if rows * cols > 4 {
                l[0] = 95.0; // exp(95) overflows f32
            }
            let mut t = vec![0.0; rows * cols];
            for r in 0..rows {
                if r % 3 == 2 {
                    // A soft target row.
                    let w = uniform(&mut rng, cols, 0.0, 1.0);
                    let s: f64 = w.iter().sum();
                    for j in 0..cols {
                        t[r * cols + j] = (w[j] / s) as f32 as f64;
                    }
                } else {
                    t[r * cols + rng.random_range(0..cols)] = 1.0;
                }
            }
            let (g, scale) = (1.3, 1.0 / rows as f64);
            let (lb, tb) = (upload(&l), upload(&t));
            let (loss, dl) = (poisoned(1), poisoned(rows * cols));
            let mut ls = losses::softmax_ce(gpu(), rows, cols, &lb, &tb, scale as f32, &loss, &scratch(losses::softmax_ce_scratch_lens(rows))).unwrap();
            ls.push(losses::softmax_ce_backward(gpu(), rows, cols, &lb, &tb, &upload(&[g]), scale as f32, &dl).unwrap());
            gpu().run(&ls).unwrap();
            let what = format!("softmax_ce {rows}x{cols}");
            // log Σ exp − l_target cancels when the target's logit dominates its row: compare
            // against the terms' sizes.
            let size = scale
                * l.chunks(cols).zip(t.chunks(cols)).map(|(lr, tr)| tr.iter().sum::<f64>() * (lr.iter().fold(f64::MIN, |a, &b| a.max(b)).abs() + (cols as f64).ln()) + lr.iter().zip(tr).map(|(a, b)| (a * b).abs()).sum::<f64>()).sum::<f64>();
            assert_close_mag(&what, &download(&loss).await, &[reference::losses::softmax_ce(cols, &l, &t, scale)], &[size], TOL);
            let got = download(&dl).await;
            // Gradients are differences of probabilities: bound by their magnitude g·scale·(p + t).
            let want = reference::losses::softmax_ce_backward(cols, &l, &t, g, scale);
            let magnitude: Vec<f64> = want.iter().zip(&t).map(|(w, t)| w.abs() + (g * scale * t).abs()).collect();
            assert_close_mag(&format!("{what} backward"), &got, &want, &magnitude, TOL);
            check_grad(&what, &mut rng, |l| g * reference::losses::softmax_ce(cols, l, &t, scale), &l, &got);
        }
    }
}
