//! The one door from the command line to the program: clap's structs become `settings`, and the
//! flags are checked together (a flag that would be silently ignored is a usage error that says
//! what to do instead).

use clap::ValueEnum;

use super::{ConfigArgs, ConnectionArgs, InputFormat, OutputFormat, RequestArgs, RunArgs};
use crate::client::RetryPolicy;
use crate::client::params::ExtraHeader;
use crate::config::ConfigFlags;
use crate::error::Error;
use crate::output::Format;
use crate::request::Params;
use crate::sessions::{self, Pick};
use crate::settings::{
    BatchFormat, BatchSettings, Connection, CostSettings, Invocation, JsonEvents, RequestSettings,
    RunSettings, SessionSettings,
};

/// Flags that only mean something in a batch (their clap ids and spellings).
const BATCH_ONLY: [(&str, &str); 10] = [
    ("output", "--output"),
    ("concurrency", "--concurrency"),
    ("rpm", "--rpm"),
    ("tpm", "--tpm"),
    ("max_rate_limit_wait", "--max-rate-limit-wait"),
    ("shard", "--shard"),
    ("overwrite", "--overwrite"),
    ("summary", "--summary"),
    ("progress_interval", "--progress-interval"),
    ("shutdown_grace", "--shutdown-grace"),
];

impl ConfigArgs {
    pub(crate) fn flags(&self) -> ConfigFlags {
        ConfigFlags {
            api_key: self.openai_api_key.clone(),
            base_url: self.openai_base_url.clone(),
            model: self.model.clone(),
            auth_type: self.auth_type,
            debug: self.debug,
            bare: self.bare,
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
        proxy: args.proxy.as_deref().map(proxy_url).transpose()?,
        insecure: args.insecure,
        openai_log_dir: None,
    })
}

/// `--proxy URL`: an http(s) proxy with a host (its `user:password@` is sent to the proxy, never
/// shown). A usage error otherwise, naming the URL without its credentials.
fn proxy_url(raw: &str) -> Result<reqwest::Url, Error> {
    let shown = crate::client::url::without_userinfo(raw);
    let refuse = |why: &str| {
        Error::usage(
            format!("--proxy `{shown}` is not a proxy URL: {why}"),
            Some("write --proxy http://[user:password@]host:port"),
        )
    };
    let url = reqwest::Url::parse(raw).map_err(|e| refuse(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it has no host"));
    }
    Ok(url)
}

impl RequestArgs {
    pub(crate) fn settings(&self) -> RequestSettings {
        RequestSettings {
            system_prompt: system_prompt(
                self.system_prompt.as_deref(),
                self.append_system_prompt.as_deref(),
            ),
            system_prompt_file: self.system_prompt_file.clone(),
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
            allow_outside_paths: self.allow_outside_paths,
        }
    }
}

/// `--system-prompt` with `--append-system-prompt` after a blank line (Qwen Code appends to its
/// own system prompt the same way).
fn system_prompt(system: Option<&str>, append: Option<&str>) -> Option<String> {
    match (system, append) {
        (Some(s), Some(a)) => Some(format!("{s}\n\n{a}")),
        (s, a) => s.or(a).map(str::to_owned),
    }
}

/// The Qwen Code agent flags that promise a behaviour qwen does not have: a usage error naming
/// the flag and why (the accepted ones are listed in `--help` as having no effect).
fn refuse_agent_flags(args: &super::groups::AgentArgs) -> Result<(), Error> {
    let refused = [
        (
            args.experimental_hooks,
            "--experimental-hooks",
            "qwen runs no hooks",
        ),
        (
            args.extensions.is_some(),
            "--extensions",
            "qwen loads no extensions",
        ),
        (
            args.experimental_lsp,
            "--experimental-lsp",
            "qwen has no language-server tools",
        ),
        (args.worktree, "--worktree", "qwen creates no git worktree"),
        (
            args.tavily_api_key.is_some(),
            "--tavily-api-key",
            "qwen has no web search tool",
        ),
        (
            args.google_api_key.is_some(),
            "--google-api-key",
            "qwen has no web search tool",
        ),
        (
            args.google_search_engine_id.is_some(),
            "--google-search-engine-id",
            "qwen has no web search tool",
        ),
        (
            args.web_search_default.is_some(),
            "--web-search-default",
            "qwen has no web search tool",
        ),
    ];
    match refused.iter().find(|(given, _, _)| *given) {
        Some((_, flag, why)) => Err(Error::usage(
            format!("{flag} is a Qwen Code agent flag: {why}"),
            Some(
                "drop the flag; qwen sends prompts and runs no tools (README: Coming from Qwen Code)",
            ),
        )),
        None => Ok(()),
    }
}

/// `--json-file`/`--json-fd`: where a single run's JSON events go. fds 0, 1 and 2 are refused, as
/// Qwen Code refuses them (its `DualOutputBridge`): they are the run's own streams.
fn json_events(args: &super::groups::ObserverArgs) -> Result<Option<JsonEvents>, Error> {
    match (&args.json_file, args.json_fd) {
        (Some(file), _) => Ok(Some(JsonEvents::File(file.clone()))),
        (None, Some(fd)) => {
            let why = match i32::try_from(fd) {
                Ok(fd) if fd > 2 => return Ok(Some(JsonEvents::Fd(fd))),
                Ok(0..=2) => "0, 1 and 2 are the run's own standard streams",
                _ => "not a file descriptor",
            };
            Err(Error::usage(
                format!("--json-fd {fd}: {why}"),
                Some("hand qwen another descriptor, e.g. `--json-fd 3 3>events.jsonl`"),
            ))
        }
        (None, None) => Ok(None),
    }
}

impl super::CostArgs {
    pub(crate) fn settings(&self) -> CostSettings {
        CostSettings {
            prices: self.prices.prices.clone(),
            max_budget_usd: self.max_budget_usd,
        }
    }
}

fn format_name(format: OutputFormat) -> String {
    format
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

/// `--openai-logging [--openai-logging-dir DIR]`: the directory as given, `logs/openai` by
/// default (Qwen Code's `resolveOpenAILogDir`, packages/core/src/utils/openaiLogger.ts).
fn openai_log_dir(args: &super::groups::ObserverArgs) -> Option<String> {
    args.openai_logging.then(|| {
        args.openai_logging_dir
            .clone()
            .unwrap_or_else(|| "logs/openai".to_owned())
    })
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
    refuse_agent_flags(&args.agent)?;
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
    if args.input_format == InputFormat::StreamJson && format != OutputFormat::StreamJson {
        return Err(Error::usage(
            "--input-format stream-json answers in JSON lines",
            Some("add -o stream-json"),
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

/// The session flags of a single run: which conversation, forked or not, recorded or not.
fn session_of(args: &RunArgs) -> Result<SessionSettings, Error> {
    let c = &args.conversation;
    let pick = match (args.batch.resume.as_deref(), c.continue_session) {
        (Some(""), _) => {
            return Err(Error::usage(
                "-r/--resume needs a session id without --jobs",
                Some(
                    "pass -r ID (`qwen sessions list` shows them), or -c/--continue for the latest",
                ),
            ));
        }
        (Some(_), true) => {
            return Err(Error::usage(
                "-c/--continue and -r/--resume both choose the session",
                Some("use one of them"),
            ));
        }
        (Some(id), false) => Pick::Resume(id.to_owned()),
        (None, true) => Pick::Continue,
        (None, false) => Pick::New(c.session_id.clone()),
    };
    if c.session_id.is_some() && matches!(pick, Pick::Resume(_)) {
        return Err(Error::usage(
            "--session-id names a new session; -r/--resume picks an existing one",
            Some("use one of them"),
        ));
    }
    if c.fork_session && matches!(pick, Pick::New(_)) {
        return Err(Error::usage(
            "--fork-session branches off an existing session",
            Some("add -c/--continue or -r/--resume ID"),
        ));
    }
    for id in [c.session_id.as_deref(), args.batch.resume.as_deref()]
        .into_iter()
        .flatten()
    {
        sessions::check_id(id).map_err(|e| Error::usage(e, None))?;
    }
    Ok(SessionSettings {
        pick,
        fork: c.fork_session,
        record: c.chat_recording,
    })
}

fn single(args: RunArgs, format: Format) -> Result<RunSettings, Error> {
    let session = session_of(&args)?;
    if args.prompt_file.is_some() && session.pick != Pick::New(None) {
        return Err(Error::usage(
            "a session continues a prompt's text; a prompt file brings its own messages",
            Some("give the prompt as an argument, or drop the session flags"),
        ));
    }
    let prompt = args
        .prompt
        .clone()
        .or_else(|| (!args.prompt_words.is_empty()).then(|| args.prompt_words.join(" ")));
    let json_events = json_events(&args.observers)?;
    if json_events.is_some() && args.input_format == InputFormat::StreamJson {
        return Err(Error::usage(
            "--json-file/--json-fd copy a single prompt's events; with --input-format stream-json they are on stdout already",
            Some("drop --json-file/--json-fd"),
        ));
    }
    Ok(RunSettings {
        connection: Connection {
            accept_missing_finish_reason: args.accept_missing_finish_reason,
            openai_log_dir: openai_log_dir(&args.observers),
            ..connection_of(&args.connection)?
        },
        json_events,
        request: args.request.settings(),
        prompt,
        prompt_file: args.prompt_file,
        vars: args
            .vars
            .iter()
            .map(|v| crate::prompt_file::parse_var(v))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::usage(e.message, Some(&e.hint)))?,
        ai_inference_inputs: args.ai_inference_inputs,
        stdin_timeout: args.stdin_timeout,
        max_response_bytes: args.max_response_bytes,
        format,
        partial: args.include_partial_messages,
        show_reasoning: args.show_reasoning,
        result_file: args.result_file,
        include_directories: args.include_directories,
        stream_input: args.input_format == InputFormat::StreamJson,
        session,
        max_wall_time: args.batch.max_wall_time,
        cost: args.cost.settings(),
    })
}

fn batch(args: RunArgs, format: BatchFormat) -> Result<BatchSettings, Error> {
    let c = &args.conversation;
    if c.fork_session || !c.chat_recording {
        return Err(Error::usage(
            "sessions belong to single runs; a batch records no conversation",
            Some("drop --fork-session and --chat-recording"),
        ));
    }
    let resume = match args.batch.resume.as_deref() {
        None => false,
        Some("") if args.batch.results.output.is_some() => true,
        Some("") => {
            return Err(Error::usage(
                "--resume with --jobs finishes the batch in --output",
                Some("add --output FILE"),
            ));
        }
        Some(_) => {
            return Err(Error::usage(
                "with --jobs, --resume takes no value (-r ID resumes a session of a single run)",
                Some("write --resume alone, with --output FILE"),
            ));
        }
    };
    if args.observers.json_file.is_some() || args.observers.json_fd.is_some() {
        return Err(Error::usage(
            "--json-file/--json-fd copy a single run's events; a batch writes JSON lines already",
            Some("drop --json-file/--json-fd, and read the result lines (--output FILE)"),
        ));
    }
    let openai_log_dir = openai_log_dir(&args.observers);
    let b = args.batch;
    Ok(BatchSettings {
        connection: Connection {
            accept_missing_finish_reason: args.accept_missing_finish_reason,
            openai_log_dir,
            ..connection_of(&args.connection)?
        },
        request: args.request.settings(),
        jobs: b.jobs.unwrap_or_default(),
        format,
        output: b.results.output,
        overwrite: b.results.overwrite,
        resume,
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
        quiet: b.quiet,
        progress_interval: b.progress_interval,
        shutdown_grace: b.shutdown_grace,
        ai_inference_inputs: args.ai_inference_inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::system_prompt;

    #[test]
    fn append_system_prompt_follows_the_system_prompt_after_a_blank_line() {
        let cases = [
            (None, None, None),
            (Some("s"), None, Some("s")),
            (None, Some("a"), Some("a")),
            (Some("s"), Some("a"), Some("s\n\na")),
        ];
        for (system, append, want) in cases {
            assert_eq!(
                system_prompt(system, append).as_deref(),
                want,
                "{system:?} {append:?}"
            );
        }
    }
}
