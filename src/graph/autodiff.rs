//! Reverse-mode autodiff: walk the nodes backwards from an objective, calling each op's
//! backward rule (ops.rs), summing the contributions to tensors used more than once.
//! Only nodes on a path from the requested parameters to the objective are visited, so a
//! group receives gradient from its own objective alone and nothing leaks across groups;
//! `StopGradient` cuts a path explicitly.

use super::{ops, Graph, GraphError, Op, Result, Section, TensorId, TensorKind};

/// Adds the backward of `objective` with respect to `params` and returns one gradient
/// tensor per param (a zero-filled one where the objective does not depend on it).
pub fn grad(g: &mut Graph, objective: TensorId, params: &[TensorId], name: &str) -> Result<Vec<TensorId>> {
    if g.shape(objective) != super::Shape::SCALAR {
        return Err(GraphError::Invalid(format!("objective {name} must be a scalar, is {}", g.shape(objective))));
    }
    let n_nodes = g.nodes.len();
    // Forward sweep: which tensors depend on a requested parameter.
    let mut active = vec![false; g.tensors.len()];
    for &p in params {
        active[p] = true;
    }
    for node in &g.nodes[..n_nodes] {
        if !node.op.blocks_gradient() && node.inputs.iter().any(|&t| active[t]) {
            for &o in &node.outputs {
                active[o] = true;
            }
        }
    }
    let section = Section::Backward(name.to_string());
    let mut adjoint: Vec<Option<TensorId>> = vec![None; g.tensors.len()];
    if active[objective] {
        let one = g.constant(&format!("d{name}/d{name}"), super::Shape::SCALAR, vec![1.0]);
        g.seeds.push(one);
        adjoint.resize(g.tensors.len(), None);
        adjoint[objective] = Some(one);
    }
    for id in (0..n_nodes).rev() {
        let node = g.nodes[id].clone();
        let douts: Vec<Option<TensorId>> = node.outputs.iter().map(|&o| adjoint.get(o).copied().flatten()).collect();
        if douts.iter().all(Option::is_none) {
            continue;
        }
        let needs: Vec<bool> = node.inputs.iter().map(|&t| active[t]).collect();
        if !needs.iter().any(|&x| x) {
            continue;
        }
        let contributions = ops::backward(g, &node.op, &node.inputs, &node.outputs, &douts, &needs, &section)
            .map_err(|e| GraphError::Invalid(format!("backward of {name} through node {id}: {e}")))?;
        adjoint.resize(g.tensors.len(), None);
        for ((&input, contribution), &need) in node.inputs.iter().zip(contributions).zip(&needs) {
            let (Some(c), true) = (contribution, need) else { continue };
            adjoint[input] = Some(match adjoint[input] {
                None => c,
                // A tensor used more than once: its gradient is the sum.
                Some(prev) => g.push(Op::Add, vec![prev, c], section.clone())[0],
            });
        }
    }
    Ok(params
        .iter()
        .map(|&p| match adjoint.get(p).copied().flatten() {
            Some(d) => d,
            None => g.push(Op::Fill { value: 0.0, shape: g.shape(p) }, vec![], section.clone())[0],
        })
        .collect())
}

/// Makes each gradient a tensor of its own, produced in this backward and read by no other
/// node, so that the planner can place it in the group's flat gradient buffer. Where a
/// gradient is shared (the same tensor for two params, or one read elsewhere), a copy is made.
pub fn own_gradients(g: &mut Graph, params: &[TensorId], grads: Vec<TensorId>, name: &str) -> Vec<TensorId> {
    let section = Section::Backward(name.to_string());
    let mut out = Vec::with_capacity(grads.len());
    for (i, &d) in grads.iter().enumerate() {
        let produced_here = matches!(g.tensors[d].kind, TensorKind::Value) && g.tensors[d].producer.is_some_and(|n| g.nodes[n].section == section);
        let read_elsewhere = g.nodes.iter().any(|n| n.inputs.contains(&d));
        let shared = grads.iter().enumerate().any(|(j, &e)| j != i && e == d) || out.contains(&d);
        let d = if produced_here && !read_elsewhere && !shared { d } else { g.push(Op::Scale { alpha: 1.0 }, vec![d], section.clone())[0] };
        g.named(d, &format!("grad {}", g.name(params[i])));
        out.push(d);
    }
    out
}
