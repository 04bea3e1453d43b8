//! One prompt in, one honest result out: the single-run command.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::app::{Context, load_config};
use crate::ask::{self, AskError, Request};
use crate::schema::{OutputSchema, SharedMode};
use secrecy::ExposeSecret;

use crate::auth::{self, AuthPlan, Credentials};
use crate::cli::RunArgs;
use crate::client::{ApiError, ChatClient, ClientSettings, RateLimiter, RetryPolicy};
use crate::config::ResolvedConfig;
use crate::config::resolve::DEFAULT_MODEL;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::gha as github;
use crate::login;
use crate::oauth::creds::{CredsPaths, REFRESH_MARGIN_MS};
use crate::oauth::{self, Endpoints};
use crate::output::{RunMeta, RunOutput, diag};
use crate::prompt::{InputSpec, read_prompt};

/// The HTTP client settings a run's flags ask for.
pub fn client_settings(
    args: &RunArgs,
    config: &ResolvedConfig,
    max_connections: usize,
) -> ClientSettings {
    ClientSettings {
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
        retry: RetryPolicy {
            retries: args.retries,
            base_delay: args.retry_base_delay,
            max_retry_wait: args.max_retry_wait,
            ..RetryPolicy::default()
        },
        debug: config.debug.is_some(),
        max_connections,
    }
}

/// The request body for one prompt.
pub fn chat_body(model: &str, system: Option<&str>, prompt: &str, args: &RunArgs) -> Value {
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

/// Qwen OAuth requests are capped client-side at the free tier's rate.
pub const QWEN_OAUTH_REQUESTS_PER_MINUTE: u32 = 60;

/// What a run authenticates with: the credentials, and for Qwen OAuth what it takes to keep the
/// token fresh during a long run.
pub struct Authenticated {
    pub credentials: Credentials,
    pub oauth: Option<OauthSession>,
}

/// Keeps a Qwen OAuth token fresh for a client that outlives it (a long batch).
pub struct OauthSession {
    paths: CredsPaths,
    http: reqwest::Client,
    endpoints: Endpoints,
    expiry_ms: Option<u64>,
    mask: bool,
}

impl OauthSession {
    /// Refresh the token (under the shared lock) when it expires within the margin, and hand the
    /// new one to `client` and all its clones.
    pub async fn keep_fresh(&mut self, client: &ChatClient) -> Result<(), Error> {
        let due = self
            .expiry_ms
            .is_some_and(|e| oauth::creds::now_ms().saturating_add(REFRESH_MARGIN_MS) >= e);
        if !due {
            return Ok(());
        }
        let creds = oauth::creds::ensure_fresh(&self.paths, &self.http, &self.endpoints).await?;
        let credentials = auth::oauth_credentials(&creds)?;
        if self.mask {
            diag::raw(&github::mask_command(credentials.api_key.expose_secret()));
        }
        client.set_key(credentials.api_key).map_err(Error::Api)?;
        self.expiry_ms = creds.expiry_date;
        Ok(())
    }
}

/// The client-side rate limit: `--rpm`, and for Qwen OAuth never above the free tier's rate.
pub fn rate_limit(rpm: Option<u32>, oauth: bool) -> Option<Arc<RateLimiter>> {
    let cap = if oauth {
        Some(rpm.map_or(QWEN_OAUTH_REQUESTS_PER_MINUTE, |r| {
            r.min(QWEN_OAUTH_REQUESTS_PER_MINUTE)
        }))
    } else {
        rpm
    };
    cap.map(|per_minute| Arc::new(RateLimiter::per_minute(per_minute)))
}

/// Turn an auth plan into credentials: an API key as it is; Qwen OAuth credentials refreshed if
/// needed (under a lock).
pub fn authenticate(
    plan: AuthPlan,
    config: &ResolvedConfig,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<Authenticated, Error> {
    match plan {
        AuthPlan::ApiKey(credentials) => Ok(Authenticated {
            credentials,
            oauth: None,
        }),
        AuthPlan::QwenOauth(paths) => {
            let endpoints = Endpoints::from_env(&ctx.env)?;
            let http = oauth::http_client()?;
            let creds = runtime.block_on(oauth::creds::ensure_fresh(&paths, &http, &endpoints))?;
            let credentials = auth::oauth_credentials(&creds)?;
            let mask = github::is_github_actions(&ctx.env);
            if mask {
                diag::raw(&github::mask_command(credentials.api_key.expose_secret()));
            }
            if config.debug.is_some() {
                diag::debug(&format!(
                    "qwen-oauth: token from {}, requests go to {}",
                    paths.creds.display(),
                    credentials.base_url
                ));
            }
            Ok(Authenticated {
                credentials,
                oauth: Some(OauthSession {
                    paths,
                    http,
                    endpoints,
                    expiry_ms: creds.expiry_date,
                    mask,
                }),
            })
        }
    }
}

/// Configuration, credentials and input, in that order: an auth problem is reported before
/// anything waits on standard input. In a terminal without usable credentials, the login
/// dialogue is offered first.
fn prepare(
    args: &RunArgs,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<(ResolvedConfig, ChatClient, String), (Error, Option<String>)> {
    let home = ctx.env.home();
    let mut config = load_config(&args.config, ctx).map_err(|e| (e, None))?;
    let mut plan = auth::credentials(&config, home.as_deref());
    if config.interactive
        && let Err(reason @ Error::Auth { .. }) = &plan
    {
        login::offer(reason, config.auth_type.value, ctx, runtime)
            .map_err(|e| (e, Some(config.model.value.clone())))?;
        config = load_config(&args.config, ctx).map_err(|e| (e, None))?;
        plan = auth::credentials(&config, home.as_deref());
    }
    let model = Some(config.model.value.clone());
    let with_model = |e| (e, model.clone());
    let Authenticated { credentials, oauth } =
        authenticate(plan.map_err(with_model)?, &config, ctx, runtime).map_err(with_model)?;
    let limiter = rate_limit(None, oauth.is_some());
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
    if let Some(warning) = auth::plaintext_warning(&credentials.base_url) {
        diag::warn(&warning);
    }
    let client = ChatClient::new(
        &credentials.base_url,
        credentials.api_key,
        client_settings(args, &config, 1),
    )
    .map_err(|e| with_model(Error::Api(e)))?
    .with_rate_limit(limiter);
    Ok((config, client, prompt))
}

#[allow(clippy::too_many_lines)]
pub fn single(
    args: &RunArgs,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    started: Instant,
) -> ExitStatus {
    // `--json-schema` and `--fallback-model` are checked before anything is read or sent.
    let schema = match structured_options(args, ctx) {
        Ok(schema) => schema,
        Err(err) => {
            diag::error(&err);
            return err.exit_status();
        }
    };
    let prepared = prepare(args, ctx, runtime);
    let model = match &prepared {
        Ok((config, ..)) => config.model.value.clone(),
        Err((_, model)) => model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
    };
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model,
        cwd: ctx.cwd.display().to_string(),
    };
    let model = meta.model.clone();
    let mut out = RunOutput::new(args.format(), args.include_partial_messages, meta, started);
    if out.init().is_err() {
        // stdout is already gone: a prepared run ends quietly, a failed one still says why.
        return match prepared {
            Ok(_) => ExitStatus::Success,
            Err((err, _)) => {
                diag::error(&err);
                err.exit_status()
            }
        };
    }
    let result = match prepared {
        Ok((config, client, prompt)) => {
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
                models: crate::fallback::model_order(
                    &config.model.value,
                    &args.structured.fallback_models,
                ),
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
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(failure))
                    if matches!(failure.error, AskError::Api(ApiError::OutputClosed)) =>
                {
                    return ExitStatus::Success;
                }
                Ok(Err(failure)) => {
                    let mut extra = ask::failure_fields(&failure);
                    let fields = failure.error.error_fields();
                    if !fields.is_empty() {
                        extra.insert("error".into(), serde_json::Value::Object(fields));
                    }
                    Err((
                        failure.error.into_error(),
                        failure.attempts,
                        failure.api_duration.as_millis(),
                        extra,
                    ))
                }
                Err(signal) => Err((Error::Interrupted { signal }, 1, 0, serde_json::Map::new())),
            }
        }
        Err((err, _)) => Err((err, 0, 0, serde_json::Map::new())),
    };
    // `--result-file`: written before the success is reported, so that a failure to write it is
    // the run's failure; never written when the run failed.
    let result = match (result, &args.structured.result_file) {
        (Ok(answer), Some(file)) => match write_result_file(&ctx.cwd.join(file), &answer) {
            Ok(()) => Ok(answer),
            Err(err) => Err((
                err,
                answer.completion.attempts,
                0,
                ask::answer_fields(&answer),
            )),
        },
        (other, _) => other,
    };
    let summary_path = github::step_summary_path(&ctx.env);
    match result {
        Ok(answer) => {
            let completion = &answer.completion;
            let _ = out.success(completion, ask::answer_fields(&answer));
            if let Some(path) = summary_path {
                let md = github::single_run_summary(
                    &model,
                    completion.usage,
                    started.elapsed().as_millis(),
                    Ok(&completion.text),
                );
                append_step_summary(&path, &md);
            }
            ExitStatus::Success
        }
        Err((err, attempts, api_ms, extra)) => {
            let _ = out.failure(&err, attempts, api_ms, extra);
            if github::is_github_actions(&ctx.env) {
                diag::raw(&github::error_command(Some("qwen"), &err.to_string()));
            }
            if let Some(path) = summary_path {
                let md = github::single_run_summary(
                    &model,
                    None,
                    started.elapsed().as_millis(),
                    Err(&err.to_string()),
                );
                append_step_summary(&path, &md);
            }
            err.exit_status()
        }
    }
}

/// The checked `--json-schema` (exit 2 when it is not a usable schema) and `--fallback-model` list.
pub fn structured_options(
    args: &RunArgs,
    ctx: &Context,
) -> Result<Option<Arc<OutputSchema>>, Error> {
    let usage = |message: String, hint: &str| Error::Usage {
        message,
        hint: hint.to_owned(),
    };
    crate::fallback::check_list(&args.structured.fallback_models).map_err(|e| {
        usage(
            format!("--fallback-model: {e}"),
            "give at most 3 model names",
        )
    })?;
    let Some(arg) = &args.structured.json_schema else {
        return Ok(None);
    };
    let value = crate::schema::load_arg(arg, &ctx.cwd)
        .map_err(|e| usage(format!("--json-schema: {e}"), "nothing was sent"))?;
    OutputSchema::compile(value)
        .map(|s| Some(Arc::new(s)))
        .map_err(|e| {
            usage(
                format!("--json-schema: {e}"),
                "fix the schema (draft 2020-12 or draft-07); nothing was sent",
            )
        })
}

/// Write the answer to `--result-file`: the text as it came, or the validated JSON value and a newline.
fn write_result_file(path: &std::path::Path, answer: &ask::Answer) -> Result<(), Error> {
    let mut bytes = answer.completion.text.clone().into_bytes();
    if answer.structured.is_some() {
        bytes.push(b'\n');
    }
    crate::result_file::write(path, &bytes).map_err(|e| {
        Error::Io(format!(
            "cannot write the result file `{}`: {e}",
            path.display()
        ))
    })
}

/// Append to `$GITHUB_STEP_SUMMARY`; a failure to do so is a warning, never the run's failure.
pub fn append_step_summary(path: &std::path::Path, markdown: &str) {
    if let Err(e) = github::append_summary(path, markdown) {
        diag::warn(&format!(
            "warning: cannot append to the step summary `{}`: {e}",
            path.display()
        ));
    }
}
