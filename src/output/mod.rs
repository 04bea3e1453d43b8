//! The only writer of stdout (data) and of stderr (diagnostics): result messages in every format.
#![allow(
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "the one writer of stdout"
)]

pub(crate) mod github;
pub(crate) mod schema;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::client::{ClientEvent, Completion, OnEvent, Piece, RetryEvent};
use crate::cost::Cost;
use crate::error::Error;
use schema::{
    ApiRetryMessage, AssistantBody, AssistantMessage, ContentBlock, Delta, ErrorInfo, InitMessage,
    MessageUsage, ResultMessage, SessionStartData, SessionStartMessage, Stats, StreamEvent,
    StreamEventMessage, StreamMessageStart, UsageJson,
};

/// Write a whole piece of data to stdout and flush it. An `Err` is either a closed stdout (`| head`,
/// see [`is_closed`]: a quiet end) or a real failure (a full disk, `/dev/full`: see [`stdout_failed`]).
pub(crate) fn write_stdout(data: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}

/// Whether a write error means that the reader of stdout went away (EPIPE), the one write error
/// that ends a run quietly.
pub(crate) fn is_closed(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::BrokenPipe
}

/// A write to stdout that failed for any other reason than a closed pipe: the run's failure (exit 1).
pub(crate) fn stdout_failed(source: io::Error) -> Error {
    Error::Io {
        context: "cannot write to standard output".to_owned(),
        source,
    }
}

/// `Ok` for a write that worked or met a closed pipe; the error otherwise.
pub(crate) fn quiet_if_closed(result: io::Result<()>) -> Result<(), Error> {
    match result {
        Err(e) if !is_closed(&e) => Err(stdout_failed(e)),
        _ => Ok(()),
    }
}

/// What a run needs to describe itself in every message.
#[derive(Debug, Clone)]
pub(crate) struct RunMeta {
    pub(crate) session_id: String,
    pub(crate) model: String,
    pub(crate) cwd: String,
}

/// How a run or a job ended, as its result message reports it.
pub(crate) enum Outcome<'a> {
    Success(&'a Completion),
    Failure {
        kind: &'a str,
        message: &'a str,
        attempts: u32,
    },
}

/// What a result says beyond the answer itself: the model that answered after a fallback, the
/// validated value, how the schema was asked for, the turns and usage of a longer exchange, and
/// the last answer that failed its schema.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    pub(crate) model: Option<String>,
    pub(crate) structured_result: Option<Value>,
    pub(crate) fallback_from: Vec<String>,
    pub(crate) response_format: Option<String>,
    pub(crate) num_turns: Option<u32>,
    pub(crate) usage: Option<UsageJson>,
    pub(crate) last_answer: Option<String>,
    /// Changes made to the request after a server refused part of it.
    pub(crate) adjusted: Vec<String>,
    /// Time slept before retries (`retry_wait_ms`).
    pub(crate) retry_wait_ms: u64,
    /// What the answers cost (`total_cost_usd`, `cost_source`).
    pub(crate) cost: Cost,
}

impl Extras {
    fn apply(&self, message: &mut ResultMessage) {
        if let Some(model) = &self.model {
            message.model.clone_from(model);
        }
        message
            .structured_result
            .clone_from(&self.structured_result);
        message.fallback_from.clone_from(&self.fallback_from);
        message.response_format.clone_from(&self.response_format);
        message.adjusted.clone_from(&self.adjusted);
        message.retry_wait_ms = self.retry_wait_ms;
        message.total_cost_usd = self.cost.usd;
        message.cost_source = self.cost.source;
        if let Some(turns) = self.num_turns {
            message.num_turns = turns;
        }
        if let Some(usage) = self.usage {
            message.usage = usage;
        }
        if let Some(error) = &mut message.error {
            error.last_answer.clone_from(&self.last_answer);
        }
    }
}

fn millis(ms: u128) -> u64 {
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The `result` message (also used, with `id` and `index`, for each job line of a batch).
pub(crate) fn result_message(
    meta: &RunMeta,
    outcome: &Outcome<'_>,
    extras: &Extras,
    duration_ms: u128,
    duration_api_ms: u128,
) -> ResultMessage {
    let (subtype, result, usage, attempts, error) = match outcome {
        Outcome::Success(c) => ("success", Some(c.text.clone()), c.usage, c.attempts, None),
        Outcome::Failure {
            kind,
            message,
            attempts,
        } => (
            "error_during_execution",
            None,
            None,
            *attempts,
            Some(ErrorInfo {
                kind: (*kind).to_owned(),
                message: (*message).to_owned(),
                last_answer: None,
            }),
        ),
    };
    let mut message = ResultMessage {
        kind: "result".to_owned(),
        subtype: subtype.to_owned(),
        uuid: uuid::Uuid::new_v4().to_string(),
        session_id: meta.session_id.clone(),
        is_error: error.is_some(),
        duration_ms: millis(duration_ms),
        duration_api_ms: millis(duration_api_ms),
        num_turns: match outcome {
            Outcome::Success(_) => 1,
            Outcome::Failure { attempts, .. } => u32::from(*attempts > 0),
        },
        result,
        usage: usage.into(),
        permission_denials: Vec::new(),
        stats: None,
        model: meta.model.clone(),
        attempts,
        retry_wait_ms: 0,
        finish_reason: match outcome {
            Outcome::Success(c) => c.finish_reason.clone(),
            Outcome::Failure { .. } => None,
        },
        total_cost_usd: None,
        cost_source: None,
        structured_result: None,
        fallback_from: Vec::new(),
        response_format: None,
        adjusted: Vec::new(),
        reasoning: None,
        error,
    };
    extras.apply(&mut message);
    message
}

/// Cleans server text before it is shown on stderr.
pub(crate) type Cleaner = Box<dyn Fn(&str) -> String + Send>;

/// How a single run writes its messages (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The answer as plain text, streamed.
    Text,
    /// One JSON array (system, assistant, result messages), like Qwen Code's `-o json`.
    Json,
    /// The same messages as JSON lines, written as they happen.
    StreamJson,
}

/// Where a [`RunOutput`] writes: stdout, or the events file of `--json-file`/`--json-fd`.
#[derive(Clone)]
enum Sink {
    Stdout,
    Events(Arc<Mutex<EventsFile>>),
}

/// The events file, and the first write that failed (after which nothing more is written there:
/// the run goes on, and fails at its end).
struct EventsFile {
    file: std::fs::File,
    failed: Option<io::Error>,
}

impl Sink {
    /// Write a whole line. The events file never fails the write itself: stdout's answer is not
    /// cut short because an observer's file filled up (see [`RunOutput::events_failure`]).
    fn write(&self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Stdout => write_stdout(data),
            Self::Events(events) => {
                let mut events = events
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if events.failed.is_none()
                    && let Err(e) = events
                        .file
                        .write_all(data)
                        .and_then(|()| events.file.flush())
                {
                    events.failed = Some(e);
                }
                Ok(())
            }
        }
    }
}

/// Writes one single run's messages in the chosen format.
pub(crate) struct RunOutput {
    /// stdout, or the events file for the copy in `events`.
    sink: Sink,
    /// `--json-file`/`--json-fd`: the same run written as stream-json with partial messages.
    events: Option<Box<RunOutput>>,
    format: Format,
    partial: bool,
    meta: RunMeta,
    started: Instant,
    /// `-o json` collects its messages and writes them as one array at the end.
    collected: Vec<Value>,
    /// For text output: whether the last byte written was a newline.
    ends_with_newline: bool,
    wrote_text: bool,
    message_id: String,
    /// `--show-reasoning` (`None` without it): reasoning goes to stderr as it arrives, a line at a
    /// time; this is its unfinished line, written once it is whole (or ended with a newline
    /// before anything else is written).
    reasoning_line: Option<String>,
    /// How server text shown on stderr is cleaned: the key and credential headers removed, escape
    /// sequences and workflow commands neutralised (the connected client's sanitiser).
    stderr_cleaner: Option<Cleaner>,
    /// With partial messages: what has been streamed so far.
    streamed: Streamed,
    /// `-o json`: retry messages heard by the client's hook, put in order at the next message.
    pending: Arc<Mutex<Vec<Value>>>,
    thinking_id: String,
}

/// The state of a streamed turn (partial messages): the block that is open, whether
/// `message_start` was written (once per run, as Qwen Code does, with the first assistant
/// message's id), the reasoning streamed so far, and whether its assistant message was written
/// (when the text began; without partial messages, when the answer is written).
#[derive(Debug, Default)]
struct Streamed {
    open: Option<Block>,
    message_started: bool,
    thinking: String,
    thinking_written: bool,
}

/// The content block a streamed message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
}

impl RunOutput {
    pub(crate) fn new(
        format: Format,
        partial: bool,
        meta: RunMeta,
        started: Instant,
        show_reasoning: bool,
    ) -> Self {
        Self {
            sink: Sink::Stdout,
            events: None,
            format,
            partial,
            meta,
            started,
            collected: Vec::new(),
            ends_with_newline: true,
            wrote_text: false,
            message_id: uuid::Uuid::new_v4().to_string(),
            reasoning_line: show_reasoning.then(String::new),
            stderr_cleaner: None,
            streamed: Streamed::default(),
            pending: Arc::default(),
            thinking_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Also write the run's messages to `file` as stream-json lines with partial messages (Qwen
    /// Code's dual output: `DualOutputBridge` builds its `StreamJsonOutputAdapter` with
    /// `includePartialMessages` always on), after a `session_start` line.
    #[must_use]
    pub(crate) fn with_events(mut self, file: std::fs::File) -> Self {
        let mut events = Self::new(
            Format::StreamJson,
            true,
            self.meta.clone(),
            self.started,
            false,
        );
        events.sink = Sink::Events(Arc::new(Mutex::new(EventsFile { file, failed: None })));
        events.message_id.clone_from(&self.message_id);
        events.thinking_id.clone_from(&self.thinking_id);
        self.events = Some(Box::new(events));
        self
    }

    /// The write to the events file that failed, if one did: the run's failure once its answer
    /// is written.
    pub(crate) fn events_failure(&self) -> Option<Error> {
        let Sink::Events(events) = &self.events.as_ref()?.sink else {
            return None;
        };
        let mut events = events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events.failed.take().map(|source| Error::Io {
            context: "cannot write the JSON events (--json-file/--json-fd)".to_owned(),
            source,
        })
    }

    /// Whether text handed to `delta` is shown to the user at once (and so cannot be retried).
    pub(crate) fn deltas_are_final(&self) -> bool {
        match self.format {
            Format::Text => true,
            Format::Json => false,
            Format::StreamJson => self.partial,
        }
    }

    /// The client's retry hook for this output: in stream-json an `api_retry` system message is
    /// written at once (before the wait); in json it joins the array in order; text shows none
    /// (`--debug` says it on stderr). A write that fails here is found by the next message.
    pub(crate) fn retry_hook(&self) -> Option<OnEvent> {
        let session_id = self.meta.session_id.clone();
        let message = move |e: &RetryEvent| ApiRetryMessage {
            kind: "system".to_owned(),
            subtype: "api_retry".to_owned(),
            uuid: uuid::Uuid::new_v4().to_string(),
            session_id: session_id.clone(),
            attempt: e.attempt,
            max_retries: e.max_retries,
            retry_delay_ms: u64::try_from(e.wait.as_millis()).unwrap_or(u64::MAX),
            error_status: e.status,
            error: e.error.to_owned(),
            reason: e.reason.as_str().to_owned(),
            model: e.model.clone(),
            fallback_model: e.fallback_model.clone(),
        };
        let own: Option<OnEvent> = match self.format {
            Format::Text => None,
            Format::StreamJson => {
                let sink = self.sink.clone();
                Some(Arc::new(move |e: &ClientEvent| {
                    let ClientEvent::Retry(e) = e else { return };
                    if let Ok(mut line) = serde_json::to_vec(&message(e)) {
                        line.push(b'\n');
                        let _ = sink.write(&line);
                    }
                }))
            }
            Format::Json => {
                let pending = Arc::clone(&self.pending);
                Some(Arc::new(move |e: &ClientEvent| {
                    let ClientEvent::Retry(e) = e else { return };
                    if let Ok(value) = serde_json::to_value(message(e)) {
                        pending
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(value);
                    }
                }))
            }
        };
        match (own, self.events.as_ref().and_then(|e| e.retry_hook())) {
            (Some(own), Some(events)) => Some(Arc::new(move |e: &ClientEvent| {
                own(e);
                events(e);
            })),
            (own, events) => own.or(events),
        }
    }

    fn emit(&mut self, message: &impl Serialize) -> io::Result<()> {
        match self.format {
            Format::Text => Ok(()),
            Format::Json => {
                let heard = std::mem::take(
                    &mut *self
                        .pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                self.collected.extend(heard);
                self.collected
                    .push(serde_json::to_value(message).map_err(io::Error::other)?);
                Ok(())
            }
            Format::StreamJson => {
                let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
                line.push(b'\n');
                self.sink.write(&line)
            }
        }
    }

    pub(crate) fn init(&mut self) -> io::Result<()> {
        if let Some(events) = &mut self.events {
            events.emit(&SessionStartMessage {
                kind: "system",
                subtype: "session_start",
                uuid: uuid::Uuid::new_v4().to_string(),
                session_id: self.meta.session_id.clone(),
                parent_tool_use_id: None,
                data: SessionStartData {
                    session_id: self.meta.session_id.clone(),
                    cwd: self.meta.cwd.clone(),
                    protocol_version: 2,
                    version: env!("CARGO_PKG_VERSION"),
                    supported_events: ["system", "assistant", "stream_event", "result"],
                },
            })?;
            events.init()?;
        }
        // Qwen Code 0.24.4 gives the init message the session's id as its `uuid` and lists its
        // slash commands and subagents (seen in its `-o json` output; scripts/qwen-code-oracle.sh
        // compares the two).
        let message = InitMessage {
            kind: "system".to_owned(),
            subtype: "init".to_owned(),
            uuid: self.meta.session_id.clone(),
            session_id: self.meta.session_id.clone(),
            cwd: self.meta.cwd.clone(),
            tools: Vec::new(),
            mcp_servers: Vec::new(),
            model: self.meta.model.clone(),
            permission_mode: "default".to_owned(),
            slash_commands: Vec::new(),
            qwen_code_version: env!("CARGO_PKG_VERSION").to_owned(),
            agents: Vec::new(),
        };
        self.emit(&message)
    }

    fn stream_event(&mut self, event: StreamEvent) -> io::Result<()> {
        let message = StreamEventMessage {
            kind: "stream_event".to_owned(),
            uuid: uuid::Uuid::new_v4().to_string(),
            session_id: self.meta.session_id.clone(),
            parent_tool_use_id: None,
            event,
        };
        self.emit(&message)
    }

    /// Clean server text shown on stderr with `cleaner` (set once the client is connected).
    pub(crate) fn set_stderr_cleaner(&mut self, cleaner: Cleaner) {
        self.stderr_cleaner = Some(cleaner);
    }

    fn clean_for_stderr(&self, text: &str) -> String {
        match &self.stderr_cleaner {
            Some(clean) => clean(text),
            None => crate::sanitize::block(text, None),
        }
    }

    /// Reasoning shown on stderr ends with a newline before anything else is written.
    fn end_reasoning_line(&mut self) {
        if let Some(line) = &mut self.reasoning_line
            && !line.is_empty()
        {
            let rest = std::mem::take(line);
            crate::diag::text(&self.clean_for_stderr(&rest));
            crate::diag::text("\n");
        }
    }

    /// Open a block of `block`'s kind (partial messages only). The first block of the run also
    /// starts the streamed message, with the id of the assistant message it will become: Qwen
    /// Code writes one `message_start` and one `message_stop` per turn, blocks at index 0 in
    /// between, and each block's assistant message after its `content_block_stop`.
    fn open_block(&mut self, block: Block) -> io::Result<()> {
        if !self.streamed.message_started {
            let id = match block {
                Block::Thinking => self.thinking_id.clone(),
                Block::Text => self.message_id.clone(),
            };
            self.stream_event(StreamEvent::MessageStart {
                message: StreamMessageStart {
                    id,
                    role: "assistant".to_owned(),
                    model: self.meta.model.clone(),
                    content: Vec::new(),
                },
            })?;
            self.streamed.message_started = true;
        }
        let content_block = match block {
            Block::Thinking => ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            Block::Text => ContentBlock::Text {
                text: String::new(),
            },
        };
        self.stream_event(StreamEvent::ContentBlockStart {
            index: 0,
            content_block,
        })?;
        self.streamed.open = Some(block);
        Ok(())
    }

    /// Stop the open block, if any; a thinking block's assistant message follows at once.
    fn close_block(&mut self) -> io::Result<()> {
        if let Some(block) = self.streamed.open.take() {
            self.stream_event(StreamEvent::ContentBlockStop { index: 0 })?;
            if block == Block::Thinking {
                let thinking = std::mem::take(&mut self.streamed.thinking);
                self.write_thinking(thinking)?;
            }
        }
        Ok(())
    }

    /// The reasoning's own assistant message (one block type per message, as Qwen Code's
    /// `BaseJsonOutputAdapter.ensureBlockTypeConsistency` requires), with zero usage.
    fn write_thinking(&mut self, thinking: String) -> io::Result<()> {
        self.streamed.thinking_written = true;
        let message = self.assistant(
            self.thinking_id.clone(),
            ContentBlock::Thinking {
                thinking,
                signature: String::new(),
            },
            MessageUsage::ZERO,
        );
        self.emit(&message)
    }

    /// An assistant message; its `uuid` is its `message.id`, as in Qwen Code's `buildMessage`.
    fn assistant(&self, id: String, block: ContentBlock, usage: MessageUsage) -> AssistantMessage {
        AssistantMessage {
            kind: "assistant".to_owned(),
            uuid: id.clone(),
            session_id: self.meta.session_id.clone(),
            parent_tool_use_id: None,
            message: AssistantBody {
                id,
                kind: "message".to_owned(),
                role: "assistant".to_owned(),
                model: self.meta.model.clone(),
                content: vec![block],
                stop_reason: None,
                usage,
            },
        }
    }

    /// End the streamed message (partial messages only).
    fn stop_message(&mut self) -> io::Result<()> {
        self.close_block()?;
        if std::mem::take(&mut self.streamed.message_started) {
            self.stream_event(StreamEvent::MessageStop)?;
        }
        Ok(())
    }

    /// A piece of the answer (or of the reasoning before it) as it arrives. Reasoning never goes
    /// to stdout in text mode; `--show-reasoning` writes it to stderr.
    pub(crate) fn delta(&mut self, piece: Piece<'_>) -> io::Result<()> {
        if let Some(events) = &mut self.events {
            events.delta(piece)?;
        }
        let streaming = self.format == Format::StreamJson && self.partial;
        match piece {
            Piece::Reasoning(thinking) => {
                if let Some(mut pending) = self.reasoning_line.take() {
                    // Server text on stderr: whole lines through the sanitiser, so that no
                    // escape sequence or workflow command can be split across pieces.
                    pending.push_str(thinking);
                    while let Some(end) = pending.find('\n') {
                        let line: String = pending.drain(..=end).collect();
                        crate::diag::text(&self.clean_for_stderr(&line));
                    }
                    self.reasoning_line = Some(pending);
                }
                // Reasoning that comes after the text has started stays in the final message.
                if streaming && !self.wrote_text {
                    if self.streamed.open.is_none() {
                        self.open_block(Block::Thinking)?;
                    }
                    self.streamed.thinking.push_str(thinking);
                    self.stream_event(StreamEvent::ContentBlockDelta {
                        index: 0,
                        delta: Delta::ThinkingDelta {
                            thinking: thinking.to_owned(),
                        },
                    })?;
                }
                return Ok(());
            }
            Piece::Text(text) => {
                self.end_reasoning_line();
                match self.format {
                    Format::Text => {
                        write_stdout(text.as_bytes())?;
                        self.ends_with_newline = text.ends_with('\n');
                    }
                    Format::StreamJson if self.partial => {
                        if self.streamed.open != Some(Block::Text) {
                            self.close_block()?;
                            self.open_block(Block::Text)?;
                        }
                        self.stream_event(StreamEvent::ContentBlockDelta {
                            index: 0,
                            delta: Delta::TextDelta {
                                text: text.to_owned(),
                            },
                        })?;
                    }
                    _ => {}
                }
            }
        }
        self.wrote_text = true;
        Ok(())
    }

    /// Any text started on a retried attempt is dropped by the JSON formats; text mode never retries after output.
    /// With a validated value (`--json-schema`), text mode writes the answer here (it was not
    /// streamed): the compact value and one newline.
    pub(crate) fn success(&mut self, completion: &Completion, extras: &Extras) -> io::Result<()> {
        if let Some(events) = &mut self.events {
            events.success(completion, extras)?;
        }
        if self.format == Format::Text && extras.structured_result.is_some() {
            let mut line = completion.text.clone().into_bytes();
            line.push(b'\n');
            return write_stdout(&line);
        }
        if let Some(model) = &extras.model {
            self.meta.model.clone_from(model);
        }
        if self.format == Format::Text {
            if !self.ends_with_newline {
                write_stdout(b"\n")?;
            }
            return Ok(());
        }
        let partial = self.partial && self.format == Format::StreamJson;
        if partial {
            self.close_block()?;
        }
        if !completion.reasoning.is_empty() && !self.streamed.thinking_written {
            self.write_thinking(completion.reasoning.clone())?;
        }
        let assistant = self.assistant(
            self.message_id.clone(),
            ContentBlock::Text {
                text: completion.text.clone(),
            },
            MessageUsage::Counted(completion.usage.into()),
        );
        self.emit(&assistant)?;
        // Qwen Code writes the assistant message before `message_stop`.
        if partial {
            self.stop_message()?;
        }
        let mut result = result_message(
            &self.meta,
            &Outcome::Success(completion),
            extras,
            self.started.elapsed().as_millis(),
            completion.api_duration.as_millis(),
        );
        self.add_stats(&mut result);
        self.emit(&result)?;
        self.finish()
    }

    /// A failed run: the JSON formats still get a valid document (the caller reports the error
    /// on stderr).
    pub(crate) fn failure(
        &mut self,
        err: &Error,
        attempts: u32,
        api_ms: u128,
        extras: &Extras,
    ) -> io::Result<()> {
        if let Some(events) = &mut self.events {
            events.failure(err, attempts, api_ms, extras)?;
        }
        self.end_reasoning_line();
        if self.partial && self.format == Format::StreamJson {
            self.stop_message()?;
        }
        if self.format == Format::Text {
            if !self.ends_with_newline {
                write_stdout(b"\n")?;
            }
            return Ok(());
        }
        let message = err.to_string();
        let outcome = Outcome::Failure {
            kind: err.kind(),
            message: &message,
            attempts,
        };
        let result = result_message(
            &self.meta,
            &outcome,
            extras,
            self.started.elapsed().as_millis(),
            api_ms,
        );
        self.emit(&result)?;
        self.finish()
    }

    /// `-o json` successes carry `stats`, as Qwen Code 0.24.4's `JsonOutputAdapter` writes them
    /// (its stream-json results and its failed results have none).
    fn add_stats(&self, result: &mut ResultMessage) {
        if self.format == Format::Json {
            result.stats = Some(Stats::of(
                &result.model,
                result.attempts,
                !result.is_error,
                result.duration_api_ms,
                &result.usage,
            ));
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.format == Format::Json {
            let mut doc = Value::Array(std::mem::take(&mut self.collected)).to_string();
            doc.push('\n');
            self.sink.write(doc.as_bytes())?;
        }
        Ok(())
    }
}
