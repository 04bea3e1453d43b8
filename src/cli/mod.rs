//! Command-line types (clap derive) and their one resolution into `settings`: nothing below the
//! command entry points sees these types. Reads no file, no environment, no network.

pub(crate) mod groups;
pub(crate) mod provider_batch;
mod resolve;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::AuthType;
use crate::output::Format;
pub(crate) use groups::{
    AgentArgs, ConfigArgs, ConnectionArgs, CostArgs, PricesArgs, RequestArgs, ResultArgs,
};
pub(crate) use resolve::{connection_of, invocation, json_format_of};

const EXAMPLES: &str = "\
Examples:
  echo \"Summarize this\" | qwen --json                 one prompt from stdin, JSON result
  git diff | qwen \"Review this change\" -o stream-json  stdin + prompt, JSON lines as they happen
  qwen -m gpt-4o-mini \"Write a haiku about CI\"         plain text answer on stdout
  qwen --json-schema @label.schema.json \"Classify: ...\"  stdout: one validated JSON value
  qwen --prompt-file review.prompt.yml --var diff=@pr.diff  a GitHub-style prompt file with variables
  qwen \"summarize @README.md\"                          README.md's content goes after the prompt
  qwen -c \"and now the tests\"                          continue this directory's latest conversation
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

Exit codes: 0 ok, 1 failed, 2 usage, 41 auth, 42 input, 52 config, 55 budget (wall time, tokens, dollars),
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
    /// The recorded conversations that `-c/--continue` and `-r/--resume ID` pick up.
    Sessions(SessionsArgs),
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

/// `--auth-type` values (the type lives in `config`, which knows nothing of clap).
impl ValueEnum for AuthType {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// `--reasoning-effort` values (the type lives in `request`).
impl ValueEnum for crate::request::ReasoningEffort {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Low, Self::Medium, Self::High]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFormat {
    /// The prompt from the arguments and stdin.
    Text,
    /// JSON lines on stdin: user messages and control requests (the Qwen Code SDK).
    StreamJson,
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
#[allow(
    clippy::struct_excessive_bools,
    reason = "clap flags: each bool is one switch on the command line"
)]
pub(crate) struct RunArgs {
    /// The prompt (several words are joined with spaces). Standard input, when piped, comes first.
    #[arg(value_name = "PROMPT", conflicts_with = "prompt")]
    pub(crate) prompt_words: Vec<String>,

    /// The prompt, as one argument.
    #[arg(short = 'p', long, value_name = "TEXT")]
    pub(crate) prompt: Option<String>,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    #[command(flatten)]
    pub(crate) request: RequestArgs,

    #[command(flatten)]
    pub(crate) cost: CostArgs,

    /// Write the model's reasoning to stderr as it arrives (it never goes to stdout as text).
    #[arg(long)]
    pub(crate) show_reasoning: bool,

    /// Read the prompt from FILE: a `.prompt.yml`/`.prompt.yaml` prompt file (messages, model,
    /// `modelParameters`, `responseFormat`), or any other file, whose text is the prompt.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt_words", "prompt", "jobs"])]
    pub(crate) prompt_file: Option<String>,

    /// A prompt file's `{{name}}` variable: `name=value`, or `name=@path` for a file's text (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub(crate) vars: Vec<String>,

    /// The GitHub Action's map inputs, read as actions/ai-inference v2 reads them (YAML through
    /// js-yaml, headers also JSON) from `QWEN_ACTION_INPUT`, `QWEN_ACTION_FILE_INPUT` and
    /// `QWEN_ACTION_CUSTOM_HEADERS`: the values never travel on a command line.
    #[arg(long, hide = true)]
    pub(crate) ai_inference_inputs: bool,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub(crate) output_format: OutputFormat,

    /// Same as `-o json`.
    #[arg(long)]
    pub(crate) json: bool,

    /// `stream-json`: read JSON lines on stdin (the Qwen Code SDK's protocol: user messages and
    /// control requests), one turn per user message, until stdin ends. Needs `-o stream-json`.
    #[arg(long, value_enum, default_value_t = InputFormat::Text, value_name = "FORMAT", conflicts_with_all = ["jobs", "prompt_file", "prompt", "prompt_words"])]
    pub(crate) input_format: InputFormat,

    /// With `-o stream-json`: also write `stream_event` lines carrying the text deltas.
    #[arg(long)]
    pub(crate) include_partial_messages: bool,

    /// With a prompt argument and piped stdin: how long to wait for stdin's first byte before going on without it.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub(crate) stdin_timeout: Duration,

    /// Refuse an answer longer than this many bytes of text (exit 1); one event or body may be about twice as long.
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::DEFAULT_MAX_RESPONSE_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_response_bytes: usize,

    /// Accept an answer that ends without a `finish_reason`, for a server that never sends one; otherwise such an answer is incomplete: retried, then exit 75.
    #[arg(long)]
    pub(crate) accept_missing_finish_reason: bool,

    /// Also write the final answer (the text, or the validated JSON) to FILE, atomically; untouched on failure.
    #[arg(long, value_name = "FILE", conflicts_with = "jobs")]
    pub(crate) result_file: Option<String>,

    /// Also let `@path` references in the prompt read files under DIR (comma-separated or
    /// repeatable); the working directory is always in the workspace.
    #[arg(
        long = "include-directories",
        visible_alias = "add-dir",
        value_name = "DIR",
        value_delimiter = ',',
        conflicts_with = "jobs"
    )]
    pub(crate) include_directories: Vec<String>,

    #[command(flatten)]
    pub(crate) batch: BatchArgs,

    #[command(flatten)]
    pub(crate) agent: AgentArgs,

    #[command(flatten)]
    pub(crate) conversation: ConversationArgs,

    #[command(flatten)]
    pub(crate) observers: groups::ObserverArgs,
}

/// Recorded conversations (Qwen Code's session flags).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Conversations")]
pub(crate) struct ConversationArgs {
    /// Continue the most recently updated session of this directory: its messages are sent
    /// before the prompt, and the new turn is appended.
    #[arg(short = 'c', long = "continue", conflicts_with_all = ["session_id", "jobs"])]
    pub(crate) continue_session: bool,

    /// Start the new session with this id (a UUID, as the Qwen Code SDK passes).
    #[arg(long, value_name = "ID", conflicts_with = "jobs")]
    pub(crate) session_id: Option<String>,

    /// With -c or -r: record the turn in a new session that starts with the old one's messages,
    /// leaving the old one as it was.
    #[arg(long)]
    pub(crate) fork_session: bool,

    /// Record the conversation (`--chat-recording=false`: nothing is written; -c and -r still read).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) chat_recording: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SessionsArgs {
    #[command(subcommand)]
    pub(crate) command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List the recorded sessions of this directory, most recent first.
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
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

    #[command(flatten)]
    pub(crate) results: ResultArgs,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) concurrency: u32,

    /// At most N requests per minute (client side).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rpm: Option<u32>,

    /// At most N (estimated) tokens per minute (client side): prompt characters / 4 plus max tokens.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) tpm: Option<u32>,

    /// Stop dispatching when the server has refused (429) for this long without one success:
    /// finish what is in flight and exit 75 (resumable).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(crate) max_rate_limit_wait: Duration,

    /// Stop after this long: cancel in-flight work, keep what finished, exit 55 (a single run too).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_wall_time: Option<Duration>,

    /// Dispatch no new job once the reported usage reaches N tokens; in-flight jobs finish, exit 55.
    #[arg(long, value_name = "N", requires = "jobs")]
    pub(crate) max_total_tokens: Option<u64>,

    /// Run only the jobs whose position modulo N is K-1 (K from 1 to N).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub(crate) shard: Option<Shard>,

    /// With --jobs: skip the jobs that already have a successful line in --output; run and append
    /// the rest. Without --jobs: `-r/--resume ID` continues the recorded session ID.
    #[arg(short = 'r', long, value_name = "ID", num_args = 0..=1, default_missing_value = "", conflicts_with = "overwrite")]
    pub(crate) resume: Option<String>,

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

pub(crate) use crate::settings::Shard;

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

/// The JSON format named in raw arguments that did not parse: `--json`, `-o json`, `-ojson`,
/// `--output-format json|stream-json` or `--output-format=...`.
pub(crate) fn json_format_in(args: &[std::ffi::OsString]) -> Option<Format> {
    let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let named = |value: &str| match value {
        "json" => Some(Format::Json),
        "stream-json" => Some(Format::StreamJson),
        _ => None,
    };
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        if *word == "--" {
            break;
        }
        let next = words.get(i + 1).copied().unwrap_or_default();
        let format = match *word {
            "--json" => Some(Format::Json),
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
    let commands = ["auth", "completions", "man", "help", "sessions"];
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
