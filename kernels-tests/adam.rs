//! Adam: several steps against the twin, with and without decoupled weight decay.

use vaegan::kernels::adam;
use vaegan::reference;
use vaegan::types::AdamParams;

use crate::common::*;

/// A handful of f32 updates: relative error ~1e-6 on the parameters and moments.
const TOL: f64 = 1e-5;

gpu_test! {
    async fn adam_steps_match_twin() {
        let mut rng = rng("adam_steps_match_twin");
        for n in [1, 1000, 100_003] {
            // The third case feeds gradients 1024× too large with grad_scale undoing it, as the
            // f16 step does.
            for (weight_decay, grad_scale) in [(0.0, 1.0), (0.01, 1.0), (0.01, 1.0 / 1024.0)] {
                let hp = AdamParams { weight_decay, grad_scale, ..AdamParams::new(1e-2) };
                let mut p = as_f32(&randn(&mut rng, n));
                let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
                // m is a running sum of gradients of either sign and may cancel: its f32 error
                // is relative to the same sum of their sizes.
                let mut m_size = vec![0.0; n];
                // So may the parameters: p₀ − Σ lr·update, relative to |p₀| + Σ |lr·update|.
                let mut p_size: Vec<f64> = p.iter().map(|x| x.abs()).collect();
                let (pb, mb, vb) = (upload(&p), upload(&m), upload(&v));
                let grad = upload(&vec![0.0; n]);
                let launch = adam::adam(gpu(), hp, &grad, &pb, &mb, &vb).unwrap();
                for step in 1..=5 {
                    let g: Vec<f64> = as_f32(&randn(&mut rng, n)).iter().map(|x| x / grad_scale as f64).collect();
                    gpu().write_f32(&grad, &g.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
                    let hp = AdamParams { step, ..hp };
                    adam::set_params(gpu(), &launch, n, hp);
                    gpu().run([&launch]).unwrap();
                    let before = p.clone();
                    reference::adam::adam(&hp, &g, &mut p, &mut m, &mut v);
                    p_size.iter_mut().zip(p.iter().zip(&before)).for_each(|(s, (a, b))| *s += (a - b).abs());
                    let b1 = hp.beta1 as f64;
                    m_size.iter_mut().zip(&g).for_each(|(s, g)| *s = b1 * *s + (1.0 - b1) * (g * grad_scale as f64).abs());
                }
                let what = format!("adam n={n} wd={weight_decay} grad_scale={grad_scale}");
                assert_close_mag(&format!("{what} params"), &download(&pb).await, &p, &p_size, TOL);
                assert_close_mag(&format!("{what} m"), &download(&mb).await, &m, &m_size, TOL);
                assert_close(&format!("{what} v"), &download(&vb).await, &v, TOL);
            }
        }
    }
}

gpu_test! {
    async fn adam_rejects_step_zero_and_mismatched_buffers() {
        let b = upload(&[0.0; 4]);
        let err = adam::adam(gpu(), AdamParams { step: 0, ..AdamParams::new(1e-3) }, &b, &b, &b, &b).err().expect("step 0");
        assert!(err.to_string().contains("step counts from 1"), "{err}");
        let short = upload(&[0.0; 3]);
        let err = adam::adam(gpu(), AdamParams::new(1e-3), &short, &b, &b, &b).err().expect("grad too short");
        assert!(err.to_string().contains("grad has 3 elements, expected 4"), "{err}");
    }
}
