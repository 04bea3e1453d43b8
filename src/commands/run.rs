//! One prompt in, one honest result out: the single-run command.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use std::sync::Arc;

use super::{
    extra_body, finish_trace, load_config, one_hook, price_table, refuse_same_files,
    structured_options, trace_answer, trace_failure,
};
use crate::ask::{self, Answer, AskError, Request};
use crate::auth::{self, session};
use crate::client::{ApiError, ChatClient, Piece, RequestTrace};
use crate::config::Source;
use crate::config::resolve::DEFAULT_MODEL;
use crate::context::Context;
use crate::cost::{self, PriceTable};
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::otel::{Server, Span, Tracing};
use crate::output::{Extras, RunMeta, RunOutput, github};
use crate::paths::Workspace;
use crate::prompt::{InputSpec, read_prompt};
use crate::prompt_file::{self, PromptFile, ResponseFormat};
use crate::references;
use crate::request;
use crate::schema::{OutputSchema, SharedMode};
use crate::secret::{self, Secrets};
use crate::sessions::{self, Pick, Session, Store};
use crate::settings::{JsonEvents, RunSettings};
use secrecy::SecretString;

/// Everything a run needs before it sends: configuration, a connected client, the request body,
/// and the schema its answer must match.
struct Prepared {
    client: ChatClient,
    /// The model asked for: a `-m` flag, else the prompt file's `model`, else the configured one.
    model: String,
    body: Value,
    schema: Option<Arc<OutputSchema>>,
    /// The conversation this run continues and records (none for a prompt file, or without HOME).
    session: Option<Session>,
    /// The prompt's text as sent (what a session records).
    prompt: Option<String>,
    /// `--prices`.
    prices: Option<Arc<PriceTable>>,
    /// Where the API is, for the trace.
    server: Server,
}

/// What a run sends: from a `.prompt.yml` prompt file, or a prompt text (arguments, stdin, or a
/// plain `--prompt-file`).
pub(super) enum Input {
    PromptFile(Box<PromptFile>),
    Text(String),
}

/// A run that failed, with what it spent and what its result says besides the error.
struct RunFailure {
    error: Error,
    attempts: u32,
    api_ms: u128,
    extras: Box<Extras>,
}

impl From<Error> for RunFailure {
    fn from(error: Error) -> Self {
        Self {
            error,
            attempts: 0,
            api_ms: 0,
            extras: Box::default(),
        }
    }
}

/// Configuration, credentials and input, in that order: an auth problem is reported before
/// anything waits on standard input. In a terminal without usable credentials, the login
/// dialogue is offered first. A failure carries the model, when it was known, for the result.
fn prepare(
    args: &RunSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<Prepared, (Error, Option<String>)> {
    refuse_same_files_of(args, ctx).map_err(|e| (e, None))?;
    let mut schema = structured_options(&args.request, ctx).map_err(|e| (e, None))?;
    let extra = extra_body(&args.request, ctx).map_err(|e| (e, None))?;
    let outputs = args
        .result_file
        .iter()
        .map(|f| ("--result-file", ctx.cwd.join(f)))
        .collect();
    let prices = price_table(&args.cost, outputs, ctx).map_err(|e| (e, None))?;
    let home = ctx.env.home();
    let mut config = load_config(&args.connection, ctx).map_err(|e| (e, None))?;
    let mut plan = auth::credentials(&config, home.as_deref());
    if config.interactive
        && let Err(reason @ Error::Auth { .. }) = &plan
    {
        super::login::offer(reason, config.auth_type.value, ctx, runtime)
            .map_err(|e| (e, Some(config.model.value.clone())))?;
        config = load_config(&args.connection, ctx).map_err(|e| (e, None))?;
        plan = auth::credentials(&config, home.as_deref());
    }
    let with_model = |e| (e, Some(config.model.value.clone()));
    let settings = super::client_settings(
        &args.connection,
        &config,
        ctx,
        (1, args.max_response_bytes),
        args.request.allow_outside_paths,
    )
    .map_err(with_model)?;
    let session = session::connect(plan.map_err(with_model)?, settings, None, &ctx.env, runtime)
        .map_err(with_model)?;
    let secrets = session_secrets(&session.key, args, ctx);
    let conversation = open_session(args, ctx, secrets).map_err(with_model)?;
    let input = read_input(args, ctx, runtime).map_err(with_model)?;
    let prompt = match &input {
        Input::Text(text) => Some(text.clone()),
        Input::PromptFile(_) => None,
    };
    let history = conversation.as_ref().map_or(&[][..], |s| &s.history[..]);
    let (model, body) = request_body(args, &config.model, input, &extra, &mut schema, history)
        .map_err(with_model)?;
    Ok(Prepared {
        client: session.client,
        model,
        body,
        schema,
        session: conversation,
        prompt,
        prices,
        server: Server::of(&config.base_url.value),
    })
}

/// The session of this run (`-c`, `-r ID`, `--session-id`, or a new one), opened and locked
/// before stdin is read or anything is sent. A prompt file records nothing; without HOME a plain
/// run records nothing, and a run that asked for a session fails.
pub(super) fn open_session(
    args: &RunSettings,
    ctx: &Context,
    secrets: Secrets,
) -> Result<Option<Session>, Error> {
    let s = &args.session;
    if args.prompt_file.is_some() {
        return Ok(None);
    }
    let Some(home) = ctx.env.home() else {
        if s.pick == Pick::New(None) {
            return Ok(None);
        }
        return Err(Error::config(
            "HOME is not set: there is no sessions directory",
            "set HOME",
        ));
    };
    let store = Store::new(
        &sessions::root(&home),
        &ctx.cwd,
        args.request.max_input_bytes,
    )
    .scrubbing(secrets);
    match store.open(&s.pick, s.fork, s.record) {
        Ok(session) => Ok(Some(session)),
        // A plain run only records in passing: a HOME it cannot write (a container's read-only
        // root) costs the recording, not the answer. A run that asked for a session fails.
        Err(e) if s.pick == Pick::New(None) => {
            crate::diag::warn(&format!(
                "warning: this run is not recorded for -c/--continue: {e}"
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What a session file must never hold: the run's key, every `-H` value, and every variable of
/// the environment that looks like a credential (`secret::looks_like_credential`).
pub(super) fn session_secrets(key: &SecretString, args: &RunSettings, ctx: &Context) -> Secrets {
    let headers = args.connection.headers.iter().map(|h| h.value.clone());
    let env = ctx
        .env
        .vars()
        .filter(|(name, value)| secret::looks_like_credential(name, value))
        .map(|(_, value)| value.to_owned());
    Secrets::new(std::iter::once(key.clone()).chain(headers.chain(env).map(SecretString::from)))
}

/// The one file a single run writes must not be one it reads (nor standard input), and it may not
/// lead out of the workspace through a link.
fn refuse_same_files_of(args: &RunSettings, ctx: &Context) -> Result<(), Error> {
    let json_file = match &args.json_events {
        Some(JsonEvents::File(f)) => Some(f.as_str()),
        _ => None,
    };
    let mut files = vec![
        ("--json-schema", args.request.schema_file()),
        ("--result-file", args.result_file.as_deref()),
        ("--json-file", json_file),
        ("--prompt-file", args.prompt_file.as_deref()),
        ("--extra-body", args.request.extra_body_file()),
        ("--prices", args.cost.prices.as_deref()),
    ];
    files.extend(args.vars.iter().map(|(_, value)| match value {
        prompt_file::VarValue::File(path) => ("--var", path.to_str()),
        prompt_file::VarValue::Text(_) => ("--var", None),
    }));
    // `--result-file F < F` would replace the prompt it read.
    let stdin_is_file =
        !ctx.terminal.stdin && std::fs::metadata("/dev/stdin").is_ok_and(|m| m.is_file());
    files.push(("standard input", stdin_is_file.then_some("/dev/stdin")));
    refuse_same_files(&files, ctx)?;
    // The output passes the command line's door: a link in the workspace may not lead it out.
    if let Some(file) = &args.result_file {
        Workspace::new(&ctx.cwd, args.request.allow_outside_paths)
            .output("--result-file", file)
            .map_err(|e| Error::input(e, "nothing was sent"))?;
    }
    Ok(())
}

/// The destination of `--json-file`/`--json-fd`, open for writing, taken before the runtime
/// opens descriptors of its own (`--json-fd N` must be the caller's descriptor, never one of
/// qwen's), once the files of the command line are known to be distinct.
pub(crate) fn open_events(
    args: &RunSettings,
    ctx: &Context,
) -> Result<Option<std::fs::File>, Error> {
    let Some(events) = &args.json_events else {
        return Ok(None);
    };
    refuse_same_files_of(args, ctx)?;
    open_json_events(events, ctx, args.request.allow_outside_paths).map(Some)
}

/// The file `--json-file`/`--json-fd` name, open for writing.
///
/// `--json-file`: through the path door (a link in the workspace may not lead out of it, nothing
/// under `/proc`, `/sys` or `/dev`), a regular file only, created (0600) or replaced. A FIFO is
/// refused (opening it would wait for a reader): hand qwen a pipe with `--json-fd`.
/// `--json-fd N`: the inherited descriptor, which must be open for writing (its flags are read
/// from `/proc/self/fdinfo/N`); it is reopened through `/proc/self/fd/N` in append mode.
fn open_json_events(
    events: &JsonEvents,
    ctx: &Context,
    allow_outside: bool,
) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let hint = "give a regular file (--json-file FILE) or a descriptor open for writing (--json-fd 3 3>FILE)";
    let refuse = |message: String| Error::input(message, hint);
    let file = match events {
        JsonEvents::File(name) => {
            let path = Workspace::new(&ctx.cwd, allow_outside)
                .output("--json-file", name)
                .map_err(refuse)?;
            if crate::paths::in_kernel_tree(&path) {
                return Err(refuse(format!(
                    "--json-file `{name}` is under /proc, /sys or /dev (use --json-fd N for a descriptor)"
                )));
            }
            if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
                return Err(refuse(format!(
                    "--json-file `{name}` is not a regular file (a FIFO or a device is never opened; hand qwen a pipe with --json-fd N)"
                )));
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| refuse(format!("--json-file `{name}`: {e}")))?
        }
        JsonEvents::Fd(fd) => {
            let flags = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
                .map_err(|_| refuse(format!("--json-fd {fd}: the descriptor is not open")))?;
            let access = flags
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .map(|f| f & 0o3);
            if !matches!(access, Some(1 | 2)) {
                return Err(refuse(format!(
                    "--json-fd {fd}: the descriptor is not open for writing"
                )));
            }
            std::fs::OpenOptions::new()
                .append(true)
                .open(format!("/proc/self/fd/{fd}"))
                .map_err(|e| refuse(format!("--json-fd {fd}: {e}")))?
        }
    };
    if let JsonEvents::File(name) = events
        && !file.metadata().is_ok_and(|m| m.is_file())
    {
        return Err(refuse(format!(
            "--json-file `{name}` is not a regular file"
        )));
    }
    Ok(file)
}

/// The request body of a single run, through `request::compose`: the flags over a prompt file's
/// `model` and `modelParameters` over the configured model. A prompt file's `jsonSchema` applies
/// unless `--json-schema` was given.
pub(super) fn request_body(
    args: &RunSettings,
    configured: &crate::config::Sourced<String>,
    input: Input,
    extra: &Map<String, Value>,
    schema: &mut Option<Arc<OutputSchema>>,
    history: &[sessions::Message],
) -> Result<(String, Value), Error> {
    let system = args.request.system_prompt.as_deref();
    let mut fields = request::Fields {
        flags: args.request.params.fields(),
        ..request::Fields::default()
    };
    if let Source::Flag(_) = configured.source {
        fields.flags.insert("model".into(), json!(configured.value));
    }
    let messages = match input {
        Input::Text(prompt) => {
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.extend(
                history
                    .iter()
                    .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
            );
            messages.push(json!({"role": "user", "content": prompt}));
            messages
        }
        Input::PromptFile(file) => {
            fields.prompt_file = request::prompt_file_fields(&file.parameters);
            if let Some(model) = &file.model {
                fields.prompt_file.insert("model".into(), json!(model));
            }
            if schema.is_none()
                && let ResponseFormat::JsonSchema(spec) = &file.response_format
            {
                let compiled = spec.compile().map_err(|e| {
                    Error::input(
                        format!("the prompt file's `jsonSchema`: {e}"),
                        "fix the schema in the prompt file (draft 2020-12 or draft-07); nothing was sent",
                    )
                })?;
                *schema = Some(Arc::new(compiled));
            }
            request::prompt_file_messages(&file, system)
        }
    };
    let none = Map::new();
    let extra = request::ExtraBodies {
        file_defaults: &none,
        flags: extra,
        job: &none,
    };
    request::compose(&configured.value, messages, fields, extra).map_err(|e| {
        Error::input(
            format!("the prompt file: {e}"),
            "fix the prompt file; nothing was sent",
        )
    })
}

/// The prompt: a `.prompt.yml` prompt file filled with its `--var`s (their `@path`s relative to
/// the working directory), or a text from the arguments, a plain `--prompt-file`, and stdin.
fn read_input(
    args: &RunSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<Input, Error> {
    let vars = &args.vars[..];
    let max = args.request.max_input_bytes;
    // The files of the command line pass the one door (`paths::Workspace`).
    let door = Workspace::new(&ctx.cwd, args.request.allow_outside_paths);
    let mut arg = args.prompt.clone();
    if let Some(file) = &args.prompt_file {
        let path = ctx.cwd.join(file);
        if prompt_file::is_prompt_file(&path) {
            let rendered =
                prompt_file::load(file, vars, max, |what, p, cap| door.read(what, p, cap))?;
            for warning in &rendered.warnings {
                github::warn(&ctx.env, warning);
            }
            return Ok(Input::PromptFile(Box::new(rendered.prompt)));
        }
        if !vars.is_empty() {
            return Err(Error::usage(
                format!(
                    "--var fills a `.prompt.yml` prompt file's placeholders; `{file}` is read as plain text"
                ),
                Some("name the prompt file *.prompt.yml or *.prompt.yaml, or drop --var"),
            ));
        }
        arg = Some(door.read("--prompt-file", file, max).map_err(|e| {
            let hint = crate::paths::read_hint(&e);
            Error::input(e, hint)
        })?);
    } else if let Some(prompt) = &arg {
        // `@path` references: in the prompt argument only, never in stdin (a piped diff is
        // someone else's text) nor in a prompt file.
        arg = Some(references::expand(prompt, &workspace(args, ctx)?)?);
    }
    let spec = InputSpec {
        arg,
        stdin_is_terminal: ctx.terminal.stdin,
        stdin_timeout: args.stdin_timeout,
        max_bytes: max,
    };
    // A signal while waiting for stdin is an interrupted run (with its JSON document).
    super::interruptible(runtime, move || read_prompt(&spec, std::io::stdin())).map(Input::Text)
}

/// The roots `@path` references may read under: the working directory, then
/// `--include-directories` (relative to it), each an existing directory.
fn workspace(args: &RunSettings, ctx: &Context) -> Result<references::Workspace, Error> {
    let mut roots = vec![ctx.cwd.clone()];
    for dir in &args.include_directories {
        let path = ctx.cwd.join(dir);
        if !path.is_dir() {
            return Err(Error::input(
                format!("--include-directories `{dir}` is not a directory"),
                "name an existing directory, or drop it",
            ));
        }
        roots.push(path);
    }
    Ok(references::Workspace {
        roots,
        max_bytes: args.request.max_input_bytes,
    })
}

/// `qwen [PROMPT]`: send one prompt and write its result in `format`.
pub(crate) fn command(
    args: &RunSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    (started, events): (Instant, Option<std::fs::File>),
) -> Result<ExitStatus, Error> {
    // OpenTelemetry: the run's span, a child of the CI's `TRACEPARENT` when there is one.
    let tracing = Tracing::from_env(&ctx.env);
    let tracer = tracing.tracer().cloned();
    let run_span = tracer.as_ref().map(|t| t.root("qwen"));
    let mut prepared = prepare(args, ctx, runtime);
    let model = match &prepared {
        Ok(p) => p.model.clone(),
        Err((_, model)) => model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
    };
    // The session leaves `prepared` here: the turn is recorded after the answer.
    let (mut conversation, sent_prompt) = match &mut prepared {
        Ok(p) => (p.session.take(), p.prompt.take()),
        Err(_) => (None, None),
    };
    let session_id = match (&conversation, &args.session.pick) {
        (Some(s), _) => s.id.clone(),
        (None, Pick::New(Some(id))) => id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let meta = RunMeta {
        session_id,
        model: model.clone(),
        cwd: ctx.cwd.display().to_string(),
    };
    // The answer is data on stdout, byte for byte; its copy in the step summary is server text
    // like any other and goes through the sanitiser (the summary is not masked by the runner).
    let mut out = RunOutput::new(
        args.format,
        args.partial,
        meta,
        started,
        args.show_reasoning,
    );
    if let Some(file) = events {
        out = out.with_events(file);
    }
    // stream-json and json say each wait before another try (`api_retry` messages); the trace
    // records each attempt.
    let hooks = [
        out.retry_hook(),
        tracer
            .as_ref()
            .map(|t| Arc::new(t.attempt_hook()) as crate::client::OnEvent),
    ];
    let prepared = match (prepared, one_hook(hooks.into_iter().flatten().collect())) {
        (Ok(mut p), Some(hook)) => {
            p.client = p.client.with_on_event(hook);
            Ok(p)
        }
        (other, _) => other,
    };
    let job_span = match (&tracer, &run_span, &prepared) {
        (Some(t), Some(run), Ok(p)) => {
            t.set_server(p.server.clone());
            Some(t.chat(run.context(), &p.model))
        }
        _ => None,
    };
    let trace = tracing.request(job_span.as_ref().map(Span::context));
    let captured_body = match (&tracer, &prepared) {
        (Some(t), Ok(p)) if t.captures_content() => Some(p.body.clone()),
        _ => None,
    };
    let summary_client = prepared.as_ref().ok().map(|p| p.client.clone());
    if let Some(client) = &summary_client {
        let client = client.clone();
        out.set_stderr_cleaner(Box::new(move |text| client.sanitized_block(text)));
    }
    if let Err(e) = out.init() {
        // stdout is already gone: a prepared run ends quietly, a failed one still says why; a
        // stdout that cannot be written (a full disk) is the run's failure.
        return match prepared {
            Err((err, _)) => Err(err),
            Ok(_) if crate::output::is_closed(&e) => Ok(ExitStatus::Success),
            Ok(_) => Err(crate::output::stdout_failed(e)),
        };
    }
    let outcome = match prepared {
        Ok(prepared) => send(prepared, args, &mut out, runtime, (started, trace)),
        Err((err, _)) => Err(err.into()),
    };
    let outcome = keep(outcome, args, ctx, conversation.as_mut(), sent_prompt);
    let summary = Summary {
        path: github::step_summary_path(&ctx.env),
        client: summary_client,
        model,
        elapsed_ms: started.elapsed().as_millis(),
        max_budget_usd: args.cost.max_budget_usd,
    };
    if let (Some(tracer), Some(mut span)) = (&tracer, job_span) {
        trace_outcome(&mut span, &outcome, captured_body.as_ref());
        tracer.end(span);
    }
    let status = report(outcome, &mut out, &summary);
    if let (Some(tracer), Some(span)) = (&tracer, run_span) {
        finish_trace(tracer, span, &status, runtime);
    }
    status
}

/// What the job's span says of how the run's exchange ended.
fn trace_outcome(
    span: &mut Span,
    outcome: &Result<Option<Answer>, RunFailure>,
    captured_body: Option<&Value>,
) {
    match outcome {
        Ok(Some(answer)) => {
            let body = captured_body.unwrap_or(&Value::Null);
            trace_answer(span, answer, body, captured_body.is_some());
        }
        Err(f) => trace_failure(
            span,
            f.error.kind(),
            &f.error.to_string(),
            f.attempts,
            &f.extras,
        ),
        Ok(None) => {}
    }
}

/// What a whole answer leaves behind, before the success is reported: the `--result-file`
/// (never written when the run failed), then the turn recorded in the session. A failure of
/// either is the run's failure, so that a result file is never stale and the next `-c` never
/// silently misses a turn.
fn keep(
    outcome: Result<Option<Answer>, RunFailure>,
    args: &RunSettings,
    ctx: &Context,
    conversation: Option<&mut Session>,
    prompt: Option<String>,
) -> Result<Option<Answer>, RunFailure> {
    let Ok(Some(answer)) = outcome else {
        return outcome;
    };
    let failed = |error: Error, answer: &Answer| RunFailure {
        error,
        attempts: answer.completion.attempts,
        api_ms: answer.completion.api_duration.as_millis(),
        extras: Box::new(ask::answer_extras(answer)),
    };
    if let Some(file) = &args.result_file
        && let Err(error) = Workspace::new(&ctx.cwd, args.request.allow_outside_paths)
            .output("--result-file", file)
            .map_err(|e| Error::input(e, "the answer was not written"))
            .and_then(|path| write_result_file(&path, &answer))
    {
        return Err(failed(error, &answer));
    }
    if let (Some(session), Some(prompt)) = (conversation, prompt)
        && let Err(error) = session.append(&prompt, &answer.completion.text)
    {
        return Err(failed(error, &answer));
    }
    Ok(Some(answer))
}

/// Where and how a run's step summary is written.
struct Summary {
    path: Option<std::path::PathBuf>,
    /// The sanitiser of the server's text (none when the run never connected).
    client: Option<ChatClient>,
    model: String,
    elapsed_ms: u128,
    /// `--max-budget-usd`, checked once the answer's cost is known.
    max_budget_usd: Option<f64>,
}

/// Write the run's last message and its step summary, and give its exit status.
fn report(
    outcome: Result<Option<Answer>, RunFailure>,
    out: &mut RunOutput,
    summary: &Summary,
) -> Result<ExitStatus, Error> {
    let Summary {
        path: summary_path,
        client: summary_client,
        model,
        elapsed_ms,
        max_budget_usd,
    } = summary;
    let (model, elapsed_ms) = (model.as_str(), *elapsed_ms);
    match outcome {
        Ok(None) => Ok(ExitStatus::Success),
        Ok(Some(answer)) => {
            let completion = &answer.completion;
            // A lost answer is no success: only a closed pipe ends quietly.
            crate::output::quiet_if_closed(out.success(completion, &ask::answer_extras(&answer)))?;
            if let Some(error) = out.events_failure() {
                return Err(error);
            }
            if let Some(path) = summary_path {
                let clean = |shown: &str| {
                    summary_client
                        .as_ref()
                        .map_or_else(|| shown.to_owned(), |c| c.sanitized_block(shown))
                };
                let md = github::single_run_summary_with(
                    model,
                    completion.usage,
                    answer.cost,
                    elapsed_ms,
                    Ok(&completion.text),
                    &clean,
                );
                append_step_summary(path, &md);
            }
            if let Some(limit) = max_budget_usd {
                spent_within(*limit, &answer)?;
            }
            Ok(ExitStatus::Success)
        }
        Err(failure) => {
            let _ = out.failure(
                &failure.error,
                failure.attempts,
                failure.api_ms,
                &failure.extras,
            );
            if let Some(path) = summary_path {
                let message = failure.error.to_string();
                let md = github::single_run_summary(
                    model,
                    None,
                    failure.extras.cost,
                    elapsed_ms,
                    Err(&message),
                );
                append_step_summary(path, &md);
            }
            Err(failure.error)
        }
    }
}

/// `--max-budget-usd` after the answer: its cost must be known (else the budget cannot be kept:
/// a usage error, exit 2) and within the limit (else exit 55). The answer itself was written.
fn spent_within(limit: f64, answer: &Answer) -> Result<(), Error> {
    match answer.cost.usd {
        None => Err(Error::usage(
            format!(
                "--max-budget-usd: the cost of the answer of `{}` is unknown (the server reported none, and no --prices entry names the model)",
                answer.model
            ),
            Some(
                "give --prices FILE (LiteLLM's model_prices_and_context_window.json) with the model, or drop --max-budget-usd",
            ),
        )),
        Some(usd) if usd > limit => Err(Error::Budget {
            message: format!("the answer cost ${usd:.6}, more than --max-budget-usd (${limit})"),
            hint: Some("raise --max-budget-usd, or ask for less (--max-tokens)".to_owned()),
        }),
        Some(_) => Ok(()),
    }
}

/// `--max-budget-usd` before sending: with a price for the model and a token limit, the most the
/// request could cost must be within the limit (exit 55, nothing sent).
fn affordable(
    limit: f64,
    body: &Value,
    model: &str,
    prices: Option<&PriceTable>,
) -> Result<(), Error> {
    let Some(worst) = prices
        .and_then(|t| t.get(model))
        .and_then(|p| cost::request_estimate(p, body))
    else {
        return Ok(());
    };
    if worst > limit {
        return Err(Error::Budget {
            message: format!(
                "the request could cost up to ${worst:.6} (prompt and --max-tokens at the --prices of `{model}`), more than --max-budget-usd (${limit}); nothing was sent"
            ),
            hint: Some("raise --max-budget-usd, or lower --max-tokens".to_owned()),
        });
    }
    Ok(())
}

/// Send the prompt, streaming the answer into `out` (with a schema, nothing is streamed: an
/// answer that may still be refused is never shown). `Ok(None)`: stdout was closed on the way, a
/// quiet end.
#[allow(
    clippy::result_large_err,
    reason = "one run's one failure, moved once to be reported"
)]
fn send(
    prepared: Prepared,
    args: &RunSettings,
    out: &mut RunOutput,
    runtime: &tokio::runtime::Runtime,
    (started, trace): (Instant, Option<RequestTrace>),
) -> Result<Option<Answer>, RunFailure> {
    // `--max-wall-time` bounds the whole run (counted from its start), however slowly a server trickles.
    let limit = args.max_wall_time;
    let left = limit.map(|l| l.saturating_sub(started.elapsed()));
    let Prepared {
        client,
        model,
        body,
        schema,
        prices,
        server: _,
        ..
    } = prepared;
    if let Some(limit) = args.cost.max_budget_usd {
        affordable(limit, &body, &model, prices.as_deref())?;
    }
    let deltas_are_final = out.deltas_are_final() && schema.is_none();
    let mode = SharedMode::default();
    let request = Request {
        body,
        models: crate::fallback::model_order(&model, &args.request.fallback_models),
        schema,
        schema_retries: args.request.schema_retries,
        mode: &mode,
        headers: Vec::new(),
        own_token_limit: true,
        prices: prices.as_deref(),
        trace,
    };
    // The client turns any write error of a piece into `OutputClosed`; this keeps the ones that
    // are not a closed pipe, which fail the run.
    let mut write_failure = None;
    let outcome = runtime.block_on(async {
        let mut on_delta = |piece: Piece<'_>| {
            out.delta(piece).inspect_err(|e| {
                if !crate::output::is_closed(e) {
                    write_failure = Some(std::io::Error::new(e.kind(), e.to_string()));
                }
            })
        };
        tokio::select! {
            r = ask::ask(&client, &request, &mut on_delta, deltas_are_final) => Ok(r),
            signal = crate::signals::interrupted() => Err(Error::Interrupted { signal }),
            () = sleep_or_never(left) => Err(Error::WallTime { limit: limit.unwrap_or_default() }),
        }
    });
    match outcome {
        Ok(Ok(answer)) => Ok(Some(answer)),
        Ok(Err(failure)) if matches!(failure.error, AskError::Api(ApiError::OutputClosed)) => {
            match write_failure {
                None => Ok(None),
                Some(e) => Err(RunFailure {
                    attempts: failure.attempts,
                    api_ms: failure.api_duration.as_millis(),
                    extras: Box::new(ask::failure_extras(&failure)),
                    error: crate::output::stdout_failed(e),
                }),
            }
        }
        Ok(Err(failure)) => Err(RunFailure {
            extras: Box::new(ask::failure_extras(&failure)),
            attempts: failure.attempts,
            api_ms: failure.api_duration.as_millis(),
            error: failure.error.into_error(),
        }),
        Err(error) => Err(RunFailure {
            error,
            attempts: 1,
            api_ms: Duration::ZERO.as_millis(),
            extras: Box::default(),
        }),
    }
}

/// Sleep for `d`, or forever without one.
async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Write the answer to `--result-file`: the text as it came, or the validated JSON value and a
/// newline.
fn write_result_file(path: &std::path::Path, answer: &Answer) -> Result<(), Error> {
    let mut bytes = answer.completion.text.clone().into_bytes();
    if answer.structured.is_some() {
        bytes.push(b'\n');
    }
    crate::result_file::write(path, &bytes)
        .map_err(|e| Error::file("write the result file", path, e))
}

/// Append to `$GITHUB_STEP_SUMMARY`; a failure to do so is a warning, never the run's failure.
pub(crate) fn append_step_summary(path: &std::path::Path, markdown: &str) {
    if let Err(e) = github::append_summary(path, markdown) {
        diag::warn(&format!(
            "warning: cannot append to the step summary `{}`: {e}",
            path.display()
        ));
    }
}
