//! The commands, one module each. Every command returns `Result<ExitStatus, Error>`; only `app`
//! prints an error and turns it into an exit status.

pub(crate) mod auth_manage;
pub(crate) mod auth_status;
pub(crate) mod batch;
pub(crate) mod generate;
pub(crate) mod login;
pub(crate) mod run;

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::cli::{ConfigArgs, RunArgs};
use crate::client::{ClientSettings, RetryPolicy};
use crate::config::{self, ResolvedConfig};
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::output::github;
use crate::schema::OutputSchema;

/// Load the configuration for a command, then say what must be said about it: the key is masked
/// first under GitHub Actions, and `--debug` shows where each value came from.
pub(crate) fn load_config(args: &ConfigArgs, ctx: &Context) -> Result<ResolvedConfig, Error> {
    let config = config::load(&args.flags(), &ctx.env, ctx.terminal, &ctx.cwd)?;
    for warning in config
        .dotenv
        .found
        .iter()
        .flat_map(config::dotenv::skipped_line_warnings)
    {
        diag::warn(&warning);
    }
    if github::is_github_actions(&ctx.env)
        && let Some(key) = &config.api_key
    {
        diag::raw(&github::mask_command(key.value.expose_secret()));
    }
    if config.debug.is_some() {
        debug_config(&config);
    }
    Ok(config)
}

/// The HTTP client settings a run's flags ask for.
pub(crate) fn client_settings(
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
        max_response_bytes: args.max_response_bytes,
    }
}

/// The checked `--json-schema` (exit 2 when it is not a usable schema, before anything is read
/// or sent) and `--fallback-model` list.
pub(crate) fn structured_options(
    args: &RunArgs,
    ctx: &Context,
) -> Result<Option<Arc<OutputSchema>>, Error> {
    crate::fallback::check_list(&args.structured.fallback_models).map_err(|e| {
        Error::usage(
            format!("--fallback-model: {e}"),
            Some("give at most 3 model names"),
        )
    })?;
    let Some(arg) = &args.structured.json_schema else {
        return Ok(None);
    };
    let value = crate::schema::load_arg(arg, &ctx.cwd)
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
