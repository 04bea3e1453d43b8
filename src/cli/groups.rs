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

    /// Only flags and the process environment: no `.env` file (project or home), no
    /// `~/.qwen/settings.json`, no stored Qwen OAuth credentials, no login offer.
    #[arg(long)]
    pub(crate) bare: bool,

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

    /// Send requests through this http(s) proxy, `http://[user:password@]host:port` (over
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`; `NO_PROXY` still applies; never for loopback).
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,

    /// Skip TLS certificate verification of the API server (also `QWEN_TLS_INSECURE=1`): anyone
    /// on the path can read the key. Warned about on every run; never with a plain-http key.
    #[arg(long)]
    pub(crate) insecure: bool,
}

/// What shapes each request: the prompt's system message, the provider parameters, and the
/// answer's schema.
#[derive(Debug, Clone, Args)]
pub(crate) struct RequestArgs {
    /// A system message sent before the prompt (a job's own `system` wins).
    #[arg(long, value_name = "TEXT")]
    pub(crate) system_prompt: Option<String>,

    /// The system message, read from FILE byte for byte (a regular file; a link in the workspace
    /// may not lead out of it).
    #[arg(long, value_name = "FILE", conflicts_with = "system_prompt")]
    pub(crate) system_prompt_file: Option<String>,
    /// Appended to the system message after a blank line (the whole system message when there is
    /// no --system-prompt). In a batch, a job's own `system` replaces both.
    #[arg(long, value_name = "TEXT")]
    pub(crate) append_system_prompt: Option<String>,

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
    #[arg(long = "fallback-model", value_name = "MODEL", value_delimiter = ',')]
    pub(crate) fallback_models: Vec<String>,

    /// Refuse input (a prompt, a prompt file) larger than this many bytes (exit 42).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub(crate) max_input_bytes: u64,

    /// Let the files a run reads and writes (and the paths a job file names) lead outside the
    /// workspace or the job file's directory: absolute paths, `..`, links out. Only for files you
    /// wrote yourself; `/proc`, `/sys` and `/dev` stay refused.
    #[arg(long)]
    pub(crate) allow_outside_paths: bool,
}

/// Qwen Code's agent flags, which the Qwen Code SDK passes: qwen runs no tools, loads no
/// extensions and executes nothing, so the accepted ones change nothing; the ones that would
/// promise a behaviour qwen does not have are declared only to be refused with a reason.
#[derive(Debug, Clone, Args, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "clap flags: each bool is one switch on the command line"
)]
#[command(
    next_help_heading = "Qwen Code agent flags (accepted for compatibility, no effect: qwen runs no tools)"
)]
pub(crate) struct AgentArgs {
    /// Accepted, no effect: there is no tool call to approve.
    #[arg(long, value_name = "MODE", value_parser = ["plan", "default", "auto-edit", "yolo"])]
    pub(crate) approval_mode: Option<String>,

    /// Accepted, no effect: there is no tool call to approve.
    #[arg(short = 'y', long)]
    pub(crate) yolo: bool,

    /// Accepted, no effect: every prompt is one model turn.
    #[arg(long, value_name = "N")]
    pub(crate) max_session_turns: Option<i64>,

    /// Accepted, no effect: qwen makes no tool call.
    #[arg(long, value_name = "N")]
    pub(crate) max_tool_calls: Option<i64>,

    /// Accepted, no effect: qwen has no tools (comma-separated).
    #[arg(long, value_name = "TOOLS", value_delimiter = ',')]
    pub(crate) allowed_tools: Vec<String>,

    /// Accepted, no effect: qwen has no tools (comma-separated).
    #[arg(long, value_name = "TOOLS", value_delimiter = ',')]
    pub(crate) core_tools: Vec<String>,

    /// Accepted, no effect: qwen has no tools (comma-separated).
    #[arg(long, value_name = "TOOLS", value_delimiter = ',')]
    pub(crate) exclude_tools: Vec<String>,

    /// Accepted, no effect: the caller's name (the SDK passes `--channel=SDK`).
    #[arg(long, value_name = "NAME")]
    pub(crate) channel: Option<String>,

    /// Accepted, no effect: qwen executes nothing, so there is nothing to sandbox.
    #[arg(short = 's', long)]
    pub(crate) sandbox: bool,

    /// Accepted, no effect: qwen loads no extensions, hooks or tools in any case.
    #[arg(long)]
    pub(crate) safe_mode: bool,

    /// Accepted, no effect: qwen starts no subagents.
    #[arg(long, value_name = "N")]
    pub(crate) max_subagent_depth: Option<i64>,

    /// Accepted, no effect: qwen connects to no MCP server (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub(crate) allowed_mcp_server_names: Vec<String>,

    /// Accepted, no effect: qwen has no slash commands (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub(crate) disabled_slash_commands: Vec<String>,

    /// Refused: qwen creates no git worktree.
    #[arg(long, hide = true)]
    pub(crate) worktree: bool,

    /// Refused: qwen runs no hooks.
    #[arg(long, hide = true)]
    pub(crate) experimental_hooks: bool,

    /// Refused: qwen loads no extensions.
    #[arg(short = 'e', long, hide = true, value_name = "NAMES")]
    pub(crate) extensions: Option<String>,

    /// Refused: qwen has no language-server tools.
    #[arg(long, hide = true)]
    pub(crate) experimental_lsp: bool,

    /// Refused: qwen has no web search tool.
    #[arg(long, hide = true, value_name = "KEY")]
    pub(crate) tavily_api_key: Option<String>,

    /// Refused: qwen has no web search tool.
    #[arg(long, hide = true, value_name = "KEY")]
    pub(crate) google_api_key: Option<String>,

    /// Refused: qwen has no web search tool.
    #[arg(long, hide = true, value_name = "ID")]
    pub(crate) google_search_engine_id: Option<String>,

    /// Refused: qwen has no web search tool.
    #[arg(long, hide = true, value_name = "PROVIDER")]
    pub(crate) web_search_default: Option<String>,
}

/// Where a single run's JSON events and the API exchanges are copied, for whoever watches the run
/// (Qwen Code's dual output and `OpenAI` logging).
#[derive(Debug, Clone, Args, Default)]
pub(crate) struct ObserverArgs {
    /// Write the run's JSON events (the stream-json lines, partial messages included, after a
    /// `session_start` line) to FILE, created or replaced, while stdout keeps its format.
    #[arg(long, value_name = "FILE", conflicts_with = "json_fd")]
    pub(crate) json_file: Option<String>,

    /// Write the run's JSON events to the inherited file descriptor N (3 or more, open for
    /// writing; e.g. `3>events.jsonl`).
    #[arg(long, value_name = "N")]
    pub(crate) json_fd: Option<i64>,

    /// Log each API exchange (request body, status, response or error) to one JSON file per
    /// attempt under `logs/openai` (or --openai-logging-dir), the key and credential headers removed.
    #[arg(long)]
    pub(crate) openai_logging: bool,

    /// Where --openai-logging writes (relative to the working directory; `~/` is HOME).
    #[arg(long, value_name = "DIR", requires = "openai_logging")]
    pub(crate) openai_logging_dir: Option<String>,
}

/// `--prices`: a single run, a local batch, and `qwen batch fetch` (and `submit --wait`).
#[derive(Debug, Clone, Args)]
pub(crate) struct PricesArgs {
    /// Price answers the provider does not price itself from FILE: `LiteLLM`'s
    /// `model_prices_and_context_window.json` format (`input_cost_per_token`,
    /// `output_cost_per_token`, `cache_read_input_token_cost`, dollars per token; a provider
    /// batch uses `input_cost_per_token_batches`/`output_cost_per_token_batches` when present).
    #[arg(long, value_name = "FILE")]
    pub(crate) prices: Option<String>,
}

/// What answers cost and how much may be spent (a single run and a batch).
#[derive(Debug, Clone, Args)]
pub(crate) struct CostArgs {
    #[command(flatten)]
    pub(crate) prices: PricesArgs,

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
