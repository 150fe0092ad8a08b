//! Buffer planning: where every tensor lives, decided once per graph.
//!
//! - Parameters of a group sit in one flat buffer, their gradients in another, so that one
//!   Adam dispatch updates the whole group; each at an offset aligned for binding.
//! - Inputs and constants have buffers of their own.
//! - Every other tensor gets a slot: a buffer reused by tensors whose lifetimes
//!   [defining node, last reading node] do not overlap. A node's outputs are placed before
//!   its dead inputs are released, so a kernel never reads and writes the same buffer.

use super::{Graph, TensorId, TensorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Slot(usize),
    GroupParam { group: usize, offset: usize },
    GroupGrad { group: usize, offset: usize },
    Input,
    Const,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub placement: Vec<Placement>,
    /// Bytes of each slot (the largest tensor it ever holds).
    pub slots: Vec<u64>,
    /// Elements of each group's flat parameter (and gradient) buffer, padding included.
    pub group_len: Vec<usize>,
    /// [defining node, last reading node] of each tensor; inputs, params and consts are
    /// defined before node 0; graph outputs live to the end.
    pub lifetime: Vec<(usize, usize)>,
}

impl Plan {
    /// `align` is the binding offset alignment in elements; `reuse = false` gives every
    /// tensor its own slot (for tests that compare against the reusing plan).
    pub fn new(g: &Graph, align: usize, reuse: bool) -> Plan {
        let n_nodes = g.nodes.len();
        let mut lifetime: Vec<(usize, usize)> = g
            .tensors
            .iter()
            .map(|t| {
                let def = t.producer.unwrap_or(0);
                (def, def)
            })
            .collect();
        for (i, node) in g.nodes.iter().enumerate() {
            for &t in &node.inputs {
                lifetime[t].1 = lifetime[t].1.max(i);
            }
        }
        for t in g.outputs.iter().map(|(_, t)| *t).chain(g.kept.iter().copied()) {
            lifetime[t].1 = n_nodes;
        }

        let mut placement = vec![Placement::Input; g.tensors.len()];
        let mut group_len = vec![0; g.groups.len()];
        for (gi, group) in g.groups.iter().enumerate() {
            let mut offset = 0;
            for &p in &group.params {
                placement[p] = Placement::GroupParam { group: gi, offset };
                offset += g.shape(p).len().next_multiple_of(align);
            }
            group_len[gi] = offset.max(1);
            let mut offset = 0;
            for (&p, &d) in group.params.iter().zip(&group.grads) {
                placement[d] = Placement::GroupGrad { group: gi, offset };
                offset += g.shape(p).len().next_multiple_of(align);
            }
        }
        for (t, tensor) in g.tensors.iter().enumerate() {
            if tensor.kind == TensorKind::Const {
                placement[t] = Placement::Const;
            }
        }

        let needs_slot = |t: TensorId, placement: &[Placement]| g.tensors[t].kind == TensorKind::Value && placement[t] == Placement::Input;
        let bytes = |t: TensorId| g.shape(t).len() as u64 * 4;
        let mut slots: Vec<u64> = vec![];
        let mut free: Vec<usize> = vec![];
        let mut slot_of = vec![usize::MAX; g.tensors.len()];
        for (i, node) in g.nodes.iter().enumerate() {
            for &t in &node.outputs {
                if !needs_slot(t, &placement) {
                    continue;
                }
                let need = bytes(t);
                let slot = if !reuse {
                    None
                } else {
                    // Best fit among free slots; else grow the largest free one.
                    let fit = free.iter().enumerate().filter(|(_, &s)| slots[s] >= need).min_by_key(|(_, &s)| slots[s]);
                    let pick = fit.or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| slots[s])).map(|(k, _)| k);
                    pick.map(|k| free.swap_remove(k))
                };
                let slot = slot.unwrap_or_else(|| {
                    slots.push(0);
                    slots.len() - 1
                });
                slots[slot] = slots[slot].max(need);
                slot_of[t] = slot;
                placement[t] = Placement::Slot(slot);
            }
            // Release what dies here: inputs read for the last time, outputs never read.
            for &t in node.inputs.iter().chain(&node.outputs) {
                if slot_of[t] != usize::MAX && lifetime[t].1 == i && !free.contains(&slot_of[t]) {
                    let still_used = node.inputs.iter().chain(&node.outputs).any(|&u| u != t && slot_of[u] == slot_of[t] && lifetime[u].1 > i);
                    if !still_used {
                        free.push(slot_of[t]);
                    }
                }
            }
        }
        Plan { placement, slots, group_len, lifetime }
    }

    /// Bytes of all slots, group buffers (params, gradients and Adam's two moments),
    /// inputs and constants.
    pub fn planned_bytes(&self, g: &Graph) -> u64 {
        let slots: u64 = self.slots.iter().sum();
        let groups: u64 = self.group_len.iter().map(|&n| n as u64 * 4 * 4).sum();
        let own: u64 = g
            .tensors
            .iter()
            .zip(&self.placement)
            .filter(|(_, p)| matches!(p, Placement::Input | Placement::Const))
            .map(|(t, _)| t.shape.len() as u64 * 4)
            .sum();
        slots + groups + own
    }

    /// What every tensor would take with a buffer each (and the same Adam state).
    pub fn naive_bytes(&self, g: &Graph) -> u64 {
        let tensors: u64 = g.tensors.iter().map(|t| t.shape.len() as u64 * 4).sum();
        let moments: u64 = g.params().map(|p| g.shape(p).len() as u64 * 4 * 2).sum();
        tensors + moments
    }

    /// Checks the invariant that makes reuse safe: two tensors sharing a slot never have
    /// overlapping lifetimes. Returns the first offending pair.
    pub fn find_alias(&self) -> Option<(TensorId, TensorId)> {
        let mut by_slot: std::collections::HashMap<usize, Vec<TensorId>> = Default::default();
        for (t, p) in self.placement.iter().enumerate() {
            if let Placement::Slot(s) = p {
                by_slot.entry(*s).or_default().push(t);
            }
        }
        for tensors in by_slot.values() {
            for (i, &a) in tensors.iter().enumerate() {
                for &b in &tensors[i + 1..] {
                    let (sa, ea) = self.lifetime[a];
                    let (sb, eb) = self.lifetime[b];
                    if sa <= eb && sb <= ea {
                        return Some((a, b));
                    }
                }
            }
        }
        None
    }
}
