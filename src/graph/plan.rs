//! Buffer planning: where every tensor lives, decided once per graph.
//!
//! - Parameters of a group sit in one flat buffer, their gradients in another, so that one
//!   Adam dispatch updates the whole group; each at an offset aligned for binding.
//! - Inputs and constants have buffers of their own.
//! - Every other tensor gets a slot: a buffer reused by tensors whose lifetimes
//!   [defining node, last reading node] do not overlap. A node's outputs are placed before
//!   its dead inputs are released, so a kernel never reads and writes the same buffer.

use super::ops::Op;
use super::{Graph, TensorId, TensorKind};
use crate::gpu::buffer::bound_bytes;
use crate::types::{DType, Precision};

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
    /// Each node's scratch: (slot, elements), live during that node alone.
    pub scratch: Vec<Vec<(usize, usize)>>,
    /// What the matmuls read: in mixed precision, each group's f16 copy of its parameters
    /// and an f16 copy of every other tensor a matmul reads (`half`).
    pub precision: Precision,
    pub half: Vec<TensorId>,
    /// Loss readbacks in flight at once, each a staging buffer of the graph's outputs.
    pub readback_ring: usize,
}

/// Where a plan's bytes go (`vaegan graph` prints it; the executor allocates exactly this).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Slots: every intermediate tensor and every kernel's scratch, reused by liveness.
    pub slots: u64,
    /// Parameters, their gradients and Adam's two moments (one flat buffer each per group).
    pub groups: u64,
    /// f16 copies of parameters and matmul operands (mixed precision only).
    pub half: u64,
    /// Inputs and constants.
    pub inputs: u64,
    /// Staging buffers for reading the losses back.
    pub readback: u64,
}

impl Memory {
    pub fn total(&self) -> u64 {
        self.slots + self.groups + self.half + self.inputs + self.readback
    }
}

/// The ring of staging buffers the GPU executor reads losses back through.
pub const READBACK_RING: usize = 3;

impl Plan {
    /// `align` is the binding offset alignment in elements; `reuse = false` gives every
    /// tensor its own slot (for tests that compare against the reusing plan).
    pub fn new(g: &Graph, align: usize, reuse: bool, precision: Precision) -> Plan {
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
        let mut scratch = vec![vec![]; n_nodes];
        // Best fit among free slots; else grow the largest free one; else a new slot.
        let take = |need: u64, slots: &mut Vec<u64>, free: &mut Vec<usize>| -> usize {
            let slot = if !reuse {
                None
            } else {
                let fit = free.iter().enumerate().filter(|(_, &s)| slots[s] >= need).min_by_key(|(_, &s)| slots[s]);
                let pick = fit.or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| slots[s])).map(|(k, _)| k);
                pick.map(|k| free.swap_remove(k))
            };
            let slot = slot.unwrap_or_else(|| {
                slots.push(0);
                slots.len() - 1
            });
            slots[slot] = slots[slot].max(need);
            slot
        };
        for (i, node) in g.nodes.iter().enumerate() {
            for &t in &node.outputs {
                if !needs_slot(t, &placement) {
                    continue;
                }
                let slot = take(bytes(t), &mut slots, &mut free);
                slot_of[t] = slot;
                placement[t] = Placement::Slot(slot);
            }
            // Scratch comes after the outputs and before any input is released, so it
            // aliases neither; it is free again once the node is done.
            let shapes: Vec<_> = node.inputs.iter().map(|&t| g.shape(t)).collect();
            for len in node.op.scratch_lens(&shapes) {
                let slot = take(len.max(1) as u64 * 4, &mut slots, &mut free);
                scratch[i].push((slot, len.max(1)));
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
            free.extend(scratch[i].iter().map(|(slot, _)| *slot));
        }
        // In mixed precision every matmul operand that is not a parameter gets an f16 copy,
        // cast once however many matmuls read it.
        let mut half = vec![];
        if precision == Precision::F16 {
            for node in &g.nodes {
                if matches!(node.op, Op::Linear { .. } | Op::Matmul { .. }) {
                    for &t in &node.inputs[..2] {
                        if !matches!(placement[t], Placement::GroupParam { .. }) && !half.contains(&t) {
                            half.push(t);
                        }
                    }
                }
            }
        }
        Plan { placement, slots, group_len, lifetime, scratch, precision, half, readback_ring: READBACK_RING }
    }

    /// Every buffer a step uses, by kind, as the executor allocates them (sizes rounded
    /// as `bound_bytes` rounds them).
    pub fn memory(&self, g: &Graph) -> Memory {
        let f32s = |n: usize| bound_bytes(n, DType::F32);
        let f16 = self.precision == Precision::F16;
        Memory {
            slots: self.slots.iter().map(|&b| f32s((b / 4) as usize)).sum(),
            groups: self.group_len.iter().map(|&n| 4 * f32s(n)).sum(),
            half: if f16 {
                self.group_len.iter().map(|&n| bound_bytes(n, DType::F16)).sum::<u64>()
                    + self.half.iter().map(|&t| bound_bytes(g.shape(t).len(), DType::F16)).sum::<u64>()
            } else {
                0
            },
            inputs: g
                .tensors
                .iter()
                .zip(&self.placement)
                .filter(|(_, p)| matches!(p, Placement::Input | Placement::Const))
                .map(|(t, _)| f32s(t.shape.len()))
                .sum(),
            readback: self.readback_ring as u64 * (g.outputs.len().max(1) * 4) as u64,
        }
    }

    /// How many buffers the executor allocates for this plan (the launches' uniform blocks
    /// aside): slots, four per group (params, grads, Adam m and v) and its f16 copy in mixed
    /// precision, the other f16 copies, inputs and constants, the readback ring.
    pub fn buffer_count(&self) -> usize {
        let f16 = self.precision == Precision::F16;
        let own = self.placement.iter().filter(|p| matches!(p, Placement::Input | Placement::Const)).count();
        self.slots.len() + self.group_len.len() * (4 + f16 as usize) + self.half.len() + own + self.readback_ring
    }

    /// The total of `memory`.
    pub fn planned_bytes(&self, g: &Graph) -> u64 {
        self.memory(g).total()
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
