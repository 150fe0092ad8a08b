//! reduce: sum and mean to a scalar for any length (one and two passes), determinism,
//! column and row sums.

use vaegan::kernels::reduce;
use vaegan::reference;

use crate::common::*;

/// A sum of n f32 values in a tree: error ≲ log₂(n)·2⁻²⁴·Σ|x|; we bound it relative to
/// Σ|x| (not |Σx|, which may cancel to nearly zero).
const TOL: f64 = 1e-5;

gpu_test! {
    async fn sum_and_mean_match_twin_for_any_length() {
        let mut rng = rng("sum_and_mean_match_twin_for_any_length");
        for n in [1, 2, 255, 256, 257, 4096, 4097, 100_003, 1_000_003] {
            let x = as_f32(&randn(&mut rng, n));
            let xb = upload(&x);
            let (s, m) = (poisoned(1), poisoned(1));
            let mut launches = reduce::sum(gpu(), &xb, &s, &poisoned(reduce::scratch_len(n))).unwrap();
            launches.extend(reduce::mean(gpu(), &xb, &m, &poisoned(reduce::scratch_len(n))).unwrap());
            gpu().run(&launches).unwrap();
            let abs: f64 = x.iter().map(|v| v.abs()).sum();
            let (gs, gm) = (download(&s).await[0], download(&m).await[0]);
            let (ws, wm) = (reference::reduce::sum(&x), reference::reduce::mean(&x));
            assert!((gs - ws).abs() <= TOL * abs, "sum n={n}: gpu {gs} vs {ws}");
            assert!((gm - wm).abs() <= TOL * abs / n as f64, "mean n={n}: gpu {gm} vs {wm}");
        }
    }
}

gpu_test! {
    async fn sums_are_bit_reproducible() {
        let mut rng = rng("sums_are_bit_reproducible");
        let x = upload(&randn(&mut rng, 300_001));
        let first = poisoned(1);
        let second = poisoned(1);
        let mut launches = reduce::sum(gpu(), &x, &first, &poisoned(reduce::scratch_len(300_001))).unwrap();
        launches.extend(reduce::sum(gpu(), &x, &second, &poisoned(reduce::scratch_len(300_001))).unwrap());
        gpu().run(&launches).unwrap();
        assert_eq!(download(&first).await[0].to_bits(), download(&second).await[0].to_bits());
    }
}

gpu_test! {
    async fn column_and_row_sums_match_twin() {
        let mut rng = rng("column_and_row_sums_match_twin");
        for (rows, cols) in [(1, 1), (7, 13), (1000, 3), (64, 512), (3, 1000), (1, 70)] {
            let x = as_f32(&randn(&mut rng, rows * cols));
            let xb = upload(&x);
            let (cs, rs) = (poisoned(cols), poisoned(rows));
            let launches = [reduce::column_sum(gpu(), &xb, rows, cols, &cs).unwrap(), reduce::row_sum(gpu(), &xb, rows, cols, &rs).unwrap()];
            gpu().run(&launches).unwrap();
            let ax = abs(&x);
            let (want_c, mag_c) = (reference::reduce::column_sum(&x, rows, cols), reference::reduce::column_sum(&ax, rows, cols));
            let (want_r, mag_r) = (reference::reduce::row_sum(&x, rows, cols), reference::reduce::row_sum(&ax, rows, cols));
            assert_close_mag(&format!("column_sum {rows}x{cols}"), &download(&cs).await, &want_c, &mag_c, TOL);
            assert_close_mag(&format!("row_sum {rows}x{cols}"), &download(&rs).await, &want_r, &mag_r, TOL);
        }
    }
}

gpu_test! {
    async fn scalar_output_must_have_one_element() {
        let err = reduce::sum(gpu(), &upload(&[1.0; 5]), &poisoned(2), &poisoned(1)).err().expect("two-element output");
        assert!(err.to_string().contains("output has 2 elements, expected 1"), "{err}");
    }
}

gpu_test! {
    /// The caller owns a reduction's scratch (so that a graph's planner can count it): too
    /// little is refused with the size needed.
    async fn too_little_scratch_is_refused() {
        let n = 3 * reduce::CHUNK as usize + 1;
        assert_eq!(reduce::scratch_len(n), 4);
        let err = reduce::sum(gpu(), &upload(&vec![1.0; n]), &poisoned(1), &poisoned(3)).err().expect("three partials for four chunks");
        assert!(err.to_string().contains("scratch has 3 elements, needs 4"), "{err}");
    }
}
