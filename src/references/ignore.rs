//! What a reference may not read because the project says so: files git ignores (asked of git
//! itself, `gitignore::ignored_among`) and files the root's `.qwenignore`, `.agentignore` or
//! `.aiignore` excludes. Qwen Code 0.24.4 reads exactly those three files at the project root
//! (`packages/core/src/utils/qwenIgnoreParser.ts`: `.qwenignore` always, plus the default
//! `customIgnoreFiles` `.agentignore` and `.aiignore`) with npm `ignore`: gitignore syntax,
//! compared without regard to case, a path ignored when it or a directory above it matches.
//!
//! An ignore file is a repository's bytes: it is read through the path door (a regular file
//! inside the root, no link out, at most 1 MiB); one that cannot be read that way refuses the
//! reference rather than being skipped (a rule silently lost would send what it excludes).

use std::path::{Path, PathBuf};

use super::glob::Glob;
use crate::gitignore;
use crate::paths::{JobPaths, PathRules};

/// The ignore files Qwen Code reads at the project root.
const FILES: [&str; 3] = [".qwenignore", ".agentignore", ".aiignore"];

/// The most an ignore file may hold.
const MAX_IGNORE_FILE_BYTES: u64 = 1 << 20;

/// Why a path may not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    Git,
    /// The ignore file whose rule excludes it.
    Qwen(&'static str),
}

impl Why {
    pub(super) fn describe(self) -> String {
        match self {
            Self::Git => "git ignores it".to_owned(),
            Self::Qwen(file) => format!("the workspace's `{file}` excludes it"),
        }
    }
}

/// One gitignore rule.
#[derive(Debug)]
struct Rule {
    glob: Glob,
    negated: bool,
    dir_only: bool,
}

/// The ignore rules of one workspace root.
#[derive(Debug)]
pub(super) struct Ignorer {
    root: PathBuf,
    files: Vec<(&'static str, Vec<Rule>)>,
}

impl Ignorer {
    /// The rules of `root` (its ignore files, each through the door).
    pub(super) fn load(root: &Path) -> Result<Self, String> {
        let root = root
            .canonicalize()
            .map_err(|e| format!("`{}`: {e}", root.display()))?;
        let door = JobPaths::new(root.clone(), PathRules::default());
        let mut files = Vec::new();
        for name in FILES {
            if std::fs::symlink_metadata(root.join(name)).is_err() {
                continue;
            }
            let text = door
                .read("the ignore file", name, MAX_IGNORE_FILE_BYTES)
                .map_err(|e| format!("{e}, so its rules cannot be applied"))?;
            files.push((name, rules(&text)));
        }
        Ok(Self { root, files })
    }

    /// For each path (absolute and resolved, with whether it is a directory), why it may not be
    /// read, if it may not. One `git` run for all of them.
    pub(super) fn check(&self, paths: &[(PathBuf, bool)]) -> Vec<Option<Why>> {
        let files: Vec<PathBuf> = paths.iter().map(|(p, _)| p.clone()).collect();
        let git = gitignore::ignored_among(&files);
        paths
            .iter()
            .zip(git)
            .map(|((path, is_dir), git)| {
                if git {
                    return Some(Why::Git);
                }
                let rel = path.strip_prefix(&self.root).ok()?;
                let segments: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                self.files
                    .iter()
                    .find(|(_, rules)| excluded(rules, &segments, *is_dir))
                    .map(|(name, _)| Why::Qwen(name))
            })
            .collect()
    }
}

/// The rules of an ignore file: blank lines and `#` comments skipped, `\#` and `\!` literal,
/// `!` negates, a trailing `/` matches directories only, a `/` at the start or inside anchors
/// the rule at the root (else it matches at any depth).
fn rules(text: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = trim_trailing_spaces(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, body) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (
                false,
                line.strip_prefix('\\')
                    .filter(|r| r.starts_with(['#', '!']))
                    .unwrap_or(line),
            ),
        };
        let (dir_only, body) = match body.strip_suffix('/') {
            Some(rest) => (true, rest),
            None => (false, body),
        };
        if body.is_empty() {
            continue;
        }
        let anchored = body.trim_start_matches('/').contains('/') || body.starts_with('/');
        let body = body.trim_start_matches('/');
        let pattern = if anchored {
            body.to_owned()
        } else {
            format!("**/{body}")
        };
        out.push(Rule {
            glob: Glob::new(&pattern, true),
            negated,
            dir_only,
        });
    }
    out
}

/// A line without its trailing spaces, unless the last one is escaped.
fn trim_trailing_spaces(line: &str) -> &str {
    let trimmed = line.trim_end_matches(' ');
    if trimmed.ends_with('\\') && trimmed.len() < line.len() {
        &line[..=trimmed.len()]
    } else {
        trimmed
    }
}

/// Whether `segments` (a path under the root) is excluded: a directory above it is (and nothing
/// re-includes a file under an excluded directory, as in git), or the last rule matching the path
/// itself excludes it.
fn excluded(rules: &[Rule], segments: &[&str], is_dir: bool) -> bool {
    let verdict = |n: usize, dir: bool| {
        let path = &segments[..n];
        rules
            .iter()
            .rev()
            .find(|r| (dir || !r.dir_only) && r.glob.matches(path))
            .is_some_and(|r| !r.negated)
    };
    (1..segments.len()).any(|n| verdict(n, true)) || verdict(segments.len(), is_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(text: &str, path: &str, is_dir: bool) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        excluded(&rules(text), &segments, is_dir)
    }

    #[test]
    fn reads_gitignore_syntax_as_npm_ignore_does() {
        let cases = [
            ("secret.txt", "secret.txt", false, true),
            ("secret.txt", "a/b/secret.txt", false, true),
            ("/secret.txt", "a/secret.txt", false, false),
            ("src/hidden.rs", "src/hidden.rs", false, true),
            ("src/hidden.rs", "x/src/hidden.rs", false, false),
            ("*.log", "deep/x.log", false, true),
            ("build/", "build", true, true),
            ("build/", "build", false, false),
            ("build/", "build/out.txt", false, true),
            ("build", "build/a/b.txt", false, true),
            ("*.md\n!KEEP.md", "KEEP.md", false, false),
            ("*.md\n!KEEP.md", "other.md", false, true),
            ("docs/\n!docs/a.md", "docs/a.md", false, true),
            ("# comment\n\n\\#x", "#x", false, true),
            ("\\!bang", "!bang", false, true),
            ("Zed.md", "zed.MD", false, true),
            ("trail   ", "trail", false, true),
            ("a/**/z", "a/b/c/z", false, true),
        ];
        for (text, path, is_dir, want) in cases {
            assert_eq!(ignored(text, path, is_dir), want, "{text:?} {path}");
        }
    }
}
