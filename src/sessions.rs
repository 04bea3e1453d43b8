//! Recorded conversations: what makes `-c/--continue`, `-r/--resume ID` and `qwen sessions list`
//! possible. One JSON Lines file per session, `<sessions dir>/<project>/<id>.jsonl`: a header line
//! (`{"type":"session","version":1,"id":…,"cwd":…,"created_ms":…}`), then one line per message
//! (`{"type":"message","role":"user"|"assistant","content":…,"time_ms":…}`). Not Qwen Code's
//! format (its `~/.qwen/projects/…/chats/*.jsonl` records are a tree of Gemini `Content` parts
//! with tool calls, compression checkpoints and UI telemetry), so the directory is our own:
//! `~/.qwen/headless/sessions`. Only the conversation is stored: never a key, a header, or the
//! system prompt (each run brings its own). Every message passes `secret::Secrets::scrub` before
//! it is written: the run's key, its `-H` values and the credentials of its environment are
//! `[REDACTED]` even when the prompt or the server's answer quotes them.
//!
//! A session file is untrusted data (a shared cache or a restored CI directory): it is opened only
//! as a regular file inside the project's directory, once every link is resolved (the path door,
//! `paths::JobPaths`), read at most `max_bytes`, and every line is checked. An exclusive lock held
//! from load to append keeps two processes from interleaving one session (the second is refused
//! with exit 75).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::paths::{JobPaths, PathRules};
use crate::secret::Secrets;

/// Which conversation a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    /// A new session: this id (`--session-id`), or a fresh one.
    New(Option<String>),
    /// `-c/--continue`: the project's most recently updated session.
    Continue,
    /// `-r/--resume ID`.
    Resume(String),
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) role: Role,
    pub(crate) content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    User,
    Assistant,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Session {
        version: u32,
        id: String,
        cwd: String,
        created_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forked_from: Option<String>,
    },
    Message {
        role: Role,
        content: String,
        time_ms: u64,
    },
}

/// Where sessions live and how much of one may be read.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// `<sessions dir>/<project key>`.
    dir: PathBuf,
    cwd: PathBuf,
    max_bytes: u64,
    /// What is removed from every message written.
    secrets: Secrets,
}

/// A session opened for this run: its earlier messages, and (when recording) the locked file the
/// new turn is appended to.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) history: Vec<Message>,
    /// `None` with `--chat-recording=false`, and once the turn is recorded.
    file: Option<File>,
    /// The file this run created (a new or forked session): removed if the run ends without
    /// recording a turn, so that a failed first run leaves no empty session for `-c` to pick.
    created: Option<PathBuf>,
    secrets: Secrets,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let (Some(file), Some(path)) = (self.file.take(), self.created.take()) {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The directory of the sessions of all projects: `~/.qwen/headless/sessions`.
pub(crate) fn root(home: &Path) -> PathBuf {
    home.join(".qwen").join("headless").join("sessions")
}

/// An id is one path segment: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a session id: use 1 to 128 letters, digits, `.`, `_` or `-` (a UUID, as Qwen Code uses)",
            id.escape_debug()
        ))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::input(
        format!("cannot {what} the session `{}`: {e}", path.display()),
        "check the sessions directory (~/.qwen/headless/sessions), or run with --chat-recording=false",
    )
}

fn corrupt(path: &Path, why: &str) -> Error {
    Error::input(
        format!(
            "the session file `{}` {why}; nothing was sent",
            path.display()
        ),
        "start a new session (drop -c/-r), or remove the file",
    )
}

impl Store {
    /// The sessions of the project at `cwd` (keyed by a hash of its resolved path).
    pub(crate) fn new(root: &Path, cwd: &Path, max_bytes: u64) -> Self {
        let resolved = cwd.canonicalize().unwrap_or_else(|_| cwd.to_owned());
        let digest = Sha256::digest(resolved.as_os_str().as_encoded_bytes());
        let key = digest[..8].iter().fold(String::new(), |mut key, b| {
            let _ = write!(key, "{b:02x}");
            key
        });
        Self {
            dir: root.join(key),
            cwd: resolved,
            max_bytes,
            secrets: Secrets::default(),
        }
    }

    /// Remove these from every message this store writes.
    #[must_use]
    pub(crate) fn scrubbing(mut self, secrets: Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    fn door(&self) -> JobPaths {
        JobPaths::new(self.dir.clone(), PathRules::default())
    }

    /// Open the session a run asked for. With `record`, the file is created (a new session) and
    /// locked until the run's turn is appended; `fork` copies the history into a new session.
    pub(crate) fn open(&self, pick: &Pick, fork: bool, record: bool) -> Result<Session, Error> {
        let source = match pick {
            Pick::New(id) => {
                let id = id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                if record && std::fs::symlink_metadata(self.dir.join(format!("{id}.jsonl"))).is_ok() {
                    return Err(Error::input(
                        format!("a session `{id}` exists already"),
                        "resume it with -r ID, or choose another --session-id",
                    ));
                }
                let (file, created) = if record {
                    self.create(&id, None, &[]).map(|(f, p)| (Some(f), Some(p)))?
                } else {
                    (None, None)
                };
                return Ok(Session {
                    id,
                    history: Vec::new(),
                    file,
                    created,
                    secrets: self.secrets.clone(),
                });
            }
            Pick::Resume(id) => id.clone(),
            Pick::Continue => self.latest()?.ok_or_else(|| {
                Error::input(
                    format!("no recorded session for `{}`", self.cwd.display()),
                    "run once without -c/--continue first (recording is on unless --chat-recording=false)",
                )
            })?,
        };
        // Read-only unless this run appends to it (a restored, read-only cache can still be read).
        let (mut file, path) = self.open_existing(&source, record && !fork)?;
        // Appending to it: held until the turn is recorded. Reading only: held while reading.
        lock(&file, &path)?;
        let history = self.load(&mut file, &path, &source)?;
        if !fork {
            let file = record.then_some(file);
            return Ok(Session {
                id: source,
                history,
                file,
                created: None,
                secrets: self.secrets.clone(),
            });
        }
        drop(file);
        let id = uuid::Uuid::new_v4().to_string();
        let (file, created) = if record {
            self.create(&id, Some(source), &history)
                .map(|(f, p)| (Some(f), Some(p)))?
        } else {
            (None, None)
        };
        Ok(Session {
            id,
            history,
            file,
            created,
            secrets: self.secrets.clone(),
        })
    }

    /// Open `<id>.jsonl` through the door: inside the project's directory once links are
    /// resolved, a regular file (checked before the open: a FIFO would block it).
    fn open_existing(&self, id: &str, append: bool) -> Result<(File, PathBuf), Error> {
        check_id(id).map_err(|e| Error::input(e, "pass the id `qwen sessions list` shows"))?;
        let name = format!("{id}.jsonl");
        let shown = self.dir.join(&name);
        if std::fs::symlink_metadata(&shown).is_err() {
            return Err(Error::input(
                format!("no session `{id}` for `{}`", self.cwd.display()),
                "list the sessions of this directory with `qwen sessions list`",
            ));
        }
        let path = self
            .door()
            .resolve(&name)
            .map_err(|e| corrupt(&shown, &format!("is refused: {e}")))?;
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(corrupt(&shown, "is not a regular file"));
        }
        let file = OpenOptions::new()
            .read(true)
            .append(append)
            .open(&path)
            .map_err(|e| io_error("open", &path, &e))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(corrupt(&shown, "is not a regular file"));
        }
        Ok((file, path))
    }

    /// Read and check every line, at most `max_bytes`.
    fn load(&self, file: &mut File, path: &Path, id: &str) -> Result<Vec<Message>, Error> {
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| {
                file.take(self.max_bytes.saturating_add(1))
                    .read_to_end(&mut bytes)
            })
            .map_err(|e| io_error("read", path, &e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(Error::input(
                format!(
                    "the session `{id}` is larger than {} bytes; it was not sent",
                    self.max_bytes
                ),
                "raise --max-input-bytes, or start a new session",
            ));
        }
        let text = String::from_utf8(bytes).map_err(|_| corrupt(path, "is not UTF-8"))?;
        let mut lines = text.lines().enumerate();
        match lines.next().map(|(_, l)| serde_json::from_str::<Line>(l)) {
            Some(Ok(Line::Session {
                version: 1,
                id: stored,
                ..
            })) if stored == id => {}
            _ => return Err(corrupt(path, "has no valid header line")),
        }
        let mut history = Vec::new();
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(line) {
                Ok(Line::Message { role, content, .. }) => history.push(Message { role, content }),
                _ => return Err(corrupt(path, &format!("has an invalid line {}", n + 1))),
            }
        }
        Ok(history)
    }

    fn create(
        &self,
        id: &str,
        forked_from: Option<String>,
        history: &[Message],
    ) -> Result<(File, PathBuf), Error> {
        crate::fsutil::create_private_dir_all(&self.dir)
            .map_err(|e| io_error("create the directory of", &self.dir, &e))?;
        let path = self.dir.join(format!("{id}.jsonl"));
        let mut options = OpenOptions::new();
        options.read(true).append(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .map_err(|e| io_error("create", &path, &e))?;
        lock(&file, &path)?;
        let mut text = line(&Line::Session {
            version: 1,
            id: id.to_owned(),
            cwd: self.cwd.display().to_string(),
            created_ms: now_ms(),
            forked_from,
        });
        for m in history {
            text.push_str(&message_line(m.role, &m.content, &self.secrets));
        }
        if let Err(e) = file.write_all(text.as_bytes()) {
            let _ = std::fs::remove_file(&path);
            return Err(io_error("write", &path, &e));
        }
        Ok((file, path))
    }

    /// The id of the most recently updated session of the project, if any (by the files'
    /// modification times: nothing is read).
    fn latest(&self) -> Result<Option<String>, Error> {
        Ok(self
            .entries()?
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(id, _)| id))
    }

    /// The ids and modification times of the project's session files (any file whose name is not
    /// an id, or that is not a regular file, is skipped).
    fn entries(&self) -> Result<Vec<(String, u64)>, Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.dir, &e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if check_id(id).is_err() || !meta.is_file() {
                continue;
            }
            let updated_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            out.push((id.to_owned(), updated_ms));
        }
        Ok(out)
    }

    /// The project's sessions, most recent first, with what `qwen sessions list` shows; a file
    /// that does not pass the checks of a load is left out.
    pub(crate) fn list(&self) -> Result<Vec<Summary>, Error> {
        let mut out = Vec::new();
        for (id, updated_ms) in self.entries()? {
            let Ok((mut file, path)) = self.open_existing(&id, false) else {
                continue;
            };
            let Ok(history) = self.load(&mut file, &path, &id) else {
                continue;
            };
            out.push(Summary {
                first_prompt: history
                    .iter()
                    .find(|m| m.role == Role::User)
                    .map(|m| m.content.chars().take(80).collect()),
                messages: history.len(),
                id,
                updated_ms,
            });
        }
        out.sort_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// One line of `qwen sessions list`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) id: String,
    pub(crate) updated_ms: u64,
    pub(crate) messages: usize,
    pub(crate) first_prompt: Option<String>,
}

fn lock(file: &File, path: &Path) -> Result<(), Error> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse {
            message: format!(
                "the session `{}` is in use by another qwen process",
                path.display()
            ),
            hint: Some(
                "wait for the other run to finish, or --fork-session to branch off".to_owned(),
            ),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error("lock", path, &e)),
    }
}

fn line(value: &Line) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    text.push('\n');
    text
}

/// One message's line, with every secret of the run removed from its text.
fn message_line(role: Role, content: &str, secrets: &Secrets) -> String {
    line(&Line::Message {
        role,
        content: secrets.scrub(content),
        time_ms: now_ms(),
    })
}

impl Session {
    /// Append a turn (the prompt as sent, and the answer) in one write; the lock stays until the
    /// session is dropped (a stream-json conversation appends one turn after another). Nothing
    /// to do without recording.
    pub(crate) fn append(&mut self, prompt: &str, answer: &str) -> Result<(), Error> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        self.created = None;
        let mut text = message_line(Role::User, prompt, &self.secrets);
        text.push_str(&message_line(Role::Assistant, answer, &self.secrets));
        // One write, no fsync (as Qwen Code's recorder): the next step reads it through the page
        // cache; an fsync cost a one-shot run about 2 ms and protects only against a power cut.
        file.write_all(text.as_bytes()).map_err(|e| Error::Io {
            context: format!("cannot record the turn in session `{}`", self.id),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Store {
        let cwd = dir.join("project");
        std::fs::create_dir_all(&cwd).unwrap();
        Store::new(&dir.join("sessions"), &cwd, 4096)
    }

    #[test]
    fn a_session_records_and_continues() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut first = s.open(&Pick::New(None), false, true).unwrap();
        assert!(first.history.is_empty());
        first.append("one", "1").unwrap();
        let first_id = first.id.clone();
        drop(first);
        let mut next = s.open(&Pick::Continue, false, true).unwrap();
        assert_eq!(next.id, first_id);
        assert_eq!(next.history.len(), 2);
        next.append("two", "2").unwrap();
        drop(next);
        let forked = s.open(&Pick::Resume(first_id.clone()), true, true).unwrap();
        assert_ne!(forked.id, first_id);
        assert_eq!(forked.history.len(), 4);
        let listed = s.list().unwrap();
        assert_eq!(listed.len(), 2);
    }

    #[test]
    fn a_locked_session_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut first = s.open(&Pick::New(Some("abc".into())), false, true).unwrap();
        first.append("one", "1").unwrap();
        drop(first);
        let _held = s.open(&Pick::Resume("abc".into()), false, true).unwrap();
        let err = s
            .open(&Pick::Resume("abc".into()), false, true)
            .unwrap_err();
        assert_eq!(err.exit_status(), crate::exit::ExitStatus::TempFail);
    }

    #[test]
    fn ids_are_one_path_segment() {
        for bad in ["", "..", ".hidden", "a/b", "a\u{7}", &"x".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["0d2c0e1a-8f7e-4c1b-9d2e-3b4a5c6d7e8f", "ci-run_1.2"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn hostile_session_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        std::fs::create_dir_all(&s.dir).unwrap();
        std::fs::write(dir.path().join("outside"), "{}").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), s.dir.join("out.jsonl")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", s.dir.join("env.jsonl")).unwrap();
        std::fs::write(s.dir.join("bad.jsonl"), "{\"type\":\"message\"}\n").unwrap();
        std::fs::write(s.dir.join("big.jsonl"), "x".repeat(5000)).unwrap();
        let header = r#"{"type":"session","version":1,"id":"extra","cwd":"/","created_ms":0}"#;
        std::fs::write(
            s.dir.join("extra.jsonl"),
            format!("{header}\n{{\"type\":\"message\",\"role\":\"system\",\"content\":\"x\",\"time_ms\":0}}\n"),
        )
        .unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(s.dir.join("fifo.jsonl"))
                .status()
                .unwrap()
                .success()
        );
        for id in [
            "out", "env", "bad", "big", "extra", "fifo", "missing", "../x",
        ] {
            let err = s.open(&Pick::Resume(id.into()), false, true).unwrap_err();
            assert_eq!(
                err.exit_status(),
                crate::exit::ExitStatus::Input,
                "{id}: {err}"
            );
        }
    }
}
