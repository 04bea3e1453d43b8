//! The flag groups, each declared once and flattened into every command that takes it: where
//! requests go (`ConnectionArgs`), what shapes a request (`RequestArgs`), where results go
//! (`ResultArgs`). A flag means the same wherever it appears.

use std::time::Duration;

use clap::Args;

use super::{parse_duration, parse_finite};
use crate::config::AuthType;
use crate::request::ReasoningEffort;

/// Flags that decide where requests go and with which key.
#[derive(Debug, Clone, Args, Default)]
pub(crate) struct ConfigArgs {
    /// API key (overrides `OPENAI_API_KEY`). Prefer the environment: flags show up in process lists.
    #[arg(long, value_name = "KEY")]
    pub(crate) openai_api_key: Option<String>,

    /// Base URL of the OpenAI-compatible API (overrides `OPENAI_BASE_URL`) [default: `https://api.openai.com/v1`]
    #[arg(long, value_name = "URL")]
    pub(crate) openai_base_url: Option<String>,

    /// Model name (overrides `OPENAI_MODEL`) [default: gpt-4o]
    #[arg(short = 'm', long, value_name = "MODEL")]
    pub(crate) model: Option<String>,

    /// Authentication method.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub(crate) auth_type: Option<AuthType>,

    /// Debug lines on stderr (also DEBUG=1 or `DEBUG_MODE=1`). Keys are never printed.
    #[arg(long)]
    pub(crate) debug: bool,

    /// Send this header with every request, 'Name: value' (repeatable; e.g. 'X-Title: CI'). Values
    /// are never printed; names holding key, token, secret, auth, password, cookie or signature
    /// are treated like the key (masked, scrubbed).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) header_specs: Vec<String>,
}

/// Where requests go, with which key, and how patiently.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectionArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,

    /// Retries after the first attempt, for 408/429/5xx, network errors and timeouts.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) retries: u32,

    /// The first retry backoff (doubled each retry, with jitter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) retry_base_delay: Duration,

    /// The longest wait a server may ask for with Retry-After; a longer demand fails at once (exit 75).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) max_retry_wait: Duration,

    /// Give up on a response when no byte arrives for this long.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub(crate) idle_timeout: Duration,

    /// Give up connecting after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
}

/// What shapes each request: the prompt's system message, the provider parameters, and the
/// answer's schema.
#[derive(Debug, Clone, Args)]
pub(crate) struct RequestArgs {
    /// A system message sent before the prompt (a job's own `system` wins).
    #[arg(long, value_name = "TEXT")]
    pub(crate) system_prompt: Option<String>,

    /// Sampling temperature.
    #[arg(long, value_name = "T", value_parser = parse_finite)]
    pub(crate) temperature: Option<f64>,

    /// Maximum number of tokens in the answer (sent as `max_completion_tokens` to `OpenAI` and Azure
    /// `OpenAI`, `max_tokens` elsewhere).
    #[arg(long, value_name = "N")]
    pub(crate) max_tokens: Option<u32>,

    /// Nucleus sampling: sample from the tokens that make up this probability mass.
    #[arg(long, value_name = "P", value_parser = parse_finite)]
    pub(crate) top_p: Option<f64>,

    /// Sampling seed, for providers that offer repeatable sampling.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<i64>,

    /// Stop the answer where the model would write TEXT (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub(crate) stop: Vec<String>,

    /// Reasoning models: how much to reason (sends `reasoning_effort`).
    #[arg(long, value_enum, value_name = "EFFORT")]
    pub(crate) reasoning_effort: Option<ReasoningEffort>,

    /// A JSON object merged into the request body at the top level (inline, or @file.json), e.g.
    /// `'{"enable_thinking": true}'`; it cannot set `model`, `messages` or `stream`.
    #[arg(long, value_name = "JSON")]
    pub(crate) extra_body: Option<String>,

    /// Ask for JSON matching this JSON Schema (inline JSON or @path); stdout gets only the validated value.
    #[arg(long, value_name = "SCHEMA")]
    pub(crate) json_schema: Option<String>,

    /// With --json-schema: how many times a non-matching answer is sent back with its errors (exit 65 after).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) schema_retries: u32,

    /// When the model has no capacity (503, 529, overloaded, 429 after retries), send the request to
    /// MODEL instead (repeatable, at most 3, tried in order).
    #[arg(long = "fallback-model", value_name = "MODEL")]
    pub(crate) fallback_models: Vec<String>,

    /// Refuse input (a prompt, a prompt file) larger than this many bytes (exit 42).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub(crate) max_input_bytes: u64,
}

/// What answers cost and how much may be spent (a single run and a batch).
#[derive(Debug, Clone, Args)]
pub(crate) struct CostArgs {
    /// Price answers the provider does not price itself from FILE: `LiteLLM`'s
    /// `model_prices_and_context_window.json` format (`input_cost_per_token`,
    /// `output_cost_per_token`, `cache_read_input_token_cost`, dollars per token).
    #[arg(long, value_name = "FILE")]
    pub(crate) prices: Option<String>,

    /// Spend at most this many US dollars: a batch starts no job that could go over it (in-flight
    /// jobs finish), exit 55, resumable. Needs a cost for every answer (the provider's or --prices).
    #[arg(long, value_name = "USD", value_parser = parse_budget)]
    pub(crate) max_budget_usd: Option<f64>,
}

/// A budget in dollars: a finite number above zero.
fn parse_budget(text: &str) -> Result<f64, String> {
    let n = parse_finite(text)?;
    if n > 0.0 {
        Ok(n)
    } else {
        Err(format!(
            "`{text}` is not a budget: give an amount above 0, e.g. 2.50"
        ))
    }
}

/// Where result lines go.
#[derive(Debug, Clone, Args)]
pub(crate) struct ResultArgs {
    /// Write one result line per job to FILE (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<String>,

    /// Replace a non-empty --output file instead of refusing.
    #[arg(long, requires = "output")]
    pub(crate) overwrite: bool,
}
