//! MMD² under the inverse multiquadric kernel: forward and backward against their twins and
//! the backward against finite differences, on codes near the prior (MMD² ≈ 0: the three
//! sums cancel) and far from it.

use vaegan::kernels::mmd;
use vaegan::reference;

use crate::common::*;

/// f32 error of one share or one gradient element, relative to the size of its terms: each
/// kernel value carries the error of a d-term sum of squares and a division (~d ulp), and a
/// share sums n of them (~n ulp more): 4·(n + d)·2⁻²³ covers both with room.
fn tol(n: usize, d: usize) -> f64 {
    4.0 * (n + d) as f64 * f32::EPSILON as f64
}

gpu_test! {
    async fn mmd_forward_and_backward() {
        let mut rng = rng("mmd_forward_and_backward");
        for (n, d) in [(2, 1), (3, 5), (64, 32), (7, 128), (300, 3)] {
            for (offset, spread) in [(0.0, 1.0), (1.5, 0.2)] {
                let prior = as_f32(&randn(&mut rng, n * d));
                let z = as_f32(&randn(&mut rng, n * d).iter().map(|v| offset + spread * v).collect::<Vec<_>>());
                let g = as_f32(&uniform(&mut rng, 1, 0.5, 2.0))[0];
                let c = mmd::kernel_scale(d) as f64;
                let (zb, pb) = (upload(&z), upload(&prior));
                let (shares, loss, dz) = (poisoned(n), poisoned(1), poisoned(n * d));
                let mut launches = vec![mmd::mmd_rows(gpu(), n, d, &zb, &pb, &shares).unwrap()];
                launches.extend(mmd::mmd(gpu(), n, d, &zb, &pb, &loss, &scratch(mmd::mmd_scratch_lens(n))).unwrap());
                launches.extend(mmd::mmd_backward(gpu(), n, d, &zb, &pb, &upload(&[g]), &dz, &scratch(mmd::mmd_backward_scratch_lens(n))).unwrap());
                gpu().run(&launches).unwrap();
                let what = format!("mmd {n}x{d}, codes at {offset} ± {spread}");
                // The size of each share's terms: every kernel value is in (0, 1], so
                // a·2(n − 1) + (2/n²)·n = 4/n bounds their absolute sum.
                let sizes = vec![4.0 / n as f64; n];
                let tol = tol(n, d);
                assert_close_mag(&format!("{what} shares"), &download(&shares).await, &reference::mmd::mmd_rows(n, d, &z, &prior, c), &sizes, tol);
                let total_size = sizes.iter().sum::<f64>();
                assert_close_mag(&format!("{what} MMD²"), &download(&loss).await, &[reference::mmd::mmd(n, d, &z, &prior, c)], &[total_size], tol);
                let got = download(&dz).await;
                let want = reference::mmd::mmd_backward(n, d, &z, &prior, c, g);
                // Each element's terms: |w|·|difference| summed over j, with |w| ≤ 4aC/C²
                // (a = 1/(n(n − 1)) ≥ 1/n² bounds both weights).
                let slope = 4.0 * g.abs() / (c * (n * (n - 1)) as f64);
                let magnitude: Vec<f64> = (0..n * d).map(|e| slope * (0..n).map(|j| (z[e] - z[j * d + e % d]).abs() + (z[e] - prior[j * d + e % d]).abs()).sum::<f64>()).collect();
                assert_close_mag(&format!("{what} dz"), &got, &want, &magnitude, tol);
                check_grad(&format!("{what} dz"), &mut rng, |zz| g * reference::mmd::mmd(n, d, zz, &prior, c), &z, &got);
            }
        }
    }
}

gpu_test! {
    async fn mmd_refuses_one_row_and_mismatched_shapes() {
        let (one, two) = (upload(&[0.5; 3]), upload(&[0.5; 6]));
        let err = mmd::mmd_rows(gpu(), 1, 3, &one, &one, &poisoned(1)).err().expect("one row accepted");
        assert!(err.to_string().contains("at least 2 rows"), "{err}");
        let err = mmd::mmd_rows(gpu(), 2, 3, &two, &one, &poisoned(2)).err().expect("a short prior accepted");
        assert!(err.to_string().contains("prior draws") && err.to_string().contains("expected 6"), "{err}");
        let err = mmd::mmd_backward(gpu(), 2, 3, &two, &two, &upload(&[1.0]), &poisoned(6), &scratch(vec![7])).err().expect("a short scratch accepted");
        assert!(err.to_string().contains("needs 8"), "{err}");
    }
}
