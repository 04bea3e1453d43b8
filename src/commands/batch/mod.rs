//! Batch runs: many jobs from a file, bounded concurrency, one result line per finished job,
//! resumable, sharded, and honest about what did not finish.
//!
//! `plan` reads and validates everything first; `dispatch` runs the jobs; `results` writes (and
//! for `--resume` reads back) the result lines; `summary` reports and decides the exit status.

mod dispatch;
mod plan;
mod results;
mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::run::append_step_summary;
use super::{finish_trace, load_config, one_hook, price_table, refuse_same_files};
use crate::auth::{self, session};
use crate::client::Pacers;
use crate::client::pacing::PacingSettings;
use crate::config::ResolvedConfig;
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::job::{Job, declared_id};
use crate::otel::{Server, Span, Tracing};
use crate::output::{RunMeta, github};
use crate::progress::Progress;
use crate::schema::SharedMode;
use crate::settings::BatchSettings;
use dispatch::{Dispatcher, JobMeta, JobOutcome, Limits, Shared, Stop};
use plan::Plan;
use results::Sink;
use summary::Summary;

/// The first shared pause after a 429 that names no wait: `--retry-base-delay`, at most this
/// (a pause stops the whole batch, so it starts short and doubles while 429s continue).
const SHARED_BACKOFF_CAP: Duration = Duration::from_millis(250);
/// At most this many failed jobs become GitHub `::error::` annotations (GitHub shows only a few).
const MAX_ANNOTATIONS: u64 = 10;

/// `qwen --jobs FILE`: run a job file.
pub(crate) fn command(
    args: &BatchSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let batch = args;
    // OpenTelemetry: the batch's span, a child of the CI's `TRACEPARENT` when there is one.
    let tracing = Tracing::from_env(&ctx.env);
    let batch_span = tracing.tracer().map(|t| t.root("qwen batch"));
    refuse_same_files_of(args, ctx)?;
    let outputs = [("--output", &batch.output), ("--summary", &batch.summary)]
        .into_iter()
        .filter_map(|(flag, path)| Some((flag, ctx.cwd.join(path.as_ref()?))))
        .collect();
    let prices = price_table(&args.cost, outputs, ctx)?;
    let config = load_config(&args.connection, ctx)?;
    let concurrency = batch.concurrency as usize;
    let (mut session, pacers) = connect_paced(args, &config, ctx, runtime)?;
    let mut plan = plan_of(args, &config, &session, ctx, runtime)?;
    let mut sink = Sink::open(plan.output.take(), batch.resume, &plan.done)?;

    let mut summary = Summary {
        jobs: plan.validation.in_scope,
        token_budget: batch.max_total_tokens,
        cost_budget_usd: batch.cost.max_budget_usd,
        ..Summary::default()
    };
    let in_github = github::is_github_actions(&ctx.env);
    // A bar needs a terminal that understands cursor movement; `TERM=dumb` gets plain lines.
    let live_bar = ctx.terminal.stderr && ctx.env.get("TERM") != Some("dumb");
    let progress = Progress::new(
        plan.validation.pending,
        live_bar,
        batch.quiet,
        batch.progress_interval,
    );
    if let Some(hook) = event_hook(&progress, &tracing, &config) {
        session.client = session.client.with_on_event(hook);
    }
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model: config.model.value.clone(),
        cwd: ctx.cwd.display().to_string(),
    };
    let mut jobs = plan.file.jobs()?;
    let mut next_job = || next_job(&plan, &mut jobs);
    let mut on_done = |outcome: JobOutcome| {
        // A job counts only once its line is written: a line lost to a full disk is not a success.
        results::write_result(&mut sink, &meta, &outcome, args.format)?;
        summary.count(&outcome);
        if in_github
            && summary.failed <= MAX_ANNOTATIONS
            && let Some(Err(f)) = &outcome.result
        {
            let title = format!("qwen job {}", outcome.job.id);
            diag::raw(&github::error_command(Some(&title), &f.error.to_string()));
        }
        progress.finished(outcome.result.as_ref().is_some_and(Result::is_ok));
        Ok(())
    };
    let limits = Limits {
        concurrency,
        max_wall_time: batch.max_wall_time,
        shutdown_grace: batch.shutdown_grace,
        max_total_tokens: batch.max_total_tokens,
        max_rate_limit_wait: batch.max_rate_limit_wait,
        max_budget_usd: batch.cost.max_budget_usd,
    };
    let shared = Shared {
        mode: Arc::new(SharedMode::default()),
        schema_retries: args.request.schema_retries,
        prices,
        tracing: tracing.clone(),
        batch_span: batch_span.as_ref().map(Span::context),
    };
    let dispatcher = Dispatcher::new(
        &session.client,
        &pacers,
        limits,
        shared,
        &progress,
        session.oauth.as_mut(),
    );
    let stop = runtime.block_on(dispatcher.run(&mut next_job, &mut on_done));
    progress.clear();
    let summary_path = batch.summary.as_ref().map(|s| ctx.cwd.join(s));
    let skipped = plan.validation.in_scope - plan.validation.pending;
    summary.finish(skipped, started.elapsed());
    summary.paced(&pacers);
    let tally = progress.retry_tally();
    summary.retry_waits = tally.waits();
    summary.rate_limit_wait_ms = tally.rate_limit_wait_ms();
    summary.fallbacks = tally.fallbacks();
    let status = finish(&mut summary, stop.as_ref(), summary_path.as_deref(), ctx);
    if let (Some(tracer), Some(span)) = (tracing.tracer(), batch_span) {
        end_batch_trace(tracer, span, &summary, &status, runtime);
    }
    status
}

/// The client's event hook in a batch: every wait before another try reaches the progress line
/// and the summary; the trace records each attempt.
fn event_hook(
    progress: &Progress,
    tracing: &Tracing,
    config: &ResolvedConfig,
) -> Option<crate::client::OnEvent> {
    let tally = progress.retry_tally();
    let mut hooks: Vec<crate::client::OnEvent> = vec![Arc::new(move |event| {
        if let crate::client::ClientEvent::Retry(retry) = event {
            tally.hear(retry);
        }
    })];
    if let Some(tracer) = tracing.tracer() {
        tracer.set_server(Server::of(&config.base_url.value));
        hooks.push(Arc::new(tracer.attempt_hook()));
    }
    one_hook(hooks)
}

/// The batch's span: its figures and how it ended; then the spans left are sent.
fn end_batch_trace(
    tracer: &crate::otel::Tracer,
    mut span: Span,
    summary: &Summary,
    status: &Result<ExitStatus, Error>,
    runtime: &tokio::runtime::Runtime,
) {
    span.set("qwen.jobs", summary.jobs);
    span.set("qwen.succeeded", summary.succeeded);
    span.set("qwen.failed", summary.failed);
    span.set("gen_ai.usage.input_tokens", summary.input_tokens);
    span.set("gen_ai.usage.output_tokens", summary.output_tokens);
    if let Some(usd) = summary.total_cost_usd {
        span.set("qwen.cost_usd", usd);
    }
    finish_trace(tracer, span, status, runtime);
}

/// The plan (`--jobs -`: standard input is read first, and a signal while waiting for it is an
/// interruption), with the job file's secret headers masked under GitHub Actions and scrubbed
/// from everything the client shows.
fn plan_of(
    args: &BatchSettings,
    config: &ResolvedConfig,
    session: &session::Session,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<Plan, Error> {
    let spooled = if args.jobs == "-" {
        Some(super::interruptible(runtime, crate::job::spool_stdin)?)
    } else {
        None
    };
    let plan = plan::build(args, config, spooled, ctx)?;
    if github::is_github_actions(&ctx.env) {
        for value in &plan.validation.secret_headers {
            diag::raw(&github::mask_command(value));
        }
    }
    session
        .client
        .add_secrets(plan.validation.secret_headers.iter().cloned());
    Ok(plan)
}

/// Any two of the files a batch reads and writes that are one file are refused before anything
/// is touched.
fn refuse_same_files_of(batch: &BatchSettings, ctx: &Context) -> Result<(), Error> {
    refuse_same_files(
        &[
            ("--jobs", Some(batch.jobs.as_str())),
            ("--json-schema", batch.request.schema_file()),
            ("--extra-body", batch.request.extra_body_file()),
            ("--prices", batch.cost.prices.as_deref()),
            ("--output", batch.output.as_deref()),
            ("--summary", batch.summary.as_deref()),
            // Without --output the lines go to stdout: `>> jobs.jsonl` would feed them back as jobs.
            (
                "standard output",
                batch.output.is_none().then_some("/dev/stdout"),
            ),
        ],
        ctx,
    )
}

/// The session, its client paced to the server's rate limits (shared by every job).
fn connect_paced(
    args: &BatchSettings,
    config: &ResolvedConfig,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<(session::Session, Arc<Pacers>), Error> {
    let batch = args;
    let concurrency = batch.concurrency as usize;
    let credentials = auth::credentials(config, ctx.env.home().as_deref())?;
    let settings = super::client_settings(
        &args.connection,
        config,
        ctx,
        (concurrency, args.max_response_bytes),
        args.request.allow_outside_paths,
    )?;
    let mut session = session::connect(credentials, settings, batch.rpm, &ctx.env, runtime)?;
    let pacers = Arc::new(Pacers::new(PacingSettings {
        max_concurrency: concurrency,
        max_rate_limit_wait: batch.max_rate_limit_wait,
        tpm: batch.tpm,
        base_backoff: args.connection.retry.base_delay.min(SHARED_BACKOFF_CAP),
        max_backoff: Duration::from_secs(30),
    }));
    session.client = session.client.with_pacers(Arc::clone(&pacers));
    Ok((session, pacers))
}

/// The next job of this shard that is not done yet.
fn next_job(
    plan: &Plan,
    jobs: &mut impl Iterator<Item = crate::job::RawJob>,
) -> Option<Result<Job, (JobMeta, String)>> {
    for raw in jobs.by_ref() {
        if !plan.in_shard(raw.index) {
            continue;
        }
        let index = raw.index;
        let id = declared_id(&raw.value, index);
        match plan.file.build(raw.value, index, &plan.defaults) {
            Ok(job) if plan.done.contains(&job.id) => {}
            Ok(job) => return Some(Ok(job)),
            Err(_) if plan.done.contains(&id) => {}
            Err(reason) => {
                let meta = JobMeta {
                    id,
                    index,
                    model: plan.defaults.model.clone(),
                };
                return Some(Err((meta, reason)));
            }
        }
    }
    None
}

/// Count, report and decide the exit status.
fn finish(
    summary: &mut Summary,
    stop: Option<&Stop>,
    summary_path: Option<&std::path::Path>,
    ctx: &Context,
) -> Result<ExitStatus, Error> {
    let status = summary::outcome(stop, summary);
    if stop == Some(&Stop::OutputClosed) {
        return Ok(status);
    }
    summary.exit_code = status.code();
    let in_github = github::is_github_actions(&ctx.env);
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
            rate_limited: summary.rate_limited,
            failures: &summary.failures,
            cost: summary.cost,
            rate_limit_wait_ms: summary.rate_limit_wait_ms,
        };
        append_step_summary(&path, &github::batch_summary(&view));
    }
    summary::report(summary, stop, summary_path)?;
    Ok(status)
}
