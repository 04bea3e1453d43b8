//! Keeps the `.env` file a login writes out of git: find the repository, ask git whether the file
//! is ignored already, and if not add one line to the repository's top-level `.gitignore`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `ensure_ignored` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    NotARepository,
    AlreadyIgnored,
    Added { gitignore: PathBuf, line: String },
}

/// The working tree that contains `start`: the nearest ancestor with a `.git` directory or file.
pub(crate) fn repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Make sure git ignores `file` (an absolute path inside the repository, if any).
pub(crate) fn ensure_ignored(file: &Path) -> io::Result<Outcome> {
    ensure_ignored_below(file, None)
}

/// `ensure_ignored`, looking for the repository no higher than `ceiling` (tests set one, so that
/// a repository around the temporary directory cannot change the answer).
fn ensure_ignored_below(file: &Path, ceiling: Option<&Path>) -> io::Result<Outcome> {
    let root = file
        .parent()
        .and_then(repo_root)
        .filter(|root| ceiling.is_none_or(|c| root.starts_with(c)));
    let Some(root) = root else {
        return Ok(Outcome::NotARepository);
    };
    let Ok(relative) = file.strip_prefix(&root) else {
        return Ok(Outcome::NotARepository);
    };
    let line = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let gitignore = root.join(".gitignore");
    let text = match std::fs::read_to_string(&gitignore) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let ignored = git_says_ignored(&root, &line).unwrap_or_else(|| listed(&text, &line));
    if ignored {
        return Ok(Outcome::AlreadyIgnored);
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&gitignore)?;
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    out.write_all(format!("{separator}{line}\n").as_bytes())?;
    Ok(Outcome::Added { gitignore, line })
}

/// How git would publish a file: tracked (committed, or staged), or not ignored (the next
/// `git add .` takes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exposure {
    Tracked { relative: String },
    NotIgnored { relative: String },
}

impl Exposure {
    /// The file's path from the repository root, as git names it.
    pub(crate) fn relative(&self) -> &str {
        match self {
            Self::Tracked { relative } | Self::NotIgnored { relative } => relative,
        }
    }

    /// The `auth status --json` word.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::Tracked { .. } => "tracked",
            Self::NotIgnored { .. } => "not_ignored",
        }
    }
}

/// Whether git would publish `file`. Outside a repository (found by `stat` calls alone) this costs
/// nothing and spawns nothing; inside one, `git ls-files` and `git check-ignore` answer, with the
/// repository's fsmonitor hook disabled (a checkout's config must not run a command for us).
/// `None` when git is absent or cannot say: never an error.
pub(crate) fn exposure(file: &Path) -> Option<Exposure> {
    let root = file.parent().and_then(repo_root)?;
    let relative = file
        .strip_prefix(&root)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let tracked = git(&root, &["ls-files", "--error-unmatch", "--", &relative])?;
    if tracked {
        return Some(Exposure::Tracked { relative });
    }
    match git_says_ignored(&root, &relative) {
        Some(false) => Some(Exposure::NotIgnored { relative }),
        _ => None,
    }
}

/// For each of `files` (absolute, resolved paths in one repository), whether git ignores it:
/// all `false` outside a repository or when git cannot say. One `git check-ignore --stdin` run
/// for all of them (a directory listing or a glob asks about many at once). Used by `@path`
/// references, which never read an ignored file.
pub(crate) fn ignored_among(files: &[PathBuf]) -> Vec<bool> {
    let mut out = vec![false; files.len()];
    let Some(root) = files.first().and_then(|f| f.parent()).and_then(repo_root) else {
        return out;
    };
    let relative: Vec<Option<String>> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&root).ok()?.to_str()?;
            (!rel.is_empty() && !rel.contains('\0')).then(|| rel.to_owned())
        })
        .collect();
    let mut input = String::new();
    for rel in relative.iter().flatten() {
        input.push_str(rel);
        input.push('\0');
    }
    let Some(ignored) = git_check_ignore_stdin(&root, input.as_bytes()) else {
        return out;
    };
    for (slot, rel) in out.iter_mut().zip(&relative) {
        *slot = rel.as_ref().is_some_and(|r| ignored.contains(r));
    }
    out
}

/// `git check-ignore -z --stdin`: the paths of `input` (NUL-terminated, relative to `root`) that
/// git ignores; `None` when git cannot say. Its standard input is written on a thread of its own
/// (a full pipe on both sides would otherwise block both processes).
fn git_check_ignore_stdin(root: &Path, input: &[u8]) -> Option<std::collections::HashSet<String>> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "-c",
            "core.fsmonitor=false",
            "check-ignore",
            "-z",
            "--stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let output = std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = stdin.write_all(input);
        });
        child.wait_with_output()
    })
    .ok()?;
    if !matches!(output.status.code(), Some(0 | 1)) {
        return None;
    }
    Some(
        output
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

/// Run `git -C root <args>` quietly: `Some(true)` on exit 0, `Some(false)` on exit 1, else `None`.
fn git(root: &Path, args: &[&str]) -> Option<bool> {
    let status = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// `git check-ignore`: `Some(true)` ignored, `Some(false)` not, `None` when git cannot say
/// (not installed, or not a repository it understands).
fn git_says_ignored(root: &Path, relative: &str) -> Option<bool> {
    git(root, &["check-ignore", "-q", "--", relative])
}

/// Without git: whether `.gitignore` has a line that plainly covers `relative` (`.qwen/.env`).
pub(crate) fn listed(gitignore: &str, relative: &str) -> bool {
    let at_root = !relative.contains('/') || relative.starts_with(".qwen/");
    gitignore.lines().map(str::trim).any(|pattern| {
        let unanchored = pattern.trim_start_matches("**/");
        pattern == relative
            || pattern.strip_prefix('/') == Some(relative)
            || unanchored == ".env"
            || (relative.ends_with(".qwen/.env")
                && unanchored == ".qwen/.env"
                && pattern != unanchored)
            || (relative.contains(".qwen/")
                && matches!(pattern, "**/.qwen" | "**/.qwen/" | ".qwen/" | ".qwen"))
            || (at_root && matches!(pattern, "/.qwen" | "/.qwen/"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_recognises_plain_patterns() {
        let yes = [
            (".qwen/.env", ".qwen/.env"),
            ("/.qwen/.env", ".qwen/.env"),
            (".env", ".qwen/.env"),
            ("**/.env", "sub/.qwen/.env"),
            ("**/.qwen/.env", "sub/.qwen/.env"),
            (".qwen/", ".qwen/.env"),
            (".qwen", "sub/.qwen/.env"),
            ("/.qwen/", ".qwen/.env"),
            ("sub/.qwen/.env", "sub/.qwen/.env"),
        ];
        for (pattern, path) in yes {
            assert!(
                listed(&format!("target\n{pattern}\n"), path),
                "{pattern} {path}"
            );
        }
        let no = [
            (".qwen/.env", "sub/.qwen/.env"),
            ("/.qwen/", "sub/.qwen/.env"),
            ("# .qwen/.env", ".qwen/.env"),
            (".envrc", ".qwen/.env"),
        ];
        for (pattern, path) in no {
            assert!(!listed(pattern, path), "{pattern} {path}");
        }
    }

    #[test]
    fn adds_the_line_once_to_the_top_level_gitignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("sub/.qwen")).unwrap();
        std::fs::write(root.join(".gitignore"), "target").unwrap();
        let file = root.join("sub/.qwen/.env");
        // An empty `.git` directory is no repository to git, so the file scan decides.
        let first = ensure_ignored(&file).unwrap();
        assert_eq!(
            first,
            Outcome::Added {
                gitignore: root.join(".gitignore"),
                line: "sub/.qwen/.env".into()
            }
        );
        assert_eq!(ensure_ignored(&file).unwrap(), Outcome::AlreadyIgnored);
        assert_eq!(
            std::fs::read_to_string(root.join(".gitignore")).unwrap(),
            "target\nsub/.qwen/.env\n"
        );
    }

    #[test]
    fn outside_a_repository_nothing_happens() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".qwen/.env");
        assert_eq!(
            ensure_ignored_below(&file, Some(dir.path())).unwrap(),
            Outcome::NotARepository
        );
        assert!(!dir.path().join(".gitignore").exists());
    }
}
