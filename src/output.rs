//! The only writer of stdout (data) and of stderr (diagnostics): result messages in every format.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::cli::OutputFormat;
use crate::client::{Completion, Usage};
use crate::error::Error;

/// Diagnostics on stderr. A failed write to stderr is ignored: there is nowhere else to say it.
pub mod diag {
    use std::io::Write;

    pub fn debug(message: &str) {
        let _ = writeln!(std::io::stderr(), "DEBUG {message}");
    }

    pub fn warn(message: &str) {
        let _ = writeln!(std::io::stderr(), "{message}");
    }

    /// `error: ...` then `hint: ...`, as every failure is reported in text.
    pub fn error(err: &crate::error::Error) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "error: {err}");
        if let Some(hint) = err.hint() {
            let _ = writeln!(stderr, "hint: {hint}");
        }
    }

    /// A line for a machine that reads stderr, such as a GitHub Actions workflow command.
    pub fn raw(line: &str) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// Free-form text for people (summaries, status), on stderr.
    pub fn text(message: &str) {
        let _ = write!(std::io::stderr(), "{message}");
    }

    /// A question for the person at the terminal, on stderr, without a newline, flushed at once.
    pub fn prompt(question: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{question}");
        let _ = stderr.flush();
    }
}

/// Write a whole piece of data to stdout and flush it. `Err` means stdout is gone (e.g. `| head`).
pub fn write_stdout(data: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}

/// `usage` as the result schema shows it: numbers, or nulls when the server sent none.
pub fn usage_json(usage: Option<Usage>) -> Value {
    match usage {
        Some(u) => json!(u),
        None => json!({"input_tokens": null, "output_tokens": null, "total_tokens": null}),
    }
}

/// What a run needs to describe itself in every message.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub session_id: String,
    pub model: String,
    pub cwd: String,
}

/// The `result` message (also used, with extra fields, for each job line of a batch).
pub fn result_message(
    meta: &RunMeta,
    outcome: Result<&Completion, (&str, &str, u32)>,
    duration_ms: u128,
    duration_api_ms: u128,
) -> Value {
    let uuid = uuid::Uuid::new_v4().to_string();
    match outcome {
        Ok(c) => json!({
            "type": "result",
            "subtype": "success",
            "uuid": uuid,
            "session_id": meta.session_id,
            "is_error": false,
            "duration_ms": duration_ms,
            "duration_api_ms": duration_api_ms,
            "num_turns": 1,
            "result": c.text,
            "usage": usage_json(c.usage),
            "permission_denials": [],
            "model": meta.model,
            "attempts": c.attempts,
        }),
        Err((kind, message, attempts)) => json!({
            "type": "result",
            "subtype": "error_during_execution",
            "uuid": uuid,
            "session_id": meta.session_id,
            "is_error": true,
            "duration_ms": duration_ms,
            "duration_api_ms": duration_api_ms,
            "num_turns": u32::from(attempts > 0),
            "usage": usage_json(None),
            "permission_denials": [],
            "model": meta.model,
            "attempts": attempts,
            "error": {"type": kind, "message": message},
        }),
    }
}

/// Add `extra` to a result message (replacing fields of the same name); an `error` object in
/// `extra` is merged into the message's own.
pub fn with_fields(message: &mut Value, extra: Map<String, Value>) {
    let Value::Object(map) = message else {
        return;
    };
    for (key, value) in extra {
        match (map.get_mut(&key), value) {
            (Some(Value::Object(inner)), Value::Object(more)) if key == "error" => {
                inner.extend(more);
            }
            (_, value) => {
                map.insert(key, value);
            }
        }
    }
}

/// Writes one single run's messages in the chosen format.
pub struct RunOutput {
    format: OutputFormat,
    partial: bool,
    meta: RunMeta,
    started: Instant,
    /// `-o json` collects its messages and writes them as one array at the end.
    collected: Vec<Value>,
    /// For text output: whether the last byte written was a newline.
    ends_with_newline: bool,
    wrote_text: bool,
    message_id: String,
}

impl RunOutput {
    pub fn new(format: OutputFormat, partial: bool, meta: RunMeta, started: Instant) -> Self {
        Self {
            format,
            partial,
            meta,
            started,
            collected: Vec::new(),
            ends_with_newline: true,
            wrote_text: false,
            message_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Whether text handed to `delta` is shown to the user at once (and so cannot be retried).
    pub fn deltas_are_final(&self) -> bool {
        match self.format {
            OutputFormat::Text => true,
            OutputFormat::Json | OutputFormat::OpenaiBatch => false,
            OutputFormat::StreamJson => self.partial,
        }
    }

    fn emit(&mut self, message: Value) -> io::Result<()> {
        match self.format {
            OutputFormat::Text | OutputFormat::OpenaiBatch => Ok(()),
            OutputFormat::Json => {
                self.collected.push(message);
                Ok(())
            }
            OutputFormat::StreamJson => {
                let mut line = message.to_string();
                line.push('\n');
                write_stdout(line.as_bytes())
            }
        }
    }

    pub fn init(&mut self) -> io::Result<()> {
        let message = json!({
            "type": "system",
            "subtype": "init",
            "uuid": uuid::Uuid::new_v4().to_string(),
            "session_id": self.meta.session_id,
            "cwd": self.meta.cwd,
            "tools": [],
            "mcp_servers": [],
            "model": self.meta.model,
            "permission_mode": "default",
            "qwen_code_version": env!("CARGO_PKG_VERSION"),
        });
        self.emit(message)
    }

    #[allow(clippy::needless_pass_by_value)]
    fn stream_event(&mut self, event: Value) -> io::Result<()> {
        let message = json!({
            "type": "stream_event",
            "uuid": uuid::Uuid::new_v4().to_string(),
            "session_id": self.meta.session_id,
            "parent_tool_use_id": null,
            "event": event,
        });
        self.emit(message)
    }

    /// A piece of the answer as it arrives.
    pub fn delta(&mut self, text: &str) -> io::Result<()> {
        match self.format {
            OutputFormat::Text => {
                write_stdout(text.as_bytes())?;
                self.ends_with_newline = text.ends_with('\n');
            }
            OutputFormat::StreamJson if self.partial => {
                if !self.wrote_text {
                    self.stream_event(json!({"type": "message_start", "message": {
                        "id": self.message_id, "role": "assistant", "model": self.meta.model, "content": []}}))?;
                    self.stream_event(json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}))?;
                }
                self.stream_event(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}}))?;
            }
            _ => {}
        }
        self.wrote_text = true;
        Ok(())
    }

    /// Any text started on a retried attempt is dropped by the JSON formats; text mode never retries after output.
    /// `extra` adds fields to the result message (`structured_result`, `fallback_from`, ...). With
    /// `structured_result`, text mode writes the answer here (it was not streamed): the compact
    /// value and one newline.
    pub fn success(
        &mut self,
        completion: &Completion,
        extra: Map<String, Value>,
    ) -> io::Result<()> {
        if self.format == OutputFormat::Text && extra.contains_key("structured_result") {
            let mut line = completion.text.clone();
            line.push('\n');
            return write_stdout(line.as_bytes());
        }
        if let Some(Value::String(model)) = extra.get("model") {
            self.meta.model.clone_from(model);
        }
        if self.format == OutputFormat::Text {
            if !self.ends_with_newline {
                write_stdout(b"\n")?;
            }
            return Ok(());
        }
        if self.partial && self.format == OutputFormat::StreamJson && self.wrote_text {
            self.stream_event(json!({"type": "content_block_stop", "index": 0}))?;
            self.stream_event(json!({"type": "message_stop"}))?;
        }
        let assistant = json!({
            "type": "assistant",
            "uuid": uuid::Uuid::new_v4().to_string(),
            "session_id": self.meta.session_id,
            "parent_tool_use_id": null,
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": self.meta.model,
                "content": [{"type": "text", "text": completion.text}],
                "stop_reason": completion.finish_reason,
                "usage": usage_json(completion.usage),
            },
        });
        self.emit(assistant)?;
        let mut result = result_message(
            &self.meta,
            Ok(completion),
            self.started.elapsed().as_millis(),
            completion.api_duration.as_millis(),
        );
        with_fields(&mut result, extra);
        self.emit(result)?;
        self.finish()
    }

    /// A failed run: stderr gets the message; the JSON formats still get a valid document.
    pub fn failure(
        &mut self,
        err: &Error,
        attempts: u32,
        api_ms: u128,
        extra: Map<String, Value>,
    ) -> io::Result<()> {
        diag::error(err);
        if self.format == OutputFormat::Text {
            if !self.ends_with_newline {
                write_stdout(b"\n")?;
            }
            return Ok(());
        }
        let message = err.to_string();
        let mut result = result_message(
            &self.meta,
            Err((err.kind(), &message, attempts)),
            self.started.elapsed().as_millis(),
            api_ms,
        );
        with_fields(&mut result, extra);
        self.emit(result)?;
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.format == OutputFormat::Json {
            let mut doc = Value::Array(std::mem::take(&mut self.collected)).to_string();
            doc.push('\n');
            write_stdout(doc.as_bytes())?;
        }
        Ok(())
    }
}
