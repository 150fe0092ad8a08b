//! CPU twin of shaders/cast.wgsl.

/// f16(x) as the value it represents: round to nearest even, overflow to ±inf.
pub fn to_f16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}
