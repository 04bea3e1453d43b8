//! ARCHITECTURE.md stays true: its code map names every module under `src/` and nothing that is
//! gone, and the imports between top-level modules follow its list of layers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b/c.rs` -> (`src/a/`, `c.rs`); `src/x.rs` -> (`src/x.rs`, `x.rs`).
fn section_and_name(rel: &str) -> (String, String) {
    let parts: Vec<&str> = rel.split('/').collect();
    let name = (*parts.last().expect("a name")).to_owned();
    if parts.len() == 2 {
        (rel.to_owned(), name)
    } else {
        (format!("src/{}/", parts[1]), name)
    }
}

/// The text under each `### ` heading of the code map, keyed by every backticked path in it.
fn sections(doc: &str) -> HashMap<String, String> {
    let map = doc.split("## Code map").nth(1).expect("a code map");
    let map = map.split("\n## ").next().unwrap_or(map);
    let mut out = HashMap::new();
    for block in map.split("\n### ").skip(1) {
        let (heading, body) = block.split_once('\n').unwrap_or((block, ""));
        for path in heading.split('`').skip(1).step_by(2) {
            out.insert(path.to_owned(), body.to_owned());
        }
    }
    out
}

#[test]
fn the_code_map_names_every_module_and_only_modules_that_exist() {
    let doc = architecture();
    let sections = sections(&doc);
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in &files {
        let rel = file
            .strip_prefix(root())
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        if sections.contains_key(&rel) {
            continue;
        }
        let (section, name) = section_and_name(&rel);
        match sections.get(&section) {
            Some(_) if section == rel => {}
            Some(body) => assert!(
                body.contains(&format!("`{name}`")) || body.contains(&format!("/{name}`")),
                "ARCHITECTURE.md: the section `{section}` does not describe `{name}` ({rel})"
            ),
            None => panic!("ARCHITECTURE.md has no section for `{rel}` (expected `{section}`)"),
        }
    }
    for (section, body) in &sections {
        let path = root().join(section);
        assert!(
            path.exists(),
            "ARCHITECTURE.md describes `{section}`, which does not exist"
        );
        if section.ends_with('/') {
            let mut inside = Vec::new();
            rust_files(&path, &mut inside);
            for named in body.split('`').skip(1).step_by(2) {
                if std::path::Path::new(named)
                    .extension()
                    .is_some_and(|e| e == "rs")
                {
                    assert!(
                        inside.iter().any(|f| f.ends_with(named)),
                        "ARCHITECTURE.md names `{named}` under `{section}`, which has no such file"
                    );
                }
            }
        }
    }
}

/// Top-level module -> layer number, from the numbered list under `## Layers`.
fn layers(doc: &str) -> HashMap<String, usize> {
    let text = doc.split("## Layers").nth(1).expect("a layers section");
    let text = text.split("\n## ").next().unwrap_or(text);
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.trim().parse::<usize>() else {
            continue;
        };
        for name in rest.split('`').skip(1).step_by(2) {
            out.insert(name.to_owned(), layer);
        }
    }
    out
}

/// The top-level modules a source file refers to through `crate::` (test modules left out).
fn imports(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or_default().trim();
                if !name.is_empty() {
                    out.push(name.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn imports_point_down_the_layers() {
    let layers = layers(&architecture());
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut checked = 0;
    for file in files {
        let rel = file.strip_prefix(root().join("src")).expect("under src");
        let top = rel
            .components()
            .next()
            .expect("a component")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(top.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let from = *layers
            .get(&top)
            .unwrap_or_else(|| panic!("`{top}` is not in ARCHITECTURE.md's layers"));
        let source = std::fs::read_to_string(&file).expect("read a source file");
        for target in imports(&source) {
            if target == top || target == "self" {
                continue;
            }
            let to = *layers.get(&target).unwrap_or_else(|| {
                panic!("{}: `crate::{target}` is not in the layers", rel.display())
            });
            assert!(
                to > from,
                "{} (layer {from}) imports `{target}` (layer {to}): imports must point down",
                rel.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "only {checked} imports were seen: is the scan broken?"
    );
}
