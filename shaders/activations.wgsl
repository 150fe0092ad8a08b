// Activation functions shared by the matmul epilogue and the elementwise kernels, so that
// a fused layer and an unfused one compute the very same values.

fn act_relu(x: f32) -> f32 {
    return max(x, 0.0);
}

fn act_leaky_relu(x: f32, alpha: f32) -> f32 {
    return select(alpha * x, x, x > 0.0);
}

// Clamped: some drivers evaluate tanh as (e^2x - 1)/(e^2x + 1), which is inf/inf = NaN for
// large |x|; at |x| = 15 tanh is already ±1 in f32.
fn act_tanh(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// exp(-x) overflows to +inf for x < -88, and 1/(1+inf) = 0 is the right limit.
fn act_sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// Their derivatives, read through the forward's output y (which is all the backward keeps):
// dx = dy·act'(x). ReLU and LeakyReLU: y > 0 exactly where x > 0 (α > 0).
fn act_relu_backward(y: f32, dy: f32) -> f32 {
    return select(0.0, dy, y > 0.0);
}

fn act_leaky_relu_backward(y: f32, dy: f32, alpha: f32) -> f32 {
    return select(alpha * dy, dy, y > 0.0);
}

fn act_tanh_backward(y: f32, dy: f32) -> f32 {
    return dy * (1.0 - y * y);
}

fn act_sigmoid_backward(y: f32, dy: f32) -> f32 {
    return dy * y * (1.0 - y);
}
