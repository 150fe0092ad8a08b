//! KL(N(μ, σ²) ‖ N(0, I)): per sample, batch mean, backward vs twins and finite differences.

use vaegan::kernels::kl;
use vaegan::reference;

use crate::common::*;

/// exp in f32 and a sum over the latent dimension: relative error ~1e-6.
const TOL: f64 = 1e-5;

gpu_test! {
    async fn kl_forward_and_backward() {
        let mut rng = rng("kl_forward_and_backward");
        for (batch, latent) in [(1, 1), (7, 20), (64, 32), (1000, 3), (5000, 2)] {
            let n = batch * latent;
            let mu = as_f32(&randn(&mut rng, n));
            let lv = as_f32(&uniform(&mut rng, n, -3.0, 2.0));
            let g = as_f32(&uniform(&mut rng, 1, 0.5, 2.0))[0];
            let scale = (1.0 / batch as f32) as f64;
            let (mub, lvb) = (upload(&mu), upload(&lv));
            let (per, mean, dmu, dlv) = (poisoned(batch), poisoned(1), poisoned(n), poisoned(n));
            let mut launches = vec![kl::kl_per_sample(gpu(), batch, latent, &mub, &lvb, &per).unwrap()];
            launches.extend(kl::kl_mean(gpu(), batch, latent, &mub, &lvb, &mean, &scratch(kl::kl_mean_scratch_lens(batch))).unwrap());
            launches.push(kl::kl_backward(gpu(), batch, latent, &mub, &lvb, &upload(&[g]), scale as f32, &dmu, &dlv).unwrap());
            gpu().run(&launches).unwrap();
            let what = format!("kl {batch}x{latent}");
            // 1 + logσ² − μ² − exp(logσ²) cancels near μ = 0, logσ² = 0 (a single element
            // drawn there is a KL of ~1e-3 from terms of ~1): compare against the same sums
            // of the terms' sizes.
            let sizes: Vec<f64> = (0..batch)
                .map(|r| 0.5 * (0..latent).map(|j| 1.0 + lv[r * latent + j].abs() + mu[r * latent + j].powi(2) + lv[r * latent + j].exp()).sum::<f64>())
                .collect();
            let per_want = reference::kl::kl_per_sample(batch, latent, &mu, &lv);
            assert_close_mag(&format!("{what} per sample"), &download(&per).await, &per_want, &sizes, TOL);
            let mean_size = sizes.iter().sum::<f64>() / batch as f64;
            assert_close_mag(&format!("{what} mean"), &download(&mean).await, &[reference::kl::kl_mean(batch, latent, &mu, &lv)], &[mean_size], TOL);
            let (wdmu, wdlv) = reference::kl::kl_backward(&mu, &lv, g, scale);
            let (gdmu, gdlv) = (download(&dmu).await, download(&dlv).await);
            assert_close(&format!("{what} dμ"), &gdmu, &wdmu, TOL);
            // exp(logσ²) − 1 cancels near logσ² = 0: compare against g·scale·½(exp(logσ²) + 1).
            let magnitude: Vec<f64> = lv.iter().map(|l| (g * scale * 0.5 * (l.exp() + 1.0)).abs()).collect();
            assert_close_mag(&format!("{what} dlogσ²"), &gdlv, &wdlv, &magnitude, TOL);
            let loss = |m: &[f64], l: &[f64]| g * reference::kl::kl_mean(batch, latent, m, l);
            check_grad(&format!("{what} dμ"), &mut rng, |m| loss(m, &lv), &mu, &gdmu);
            check_grad(&format!("{what} dlogσ²"), &mut rng, |l| loss(&mu, l), &lv, &gdlv);
        }
    }
}
