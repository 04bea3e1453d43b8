//! A batch's result lines: where they go (a file or stdout), what one line holds (a result
//! message, or an `OpenAI` Batch API line), and reading an existing results file back for
//! `--resume`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::dispatch::{JobMeta, JobOutcome, Stop};
use crate::ask::{self, Answer, AskFailure};
use crate::client::Usage;
use crate::error::Error;
use crate::idset::IdSet;
use crate::output::schema::{
    BatchLine, OpenAiBatchError, OpenAiBatchLine, OpenAiBatchResponse, successful_id,
};
use crate::output::{self, Outcome, RunMeta, result_message};
use crate::settings::BatchFormat;

/// The results file (`--output`), opened through any symlink and exclusively locked (`flock`)
/// for the whole run, so that two runs never write the same file. The lock is on the file itself:
/// nothing is left behind, and it ends with the process however it ends. The holder's pid is
/// read from `/proc/locks` (Linux), so no sidecar file is needed to name it.
pub(crate) struct Output {
    pub(crate) path: PathBuf,
    file: File,
    /// Whether this run created it (so a run refused before anything was sent leaves no file).
    created: bool,
}

impl Output {
    /// Open (creating it empty if missing, never truncating) and lock `path`; another run holding
    /// it is exit 75 at once.
    pub(crate) fn lock(path: PathBuf) -> Result<Self, Error> {
        let created = std::fs::symlink_metadata(&path).is_err();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                Error::input(
                    format!("cannot write `{}`: {e}", path.display()),
                    "check the path given to --output",
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                path,
                file,
                created,
            }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = crate::fsutil::lock_holder(&file)
                    .map_or_else(String::new, |pid| format!(" (pid {pid})"));
                Err(Error::InUse {
                    message: format!(
                        "`{}` is being written by another qwen process{holder}",
                        path.display()
                    ),
                    hint: Some(
                        "wait for it to finish (then --resume), or give this run its own --output"
                            .to_owned(),
                    ),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::file("lock", &path, e)),
        }
    }
}

impl Output {
    /// Give the file up before anything was written: removed if this run created it.
    pub(crate) fn discard(self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where result lines go.
pub(crate) enum Sink {
    File(File),
    Stdout,
}

impl Sink {
    /// The locked results file made ready (see [`open_output`]), or stdout.
    pub(crate) fn open(output: Option<Output>, resume: bool, done: &Done) -> Result<Self, Error> {
        match output {
            Some(output) => Ok(Self::File(open_output(output, resume, done)?)),
            None => Ok(Self::Stdout),
        }
    }

    /// Write one line; a failure says how the batch has to stop.
    pub(crate) fn write_line(&mut self, line: &impl serde::Serialize) -> Result<(), Stop> {
        let mut bytes = serde_json::to_vec(line)
            .map_err(|e| Stop::OutputFailed(format!("cannot encode a result line: {e}")))?;
        bytes.push(b'\n');
        match self {
            Self::File(f) => f
                .write_all(&bytes)
                .and_then(|()| f.flush())
                .map_err(|e| Stop::OutputFailed(format!("cannot write a result line: {e}"))),
            Self::Stdout => output::write_stdout(&bytes).map_err(|e| {
                if output::is_closed(&e) {
                    Stop::OutputClosed
                } else {
                    Stop::OutputFailed(format!(
                        "cannot write a result line to standard output: {e}"
                    ))
                }
            }),
        }
    }
}

/// One output line for a finished job (`None`: it was cancelled and gets no line).
pub(crate) fn write_result(
    sink: &mut Sink,
    meta: &RunMeta,
    outcome: &JobOutcome,
    format: BatchFormat,
) -> Result<(), Stop> {
    let Some(result) = &outcome.result else {
        return Ok(());
    };
    if format == BatchFormat::OpenaiBatch {
        return sink.write_line(&openai_batch_line(&outcome.job, result));
    }
    let job_meta = RunMeta {
        model: outcome.job.model.clone(),
        ..meta.clone()
    };
    let elapsed = outcome.elapsed.as_millis();
    let message = match result {
        Ok(a) => {
            let mut message = result_message(
                &job_meta,
                &Outcome::Success(&a.completion),
                &ask::answer_extras(a),
                elapsed,
                a.completion.api_duration.as_millis(),
            );
            // A batch line has no thinking message of its own: the reasoning rides along.
            message.reasoning = Some(a.completion.reasoning.clone()).filter(|r| !r.is_empty());
            message
        }
        Err(f) => {
            let text = f.error.to_string();
            let failure = Outcome::Failure {
                kind: f.error.kind(),
                message: &text,
                attempts: f.attempts,
            };
            let extras = ask::failure_extras(f);
            result_message(
                &job_meta,
                &failure,
                &extras,
                elapsed,
                f.api_duration.as_millis(),
            )
        }
    };
    sink.write_line(&BatchLine {
        id: outcome.job.id.clone(),
        index: outcome.job.index,
        result: message,
    })
}

fn openai_usage(usage: Option<Usage>) -> serde_json::Value {
    usage.map_or(serde_json::Value::Null, |u| {
        json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens})
    })
}

fn openai_batch_line(job: &JobMeta, result: &Result<Answer, AskFailure>) -> OpenAiBatchLine {
    let id = format!("batch_req_{}", uuid::Uuid::new_v4().simple());
    let (response, error) = match result {
        Ok(a) => (
            Some(OpenAiBatchResponse {
                status_code: 200,
                request_id: a.completion.request_id.clone(),
                body: json!({
                    "id": a.completion.response_id,
                    "object": "chat.completion",
                    "created": a.completion.created,
                    "model": a.completion.server_model.as_deref().unwrap_or(&a.model),
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": a.completion.text},
                        "finish_reason": a.completion.finish_reason,
                    }],
                    "usage": openai_usage(a.completion.usage),
                }),
            }),
            None,
        ),
        Err(f) => match f.error.status() {
            Some(status) => (
                Some(OpenAiBatchResponse {
                    status_code: status,
                    request_id: None,
                    body: json!({"error": {"message": f.error.to_string(), "type": f.error.kind()}}),
                }),
                None,
            ),
            None => (
                None,
                Some(OpenAiBatchError {
                    code: f.error.kind().to_owned(),
                    message: f.error.to_string(),
                }),
            ),
        },
    };
    OpenAiBatchLine {
        id,
        custom_id: job.id.clone(),
        response,
        error,
    }
}

/// What an existing results file holds for `--resume`: the ids of the jobs that already
/// succeeded, and, for an id with more than one successful line, where its last one starts (that
/// line is the one kept). Two compact parts: the set, and a map only for repeated ids.
#[derive(Debug, Default)]
pub(crate) struct Done {
    ids: IdSet,
    last_of_repeated: HashMap<String, u64>,
}

impl Done {
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether the successful line of `id` that starts at `offset` is the one kept.
    fn keeps(&self, id: &str, offset: u64) -> bool {
        self.contains(id)
            && self
                .last_of_repeated
                .get(id)
                .is_none_or(|&last| last == offset)
    }
}

/// Check an existing output file: refuse to clobber it, or (with `--resume`) collect the ids of the
/// jobs that already succeeded. A torn last line (a killed run) is ignored.
pub(crate) fn existing_output(path: &Path, resume: bool, overwrite: bool) -> Result<Done, Error> {
    let name = path.display();
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(Done::default());
    };
    if meta.len() == 0 || overwrite {
        return Ok(Done::default());
    }
    if !resume {
        return Err(Error::input(
            format!("the output file `{name}` exists and is not empty"),
            "pass --resume to skip the jobs it already holds, or --overwrite to replace it",
        ));
    }
    let unreadable = |e: std::io::Error| Error::input(format!("cannot read `{name}`: {e}"), "");
    let file = File::open(path).map_err(unreadable)?;
    let mut done = Done::default();
    for line in complete_lines(BufReader::new(file)) {
        let (offset, line) = line.map_err(unreadable)?;
        if let Some(id) = successful_id(&line)
            && !done.ids.insert(&id)
        {
            done.last_of_repeated.insert(id, offset);
        }
    }
    Ok(done)
}

/// The lines of a reader that end in a newline, as bytes, each with the offset where it starts;
/// an unterminated last line (a killed run may have cut it anywhere, even inside a UTF-8
/// character) is left out.
fn complete_lines(
    mut reader: impl BufRead,
) -> impl Iterator<Item = std::io::Result<(u64, Vec<u8>)>> {
    let mut offset = 0u64;
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(n) if buf.ends_with(b"\n") => {
                let start = offset;
                offset += n as u64;
                Some(Ok((start, buf)))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    })
}

/// Make the locked output ready for appending. Without `--resume` it is emptied. With `--resume`
/// it is compacted in place to hold exactly one line per job that already succeeded (the last
/// successful line of each id wins; failures, duplicates and a torn tail go), so that every job
/// ends with exactly one line once the rest is appended. The compaction streams: each kept line is
/// written back at or before where it was read, so memory does not grow with the file. In place,
/// not by a rename: the file keeps its mode, a symlink keeps pointing at it, and the lock stays on
/// the file everyone opens. A crash during the compaction can only lose successful lines (the
/// region between the written and the read part holds pieces of lines already copied, which are
/// not successful lines), whose jobs a later `--resume` runs again.
fn open_output(output: Output, resume: bool, done: &Done) -> Result<File, Error> {
    use std::os::unix::fs::FileExt;
    let Output { path, mut file, .. } = output;
    let fail = |e: std::io::Error| {
        Error::input(
            format!("cannot write `{}`: {e}", path.display()),
            "check the path given to --output",
        )
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        // A device or a pipe (`/dev/stdout`, `/dev/full`): nothing to rewrite, only to write to.
        return Ok(file);
    }
    let mut written = 0u64;
    if resume {
        file.seek(SeekFrom::Start(0)).map_err(fail)?;
        let mut reader = BufReader::with_capacity(256 * 1024, &file);
        for line in complete_lines(&mut reader) {
            let (offset, line) = line.map_err(fail)?;
            if successful_id(&line).is_some_and(|id| done.keeps(&id, offset)) {
                // `written` <= `offset`: only bytes already read are overwritten.
                file.write_all_at(&line, written).map_err(fail)?;
                written += line.len() as u64;
            }
        }
    }
    file.set_len(written).map_err(fail)?;
    file.seek(SeekFrom::Start(written)).map_err(fail)?;
    file.flush().map_err(fail)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn success(id: &str, text: &str) -> String {
        format!(r#"{{"id":"{id}","type":"result","is_error":false,"result":"{text}"}}"#)
    }

    fn failure(id: &str) -> String {
        format!(r#"{{"id":"{id}","type":"result","is_error":true}}"#)
    }

    /// A file larger than the compaction's read buffer, whose kept lines move by varying
    /// distances: every third id failed, every fifth succeeded twice (the second answer wins),
    /// and the last line is torn.
    #[test]
    fn resume_compacts_a_large_file_in_place_to_the_last_success_of_each_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        let mut text = String::new();
        let mut expected = Vec::new();
        let padding = "x".repeat(100);
        for i in 0..5_000 {
            let id = format!("job-{i}");
            if i % 3 == 0 {
                text.push_str(&failure(&id));
                text.push('\n');
                continue;
            }
            if i % 5 == 0 {
                text.push_str(&success(&id, "first"));
                text.push('\n');
                text.push_str(&failure(&id));
                text.push('\n');
            }
            let line = success(&id, &format!("kept {padding}"));
            text.push_str(&line);
            text.push('\n');
            expected.push(line);
        }
        text.push_str(&success("torn", "half")[..30]);
        assert!(text.len() > 512 * 1024, "more than the read buffer");
        std::fs::write(&path, &text).expect("write");

        let done = existing_output(&path, true, false).expect("resume");
        assert!(done.contains("job-1") && done.contains("job-5"));
        assert!(!done.contains("job-3") && !done.contains("torn"));
        let output = Output::lock(path.clone()).expect("lock");
        let mut file = open_output(output, true, &done).expect("compact");
        file.write_all(b"appended\n").expect("append");
        drop(file);

        let after = std::fs::read_to_string(&path).expect("read");
        let mut want = expected.join("\n");
        want.push_str("\nappended\n");
        assert_eq!(after, want);
    }

    #[test]
    fn without_resume_the_file_is_emptied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, format!("{}\n", success("a", "b"))).expect("write");
        let output = Output::lock(path.clone()).expect("lock");
        let mut file = open_output(output, false, &Done::default()).expect("open");
        file.write_all(b"new\n").expect("append");
        drop(file);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
    }
}
