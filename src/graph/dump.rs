//! Seeing the graph: a text listing (node, op, shapes, buffer, which objective) and
//! Graphviz `dot`.

use std::fmt::Write;

use super::plan::{Placement, Plan};
use super::{Graph, Section, TensorKind};

fn section_name(s: &Section) -> String {
    match s {
        Section::Forward => "forward".into(),
        Section::Backward(name) => format!("backward {name}"),
    }
}

fn place(plan: Option<&Plan>, t: usize) -> String {
    match plan.map(|p| p.placement[t]) {
        Some(Placement::Slot(s)) => format!("@slot{s}"),
        Some(Placement::GroupParam { group, offset }) => format!("@params{group}+{offset}"),
        Some(Placement::GroupGrad { group, offset }) => format!("@grads{group}+{offset}"),
        Some(Placement::Input) => "@input".into(),
        Some(Placement::Const) => "@const".into(),
        None => String::new(),
    }
}

/// One line per node: `#id [section] op  inputs -> outputs`, each tensor with its shape
/// and (given a plan) its buffer.
pub fn text(g: &Graph, plan: Option<&Plan>) -> String {
    let mut out = String::new();
    for (gi, group) in g.groups.iter().enumerate() {
        let n: usize = group.params.iter().map(|&p| g.shape(p).len()).sum();
        writeln!(out, "group {gi} {}: {} tensors, {n} parameters", group.name, group.params.len()).unwrap();
    }
    let tensor = |t: usize| format!("{}[{}]{}", g.name(t), g.shape(t), place(plan, t));
    for (id, node) in g.nodes.iter().enumerate() {
        let ins: Vec<String> = node.inputs.iter().map(|&t| tensor(t)).collect();
        let outs: Vec<String> = node.outputs.iter().map(|&t| tensor(t)).collect();
        writeln!(out, "#{id:<4} [{}] {:<24} {} -> {}", section_name(&node.section), node.op.name(), ins.join(", "), outs.join(", ")).unwrap();
    }
    for (name, t) in &g.outputs {
        writeln!(out, "output {name} = {}", g.name(*t)).unwrap();
    }
    out
}

/// Graphviz: ops as boxes (forward black, each objective's backward in its own colour),
/// params and inputs as ellipses, edges labelled with shapes.
pub fn dot(g: &Graph) -> String {
    const COLOURS: [&str; 6] = ["firebrick", "royalblue", "darkgreen", "darkorange", "purple", "teal"];
    let mut objectives: Vec<String> = vec![];
    let mut out = String::from("digraph step {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n");
    for (t, tensor) in g.tensors.iter().enumerate() {
        if tensor.producer.is_none() {
            let shape = match tensor.kind {
                TensorKind::Param { .. } => "ellipse, style=filled, fillcolor=lightyellow",
                TensorKind::Input => "ellipse, style=filled, fillcolor=lightblue",
                _ => "ellipse",
            };
            writeln!(out, "  t{t} [label=\"{}\\n{}\", shape={shape}];", tensor.name, tensor.shape).unwrap();
        }
    }
    for (id, node) in g.nodes.iter().enumerate() {
        let colour = match &node.section {
            Section::Forward => "black",
            Section::Backward(name) => {
                if !objectives.contains(name) {
                    objectives.push(name.clone());
                }
                COLOURS[objectives.iter().position(|o| o == name).unwrap() % COLOURS.len()]
            }
        };
        writeln!(out, "  n{id} [label=\"{}\", shape=box, color={colour}, fontcolor={colour}];", node.op.name()).unwrap();
        for &t in &node.inputs {
            let from = match g.tensors[t].producer {
                Some(p) => format!("n{p}"),
                None => format!("t{t}"),
            };
            writeln!(out, "  {from} -> n{id} [label=\"{}\", fontsize=8];", g.shape(t)).unwrap();
        }
    }
    out.push_str("}\n");
    out
}
