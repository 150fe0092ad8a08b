//! f16 storage: matmul with f16 operands and f32 accumulation where the adapter has
//! SHADER_F16, and the f32 fallback where it has not.

use half::f16;
use vaegan::kernels::matmul::{matmul, MatmulSpec, Trans};
use vaegan::kernels::Act;
use vaegan::reference;
use vaegan::DType;

use crate::common::*;

fn round_f16(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| f16::from_f64(v).to_f64()).collect()
}

/// Against the exact f16 inputs the only error is f32 accumulation (≤ 1e-5); against the
/// original f32 inputs f16 rounding (2⁻¹¹ relative per operand) dominates: ≤ 1e-2 of
/// ‖|A|·|B|‖, the scale of the products before they cancel (a relative bound on the
/// result itself would fail wherever the sum happens to cancel, e.g. at 1×1×1 with a bias).
#[test]
fn f16_matmul_matches_twin() {
    let g = gpu();
    if std::env::var("VAEGAN_TEST_REQUIRE_F16").is_ok() {
        assert!(g.features.shader_f16, "VAEGAN_TEST_REQUIRE_F16 is set but {} has no SHADER_F16", g.describe());
    }
    let mut rng = rng("f16_matmul_matches_twin");
    for &(m, n, k) in &[(1, 1, 1), (7, 13, 29), (127, 255, 63), (64, 512, 784)] {
        for trans in [Trans::NN, Trans::NT, Trans::TN] {
            let a = randn(&mut rng, m * k);
            let b = randn(&mut rng, k * n);
            let bias = as_f32(&randn(&mut rng, n));
            let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
            let (ab, bb) = (g.upload_half_or_f32("a", &af).unwrap(), g.upload_half_or_f32("b", &bf).unwrap());
            let expected = if g.features.shader_f16 { DType::F16 } else { DType::F32 };
            assert_eq!(ab.dtype, expected, "upload_half_or_f32 must pick f16 exactly when SHADER_F16 is there");
            let c = poisoned(m * n);
            let spec = MatmulSpec::new(m, n, k, trans).act(Act::Relu);
            let l = matmul(g, &spec, &ab, &bb, Some(&upload(&bias)), &c).unwrap();
            g.run([&l]).unwrap();
            let got = download(&c);
            let (ra, rb) = if g.features.shader_f16 { (round_f16(&a), round_f16(&b)) } else { (as_f32(&a), as_f32(&b)) };
            let exact = reference::matmul::matmul(m, n, k, trans, &ra, &rb, Some(&bias), Act::Relu);
            assert_close(&format!("{} vs its storage precision", l.name), &got, &exact, 1e-5);
            let original = reference::matmul::matmul(m, n, k, trans, &a, &b, Some(&bias), Act::Relu);
            let abs = |x: &[f64]| x.iter().map(|v| v.abs()).collect::<Vec<_>>();
            let magnitude = reference::matmul::matmul(m, n, k, trans, &abs(&a), &abs(&b), None, Act::None);
            let norm = magnitude.iter().map(|v| v * v).sum::<f64>().sqrt();
            let diff = got.iter().zip(&original).map(|(g, w)| (g - w) * (g - w)).sum::<f64>().sqrt();
            assert!(diff <= 1e-2 * norm, "{} vs f64 inputs: error {diff:.3e} > 1e-2 · {norm:.3e}", l.name);
        }
    }
}

/// The fallback, forced: a device opened without SHADER_F16 stores f32 and still computes
/// the right product; asking it for f16 explicitly is a clear error.
#[test]
fn without_shader_f16_half_storage_falls_back_to_f32() {
    let g = fresh_gpu(true);
    assert!(!g.features.shader_f16);
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let ab = g.upload_half_or_f32("a", &a).unwrap();
    assert_eq!(ab.dtype, DType::F32);
    let c = g.zeros("c", 4, DType::F32).unwrap();
    g.poison(&c);
    // [[1,2,3],[4,5,6]] · [[1,2,3],[4,5,6]]ᵀ
    let l = matmul(&g, &MatmulSpec::new(2, 2, 3, Trans::NT), &ab, &ab, None, &c).unwrap();
    g.run([&l]).unwrap();
    assert_eq!(g.download_f32(&c).unwrap(), vec![14.0, 32.0, 32.0, 77.0]);
    let err = g.upload_f16("a", &a).err().expect("no SHADER_F16 on this device");
    assert!(err.to_string().contains("SHADER_F16"), "{err}");
}
