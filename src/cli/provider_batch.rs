//! Command-line types of `qwen batch …` (clap derive), and their resolution into `settings`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::{ConnectionArgs, PricesArgs, RequestArgs, ResultArgs, connection_of, parse_duration};
use crate::error::Error;
use crate::settings::{
    BatchApiCommand, CommonSettings, FetchSettings, OutputSettings, ResultFormat, SubmitSettings,
};

#[derive(Debug, Args)]
pub(crate) struct ProviderBatchArgs {
    #[command(subcommand)]
    pub(crate) command: ProviderBatchCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProviderBatchCommand {
    /// Validate a job file, upload it and create the provider's batch(es); prints the batch ids.
    Submit(Box<SubmitArgs>),
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
    pub(crate) connection: ConnectionArgs,

    /// Where the ledgers are [default: `.qwen/batches` under the project root].
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// No progress or summary on stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ResultFormatArg {
    /// qwen's result lines, the same as a local batch's.
    Json,
    /// The provider's own Batch API output lines.
    OpenaiBatch,
}

/// Where `fetch` (and `submit --wait`) write the results.
#[derive(Debug, Clone, Args)]
pub(crate) struct OutputArgs {
    #[command(flatten)]
    pub(crate) results: ResultArgs,

    /// Result line format.
    #[arg(short = 'o', long, value_enum, default_value_t = ResultFormatArg::Json, value_name = "FORMAT")]
    pub(crate) output_format: ResultFormatArg,

    /// After writing the results, delete the input, output and error files at the provider.
    #[arg(long)]
    pub(crate) delete_remote: bool,

    #[command(flatten)]
    pub(crate) prices: PricesArgs,
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

    #[command(flatten)]
    pub(crate) request: RequestArgs,

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

impl CommonArgs {
    fn settings(&self) -> Result<CommonSettings, Error> {
        Ok(CommonSettings {
            connection: connection_of(&self.connection)?,
            state_dir: self.state_dir.clone(),
            quiet: self.quiet,
        })
    }
}

impl OutputArgs {
    fn settings(&self, allow_outside_paths: bool) -> OutputSettings {
        OutputSettings {
            output: self.results.output.clone(),
            output_format: match self.output_format {
                ResultFormatArg::Json => ResultFormat::Json,
                ResultFormatArg::OpenaiBatch => ResultFormat::OpenaiBatch,
            },
            overwrite: self.results.overwrite,
            delete_remote: self.delete_remote,
            prices: self.prices.prices.clone(),
            allow_outside_paths,
        }
    }
}

/// `qwen batch …`, resolved: the flags of each subcommand become its settings.
pub(crate) fn resolve(args: ProviderBatchArgs) -> Result<BatchApiCommand, Error> {
    Ok(match args.command {
        ProviderBatchCommand::Submit(a) => BatchApiCommand::Submit(Box::new(SubmitSettings {
            common: a.common.settings()?,
            output: a.output.settings(a.request.allow_outside_paths),
            request: a.request.settings(),
            jobs: a.jobs,
            name: a.name,
            max_requests_per_file: a.max_requests_per_file,
            max_file_bytes: a.max_file_bytes,
            completion_window: a.completion_window,
            wait: a.wait,
            poll_interval: a.poll_interval,
            max_wall_time: a.max_wall_time,
        })),
        ProviderBatchCommand::Status { name, common, json } => BatchApiCommand::Status {
            name,
            common: common.settings()?,
            json,
        },
        ProviderBatchCommand::Fetch(a) => BatchApiCommand::Fetch(Box::new(FetchSettings {
            common: a.common.settings()?,
            output: a.output.settings(false),
            name: a.name,
        })),
        ProviderBatchCommand::Cancel { name, common } => BatchApiCommand::Cancel {
            name,
            common: common.settings()?,
        },
        ProviderBatchCommand::List { state_dir, json } => BatchApiCommand::List { state_dir, json },
    })
}
