//! Batch runs: many jobs from a file, bounded concurrency, one result line per finished job,
//! resumable, sharded, and honest about what did not finish.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::{Context, load_config};
use crate::auth;
use crate::cli::{OutputFormat, RunArgs};
use crate::client::{ApiError, ChatClient, Completion, Failure, Pacers, PacingSettings, Usage};
use crate::config::Source;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::gha as github;
use crate::job::{Job, JobDefaults, JobFile, declared_id};
use crate::output::{self, RunMeta, diag};
use crate::progress::Progress;
use crate::run::{
    Authenticated, OauthSession, append_step_summary, authenticate, client_settings, rate_limit,
};

/// What became of one job.
struct JobOutcome {
    job: JobMeta,
    /// `None`: cancelled before it finished (no line is written).
    result: Option<Result<Completion, Failure>>,
    elapsed: Duration,
}

#[derive(Debug, Clone)]
struct JobMeta {
    id: String,
    index: usize,
    model: String,
}

/// The end-of-run figures (stderr, `--summary FILE`, the GitHub step summary).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub jobs: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub failed_temporary: u64,
    pub skipped_resumed: u64,
    pub not_run: u64,
    pub retried: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub wall_ms: u128,
    pub requests_per_sec: f64,
    /// 429s for rate received (each one re-queued its request; none is a job's failure).
    pub rate_limited: u64,
    /// Requests the server admitted (answered with anything but a 429) per second of wall time.
    pub effective_requests_per_sec: f64,
    pub exit_code: u8,
    /// (id, error type, message) of the failed jobs, the first 100.
    pub failures: Vec<(String, String, String)>,
}

const MAX_LISTED_FAILURES: usize = 100;
/// The first shared pause after a 429 that names no wait: `--retry-base-delay`, at most this
/// (a pause stops the whole batch, so it starts short and doubles while 429s continue).
const SHARED_BACKOFF_CAP: Duration = Duration::from_millis(250);
/// At most this many failed jobs become GitHub `::error::` annotations (GitHub shows only a few).
const MAX_ANNOTATIONS: u64 = 10;

impl Summary {
    fn finish(&mut self, skipped: u64, wall: Duration) {
        self.skipped_resumed = skipped;
        self.not_run = self
            .jobs
            .saturating_sub(self.succeeded + self.failed + self.skipped_resumed);
        self.wall_ms = wall.as_millis();
        let secs = wall.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let finished = (self.succeeded + self.failed) as f64;
        self.requests_per_sec = if secs > 0.0 { finished / secs } else { 0.0 };
    }

    /// The pacing figures (429s received, admitted requests per second).
    fn paced(&mut self, pacers: &Pacers) {
        self.rate_limited = pacers.rate_limited();
        let secs =
            Duration::from_millis(u64::try_from(self.wall_ms).unwrap_or(u64::MAX)).as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let answered = pacers.answered() as f64;
        self.effective_requests_per_sec = if secs > 0.0 { answered / secs } else { 0.0 };
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    Signal(&'static str),
    WallTime,
    /// stdout was closed (`| head`): a quiet end.
    OutputClosed,
    /// The results file could not be written: the batch fails.
    OutputFailed(String),
    /// The server refused for longer than `--max-rate-limit-wait`: exit 75, resumable.
    RateLimited(Duration),
    /// The account is out of quota (billing): every job would fail the same way; exit 1.
    Quota(String),
}

/// Whether a job's failure ends the dispatching of the whole batch (pacing; see `client::pacing`).
fn batch_stop(error: &ApiError) -> Option<Stop> {
    match error {
        ApiError::RateLimitWait { waited } => Some(Stop::RateLimited(*waited)),
        ApiError::QuotaExhausted { message } => Some(Stop::Quota(message.clone())),
        _ => None,
    }
}

/// Where result lines go.
enum Sink {
    File(File),
    Stdout,
}

impl Sink {
    /// Write one line; a failure says how the batch has to stop.
    fn write_line(&mut self, line: &Value) -> Result<(), Stop> {
        let mut bytes = serde_json::to_vec(line).unwrap_or_default();
        bytes.push(b'\n');
        match self {
            Self::File(f) => f
                .write_all(&bytes)
                .and_then(|()| f.flush())
                .map_err(|e| Stop::OutputFailed(format!("cannot write a result line: {e}"))),
            Self::Stdout => output::write_stdout(&bytes).map_err(|_| Stop::OutputClosed),
        }
    }
}

pub fn run(
    args: &RunArgs,
    jobs_spec: &str,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> ExitStatus {
    match prepare_and_run(args, jobs_spec, ctx, runtime) {
        Ok(status) => status,
        Err(e) => {
            diag::error(&e);
            e.exit_status()
        }
    }
}

#[allow(clippy::too_many_lines)]
fn prepare_and_run(
    args: &RunArgs,
    jobs_spec: &str,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let batch = &args.batch;
    let config = load_config(&args.config, ctx)?;
    let plan = auth::credentials(&config, ctx.env.home().as_deref())?;
    let Authenticated {
        credentials,
        mut oauth,
    } = authenticate(plan, &config, ctx, runtime)?;

    let format = match args.format() {
        OutputFormat::OpenaiBatch => OutputFormat::OpenaiBatch,
        _ => OutputFormat::Json,
    };
    let file = JobFile::open(jobs_spec, &ctx.cwd)?;
    let mut fields = Map::new();
    if matches!(config.model.source, Source::Flag(_)) {
        fields.insert("model".into(), json!(config.model.value));
    }
    if let Some(t) = args.temperature {
        fields.insert("temperature".into(), json!(t));
    }
    if let Some(n) = args.max_tokens {
        fields.insert("max_tokens".into(), json!(n));
    }
    let defaults = JobDefaults {
        model: config.model.value.clone(),
        system: args.system_prompt.clone(),
        fields,
        max_input_bytes: args.max_input_bytes,
    };

    let output_path = batch.output.as_ref().map(|o| ctx.cwd.join(o));
    let done = match &output_path {
        Some(path) => existing_output(path, batch.resume, batch.overwrite)?,
        None => HashSet::new(),
    };
    let shard = batch.shard;
    let in_shard = |index: usize| shard.is_none_or(|s| s.contains(index));
    let validation = file.validate(&defaults, in_shard, |id| !done.contains(id))?;

    let mut sink = match &output_path {
        Some(path) => Sink::File(open_output(path, batch.resume, &done)?),
        None => Sink::Stdout,
    };

    if let Some(warning) = auth::plaintext_warning(&credentials.base_url) {
        diag::warn(&warning);
    }
    let concurrency = batch.concurrency as usize;
    let client = ChatClient::new(
        &credentials.base_url,
        credentials.api_key,
        client_settings(args, &config, concurrency),
    )
    .map_err(Error::Api)?
    .with_rate_limit(rate_limit(batch.rpm, oauth.is_some()));
    let pacers = std::sync::Arc::new(Pacers::new(PacingSettings {
        max_concurrency: concurrency,
        max_rate_limit_wait: batch.max_rate_limit_wait,
        tpm: batch.tpm,
        base_backoff: args.retry_base_delay.min(SHARED_BACKOFF_CAP),
        max_backoff: Duration::from_secs(30),
    }));
    let client = client.with_pacers(std::sync::Arc::clone(&pacers));

    let mut summary = Summary {
        jobs: validation.in_scope,
        ..Summary::default()
    };
    let in_github = github::is_github_actions(&ctx.env);
    let mut jobs = file.jobs()?;
    // A bar needs a terminal that understands cursor movement; `TERM=dumb` gets plain lines.
    let live_bar = ctx.terminal.stderr && ctx.env.get("TERM") != Some("dumb");
    let progress = Progress::new(
        validation.pending,
        live_bar,
        batch.quiet,
        batch.progress_interval,
    );
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model: config.model.value.clone(),
        cwd: ctx.cwd.display().to_string(),
    };

    let mut next_job = || -> Option<Result<Job, (JobMeta, String)>> {
        for raw in jobs.by_ref() {
            if !in_shard(raw.index) {
                continue;
            }
            let index = raw.index;
            let id = declared_id(&raw.value, index);
            match file.build(raw.value, index, &defaults) {
                Ok(job) if done.contains(&job.id) => {}
                Ok(job) => return Some(Ok(job)),
                Err(_) if done.contains(&id) => {}
                Err(reason) => {
                    let meta = JobMeta {
                        id,
                        index,
                        model: defaults.model.clone(),
                    };
                    return Some(Err((meta, reason)));
                }
            }
        }
        None
    };

    let stop = runtime.block_on(dispatch(
        &client,
        &mut next_job,
        concurrency,
        batch,
        &mut |outcome: JobOutcome| {
            let line = result_line(&meta, &outcome, format);
            count(&mut summary, &outcome);
            if in_github
                && summary.failed <= MAX_ANNOTATIONS
                && let Some(Err(f)) = &outcome.result
            {
                let title = format!("qwen job {}", outcome.job.id);
                diag::raw(&github::error_command(Some(&title), &f.error.to_string()));
            }
            progress.finished(outcome.result.as_ref().is_some_and(Result::is_ok));
            sink.write_line(&line)
        },
        &progress,
        oauth.as_mut(),
        &pacers,
    ));
    progress.clear();

    summary.finish(validation.in_scope - validation.pending, started.elapsed());
    summary.paced(&pacers);
    let status = match stop {
        Some(Stop::Signal("SIGTERM")) => ExitStatus::Terminated,
        Some(Stop::Signal(_)) => ExitStatus::Interrupted,
        Some(Stop::WallTime) => ExitStatus::WallTime,
        Some(Stop::OutputClosed) => return Ok(ExitStatus::Success),
        Some(Stop::RateLimited(_)) => ExitStatus::TempFail,
        None if summary.failed == 0 => ExitStatus::Success,
        None if summary.failed == summary.failed_temporary => ExitStatus::TempFail,
        Some(Stop::OutputFailed(_) | Stop::Quota(_)) | None => ExitStatus::Failure,
    };
    summary.exit_code = status.code();
    if in_github && summary.failed > MAX_ANNOTATIONS {
        diag::raw(&github::error_command(
            Some("qwen batch"),
            &format!(
                "{} jobs failed; the first {MAX_ANNOTATIONS} are annotated, all are in the results",
                summary.failed
            ),
        ));
    }
    if let Some(path) = github::step_summary_path(&ctx.env) {
        let view = github::BatchSummaryView {
            jobs: summary.jobs,
            succeeded: summary.succeeded,
            failed: summary.failed,
            retried: summary.retried,
            input_tokens: summary.input_tokens,
            output_tokens: summary.output_tokens,
            wall_ms: summary.wall_ms,
            requests_per_sec: summary.requests_per_sec,
            failures: &summary.failures,
        };
        append_step_summary(&path, &github::batch_summary(&view));
    }
    report(
        &summary,
        stop,
        batch.summary.as_ref().map(|s| ctx.cwd.join(s)).as_deref(),
    )?;
    Ok(status)
}

type NextJob<'a> = dyn FnMut() -> Option<Result<Job, (JobMeta, String)>> + 'a;

/// The dispatcher: keeps at most `concurrency` jobs in flight, hands every finished one to
/// `on_done` (the single writer), and stops on a signal, the wall-time limit or a closed output.
#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
async fn dispatch(
    client: &ChatClient,
    next_job: &mut NextJob<'_>,
    concurrency: usize,
    batch: &crate::cli::BatchArgs,
    on_done: &mut dyn FnMut(JobOutcome) -> Result<(), Stop>,
    progress: &Progress,
    mut oauth: Option<&mut OauthSession>,
    pacers: &Pacers,
) -> Option<Stop> {
    let mut set = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, JobMeta> = HashMap::new();
    let hard_cancel = CancellationToken::new();
    let mut signals = crate::signals::Listener::new();
    let mut stop = None;
    let mut dispatching = true;
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let wall_deadline = batch
        .max_wall_time
        .map_or(far, |d| tokio::time::Instant::now() + d);
    let mut grace_deadline = far;
    let mut tick = tokio::time::interval(progress.tick_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        while dispatching && set.len() < concurrency {
            match next_job() {
                None => dispatching = false,
                Some(Err((meta, reason))) => {
                    let outcome = JobOutcome {
                        result: Some(Err(Failure {
                            error: ApiError::InvalidResponse(format!("invalid job: {reason}")),
                            attempts: 0,
                            api_duration: Duration::ZERO,
                        })),
                        job: meta,
                        elapsed: Duration::ZERO,
                    };
                    if let Err(why) = on_done(outcome) {
                        stop = Some(why);
                        dispatching = false;
                        hard_cancel.cancel();
                    }
                }
                Some(Ok(job)) => {
                    if let Some(session) = oauth.as_deref_mut()
                        && let Err(e) = session.keep_fresh(client).await
                    {
                        diag::warn(&format!(
                            "warning: the Qwen OAuth token could not be refreshed: {e}"
                        ));
                    }
                    let meta = JobMeta {
                        id: job.id.clone(),
                        index: job.index,
                        model: job.model.clone(),
                    };
                    let handle = set.spawn(run_job(
                        client.clone(),
                        job,
                        meta.clone(),
                        hard_cancel.clone(),
                    ));
                    in_flight.insert(handle.id(), meta);
                }
            }
        }
        progress.in_flight(set.len());
        if set.is_empty() {
            break;
        }
        tokio::select! {
            joined = set.join_next_with_id() => {
                let outcome = match joined {
                    Some(Ok((id, outcome))) => { in_flight.remove(&id); outcome }
                    Some(Err(e)) => {
                        let Some(job) = in_flight.remove(&e.id()) else { continue };
                        let message = if e.is_panic() { "the job panicked" } else { "the job was aborted" };
                        JobOutcome {
                            job,
                            result: Some(Err(Failure {
                                error: ApiError::InvalidResponse(message.to_owned()),
                                attempts: 1,
                                api_duration: Duration::ZERO,
                            })),
                            elapsed: Duration::ZERO,
                        }
                    }
                    None => continue,
                };
                let mut outcome = outcome;
                if let Some(Err(f)) = &outcome.result
                    && let Some(why) = batch_stop(&f.error)
                {
                    // Stop dispatching; what is in flight finishes. A job refused by the pacer was
                    // never answered: it gets no line (--resume runs it).
                    if matches!(why, Stop::RateLimited(_)) {
                        outcome.result = None;
                    } else {
                        // Out of quota: whatever waits or runs would fail the same way.
                        hard_cancel.cancel();
                    }
                    if stop.is_none() {
                        diag::warn(&match &why {
                            Stop::Quota(_) => "error: the API reports insufficient quota (billing): no new jobs are started".to_owned(),
                            _ => format!("the server has refused for --max-rate-limit-wait ({}s): no new jobs; finishing {} in flight", batch.max_rate_limit_wait.as_secs(), set.len()),
                        });
                        stop = Some(why);
                    }
                    dispatching = false;
                }
                progress.held_back(pacers.held_back());
                if outcome.result.is_some()
                    && let Err(why) = on_done(outcome)
                {
                    stop = Some(why);
                    dispatching = false;
                    hard_cancel.cancel();
                }
            }
            signal = signals.next() => {
                if stop.is_none() {
                    stop = Some(Stop::Signal(signal));
                    dispatching = false;
                    grace_deadline = tokio::time::Instant::now() + batch.shutdown_grace;
                    diag::warn(&format!(
                        "{signal}: no new jobs; waiting up to {}s for {} in flight (again to stop at once)",
                        batch.shutdown_grace.as_secs(), set.len()
                    ));
                } else {
                    hard_cancel.cancel();
                }
            }
            () = tokio::time::sleep_until(wall_deadline), if stop.is_none() => {
                stop = Some(Stop::WallTime);
                dispatching = false;
                hard_cancel.cancel();
                diag::warn("--max-wall-time reached: cancelling the jobs in flight");
            }
            () = tokio::time::sleep_until(grace_deadline), if !hard_cancel.is_cancelled() => {
                hard_cancel.cancel();
            }
            _ = tick.tick() => {
                progress.held_back(pacers.held_back());
                progress.tick();
            }
        }
    }
    stop
}

async fn run_job(
    client: ChatClient,
    job: Job,
    meta: JobMeta,
    cancel: CancellationToken,
) -> JobOutcome {
    let started = Instant::now();
    let mut ignore_deltas = |_: &str| Ok(());
    let result = tokio::select! {
        r = client.send(&job.body, &mut ignore_deltas, false) => Some(r),
        () = cancel.cancelled() => None,
    };
    JobOutcome {
        job: meta,
        result,
        elapsed: started.elapsed(),
    }
}

fn count(summary: &mut Summary, outcome: &JobOutcome) {
    match &outcome.result {
        Some(Ok(c)) => {
            summary.succeeded += 1;
            summary.retried += u64::from(c.attempts > 1);
            if let Some(u) = c.usage {
                summary.input_tokens += u.input_tokens;
                summary.output_tokens += u.output_tokens;
            }
        }
        Some(Err(f)) => {
            summary.failed += 1;
            summary.retried += u64::from(f.attempts > 1);
            if f.error.exit_status() == ExitStatus::TempFail {
                summary.failed_temporary += 1;
            }
            if summary.failures.len() < MAX_LISTED_FAILURES {
                summary.failures.push((
                    outcome.job.id.clone(),
                    f.error.kind().to_owned(),
                    f.error.to_string(),
                ));
            }
        }
        None => {}
    }
}

/// One output line for a finished job.
fn result_line(meta: &RunMeta, outcome: &JobOutcome, format: OutputFormat) -> Value {
    let Some(result) = &outcome.result else {
        return Value::Null;
    };
    if format == OutputFormat::OpenaiBatch {
        return openai_batch_line(&outcome.job, result);
    }
    let job_meta = RunMeta {
        model: outcome.job.model.clone(),
        ..meta.clone()
    };
    let elapsed = outcome.elapsed.as_millis();
    let message = match result {
        Ok(c) => output::result_message(&job_meta, Ok(c), elapsed, c.api_duration.as_millis()),
        Err(f) => {
            let text = f.error.to_string();
            output::result_message(
                &job_meta,
                Err((f.error.kind(), &text, f.attempts)),
                elapsed,
                f.api_duration.as_millis(),
            )
        }
    };
    let mut line = Map::new();
    line.insert("id".into(), json!(outcome.job.id));
    line.insert("index".into(), json!(outcome.job.index));
    if let Value::Object(rest) = message {
        line.extend(rest);
    }
    Value::Object(line)
}

fn openai_usage(usage: Option<Usage>) -> Value {
    usage.map_or(Value::Null, |u| {
        json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens})
    })
}

fn openai_batch_line(job: &JobMeta, result: &Result<Completion, Failure>) -> Value {
    let id = format!("batch_req_{}", uuid::Uuid::new_v4().simple());
    match result {
        Ok(c) => json!({
            "id": id,
            "custom_id": job.id,
            "response": {
                "status_code": 200,
                "request_id": c.request_id,
                "body": {
                    "id": c.response_id,
                    "object": "chat.completion",
                    "created": c.created,
                    "model": c.server_model.as_deref().unwrap_or(&job.model),
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": c.text},
                        "finish_reason": c.finish_reason,
                    }],
                    "usage": openai_usage(c.usage),
                },
            },
            "error": null,
        }),
        Err(f) => match f.error.status() {
            Some(status) => json!({
                "id": id,
                "custom_id": job.id,
                "response": {
                    "status_code": status,
                    "request_id": null,
                    "body": {"error": {"message": f.error.to_string(), "type": f.error.kind()}},
                },
                "error": null,
            }),
            None => json!({
                "id": id,
                "custom_id": job.id,
                "response": null,
                "error": {"code": f.error.kind(), "message": f.error.to_string()},
            }),
        },
    }
}

/// The id of a line that records a success, in either output format.
fn successful_id(line: &Value) -> Option<&str> {
    if line.get("custom_id").is_some() {
        let ok = line
            .pointer("/response/status_code")
            .and_then(Value::as_u64)
            == Some(200)
            && line.get("error").is_none_or(Value::is_null);
        return ok.then(|| line.get("custom_id")?.as_str())?;
    }
    let ok = line.get("type").and_then(Value::as_str) == Some("result")
        && line.get("is_error").and_then(Value::as_bool) == Some(false);
    ok.then(|| line.get("id")?.as_str())?
}

/// Check an existing output file: refuse to clobber it, or (with `--resume`) collect the ids of the
/// jobs that already succeeded. A torn last line (a killed run) is ignored.
fn existing_output(path: &Path, resume: bool, overwrite: bool) -> Result<HashSet<String>, Error> {
    let name = path.display();
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(HashSet::new());
    };
    if meta.len() == 0 || overwrite {
        return Ok(HashSet::new());
    }
    if !resume {
        return Err(Error::input(
            format!("the output file `{name}` exists and is not empty"),
            "pass --resume to skip the jobs it already holds, or --overwrite to replace it",
        ));
    }
    let file =
        File::open(path).map_err(|e| Error::input(format!("cannot read `{name}`: {e}"), ""))?;
    let mut done = HashSet::new();
    for line in complete_lines(BufReader::new(file)) {
        let line = line.map_err(|e| Error::input(format!("cannot read `{name}`: {e}"), ""))?;
        if let Ok(value) = serde_json::from_slice::<Value>(&line)
            && let Some(id) = successful_id(&value)
        {
            done.insert(id.to_owned());
        }
    }
    Ok(done)
}

/// The lines of a reader that end in a newline, as bytes; an unterminated last line (a killed
/// run may have cut it anywhere, even inside a UTF-8 character) is left out.
fn complete_lines(mut reader: impl BufRead) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) if buf.ends_with(b"\n") => Some(Ok(buf)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    })
}

/// Open the output for writing. With `--resume`, the file is first rewritten (atomically) to keep
/// only its successful lines, so that every job ends with exactly one line once the rest is appended.
fn open_output(path: &Path, resume: bool, done: &HashSet<String>) -> Result<File, Error> {
    let name = path.display();
    let fail = |e: std::io::Error| {
        Error::input(
            format!("cannot write `{name}`: {e}"),
            "check the path given to --output",
        )
    };
    if !resume || !path.exists() {
        return File::create(path).map_err(fail);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let mut kept = tempfile::NamedTempFile::new_in(&dir).map_err(fail)?;
    let source = File::open(path).map_err(fail)?;
    for line in complete_lines(BufReader::new(source)) {
        let line = line.map_err(fail)?;
        let keep = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|v| successful_id(&v).map(|id| done.contains(id)))
            .unwrap_or(false);
        if keep {
            kept.write_all(&line).map_err(fail)?;
        }
    }
    kept.flush().map_err(fail)?;
    drop(kept.persist(path).map_err(|e| fail(e.error))?);
    OpenOptions::new().append(true).open(path).map_err(fail)
}

fn report(summary: &Summary, stop: Option<Stop>, summary_path: Option<&Path>) -> Result<(), Error> {
    let secs =
        Duration::from_millis(u64::try_from(summary.wall_ms).unwrap_or(u64::MAX)).as_secs_f64();
    let mut text = format!(
        "batch: {} jobs: {} succeeded, {} failed ({} temporary), {} retried, {} skipped (resume), {} not run; tokens in {} out {}; {:.1}s, {:.1} req/s; {} rate limited (429), {:.1} req/s admitted\n",
        summary.jobs,
        summary.succeeded,
        summary.failed,
        summary.failed_temporary,
        summary.retried,
        summary.skipped_resumed,
        summary.not_run,
        summary.input_tokens,
        summary.output_tokens,
        secs,
        summary.requests_per_sec,
        summary.rate_limited,
        summary.effective_requests_per_sec,
    );
    match stop {
        Some(Stop::Signal(s)) => {
            let _ = writeln!(
                text,
                "batch: stopped by {s}; run again with --resume to finish"
            );
        }
        Some(Stop::WallTime) => {
            text.push_str("batch: stopped at --max-wall-time; run again with --resume to finish\n");
        }
        Some(Stop::RateLimited(waited)) => {
            let _ = writeln!(
                text,
                "batch: stopped: the server refused every request for {}s (--max-rate-limit-wait); run again later with --resume to finish",
                waited.as_secs()
            );
        }
        Some(Stop::Quota(message)) => {
            let _ = writeln!(
                text,
                "error: the API refused for insufficient quota: {message}\nhint: the account behind the key is out of credit or over its spending limit: check the provider's billing page, then run again with --resume"
            );
        }
        Some(Stop::OutputFailed(why)) => {
            let _ = writeln!(
                text,
                "error: {why}\nbatch: stopped; fix the output and run again with --resume"
            );
        }
        _ => {}
    }
    diag::text(&text);
    if let Some(path) = summary_path {
        let doc = serde_json::to_vec_pretty(summary).unwrap_or_default();
        std::fs::write(path, doc).map_err(|e| {
            Error::input(
                format!("cannot write the summary `{}`: {e}", path.display()),
                "",
            )
        })?;
    }
    Ok(())
}
