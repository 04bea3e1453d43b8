//! What an `@dir` reference sends: the directory's structure, not its files, exactly as Qwen Code
//! 0.24.4 writes it (`packages/core/src/utils/getFolderStructure.ts`, called by `readDirectory`
//! in `packages/core/src/tools/readManyFiles.ts`):
//!
//! ```text
//! Showing up to 20 items:
//!
//! /abs/dir/
//! ├───a.txt
//! ├───node_modules/...
//! └───src/
//!     └───main.rs
//! ```
//!
//! Breadth first, at most 20 items (files and folders), each folder's files before its folders,
//! names sorted as `localeCompare` sorts them, `...` where items were left out. Only regular files
//! and directories are listed (as Node's `Dirent` reports them: links, FIFOs and devices never
//! appear, and a link is never followed); `node_modules`, `.git` and `dist`, and folders git or a
//! `.qwenignore` rule excludes, are shown as `name/...` and not entered; excluded files are left
//! out. Only names are sent: no file is opened.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::ignore::Ignorer;

/// Qwen Code's `MAX_ITEMS`.
const MAX_ITEMS: usize = 20;

/// Qwen Code's `DEFAULT_IGNORED_FOLDERS`.
const IGNORED_FOLDERS: [&str; 3] = ["node_modules", ".git", "dist"];

/// A directory with more entries than this is refused rather than read (its names are sorted
/// before 20 are kept, so all of them would be held).
pub(super) const MAX_DIR_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
struct Node {
    name: String,
    files: Vec<String>,
    folders: Vec<usize>,
    more_files: bool,
    more_folders: bool,
    ignored: bool,
}

/// The listing of `dir` (absolute and resolved), or why it cannot be made.
pub(super) fn structure(dir: &Path, ignorer: &Ignorer) -> Result<String, String> {
    let mut nodes = vec![Node::default()];
    let mut queue = VecDeque::from([(0, dir.to_path_buf())]);
    let mut count = 0;
    while let Some((id, path)) = queue.pop_front() {
        if count >= MAX_ITEMS {
            nodes[id].more_folders = true;
            continue;
        }
        let (files, folders) = match entries(&path) {
            Ok(found) => found,
            Err(e) if id == 0 => return Err(e),
            // Qwen Code skips a folder it cannot read.
            Err(_) => continue,
        };
        let asked: Vec<(PathBuf, bool)> = files
            .iter()
            .map(|f| (path.join(f), false))
            .chain(folders.iter().map(|f| (path.join(f), true)))
            .collect();
        let excluded: Vec<bool> = ignorer.check(&asked).iter().map(Option::is_some).collect();
        let (file_verdicts, folder_verdicts) = excluded.split_at(files.len());
        for (name, &excluded) in files.into_iter().zip(file_verdicts) {
            if count >= MAX_ITEMS {
                nodes[id].more_files = true;
                break;
            }
            if excluded {
                continue;
            }
            nodes[id].files.push(name);
            count += 1;
        }
        for (name, &excluded) in folders.into_iter().zip(folder_verdicts) {
            if count >= MAX_ITEMS {
                nodes[id].more_folders = true;
                break;
            }
            let hidden = excluded || IGNORED_FOLDERS.contains(&name.as_str());
            let child = nodes.len();
            if !hidden {
                queue.push_back((child, path.join(&name)));
            }
            nodes.push(Node {
                name,
                ignored: hidden,
                ..Node::default()
            });
            nodes[id].folders.push(child);
            count += 1;
        }
    }
    let mut lines = Vec::new();
    format(&nodes, 0, "", true, true, &mut lines);
    Ok(format!(
        "Showing up to {MAX_ITEMS} items:\n\n{}/\n{}",
        dir.display(),
        lines.join("\n")
    ))
}

/// The regular files and the directories of `dir`, each sorted; nothing else (no link).
fn entries(dir: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("`{}`: {e}", dir.display()))?;
    let (mut files, mut folders) = (Vec::new(), Vec::new());
    for (n, entry) in read.enumerate() {
        if n >= MAX_DIR_ENTRIES {
            return Err(format!(
                "`{}` has more than {MAX_DIR_ENTRIES} entries",
                dir.display()
            ));
        }
        let Ok(entry) = entry else { continue };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_file() {
            files.push(name);
        } else if kind.is_dir() {
            folders.push(name);
        }
    }
    files.sort_by(|a, b| locale_compare(a, b));
    folders.sort_by(|a, b| locale_compare(a, b));
    Ok((files, folders))
}

/// Qwen Code's `formatStructure`.
fn format(nodes: &[Node], id: usize, indent: &str, last: bool, root: bool, out: &mut Vec<String>) {
    let node = &nodes[id];
    let connector = |last: bool| if last { "└───" } else { "├───" };
    if !root || node.ignored {
        let more = if node.ignored { "..." } else { "" };
        out.push(format!("{indent}{}{}/{more}", connector(last), node.name));
    }
    let inner = if root {
        String::new()
    } else {
        format!("{indent}{}", if last { "    " } else { "│   " })
    };
    let no_folders_after = node.folders.is_empty() && !node.more_folders;
    for (i, file) in node.files.iter().enumerate() {
        let last_file = i + 1 == node.files.len() && no_folders_after;
        out.push(format!("{inner}{}{file}", connector(last_file)));
    }
    if node.more_files {
        out.push(format!("{inner}{}...", connector(no_folders_after)));
    }
    for (i, &folder) in node.folders.iter().enumerate() {
        let last_folder = i + 1 == node.folders.len() && !node.more_folders;
        format(nodes, folder, &inner, last_folder, false, out);
    }
    if node.more_folders {
        out.push(format!("{inner}└───..."));
    }
}

/// The order `String.prototype.localeCompare` (ICU, root collation) gives names, for the ASCII
/// names a repository holds: letters and digits by their base character (case ignored), with
/// whitespace, punctuation and symbols before digits and digits before letters in ICU's order;
/// on a tie, lowercase before uppercase at the first difference; then by bytes. Other characters
/// sort after ASCII, by code point.
pub(super) fn locale_compare(a: &str, b: &str) -> Ordering {
    const ORDER: &str = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz";
    let primary = |c: char| -> u32 {
        let lower = c.to_lowercase().next().unwrap_or(c);
        match ORDER.find(lower) {
            Some(at) => u32::try_from(at).unwrap_or(u32::MAX),
            None => 0x100 + u32::from(lower),
        }
    };
    let keys = |s: &str| s.chars().map(primary).collect::<Vec<_>>();
    keys(a)
        .cmp(&keys(b))
        .then_with(|| {
            a.chars()
                .zip(b.chars())
                .find(|(x, y)| x != y)
                .map_or(Ordering::Equal, |(x, y)| {
                    y.is_lowercase().cmp(&x.is_lowercase())
                })
        })
        .then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_as_node_locale_compare_does() {
        // The order of `names.sort((a, b) => a.localeCompare(b))` in Node 22 (ICU 76).
        let want = [
            "_u.txt", "-d.txt", ".hid", "10.txt", "9.txt", "a b", "a_b", "a-b", "a.b", "a.txt",
            "A.txt", "a#", "a~", "a$", "a0", "ab", "aB", "Ab", "AB", "alpha", "Alpha2", "b.txt",
            "B2.txt", "beta_dir", "e", "f", "Zed.md", "zed2.md",
        ];
        let mut names: Vec<&str> = want.iter().rev().copied().collect();
        names.sort_by(|a, b| locale_compare(a, b));
        assert_eq!(names, want);
    }
}
