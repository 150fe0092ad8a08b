//! The weights' moving average: several updates against the twin, the warm-up's decays,
//! and the refusals.

use vaegan::kernels::ema;
use vaegan::reference;

use crate::common::*;

/// Each update rounds a + (1 − d)(p − a) in f32 (a few ulp of the larger of |a| and |p|);
/// over five updates, ~1e-6 of the parameters' size.
const TOL: f64 = 1e-5;

gpu_test! {
    async fn ema_updates_match_twin() {
        let mut rng = rng("ema_updates_match_twin");
        for n in [1, 1000, 100_003] {
            // 0: the average is the parameters; 0.5 and 0.999: a short and a long memory,
            // each also through the warm-up's first decays.
            for (decay, warm) in [(0.0, false), (0.5, false), (0.999, false), (0.999, true)] {
                let mut avg = as_f32(&randn(&mut rng, n));
                let avg_buf = upload(&avg);
                let param_buf = upload(&vec![0.0; n]);
                let launch = ema::ema(gpu(), decay, &param_buf, &avg_buf).unwrap();
                // The size of the values the average mixes, for the error bound.
                let mut size: Vec<f64> = avg.iter().map(|a| a.abs()).collect();
                for t in 1..=5 {
                    let p = as_f32(&randn(&mut rng, n));
                    gpu().write_f32(&param_buf, &p.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap();
                    let d = if warm { ema::decay_at(decay, t) } else { decay };
                    ema::set_decay(gpu(), &launch, n, d);
                    gpu().run([&launch]).unwrap();
                    reference::ema::ema(d, &p, &mut avg);
                    size.iter_mut().zip(&p).for_each(|(s, p)| *s = s.max(p.abs()));
                }
                let what = format!("ema n={n} decay={decay} warm-up={warm}");
                let got = download(&avg_buf).await;
                if decay == 0.0 {
                    // (1 − 0)·(p − a) + a is p up to one rounding of p − a and one of the sum.
                    assert_close_mag(&what, &got, &avg, &size, 2.0 * f32::EPSILON as f64);
                } else {
                    assert_close_mag(&what, &got, &avg, &size, TOL);
                }
            }
        }
    }
}

gpu_test! {
    async fn ema_refuses_a_decay_outside_0_1_and_mismatched_buffers() {
        let b = upload(&[0.0; 4]);
        for decay in [1.0, -0.1, f32::NAN] {
            let err = ema::ema(gpu(), decay, &b, &b).err().expect("a bad decay");
            assert!(err.to_string().contains("must be in [0, 1)"), "{decay}: {err}");
        }
        let short = upload(&[0.0; 3]);
        let err = ema::ema(gpu(), 0.9, &b, &short).err().expect("avg too short");
        assert!(err.to_string().contains("avg has 3 elements, expected 4"), "{err}");
    }
}

gpu_test! {
    async fn ema_decay_warms_up_to_the_configured_decay() {
        // TensorFlow's rule: (1 + t)/(10 + t) until it reaches the decay.
        assert_eq!(ema::decay_at(0.999, 1), (2.0f64 / 11.0) as f32);
        assert_eq!(ema::decay_at(0.999, 0), ema::decay_at(0.999, 1), "t counts from 1");
        assert_eq!(ema::decay_at(0.999, 90), 0.91);
        assert_eq!(ema::decay_at(0.999, 8_991), 0.999);
        assert_eq!(ema::decay_at(0.999, 1_000_000), 0.999);
        assert_eq!(ema::decay_at(0.5, 1), 0.18181819f32.min(0.5));
        assert_eq!(ema::decay_at(0.1, 100), 0.1);
        let mut last = 0.0;
        for t in 1..20_000 {
            let d = ema::decay_at(0.999, t);
            assert!(d >= last && d <= 0.999, "t={t}: {d} after {last}");
            last = d;
        }
    }
}
