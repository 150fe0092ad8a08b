//! pool: global max pooling over NHWC positions and its backward, against the twins. Both
//! are exact (a maximum selects one input, the backward copies dy or writes 0), so GPU and
//! twin must agree bit for bit — ties included, where the first position wins.

use vaegan::kernels::pool;
use vaegan::reference;

use crate::common::*;

gpu_test! {
    async fn position_max_and_its_backward_match_twin_exactly() {
        let mut rng = rng("position_max_and_its_backward_match_twin_exactly");
        // Batch 1, one position, one channel, odd sizes, more invocations than a workgroup.
        for (rows, positions, channels) in [(1, 1, 1), (1, 5, 3), (3, 7, 1), (2, 64, 128), (5, 9, 67)] {
            let mut x = as_f32(&randn(&mut rng, rows * positions * channels));
            // Ties: in row 0, channel 0 takes its maximum at two positions (the first wins).
            if positions > 2 {
                let top = (0..positions).map(|q| x[q * channels]).fold(f64::MIN, f64::max) + 1.0;
                x[channels] = top;
                x[(positions - 1) * channels] = top;
                x = as_f32(&x);
            }
            let dy = as_f32(&randn(&mut rng, rows * channels));
            let (y, dx) = (poisoned(rows * channels), poisoned(rows * positions * channels));
            let (xb, dyb) = (upload(&x), upload(&dy));
            let launches = [
                pool::position_max(gpu(), rows, positions, channels, &xb, &y).unwrap(),
                pool::position_max_backward(gpu(), rows, positions, channels, &xb, &dyb, &dx).unwrap(),
            ];
            gpu().run(&launches).unwrap();
            let what = format!("{rows}x{positions}x{channels}");
            assert_eq!(download(&y).await, reference::pool::position_max(&x, rows, positions, channels), "position_max {what}");
            let want = reference::pool::position_max_backward(&x, &dy, rows, positions, channels);
            assert_eq!(download(&dx).await, want, "position_max_backward {what}");
            if positions > 2 {
                assert_eq!((want[channels], want[(positions - 1) * channels]), (dy[0], 0.0), "{what}: the first maximum takes the gradient");
            }
        }
    }
}

gpu_test! {
    async fn position_max_refuses_mismatched_buffers() {
        let err = pool::position_max(gpu(), 2, 3, 4, &upload(&[0.0; 24]), &poisoned(6)).err().expect("a 6-element output for 2x4");
        assert!(err.to_string().contains("y (2x4) has 6 elements, expected 8"), "{err}");
        let err = pool::position_max_backward(gpu(), 2, 3, 4, &upload(&[0.0; 24]), &upload(&[0.0; 8]), &poisoned(23)).err().expect("a short dx");
        assert!(err.to_string().contains("dx (2x3x4) has 23 elements, expected 24"), "{err}");
    }
}
