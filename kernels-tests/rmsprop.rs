//! RMSProp: several steps against the twin, with and without weight decay and a loss scale.

use vaegan::kernels::rmsprop;
use vaegan::reference;
use vaegan::types::RmsPropParams;

use crate::common::*;

/// A handful of f32 updates of size ~lr: relative error ~1e-6 on parameters and state.
const TOL: f64 = 1e-5;

gpu_test! {
    async fn rmsprop_steps_match_twin() {
        let mut rng = rng("rmsprop_steps_match_twin");
        for n in [1, 1000, 100_003] {
            for (weight_decay, grad_scale) in [(0.0, 1.0), (1e-2, 1.0), (1e-5, 1.0 / 1024.0)] {
                let hp = RmsPropParams { weight_decay, grad_scale, ..RmsPropParams::new(3e-3) };
                let mut p = as_f32(&randn(&mut rng, n));
                let mut v = vec![0.0; n];
                // p₀ − Σ lr·update may cancel: its f32 error is relative to |p₀| + Σ |lr·update|.
                let mut p_size: Vec<f64> = p.iter().map(|x| x.abs()).collect();
                let (pb, vb) = (upload(&p), upload(&v));
                // NaN-poisoned gradient buffer, overwritten before every step.
                let grad = upload(&vec![f64::NAN; n]);
                let launch = rmsprop::rmsprop(gpu(), hp, &grad, &pb, &vb).unwrap();
                for step in 0..5 {
                    let g: Vec<f64> = as_f32(&randn(&mut rng, n)).iter().map(|x| x / grad_scale as f64).collect();
                    gpu().write_f32(&grad, &g.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
                    // The rate changes between steps as the per-epoch decay makes it.
                    let hp = RmsPropParams { lr: hp.lr * 0.75f32.powi(step), ..hp };
                    rmsprop::set_params(gpu(), &launch, n, hp);
                    gpu().run([&launch]).unwrap();
                    let before = p.clone();
                    reference::rmsprop::rmsprop(&hp, &g, &mut p, &mut v);
                    p_size.iter_mut().zip(p.iter().zip(&before)).for_each(|(s, (a, b))| *s += (a - b).abs());
                }
                let what = format!("rmsprop n={n} wd={weight_decay} grad_scale={grad_scale}");
                assert_close_mag(&format!("{what} params"), &download(&pb).await, &p, &p_size, TOL);
                assert_close(&format!("{what} v"), &download(&vb).await, &v, TOL);
            }
        }
    }
}

gpu_test! {
    async fn rmsprop_rejects_bad_rho_and_mismatched_buffers() {
        let b = upload(&[0.0; 4]);
        let err = rmsprop::rmsprop(gpu(), RmsPropParams { rho: 1.0, ..RmsPropParams::new(1e-3) }, &b, &b, &b).err().expect("rho 1");
        assert!(err.to_string().contains("rho 1 must be in [0, 1)"), "{err}");
        let short = upload(&[0.0; 3]);
        let err = rmsprop::rmsprop(gpu(), RmsPropParams::new(1e-3), &b, &b, &short).err().expect("v too short");
        assert!(err.to_string().contains("v has 3 elements, expected 4"), "{err}");
    }
}
