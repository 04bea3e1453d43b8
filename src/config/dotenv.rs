//! Finds the one `.env` file that applies and reads it into a map; never writes the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::dotenv_parse::Parsed;
use crate::error::Error;

/// Where a `.env` file sits, which decides what we trust it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DotEnvKind {
    /// `<project>/.qwen/.env`
    ProjectQwen,
    /// `<project>/.env`: shared with other tools, so `DEBUG`/`DEBUG_MODE` are not taken from it.
    ProjectPlain,
    /// `~/.qwen/.env`
    HomeQwen,
    /// `~/.env`
    HomePlain,
}

impl DotEnvKind {
    pub(crate) fn is_project(self) -> bool {
        matches!(self, Self::ProjectQwen | Self::ProjectPlain)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DotEnvFile {
    pub(crate) path: PathBuf,
    pub(crate) kind: DotEnvKind,
    pub(crate) vars: HashMap<String, String>,
    /// Lines dotenv skips (1-based), for a warning naming the file and line.
    pub(crate) skipped_lines: Vec<usize>,
}

impl DotEnvFile {
    /// A non-empty value from the file.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// The result of the search: every path probed, in order, and the file used (the first found).
#[derive(Debug, Clone, Default)]
pub(crate) struct DotEnvSearch {
    pub(crate) probed: Vec<PathBuf>,
    pub(crate) found: Option<DotEnvFile>,
}

/// Walk up from `cwd` to `/` looking at `.qwen/.env` then `.env` at each level; if none is found,
/// try `~/.qwen/.env` then `~/.env`. Only the first file found is read; files are never merged.
pub(crate) fn discover(cwd: &Path, home: Option<&Path>) -> Result<DotEnvSearch, Error> {
    let mut search = DotEnvSearch::default();
    let home_candidates = home
        .map(|h| vec![h.join(".qwen").join(".env"), h.join(".env")])
        .unwrap_or_default();
    let project_candidates = cwd
        .ancestors()
        .flat_map(|dir| [dir.join(".qwen").join(".env"), dir.join(".env")]);
    for path in project_candidates.chain(home_candidates) {
        if search.probed.contains(&path) {
            continue;
        }
        search.probed.push(path.clone());
        if path.is_file() {
            let kind = classify(&path, home);
            let Parsed {
                vars,
                skipped_lines,
            } = read(&path)?;
            search.found = Some(DotEnvFile {
                path,
                kind,
                vars,
                skipped_lines,
            });
            break;
        }
    }
    Ok(search)
}

/// Where a file sits decides what it is trusted with. A file in HOME (`~/.qwen/.env`, `~/.env`) is
/// the user's own, unless HOME is (inside) a git working tree: then HOME is a project (a checkout,
/// a container whose HOME is the workspace), and its files are project files, whatever HOME says.
fn classify(path: &Path, home: Option<&Path>) -> DotEnvKind {
    let home = home.filter(|h| crate::gitignore::repo_root(h).is_none());
    let in_qwen_dir = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == ".qwen");
    let level = if in_qwen_dir {
        path.parent().and_then(Path::parent)
    } else {
        path.parent()
    };
    let at_home = home.is_some_and(|h| level == Some(h));
    match (at_home, in_qwen_dir) {
        (true, true) => DotEnvKind::HomeQwen,
        (true, false) => DotEnvKind::HomePlain,
        (false, true) => DotEnvKind::ProjectQwen,
        (false, false) => DotEnvKind::ProjectPlain,
    }
}

/// Largest `.env` file read: far above any real one, small enough that a hostile one costs nothing.
const MAX_DOTENV_BYTES: u64 = 1024 * 1024;

/// Read one file, as Qwen Code reads it (see `dotenv_parse`). Not valid UTF-8, or larger than 1 MiB, is an error (where dotenv would go on
/// with replacement characters): a file that cannot mean one thing is refused, never guessed.
fn read(path: &Path) -> Result<Parsed, Error> {
    use std::io::Read as _;
    let unreadable = |source: std::io::Error| Error::DotEnvUnreadable {
        path: path.to_owned(),
        source,
    };
    let invalid = |message: String| {
        unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ))
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DOTENV_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_DOTENV_BYTES {
        return Err(invalid(format!(
            "larger than {} KiB; a .env file holds a few KEY=value lines",
            MAX_DOTENV_BYTES / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        invalid(format!(
            "not valid UTF-8 (at byte {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok(super::dotenv_parse::parse(&text))
}

/// One warning per line a file had that was skipped, naming the file and line, never the content.
pub(crate) fn skipped_line_warnings(file: &DotEnvFile) -> Vec<String> {
    file.skipped_lines
        .iter()
        .map(|n| {
            format!(
                "warning: `{}` line {n}: not a KEY=value line, skipped",
                file.path.display()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_distinguishes_home_and_project_files() {
        let home = Path::new("/home/u");
        let cases = [
            ("/home/u/.qwen/.env", DotEnvKind::HomeQwen),
            ("/home/u/.env", DotEnvKind::HomePlain),
            ("/home/u/proj/.qwen/.env", DotEnvKind::ProjectQwen),
            ("/home/u/proj/.env", DotEnvKind::ProjectPlain),
            ("/home/u/.qwen/../.env", DotEnvKind::ProjectPlain),
            ("/srv/.env", DotEnvKind::ProjectPlain),
        ];
        for (path, want) in cases {
            assert_eq!(classify(Path::new(path), Some(home)), want, "{path}");
        }
    }
}
