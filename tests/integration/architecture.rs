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

/// The source without its test items: from each `#[cfg(test)]` to the end of the item it marks
/// (rustfmt puts an item's closing brace alone at the start of a line; a one-line item ends
/// with `;`). Code after a test module is still checked.
fn without_tests(source: &str) -> String {
    let mut out = String::new();
    // While skipping: the closing line of the test item (its indentation, then `}`), once its
    // body has opened.
    let mut skipping: Option<Option<String>> = None;
    let mut indent = String::new();
    for line in source.lines() {
        let trimmed = line.trim_start();
        match &skipping {
            None if trimmed.starts_with("#[cfg(test)]") => {
                line[..line.len() - trimmed.len()].clone_into(&mut indent);
                skipping = Some(None);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(None) if trimmed.starts_with("#[") => {}
            Some(None) if line.trim_end().ends_with(';') || line.trim_end().ends_with('}') => {
                skipping = None;
            }
            Some(None) if line.contains('{') => skipping = Some(Some(format!("{indent}}}"))),
            Some(None) => {}
            Some(Some(end)) => {
                if line.trim_end() == end {
                    skipping = None;
                }
            }
        }
    }
    out
}

/// The top-level modules a path names, from the file's own module path (`super::` resolved):
/// `crate::a::b` names `a`; in `src/x/y/z.rs`, `super::super::w` names `w`, `super::w` names `x`.
fn imports(source: &str, module: &[String]) -> Vec<String> {
    let code = without_tests(source);
    let mut out = Vec::new();
    let push_group = |rest: &str, out: &mut Vec<String>| {
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
    };
    for (i, _) in code.match_indices("crate::") {
        push_group(&code[i + "crate::".len()..], &mut out);
    }
    for (i, _) in code.match_indices("super::") {
        // Only the first `super` of a chain.
        if code[..i].ends_with("super::") {
            continue;
        }
        let mut rest = &code[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        // `module` is the file's path below `src` (`commands/batch/mod` → [commands, batch]).
        if up < module.len() {
            out.push(module[0].clone());
        } else {
            push_group(rest, &mut out);
        }
    }
    out
}

/// A file's module path below `src`: `commands/batch/mod.rs` → [commands, batch];
/// `commands/run.rs` → [commands, run].
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

#[test]
fn the_layer_scan_sees_code_after_tests_and_super_paths() {
    let source = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::t;\n}\n\nfn f() { crate::b::g() }\n#[cfg(test)]\nuse crate::u;\nuse super::super::c::D;\nuse super::e;\n";
    let module = vec!["x".to_owned(), "y".to_owned(), "z".to_owned()];
    let mut seen = imports(source, &module);
    seen.sort();
    assert_eq!(seen, ["a", "b", "x", "x"]);
    let top = vec!["x".to_owned(), "z".to_owned()];
    let mut seen = imports(source, &top);
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "x"]);
}

/// Only `app`, `cli/` and the shell-completion generator see clap: every command takes settings.
#[test]
fn only_the_command_line_layer_knows_clap() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix(root().join("src")).expect("under src");
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        if rel_text == "app.rs"
            || rel_text.starts_with("cli/")
            || rel_text == "commands/generate.rs"
        {
            continue;
        }
        let code = without_tests(&std::fs::read_to_string(&file).expect("read"));
        for needle in [
            "crate::cli::",
            "crate::cli;",
            "clap::Args",
            "clap::Parser",
            "clap::ValueEnum",
            "use clap::",
        ] {
            assert!(
                !code.contains(needle),
                "{rel_text} uses `{needle}`: below the command line, code takes `settings`"
            );
        }
    }
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
        for target in imports(&source, &module_path(rel)) {
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
