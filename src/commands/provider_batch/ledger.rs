//! The ledger of one provider batch (`.qwen/batches/<name>.json`): what was planned, uploaded,
//! created and downloaded, saved atomically before and after every step so that a crashed
//! `submit` or `fetch` resumes without doing anything twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::api::RequestCounts;
use crate::error::Error;
use crate::fsutil;

/// Where a step stands. `Started` recorded before the request, `Done` after its answer: a ledger
/// that says `Started` means the answer may have been lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    #[default]
    Pending,
    Started,
    Done,
}

/// One input file and its batch at the provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the field names of the ledger file"
)]
pub(crate) struct Part {
    /// 1-based.
    pub(crate) part: usize,
    pub(crate) model: String,
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
    /// The input JSONL, under the ledger's directory, until the batch is created.
    pub(crate) input: String,
    pub(crate) upload: Step,
    pub(crate) input_file_id: Option<String>,
    pub(crate) create: Step,
    pub(crate) batch_id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) request_counts: Option<RequestCounts>,
    pub(crate) output_file_id: Option<String>,
    pub(crate) error_file_id: Option<String>,
    /// A batch-level error (`errors.data[0]`), for a failed batch.
    pub(crate) batch_error: Option<String>,
    /// Downloading this part's output and error files (each renamed into place when complete).
    #[serde(default)]
    pub(crate) download: Step,
    /// The downloaded output and error files, relative to the ledger's directory.
    pub(crate) output: Option<String>,
    pub(crate) errors: Option<String>,
    #[serde(default)]
    pub(crate) deleted_remote: bool,
}

impl Part {
    pub(crate) fn is_terminal(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(super::api::Batch::is_terminal)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Ledger {
    pub(crate) version: u32,
    pub(crate) name: String,
    /// A random id of this submission, in every batch's metadata with the name and the part.
    pub(crate) submission: String,
    pub(crate) created_at: u64,
    pub(crate) base_url: String,
    pub(crate) job_file: String,
    pub(crate) jobs: u64,
    pub(crate) completion_window: String,
    pub(crate) parts: Vec<Part>,
}

impl Ledger {
    /// The metadata qwen attaches to the batch of `part` (and looks for after a lost answer).
    pub(crate) fn metadata(&self, part: usize) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("qwen_batch".into(), Value::String(self.name.clone()));
        m.insert("qwen_part".into(), Value::String(part.to_string()));
        m.insert(
            "qwen_submission".into(),
            Value::String(self.submission.clone()),
        );
        m
    }

    /// The status of the whole batch: the parts' statuses when they agree, else the least advanced.
    pub(crate) fn overall_status(&self) -> String {
        let statuses: Vec<&str> = self
            .parts
            .iter()
            .map(|p| p.status.as_deref().unwrap_or("not_created"))
            .collect();
        if let Some(first) = statuses.first()
            && statuses.iter().all(|s| s == first)
        {
            return (*first).to_owned();
        }
        if statuses.iter().all(|s| super::api::Batch::is_terminal(s)) {
            return "ended".to_owned();
        }
        "in_progress".to_owned()
    }
}

/// The ledger file of `name` and the directory that holds its files.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub(crate) file: PathBuf,
    pub(crate) dir: PathBuf,
}

impl Place {
    pub(crate) fn new(state_dir: &Path, name: &str) -> Self {
        Self {
            file: state_dir.join(format!("{name}.json")),
            dir: state_dir.join(name),
        }
    }

    pub(crate) fn load(&self) -> Result<Option<Ledger>, Error> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::input(
                    format!("cannot read the ledger `{}`: {e}", self.file.display()),
                    "",
                ));
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::input(
                format!("the ledger `{}` is damaged: {e}", self.file.display()),
                "remove it to forget this batch (the provider keeps it)",
            )
        })
    }

    /// Replace the ledger atomically (temporary file, fsync, rename).
    pub(crate) fn save(&self, ledger: &Ledger) -> Result<(), Error> {
        let mut text = serde_json::to_vec_pretty(ledger).unwrap_or_default();
        text.push(b'\n');
        fsutil::write_private(&self.file, &text)
            .map_err(|e| Error::file("write the ledger", &self.file, e))
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// The project root: the nearest directory upward from `cwd` that holds `.qwen/` or `.git`, else
/// `cwd`. Batches are kept in `<root>/.qwen/batches`.
pub(crate) fn default_state_dir(cwd: &Path) -> PathBuf {
    let root = cwd
        .ancestors()
        .find(|d| d.join(".qwen").is_dir() || d.join(".git").exists())
        .unwrap_or(cwd);
    root.join(".qwen").join("batches")
}

/// A batch name is a file name: letters, digits, `.`, `_`, `-`, at most 64, not starting with `.`.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::input(
            format!("`{name}` is not a usable batch name"),
            "use letters, digits, `.`, `_` and `-` (at most 64), e.g. --name nightly-reviews",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_under_the_nearest_project_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/.git")).unwrap();
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        assert_eq!(
            default_state_dir(&root.join("a/b/c")),
            root.join("a/.qwen/batches")
        );
        std::fs::create_dir_all(root.join("a/b/.qwen")).unwrap();
        assert_eq!(
            default_state_dir(&root.join("a/b/c")),
            root.join("a/b/.qwen/batches")
        );
    }

    #[test]
    fn names_are_file_names() {
        assert!(check_name("nightly-reviews.v2_1").is_ok());
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_saved_ledger_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::new(dir.path(), "n");
        assert!(place.load().unwrap().is_none());
        let ledger = Ledger {
            name: "n".into(),
            parts: vec![Part {
                part: 1,
                upload: Step::Started,
                ..Part::default()
            }],
            ..Ledger::default()
        };
        place.save(&ledger).unwrap();
        let back = place.load().unwrap().unwrap();
        assert_eq!(back.parts[0].upload, Step::Started);
        assert_eq!(back.metadata(1)["qwen_part"], "1");
    }
}
