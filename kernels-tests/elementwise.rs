//! elementwise: activations forward and backward vs twins and finite differences; add,
//! scale, fill; a length that needs a two-dimensional grid. Lengths that are multiples of 4
//! (256 among the sizes, and a copy in whole vec4s) run four elements an invocation; the
//! others one.

use vaegan::kernels::elementwise;
use vaegan::reference;
use vaegan::types::Act;

use crate::common::*;

/// One f32 rounding per element (plus the driver's exp/tanh): relative error ≲ 1e-6.
const TOL: f64 = 1e-5;
const ACTS: [Act; 5] = [Act::None, Act::Relu, Act::LeakyRelu(0.2), Act::Tanh, Act::Sigmoid];
const SIZES: [usize; 4] = [1, 7, 256, 70_001];

gpu_test! {
    async fn activation_forward_matches_twin() {
        let mut rng = rng("activation_forward_matches_twin");
        for n in SIZES {
            for act in ACTS {
                // Include large magnitudes: tanh and sigmoid must saturate, not turn into NaN.
                let mut x = as_f32(&randn(&mut rng, n));
                if n > 2 {
                    x[0] = 60.0;
                    x[1] = -60.0;
                }
                let y = poisoned(n);
                let l = elementwise::activation_forward(gpu(), act, &upload(&x), &y).unwrap();
                gpu().run([&l]).unwrap();
                let want = reference::elementwise::activation_forward(act, &x);
                let got = download(&y).await;
                if act == Act::Tanh {
                    // WGSL bounds tanh by sinh/cosh, and sinh by (eˣ − e⁻ˣ)/2: an error relative
                    // to eˣ, not to tanh(x), which near 0 is far smaller (drivers that compute
                    // (e²ˣ − 1)/(e²ˣ + 1) lose the digits there). The terms' size is 1.
                    assert_close_mag(&format!("tanh forward n={n}"), &got, &want, &vec![1.0; n], TOL);
                } else {
                    assert_close(&format!("{} forward n={n}", act.name()), &got, &want, TOL);
                }
            }
        }
    }
}

gpu_test! {
    async fn activation_backward_matches_twin_and_finite_differences() {
        let mut rng = rng("activation_backward_matches_twin_and_finite_differences");
        for n in SIZES {
            for act in ACTS {
                let mut x = as_f32(&randn(&mut rng, n));
                away_from(&mut x, 0.0, 1e-3); // ReLU's kink
                let x = as_f32(&x);
                let dy = as_f32(&randn(&mut rng, n));
                // The backward reads x (ReLU family) or y (tanh, sigmoid), as a layer keeps them.
                let y = reference::elementwise::activation_forward(act, &x);
                let saved = if act.backward_reads_output() { as_f32(&y) } else { x.clone() };
                let dx = poisoned(n);
                let l = elementwise::activation_backward(gpu(), act, &upload(&saved), &upload(&dy), &dx).unwrap();
                gpu().run([&l]).unwrap();
                let got = download(&dx).await;
                let want = reference::elementwise::activation_backward(act, &saved, &dy);
                if act == Act::Tanh {
                    // dy·(1 − y²) cancels as |y| → 1: relative to |dy|·(1 + y²).
                    let size: Vec<f64> = saved.iter().zip(&dy).map(|(y, d)| d.abs() * (1.0 + y * y)).collect();
                    assert_close_mag(&format!("tanh backward n={n}"), &got, &want, &size, TOL);
                } else {
                    assert_close(&format!("{} backward n={n}", act.name()), &got, &want, TOL);
                }
                let loss = |x: &[f64]| dot(&reference::elementwise::activation_forward(act, x), &dy);
                check_grad(&format!("{} backward n={n}", act.name()), &mut rng, loss, &x, &got);
            }
        }
    }
}

gpu_test! {
    async fn add_scale_fill_match_twins() {
        let mut rng = rng("add_scale_fill_match_twins");
        for n in SIZES {
            let a = as_f32(&randn(&mut rng, n));
            let b = as_f32(&randn(&mut rng, n));
            let (sum, scaled, filled) = (poisoned(n), poisoned(n), poisoned(n));
            let (ab, bb) = (upload(&a), upload(&b));
            let launches = [
                elementwise::add(gpu(), &ab, &bb, &sum).unwrap(),
                elementwise::scale(gpu(), -2.5, &ab, &scaled).unwrap(),
                elementwise::fill(gpu(), 0.75, &filled).unwrap(),
            ];
            gpu().run(&launches).unwrap();
            let magnitude = reference::elementwise::add(&abs(&a), &abs(&b));
            assert_close_mag(&format!("add n={n}"), &download(&sum).await, &reference::elementwise::add(&a, &b), &magnitude, TOL);
            assert_close(&format!("scale n={n}"), &download(&scaled).await, &reference::elementwise::scale(-2.5, &a), TOL);
            assert_close(&format!("fill n={n}"), &download(&filled).await, &reference::elementwise::fill(0.75, n), 0.0);
        }
    }
}

gpu_test! {
    /// More elements than 65,535 workgroups of 256 cover: the grid spills into y and every
    /// element must still be written exactly once. (An odd length, one element an
    /// invocation: four an invocation would need a buffer past the binding limit.)
    async fn long_vectors_use_a_two_dimensional_grid() {
        let n = 65_535 * 256 + 1_001;
        let out = poisoned(n);
        let l = elementwise::fill(gpu(), 3.0, &out).unwrap();
        assert!(l.workgroups[1] > 1, "expected a 2-D grid, got {:?}", l.workgroups);
        gpu().run([&l]).unwrap();
        let got = download(&out).await;
        assert!(got.iter().all(|&v| v == 3.0), "an element was not written");
        let doubled = poisoned(n);
        let l = elementwise::scale(gpu(), 2.0, &out, &doubled).unwrap();
        gpu().run([&l]).unwrap();
        assert!(download(&doubled).await.iter().all(|&v| v == 6.0));
    }
}

gpu_test! {
    async fn mismatched_lengths_are_refused() {
        let err = elementwise::add(gpu(), &upload(&[1.0; 3]), &upload(&[1.0; 4]), &poisoned(3)).err().expect("lengths differ");
        assert!(err.to_string().contains("add n=3"), "{err}");
    }
}

gpu_test! {
    async fn axpy_and_copy_match_twins() {
        let mut rng = rng("axpy_and_copy_match_twins");
        for n in SIZES {
            let x = as_f32(&randn(&mut rng, n));
            let y = as_f32(&randn(&mut rng, n));
            let (xb, yb) = (upload(&x), upload(&y));
            let out = poisoned(n);
            let l = elementwise::axpy(gpu(), &xb, -0.5, &yb, &out).unwrap();
            gpu().run([&l]).unwrap();
            let magnitude = reference::elementwise::axpy(&abs(&x), 0.5, &abs(&y));
            assert_close_mag(&format!("axpy n={n}"), &download(&out).await, &reference::elementwise::axpy(&x, -0.5, &y), &magnitude, TOL);
            // Copy the tail half of x into the middle of a poisoned buffer: the rest stays NaN.
            let (half, dst) = (n / 2 + 1, 3);
            let out = poisoned(n + 5);
            let l = elementwise::copy(gpu(), &xb, n - half, &out, dst, half).unwrap();
            gpu().run([&l]).unwrap();
            let got = download(&out).await;
            let mut want = vec![f64::NAN; n + 5];
            reference::elementwise::copy(&x, n - half, &mut want, dst, half);
            assert_close(&format!("copy n={n}"), &got[dst..dst + half], &want[dst..dst + half], 0.0);
            assert!(got[..dst].iter().chain(&got[dst + half..]).all(|v| v.is_nan()), "copy wrote outside its range");
            // Offsets and a length in whole vec4s (the four-at-a-time pipeline where n allows).
            if n % 4 == 0 && n >= 16 {
                let (len, src, dst) = (n - 8, 4, 8);
                let out = poisoned(n + 4);
                let l = elementwise::copy(gpu(), &xb, src, &out, dst, len).unwrap();
                gpu().run([&l]).unwrap();
                let got = download(&out).await;
                let mut want = vec![f64::NAN; n + 4];
                reference::elementwise::copy(&x, src, &mut want, dst, len);
                assert_close(&format!("copy of vec4s n={n}"), &got[dst..dst + len], &want[dst..dst + len], 0.0);
                assert!(got[..dst].iter().chain(&got[dst + len..]).all(|v| v.is_nan()), "copy of vec4s wrote outside its range");
            }
        }
        let err = elementwise::copy(gpu(), &upload(&[1.0; 4]), 2, &poisoned(4), 0, 3).err().expect("source range too long");
        assert!(err.to_string().contains("out of bounds"), "{err}");
    }
}
