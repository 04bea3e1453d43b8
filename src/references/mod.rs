//! `@path` references in a prompt, as Qwen Code reads them: each file, directory or glob a prompt
//! names with `@` is read through the one path door (`paths::JobPaths`, rooted at a workspace
//! directory) and sent after the prompt, in Qwen Code's own block:
//!
//! ```text
//! <the prompt, `@path`s kept>
//! --- Content from referenced files ---
//! Content from <the path as written>:
//! <a file's text, or a directory's structure (`tree`)>
//! --- End of content ---
//! ```
//!
//! (Qwen Code 0.24.4: `packages/cli/src/ui/hooks/atCommandProcessor.ts`, `parseAllAtCommands`,
//! `resolveAtCommandQuery` and its `displayPaths`; `packages/core/src/tools/readManyFiles.ts`,
//! the header, the `Content from` prefix, `readDirectory` and the terminator; checked against
//! the request body 0.24.4 sends.) Where Qwen Code skips a reference quietly (outside the
//! workspace, git- or qwen-ignored, unreadable), qwen refuses it before anything is sent: a
//! prompt that silently lost a file is a wrong answer in CI. A reference to nothing is text (an
//! e-mail address, `@user`, a decorator), as in Qwen Code. `\@` is never a reference. A glob is
//! qwen's own (Qwen Code sends it as text): its files, each in its own block (`glob`).

use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::paths::{JobPaths, PathRules};

mod glob;
mod ignore;
mod tree;

use ignore::Ignorer;

/// Where references may lead, and how much they may bring.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    /// The working directory first, then `--include-directories`, as given.
    pub(crate) roots: Vec<PathBuf>,
    /// The largest prompt, references included (`--max-input-bytes`).
    pub(crate) max_bytes: u64,
}

/// One piece of a prompt: text, or an `@path` (unescaped, `@` included).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    At(String),
}

/// Qwen Code's `parseAllAtCommands`: an `@` not preceded by `\` starts a reference, which ends at
/// unescaped whitespace or one of `,;!?()[]{}`, or at a `.` followed by whitespace or the end (so
/// `@a.txt.` ends before the full stop). Blank text parts are dropped, as there.
fn parse(query: &str) -> Vec<Part> {
    let chars: Vec<char> = query.chars().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at = (i..chars.len()).find(|&j| chars[j] == '@' && (j == 0 || chars[j - 1] != '\\'));
        let Some(at) = at else {
            parts.push(Part::Text(chars[i..].iter().collect()));
            break;
        };
        if at > i {
            parts.push(Part::Text(chars[i..at].iter().collect()));
        }
        let mut end = at + 1;
        let mut escaped = false;
        while end < chars.len() {
            let c = chars[end];
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c.is_whitespace()
                || ",;!?()[]{}".contains(c)
                || (c == '.' && chars.get(end + 1).is_none_or(|n| n.is_whitespace()))
            {
                break;
            }
            end += 1;
        }
        parts.push(Part::At(unescape(&chars[at..end])));
        i = end;
    }
    parts.retain(|p| !matches!(p, Part::Text(t) if t.trim().is_empty()));
    parts
}

/// Qwen Code's `unescapePath`: `\x` becomes `x`.
fn unescape(chars: &[char]) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for &c in chars {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// One block of the referenced content: a file's text or a directory's structure.
struct Entry {
    /// The resolved path (a file read twice is sent once, as in Qwen Code).
    path: PathBuf,
    /// What `Content from …:` names: the path as the prompt wrote it (Qwen Code 0.24.4's
    /// `displayPaths`), or for a glob's file, the pattern's fixed part and the file's path under it.
    display: String,
    content: String,
}

/// The most files one glob may bring (a bigger match is refused: nothing is cut silently).
const MAX_GLOB_FILES: usize = 100;

/// The most directory entries one glob may look at while searching.
const MAX_GLOB_SEARCH: usize = 50_000;

/// The prompt with its references expanded; the prompt unchanged when it names nothing that
/// exists. A reference that exists but may not be read (outside the workspace, a link out,
/// `/proc`, a FIFO or device, git-ignored or excluded by `.qwenignore`, too large, not UTF-8, a
/// glob matching too much) is an input error (exit 42) naming it, before anything is sent.
pub(crate) fn expand(prompt: &str, workspace: &Workspace) -> Result<String, Error> {
    let parts = parse(prompt);
    let mut entries: Vec<Entry> = Vec::new();
    let mut total = prompt.len() as u64;
    for part in &parts {
        let Part::At(at) = part else { continue };
        let left = workspace.max_bytes.saturating_sub(total);
        let found = resolve(&at[1..], workspace, left).map_err(|why| refused(at, &why))?;
        for entry in found {
            let is_dir = entry.path.is_dir();
            if is_dir || !entries.iter().any(|e| e.path == entry.path) {
                total += (entry.content.len() + entry.display.len() + 16) as u64;
                entries.push(entry);
            }
        }
    }
    if entries.is_empty() {
        return Ok(prompt.to_owned());
    }
    let mut out = rebuilt(&parts);
    out.push_str("\n--- Content from referenced files ---");
    for entry in &entries {
        out.push_str("\nContent from ");
        out.push_str(&entry.display);
        out.push_str(":\n");
        out.push_str(&entry.content);
    }
    out.push_str("\n--- End of content ---");
    if out.len() as u64 > workspace.max_bytes {
        return Err(Error::input(
            format!(
                "the prompt with its `@` references is larger than the limit of {} bytes; it was not sent",
                workspace.max_bytes
            ),
            "raise the limit with --max-input-bytes, or reference less (nothing is ever cut silently)",
        ));
    }
    Ok(out)
}

/// The prompt's text as Qwen Code 0.24.4 rebuilds it (`buildInitialQueryText`): the parts in
/// order, a space before every reference that does not follow one, `\ ` unescaped, trimmed.
fn rebuilt(parts: &[Part]) -> String {
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Text(t) => text.push_str(t),
            Part::At(at) => {
                if !text.is_empty() && !text.ends_with(' ') {
                    text.push(' ');
                }
                text.push_str(at);
            }
        }
    }
    text.trim().to_owned()
}

fn refused(at: &str, why: &str) -> Error {
    Error::input(
        format!(
            "the reference `{}` was refused: {why}; nothing was sent",
            at.escape_debug()
        ),
        "reference a regular text file, a directory or a glob inside the working directory (widen it with --include-directories DIR), or write `\\@` for a literal `@`",
    )
}

/// What `name` brings: nothing (it names nothing: text), one file or directory, or a glob's
/// files; `left` bytes at most.
fn resolve(name: &str, workspace: &Workspace, left: u64) -> Result<Vec<Entry>, String> {
    match find(name, workspace) {
        Some(found) => {
            let (root, rel) = found?;
            Ok(vec![read(&root, &rel, name, left, None)?])
        }
        None if glob::is_glob(name) => glob_files(name, workspace, left),
        None => Ok(Vec::new()),
    }
}

/// Which workspace root `name` lies under, and its path relative to that root: `None` when
/// nothing exists at that name under any root (then it is text), `Some(Err)` when something
/// exists but outside every root.
fn find(name: &str, workspace: &Workspace) -> Option<Result<(PathBuf, String), String>> {
    if name.is_empty() {
        return None;
    }
    let path = Path::new(name);
    if path.is_absolute() {
        std::fs::symlink_metadata(path).ok()?;
        let canonical = match path.canonicalize() {
            Ok(c) => c,
            Err(e) => return Some(Err(format!("it cannot be resolved: {e}"))),
        };
        for root in &workspace.roots {
            let Ok(root) = root.canonicalize() else {
                continue;
            };
            if let Ok(rel) = canonical.strip_prefix(&root) {
                let rel = rel.to_string_lossy();
                let rel = if rel.is_empty() { "." } else { &rel };
                return Some(Ok((root, rel.to_owned())));
            }
        }
        return Some(Err("it is outside the workspace".to_owned()));
    }
    // `..` is refused by the door even when it would land inside: say so rather than
    // "not found" when the target exists.
    let climbs = path.components().any(|c| matches!(c, Component::ParentDir));
    workspace
        .roots
        .iter()
        .find(|root| std::fs::symlink_metadata(root.join(path)).is_ok())
        .map(|root| {
            if climbs {
                Err("`..` may not climb in a reference".to_owned())
            } else {
                Ok((root.clone(), name.to_owned()))
            }
        })
}

/// Read `rel` under `root` through the path door, after the checks the door leaves to its
/// callers: the kind of file (a FIFO would block the open itself), `/proc`, `/sys`, `/dev`, and
/// the project's ignore rules (unless `checked` by them already: a glob's files). A directory
/// brings its structure (`tree`).
fn read(
    root: &Path,
    rel: &str,
    display: &str,
    max: u64,
    checked: Option<&Ignorer>,
) -> Result<Entry, String> {
    let door = JobPaths::new(root.to_owned(), PathRules::default());
    let path = door.resolve(rel).map_err(|e| {
        e.replace("the job file's directory", "the workspace")
            .replace(" (pass --allow-outside-paths to allow it)", "")
    })?;
    if ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return Err(format!("`{}` is a system file", path.display()));
    }
    let meta = std::fs::metadata(&path).map_err(|e| e.to_string())?;
    if !meta.is_file() && !meta.is_dir() {
        return Err("it is not a regular file (a FIFO, socket or device)".to_owned());
    }
    let loaded;
    let ignorer = if let Some(ignorer) = checked {
        ignorer
    } else {
        loaded = Ignorer::load(root)?;
        if let Some(why) = loaded.check(&[(path.clone(), meta.is_dir())])[0] {
            return Err(why.describe());
        }
        &loaded
    };
    let content = if meta.is_dir() {
        tree::structure(&path, ignorer)?
    } else if meta.len() > max {
        return Err(format!(
            "it is {} bytes, more than the {max} bytes left under --max-input-bytes",
            meta.len()
        ));
    } else {
        door.read("the file", rel, max)?
    };
    Ok(Entry {
        path,
        display: display.to_owned(),
        content,
    })
}

/// A glob's files (Qwen Code 0.24.4 sends a glob as text: this is qwen's own), searched under
/// the pattern's fixed part in the first root where that exists (`src` for `src/**/*.rs`; the
/// working directory when the pattern starts with one), without following links, leaving out
/// what git or `.qwenignore` excludes, in path order. No match at all is text, like a name of
/// nothing; more than `MAX_GLOB_FILES` files, or a search through more than `MAX_GLOB_SEARCH`
/// entries, is refused.
fn glob_files(name: &str, workspace: &Workspace, left: u64) -> Result<Vec<Entry>, String> {
    let segments: Vec<&str> = name.split('/').collect();
    if segments.contains(&"..") {
        return Err("`..` may not climb in a reference".to_owned());
    }
    let fixed = segments.iter().take_while(|s| !glob::is_glob(s)).count();
    let base = segments[..fixed].join("/");
    let (root, rel) = if base.is_empty() {
        if name.starts_with('/') {
            return Err("a glob from `/` is outside the workspace".to_owned());
        }
        (workspace.roots[0].clone(), ".".to_owned())
    } else {
        match find(&base, workspace) {
            Some(found) => found?,
            None => return Ok(Vec::new()),
        }
    };
    let door = JobPaths::new(root.clone(), PathRules::default());
    let Ok(dir) = door.resolve(&rel) else {
        return Err(format!("`{base}` leads outside the workspace"));
    };
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let ignorer = Ignorer::load(&root)?;
    let pattern = glob::Glob::new(&segments[fixed..].join("/"), false);
    let files = glob::search(&dir, &pattern, &ignorer, MAX_GLOB_FILES, MAX_GLOB_SEARCH)?;
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{}/", base.trim_end_matches('/'))
    };
    let mut out = Vec::with_capacity(files.len());
    let mut spent = 0u64;
    for under in files {
        let rel_file = if rel == "." {
            under.clone()
        } else {
            format!("{rel}/{under}")
        };
        let display = format!("{prefix}{under}");
        let entry = read(
            &root,
            &rel_file,
            &display,
            left.saturating_sub(spent),
            Some(&ignorer),
        )
        .map_err(|why| format!("its match `{}`: {why}", display.escape_debug()))?;
        spent += entry.content.len() as u64;
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Part {
        Part::At(s.to_owned())
    }
    fn text(s: &str) -> Part {
        Part::Text(s.to_owned())
    }

    #[test]
    fn parses_like_qwen_code() {
        let cases: [(&str, Vec<Part>); 8] = [
            (
                "summarize @README.md",
                vec![text("summarize "), at("@README.md")],
            ),
            (
                "read @a.txt. Then stop",
                vec![text("read "), at("@a.txt"), text(". Then stop")],
            ),
            ("@a,@b", vec![at("@a"), text(","), at("@b")]),
            (
                "see @my\\ file.txt now",
                vec![text("see "), at("@my file.txt"), text(" now")],
            ),
            ("mail me\\@example.com", vec![text("mail me\\@example.com")]),
            ("a @ b", vec![text("a "), at("@"), text(" b")]),
            ("(@x)", vec![text("("), at("@x"), text(")")]),
            ("@x @y", vec![at("@x"), at("@y")]),
        ];
        for (query, want) in cases {
            assert_eq!(parse(query), want, "{query}");
        }
    }

    fn workspace(dir: &Path) -> Workspace {
        Workspace {
            roots: vec![dir.to_owned()],
            max_bytes: 1000,
        }
    }

    #[test]
    fn expands_in_qwen_codes_format() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), "alpha\n").unwrap();
        std::fs::write(root.join("b.txt"), "beta").unwrap();
        let ws = workspace(&root);
        let got = expand("compare @a.txt and @b.txt, @a.txt.", &ws).unwrap();
        let want = "compare @a.txt and @b.txt, @a.txt.\n--- Content from referenced files ---\nContent from a.txt:\nalpha\n\nContent from b.txt:\nbeta\n--- End of content ---";
        assert_eq!(got, want);
        // Qwen Code 0.24.4 puts a space before every reference once something is read.
        let got = expand("x(@a.txt)y,@b.txt", &ws).unwrap();
        assert!(got.starts_with("x( @a.txt)y, @b.txt\n"), "{got}");
        for unchanged in ["mail a@b.example now", "no refs", "a @ b", "see \\@a.txt"] {
            assert_eq!(expand(unchanged, &ws).unwrap(), unchanged);
        }
    }

    #[test]
    fn refuses_what_may_not_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        std::fs::write(root.join("big"), "x".repeat(2000)).unwrap();
        std::fs::write(root.join("bin"), [0xff, 0xfe]).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", root.join("env")).unwrap();
        std::os::unix::fs::symlink(base.join("gone"), root.join("dangling")).unwrap();
        let fifo = root.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let ws = workspace(&root);
        for bad in [
            "@out",
            "@env",
            "@dangling",
            "@fifo",
            "@big",
            "@bin",
            "@/proc/self/environ",
            "@../secret",
            &format!("@{}", base.join("secret").display()),
        ] {
            let err = expand(&format!("x {bad}"), &ws).unwrap_err();
            assert_eq!(err.exit_status(), crate::exit::ExitStatus::Input, "{bad}");
            assert!(err.to_string().contains("was refused"), "{bad}: {err}");
        }
        let wider = Workspace {
            roots: vec![root.clone(), base.clone()],
            max_bytes: 1000,
        };
        assert!(
            expand(&format!("x @{}", base.join("secret").display()), &wider).is_ok(),
            "--include-directories widens"
        );
    }
}
