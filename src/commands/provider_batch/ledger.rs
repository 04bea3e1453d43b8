//! The ledger of one provider batch (`.qwen/batches/<name>.json`): what was planned, uploaded,
//! created and downloaded, saved atomically before and after every step so that a crashed
//! `submit` or `fetch` resumes without doing anything twice.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::batch_api::{self as api, Batch, RequestCounts};
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
        self.status.as_deref().is_some_and(Batch::is_terminal)
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
    /// The Batch API the batch was submitted to (a ledger from before it existed: `OpenAI`'s,
    /// chat lines).
    #[serde(default)]
    pub(crate) api: api::BatchKind,
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

    /// Whether qwen could have written this ledger for the batch `name`, checked as if a stranger
    /// wrote it: its name is its file's, every file name is the one qwen gives that part (no
    /// separator, no `..`, no other file), every id passes [`api::check_id`], every status
    /// [`api::check_status`], and no text holds a control character. The reason names no value
    /// raw.
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("version {} is not 1", self.version));
        }
        if self.name != name {
            return Err(format!(
                "it is the ledger of another batch, not of `{name}`"
            ));
        }
        if self.submission.is_empty()
            || self.submission.len() > 64
            || !self.submission.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err("`submission` is not an id qwen makes".to_owned());
        }
        plain("base_url", &self.base_url)?;
        plain("job_file", &self.job_file)?;
        plain("completion_window", &self.completion_window)?;
        for (i, p) in self.parts.iter().enumerate() {
            let n = i + 1;
            let at = |why: String| format!("part {n}: {why}");
            if p.part != n {
                return Err(at(format!("numbered {}", p.part)));
            }
            let names = [
                ("input", Some(&p.input), "input"),
                ("output", p.output.as_ref(), "output"),
                ("errors", p.errors.as_ref(), "errors"),
            ];
            for (field, value, kind) in names {
                if let Some(value) = value
                    && *value != part_file(n, kind)
                {
                    return Err(at(format!(
                        "`{field}` is not `{}`, the only file qwen names there",
                        part_file(n, kind)
                    )));
                }
            }
            let ids = [
                ("input_file_id", &p.input_file_id),
                ("batch_id", &p.batch_id),
                ("output_file_id", &p.output_file_id),
                ("error_file_id", &p.error_file_id),
            ];
            for (field, id) in ids {
                if let Some(id) = id {
                    api::check_id(id).map_err(|e| at(format!("`{field}` {e}")))?;
                }
            }
            if let Some(status) = &p.status {
                api::check_status(status).map_err(|e| at(format!("`status` {e}")))?;
            }
            plain("model", &p.model).map_err(at)?;
            if let Some(e) = &p.batch_error {
                plain("batch_error", e).map_err(at)?;
            }
        }
        Ok(())
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
        if statuses.iter().all(|s| Batch::is_terminal(s)) {
            return "ended".to_owned();
        }
        "in_progress".to_owned()
    }
}

/// The file qwen writes for part `number`: `part-0001.input.jsonl`, `.output.jsonl`, `.errors.jsonl`.
pub(crate) fn part_file(number: usize, kind: &str) -> String {
    format!("part-{number:04}.{kind}.jsonl")
}

/// Text of a ledger that is shown (a model name, a path): one line, no control characters or
/// bidirectional overrides, at most 4096 characters.
fn plain(field: &str, text: &str) -> Result<(), String> {
    let bad = text.chars().count() > 4096
        || text.chars().any(|c| {
            c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        });
    if bad {
        return Err(format!("`{field}` holds control characters or is too long"));
    }
    Ok(())
}

/// The ledger file of `name`, the directory that holds its files, and its lock file.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub(crate) name: String,
    pub(crate) file: PathBuf,
    pub(crate) dir: PathBuf,
    lock: PathBuf,
}

/// The file qwen writes into every directory of a batch it creates: only a directory holding it
/// is ever removed (a directory a repository committed under that name is refused instead).
pub(crate) const MARKER: &str = ".qwen-batch";

impl Place {
    /// `name` must have passed [`check_name`]; `state_dir` [`state_dir`].
    pub(crate) fn new(state_dir: &Path, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            file: state_dir.join(format!("{name}.json")),
            dir: state_dir.join(name),
            lock: state_dir.join(format!("{name}.lock")),
        }
    }

    /// The ledger, checked as if a stranger wrote it ([`Ledger::check`]): a committed ledger is
    /// data from the tree. `None` when there is none; a link, a FIFO or a ledger that fails the
    /// check is damaged (exit 42).
    pub(crate) fn load(&self) -> Result<Option<Ledger>, Error> {
        let damaged = |why: String| {
            Error::input(
                format!("the ledger `{}` is damaged: {why}", self.file.display()),
                "remove it (and its directory) to forget this batch; the provider keeps the batch",
            )
        };
        let file = match open_state_file(&self.file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(damaged(e.to_string())),
        };
        let mut text = String::new();
        file.take(MAX_LEDGER_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| damaged(e.to_string()))?;
        if text.len() as u64 > MAX_LEDGER_BYTES {
            return Err(damaged(format!("larger than {MAX_LEDGER_BYTES} bytes")));
        }
        let ledger: Ledger = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        ledger.check(&self.name).map_err(damaged)?;
        self.check_dir()?;
        Ok(Some(ledger))
    }

    /// The batch's directory is a real directory (not a link) when it exists.
    fn check_dir(&self) -> Result<(), Error> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) if !m.is_dir() => Err(Error::input(
                format!(
                    "`{}` is not a directory qwen made (a link or a file)",
                    self.dir.display()
                ),
                "remove it; qwen keeps a batch's files only in a directory it created",
            )),
            _ => Ok(()),
        }
    }

    /// Whether the batch's directory holds qwen's marker (a regular file, not a link).
    pub(crate) fn made_by_qwen(&self) -> bool {
        std::fs::symlink_metadata(self.dir.join(MARKER)).is_ok_and(|m| m.is_file())
    }

    /// A fresh, empty directory for a new plan, with the marker. An old one is removed only when
    /// qwen made it (it holds [`MARKER`]); anything else there is refused, never removed.
    pub(crate) fn fresh_dir(&self) -> Result<(), Error> {
        self.check_dir()?;
        if std::fs::symlink_metadata(&self.dir).is_ok() {
            if !self.made_by_qwen() {
                return Err(Error::input(
                    format!(
                        "`{}` exists and was not made by qwen (it has no `{MARKER}`)",
                        self.dir.display()
                    ),
                    "remove it yourself, or give this batch another --name; nothing was uploaded",
                ));
            }
            // Files of a plan that crashed before its ledger was written are stale.
            std::fs::remove_dir_all(&self.dir).map_err(|e| Error::file("clear", &self.dir, e))?;
        }
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .map_err(|e| Error::file("create", &self.dir, e))?;
        let marker = self.dir.join(MARKER);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .map_err(|e| Error::file("create", &marker, e))?;
        Ok(())
    }

    /// Replace the ledger atomically (temporary file, fsync, rename; a link in its place is
    /// replaced, never followed).
    pub(crate) fn save(&self, ledger: &Ledger) -> Result<(), Error> {
        let mut text = serde_json::to_vec_pretty(ledger).unwrap_or_default();
        text.push(b'\n');
        fsutil::write_private(&self.file, &text)
            .map_err(|e| Error::file("write the ledger", &self.file, e))
    }

    pub(crate) fn lock_file(&self) -> &Path {
        &self.lock
    }

    /// A file of the batch's directory; `rel` is one of the names [`Ledger::check`] accepts.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Hold the batch for this process (`flock` on `<name>.lock`), so that two `submit`s never
    /// create two batches and two `fetch`es never share a download: another holder is exit 75,
    /// naming its pid.
    pub(crate) fn lock(&self) -> Result<LedgerLock, Error> {
        if let Some(dir) = self.lock.parent() {
            fsutil::create_private_dir_all(dir).map_err(|e| Error::file("create", dir, e))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = open_regular(&self.lock, &options).map_err(|e| {
            Error::input(
                format!("cannot use the lock file `{}`: {e}", self.lock.display()),
                "remove it; qwen creates it",
            )
        })?;
        match file.try_lock() {
            Ok(()) => Ok(LedgerLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = crate::fsutil::lock_holder(&file)
                    .map_or_else(String::new, |pid| format!(" (pid {pid})"));
                Err(Error::InUse {
                    message: format!(
                        "batch `{}` is in use by another qwen process{holder}",
                        self.name
                    ),
                    hint: Some(
                        "wait for it to finish, then run the command again (`qwen batch status` works meanwhile)"
                            .to_owned(),
                    ),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::file("lock", &self.lock, e)),
        }
    }
}

/// The lock of one batch, released when dropped (or when the process ends, however it ends).
pub(crate) struct LedgerLock {
    _file: std::fs::File,
}

/// The largest ledger read (one part is a few hundred bytes; a batch has a few parts).
const MAX_LEDGER_BYTES: u64 = 16 * 1024 * 1024;

/// A state file opened for reading, through the one check every state file passes.
pub(crate) fn open_state_file(path: &Path) -> std::io::Result<std::fs::File> {
    open_regular(path, std::fs::OpenOptions::new().read(true))
}

/// `path` opened with `options` only when it is a regular file itself: never through a link,
/// never a FIFO (which would hang) or a device. Checked before opening (`lstat`) and on the
/// opened file (the same device and inode), so a link swapped in between is caught too.
fn open_regular(path: &Path, options: &std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let refused =
        || std::io::Error::other("not a regular file (a link, a directory, a FIFO or a device)");
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => return Err(refused()),
        _ => {}
    }
    let file = options.open(path)?;
    let opened = file.metadata()?;
    let named = std::fs::symlink_metadata(path)?;
    if !opened.is_file() || (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
        return Err(refused());
    }
    Ok(file)
}

/// The project root: the nearest directory upward from `cwd` that holds `.qwen/` or `.git`, else
/// `cwd`.
fn project_root(cwd: &Path) -> &Path {
    cwd.ancestors()
        .find(|d| d.join(".qwen").is_dir() || d.join(".git").exists())
        .unwrap_or(cwd)
}

/// The state directory: `--state-dir` (relative to `cwd`), else `<root>/.qwen/batches`. Refused
/// (exit 42) when it, or the `.qwen` above the default one, is a link or not a directory, or when
/// a relative one leads outside the project root once links are resolved: a repository cannot
/// point qwen's writes and removals elsewhere. An absolute `--state-dir` is the user's own choice.
pub(crate) fn state_dir(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, Error> {
    let root = project_root(cwd);
    let qwen = root.join(".qwen");
    let (dir, checked): (PathBuf, Vec<PathBuf>) = if let Some(d) = explicit {
        (cwd.join(d), vec![cwd.join(d)])
    } else {
        (
            qwen.join("batches"),
            vec![qwen.clone(), qwen.join("batches")],
        )
    };
    let refuse = |path: &Path, why: &str| {
        Error::input(
            format!("the batch state directory `{}` {why}", path.display()),
            "qwen keeps batch state only in a real directory inside the project: remove the link, or pass --state-dir with a directory of yours",
        )
    };
    for path in &checked {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse(path, "is a symbolic link")),
            Ok(m) if !m.is_dir() => return Err(refuse(path, "is not a directory")),
            _ => {}
        }
    }
    if explicit.is_none_or(Path::is_relative) {
        // The deepest part that exists, resolved, must stay under the root.
        let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(root);
        let inside = match (existing.canonicalize(), root.canonicalize()) {
            (Ok(e), Ok(r)) => e.starts_with(r),
            _ => false,
        };
        if !inside {
            return Err(refuse(&dir, "leads outside the project"));
        }
    }
    Ok(dir)
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
            state_dir(None, &root.join("a/b/c")).unwrap(),
            root.join("a/.qwen/batches")
        );
        std::fs::create_dir_all(root.join("a/b/.qwen")).unwrap();
        assert_eq!(
            state_dir(None, &root.join("a/b/c")).unwrap(),
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

    fn good(name: &str) -> Ledger {
        Ledger {
            version: 1,
            name: name.into(),
            submission: "0123456789abcdef0123456789abcdef".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            job_file: "jobs.yaml".into(),
            completion_window: "24h".into(),
            parts: vec![Part {
                part: 1,
                model: "gpt-4o".into(),
                input: part_file(1, "input"),
                upload: Step::Started,
                input_file_id: Some("file-abc".into()),
                batch_id: Some("batch_abc".into()),
                status: Some("completed".into()),
                output: Some(part_file(1, "output")),
                errors: Some(part_file(1, "errors")),
                ..Part::default()
            }],
            ..Ledger::default()
        }
    }

    #[test]
    fn a_saved_ledger_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::new(dir.path(), "n");
        assert!(place.load().unwrap().is_none());
        place.save(&good("n")).unwrap();
        let back = place.load().unwrap().unwrap();
        assert_eq!(back.parts[0].upload, Step::Started);
        assert_eq!(back.metadata(1)["qwen_part"], "1");
    }

    #[test]
    fn a_ledger_is_checked_as_if_a_stranger_wrote_it() {
        type Edit = fn(&mut Ledger);
        assert_eq!(good("n").check("n"), Ok(()));
        let cases: [(&str, Edit); 16] = [
            ("another name", |l| {
                l.name = "other".into();
            }),
            ("version", |l| {
                l.version = 2;
            }),
            ("submission", |l| {
                l.submission = "../x".into();
            }),
            ("input ..", |l| {
                l.parts[0].input = "../../../id_deploy".into();
            }),
            ("input absolute", |l| {
                l.parts[0].input = "/etc/passwd".into();
            }),
            ("input other part", |l| {
                l.parts[0].input = part_file(2, "input");
            }),
            ("output", |l| {
                l.parts[0].output = Some("/proc/self/environ".into());
            }),
            ("errors", |l| {
                l.parts[0].errors = Some("sub/part-0001.errors.jsonl".into());
            }),
            ("file id path", |l| {
                l.parts[0].input_file_id = Some("../models/ft:x".into());
            }),
            ("batch id slash", |l| {
                l.parts[0].batch_id = Some("a/b".into());
            }),
            ("output id dot", |l| {
                l.parts[0].output_file_id = Some("..".into());
            }),
            ("error id control", |l| {
                l.parts[0].error_file_id = Some("f\u{1b}[2J".into());
            }),
            ("status line break", |l| {
                l.parts[0].status = Some("ok\n::warning::x".into());
            }),
            ("model escape", |l| {
                l.parts[0].model = "m\u{1b}]0;x\u{7}".into();
            }),
            ("numbering", |l| {
                l.parts[0].part = 2;
            }),
            ("job file bidi", |l| {
                l.job_file = "a\u{202e}b".into();
            }),
        ];
        for (what, edit) in cases {
            let mut l = good("n");
            edit(&mut l);
            let err = l.check("n").expect_err(what);
            assert!(
                !err.contains('\u{1b}') && !err.contains('\n'),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn a_damaged_ledger_link_or_fifo_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::new(dir.path(), "n");
        let mut bad = good("n");
        bad.parts[0].input = "../../../id_deploy".into();
        place.save(&bad).unwrap();
        let err = place.load().unwrap_err();
        assert_eq!(err.exit_status(), crate::exit::ExitStatus::Input);
        assert!(err.to_string().contains("damaged"), "{err}");
        // A link to a good ledger elsewhere, and a FIFO, are not ledgers.
        let other = Place::new(&dir.path().join("elsewhere"), "n");
        other.save(&good("n")).unwrap();
        std::fs::remove_file(&place.file).unwrap();
        std::os::unix::fs::symlink(&other.file, &place.file).unwrap();
        assert!(place.load().is_err());
        std::fs::remove_file(&place.file).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&place.file)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(place.load().is_err(), "a FIFO is refused without hanging");
    }

    #[test]
    fn a_directory_qwen_did_not_make_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::new(dir.path(), "n");
        std::fs::create_dir_all(&place.dir).unwrap();
        std::fs::write(place.dir.join("keep"), "mine").unwrap();
        assert!(place.fresh_dir().is_err());
        assert!(place.dir.join("keep").exists());
        // A link in its place is refused too, and its target untouched.
        std::fs::remove_dir_all(&place.dir).unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join(MARKER), "").unwrap();
        std::os::unix::fs::symlink(&target, &place.dir).unwrap();
        assert!(place.fresh_dir().is_err());
        assert!(target.join(MARKER).exists());
        // qwen's own directory is cleared and made again.
        std::fs::remove_file(&place.dir).unwrap();
        place.fresh_dir().unwrap();
        std::fs::write(place.dir.join("stale"), "").unwrap();
        place.fresh_dir().unwrap();
        assert!(!place.dir.join("stale").exists());
        assert!(place.dir.join(MARKER).is_file());
    }

    #[test]
    fn a_locked_batch_names_its_holder_and_a_linked_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::new(dir.path(), "n");
        let held = place.lock().unwrap();
        let err = place.lock().err().unwrap();
        assert_eq!(err.exit_status(), crate::exit::ExitStatus::TempFail);
        assert!(
            err.to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(place.lock().is_ok());
        std::fs::remove_file(place.lock_file()).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, place.lock_file()).unwrap();
        assert!(place.lock().is_err());
        assert!(!elsewhere.exists(), "nothing is created through the link");
    }

    #[test]
    fn a_linked_or_outside_state_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".qwen")).unwrap();
        assert!(state_dir(None, &root).is_err(), "`.qwen` is a link");
        std::fs::remove_file(root.join(".qwen")).unwrap();
        std::fs::create_dir_all(root.join(".qwen")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".qwen/batches")).unwrap();
        assert!(state_dir(None, &root).is_err(), "`.qwen/batches` is a link");
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        assert!(state_dir(Some(Path::new("sub/state")), &root).is_err());
        assert!(state_dir(Some(Path::new("../outside")), &root).is_err());
        assert!(state_dir(Some(Path::new("sub")), &root).is_err());
        // The user's own absolute directory is theirs to choose.
        assert_eq!(
            state_dir(Some(&outside.join("s")), &root).unwrap(),
            outside.join("s")
        );
        assert_eq!(
            state_dir(Some(Path::new("state")), &root).unwrap(),
            root.join("state")
        );
    }
}
