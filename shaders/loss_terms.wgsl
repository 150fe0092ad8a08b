// Per-element loss terms and their derivatives, side by side. The forward sums a term over
// all elements (reduce.wgsl); the backward applies its derivative (losses.wgsl).

// Probabilities are clamped to [EPS, 1 − EPS] before the log, so that a saturated sigmoid
// gives a large finite loss, not inf. The derivative uses the clamped value.
const BCE_EPS: f32 = 1e-7;

// −[t·log p + (1 − t)·log(1 − p)]
fn term_bce_prob(p: f32, t: f32) -> f32 {
    let pc = clamp(p, BCE_EPS, 1.0 - BCE_EPS);
    return -(t * log(pc) + (1.0 - t) * log(1.0 - pc));
}
fn grad_bce_prob(p: f32, t: f32) -> f32 {
    let pc = clamp(p, BCE_EPS, 1.0 - BCE_EPS);
    return (pc - t) / (pc * (1.0 - pc));
}

// BCE of σ(l) against t, in the stable form max(l, 0) − l·t + log(1 + e^−|l|).
fn term_bce_logits(l: f32, t: f32) -> f32 {
    return max(l, 0.0) - l * t + log(1.0 + exp(-abs(l)));
}
fn grad_bce_logits(l: f32, t: f32) -> f32 {
    return act_sigmoid(l) - t;
}

// (a − b)²; the caller's scale carries the ½ of ½‖f(x) − f(x̃)‖².
fn term_sq_err(a: f32, b: f32) -> f32 {
    let d = a - b;
    return d * d;
}
fn grad_sq_err(a: f32, b: f32) -> f32 {
    return 2.0 * (a - b);
}
