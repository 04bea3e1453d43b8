//! One prompt in, one honest result out: the single-run command.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use std::sync::Arc;

use super::{client_settings, load_config, structured_options};
use crate::ask::{self, Answer, AskError, Request};
use crate::auth::{self, session};
use crate::cli::{OutputFormat, RunArgs};
use crate::client::{ApiError, ChatClient};
use crate::config::ResolvedConfig;
use crate::config::resolve::DEFAULT_MODEL;
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::{Extras, RunMeta, RunOutput, github};
use crate::prompt::{InputSpec, read_prompt};
use crate::schema::{OutputSchema, SharedMode};

/// The request body for one prompt.
pub(crate) fn chat_body(model: &str, system: Option<&str>, prompt: &str, args: &RunArgs) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": prompt}));
    let mut body = json!({"model": model, "messages": messages});
    if let Some(t) = args.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = args.max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

/// Everything a run needs before it sends: configuration, a connected client, the prompt, and
/// the schema its answer must match.
struct Prepared {
    config: ResolvedConfig,
    client: ChatClient,
    prompt: String,
    schema: Option<Arc<OutputSchema>>,
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
    args: &RunArgs,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<Prepared, (Error, Option<String>)> {
    let schema = structured_options(args, ctx).map_err(|e| (e, None))?;
    let home = ctx.env.home();
    let mut config = load_config(&args.config, ctx).map_err(|e| (e, None))?;
    let mut plan = auth::credentials(&config, home.as_deref());
    if config.interactive
        && let Err(reason @ Error::Auth { .. }) = &plan
    {
        super::login::offer(reason, config.auth_type.value, ctx, runtime)
            .map_err(|e| (e, Some(config.model.value.clone())))?;
        config = load_config(&args.config, ctx).map_err(|e| (e, None))?;
        plan = auth::credentials(&config, home.as_deref());
    }
    let with_model = |e| (e, Some(config.model.value.clone()));
    let settings = client_settings(args, &config, 1);
    let session = session::connect(plan.map_err(with_model)?, settings, None, &ctx.env, runtime)
        .map_err(with_model)?;
    let prompt = read_prompt(
        &InputSpec {
            arg: args.prompt_arg(),
            stdin_is_terminal: ctx.terminal.stdin,
            stdin_timeout: args.stdin_timeout,
            max_bytes: args.max_input_bytes,
        },
        std::io::stdin(),
    )
    .map_err(with_model)?;
    Ok(Prepared {
        config,
        client: session.client,
        prompt,
        schema,
    })
}

/// `qwen [PROMPT]`: send one prompt and write its result in `format`.
pub(crate) fn command(
    args: &RunArgs,
    format: OutputFormat,
    partial: bool,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    started: Instant,
) -> Result<ExitStatus, Error> {
    let prepared = prepare(args, ctx, runtime);
    let model = match &prepared {
        Ok(p) => p.config.model.value.clone(),
        Err((_, model)) => model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
    };
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model: model.clone(),
        cwd: ctx.cwd.display().to_string(),
    };
    // The answer is data on stdout, byte for byte; its copy in the step summary is server text
    // like any other and goes through the sanitiser (the summary is not masked by the runner).
    let summary_client = prepared.as_ref().ok().map(|p| p.client.clone());
    let mut out = RunOutput::new(format, partial, meta, started);
    if out.init().is_err() {
        // stdout is already gone: a prepared run ends quietly, a failed one still says why.
        return match prepared {
            Ok(_) => Ok(ExitStatus::Success),
            Err((err, _)) => Err(err),
        };
    }
    let outcome = match prepared {
        Ok(prepared) => send(prepared, args, &mut out, runtime),
        Err((err, _)) => Err(err.into()),
    };
    // `--result-file`: written before the success is reported, so that a failure to write it is
    // the run's failure; never written when the run failed.
    let outcome = match (outcome, &args.structured.result_file) {
        (Ok(Some(answer)), Some(file)) => match write_result_file(&ctx.cwd.join(file), &answer) {
            Ok(()) => Ok(Some(answer)),
            Err(error) => Err(RunFailure {
                error,
                attempts: answer.completion.attempts,
                api_ms: answer.completion.api_duration.as_millis(),
                extras: Box::new(ask::answer_extras(&answer)),
            }),
        },
        (other, _) => other,
    };
    let summary_path = github::step_summary_path(&ctx.env);
    let elapsed_ms = started.elapsed().as_millis();
    match outcome {
        Ok(None) => Ok(ExitStatus::Success),
        Ok(Some(answer)) => {
            let completion = &answer.completion;
            let _ = out.success(completion, &ask::answer_extras(&answer));
            if let Some(path) = summary_path {
                let clean = |shown: &str| {
                    summary_client
                        .as_ref()
                        .map_or_else(|| shown.to_owned(), |c| c.sanitized_block(shown))
                };
                let md = github::single_run_summary_with(
                    &model,
                    completion.usage,
                    elapsed_ms,
                    Ok(&completion.text),
                    &clean,
                );
                append_step_summary(&path, &md);
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
                let md = github::single_run_summary(&model, None, elapsed_ms, Err(&message));
                append_step_summary(&path, &md);
            }
            Err(failure.error)
        }
    }
}

/// Send the prompt, streaming the answer into `out` (with a schema, nothing is streamed: an
/// answer that may still be refused is never shown). `Ok(None)`: stdout was closed on the way, a
/// quiet end.
fn send(
    prepared: Prepared,
    args: &RunArgs,
    out: &mut RunOutput,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<Answer>, RunFailure> {
    let Prepared {
        config,
        client,
        prompt,
        schema,
    } = prepared;
    let body = chat_body(
        &config.model.value,
        args.system_prompt.as_deref(),
        &prompt,
        args,
    );
    drop(prompt);
    let deltas_are_final = out.deltas_are_final() && schema.is_none();
    let mode = SharedMode::default();
    let request = Request {
        body,
        models: crate::fallback::model_order(&config.model.value, &args.structured.fallback_models),
        schema,
        schema_retries: args.structured.schema_retries,
        mode: &mode,
    };
    let outcome = runtime.block_on(async {
        let mut on_delta = |text: &str| out.delta(text);
        tokio::select! {
            r = ask::ask(&client, &request, &mut on_delta, deltas_are_final) => Ok(r),
            signal = crate::signals::interrupted() => Err(signal),
        }
    });
    match outcome {
        Ok(Ok(answer)) => Ok(Some(answer)),
        Ok(Err(failure)) if matches!(failure.error, AskError::Api(ApiError::OutputClosed)) => {
            Ok(None)
        }
        Ok(Err(failure)) => Err(RunFailure {
            extras: Box::new(ask::failure_extras(&failure)),
            attempts: failure.attempts,
            api_ms: failure.api_duration.as_millis(),
            error: failure.error.into_error(),
        }),
        Err(signal) => Err(RunFailure {
            error: Error::Interrupted { signal },
            attempts: 1,
            api_ms: Duration::ZERO.as_millis(),
            extras: Box::default(),
        }),
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
