//! The crate's layout as ARCHITECTURE.md states it: imports between the files of `src/` form no
//! circle, and between the rooms they run one way, `api` → `cluster` → `live` → `lifecycle` → `serving`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as a module path (`api/oip.rs` → `api::oip`, `api/mod.rs` →
/// `api`, `lib.rs` → ``).
fn modules(src: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            modules(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().to_string()).collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
}

/// The modules a file names through `crate::` paths (the longest known module on each path),
/// its own test module left out.
fn imports(text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("::");
            if known.contains_key(&candidate) {
                out.insert(candidate);
                break;
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut known = BTreeMap::new();
    modules(&src, &src, &mut known);
    known
        .iter()
        .map(|(m, path)| {
            let text = std::fs::read_to_string(path).expect("a source file");
            let mut deps = imports(&text, &known);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect()
}

/// The room a module belongs to, ranked: a room may import only rooms of a lower rank.
fn rank(module: &str) -> Option<usize> {
    ["serving", "lifecycle", "live", "cluster", "api"]
        .iter()
        .position(|room| module == *room || module.starts_with(&format!("{room}::")))
}

#[test]
fn imports_between_source_files_form_no_circle() {
    let g = graph();
    assert!(g.len() > 20, "found the sources: {:?}", g.keys());
    // Depth-first search; a module met again while on the stack closes a circle.
    fn visit(m: &str, g: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = stack.iter().position(|s| s == m) {
            panic!("import circle: {} -> {m}", stack[at..].join(" -> "));
        }
        stack.push(m.to_string());
        for d in &g[m] {
            visit(d, g, stack, done);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done);
    }
}

#[test]
fn rooms_import_only_the_rooms_below_them() {
    for (m, deps) in graph() {
        let Some(from) = rank(&m) else { continue };
        for d in deps {
            if let Some(to) = rank(&d) {
                assert!(to <= from, "{m} imports {d}, against api -> live -> lifecycle -> serving");
            }
        }
    }
}

#[test]
fn the_import_scan_sees_paths_and_groups() {
    let known: BTreeMap<String, PathBuf> = ["a", "a::b", "c"].iter().map(|m| (m.to_string(), PathBuf::new())).collect();
    let text = "use crate::a::b::Thing;\nfn f() { crate::c::g(); }\n#[cfg(test)]\nmod tests { use crate::x; }";
    assert_eq!(imports(text, &known), ["a::b", "c"].iter().map(|s| s.to_string()).collect());
}
