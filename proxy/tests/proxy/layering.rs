//! The layering of `proxy/src`, checked on the source text: no import cycle among the crate's
//! top-level modules, the pure stages never reach pingora (directly or through the modules that
//! wrap it), no domain module imports the assembling `config`, and the serde mirror `raw.rs`
//! imports nothing from the crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that must not know pingora: the request policy and everything it is built from.
const PURE: &[&str] = &[
    "clock",
    "error",
    "generations",
    "login",
    "obs",
    "policy",
    "raw",
    "session",
    "store",
    "throttle",
    "tokens",
];
/// Modules that wrap pingora (or assemble everything); the pure ones may not import them.
const IMPURE: &[&str] = &["admin", "config", "gateway", "http"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file: comments and `#[cfg(test)] mod … { … }` blocks removed.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{').filter(|o| after[..*o].contains("mod ")) else {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module of each file → (its code, the top-level modules it names via `crate::`).
fn graph() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    let mut graph: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).unwrap());
        let entry = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != module && modules.contains(&name) {
                entry.1.insert(name);
            }
        }
        entry.0.push_str(&text);
    }
    graph
}

fn reaches(graph: &BTreeMap<String, (String, BTreeSet<String>)>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(m) = todo.pop() {
        for next in graph.get(&m).map(|g| &g.1).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn top_level_modules_import_each_other_in_one_direction() {
    let g = graph();
    assert!(
        g.len() > 10,
        "the source tree was not found: {:?}",
        g.keys()
    );
    let cycles: Vec<String> = g
        .iter()
        .flat_map(|(m, (_, deps))| {
            let g = &g;
            deps.iter()
                .filter(move |d| reaches(g, d, m))
                .map(move |d| format!("{m} -> {d} -> … -> {m}"))
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn pure_stages_never_reach_pingora_or_the_assembler() {
    let g = graph();
    for m in PURE {
        let (text, deps) = g.get(*m).unwrap_or_else(|| panic!("no module `{m}`"));
        assert!(
            !text.contains("pingora::") && !text.contains("use pingora"),
            "`{m}` uses pingora"
        );
        for bad in IMPURE {
            assert!(
                !reaches(&g, m, bad),
                "`{m}` reaches `{bad}` (deps: {deps:?})"
            );
        }
    }
    assert!(
        g["raw"].1.is_empty(),
        "raw.rs imports from the crate: {:?}",
        g["raw"].1
    );
}
