//! One prompt in, one honest result out: the single-run command.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::app::{Context, load_config};
use crate::auth::{self, AuthPlan};
use crate::cli::RunArgs;
use crate::client::{ApiError, ChatClient, ClientSettings, RateLimiter, RetryPolicy};
use crate::config::ResolvedConfig;
use crate::config::resolve::DEFAULT_MODEL;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::login;
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
const QWEN_OAUTH_REQUESTS_PER_MINUTE: u32 = 60;

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
    let (credentials, limiter) = match plan.map_err(with_model)? {
        AuthPlan::ApiKey(credentials) => (credentials, None),
        AuthPlan::QwenOauth(paths) => {
            let endpoints = Endpoints::from_env(&ctx.env).map_err(with_model)?;
            let http = oauth::http_client().map_err(with_model)?;
            let creds = runtime
                .block_on(oauth::creds::ensure_fresh(&paths, &http, &endpoints))
                .map_err(with_model)?;
            let credentials = auth::oauth_credentials(&creds).map_err(with_model)?;
            if config.debug.is_some() {
                diag::debug(&format!(
                    "qwen-oauth: token from {}, requests go to {}",
                    paths.creds.display(),
                    credentials.base_url
                ));
            }
            let limiter = Arc::new(RateLimiter::per_minute(QWEN_OAUTH_REQUESTS_PER_MINUTE));
            (credentials, Some(limiter))
        }
    };
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

pub fn single(
    args: &RunArgs,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    started: Instant,
) -> ExitStatus {
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
    let mut out = RunOutput::new(args.format(), args.include_partial_messages, meta, started);
    if out.init().is_err() {
        return ExitStatus::Success;
    }
    let (config, client, prompt) = match prepared {
        Ok(p) => p,
        Err((err, _)) => {
            let _ = out.failure(&err, 0, 0);
            return err.exit_status();
        }
    };
    let body = chat_body(
        &config.model.value,
        args.system_prompt.as_deref(),
        &prompt,
        args,
    );
    drop(prompt);

    let deltas_are_final = out.deltas_are_final();
    let outcome = runtime.block_on(async {
        let mut on_delta = |text: &str| out.delta(text);
        tokio::select! {
            r = client.send(&body, &mut on_delta, deltas_are_final) => Ok(r),
            signal = crate::signals::interrupted() => Err(signal),
        }
    });
    match outcome {
        Ok(Ok(completion)) => {
            let _ = out.success(&completion);
            ExitStatus::Success
        }
        Ok(Err(failure)) if matches!(failure.error, ApiError::OutputClosed) => ExitStatus::Success,
        Ok(Err(failure)) => {
            let err = Error::Api(failure.error);
            let _ = out.failure(&err, failure.attempts, failure.api_duration.as_millis());
            err.exit_status()
        }
        Err(signal) => {
            let err = Error::Interrupted { signal };
            let _ = out.failure(&err, 1, 0);
            err.exit_status()
        }
    }
}
