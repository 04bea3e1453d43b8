//! The one door from the command line to the program: clap's structs become `settings`, and the
//! flags are checked together (a flag that would be silently ignored is a usage error that says
//! what to do instead).

use clap::ValueEnum;

use super::{ConfigArgs, ConnectionArgs, OutputFormat, RequestArgs, RunArgs};
use crate::client::RetryPolicy;
use crate::client::params::ExtraHeader;
use crate::config::ConfigFlags;
use crate::error::Error;
use crate::output::Format;
use crate::request::Params;
use crate::settings::{
    BatchFormat, BatchSettings, Connection, CostSettings, Invocation, RequestSettings, RunSettings,
};

/// Flags that only mean something in a batch (their clap ids and spellings).
const BATCH_ONLY: [(&str, &str); 12] = [
    ("output", "--output"),
    ("concurrency", "--concurrency"),
    ("rpm", "--rpm"),
    ("tpm", "--tpm"),
    ("max_rate_limit_wait", "--max-rate-limit-wait"),
    ("shard", "--shard"),
    ("resume", "--resume"),
    ("overwrite", "--overwrite"),
    ("summary", "--summary"),
    ("progress_interval", "--progress-interval"),
    ("shutdown_grace", "--shutdown-grace"),
    ("allow_outside_paths", "--allow-outside-paths"),
];

impl ConfigArgs {
    pub(crate) fn flags(&self) -> ConfigFlags {
        ConfigFlags {
            api_key: self.openai_api_key.clone(),
            base_url: self.openai_base_url.clone(),
            model: self.model.clone(),
            auth_type: self.auth_type,
            debug: self.debug,
        }
    }

    /// The `-H` headers, checked: exit 2 when one cannot be sent. Checked here rather than by clap,
    /// whose message would quote the whole argument, value included.
    pub(crate) fn headers(&self) -> Result<Vec<ExtraHeader>, Error> {
        self.header_specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                ExtraHeader::parse(spec).map_err(|e| {
                    Error::usage(
                        format!("-H/--header {}: {e}", i + 1),
                        Some("write -H 'Name: value'; give the key with OPENAI_API_KEY, not a header"),
                    )
                })
            })
            .collect()
    }

    /// The configuration flags and the checked headers, for a command that sends no chat request.
    pub(crate) fn connection(&self) -> Result<Connection, Error> {
        Ok(Connection {
            config: self.flags(),
            headers: self.headers()?,
            ..Connection::default()
        })
    }
}

/// Where requests go and how patiently, with the `-H` headers checked.
pub(crate) fn connection_of(args: &ConnectionArgs) -> Result<Connection, Error> {
    Ok(Connection {
        config: args.config.flags(),
        headers: args.config.headers()?,
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
        retry: RetryPolicy {
            retries: args.retries,
            base_delay: args.retry_base_delay,
            max_retry_wait: args.max_retry_wait,
            ..RetryPolicy::default()
        },
        accept_missing_finish_reason: false,
    })
}

impl RequestArgs {
    pub(crate) fn settings(&self) -> RequestSettings {
        RequestSettings {
            system_prompt: self.system_prompt.clone(),
            params: Params {
                temperature: self.temperature,
                max_tokens: self.max_tokens,
                top_p: self.top_p,
                seed: self.seed,
                stop: self.stop.clone(),
                reasoning_effort: self.reasoning_effort,
            },
            extra_body: self.extra_body.clone(),
            json_schema: self.json_schema.clone(),
            schema_retries: self.schema_retries,
            fallback_models: self.fallback_models.clone(),
            max_input_bytes: self.max_input_bytes,
        }
    }
}

impl super::CostArgs {
    pub(crate) fn settings(&self) -> CostSettings {
        CostSettings {
            prices: self.prices.clone(),
            max_budget_usd: self.max_budget_usd,
        }
    }
}

fn format_name(format: OutputFormat) -> String {
    format
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

/// The JSON format the command line asked for, if it asked for one: a usage error is then
/// written as a JSON document too.
pub(crate) fn json_format_of(args: &RunArgs) -> Option<Format> {
    if args.json {
        return Some(Format::Json);
    }
    match args.output_format {
        OutputFormat::Json => Some(Format::Json),
        OutputFormat::StreamJson => Some(Format::StreamJson),
        OutputFormat::Text | OutputFormat::OpenaiBatch => None,
    }
}

/// Check the flags of `qwen` together and decide, once, what it is asked to do.
pub(crate) fn invocation(args: RunArgs, matches: &clap::ArgMatches) -> Result<Invocation, Error> {
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(clap::parser::ValueSource::CommandLine)
        )
    };
    let explicit_format = given("output_format").then_some(args.output_format);
    if args.json && explicit_format.is_some() {
        return Err(Error::usage(
            "--json and -o/--output-format both choose the output format",
            Some("use one of them (--json is the same as -o json)"),
        ));
    }
    let format = if args.json {
        OutputFormat::Json
    } else {
        args.output_format
    };
    if args.include_partial_messages && format != OutputFormat::StreamJson {
        return Err(Error::usage(
            "--include-partial-messages only applies to -o stream-json",
            Some("add -o stream-json, or drop --include-partial-messages"),
        ));
    }
    if !args.vars.is_empty() && args.prompt_file.is_none() {
        return Err(Error::usage(
            "--var fills the placeholders of a prompt file",
            Some("add --prompt-file NAME.prompt.yml, or drop --var"),
        ));
    }
    if args.show_reasoning && args.batch.jobs.is_some() {
        return Err(Error::usage(
            "--show-reasoning applies to a single run; a batch's result lines carry `reasoning`",
            Some("drop --show-reasoning"),
        ));
    }
    if args.batch.jobs.is_none() {
        if let Some((_, flag)) = BATCH_ONLY.iter().find(|(id, _)| given(id)) {
            return Err(Error::usage(
                format!("{flag} only applies to a batch"),
                Some("add --jobs FILE to run a job file, or drop the flag"),
            ));
        }
        let format = match format {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
            OutputFormat::StreamJson => Format::StreamJson,
            OutputFormat::OpenaiBatch => {
                return Err(Error::usage(
                    "`-o openai-batch` is a batch output format",
                    Some("use it with --jobs FILE"),
                ));
            }
        };
        return single(args, format).map(|s| Invocation::Single(Box::new(s)));
    }
    let format = match explicit_format {
        Some(OutputFormat::OpenaiBatch) => BatchFormat::OpenaiBatch,
        Some(f @ (OutputFormat::Text | OutputFormat::StreamJson)) => {
            return Err(Error::usage(
                format!(
                    "a batch writes JSON lines, one result per job, not `{}`",
                    format_name(f)
                ),
                Some("drop -o (or use -o json), or use -o openai-batch for OpenAI Batch API lines"),
            ));
        }
        Some(OutputFormat::Json) | None => BatchFormat::Lines,
    };
    batch(args, format).map(|b| Invocation::Batch(Box::new(b)))
}

fn single(args: RunArgs, format: Format) -> Result<RunSettings, Error> {
    let prompt = args
        .prompt
        .clone()
        .or_else(|| (!args.prompt_words.is_empty()).then(|| args.prompt_words.join(" ")));
    Ok(RunSettings {
        connection: Connection {
            accept_missing_finish_reason: args.accept_missing_finish_reason,
            ..connection_of(&args.connection)?
        },
        request: args.request.settings(),
        prompt,
        prompt_file: args.prompt_file,
        vars: args.vars,
        stdin_timeout: args.stdin_timeout,
        max_response_bytes: args.max_response_bytes,
        format,
        partial: args.include_partial_messages,
        show_reasoning: args.show_reasoning,
        result_file: args.result_file,
        max_wall_time: args.batch.max_wall_time,
        cost: args.cost.settings(),
    })
}

fn batch(args: RunArgs, format: BatchFormat) -> Result<BatchSettings, Error> {
    let b = args.batch;
    Ok(BatchSettings {
        connection: Connection {
            accept_missing_finish_reason: args.accept_missing_finish_reason,
            ..connection_of(&args.connection)?
        },
        request: args.request.settings(),
        jobs: b.jobs.unwrap_or_default(),
        format,
        output: b.results.output,
        overwrite: b.results.overwrite,
        resume: b.resume,
        summary: b.summary,
        concurrency: b.concurrency,
        rpm: b.rpm,
        tpm: b.tpm,
        max_rate_limit_wait: b.max_rate_limit_wait,
        max_wall_time: b.max_wall_time,
        max_total_tokens: b.max_total_tokens,
        cost: args.cost.settings(),
        max_response_bytes: args.max_response_bytes,
        shard: b.shard,
        allow_outside_paths: b.allow_outside_paths,
        quiet: b.quiet,
        progress_interval: b.progress_interval,
        shutdown_grace: b.shutdown_grace,
    })
}
