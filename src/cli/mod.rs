//! Command-line types only (clap derive); no behaviour lives here.

pub(crate) mod provider_batch;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::params::ExtraHeader;
use crate::config::{AuthType, ConfigFlags};
use crate::error::Error;

const EXAMPLES: &str = "\
Examples:
  echo \"Summarize this\" | qwen --json                 one prompt from stdin, JSON result
  git diff | qwen \"Review this change\" -o stream-json  stdin + prompt, JSON lines as they happen
  qwen -m gpt-4o-mini \"Write a haiku about CI\"         plain text answer on stdout
  qwen --json-schema @label.schema.json \"Classify: ...\"  stdout: one validated JSON value
  qwen --prompt-file review.prompt.yml --var diff=@pr.diff  a GitHub-style prompt file with variables
  qwen auth status                                     which key, URL and model would be used, and why
  qwen --jobs reviews.yaml --output results.jsonl --concurrency 16    a batch, one JSON line per job
  qwen --jobs batch.jsonl --resume --output results.jsonl             finish a batch after a crash
  qwen --jobs prompts.jsonl --shard 2/4 --output part-2.jsonl         one leg of a CI matrix
  qwen batch submit reviews.yaml --name nightly --wait --output results.jsonl   the provider's Batch API
  qwen completions zsh > ~/.zfunc/_qwen                shell completions (bash, zsh, fish, powershell)
  qwen man > qwen.1                                    the man page
  qwen auth login                                      set up a key or log in with Qwen OAuth (in a terminal)

Configuration (first found wins): flags, then OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL,
then the first .qwen/.env or .env walking up from the current directory (then ~/.qwen/.env, ~/.env).

Exit codes: 0 ok, 1 failed, 2 usage, 41 auth, 42 input, 52 config, 55 budget (wall time, tokens),
65 no answer matched --json-schema, 75 temporary (retry later), 130/143 interrupted.";

#[derive(Debug, Parser)]
#[command(
    name = "qwen",
    version,
    about = "Send prompts to any OpenAI-compatible chat API and write honest, structured results",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show or manage how requests authenticate.
    Auth(AuthArgs),
    /// Print a shell completion script for `qwen` to stdout.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `qwen man > qwen.1`.
    Man,
    /// Hand a job file to the provider's Batch API: submit, status, fetch, cancel, list.
    Batch(Box<provider_batch::ProviderBatchArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    #[command(subcommand)]
    pub(crate) command: AuthCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthCommand {
    /// Print the resolved auth method, key (redacted), base URL and model, and where each came from.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Log in from a terminal: save an API key to `.qwen/.env`, or log in with Qwen OAuth in a browser.
    Login {
        /// Skip the menu and set up this method.
        #[arg(long, value_enum, value_name = "METHOD")]
        method: Option<AuthType>,
        /// Save the API key in `~/.qwen/.env` instead of the project's `.qwen/.env`.
        #[arg(long)]
        user: bool,
        /// Save the API key without checking it with a request first.
        #[arg(long)]
        no_verify: bool,
    },
    /// Choose the method runs use, in `~/.qwen/settings.json` (`security.auth.selectedType`).
    Use {
        #[arg(value_enum, value_name = "METHOD")]
        method: AuthType,
    },
    /// Remove the cached Qwen OAuth credentials (and with --env, the key line a login wrote).
    Logout {
        /// Also remove the `OPENAI_API_KEY` line from the project's `.qwen/.env`.
        #[arg(long)]
        env: bool,
        /// With --env: edit `~/.qwen/.env` instead of the project's.
        #[arg(long, requires = "env")]
        user: bool,
    },
}

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

impl ConfigArgs {
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
}

/// `--reasoning-effort`: how long a reasoning model may think (`reasoning_effort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// The answer as plain text, streamed.
    Text,
    /// One JSON array (system, assistant, result messages), like Qwen Code's `-o json`.
    Json,
    /// The same messages as JSON lines, written as they happen.
    StreamJson,
    /// Batch only: `OpenAI` Batch API output lines (`custom_id`, `response`, `error`).
    OpenaiBatch,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// The prompt (several words are joined with spaces). Standard input, when piped, comes first.
    #[arg(value_name = "PROMPT", conflicts_with = "prompt")]
    pub(crate) prompt_words: Vec<String>,

    /// The prompt, as one argument.
    #[arg(short = 'p', long, value_name = "TEXT")]
    pub(crate) prompt: Option<String>,

    #[command(flatten)]
    pub(crate) config: ConfigArgs,

    /// A system message sent before the prompt.
    #[arg(long, value_name = "TEXT")]
    pub(crate) system_prompt: Option<String>,

    /// The system message, read from FILE byte for byte (a regular file; a link in the workspace
    /// may not lead out of it).
    #[arg(long, value_name = "FILE", conflicts_with = "system_prompt")]
    pub(crate) system_prompt_file: Option<String>,

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

    /// Write the model's reasoning to stderr as it arrives (it never goes to stdout as text).
    #[arg(long)]
    pub(crate) show_reasoning: bool,

    /// A JSON object merged into the request body at the top level (inline, or @file.json), e.g.
    /// `'{"enable_thinking": true}'`; it cannot set `model`, `messages` or `stream`.
    #[arg(long, value_name = "JSON")]
    pub(crate) extra_body: Option<String>,

    /// Read the prompt from FILE: a `.prompt.yml`/`.prompt.yaml` prompt file (messages, model,
    /// `modelParameters`, `responseFormat`), or any other file, whose text is the prompt.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt_words", "prompt", "jobs"])]
    pub(crate) prompt_file: Option<String>,

    /// A prompt file's `{{name}}` variable: `name=value`, or `name=@path` for a file's text (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub(crate) vars: Vec<String>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub(crate) output_format: OutputFormat,

    /// Same as `-o json`.
    #[arg(long)]
    pub(crate) json: bool,

    /// With `-o stream-json`: also write `stream_event` lines carrying the text deltas.
    #[arg(long)]
    pub(crate) include_partial_messages: bool,

    /// With a prompt argument and piped stdin: how long to wait for stdin's first byte before going on without it.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub(crate) stdin_timeout: Duration,

    /// Refuse input larger than this many bytes (exit 42).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub(crate) max_input_bytes: u64,

    /// Refuse an answer longer than this many bytes of text (exit 1); one event or body may be about twice as long.
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::DEFAULT_MAX_RESPONSE_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_response_bytes: usize,

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

    #[command(flatten)]
    pub(crate) structured: StructuredArgs,

    #[command(flatten)]
    pub(crate) batch: BatchArgs,
}

/// Answers a CI step can trust: `--json-schema`, fallback models, a result file.
#[derive(Debug, Clone, Args)]
pub(crate) struct StructuredArgs {
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

    /// Also write the final answer (the text, or the validated JSON) to FILE, atomically; untouched on failure.
    #[arg(long, value_name = "FILE", conflicts_with = "jobs")]
    pub(crate) result_file: Option<String>,
}

impl StructuredArgs {
    /// The file `--json-schema @path` names, if it names one.
    pub(crate) fn schema_file(&self) -> Option<&str> {
        self.json_schema
            .as_deref()
            .and_then(|s| s.strip_prefix('@'))
    }
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

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Batch (with --jobs)")]
#[allow(
    clippy::struct_excessive_bools,
    reason = "clap flags: each bool is one switch on the command line"
)]
pub(crate) struct BatchArgs {
    /// Run every job of a YAML, JSON or JSON Lines file (`-`: JSON Lines on stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt_words", "prompt"])]
    pub(crate) jobs: Option<String>,

    /// Write one result line per job to FILE (default: stdout).
    #[arg(long, value_name = "FILE", requires = "jobs")]
    pub(crate) output: Option<String>,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) concurrency: u32,

    /// At most N requests per minute (client side).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rpm: Option<u32>,

    /// At most N (estimated) tokens per minute (client side): prompt characters / 4 plus max tokens.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tpm: Option<u32>,

    /// Stop dispatching when the server has refused (429) for this long without one success:
    /// finish what is in flight and exit 75 (resumable).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub max_rate_limit_wait: Duration,

    /// Stop after this long: cancel in-flight work, keep what finished, exit 55 (a single run too).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_wall_time: Option<Duration>,

    /// Dispatch no new job once the reported usage reaches N tokens; in-flight jobs finish, exit 55.
    #[arg(long, value_name = "N", requires = "jobs")]
    pub(crate) max_total_tokens: Option<u64>,

    /// Run only the jobs whose position modulo N is K-1 (K from 1 to N).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub(crate) shard: Option<Shard>,

    /// Skip the jobs that already have a successful line in --output; run and append the rest.
    #[arg(long, requires = "output", conflicts_with = "overwrite")]
    pub(crate) resume: bool,

    /// Replace a non-empty --output file instead of refusing.
    #[arg(long, requires = "output")]
    pub(crate) overwrite: bool,

    /// Let paths in the job file (`prompt_file`, `json_schema`) lead outside its directory: absolute
    /// paths, `..`, symlinks out; and let the command line's files (`--jobs`, `--json-schema @path`,
    /// `--output`, `--summary`) go through links that lead out of the workspace. Only for files you
    /// wrote yourself.
    #[arg(long)]
    pub(crate) allow_outside_paths: bool,

    /// Also write the end-of-run summary as JSON to FILE.
    #[arg(long, value_name = "FILE", requires = "jobs")]
    pub(crate) summary: Option<String>,

    /// No progress reports on stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// Without a terminal: how often a progress line is written to stderr.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) progress_interval: Duration,

    /// After SIGINT/SIGTERM: how long in-flight requests may take to finish before they are cancelled.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) shutdown_grace: Duration,
}

/// `2/4` → shard 2 of 4.
pub(crate) fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("`{text}` is not a shard: use K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok(Shard { k, n })
}

/// How a batch writes its result lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchFormat {
    /// One result message (with `id` and `index`) per line.
    Lines,
    /// `OpenAI` Batch API output lines.
    OpenaiBatch,
}

/// What the command line asks for, once its flags have been checked together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Single { format: OutputFormat, partial: bool },
    Batch { jobs: String, format: BatchFormat },
}

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

impl RunArgs {
    /// Check the flags together and decide the mode once: a flag that would be silently ignored
    /// is a usage error that says what to do instead.
    pub(crate) fn mode(&self, matches: &clap::ArgMatches) -> Result<Mode, Error> {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(clap::parser::ValueSource::CommandLine)
            )
        };
        let explicit_format = given("output_format").then_some(self.output_format);
        if self.json && explicit_format.is_some() {
            return Err(Error::usage(
                "--json and -o/--output-format both choose the output format",
                Some("use one of them (--json is the same as -o json)"),
            ));
        }
        let format = if self.json {
            OutputFormat::Json
        } else {
            self.output_format
        };
        if self.include_partial_messages && format != OutputFormat::StreamJson {
            return Err(Error::usage(
                "--include-partial-messages only applies to -o stream-json",
                Some("add -o stream-json, or drop --include-partial-messages"),
            ));
        }
        if !self.vars.is_empty() && self.prompt_file.is_none() {
            return Err(Error::usage(
                "--var fills the placeholders of a prompt file",
                Some("add --prompt-file NAME.prompt.yml, or drop --var"),
            ));
        }
        if self.show_reasoning && self.batch.jobs.is_some() {
            return Err(Error::usage(
                "--show-reasoning applies to a single run; a batch's result lines carry `reasoning`",
                Some("drop --show-reasoning"),
            ));
        }
        let Some(jobs) = &self.batch.jobs else {
            if let Some((_, flag)) = BATCH_ONLY.iter().find(|(id, _)| given(id)) {
                return Err(Error::usage(
                    format!("{flag} only applies to a batch"),
                    Some("add --jobs FILE to run a job file, or drop the flag"),
                ));
            }
            if format == OutputFormat::OpenaiBatch {
                return Err(Error::usage(
                    "`-o openai-batch` is a batch output format",
                    Some("use it with --jobs FILE"),
                ));
            }
            return Ok(Mode::Single {
                format,
                partial: self.include_partial_messages,
            });
        };
        let format = match explicit_format {
            Some(OutputFormat::OpenaiBatch) => BatchFormat::OpenaiBatch,
            Some(f @ (OutputFormat::Text | OutputFormat::StreamJson)) => {
                return Err(Error::usage(
                    format!(
                        "a batch writes JSON lines, one result per job, not `{}`",
                        f.to_possible_value()
                            .map_or_else(String::new, |v| v.get_name().to_owned())
                    ),
                    Some(
                        "drop -o (or use -o json), or use -o openai-batch for OpenAI Batch API lines",
                    ),
                ));
            }
            Some(OutputFormat::Json) | None => BatchFormat::Lines,
        };
        Ok(Mode::Batch {
            jobs: jobs.clone(),
            format,
        })
    }

    /// The JSON format the command line asked for, if it asked for one: a usage error is then
    /// written as a JSON document too.
    pub(crate) fn recognisable_json_format(&self) -> Option<OutputFormat> {
        if self.json {
            return Some(OutputFormat::Json);
        }
        matches!(
            self.output_format,
            OutputFormat::Json | OutputFormat::StreamJson
        )
        .then_some(self.output_format)
    }

    /// The prompt given as an argument, if any.
    pub(crate) fn prompt_arg(&self) -> Option<String> {
        self.prompt
            .clone()
            .or_else(|| (!self.prompt_words.is_empty()).then(|| self.prompt_words.join(" ")))
    }
}

/// The JSON format named in raw arguments that did not parse: `--json`, `-o json`, `-ojson`,
/// `--output-format json|stream-json` or `--output-format=...`.
pub(crate) fn json_format_in(args: &[std::ffi::OsString]) -> Option<OutputFormat> {
    let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let named = |value: &str| match value {
        "json" => Some(OutputFormat::Json),
        "stream-json" => Some(OutputFormat::StreamJson),
        _ => None,
    };
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        if *word == "--" {
            break;
        }
        let next = words.get(i + 1).copied().unwrap_or_default();
        let format = match *word {
            "--json" => Some(OutputFormat::Json),
            "-o" | "--output-format" => named(next),
            w => w
                .strip_prefix("--output-format=")
                .or_else(|| w.strip_prefix("-o"))
                .and_then(named),
        };
        found = format.or(found);
    }
    found
}

/// A finite number (`NaN` and `inf` parse as `f64` but have no JSON form: they would be sent as `null`).
pub(crate) fn parse_finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        Ok(_) => Err(format!("`{text}` is not a finite number")),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// The longest duration any flag takes (a year): longer ones are a usage error, never an overflow
/// when a deadline is computed from them.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// `qwen help me` is a prompt, not the help command: `help` stays a command only alone or before
/// a command name (`qwen help auth`). Returns the arguments with `--` put before such a prompt.
pub(crate) fn help_words_as_prompt(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let word = |i: usize| args.get(i).and_then(|a| a.to_str());
    let commands = ["auth", "completions", "man", "help"];
    if word(1) == Some("help")
        && word(2).is_some_and(|w| !w.starts_with('-') && !commands.contains(&w))
    {
        args.insert(1, "--".into());
    }
    args
}

/// `500ms`, `2s`, `1.5s`, `5m`, `1h`; a bare number is seconds; at most [`MAX_DURATION`].
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 500ms, 30s, 5m, 1h)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ));
        }
    };
    let duration = Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))?;
    if duration > MAX_DURATION {
        return Err(format!("`{text}` is too long: at most 365 days (8760h)"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("1.5", Duration::from_millis(1500)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("0", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        for bad in [
            "",
            "abc",
            "5x",
            "-1s",
            "8761h",
            "10000000000000000000s",
            "1e400",
            "NaN",
            "inf",
            "1.7976931348623157e308",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let n = 3;
        for index in 0..20 {
            let owners = (1..=n)
                .filter(|k| Shard { k: *k, n }.contains(index))
                .count();
            assert_eq!(owners, 1, "index {index}");
        }
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
