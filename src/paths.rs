//! The one door for every path qwen reads or writes on someone's behalf: the paths a job file
//! names (`prompt_file`, `json_schema`, `vars`), which stay inside the job file's tree, and the
//! files of the command line (`--prompt-file`, `--var name=@path`, `--json-schema @path`,
//! `--extra-body @path`, `--system-prompt-file`, `--jobs`, and the outputs `--output`, `--summary`,
//! `--result-file`), which the
//! user named but which a link committed to the repository must not lead out of it. Unless the user
//! passed `--allow-outside-paths`.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// What the command line says about the paths of a job file.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathRules {
    /// `--allow-outside-paths`: the user means it; any path is taken as written.
    pub(crate) allow_outside: bool,
    /// The files this run writes (`--output`, `--summary`), with their flags: a job never reads
    /// one of them, even inside the tree (the run would empty its own input).
    pub(crate) outputs: Vec<(&'static str, PathBuf)>,
}

/// Where the paths of one job file may lead.
#[derive(Debug, Clone)]
pub(crate) struct JobPaths {
    /// The job file's directory (the working directory for `--jobs -`).
    base: PathBuf,
    rules: PathRules,
}

impl JobPaths {
    pub(crate) fn new(base: PathBuf, rules: PathRules) -> Self {
        Self { base, rules }
    }

    /// `rel` resolved ([`Self::confine`]), and refused when it is one of the run's own outputs.
    pub(crate) fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        let path = self.confine(rel)?;
        if let Some((flag, _)) = self
            .rules
            .outputs
            .iter()
            .find(|(_, out)| same_file(&path, out))
        {
            return Err(format!(
                "`{rel}` is the {flag} file of this run: writing it would destroy the input"
            ));
        }
        Ok(path)
    }

    /// `rel` resolved against the job file's directory. Refused (the message names the path) when
    /// it is absolute, climbs out with `..`, or leads outside once every symlink is resolved.
    fn confine(&self, rel: &str) -> Result<PathBuf, String> {
        if self.rules.allow_outside {
            return Ok(self.base.join(rel));
        }
        let hint = "pass --allow-outside-paths to allow it";
        let relative = Path::new(rel);
        if rel.is_empty() {
            return Err("`` is an empty path".to_owned());
        }
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(format!(
                "`{rel}` must be a path inside the job file's directory ({hint})"
            ));
        }
        let root = self
            .base
            .canonicalize()
            .map_err(|e| format!("`{}`: {e}", self.base.display()))?;
        let path = root
            .join(relative)
            .canonicalize()
            .map_err(|e| format!("`{rel}`: {e}"))?;
        if !path.starts_with(&root) {
            return Err(format!(
                "`{rel}` leads outside the job file's directory ({hint})"
            ));
        }
        Ok(path)
    }

    /// The regular file at `rel` (see [`Self::resolve`]), read as UTF-8, at most `max` bytes
    /// whatever size the file claims (`/proc` files claim 0). `what` names the field in messages.
    pub(crate) fn read(&self, what: &str, rel: &str, max: u64) -> Result<String, String> {
        let path = self.resolve(rel).map_err(|e| format!("{what} {e}"))?;
        read_regular(&path, what, rel, max)
    }
}

/// The files of the command line. The user typed their names, so a name may point anywhere
/// (`/tmp/pr.diff`, `../notes.txt`); what the repository controls is the tree, and a symlink in the
/// tree that leads out of it (to `/proc/self/environ`, `~/.ssh/id_rsa`, `~/.gitconfig`) is refused,
/// for reading and for writing, unless `--allow-outside-paths`. The workspace is the git working
/// tree around the working directory (the working directory outside a repository).
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    cwd: PathBuf,
    /// The workspace, every link resolved.
    root: PathBuf,
    allow_outside: bool,
}

impl Workspace {
    pub(crate) fn new(cwd: &Path, allow_outside: bool) -> Self {
        let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_owned());
        let root = cwd
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(&cwd)
            .to_path_buf();
        Self {
            cwd,
            root,
            allow_outside,
        }
    }

    /// `rel` (relative to the working directory) followed link by link: refused when a link that
    /// lies inside the workspace leads out of it. The path where the bytes are (it may not exist).
    pub(crate) fn follow(&self, rel: &str) -> Result<PathBuf, String> {
        if rel.is_empty() {
            return Err("`` is an empty path".to_owned());
        }
        let path = self.cwd.join(rel);
        if self.allow_outside {
            return Ok(path);
        }
        let mut resolved = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => resolved.push(component),
                Component::CurDir => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => {
                    let next = resolved.join(name);
                    let is_link =
                        std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
                    if !is_link {
                        resolved = next;
                        continue;
                    }
                    let target = link_target(&next);
                    let inside = next.starts_with(&self.root);
                    match target {
                        Some(t) if !inside || t.starts_with(&self.root) => resolved = t,
                        None if !inside => resolved = next,
                        _ => {
                            // The link's name is the repository's: shown with its control
                            // characters escaped.
                            let shown = next.strip_prefix(&self.root).unwrap_or(&next);
                            return Err(format!(
                                "`{rel}` goes through the link `{}`, which leads out of the workspace `{}` (a link in the repository may not point outside it; pass --allow-outside-paths if you trust it)",
                                shown.display().to_string().escape_debug(),
                                self.root.display()
                            ));
                        }
                    }
                }
            }
        }
        Ok(resolved)
    }

    /// The regular file `rel` names (see [`Self::follow`]), read as UTF-8, at most `max` bytes.
    /// `what` names the flag in messages.
    pub(crate) fn read(&self, what: &str, rel: &str, max: u64) -> Result<String, String> {
        let path = self.follow(rel).map_err(|e| format!("{what}: {e}"))?;
        read_regular(&path, what, rel, max)
    }

    /// An output file (`--output`, `--summary`, `--result-file`): where it is written, refused when
    /// a link in the workspace leads it out. `what` names the flag in messages.
    pub(crate) fn output(&self, what: &str, rel: &str) -> Result<PathBuf, String> {
        self.follow(rel).map_err(|e| format!("{what}: {e}"))
    }
}

/// The hint for a refusal of [`read_regular`] or [`Workspace::read`] (`message`): which limit to
/// raise when the file is too large, else what the door accepts.
pub(crate) fn read_hint(message: &str) -> &'static str {
    if message.contains("larger than") {
        "raise the limit with --max-input-bytes, or send less (nothing is ever cut silently)"
    } else if message.contains("leads out of the workspace") {
        "a link in the repository may not lead out of it: name the file itself, or pass --allow-outside-paths (with --jobs) if you trust the link"
    } else {
        "give a regular file (not a FIFO, a device or a directory); a relative path is relative to the working directory"
    }
}

/// Where the link `path` leads, every link resolved; for a link to a missing file, the missing
/// file in its resolved directory. `None`: it cannot be told.
fn link_target(path: &Path) -> Option<PathBuf> {
    if let Ok(full) = path.canonicalize() {
        return Some(full);
    }
    let mut target = std::fs::read_link(path).ok()?;
    if target.is_relative() {
        target = path.parent()?.join(target);
    }
    let name = target.file_name()?.to_owned();
    Some(target.parent()?.canonicalize().ok()?.join(name))
}

/// Kernel files (`/proc`, `/sys`, devices): they claim to be small regular files or are not
/// files at all, and hold the process's secrets (`/proc/self/environ`).
const KERNEL_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Whether `path` (its directory resolved) lies under `/proc`, `/sys` or `/dev`: never a place
/// qwen writes a file for someone.
pub(crate) fn in_kernel_tree(path: &Path) -> bool {
    let resolved = path.canonicalize().ok().or_else(|| {
        let parent = path.parent()?.canonicalize().ok()?;
        Some(parent.join(path.file_name()?))
    });
    let path = resolved.as_deref().unwrap_or(path);
    KERNEL_TREES.iter().any(|tree| path.starts_with(tree))
}

/// Read the regular file at `path` as UTF-8, at most `max` bytes whatever size it claims.
/// `what` and `shown` (the path as the user wrote it) make the messages. Its type is checked
/// before it is opened (a FIFO would block the open forever) and again on the opened file (one
/// swapped in between is never read); a file under `/proc`, `/sys` or `/dev` is refused.
pub(crate) fn read_regular(
    path: &Path,
    what: &str,
    shown: &str,
    max: u64,
) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{what} `{shown}` is not a regular file (a directory, a FIFO or a device is never read)"
        ));
    }
    if let Ok(full) = path.canonicalize()
        && KERNEL_TREES.iter().any(|tree| full.starts_with(tree))
    {
        return Err(format!(
            "{what} `{shown}` is a kernel file (`{}`): never read",
            full.display()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{what} `{shown}`: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{what} `{shown}` is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what} `{shown}`: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{what} `{shown}` is larger than {max} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{what} `{shown}` is not UTF-8 text"))
}

/// Whether `a` and `b` name the same file: the same device and inode when both exist (a hard
/// link or a symlink to the other counts), else the same path once the directory part is resolved.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        use std::os::unix::fs::MetadataExt;
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    let resolved = |p: &Path| {
        if let Ok(full) = p.canonicalize() {
            return full;
        }
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let parent = parent.canonicalize().unwrap_or_else(|_| parent.to_owned());
        p.file_name()
            .map_or(parent.clone(), |name| parent.join(name))
    };
    resolved(a) == resolved(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_tree_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        std::fs::create_dir_all(jobs.join("sub")).unwrap();
        std::fs::write(jobs.join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), jobs.join("link.txt")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", jobs.join("env")).unwrap();
        let confined = JobPaths::new(jobs.clone(), PathRules::default());
        assert!(confined.resolve("sub/a.txt").is_ok());
        assert!(
            confined.resolve("./sub/../sub/a.txt").is_err(),
            "`..` is refused"
        );
        for bad in [
            "/etc/passwd",
            "/proc/self/environ",
            "../secret.txt",
            "link.txt",
            "env",
            "",
        ] {
            assert!(confined.resolve(bad).is_err(), "{bad}");
        }
        let open = JobPaths::new(
            jobs.clone(),
            PathRules {
                allow_outside: true,
                outputs: vec![("--output", jobs.join("sub/a.txt"))],
            },
        );
        let err = open.read("prompt_file", "sub/a.txt", 10).unwrap_err();
        assert!(err.contains("is the --output file"), "{err}");
        assert_eq!(open.read("prompt_file", "link.txt", 10).unwrap(), "s");
        assert!(open.read("prompt_file", "/proc/self/environ", 4).is_err());
    }

    #[test]
    fn command_line_files_may_be_anywhere_but_a_link_in_the_workspace_may_not_lead_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let project = root.join("project");
        let elsewhere = root.join("elsewhere");
        std::fs::create_dir_all(project.join(".git")).unwrap();
        std::fs::create_dir_all(project.join("sub/inner")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(project.join("sub/a.txt"), "a").unwrap();
        std::fs::write(elsewhere.join("secret.txt"), "s").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, project.join(name)).unwrap();
        };
        link(&elsewhere.join("secret.txt"), "secret.txt");
        link(&elsewhere, "dir");
        link(Path::new("/proc/self/environ"), "environ");
        link(Path::new("sub/a.txt"), "inside.txt");
        link(&elsewhere.join("missing.txt"), "dangling.txt");
        std::os::unix::fs::symlink(project.join("sub/a.txt"), elsewhere.join("back.txt")).unwrap();
        // Run from a directory below the repository's top: the workspace is the whole tree.
        let door = Workspace::new(&project.join("sub/inner"), false);
        for ok in [
            "../a.txt",
            "../../inside.txt",
            "../../../elsewhere/secret.txt",
        ] {
            assert!(door.read("--var", ok, 10).is_ok(), "{ok}");
        }
        let outside = elsewhere.join("back.txt");
        assert_eq!(
            door.read("--var", &outside.to_string_lossy(), 10).unwrap(),
            "a"
        );
        for bad in [
            "../../secret.txt",
            "../../dir/secret.txt",
            "../../environ",
            "../../dir/../elsewhere/secret.txt",
            "../../sub/../secret.txt",
        ] {
            let err = door.read("--var", bad, 10).unwrap_err();
            assert!(err.contains("leads out of the workspace"), "{bad}: {err}");
        }
        let err = door
            .output("--result-file", "../../dangling.txt")
            .unwrap_err();
        assert!(err.contains("leads out of the workspace"), "{err}");
        assert!(door.output("--result-file", "../new.txt").is_ok());
        assert!(door.read("--var", "", 10).is_err());
        // Allowed: the links are followed; kernel files and non-files are still refused.
        let open = Workspace::new(&project, true);
        assert_eq!(open.read("--var", "secret.txt", 10).unwrap(), "s");
        let err = open.read("--var", "environ", 1 << 20).unwrap_err();
        assert!(err.contains("kernel file"), "{err}");
        let err = open.read("--var", "sub", 10).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = read_regular(&fifo, "prompt_file", "fifo", 10).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let jobs = JobPaths::new(dir.path().to_owned(), PathRules::default());
        let err = jobs.read("prompt_file", "fifo", 10).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
