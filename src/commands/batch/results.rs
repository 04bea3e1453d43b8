//! A batch's result lines: where they go (a file or stdout), what one line holds (a result
//! message, or an `OpenAI` Batch API line), and reading an existing results file back for
//! `--resume`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::dispatch::{JobMeta, JobOutcome, Stop};
use crate::ask::{self, Answer, AskFailure};
use crate::cli::BatchFormat;
use crate::client::Usage;
use crate::error::Error;
use crate::output::schema::{
    BatchLine, OpenAiBatchError, OpenAiBatchLine, OpenAiBatchResponse, successful_id,
};
use crate::output::{self, Outcome, RunMeta, result_message};

/// Where result lines go.
pub(crate) enum Sink {
    File(File),
    Stdout,
}

impl Sink {
    /// Open the results file (see [`open_output`]), or stdout.
    pub(crate) fn open(
        path: Option<&Path>,
        resume: bool,
        done: &HashSet<String>,
    ) -> Result<Self, Error> {
        match path {
            Some(path) => Ok(Self::File(open_output(path, resume, done)?)),
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
            Self::Stdout => output::write_stdout(&bytes).map_err(|_| Stop::OutputClosed),
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

/// Check an existing output file: refuse to clobber it, or (with `--resume`) collect the ids of the
/// jobs that already succeeded. A torn last line (a killed run) is ignored.
pub(crate) fn existing_output(
    path: &Path,
    resume: bool,
    overwrite: bool,
) -> Result<HashSet<String>, Error> {
    let name = path.display();
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(HashSet::new());
    };
    if meta.len() == 0 || overwrite {
        return Ok(HashSet::new());
    }
    if !resume {
        return Err(Error::input(
            format!("the output file `{name}` exists and is not empty"),
            "pass --resume to skip the jobs it already holds, or --overwrite to replace it",
        ));
    }
    let unreadable = |e: std::io::Error| Error::input(format!("cannot read `{name}`: {e}"), "");
    let file = File::open(path).map_err(unreadable)?;
    let mut done = HashSet::new();
    for line in complete_lines(BufReader::new(file)) {
        if let Some(id) = successful_id(&line.map_err(unreadable)?) {
            done.insert(id);
        }
    }
    Ok(done)
}

/// The lines of a reader that end in a newline, as bytes; an unterminated last line (a killed
/// run may have cut it anywhere, even inside a UTF-8 character) is left out.
fn complete_lines(mut reader: impl BufRead) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) if buf.ends_with(b"\n") => Some(Ok(buf)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    })
}

/// Open the output for writing. With `--resume`, the file is first rewritten (atomically) to keep
/// only its successful lines, so that every job ends with exactly one line once the rest is appended.
fn open_output(path: &Path, resume: bool, done: &HashSet<String>) -> Result<File, Error> {
    let name = path.display();
    let fail = |e: std::io::Error| {
        Error::input(
            format!("cannot write `{name}`: {e}"),
            "check the path given to --output",
        )
    };
    if !resume || !path.exists() {
        return File::create(path).map_err(fail);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let mut kept = tempfile::NamedTempFile::new_in(&dir).map_err(fail)?;
    let source = File::open(path).map_err(fail)?;
    for line in complete_lines(BufReader::new(source)) {
        let line = line.map_err(fail)?;
        if successful_id(&line).is_some_and(|id| done.contains(&id)) {
            kept.write_all(&line).map_err(fail)?;
        }
    }
    kept.flush().map_err(fail)?;
    drop(kept.persist(path).map_err(|e| fail(e.error))?);
    OpenOptions::new().append(true).open(path).map_err(fail)
}
