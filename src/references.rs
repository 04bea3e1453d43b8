//! `@path` references in a prompt, as Qwen Code reads them: each file a prompt names with `@` is
//! read through the one path door (`paths::JobPaths`, rooted at a workspace directory) and its
//! content sent after the prompt, in Qwen Code's own block:
//!
//! ```text
//! <the prompt, `@path`s kept>
//! --- Content from referenced files ---
//! Content from /abs/path:
//! <content>
//! --- End of content ---
//! ```
//!
//! (Qwen Code: `packages/cli/src/ui/hooks/atCommandProcessor.ts`, `parseAllAtCommands` and
//! `resolveAtCommandQuery`; `packages/core/src/utils/readManyFiles.ts`, the header, the
//! `Content from` prefix and the terminator.) Where Qwen Code skips a reference quietly (outside
//! the workspace, git-ignored, unreadable), qwen refuses it before anything is sent: a prompt that
//! silently lost a file is a wrong answer in CI. A reference to nothing is text (an e-mail
//! address, `@user`, a decorator), as in Qwen Code. `\@` is never a reference.

use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::gitignore;
use crate::paths::{JobPaths, PathRules};

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

/// A reference that names an existing file, read.
struct Read {
    path: PathBuf,
    content: String,
}

/// The prompt with its references expanded; the prompt unchanged when it names no existing file.
/// A reference that exists but may not be read (outside the workspace, a link out, `/proc`, a
/// FIFO or device, a directory, git-ignored, too large, not UTF-8) is an input error (exit 42)
/// naming it, before anything is sent.
pub(crate) fn expand(prompt: &str, workspace: &Workspace) -> Result<String, Error> {
    let parts = parse(prompt);
    let mut files: Vec<Read> = Vec::new();
    let mut resolved = Vec::with_capacity(parts.len());
    let mut total = prompt.len() as u64;
    for part in &parts {
        let Part::At(at) = part else {
            resolved.push(false);
            continue;
        };
        let name = &at[1..];
        let Some(found) = find(name, workspace) else {
            resolved.push(false);
            continue;
        };
        let (root, rel) = found.map_err(|why| refused(at, &why))?;
        let left = workspace.max_bytes.saturating_sub(total);
        let read = read(&root, &rel, left).map_err(|why| refused(at, &why))?;
        if !files.iter().any(|f| f.path == read.path) {
            total += read.content.len() as u64 + read.path.as_os_str().len() as u64 + 16;
            files.push(read);
        }
        resolved.push(true);
    }
    if files.is_empty() {
        return Ok(prompt.to_owned());
    }
    let mut text = String::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Text(t) => text.push_str(t),
            Part::At(at) => {
                let after_text_or_file = i > 0
                    && match &parts[i - 1] {
                        Part::Text(_) => true,
                        Part::At(_) => resolved[i - 1] || !resolved[i],
                    };
                if !text.is_empty() && !text.ends_with(' ') && after_text_or_file {
                    text.push(' ');
                }
                text.push_str(at);
            }
        }
    }
    let mut out = text.trim().to_owned();
    out.push_str("\n--- Content from referenced files ---");
    for file in &files {
        out.push_str("\nContent from ");
        out.push_str(&file.path.display().to_string());
        out.push_str(":\n");
        out.push_str(&file.content);
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

fn refused(at: &str, why: &str) -> Error {
    Error::input(
        format!(
            "the reference `{}` was refused: {why}; nothing was sent",
            at.escape_debug()
        ),
        "reference a regular text file inside the working directory (widen it with --include-directories DIR), or write `\\@` for a literal `@`",
    )
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
                return Some(Ok((root, rel.to_string_lossy().into_owned())));
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
/// git's ignore rules.
fn read(root: &Path, rel: &str, max: u64) -> Result<Read, String> {
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
    if meta.is_dir() {
        return Err("it is a directory: name the files in it".to_owned());
    }
    if !meta.is_file() {
        return Err("it is not a regular file (a FIFO, socket or device)".to_owned());
    }
    if gitignore::ignored(&path) {
        return Err("git ignores it".to_owned());
    }
    if meta.len() > max {
        return Err(format!(
            "it is {} bytes, more than the {max} bytes left under --max-input-bytes",
            meta.len()
        ));
    }
    let content = door.read("the file", rel, max)?;
    Ok(Read { path, content })
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
        let want = format!(
            "compare @a.txt and @b.txt, @a.txt.\n--- Content from referenced files ---\nContent from {0}/a.txt:\nalpha\n\nContent from {0}/b.txt:\nbeta\n--- End of content ---",
            root.display()
        );
        assert_eq!(got, want);
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
            "@sub",
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
