//! Layers as graph parameters, and their initialisation.

use rand::{Rng, SeedableRng};

use crate::graph::{BatchNormParams, ConvParams, Graph, LinearParams};
use crate::types::ConvGeom;

/// A dense layer in/out with PyTorch's default initialisation: W and b uniform in
/// ±1/√in (Kaiming-uniform with a = √5), drawn from `seed` so that a model is reproducible.
pub fn linear(g: &mut Graph, group: usize, name: &str, inputs: usize, outputs: usize, seed: u64) -> LinearParams {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bound = 1.0 / (inputs as f32).sqrt();
    let mut draw = |n: usize| (0..n).map(|_| rng.random_range(-bound..bound)).collect::<Vec<f32>>();
    let w_init = draw(inputs * outputs);
    let b_init = draw(outputs);
    let w = g.param(group, &format!("{name}.weight"), [inputs, outputs], w_init);
    let b = g.param(group, &format!("{name}.bias"), [1, outputs], b_init);
    LinearParams { w, b, inputs, outputs }
}

/// A dense layer without a bias (its b a zero constant, not trained): for layers followed
/// by batch norm, which would cancel a bias.
pub fn linear_unbiased(g: &mut Graph, group: usize, name: &str, inputs: usize, outputs: usize, seed: u64) -> LinearParams {
    let p = linear(g, group, name, inputs, outputs, seed);
    unbias(g, group, &p.b);
    p
}

/// A convolution without a bias (see `linear_unbiased`); `transposed` as `conv_transpose2d`.
pub fn conv2d_unbiased(g: &mut Graph, group: usize, name: &str, geom: ConvGeom, transposed: bool, seed: u64) -> ConvParams {
    let p = if transposed { conv_transpose2d(g, group, name, geom, seed) } else { conv2d(g, group, name, geom, seed) };
    unbias(g, group, &p.b);
    p
}

/// Turns a just-made bias parameter into a zero constant (out of its group, so neither
/// trained nor saved).
fn unbias(g: &mut Graph, group: usize, b: &usize) {
    let b = *b;
    let params = &mut g.groups[group].params;
    assert_eq!(params.last(), Some(&b), "the bias is the group's last parameter");
    params.pop();
    let t = &mut g.tensors[b];
    t.kind = crate::graph::TensorKind::Const;
    t.init = Some(vec![0.0; t.shape.len()]);
    t.name = format!("{} (none)", t.name);
}

/// A convolution for `geom` with PyTorch's default initialisation (uniform ±1/√fan_in,
/// fan_in = k_h·k_w·in_c), W stored k_h·k_w·in_c × out_c.
pub fn conv2d(g: &mut Graph, group: usize, name: &str, geom: ConvGeom, seed: u64) -> ConvParams {
    conv_params(g, group, name, geom, geom.k_h * geom.k_w * geom.in_c, geom.out_c, seed)
}

/// A transposed convolution, the adjoint of `geom`: W as `geom`'s, bias per output channel
/// (`geom.in_c`). Uniform ±1/√fan_in with fan_in = k_h·k_w·(its input channels) =
/// k_h·k_w·`geom.out_c`: the terms an output sums (about fan_in/stride² of them, as a
/// convolution's output sums its fan-in), so that the forward keeps the scale of its input.
/// This is not PyTorch's default: ConvTranspose2d reads fan-in from its weight's second
/// dimension, its *output* channels (k_h·k_w·`geom.in_c`). Kept deliberately: every result
/// in the README was trained with it, and `docs/vaegan_torch.py` loads vaegan's weights
/// rather than drawing its own.
pub fn conv_transpose2d(g: &mut Graph, group: usize, name: &str, geom: ConvGeom, seed: u64) -> ConvParams {
    conv_params(g, group, name, geom, geom.k_h * geom.k_w * geom.out_c, geom.in_c, seed)
}

fn conv_params(g: &mut Graph, group: usize, name: &str, geom: ConvGeom, fan_in: usize, bias: usize, seed: u64) -> ConvParams {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut draw = |n: usize| (0..n).map(|_| rng.random_range(-bound..bound)).collect::<Vec<f32>>();
    let w_init = draw(geom.weight_len());
    let b_init = draw(bias);
    let w = g.param(group, &format!("{name}.weight"), [geom.k_h * geom.k_w * geom.in_c, geom.out_c], w_init);
    let b = g.param(group, &format!("{name}.bias"), [1, bias], b_init);
    ConvParams { w, b, geom }
}

/// A batch norm over `channels`: γ = 1, β = 0 (learnable), running mean 0 and variance 1;
/// ε 1e-5 and momentum 0.1 as PyTorch's BatchNorm2d.
pub fn batch_norm(g: &mut Graph, group: usize, name: &str, channels: usize) -> BatchNormParams {
    let gamma = g.param(group, &format!("{name}.weight"), [1, channels], vec![1.0; channels]);
    let beta = g.param(group, &format!("{name}.bias"), [1, channels], vec![0.0; channels]);
    let running_mean = g.constant(&format!("{name}.running_mean"), [1, channels], vec![0.0; channels]);
    let running_var = g.constant(&format!("{name}.running_var"), [1, channels], vec![1.0; channels]);
    g.state(running_mean);
    g.state(running_var);
    BatchNormParams { gamma, beta, running_mean, running_var, channels, eps: 1e-5, momentum: 0.1 }
}

/// A stack of dense layers: widths[0] → widths[1] → …, `hidden` after every layer but the
/// last, `last` after the last.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub layers: Vec<LinearParams>,
}

impl Mlp {
    pub fn new(g: &mut Graph, group: usize, name: &str, widths: &[usize], seed: u64) -> Mlp {
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(g, group, &format!("{name}.{i}"), w[0], w[1], seed.wrapping_mul(1000).wrapping_add(i as u64)))
            .collect();
        Mlp { layers }
    }

    /// The forward pass; returns every layer's output (the last is the result).
    pub fn forward(&self, g: &mut Graph, x: usize, hidden: crate::types::Act, last: crate::types::Act) -> Vec<usize> {
        self.forward_with(g, x, None, hidden, last)
    }

    /// The forward pass with `side` (batch × the first layer's width) added to the first
    /// layer's pre-activation: x·W₀ + b₀ + side, i.e. the first layer reading [x, y] when
    /// side = y·V (a conditioned network's labels).
    pub fn forward_with(&self, g: &mut Graph, x: usize, side: Option<usize>, hidden: crate::types::Act, last: crate::types::Act) -> Vec<usize> {
        let mut outs = vec![];
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let act = if i + 1 == self.layers.len() { last } else { hidden };
            h = match side.filter(|_| i == 0) {
                Some(side) => {
                    let pre = g.linear(h, layer, crate::types::Act::None);
                    let pre = g.add(pre, side);
                    g.activation(pre, act)
                }
                None => g.linear(h, layer, act),
            };
            outs.push(h);
        }
        outs
    }
}

/// The weight V (labels × outputs) through which a conditioned layer reads its labels y:
/// y·V is added to the layer's pre-activation, as if the layer read [input, y]. Uniform in
/// ±1/√labels, drawn from `seed`.
pub fn condition_weight(g: &mut Graph, group: usize, name: &str, labels: usize, outputs: usize, seed: u64) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bound = 1.0 / (labels as f32).sqrt();
    let init = (0..labels * outputs).map(|_| rng.random_range(-bound..bound)).collect();
    g.param(group, &format!("{name}.weight"), [labels, outputs], init)
}

/// y·V for a conditioned layer (labels y and its weight V both there), else None. The
/// graph builders check that a conditioned model is given its labels and only then.
pub fn condition_term(g: &mut Graph, y: Option<usize>, v: Option<usize>) -> Option<usize> {
    assert_eq!(y.is_some(), v.is_some(), "labels for an unconditioned layer, or none for a conditioned one");
    Some(g.matmul(y?, v?, crate::types::Trans::NN))
}
