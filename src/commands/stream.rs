//! `--input-format stream-json -o stream-json`: one process, many turns, driven by JSON lines on
//! stdin (the Qwen Code SDK's protocol, read by `stream_input`). Each user message is one turn:
//! the conversation so far is sent, and the turn's `system`, `assistant` (and `stream_event`)
//! and `result` lines are written as in a single run. Control requests are answered at once,
//! even during a turn: `interrupt` ends the turn in flight with an error result, `set_model`
//! changes the model of the next turns, anything else gets an error response. The process ends
//! when stdin does (exit 0: every turn's outcome is in its result line), or on SIGINT/SIGTERM.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::run::{Input, open_session, request_body, session_secrets};
use super::{extra_body, load_config, structured_options};
use crate::ask::{self, Request};
use crate::auth::{self, session};
use crate::client::{ChatClient, Piece};
use crate::config::{Source, Sourced};
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::{Format, RunMeta, RunOutput};
use crate::schema::{OutputSchema, SharedMode};
use crate::sessions::{Message, Pick, Role, Session};
use crate::settings::RunSettings;
use crate::signals::Signal;
use crate::stream_input::{self, Control, Incoming};

/// What a conversation keeps between turns.
struct Conversation<'a> {
    args: &'a RunSettings,
    ctx: &'a Context,
    client: ChatClient,
    model: Sourced<String>,
    extra: serde_json::Map<String, Value>,
    schema: Option<Arc<OutputSchema>>,
    session_id: String,
    history: Vec<Message>,
    session: Option<Session>,
    /// User messages that arrived during a turn, in order.
    queue: VecDeque<String>,
    /// Standard input has ended.
    eof: bool,
}

pub(crate) fn command(
    args: &RunSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let schema = structured_options(&args.request, ctx)?;
    let extra = extra_body(&args.request, ctx)?;
    let config = load_config(&args.connection, ctx)?;
    let plan = auth::credentials(&config, ctx.env.home().as_deref())?;
    let settings = super::client_settings(
        &args.connection,
        &config,
        ctx,
        (1, args.max_response_bytes),
        args.request.allow_outside_paths,
    )?;
    let connected = session::connect(plan, settings, None, &ctx.env, runtime)?;
    let secrets = session_secrets(&connected.key, args, ctx);
    let client = connected.client;
    let session = open_session(args, ctx, secrets)?;
    let session_id = match (&session, &args.session.pick) {
        (Some(s), _) => s.id.clone(),
        (None, Pick::New(Some(id))) => id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let mut conversation = Conversation {
        args,
        ctx,
        client,
        model: config.model.clone(),
        extra,
        schema,
        session_id,
        history: session
            .as_ref()
            .map(|s| s.history.clone())
            .unwrap_or_default(),
        session,
        queue: VecDeque::new(),
        eof: false,
    };
    let lines = read_lines(args.request.max_input_bytes);
    runtime.block_on(conversation.run(lines))
}

/// Standard input's lines, read on a thread of their own (a blocking read must not hold the
/// runtime), each at most `max` bytes: a longer one ends the input with an error.
fn read_lines(max: u64) -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(std::io::stdin());
        loop {
            let mut buf = Vec::new();
            let read = (&mut reader)
                .take(max.saturating_add(1))
                .read_until(b'\n', &mut buf);
            let line = match read {
                Ok(0) => return,
                Ok(_) if buf.len() as u64 > max && !buf.ends_with(b"\n") => Err(format!(
                    "an input line is longer than --max-input-bytes ({max} bytes)"
                )),
                Ok(_) => String::from_utf8(buf).map_err(|_| "an input line is not UTF-8".into()),
                Err(e) => Err(format!("cannot read standard input: {e}")),
            };
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                return;
            }
        }
    });
    rx
}

fn write_line(value: &Value) -> Result<(), Error> {
    let mut line = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    crate::output::quiet_if_closed(crate::output::write_stdout(&line))
}

impl Conversation<'_> {
    async fn run(
        &mut self,
        mut lines: mpsc::Receiver<Result<String, String>>,
    ) -> Result<ExitStatus, Error> {
        loop {
            let prompt = match self.queue.pop_front() {
                Some(prompt) => prompt,
                None if self.eof => return Ok(ExitStatus::Success),
                None => {
                    let line = tokio::select! {
                        line = lines.recv() => line,
                        signal = crate::signals::interrupted() => return Err(Error::Interrupted { signal }),
                    };
                    match self.take(line)? {
                        Some(prompt) => prompt,
                        None => continue,
                    }
                }
            };
            self.turn(prompt, &mut lines).await?;
        }
    }

    /// Handle one line outside a turn or during one; a user message is returned (to run now, or
    /// queued by the caller during a turn). `Ok(None)` also at the end of input.
    fn take(&mut self, line: Option<Result<String, String>>) -> Result<Option<String>, Error> {
        let line = match line {
            None => {
                self.eof = true;
                return Ok(None);
            }
            Some(Err(why)) => {
                self.eof = true;
                return Err(Error::input(why, "send one JSON message per line"));
            }
            Some(Ok(line)) if line.trim().is_empty() => return Ok(None),
            Some(Ok(line)) => line,
        };
        match stream_input::parse(&line) {
            Incoming::User(text) => Ok(Some(text)),
            Incoming::Control {
                request_id,
                request,
            } => {
                let response = match request {
                    Control::Initialize => stream_input::success(
                        &request_id,
                        &json!({"subtype": "initialize", "session_id": self.session_id,
                                "capabilities": stream_input::capabilities()}),
                    ),
                    // Outside a turn there is nothing to interrupt.
                    Control::Interrupt => {
                        stream_input::success(&request_id, &json!({"subtype": "interrupt"}))
                    }
                    Control::SetModel(model) => {
                        let response = json!({"subtype": "set_model", "model": model});
                        self.model = Sourced::new(model, Source::Flag("set_model"));
                        stream_input::success(&request_id, &response)
                    }
                    Control::Unsupported(subtype) => stream_input::error(
                        &request_id,
                        &format!(
                            "qwen does not support the control request `{}`: it sends prompts and runs no tools",
                            subtype.escape_debug()
                        ),
                    ),
                };
                write_line(&response)?;
                Ok(None)
            }
            Incoming::Ignored => Ok(None),
            Incoming::Bad(why) => {
                diag::warn(&format!("warning: skipped an input line: {why}"));
                Ok(None)
            }
        }
    }

    /// One turn: the conversation so far and `prompt`, its messages written as they come.
    async fn turn(
        &mut self,
        prompt: String,
        lines: &mut mpsc::Receiver<Result<String, String>>,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut schema = self.schema.clone();
        let built = request_body(
            self.args,
            &self.model,
            Input::Text(prompt.clone()),
            &self.extra,
            &mut schema,
            &self.history,
        );
        let model = match &built {
            Ok((model, _)) => model.clone(),
            Err(_) => self.model.value.clone(),
        };
        let meta = RunMeta {
            session_id: self.session_id.clone(),
            model: model.clone(),
            cwd: self.ctx.cwd.display().to_string(),
        };
        let mut out = RunOutput::new(
            Format::StreamJson,
            self.args.partial,
            meta,
            started,
            self.args.show_reasoning,
        );
        let client = self.client.clone();
        out.set_stderr_cleaner(Box::new(move |text| client.sanitized_block(text)));
        crate::output::quiet_if_closed(out.init())?;
        let body = match built {
            Ok((_, body)) => body,
            Err(error) => {
                let _ = out.failure(&error, 0, 0, &crate::output::Extras::default());
                return Ok(());
            }
        };
        let deltas_are_final = out.deltas_are_final() && schema.is_none();
        let mode = SharedMode::default();
        let request = Request {
            body,
            models: crate::fallback::model_order(&model, &self.args.request.fallback_models),
            schema,
            schema_retries: self.args.request.schema_retries,
            mode: &mode,
            headers: Vec::new(),
            own_token_limit: true,
            // The SDK's conversations carry no price table and no trace (see README).
            prices: None,
            trace: None,
        };
        let outcome = {
            let mut on_delta = |piece: Piece<'_>| out.delta(piece);
            let asker = self.client.clone();
            let asking = ask::ask(&asker, &request, &mut on_delta, deltas_are_final);
            tokio::pin!(asking);
            loop {
                tokio::select! {
                    r = &mut asking => break Some(r),
                    line = lines.recv(), if !self.eof => {
                        if let Some(Ok(text)) = &line
                            && let Incoming::Control { request_id, request: Control::Interrupt } = stream_input::parse(text)
                        {
                            write_line(&stream_input::success(&request_id, &json!({"subtype": "interrupt"})))?;
                            break None;
                        }
                        if let Some(prompt) = self.take(line)? {
                            self.queue.push_back(prompt);
                        }
                    }
                    signal = crate::signals::interrupted() => return Err(Error::Interrupted { signal }),
                }
            }
        };
        self.finish(&mut out, outcome, prompt)
    }

    /// Write the turn's result, and keep (and record) the turn when it succeeded.
    fn finish(
        &mut self,
        out: &mut RunOutput,
        outcome: Option<Result<ask::Answer, ask::AskFailure>>,
        prompt: String,
    ) -> Result<(), Error> {
        match outcome {
            Some(Ok(answer)) => {
                let extras = ask::answer_extras(&answer);
                crate::output::quiet_if_closed(out.success(&answer.completion, &extras))?;
                let text = answer.completion.text.clone();
                if let Some(session) = &mut self.session
                    && let Err(e) = session.append(&prompt, &text)
                {
                    diag::warn(&format!("warning: {e}"));
                }
                self.history.push(Message {
                    role: Role::User,
                    content: prompt,
                });
                self.history.push(Message {
                    role: Role::Assistant,
                    content: text,
                });
            }
            Some(Err(failure)) => {
                let extras = ask::failure_extras(&failure);
                let (attempts, api_ms) = (failure.attempts, failure.api_duration.as_millis());
                let _ = out.failure(&failure.error.into_error(), attempts, api_ms, &extras);
            }
            None => {
                let error = Error::Interrupted {
                    signal: Signal::Interrupt,
                };
                let _ = out.failure(&error, 1, 0, &crate::output::Extras::default());
            }
        }
        Ok(())
    }
}
