//! Layers as graph parameters, and their initialisation.

use rand::{Rng, SeedableRng};

use crate::graph::{Graph, LinearParams};

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
        let mut outs = vec![];
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let act = if i + 1 == self.layers.len() { last } else { hidden };
            h = g.linear(h, layer, act);
            outs.push(h);
        }
        outs
    }
}
