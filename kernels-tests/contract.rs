//! The code's own contracts: WGSL templates fill every marker or fail loudly, and module
//! dependencies run one way (the README's layout section states the order).

use vaegan::gpu::template::{fill, has_marker};

#[test]
fn template_filling_fails_loudly_on_a_marker_left_unfilled() {
    let t = "@compute @workgroup_size($WG) fn main() { let x = $TERM; let y = $WG_Y; }";
    let ok = fill("demo", t, &[("WG", "64".into()), ("TERM", "a[i]".into()), ("WG_Y", "2".into())]).unwrap();
    assert_eq!(ok, "@compute @workgroup_size(64) fn main() { let x = a[i]; let y = 2; }");
    // $WG_Y is one marker, not $WG followed by "_Y".
    let err = fill("demo", t, &[("WG", "64".into()), ("TERM", "a[i]".into())]).unwrap_err().to_string();
    assert!(err.contains("demo") && err.contains("$WG_Y has no value"), "{err}");
    let err = fill("demo", "let n = $N;", &[("N", "1".into()), ("M", "2".into())]).unwrap_err().to_string();
    assert!(err.contains("$M fills no marker"), "{err}");
    let err = fill("demo", "let n = $ + 1;", &[]).unwrap_err().to_string();
    assert!(err.contains("lone '$'"), "{err}");
    assert!(has_marker("x * $TMu", "TM") && !has_marker("$TMX", "TM") && !has_marker("TM", "TM"));
}

/// Shader files hold only markers their wrappers fill — workgroup sizes (`$WG`,
/// `$WG_ROWS`), binding slots (`$SLOT_…`), matmul tiles and bodies, the reduction's term, batch
/// norm's fused activation and its derivative (`$ACT`, `$DPRE`) —
/// and the two files pasted in unfilled (activations, loss terms) hold none.
#[test]
fn shader_files_hold_only_known_markers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let known = [
        "A_ELEM",
        "B_ELEM",
        "BIAS_DECL",
        "BIAS_ADD",
        "C_ROW",
        "A_QUAD",
        "A_AT",
        "V",
        "LANEWISE",
        "A_QUAD_AT",
        "B_AT",
        "B_QUAD_AT",
        "B_QUAD",
        "A_ONE",
        "B_ONE",
        "ACT",
        "DECLARE",
        "STEP4",
        "STEP1",
        "LOAD",
        "INNER",
        "STORE",
        "WG_X",
        "WG_Y",
        "LANES",
        "SPAN",
        "BM",
        "BN",
        "BK",
        "QA",
        "QB",
        "TM",
        "TN",
        "TERM",
        "WG",
        "WG_ROWS",
        "RP",
        "CH",
        "DPRE",
    ];
    let mut families_with_sizes = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let pasted = path.ends_with("activations.wgsl") || path.ends_with("loss_terms.wgsl");
        families_with_sizes += text.contains("@workgroup_size($") as usize;
        assert!(!text.contains("@workgroup_size(") || text.contains("@workgroup_size($"), "{}: a literal workgroup size", path.display());
        for (at, _) in text.match_indices('$') {
            let name: String = text[at + 1..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            assert!(!pasted, "{}: marker ${name} in a file pasted in unfilled", path.display());
            assert!(known.contains(&name.as_str()) || name.starts_with("SLOT_") || name.starts_with("CV_"), "{}: unknown marker ${name}", path.display());
        }
    }
    assert!(families_with_sizes >= 10, "{families_with_sizes} shader files take their workgroup size from Rust");
}

/// Who may import whom: each module of `src/` only from modules of a lower layer.
#[test]
fn module_dependencies_run_one_way() {
    // Layer of each top-level module, lowest first; same-layer modules do not import each other.
    let layers: &[(&str, u32)] = &[
        ("types", 0),
        ("pictures", 0),
        ("tensor_file", 0),
        ("gpu", 1),
        ("kernels", 2),
        ("reference", 2),
        ("data", 2),
        ("graph", 3),
        ("nn", 4),
        ("model", 5),
        ("checkpoint", 6),
        ("train", 7),
        ("export", 7),
        ("quality", 8),
        ("cli", 9),
        ("web", 9),
    ];
    let layer = |m: &str| layers.iter().find(|(n, _)| *n == m).map(|(_, l)| *l);
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut violations = vec![];
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel.iter().next().unwrap().to_str().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("src/{}: module {module} has no layer in this test (add it, and to the README)", rel.display()));
        let text = std::fs::read_to_string(&f).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            if text[line_start..at].trim_start().starts_with("//") {
                continue;
            }
            let used: String = text[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                _ => violations.push(format!("src/{} ({module}, layer {own}) uses crate::{used}", rel.display())),
            }
        }
    }
    assert!(violations.is_empty(), "imports against the layering:\n{}", violations.join("\n"));
}
