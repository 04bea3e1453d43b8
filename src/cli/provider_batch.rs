//! Command-line types of `qwen batch …` (clap derive only; no behaviour lives here).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::{ConfigArgs, parse_duration, parse_finite};

#[derive(Debug, Args)]
pub(crate) struct ProviderBatchArgs {
    #[command(subcommand)]
    pub(crate) command: ProviderBatchCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProviderBatchCommand {
    /// Validate a job file, upload it and create the provider's batch(es); prints the batch ids.
    Submit(SubmitArgs),
    /// Ask the provider how far a batch got: state and counts per part.
    Status {
        /// The batch name given to `submit`.
        name: String,
        #[command(flatten)]
        common: CommonArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download a finished batch and write one result line per job.
    Fetch(FetchArgs),
    /// Cancel a batch at the provider (what already ran is kept; `fetch` gets it).
    Cancel {
        name: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The batches recorded in this project (no network).
    List {
        /// Where the ledgers are [default: `.qwen/batches` under the project root].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Print one JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Flags of every subcommand that talks to the provider.
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,

    /// Where the ledgers are [default: `.qwen/batches` under the project root].
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// Retries of a status, list, download or delete request after the first attempt.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) retries: u32,

    /// The first retry backoff (doubled each retry, with jitter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) retry_base_delay: Duration,

    /// Give up on a response when no byte arrives for this long.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub(crate) idle_timeout: Duration,

    /// Give up connecting after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,

    /// No progress or summary on stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ResultFormat {
    /// qwen's result lines, the same as a local batch's.
    Json,
    /// The provider's own Batch API output lines.
    OpenaiBatch,
}

/// Where `fetch` (and `submit --wait`) write the results.
#[derive(Debug, Clone, Args)]
pub(crate) struct OutputArgs {
    /// Write one result line per job to FILE (default: stdout); written whole, then renamed.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<String>,

    /// Result line format.
    #[arg(short = 'o', long, value_enum, default_value_t = ResultFormat::Json, value_name = "FORMAT")]
    pub(crate) output_format: ResultFormat,

    /// Replace a non-empty --output file instead of refusing.
    #[arg(long)]
    pub(crate) overwrite: bool,

    /// After writing the results, delete the input, output and error files at the provider.
    #[arg(long)]
    pub(crate) delete_remote: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct SubmitArgs {
    /// The job file (YAML, JSON, JSON Lines or `OpenAI` Batch input; `-`: JSON Lines on stdin).
    #[arg(value_name = "JOBS")]
    pub(crate) jobs: String,

    /// The batch's name, for `status`, `fetch` and `cancel` [default: the job file's name].
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,

    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// A system message sent before each job's prompt (unless the job has its own).
    #[arg(long, value_name = "TEXT")]
    pub(crate) system_prompt: Option<String>,

    /// Sampling temperature.
    #[arg(long, value_name = "T", value_parser = parse_finite)]
    pub(crate) temperature: Option<f64>,

    /// Maximum number of tokens in each answer.
    #[arg(long, value_name = "N")]
    pub(crate) max_tokens: Option<u32>,

    /// Refuse a `prompt_file` larger than this many bytes (exit 42).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub(crate) max_input_bytes: u64,

    /// At most this many requests per uploaded file (`OpenAI`: 50,000).
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_requests_per_file: u64,

    /// At most this many bytes per uploaded file (`OpenAI`: 200 MB).
    #[arg(long, value_name = "BYTES", default_value_t = 200_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_file_bytes: u64,

    /// The provider's completion window.
    #[arg(long, value_name = "WINDOW", default_value = "24h")]
    pub(crate) completion_window: String,

    /// Wait for the batch to end, then fetch the results.
    #[arg(long)]
    pub(crate) wait: bool,

    /// With --wait: the first delay between polls (it grows to a minute).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) poll_interval: Duration,

    /// With --wait: stop waiting after this long (exit 55); the batch keeps running.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "wait")]
    pub(crate) max_wall_time: Option<Duration>,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct FetchArgs {
    /// The batch name given to `submit`.
    pub(crate) name: String,

    #[command(flatten)]
    pub(crate) common: CommonArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}
