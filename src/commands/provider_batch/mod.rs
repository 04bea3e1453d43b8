//! `qwen batch submit|status|fetch|cancel|list`: hand a job file to the provider's Batch API, keep
//! a crash-safe ledger of every step, and give back results in the shape of a local batch.
//! The one place where this feature touches the rest of qwen (configuration, credentials, job
//! building, result lines) is `Session` and the calls into `job` and `output` below.

pub(crate) mod api;
pub(crate) mod convert;
pub(crate) mod ledger;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth::{self, AuthPlan};
use crate::commands::load_config;
use crate::config::AuthType;
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::job::JobFile;
use crate::output::{self, RunMeta};
use crate::paths::PathRules;
use crate::settings::{
    BatchApiCommand, CommonSettings, FetchSettings, OutputSettings, ResultFormat, SubmitSettings,
};
use api::{Batch, BatchApi};
use convert::{Format, Limits};
use ledger::{Ledger, Place, Step};

/// The longest wait between two polls, unless `--poll-interval` asks for more.
const MAX_POLL_DELAY: Duration = Duration::from_secs(60);
/// Pages of `GET /batches` searched for a batch whose create answer was lost.
const FIND_PAGES: usize = 50;

/// `qwen batch ...`: hand a job file to the provider's Batch API.
pub(crate) fn command(
    args: BatchApiCommand,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    match args {
        BatchApiCommand::Submit(a) => submit(&a, ctx, runtime),
        BatchApiCommand::Status { name, common, json } => {
            status(&name, &common, json, ctx, runtime)
        }
        BatchApiCommand::Fetch(a) => fetch_command(&a, ctx, runtime),
        BatchApiCommand::Cancel { name, common } => cancel(&name, &common, ctx, runtime),
        BatchApiCommand::List { state_dir, json } => {
            list(state_dir.as_deref(), json, ctx);
            Ok(ExitStatus::Success)
        }
    }
}

/// What every subcommand that talks to the provider needs: the configuration, a key (Qwen OAuth
/// refused: the Batch API needs a key), and the Files/Batches client.
struct Session {
    api: BatchApi,
    base_url: String,
    model: crate::config::Sourced<String>,
}

fn session(common: &CommonSettings, ctx: &Context) -> Result<Session, Error> {
    let connection = &common.connection;
    let config = load_config(connection, ctx)?;
    let auth_type = config.auth_type.value;
    if !matches!(auth_type, AuthType::Openai | AuthType::QwenOauth) {
        return Err(Error::Usage {
            message: format!(
                "`qwen batch` speaks OpenAI's Batch API (--auth-type openai) only, not --auth-type {} ({})",
                auth_type.as_str(),
                config.auth_type.source
            ),
            hint: Some(
                "run the jobs locally with `qwen --jobs FILE`, which works with every auth type"
                    .to_owned(),
            ),
        });
    }
    let plan = auth::credentials(&config, ctx.env.home().as_deref())?;
    let AuthPlan::ApiKey(credentials) = plan else {
        return Err(Error::auth(
            "the provider's Batch API needs an API key; Qwen OAuth cannot submit batches",
            "set OPENAI_API_KEY (and OPENAI_BASE_URL) and pass --auth-type openai, or run the jobs locally with `qwen --jobs FILE`",
        ));
    };
    if let Some(warning) = auth::plaintext_warning(&credentials.base_url) {
        diag::warn(&warning);
    }
    let api = BatchApi::new(
        &credentials.base_url,
        credentials.api_key,
        connection.connect_timeout,
        connection.idle_timeout,
        connection.retry.retries,
        connection.retry.base_delay,
        connection.headers.clone(),
    )
    .map_err(Error::Api)?;
    Ok(Session {
        api,
        base_url: credentials.base_url.to_string(),
        model: config.model,
    })
}

fn state_dir(common_dir: Option<&Path>, ctx: &Context) -> PathBuf {
    common_dir.map_or_else(|| ledger::default_state_dir(&ctx.cwd), |d| ctx.cwd.join(d))
}

/// An existing ledger, checked against where this run would send requests.
/// The ledger of the existing batch `name`, its place, and a session for its provider: what
/// `status`, `fetch` and `cancel` start from.
fn open_existing(
    name: &str,
    common: &CommonSettings,
    ctx: &Context,
) -> Result<(Place, Session, Ledger), Error> {
    ledger::check_name(name)?;
    let place = Place::new(&state_dir(common.state_dir.as_deref(), ctx), name);
    let session = session(common, ctx)?;
    let ledger = load_existing(&place, name, &session)?;
    Ok((place, session, ledger))
}

fn load_existing(place: &Place, name: &str, session: &Session) -> Result<Ledger, Error> {
    let Some(ledger) = place.load()? else {
        return Err(Error::input(
            format!("no batch named `{name}` in `{}`", place.file.display()),
            "`qwen batch list` shows the batches of this project; --state-dir points elsewhere",
        ));
    };
    check_base_url(&ledger, session)?;
    Ok(ledger)
}

fn check_base_url(ledger: &Ledger, session: &Session) -> Result<(), Error> {
    if ledger.base_url == session.base_url {
        return Ok(());
    }
    Err(Error::config(
        format!(
            "batch `{}` was submitted to `{}`, but this configuration points at `{}`",
            ledger.name, ledger.base_url, session.base_url
        ),
        "use the same OPENAI_BASE_URL (and key) as for `qwen batch submit`",
    ))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The batch name: `--name`, else the job file's name without its extension.
fn batch_name(args: &SubmitSettings) -> Result<String, Error> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => Path::new(&args.jobs)
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| args.jobs != "-")
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::input(
                    "a batch read from standard input needs a name",
                    "pass --name NAME",
                )
            })?,
    };
    ledger::check_name(&name)?;
    Ok(name)
}

fn submit(
    args: &SubmitSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let out = &args.output;
    if !args.wait
        && (out.output.is_some()
            || out.delete_remote
            || out.overwrite
            || out.output_format != ResultFormat::Json)
    {
        return Err(Error::Usage {
            message: "--output, -o, --overwrite and --delete-remote need --wait".to_owned(),
            hint: Some("add --wait, or pass them to `qwen batch fetch NAME` later".to_owned()),
        });
    }
    let name = batch_name(args)?;
    let place = Place::new(&state_dir(args.common.state_dir.as_deref(), ctx), &name);
    let session = session(&args.common, ctx)?;
    if args.wait {
        check_output(&args.output, ctx)?;
    }
    let mut ledger = if let Some(existing) = place.load()? {
        check_base_url(&existing, &session)?;
        if existing.job_file != args.jobs {
            diag::warn(&format!(
                "warning: batch `{name}` was submitted from `{}`; resuming that submission, not `{}` (use another --name for a new batch)",
                existing.job_file, args.jobs
            ));
        }
        if !args.common.quiet {
            diag::warn(&format!(
                "batch `{name}`: resuming the submission recorded in `{}`",
                place.file.display()
            ));
        }
        existing
    } else {
        new_ledger(args, ctx, &session, &place, &name)?
    };
    let submitted = runtime.block_on(submit_parts(&session.api, &place, &mut ledger));
    if let Err(e) = submitted {
        diag::warn(&format!(
            "batch `{name}`: stopped before every part was created; run the same command again to resume (nothing is created twice)"
        ));
        return Err(e);
    }
    let mut summary = format!(
        "batch `{name}`: {} jobs submitted, parts: {}",
        ledger.jobs,
        ledger.parts.len()
    );
    for p in &ledger.parts {
        let _ = write!(
            summary,
            "\n  part {} {} ({}, {} requests)",
            p.part,
            p.batch_id.as_deref().unwrap_or("?"),
            p.model,
            p.requests
        );
    }
    if !args.common.quiet {
        diag::warn(&summary);
    }
    if !args.wait {
        let mut ids = String::new();
        for p in &ledger.parts {
            ids.push_str(p.batch_id.as_deref().unwrap_or_default());
            ids.push('\n');
        }
        let _ = output::write_stdout(ids.as_bytes());
        return Ok(ExitStatus::Success);
    }
    let deadline = args.max_wall_time.map(|d| started + d);
    match runtime.block_on(wait(&session.api, &place, &mut ledger, args, deadline)) {
        WaitEnd::Done => {}
        WaitEnd::WallTime => {
            diag::warn(&format!(
                "batch `{name}`: --max-wall-time reached; the batch keeps running at the provider: `qwen batch status {name}`, then `qwen batch fetch {name}`"
            ));
            return Ok(ExitStatus::WallTime);
        }
        WaitEnd::Signal(signal) => {
            diag::warn(&format!(
                "batch `{name}`: {signal}: stopped waiting; the batch keeps running at the provider: `qwen batch fetch {name}` later"
            ));
            return Ok(Error::Interrupted { signal }.exit_status());
        }
        WaitEnd::Failed(e) => return Err(e),
    }
    fetch(
        &session,
        &place,
        &mut ledger,
        &args.output,
        ctx,
        runtime,
        args.common.quiet,
    )
}

/// Validate the job file (nothing is sent when it fails), write the parts and the ledger.
fn new_ledger(
    args: &SubmitSettings,
    ctx: &Context,
    session: &Session,
    place: &Place,
    name: &str,
) -> Result<Ledger, Error> {
    let request = &args.request;
    if !request.fallback_models.is_empty() {
        return Err(Error::usage(
            "--fallback-model does not apply to the provider's Batch API: its requests are not retried on another model",
            Some("drop --fallback-model, or run the jobs locally with `qwen --jobs FILE`"),
        ));
    }
    let defaults = super::job_defaults(request, &session.model, Vec::new(), ctx)?;
    let file = JobFile::open(&args.jobs, &ctx.cwd, PathRules::default(), None)?;
    let validation = file.validate(&defaults, |_| true, |_| true)?;
    if validation.total == 0 {
        return Err(Error::input(
            format!("{}: no jobs", file.name),
            "nothing was uploaded",
        ));
    }
    // Files of a plan that crashed before its ledger was written are stale.
    if place.dir.exists() {
        std::fs::remove_dir_all(&place.dir).map_err(|e| Error::file("clear", &place.dir, e))?;
    }
    let limits = Limits {
        max_requests: args.max_requests_per_file,
        max_bytes: args.max_file_bytes,
    };
    let base = reqwest::Url::parse(&session.base_url)
        .map_err(|e| Error::config(format!("invalid base URL: {e}"), "check OPENAI_BASE_URL"))?;
    let token_param = crate::client::params::token_param_for(&base);
    let (parts, jobs) = convert::plan(&file, &defaults, limits, &place.dir, token_param)?;
    let ledger = Ledger {
        version: 1,
        name: name.to_owned(),
        submission: uuid::Uuid::new_v4().simple().to_string(),
        created_at: now_secs(),
        base_url: session.base_url.clone(),
        job_file: file.name.clone(),
        jobs,
        completion_window: args.completion_window.clone(),
        parts,
    };
    place.save(&ledger)?;
    Ok(ledger)
}

/// Upload and create every part not yet created, recording each step before and after it.
async fn submit_parts(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    for i in 0..ledger.parts.len() {
        if ledger.parts[i].batch_id.is_some() {
            continue;
        }
        let number = ledger.parts[i].part;
        // Unique to this submission and part, so that a lost upload answer can be found again.
        let filename = format!(
            "qwen-{}-{}-part-{number}.jsonl",
            ledger.name, ledger.submission
        );
        if ledger.parts[i].input_file_id.is_none() && ledger.parts[i].upload == Step::Started {
            ledger.parts[i].input_file_id = api.find_file(&filename, FIND_PAGES).await?;
        }
        if ledger.parts[i].input_file_id.is_none() {
            ledger.parts[i].upload = Step::Started;
            place.save(ledger)?;
            let id = api
                .upload(&place.path(&ledger.parts[i].input), &filename)
                .await?;
            ledger.parts[i].input_file_id = Some(id);
            ledger.parts[i].upload = Step::Done;
            place.save(ledger)?;
        }
        let metadata = ledger.metadata(number);
        if ledger.parts[i].create == Step::Started
            && let Some(found) = api.find(&metadata, FIND_PAGES).await?
        {
            apply(api, &mut ledger.parts[i], &found);
            ledger.parts[i].create = Step::Done;
            place.save(ledger)?;
            continue;
        }
        ledger.parts[i].create = Step::Started;
        place.save(ledger)?;
        let input_file_id = ledger.parts[i].input_file_id.clone().unwrap_or_default();
        let batch = api
            .create(&input_file_id, &ledger.completion_window, &metadata)
            .await?;
        apply(api, &mut ledger.parts[i], &batch);
        ledger.parts[i].create = Step::Done;
        place.save(ledger)?;
        // The provider holds the input now.
        let _ = std::fs::remove_file(place.path(&ledger.parts[i].input));
    }
    Ok(())
}

/// Record what the provider says about a part's batch.
/// What the provider said about a part, its error text through the sanitiser (it is stored and
/// shown).
fn apply(api: &BatchApi, part: &mut ledger::Part, batch: &Batch) {
    part.batch_id = Some(batch.id.clone());
    part.status = Some(batch.status.clone());
    part.request_counts = batch.request_counts;
    part.output_file_id.clone_from(&batch.output_file_id);
    part.error_file_id.clone_from(&batch.error_file_id);
    if let Some(e) = batch.first_error() {
        part.batch_error = Some(api.scrubbed(&e));
    }
}

/// Ask the provider about every created part that has not ended; save when anything changed.
async fn refresh(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    let mut changed = false;
    for part in &mut ledger.parts {
        let Some(id) = part.batch_id.clone() else {
            continue;
        };
        if part.is_terminal() {
            continue;
        }
        let batch = api.retrieve(&id).await?;
        apply(api, part, &batch);
        changed = true;
    }
    if changed {
        place.save(ledger)?;
    }
    Ok(())
}

enum WaitEnd {
    Done,
    WallTime,
    Signal(crate::signals::Signal),
    Failed(Error),
}

/// Poll until every part has ended: the delay starts at `--poll-interval` and grows by half each
/// poll up to a minute; a progress line on stderr whenever the counts change.
async fn wait(
    api: &BatchApi,
    place: &Place,
    ledger: &mut Ledger,
    args: &SubmitSettings,
    deadline: Option<Instant>,
) -> WaitEnd {
    let mut signals = crate::signals::Listener::new();
    let mut delay = args.poll_interval;
    let cap = MAX_POLL_DELAY.max(args.poll_interval);
    let mut last = String::new();
    loop {
        if let Err(e) = refresh(api, place, ledger).await {
            return WaitEnd::Failed(e);
        }
        let line = progress_line(ledger);
        if line != last && !args.common.quiet {
            diag::warn(&line);
        }
        last = line;
        if ledger.parts.iter().all(ledger::Part::is_terminal) {
            return WaitEnd::Done;
        }
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let until = tokio::time::Instant::from_std(deadline.unwrap_or(far));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tokio::time::sleep_until(until) => return WaitEnd::WallTime,
            signal = signals.next() => return WaitEnd::Signal(signal),
        }
        delay = delay.mul_f64(1.5).min(cap);
    }
}

/// `batch `n`: in_progress 2, completed 1 (3 parts); requests 120/300 completed, 4 failed`.
fn progress_line(ledger: &Ledger) -> String {
    let mut states: Vec<(String, usize)> = Vec::new();
    let (mut total, mut completed, mut failed) = (0, 0, 0);
    for p in &ledger.parts {
        let s = p.status.clone().unwrap_or_else(|| "not_created".into());
        match states.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => states.push((s, 1)),
        }
        let c = p.request_counts.unwrap_or_default();
        total += c.total.max(p.requests);
        completed += c.completed;
        failed += c.failed;
    }
    let states: Vec<String> = states.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!(
        "batch `{}`: {} (parts: {}); requests {completed}/{total} completed, {failed} failed",
        ledger.name,
        states.join(", "),
        ledger.parts.len()
    )
}

fn check_output(output: &OutputSettings, ctx: &Context) -> Result<(), Error> {
    let Some(path) = &output.output else {
        return Ok(());
    };
    let path = ctx.cwd.join(path);
    if !output.overwrite && std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
        return Err(Error::input(
            format!(
                "the output file `{}` exists and is not empty",
                path.display()
            ),
            "pass --overwrite to replace it",
        ));
    }
    Ok(())
}

fn fetch_command(
    args: &FetchSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let (place, session, mut ledger) = open_existing(&args.name, &args.common, ctx)?;
    check_output(&args.output, ctx)?;
    runtime.block_on(refresh(&session.api, &place, &mut ledger))?;
    fetch(
        &session,
        &place,
        &mut ledger,
        &args.output,
        ctx,
        runtime,
        args.common.quiet,
    )
}

/// Download what is not downloaded yet (to a temporary name, then renamed), convert, write the
/// results, and with `--delete-remote` delete the provider's files.
fn fetch(
    session: &Session,
    place: &Place,
    ledger: &mut Ledger,
    out: &OutputSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    quiet: bool,
) -> Result<ExitStatus, Error> {
    let name = ledger.name.clone();
    if ledger.parts.iter().any(|p| p.batch_id.is_none()) {
        return Err(Error::input(
            format!("batch `{name}` was not fully submitted"),
            format!(
                "run `qwen batch submit {} --name {name}` again to finish it",
                ledger.job_file
            ),
        ));
    }
    if !ledger.parts.iter().all(ledger::Part::is_terminal) {
        diag::warn(&format!(
            "{}\nbatch `{name}` has not finished; fetch it later (`qwen batch status {name}`)",
            progress_line(ledger)
        ));
        return Ok(ExitStatus::TempFail);
    }
    check_output(out, ctx)?;
    runtime.block_on(download_all(&session.api, place, ledger))?;
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model: session.model.value.clone(),
        cwd: ctx.cwd.display().to_string(),
    };
    let format = match out.output_format {
        ResultFormat::Json => Format::Local,
        ResultFormat::OpenaiBatch => Format::OpenaiBatch,
    };
    let scrub = |t: &str| session.api.scrubbed(t);
    let tally = if let Some(path) = &out.output {
        let path = ctx.cwd.join(path);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        let fail = |e: std::io::Error| {
            Error::input(
                format!("cannot write `{}`: {e}", path.display()),
                "check the path given to --output",
            )
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(fail)?;
        let mut writer = std::io::BufWriter::new(tmp);
        let tally = convert::results(&place.dir, &ledger.parts, format, &meta, &scrub, &mut |b| {
            writer.write_all(b)
        })?;
        let tmp = writer.into_inner().map_err(|e| fail(e.into_error()))?;
        tmp.persist(&path).map_err(|e| fail(e.error))?;
        tally
    } else {
        let mut closed = false;
        let tally = convert::results(&place.dir, &ledger.parts, format, &meta, &scrub, &mut |b| {
            if !closed && output::write_stdout(b).is_err() {
                closed = true;
            }
            Ok(())
        })?;
        if closed {
            return Ok(ExitStatus::Success);
        }
        tally
    };
    if out.delete_remote {
        runtime.block_on(delete_remote(&session.api, place, ledger))?;
    }
    if !quiet {
        diag::warn(&format!(
            "batch `{name}`: {} jobs: {} succeeded, {} failed ({} temporary, {} not run by the provider); tokens in {} out {}",
            tally.jobs,
            tally.succeeded,
            tally.failed,
            tally.failed_temporary,
            tally.not_run,
            tally.input_tokens,
            tally.output_tokens,
        ));
        if tally.not_run > 0 {
            diag::warn(&format!(
                "batch `{name}`: to run the rest locally: qwen --jobs {} --resume --output RESULTS",
                ledger.job_file
            ));
        }
        if tally.ignored > 0 {
            diag::warn(&format!(
                "batch `{name}`: {} provider lines named no job of this batch (or one already seen) and were left out",
                tally.ignored
            ));
        }
    }
    Ok(tally.exit_status())
}

async fn download_all(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    for i in 0..ledger.parts.len() {
        let number = ledger.parts[i].part;
        let wanted = [
            (ledger.parts[i].output_file_id.clone(), "output", true),
            (ledger.parts[i].error_file_id.clone(), "errors", false),
        ];
        for (file_id, kind, is_output) in wanted {
            let Some(file_id) = file_id else { continue };
            let have = if is_output {
                &ledger.parts[i].output
            } else {
                &ledger.parts[i].errors
            };
            if have.as_ref().is_some_and(|rel| place.path(rel).is_file()) {
                continue;
            }
            if ledger.parts[i].download != Step::Started {
                ledger.parts[i].download = Step::Started;
                place.save(ledger)?;
            }
            let rel = format!("part-{number:04}.{kind}.jsonl");
            let partial = place.path(&format!("{rel}.download"));
            crate::fsutil::create_private_dir_all(&place.dir)
                .map_err(|e| Error::file("create", &place.dir, e))?;
            api.download(&file_id, &partial).await?;
            std::fs::rename(&partial, place.path(&rel))
                .map_err(|e| Error::file("rename", &partial, e))?;
            if is_output {
                ledger.parts[i].output = Some(rel);
            } else {
                ledger.parts[i].errors = Some(rel);
            }
            place.save(ledger)?;
        }
        if ledger.parts[i].download != Step::Done {
            ledger.parts[i].download = Step::Done;
            place.save(ledger)?;
        }
    }
    Ok(())
}

async fn delete_remote(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    for i in 0..ledger.parts.len() {
        if ledger.parts[i].deleted_remote {
            continue;
        }
        let p = &ledger.parts[i];
        for id in [&p.input_file_id, &p.output_file_id, &p.error_file_id]
            .into_iter()
            .flatten()
        {
            api.delete_file(id).await?;
        }
        ledger.parts[i].deleted_remote = true;
        place.save(ledger)?;
    }
    Ok(())
}

fn status(
    name: &str,
    common: &CommonSettings,
    json: bool,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let (place, session, mut ledger) = open_existing(name, common, ctx)?;
    runtime.block_on(refresh(&session.api, &place, &mut ledger))?;
    print_status(&ledger, json);
    Ok(ExitStatus::Success)
}

fn status_json(ledger: &Ledger) -> Value {
    json!({
        "name": ledger.name,
        "status": ledger.overall_status(),
        "jobs": ledger.jobs,
        "created_at": ledger.created_at,
        "job_file": ledger.job_file,
        "parts": ledger.parts.iter().map(|p| json!({
            "part": p.part,
            "batch_id": p.batch_id,
            "model": p.model,
            "requests": p.requests,
            "status": p.status,
            "request_counts": p.request_counts,
            "downloaded": p.output.is_some() || p.errors.is_some(),
        })).collect::<Vec<_>>(),
    })
}

fn print_status(ledger: &Ledger, json: bool) {
    let text = if json {
        let mut t = status_json(ledger).to_string();
        t.push('\n');
        t
    } else {
        let mut t = format!(
            "{}: {} (jobs: {}, parts: {})\n",
            ledger.name,
            ledger.overall_status(),
            ledger.jobs,
            ledger.parts.len()
        );
        for p in &ledger.parts {
            let c = p.request_counts.unwrap_or_default();
            let _ = writeln!(
                t,
                "  part {}  {}  {}  {}  {}/{} completed, {} failed",
                p.part,
                p.batch_id.as_deref().unwrap_or("-"),
                p.model,
                p.status.as_deref().unwrap_or("not_created"),
                c.completed,
                c.total.max(p.requests),
                c.failed
            );
        }
        t
    };
    let _ = output::write_stdout(text.as_bytes());
}

fn cancel(
    name: &str,
    common: &CommonSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let (place, session, mut ledger) = open_existing(name, common, ctx)?;
    runtime.block_on(async {
        for i in 0..ledger.parts.len() {
            let Some(id) = ledger.parts[i].batch_id.clone() else {
                continue;
            };
            if ledger.parts[i].is_terminal() {
                continue;
            }
            let batch = session.api.cancel(&id).await?;
            apply(&session.api, &mut ledger.parts[i], &batch);
            place.save(&ledger)?;
        }
        Ok::<(), Error>(())
    })?;
    print_status(&ledger, false);
    Ok(ExitStatus::Success)
}

/// The batches recorded in the state directory (no network).
fn list(dir: Option<&Path>, json: bool, ctx: &Context) {
    let dir = state_dir(dir, ctx);
    let mut ledgers = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if let Ok(Some(l)) = Place::new(&dir, name).load() {
                ledgers.push(l);
            }
        }
    }
    ledgers.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    let text = if json {
        let mut t = Value::Array(ledgers.iter().map(status_json).collect()).to_string();
        t.push('\n');
        t
    } else {
        let mut t = String::new();
        for l in &ledgers {
            let _ = writeln!(
                t,
                "{}\t{}\t{} jobs\t{} parts\t{}",
                l.name,
                l.overall_status(),
                l.jobs,
                l.parts.len(),
                l.job_file
            );
        }
        t
    };
    let _ = output::write_stdout(text.as_bytes());
}
