//! The commands, one module each. Every command returns `Result<ExitStatus, Error>`; only `app`
//! prints an error and turns it into an exit status.

pub(crate) mod ai_inference;
pub(crate) mod auth_manage;
pub(crate) mod auth_status;
pub(crate) mod batch;
pub(crate) mod generate;
pub(crate) mod login;
pub(crate) mod provider_batch;
pub(crate) mod run;
pub(crate) mod sessions;
pub(crate) mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::ExposeSecret;

use serde_json::{Map, Value};

use crate::client::ClientSettings;
use crate::config::{self, ResolvedConfig, Source};
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::fsutil;
use crate::job::{Flags, JobDefaults};
use crate::output::github;
use crate::paths::{self, Workspace};
use crate::schema::OutputSchema;
use crate::settings::{Connection, RequestSettings};

/// The HTTP client settings of a command that sends requests with `config`'s key: the
/// connection's (`--proxy`, `--insecure`), with `QWEN_TLS_INSECURE` and `NO_PROXY` from the
/// environment snapshot, and `--openai-logging`'s directory passed through the path door and
/// created (private).
pub(crate) fn client_settings(
    connection: &Connection,
    config: &ResolvedConfig,
    ctx: &Context,
    (max_connections, max_response_bytes): (usize, usize),
    allow_outside: bool,
) -> Result<ClientSettings, Error> {
    let mut settings =
        connection.client(config.debug.is_some(), max_connections, max_response_bytes);
    let insecure_env = ctx
        .env
        .strict_switch(config::env::QWEN_TLS_INSECURE)
        .map_err(|e| {
            Error::config(
                format!("{}: {e}", config::env::QWEN_TLS_INSECURE),
                "set it to 1 to skip certificate verification, or unset it",
            )
        })?;
    settings.transport.insecure |= insecure_env;
    settings.transport.no_proxy = ["no_proxy", "NO_PROXY"]
        .iter()
        .find_map(|n| ctx.env.get(n))
        .map(str::to_owned);
    if let Some(dir) = &connection.openai_log_dir {
        settings.exchange_log = Some(exchange_log_dir(dir, ctx, allow_outside)?);
    }
    Ok(settings)
}

/// `--openai-logging-dir` (`logs/openai` by default): `~/` is HOME, a relative path is relative
/// to the working directory, a link in the workspace may not lead out of it, and kernel trees are
/// refused. Created (0700) when missing.
fn exchange_log_dir(dir: &str, ctx: &Context, allow_outside: bool) -> Result<PathBuf, Error> {
    let what = "--openai-logging-dir";
    let refuse = |e: String| {
        Error::input(
            e,
            "give a directory to write the logs to (--openai-logging-dir DIR)",
        )
    };
    let expanded = match (dir.strip_prefix('~'), ctx.env.home()) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => home
            .join(rest.trim_start_matches('/'))
            .display()
            .to_string(),
        _ => dir.to_owned(),
    };
    let path = Workspace::new(&ctx.cwd, allow_outside)
        .output(what, &expanded)
        .map_err(refuse)?;
    if paths::in_kernel_tree(&path) {
        return Err(refuse(format!(
            "{what} `{dir}` is under /proc, /sys or /dev"
        )));
    }
    fsutil::create_private_dir_all(&path).map_err(|e| refuse(format!("{what} `{dir}`: {e}")))?;
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
        return Err(refuse(format!("{what} `{dir}` is not a directory")));
    }
    Ok(path)
}

/// Load the configuration for a command, then say what must be said about it: the key is masked
/// first under GitHub Actions, and `--debug` shows where each value came from.
pub(crate) fn load_config(args: &Connection, ctx: &Context) -> Result<ResolvedConfig, Error> {
    load_config_and_exposure(args, ctx).map(|(config, _)| config)
}

/// `load_config`, also returning what it found about git and the `.env` in use (see
/// [`dotenv_exposure`]), for a command that shows it again.
pub(crate) fn load_config_and_exposure(
    args: &Connection,
    ctx: &Context,
) -> Result<(ResolvedConfig, Option<DotEnvExposure>), Error> {
    let headers = &args.headers;
    let config = config::load(&args.config, &ctx.env, ctx.terminal, &ctx.cwd)?;
    for warning in config
        .dotenv
        .found
        .iter()
        .flat_map(config::dotenv::skipped_line_warnings)
    {
        diag::warn(&warning);
    }
    let exposure = dotenv_exposure(&config);
    if let Some((path, exposure)) = &exposure {
        let (what, fix) = match exposure {
            crate::gitignore::Exposure::Tracked { relative } => (
                "is tracked by git: everyone who can read the repository can read the key",
                format!(
                    "remove it from git and ignore it: `git rm --cached {relative}` and add the line `{relative}` to .gitignore; then rotate the key"
                ),
            ),
            crate::gitignore::Exposure::NotIgnored { relative } => (
                "is not ignored by git: the next `git add` would publish the key",
                format!("add the line `{relative}` to .gitignore"),
            ),
        };
        diag::warn(&format!(
            "warning: `{}` holds a secret and {what}\nhint: {fix}",
            path.display()
        ));
    }
    if github::is_github_actions(&ctx.env)
        && let Some(key) = &config.api_key
    {
        diag::raw(&github::mask_command(key.value.expose_secret()));
    }
    if github::is_github_actions(&ctx.env) {
        for h in headers.iter().filter(|h| h.is_secret()) {
            diag::raw(&github::mask_command(&h.value));
        }
    }
    if config.debug.is_some() {
        debug_config(&config);
        for h in headers {
            diag::debug(&format!(
                "header {}: {} (--header)",
                h.name,
                crate::secret::redact(&secrecy::SecretString::from(h.value.clone()))
            ));
        }
    }
    Ok((config, exposure))
}

/// The `.env` file in use and how git would publish it.
pub(crate) type DotEnvExposure = (std::path::PathBuf, crate::gitignore::Exposure);

/// Whether the `.env` file the configuration came from holds a secret (a non-empty
/// `OPENAI_API_KEY`, or any `*_KEY`, `*_TOKEN`, `*_SECRET`, `*PASSWORD` value) and git would
/// publish it. Nothing is spawned unless the file holds one and sits in a repository.
fn dotenv_exposure(config: &ResolvedConfig) -> Option<DotEnvExposure> {
    let file = config.dotenv.found.as_ref()?;
    let secret = |name: &str| {
        let upper = name.to_ascii_uppercase();
        ["_KEY", "_TOKEN", "_SECRET", "PASSWORD"]
            .iter()
            .any(|end| upper.ends_with(end))
    };
    if !file.vars.keys().any(|k| secret(k) && file.get(k).is_some()) {
        return None;
    }
    let path = if file.path.is_absolute() {
        file.path.clone()
    } else {
        std::path::absolute(&file.path).ok()?
    };
    crate::gitignore::exposure(&path).map(|e| (file.path.clone(), e))
}

/// Run `read` (a blocking read of standard input) on a thread of its own, and wait for it or for
/// SIGINT/SIGTERM, whichever comes first: a signal while waiting for input ends the run as an
/// interrupted one (130/143, with its JSON document), not by the default disposition. The reading
/// thread is left behind; the process ends without it.
pub(crate) fn interruptible<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    read: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    runtime.block_on(async {
        // The handlers are installed before the read starts, so no signal falls between.
        let mut signals = crate::signals::Listener::new();
        std::thread::spawn(move || {
            let _ = tx.send(read());
        });
        tokio::select! {
            read = rx => read.unwrap_or_else(|_| Err(Error::Internal("the input reader ended".to_owned()))),
            signal = signals.next() => Err(Error::Interrupted { signal }),
        }
    })
}

/// Refuse (usage error, exit 2, before anything is read or written) a command line on which two
/// of the files it names are the same file: an output would destroy an input or another output.
/// `files` pairs a flag with its path (relative to the working directory); `-` is standard input.
pub(crate) fn refuse_same_files(
    files: &[(&str, Option<&str>)],
    ctx: &Context,
) -> Result<(), Error> {
    let named: Vec<(&str, std::path::PathBuf)> = files
        .iter()
        .filter_map(|(flag, path)| Some((*flag, ctx.cwd.join((*path)?))))
        .filter(|(_, path)| path.as_os_str() != ctx.cwd.join("-").as_os_str())
        .collect();
    // Reading one file twice is harmless; a file that is written must be no other.
    let writes = |flag: &str| {
        matches!(
            flag,
            "--output" | "--summary" | "--result-file" | "standard output"
        )
    };
    for (i, (flag_a, a)) in named.iter().enumerate() {
        for (flag_b, b) in &named[i + 1..] {
            if (writes(flag_a) || writes(flag_b)) && crate::paths::same_file(a, b) {
                return Err(Error::usage(
                    format!("{flag_a} and {flag_b} name the same file `{}`", b.display()),
                    Some("give each its own file; nothing was read or written"),
                ));
            }
        }
    }
    Ok(())
}

/// The checked `--json-schema` (exit 2 when it is not a usable schema, before anything is read
/// or sent) and `--fallback-model` list.
pub(crate) fn structured_options(
    args: &RequestSettings,
    ctx: &Context,
) -> Result<Option<Arc<OutputSchema>>, Error> {
    crate::fallback::check_list(&args.fallback_models).map_err(|e| {
        Error::usage(
            format!("--fallback-model: {e}"),
            Some("give at most 3 model names"),
        )
    })?;
    let Some(arg) = &args.json_schema else {
        return Ok(None);
    };
    let door = crate::paths::Workspace::new(&ctx.cwd, args.allow_outside_paths);
    let value = crate::schema::load_arg(arg, &door)
        .map_err(|e| Error::usage(format!("--json-schema: {e}"), Some("nothing was sent")))?;
    OutputSchema::compile(value)
        .map(|s| Some(Arc::new(s)))
        .map_err(|e| {
            Error::usage(
                format!("--json-schema: {e}"),
                Some("fix the schema (draft 2020-12 or draft-07); nothing was sent"),
            )
        })
}

/// `--extra-body`, loaded (exit 2 when it is not a JSON object that leaves the request alone).
pub(crate) fn extra_body(
    args: &RequestSettings,
    ctx: &Context,
) -> Result<Map<String, Value>, Error> {
    match &args.extra_body {
        Some(arg) => crate::request::load_extra_body(
            arg,
            &crate::paths::Workspace::new(&ctx.cwd, args.allow_outside_paths),
        )
        .map_err(|e| Error::usage(format!("--extra-body: {e}"), Some("nothing was sent"))),
        None => Ok(Map::new()),
    }
}

/// `--system-prompt-file`, read now through the command line's door into `system_prompt`: a
/// regular file in the workspace (unless `--allow-outside-paths`), byte for byte, never one of the
/// files the command writes (`outputs`: each flag with its path).
pub(crate) fn read_system_prompt_file(
    args: &mut RequestSettings,
    outputs: &[(&str, Option<&str>)],
    ctx: &Context,
) -> Result<(), Error> {
    let Some(file) = args.system_prompt_file.take() else {
        return Ok(());
    };
    let mut files = vec![("--system-prompt-file", Some(file.as_str()))];
    files.extend_from_slice(outputs);
    refuse_same_files(&files, ctx)?;
    let door = crate::paths::Workspace::new(&ctx.cwd, args.allow_outside_paths);
    let text = door
        .read("--system-prompt-file", &file, args.max_input_bytes)
        .map_err(|e| {
            let hint = crate::paths::read_hint(&e);
            Error::input(e, hint)
        })?;
    // `--append-system-prompt` (already in `system_prompt` alone) goes after the file's text.
    args.system_prompt = Some(match args.system_prompt.take() {
        Some(appended) => format!("{text}\n\n{appended}"),
        None => text,
    });
    Ok(())
}

/// `--prices FILE`, read through the one path door (`paths::JobPaths`, bounded, a regular file,
/// never one of the run's own outputs) and parsed: a file that cannot be read or prices nothing
/// is exit 42 before anything is sent. A path on the command line is the user's own: it may lead
/// anywhere.
pub(crate) fn price_table(
    cost: &crate::settings::CostSettings,
    outputs: Vec<(&'static str, std::path::PathBuf)>,
    ctx: &Context,
) -> Result<Option<Arc<crate::cost::PriceTable>>, Error> {
    let Some(file) = &cost.prices else {
        return Ok(None);
    };
    let paths = crate::paths::JobPaths::new(
        ctx.cwd.clone(),
        crate::paths::PathRules {
            allow_outside: true,
            outputs,
        },
    );
    let hint = "give LiteLLM's model_prices_and_context_window.json (or a file in its format); nothing was sent";
    let text = paths
        .read("--prices", file, crate::cost::MAX_PRICE_FILE_BYTES)
        .map_err(|e| Error::input(e, hint))?;
    crate::cost::PriceTable::parse(&text)
        .map(|t| Some(Arc::new(t)))
        .map_err(|e| Error::input(format!("--prices `{file}` {e}"), hint))
}

/// What the request flags make of every job of a job file, a local batch's and a provider
/// batch's alike: flags beat a job file's `defaults`; a job's own fields beat both.
pub(crate) fn job_defaults(
    args: &RequestSettings,
    model: &config::Sourced<String>,
    headers: Vec<crate::client::params::ExtraHeader>,
    ctx: &Context,
) -> Result<JobDefaults, Error> {
    let schema = structured_options(args, ctx)?;
    let extra_body = extra_body(args, ctx)?;
    let mut defaults = JobDefaults::from_flags(Flags {
        model: &model.value,
        model_from_flag: matches!(model.source, Source::Flag(_)),
        fields: args.params.fields(),
        system: args.system_prompt.as_deref(),
        max_input_bytes: args.max_input_bytes,
    });
    defaults.schema = schema;
    defaults.extra_body = extra_body;
    defaults.headers = headers;
    defaults.fallback_models.clone_from(&args.fallback_models);
    Ok(defaults)
}

fn debug_config(config: &ResolvedConfig) {
    diag::debug(&format!(
        "auth-type={} ({})",
        config.auth_type.value.as_str(),
        config.auth_type.source
    ));
    if let Some(key) = &config.api_key {
        diag::debug(&format!("api key from {}", key.source));
    }
    diag::debug(&format!(
        "base-url={} ({})",
        config.base_url.value, config.base_url.source
    ));
    diag::debug(&format!(
        "model={} ({})",
        config.model.value, config.model.source
    ));
    match &config.dotenv.found {
        Some(f) => diag::debug(&format!(".env used: {}", f.path.display())),
        None => diag::debug(".env used: none"),
    }
    diag::debug(&format!("interactive={}", config.interactive));
}

/// End the run's (or batch's) span with how the run ended, and send the spans left, within the
/// exporter's bounded wait.
pub(crate) fn finish_trace(
    tracer: &crate::otel::Tracer,
    mut span: crate::otel::Span,
    status: &Result<crate::exit::ExitStatus, Error>,
    runtime: &tokio::runtime::Runtime,
) {
    let code = match status {
        Ok(s) => s.code(),
        Err(e) => {
            span.error(e.kind(), &e.to_string());
            e.exit_status().code()
        }
    };
    span.set("qwen.exit_code", u32::from(code));
    tracer.end(span);
    runtime.block_on(tracer.shutdown());
}

/// The client's one event hook, made of several (stream-json's retry messages, a batch's
/// tally, the trace's attempt spans); `None` when there are none.
pub(crate) fn one_hook(hooks: Vec<crate::client::OnEvent>) -> Option<crate::client::OnEvent> {
    match hooks.len() {
        0 => None,
        1 => hooks.into_iter().next(),
        _ => Some(Arc::new(move |event: &crate::client::ClientEvent| {
            for hook in &hooks {
                hook(event);
            }
        })),
    }
}

/// What a job's span says of its answer: the `GenAI` response attributes, what it cost, how many
/// attempts and which models it took; with content capture on, the prompt and the answer.
pub(crate) fn trace_answer(
    span: &mut crate::otel::Span,
    answer: &crate::ask::Answer,
    body: &Value,
    capture: bool,
) {
    let c = &answer.completion;
    span.rename(format!("chat {}", answer.model));
    if let Some(model) = &c.server_model {
        span.set("gen_ai.response.model", model.clone());
    }
    if let Some(id) = &c.response_id {
        span.set("gen_ai.response.id", id.clone());
    }
    if let Some(reason) = &c.finish_reason {
        span.set("gen_ai.response.finish_reasons", vec![reason.clone()]);
    }
    if let Some(u) = c.usage {
        span.set("gen_ai.usage.input_tokens", u.input_tokens);
        span.set("gen_ai.usage.output_tokens", u.output_tokens);
    }
    let extras = crate::ask::answer_extras(answer);
    trace_extras(span, c.attempts, &extras);
    if capture {
        if let Some(messages) = body.get("messages") {
            span.set(
                "gen_ai.input.messages",
                crate::otel::captured(&messages.to_string()),
            );
        }
        let output = serde_json::json!([{"role": "assistant",
            "parts": [{"type": "text", "content": crate::otel::captured(&c.text)}],
            "finish_reason": c.finish_reason}]);
        span.set("gen_ai.output.messages", output.to_string());
    }
}

/// What a job's span says of its failure: `error.type`, the message, and what it spent.
pub(crate) fn trace_failure(
    span: &mut crate::otel::Span,
    kind: &str,
    message: &str,
    attempts: u32,
    extras: &crate::output::Extras,
) {
    span.error(kind, message);
    trace_extras(span, attempts, extras);
}

fn trace_extras(span: &mut crate::otel::Span, attempts: u32, extras: &crate::output::Extras) {
    span.set("qwen.attempts", attempts);
    span.set("qwen.retry_wait_ms", extras.retry_wait_ms);
    if !extras.fallback_from.is_empty() {
        span.set("qwen.fallback_from", extras.fallback_from.clone());
    }
    if let (Some(usd), Some(source)) = (extras.cost.usd, extras.cost.source) {
        span.set("qwen.cost_usd", usd);
        let source = serde_json::to_value(source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        span.set("qwen.cost_source", source);
    }
}
