//! Filling WGSL templates: a kernel family's source may hold `$NAME` markers (capitals,
//! digits, underscores) that its wrapper fills — a workgroup size, a tile's sizes, an
//! activation's expression. Every marker must be filled and every value must be used:
//! a marker left in the text would reach the shader compiler as a confusing syntax error
//! (or, worse, a prefix of a longer marker would be filled with the wrong value), so
//! filling fails loudly, naming the family and the marker.

use std::collections::HashMap;

use super::{GpuError, Result};

/// `template` with each `$NAME` replaced by its value in `values`. Markers are read whole
/// (`$BM` never matches the start of `$BIAS_ADD`), so the order of `values` is free.
pub fn fill(family: &str, template: &str, values: &[(&str, String)]) -> Result<String> {
    let map: HashMap<&str, &str> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if map.len() != values.len() {
        return Err(GpuError::shape(family, "a template marker is given two values"));
    }
    let mut used = vec![false; values.len()];
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(after.len());
        let name = &after[..len];
        if name.is_empty() {
            return Err(GpuError::shape(family, format!("a lone '$' in the template near {:?}", &rest[at..(at + 20).min(rest.len())])));
        }
        match values.iter().position(|(k, _)| *k == name) {
            Some(i) => {
                used[i] = true;
                out.push_str(map[name]);
            }
            None => return Err(GpuError::shape(family, format!("template marker ${name} has no value"))),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(GpuError::shape(family, format!("value for ${} fills no marker in the template", values[i].0)));
    }
    Ok(out)
}

/// True when `template` holds the marker `$name` whole (not as the start of a longer one).
pub fn has_marker(template: &str, name: &str) -> bool {
    let marker = format!("${name}");
    template
        .match_indices(&marker)
        .any(|(at, _)| !template[at + marker.len()..].starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
}
