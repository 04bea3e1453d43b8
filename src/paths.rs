//! The one door for every path a job file names (`prompt_file`, `json_schema`, and any later
//! one): it stays inside the job file's directory tree unless the user passed `--allow-outside-paths`.

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
        let file = std::fs::File::open(&path).map_err(|e| format!("{what} `{rel}`: {e}"))?;
        // Checked on the opened file, so that a FIFO or a device swapped in is never read.
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(format!("{what} `{rel}` is not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{what} `{rel}`: {e}"))?;
        if bytes.len() as u64 > max {
            return Err(format!("{what} `{rel}` is larger than {max} bytes"));
        }
        String::from_utf8(bytes).map_err(|_| format!("{what} `{rel}` is not UTF-8 text"))
    }
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
}
