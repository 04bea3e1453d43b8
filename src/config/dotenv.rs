//! Finds the one `.env` file that applies and reads it into a map; never writes the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
            let vars = read(&path)?;
            search.found = Some(DotEnvFile { path, kind, vars });
            break;
        }
    }
    Ok(search)
}

fn classify(path: &Path, home: Option<&Path>) -> DotEnvKind {
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

/// Parse one file with dotenvy's iterator (which never touches the process environment).
pub(crate) fn read(path: &Path) -> Result<HashMap<String, String>, Error> {
    let unreadable = |source: std::io::Error| Error::DotEnvUnreadable {
        path: path.to_owned(),
        source,
    };
    let iter = dotenvy::from_path_iter(path).map_err(|e| unreadable(dotenv_io(e)))?;
    let mut vars = HashMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| unreadable(dotenv_io(e)))?;
        vars.insert(k, v);
    }
    Ok(vars)
}

fn dotenv_io(err: dotenvy::Error) -> std::io::Error {
    match err {
        dotenvy::Error::Io(io) => io,
        // dotenvy's message quotes the whole entry, value included (for an unterminated quote,
        // the rest of the file): it may hold the key, so name the variable only.
        dotenvy::Error::LineParse(entry, _) => {
            std::io::Error::new(std::io::ErrorKind::InvalidData, unparsable_entry(&entry))
        }
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// What to say about an entry that cannot be parsed, without showing its value.
fn unparsable_entry(entry: &str) -> String {
    let name = entry
        .split_once('=')
        .map(|(name, _)| name.trim().trim_start_matches("export ").trim())
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        });
    match name {
        Some(name) => format!(
            "the entry for `{name}` cannot be parsed (an unterminated quote?); its value is not shown"
        ),
        None => "a line cannot be parsed (expected KEY=value); its content is not shown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_names_the_variable_but_never_the_value() {
        let cases = [
            (
                "OPENAI_API_KEY=\"sk-secret\nOTHER=1\n",
                Some("`OPENAI_API_KEY`"),
            ),
            ("export OPENAI_MODEL='m", Some("`OPENAI_MODEL`")),
            ("sk-secret-without-equals", None),
        ];
        for (entry, name) in cases {
            let message = unparsable_entry(entry);
            assert!(!message.contains("secret"), "{message}");
            if let Some(name) = name {
                assert!(message.contains(name), "{message}");
            }
        }
    }

    #[test]
    fn classify_distinguishes_home_and_project_files() {
        let home = Path::new("/home/u");
        let cases = [
            ("/home/u/.qwen/.env", DotEnvKind::HomeQwen),
            ("/home/u/.env", DotEnvKind::HomePlain),
            ("/home/u/proj/.qwen/.env", DotEnvKind::ProjectQwen),
            ("/home/u/proj/.env", DotEnvKind::ProjectPlain),
            ("/srv/.env", DotEnvKind::ProjectPlain),
        ];
        for (path, want) in cases {
            assert_eq!(classify(Path::new(path), Some(home)), want, "{path}");
        }
    }
}
