//! The command line, resolved: the typed settings every command takes. `cli` parses argv and
//! turns it into these once (`cli::resolve`); below the command entry points nothing sees a clap
//! type. Plain data: nothing here reads a file, the environment or the network.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::params::ExtraHeader;
use crate::client::{ClientSettings, RetryPolicy, Transport};
use crate::config::ConfigFlags;
use crate::output::Format;
use crate::prompt_file::VarValue;
use crate::request::Params;
use crate::sessions::Pick;

/// Where requests go, with which key and headers, and how patiently (`qwen` and every
/// `qwen batch` subcommand that talks to the provider).
#[derive(Debug, Clone, Default)]
pub(crate) struct Connection {
    pub(crate) config: ConfigFlags,
    /// `-H/--header`, checked (a bad one is a usage error at resolution).
    pub(crate) headers: Vec<ExtraHeader>,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    /// `--accept-missing-finish-reason`: an answer without a finish reason is whole.
    pub(crate) accept_missing_finish_reason: bool,
    /// `--proxy`, checked (an http(s) URL with a host).
    pub(crate) proxy: Option<reqwest::Url>,
    /// `--insecure` (the command adds `QWEN_TLS_INSECURE`).
    pub(crate) insecure: bool,
    /// `--openai-logging`: the directory as given (`logs/openai` by default; resolved by the
    /// command through the path door).
    pub(crate) openai_log_dir: Option<String>,
}

impl Connection {
    /// The HTTP client settings for `max_connections` requests at once.
    pub(crate) fn client(
        &self,
        debug: bool,
        max_connections: usize,
        max_response_bytes: usize,
    ) -> ClientSettings {
        ClientSettings {
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            retry: self.retry,
            debug,
            max_connections,
            headers: self.headers.clone(),
            max_response_bytes,
            accept_missing_finish_reason: self.accept_missing_finish_reason,
            transport: Transport {
                proxy: self.proxy.clone(),
                no_proxy: None,
                insecure: self.insecure,
            },
            exchange_log: None,
        }
    }
}

/// What shapes each request: the same for a single run, a local batch and a provider batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestSettings {
    pub(crate) system_prompt: Option<String>,
    /// `--system-prompt-file`, as given (read into `system_prompt` by the command, through the door).
    pub(crate) system_prompt_file: Option<String>,
    /// `--temperature`, `--max-tokens`, `--top-p`, `--seed`, `--stop`, `--reasoning-effort`.
    pub(crate) params: Params,
    /// `--extra-body` as given (inline JSON or `@file`; loaded by the command).
    pub(crate) extra_body: Option<String>,
    /// `--json-schema` as given (inline JSON or `@file`; loaded by the command).
    pub(crate) json_schema: Option<String>,
    pub(crate) schema_retries: u32,
    pub(crate) fallback_models: Vec<String>,
    /// The largest prompt (argument, stdin, prompt file) accepted.
    pub(crate) max_input_bytes: u64,
    /// `--allow-outside-paths`: the files a request reads (and a run writes) may lead outside the
    /// workspace or the job file's directory.
    pub(crate) allow_outside_paths: bool,
}

impl RequestSettings {
    /// The file `--json-schema @path` names, if it names one.
    pub(crate) fn schema_file(&self) -> Option<&str> {
        self.json_schema
            .as_deref()
            .and_then(|s| s.strip_prefix('@'))
    }

    /// The file `--extra-body @path` names, if it names one.
    pub(crate) fn extra_body_file(&self) -> Option<&str> {
        self.extra_body.as_deref().and_then(|s| s.strip_prefix('@'))
    }
}

/// What answers cost and how much may be spent: `--prices`, `--max-budget-usd`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CostSettings {
    /// `--prices FILE` as given (read by the command through `paths`).
    pub(crate) prices: Option<String>,
    pub(crate) max_budget_usd: Option<f64>,
}

/// `qwen [PROMPT]`: one prompt, one result.
#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each bool is one switch of the command line"
)]
pub(crate) struct RunSettings {
    pub(crate) connection: Connection,
    pub(crate) request: RequestSettings,
    /// The prompt given as an argument (`-p` or the words).
    pub(crate) prompt: Option<String>,
    pub(crate) prompt_file: Option<String>,
    /// `--var NAME=VALUE` / `NAME=@PATH`, checked (the action's `input`/`file_input` join them).
    pub(crate) vars: Vec<(String, VarValue)>,
    /// `--ai-inference-inputs`: read the action's map inputs from the environment.
    pub(crate) ai_inference_inputs: bool,
    pub(crate) stdin_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) format: Format,
    /// `--include-partial-messages`.
    pub(crate) partial: bool,
    pub(crate) show_reasoning: bool,
    pub(crate) result_file: Option<String>,
    /// `--include-directories`/`--add-dir`: more roots for `@path` references, as given.
    pub(crate) include_directories: Vec<String>,
    pub(crate) session: SessionSettings,
    /// `--input-format stream-json`: many turns from JSON lines on stdin.
    pub(crate) stream_input: bool,
    pub(crate) max_wall_time: Option<Duration>,
    pub(crate) cost: CostSettings,
    /// `--json-file`/`--json-fd`: where the run's JSON events are copied.
    pub(crate) json_events: Option<JsonEvents>,
}

/// Where `--json-file`/`--json-fd` send a run's JSON events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonEvents {
    /// A path as given (opened by the command through the path door).
    File(String),
    /// An inherited descriptor, 3 or more.
    Fd(i32),
}

/// `-c`, `-r ID`, `--session-id`, `--fork-session`, `--chat-recording`.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    pub(crate) pick: Pick,
    pub(crate) fork: bool,
    pub(crate) record: bool,
}

/// How a batch writes its result lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchFormat {
    /// One result message (with `id` and `index`) per line.
    Lines,
    /// `OpenAI` Batch API output lines.
    OpenaiBatch,
}

/// A `K/N` shard of a job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// 1-based.
    pub(crate) k: usize,
    pub(crate) n: usize,
}

impl Shard {
    pub(crate) fn contains(self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

/// `qwen --jobs FILE`: a local batch.
#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each bool is one switch of the command line"
)]
pub(crate) struct BatchSettings {
    pub(crate) connection: Connection,
    pub(crate) request: RequestSettings,
    pub(crate) jobs: String,
    pub(crate) format: BatchFormat,
    pub(crate) output: Option<String>,
    pub(crate) overwrite: bool,
    pub(crate) resume: bool,
    pub(crate) summary: Option<String>,
    pub(crate) concurrency: u32,
    pub(crate) rpm: Option<u32>,
    pub(crate) tpm: Option<u32>,
    pub(crate) max_rate_limit_wait: Duration,
    pub(crate) max_wall_time: Option<Duration>,
    pub(crate) max_total_tokens: Option<u64>,
    pub(crate) cost: CostSettings,
    pub(crate) max_response_bytes: usize,
    pub(crate) shard: Option<Shard>,
    pub(crate) quiet: bool,
    pub(crate) progress_interval: Duration,
    pub(crate) shutdown_grace: Duration,
    /// `--ai-inference-inputs`: read the action's `custom-headers` from the environment.
    pub(crate) ai_inference_inputs: bool,
}

/// What the command line asks `qwen` (without a subcommand) to do.
#[derive(Debug, Clone)]
pub(crate) enum Invocation {
    Single(Box<RunSettings>),
    Batch(Box<BatchSettings>),
}

/// The result line format of `qwen batch fetch` (and `submit --wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultFormat {
    /// qwen's result lines, the same as a local batch's.
    Json,
    /// The provider's own Batch API output lines.
    OpenaiBatch,
}

/// What every `qwen batch` subcommand that talks to the provider needs.
#[derive(Debug, Clone)]
pub(crate) struct CommonSettings {
    pub(crate) connection: Connection,
    /// `--state-dir`: where the ledgers are.
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) quiet: bool,
}

/// Where `fetch` (and `submit --wait`) write the results.
#[derive(Debug, Clone)]
pub(crate) struct OutputSettings {
    pub(crate) output: Option<String>,
    pub(crate) output_format: ResultFormat,
    pub(crate) overwrite: bool,
    pub(crate) delete_remote: bool,
    /// `--prices FILE`: what the result lines cost when the provider gives no figure.
    pub(crate) prices: Option<String>,
    /// `--allow-outside-paths` (`submit` has it; `fetch` does not): whether a link in the
    /// workspace may lead `--output` out of it.
    pub(crate) allow_outside_paths: bool,
}

/// `qwen batch submit`.
#[derive(Debug, Clone)]
pub(crate) struct SubmitSettings {
    pub(crate) jobs: String,
    pub(crate) name: Option<String>,
    pub(crate) common: CommonSettings,
    pub(crate) request: RequestSettings,
    pub(crate) max_requests_per_file: u64,
    pub(crate) max_file_bytes: u64,
    pub(crate) completion_window: String,
    pub(crate) wait: bool,
    pub(crate) poll_interval: Duration,
    pub(crate) max_wall_time: Option<Duration>,
    pub(crate) output: OutputSettings,
}

/// `qwen batch fetch`.
#[derive(Debug, Clone)]
pub(crate) struct FetchSettings {
    pub(crate) name: String,
    pub(crate) common: CommonSettings,
    pub(crate) output: OutputSettings,
}

/// `qwen batch …`: the provider's Batch API.
#[derive(Debug, Clone)]
pub(crate) enum BatchApiCommand {
    Submit(Box<SubmitSettings>),
    Status {
        name: String,
        common: CommonSettings,
        json: bool,
    },
    Fetch(Box<FetchSettings>),
    Cancel {
        name: String,
        common: CommonSettings,
    },
    List {
        state_dir: Option<PathBuf>,
        json: bool,
    },
}
