//! `qwen batch submit|status|fetch|cancel|list`: hand a job file to the provider's Batch API, keep
//! a crash-safe ledger of every step, and give back results in the shape of a local batch.
//! The one place where this feature touches the rest of qwen (configuration, credentials, job
//! building, result lines) is `Session` and the calls into `job` and `output` below.

mod anthropic;
pub(crate) mod convert;
pub(crate) mod ledger;
mod outcome;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::auth;
use crate::client::batch_api::{Batch, BatchApi, BatchKind};
use crate::client::message_batches;
use crate::commands::load_config;
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::job::JobFile;
use crate::output::schema::{ProviderBatchPart, ProviderBatchStatus};
use crate::output::{self, RunMeta};
use crate::paths::PathRules;
use crate::settings::{
    BatchApiCommand, CommonSettings, FetchSettings, OutputSettings, ResultFormat, SubmitSettings,
};
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
        BatchApiCommand::List { state_dir, json } => list(state_dir.as_deref(), json, ctx),
    }
}

/// What every subcommand that talks to the provider needs: the configuration, a key, and the
/// client of the auth type's Batch API (`auth::session::batch_api` refuses Qwen OAuth, Gemini and
/// Vertex AI).
struct Session {
    api: BatchApi,
    base_url: String,
    model: crate::config::Sourced<String>,
}

fn session(common: &CommonSettings, ctx: &Context) -> Result<Session, Error> {
    let connection = &common.connection;
    let config = load_config(connection, ctx)?;
    let plan = auth::credentials(&config, ctx.env.home().as_deref())?;
    let settings = super::client_settings(
        connection,
        &config,
        ctx,
        (1, crate::client::DEFAULT_MAX_RESPONSE_BYTES),
        false,
    )?;
    let (api, base_url) = auth::session::batch_api(plan, &settings)?;
    Ok(Session {
        api,
        base_url: base_url.to_string(),
        model: config.model,
    })
}

fn state_dir(common_dir: Option<&Path>, ctx: &Context) -> Result<PathBuf, Error> {
    ledger::state_dir(common_dir, &ctx.cwd)
}

/// An existing batch: what `status`, `fetch` and `cancel` start from.
struct Existing {
    place: Place,
    session: Session,
    ledger: Ledger,
    /// Held for the whole command (`fetch`, `cancel`); `status` runs without it when another
    /// process holds it, and then does not save what it learned.
    lock: Option<ledger::LedgerLock>,
}

/// The ledger of the existing batch `name` (checked, locked unless `lock` is false and another
/// process holds it), its place, and a session for its provider.
fn open_existing(
    name: &str,
    common: &CommonSettings,
    ctx: &Context,
    lock: bool,
) -> Result<Existing, Error> {
    ledger::check_name(name)?;
    let place = Place::new(&state_dir(common.state_dir.as_deref(), ctx)?, name);
    if std::fs::symlink_metadata(&place.file).is_err() {
        // No lock file is left behind for a batch that does not exist.
        return Err(no_batch(&place, name));
    }
    let held = match place.lock() {
        Ok(held) => Some(held),
        Err(Error::InUse { .. }) if !lock => None,
        Err(e) => return Err(e),
    };
    let session = session(common, ctx)?;
    let ledger = load_existing(&place, name, &session)?;
    Ok(Existing {
        place,
        session,
        ledger,
        lock: held,
    })
}

fn load_existing(place: &Place, name: &str, session: &Session) -> Result<Ledger, Error> {
    let Some(ledger) = place.load()? else {
        return Err(no_batch(place, name));
    };
    check_base_url(&ledger, session)?;
    Ok(ledger)
}

fn no_batch(place: &Place, name: &str) -> Error {
    Error::input(
        format!("no batch named `{name}` in `{}`", place.file.display()),
        "`qwen batch list` shows the batches of this project; --state-dir points elsewhere",
    )
}

fn check_base_url(ledger: &Ledger, session: &Session) -> Result<(), Error> {
    let kind = session.api.kind();
    if ledger.api != kind {
        return Err(Error::config(
            format!(
                "batch `{}` was submitted with --auth-type {}, but this configuration uses --auth-type {}",
                ledger.name,
                ledger.api.auth_type(),
                kind.auth_type()
            ),
            "use the same --auth-type (and key) as for `qwen batch submit`",
        ));
    }
    if ledger.base_url == session.base_url {
        return Ok(());
    }
    Err(Error::config(
        format!(
            "batch `{}` was submitted to `{}`, but this configuration points at `{}`",
            ledger.name, ledger.base_url, session.base_url
        ),
        "use the same base URL (OPENAI_BASE_URL, ANTHROPIC_BASE_URL) and key as for `qwen batch submit`",
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

/// The ledger a submit continues: the one recorded under this name (checked against this run's
/// provider), else a new one from the job file.
fn ledger_for(
    args: &SubmitSettings,
    ctx: &Context,
    session: &Session,
    place: &Place,
    name: &str,
) -> Result<Ledger, Error> {
    let Some(existing) = place.load()? else {
        return new_ledger(args, ctx, session, place, name);
    };
    check_base_url(&existing, session)?;
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
    Ok(existing)
}

/// What a submit says on stderr once every part is created.
fn submitted_text(name: &str, ledger: &Ledger) -> String {
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
    summary
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
            || out.prices.is_some()
            || out.delete_remote
            || out.overwrite
            || out.output_format != ResultFormat::Json)
    {
        return Err(Error::Usage {
            message: "--output, -o, --overwrite, --prices and --delete-remote need --wait"
                .to_owned(),
            hint: Some("add --wait, or pass them to `qwen batch fetch NAME` later".to_owned()),
        });
    }
    let name = batch_name(args)?;
    let place = Place::new(&state_dir(args.common.state_dir.as_deref(), ctx)?, &name);
    // Held until the end: a second `submit` of the same name waits its turn (exit 75) instead of
    // creating a second batch.
    let _lock = place.lock()?;
    let session = session(&args.common, ctx)?;
    if args.wait {
        check_output(&args.output, &place, &args.jobs, ctx)?;
    }
    let mut ledger = ledger_for(args, ctx, &session, &place, &name)?;
    let submitted = runtime.block_on(submit_parts(&session.api, &place, &mut ledger));
    if let Err(e) = submitted {
        diag::warn(&format!(
            "batch `{name}`: stopped before every part was created; run the same command again to resume (nothing is created twice)"
        ));
        return Err(e);
    }
    if !args.common.quiet {
        diag::warn(&submitted_text(&name, &ledger));
    }
    if !args.wait {
        let mut ids = String::new();
        for p in &ledger.parts {
            ids.push_str(p.batch_id.as_deref().unwrap_or_default());
            ids.push('\n');
        }
        return print(&ids);
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
    let rules = PathRules {
        allow_outside: args.request.allow_outside_paths,
        ..PathRules::default()
    };
    let file = JobFile::open(&args.jobs, &ctx.cwd, rules, None)?;
    let validation = file.validate(&defaults, |_| true, |_| true)?;
    if validation.total == 0 {
        return Err(Error::input(
            format!("{}: no jobs", file.name),
            "nothing was uploaded",
        ));
    }
    place.fresh_dir()?;
    let kind = session.api.kind();
    if kind == BatchKind::Anthropic && args.completion_window != "24h" {
        return Err(Error::usage(
            format!(
                "--completion-window `{}`: Anthropic's Message Batches always end within 24 hours",
                args.completion_window
            ),
            Some("drop --completion-window; nothing was sent"),
        ));
    }
    let mut limits = Limits {
        max_requests: args.max_requests_per_file,
        max_bytes: args.max_file_bytes,
    };
    if kind == BatchKind::Anthropic {
        // Anthropic's own limits per batch: never more, whatever the flags say.
        limits.max_requests = limits.max_requests.min(message_batches::MAX_REQUESTS);
        limits.max_bytes = limits.max_bytes.min(message_batches::MAX_BYTES);
    }
    let base = reqwest::Url::parse(&session.base_url)
        .map_err(|e| Error::config(format!("invalid base URL: {e}"), "check OPENAI_BASE_URL"))?;
    let token_param = crate::client::params::token_param_for(&base);
    let (parts, jobs) = convert::plan(&file, &defaults, limits, &place.dir, kind, token_param)?;
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
        api: kind,
    };
    place.save(&ledger)?;
    Ok(ledger)
}

/// Upload and create every part not yet created, recording each step before and after it.
async fn submit_parts(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    if api.kind() == BatchKind::Anthropic {
        return anthropic::submit_parts(api, place, ledger).await;
    }
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
            let path = place.path(&ledger.parts[i].input);
            let file = ledger::open_state_file(&path).map_err(|e| {
                Error::input(
                    format!("cannot upload `{}`: {e}", path.display()),
                    "qwen uploads only the part files it wrote; remove the ledger and submit again",
                )
            })?;
            let id = api.upload(file, &path, &filename).await?;
            ledger.parts[i].input_file_id = Some(id);
            ledger.parts[i].upload = Step::Done;
            place.save(ledger)?;
        }
        let metadata = ledger.metadata(number);
        if ledger.parts[i].create == Step::Started
            && let Some(found) = api.find(&metadata, FIND_PAGES).await?
        {
            apply(api, &mut ledger.parts[i], &metadata, &found)?;
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
        apply(api, &mut ledger.parts[i], &metadata, &batch)?;
        ledger.parts[i].create = Step::Done;
        place.save(ledger)?;
        // The provider holds the input now. Only qwen's own part file, in a directory qwen made
        // (the ledger's names were checked when it was loaded, and the directory has qwen's
        // marker); a link there is removed itself, never what it points at.
        if place.made_by_qwen() {
            let _ = std::fs::remove_file(place.path(&ledger.parts[i].input));
        }
    }
    Ok(())
}

/// What the provider said about a part (its ids and status already checked by the client), its
/// error text through the sanitiser (it is stored and shown). A batch object whose metadata names
/// another batch or part is not this part's: the ledger is damaged (exit 42), and nothing of it is
/// kept.
fn apply(
    api: &BatchApi,
    part: &mut ledger::Part,
    wanted: &Map<String, Value>,
    batch: &Batch,
) -> Result<(), Error> {
    if batch.belongs_to(wanted) == Some(false) {
        return Err(not_ours(part.part, &batch.id));
    }
    part.batch_id = Some(batch.id.clone());
    part.status = Some(batch.status.clone());
    part.request_counts = batch.request_counts;
    part.output_file_id.clone_from(&batch.output_file_id);
    part.error_file_id.clone_from(&batch.error_file_id);
    if let Some(e) = batch.first_error() {
        part.batch_error = Some(api.scrubbed(&e));
    }
    Ok(())
}

fn not_ours(part: usize, id: &str) -> Error {
    Error::input(
        format!(
            "part {part}: the provider's batch `{id}` was not created by this submission (its metadata names another)"
        ),
        "the ledger is damaged or was not written by qwen: remove it; nothing was changed at the provider",
    )
}

/// Ask the provider about every created part that has not ended; save when anything changed.
async fn refresh(api: &BatchApi, place: Option<&Place>, ledger: &mut Ledger) -> Result<(), Error> {
    let mut changed = false;
    for i in 0..ledger.parts.len() {
        let Some(id) = ledger.parts[i].batch_id.clone() else {
            continue;
        };
        if ledger.parts[i].is_terminal() {
            continue;
        }
        let batch = api.retrieve(&id).await?;
        let metadata = ledger.metadata(ledger.parts[i].part);
        apply(api, &mut ledger.parts[i], &metadata, &batch)?;
        changed = true;
    }
    if changed && let Some(place) = place {
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
        if let Err(e) = refresh(api, Some(place), ledger).await {
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
        // A provider's counts are its own: summed without wrapping.
        total = c.total.max(p.requests).saturating_add(total);
        completed = c.completed.saturating_add(completed);
        failed = c.failed.saturating_add(failed);
    }
    let states: Vec<String> = states.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!(
        "batch `{}`: {} (parts: {}); requests {completed}/{total} completed, {failed} failed",
        ledger.name,
        states.join(", "),
        ledger.parts.len()
    )
}

/// `--output`, checked before anything is downloaded, by the rules of a local batch's: through the
/// command line's output door (a link in the workspace may not lead it out), never the
/// job file, the ledger or its lock (same path, a link or a hard link: exit 2), never a file of the
/// state directory, never something other than a regular file, and a non-empty file only with
/// `--overwrite`. Returns the file to replace: a link's target (the link stays, as `--resume`
/// writes through it), else the path.
fn check_output(
    output: &OutputSettings,
    place: &Place,
    job_file: &str,
    ctx: &Context,
) -> Result<Option<PathBuf>, Error> {
    let Some(given) = &output.output else {
        return Ok(None);
    };
    let ledger_file = place.file.to_string_lossy();
    let lock_file = place.lock_file().to_string_lossy().into_owned();
    crate::commands::refuse_same_files(
        &[
            ("--output", Some(given.as_str())),
            ("the job file", Some(job_file)),
            ("the batch's ledger", Some(&ledger_file)),
            ("the batch's lock file", Some(&lock_file)),
        ],
        ctx,
    )?;
    // The command line's output door, as for a local batch: a link in the workspace may not
    // lead the results out of it.
    crate::paths::Workspace::new(&ctx.cwd, output.allow_outside_paths)
        .output("--output", given)
        .map_err(|e| Error::input(e, "nothing was downloaded"))?;
    let path = ctx.cwd.join(given);
    let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
    if link && std::fs::metadata(&path).is_err() {
        return Err(Error::input(
            format!("the output file `{}` is a link to nothing", path.display()),
            "give --output a file, or a link to an existing one",
        ));
    }
    let target = match std::fs::metadata(&path) {
        Ok(m) if !m.is_file() => {
            return Err(Error::input(
                format!("the output file `{}` is not a regular file", path.display()),
                "give --output a file (it is written whole, then renamed into place)",
            ));
        }
        Ok(m) => {
            if !output.overwrite && m.len() > 0 {
                return Err(Error::input(
                    format!(
                        "the output file `{}` exists and is not empty",
                        path.display()
                    ),
                    "pass --overwrite to replace it",
                ));
            }
            path.canonicalize()
                .map_err(|e| Error::file("resolve", &path, e))?
        }
        Err(_) => path,
    };
    let dir = parent_of(&target);
    let inside_state = match (dir.canonicalize(), place.dir.canonicalize()) {
        (Ok(d), Ok(state)) => d.starts_with(state),
        _ => false,
    };
    if inside_state {
        return Err(Error::usage(
            format!(
                "--output `{}` is inside the batch's state directory",
                target.display()
            ),
            Some("write the results elsewhere; nothing was read or written"),
        ));
    }
    Ok(Some(target))
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn fetch_command(
    args: &FetchSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let Existing {
        place,
        session,
        mut ledger,
        lock: _lock,
    } = open_existing(&args.name, &args.common, ctx, true)?;
    check_output(&args.output, &place, &ledger.job_file, ctx)?;
    runtime.block_on(refresh(&session.api, Some(&place), &mut ledger))?;
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
    if ledger.api == BatchKind::Anthropic && out.output_format == ResultFormat::OpenaiBatch {
        return Err(Error::usage(
            "-o openai-batch writes OpenAI Batch API lines; an Anthropic batch's results are Message Batches result lines",
            Some("use -o json (qwen's result lines); nothing was downloaded"),
        ));
    }
    let target = check_output(out, place, &ledger.job_file, ctx)?;
    let prices = fetch_prices(out, target.as_deref(), ctx)?;
    runtime.block_on(download_all(&session.api, place, ledger))?;
    let written = write_results(
        session,
        place,
        ledger,
        out,
        (target.as_deref(), prices.as_deref()),
        ctx,
    )?;
    let Some(tally) = written else {
        // Standard output was closed (`| head`): a quiet end.
        return Ok(ExitStatus::Success);
    };
    if out.delete_remote {
        runtime.block_on(delete_remote(&session.api, place, ledger))?;
    }
    if !quiet {
        report(&name, &tally, &ledger.job_file);
    }
    Ok(tally.exit_status())
}

/// Convert the downloaded files into result lines, written whole to `target` (then renamed over
/// it, keeping its mode) or to stdout. `None`: stdout was closed. A part whose file cannot be
/// converted is dropped (its download removed, so that the next `fetch` downloads it again).
fn write_results(
    session: &Session,
    place: &Place,
    ledger: &mut Ledger,
    out: &OutputSettings,
    (target, prices): (Option<&Path>, Option<&crate::cost::PriceTable>),
    ctx: &Context,
) -> Result<Option<convert::Tally>, Error> {
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model: session.model.value.clone(),
        cwd: ctx.cwd.display().to_string(),
    };
    let format = match out.output_format {
        ResultFormat::Json => Format::Local,
        ResultFormat::OpenaiBatch => Format::OpenaiBatch,
    };
    let scrub = convert::Scrub {
        line: &|t: &str| session.api.scrubbed(t),
        data: &|t: &str| session.api.scrubbed_data(t),
    };
    let reading = convert::Reading {
        kind: ledger.api,
        format,
        meta: &meta,
        scrub: &scrub,
        prices,
    };
    let mut convert =
        |out: &mut LineSink<'_>| convert::results(&place.dir, &ledger.parts, &reading, out);
    let converted = match target {
        Some(path) => to_file(path, &mut convert)?,
        None => match to_stdout(&mut convert)? {
            Some(converted) => converted,
            None => return Ok(None),
        },
    };
    match converted {
        Ok(tally) => Ok(Some(tally)),
        Err(convert::Failed::Other(e)) => Err(e),
        Err(convert::Failed::File { part, rel, error }) => {
            drop_download(place, ledger, part, &rel)?;
            Err(Error::Input {
                message: error.to_string(),
                hint: Some(format!(
                    "the downloaded file was removed: `qwen batch fetch {}` downloads it again",
                    ledger.name
                )),
            })
        }
    }
}

type Converted = Result<convert::Tally, convert::Failed>;
/// Where converted lines go.
type LineSink<'a> = dyn FnMut(&[u8]) -> std::io::Result<()> + 'a;
/// A conversion into a given sink.
type Conversion<'a> = dyn FnMut(&mut LineSink<'_>) -> Converted + 'a;

/// The converted lines written whole to a new file beside `path`, then renamed over it (keeping
/// its mode, as writing into it would); nothing is replaced when the conversion fails.
fn to_file(path: &Path, convert: &mut Conversion<'_>) -> Result<Converted, Error> {
    let fail = |e: std::io::Error| {
        Error::input(
            format!("cannot write `{}`: {e}", path.display()),
            "check the path given to --output",
        )
    };
    let tmp = tempfile::NamedTempFile::new_in(parent_of(path)).map_err(fail)?;
    if let Ok(m) = std::fs::metadata(path) {
        tmp.as_file()
            .set_permissions(m.permissions())
            .map_err(fail)?;
    }
    let mut writer = std::io::BufWriter::new(tmp);
    let converted = convert(&mut |b| writer.write_all(b));
    if converted.is_ok() {
        let tmp = writer.into_inner().map_err(|e| fail(e.into_error()))?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
    }
    Ok(converted)
}

/// The converted lines on stdout by the one policy: `None` when the reader went away (a closed
/// pipe, a quiet end); any other write error is exit 1.
fn to_stdout(convert: &mut Conversion<'_>) -> Result<Option<Converted>, Error> {
    let mut closed = false;
    let mut failed: Option<std::io::Error> = None;
    let converted = convert(&mut |b| {
        if closed {
            return Ok(());
        }
        match output::write_stdout(b) {
            Err(e) if output::is_closed(&e) => {
                closed = true;
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                failed = Some(e);
                Err(kind.into())
            }
            Ok(()) => Ok(()),
        }
    });
    if let Some(e) = failed {
        return Err(output::stdout_failed(e));
    }
    if closed && converted.is_ok() {
        return Ok(None);
    }
    Ok(Some(converted))
}

/// Forget a part's downloaded file that could not be converted: removed, and the ledger says it
/// is to be downloaded again.
fn drop_download(place: &Place, ledger: &mut Ledger, part: usize, rel: &str) -> Result<(), Error> {
    let _ = std::fs::remove_file(place.path(rel));
    if let Some(p) = ledger.parts.get_mut(part) {
        if p.output.as_deref() == Some(rel) {
            p.output = None;
        }
        if p.errors.as_deref() == Some(rel) {
            p.errors = None;
        }
        p.download = Step::Pending;
    }
    place.save(ledger)
}

/// `--prices` of a fetch, read through the one door (never the results file).
fn fetch_prices(
    out: &OutputSettings,
    target: Option<&Path>,
    ctx: &Context,
) -> Result<Option<std::sync::Arc<crate::cost::PriceTable>>, Error> {
    let cost = crate::settings::CostSettings {
        prices: out.prices.clone(),
        max_budget_usd: None,
    };
    let outputs = target
        .map(|t| vec![("--output", t.to_path_buf())])
        .unwrap_or_default();
    crate::commands::price_table(&cost, outputs, ctx)
}

/// The cost part of the summary: `cost $0.0123 (price_table)`, with the jobs whose cost is
/// unknown; `cost unknown` when none is known.
fn cost_text(tally: &convert::Tally) -> String {
    let total = &tally.cost;
    let Some(usd) = total.usd else {
        return "cost unknown".to_owned();
    };
    let source = total
        .source
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut text = format!("cost ${usd:.6} ({source})");
    if total.unknown > 0 {
        let _ = write!(text, ", {} jobs of unknown cost", total.unknown);
    }
    text
}

fn report(name: &str, tally: &convert::Tally, job_file: &str) {
    diag::warn(&format!(
        "batch `{name}`: {} jobs: {} succeeded, {} failed ({} temporary, {} not run by the provider); tokens in {} out {}; {}",
        tally.jobs,
        tally.succeeded,
        tally.failed,
        tally.failed_temporary,
        tally.not_run,
        tally.input_tokens,
        tally.output_tokens,
        cost_text(tally),
    ));
    if tally.regular_rate > 0 {
        diag::warn(&format!(
            "warning: batch `{name}`: {} answers were priced at --prices' regular rates: the table has no batch prices (input_cost_per_token_batches, output_cost_per_token_batches) for their model, and Batch APIs bill about half",
            tally.regular_rate
        ));
    }
    if tally.not_run > 0 {
        diag::warn(&format!(
            "batch `{name}`: to run the rest locally: qwen --jobs {job_file} --resume --output RESULTS"
        ));
    }
    if tally.ignored > 0 {
        diag::warn(&format!(
            "batch `{name}`: {} provider lines named no job of this batch (or one already seen) and were left out",
            tally.ignored
        ));
    }
}

/// The most a part's downloaded file may hold: one line per request at most, each at most the
/// longest line read back.
fn max_download(part: &ledger::Part) -> u64 {
    part.requests
        .max(1)
        .saturating_mul(convert::MAX_LINE_BYTES as u64 + 1)
}

async fn download_all(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    if api.kind() == BatchKind::Anthropic {
        return anthropic::download_all(api, place, ledger).await;
    }
    for i in 0..ledger.parts.len() {
        let number = ledger.parts[i].part;
        let max = max_download(&ledger.parts[i]);
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
            if have.as_ref().is_some_and(|rel| {
                std::fs::symlink_metadata(place.path(rel)).is_ok_and(|m| m.is_file())
            }) {
                continue;
            }
            if ledger.parts[i].download != Step::Started {
                ledger.parts[i].download = Step::Started;
                place.save(ledger)?;
            }
            let rel = ledger::part_file(number, kind);
            let partial = place.path(&format!("{rel}.download"));
            if std::fs::symlink_metadata(&place.dir).is_err() {
                place.fresh_dir()?;
            }
            api.download(&file_id, &partial, max).await?;
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

/// The provider's batch of a part, when it carries this submission's metadata; a batch that names
/// another is refused (exit 42), and one without metadata is `None` (nothing proves it is ours).
/// Anthropic's batches carry none: one whose request count and creation time fit the part's.
async fn owned_batch(
    api: &BatchApi,
    ledger: &Ledger,
    part: &ledger::Part,
    id: &str,
) -> Result<Option<Batch>, Error> {
    let batch = api.retrieve(id).await?;
    if api.kind() == BatchKind::Anthropic {
        return Ok(anthropic::may_be_ours(ledger, part, &batch).then_some(batch));
    }
    match batch.belongs_to(&ledger.metadata(part.part)) {
        Some(true) => Ok(Some(batch)),
        Some(false) => Err(not_ours(part.part, id)),
        None => Ok(None),
    }
}

/// Delete, at the provider, only the files this submission's own batch object names (its input,
/// which this submission uploaded, and its output and error files), never an id the ledger alone
/// names.
async fn delete_remote(api: &BatchApi, place: &Place, ledger: &mut Ledger) -> Result<(), Error> {
    for i in 0..ledger.parts.len() {
        if ledger.parts[i].deleted_remote {
            continue;
        }
        let Some(batch_id) = ledger.parts[i].batch_id.clone() else {
            continue;
        };
        let Some(batch) = owned_batch(api, ledger, &ledger.parts[i], &batch_id).await? else {
            diag::warn(&format!(
                "warning: batch `{}`: part {}: not deleted at the provider: its batch `{batch_id}` carries nothing that proves this submission made it (metadata naming it; for Anthropic, the part's request count)",
                ledger.name, ledger.parts[i].part
            ));
            continue;
        };
        if api.kind() == BatchKind::Anthropic {
            // The batch holds its requests and results: deleting it deletes both.
            api.delete_message_batch(&batch.id).await?;
            ledger.parts[i].deleted_remote = true;
            place.save(ledger)?;
            continue;
        }
        for id in [
            &batch.input_file_id,
            &batch.output_file_id,
            &batch.error_file_id,
        ]
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

/// Text (or a JSON document) on stdout by the one policy: a closed pipe ends quietly, any other
/// write error is exit 1.
fn print(text: &str) -> Result<ExitStatus, Error> {
    match output::write_stdout(text.as_bytes()) {
        Ok(()) => Ok(ExitStatus::Success),
        Err(e) if output::is_closed(&e) => Ok(ExitStatus::Success),
        Err(e) => Err(output::stdout_failed(e)),
    }
}

fn status(
    name: &str,
    common: &CommonSettings,
    json: bool,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let Existing {
        place,
        session,
        mut ledger,
        lock,
    } = open_existing(name, common, ctx, false)?;
    // Without the lock (a `submit --wait` or a `fetch` holds it), what was learned is shown, not saved.
    let save = lock.as_ref().map(|_| &place);
    runtime.block_on(refresh(&session.api, save, &mut ledger))?;
    print(&status_text(&ledger, json)?)
}

fn status_json(ledger: &Ledger) -> ProviderBatchStatus<'_> {
    ProviderBatchStatus {
        name: &ledger.name,
        status: ledger.overall_status(),
        jobs: ledger.jobs,
        created_at: ledger.created_at,
        job_file: &ledger.job_file,
        parts: ledger
            .parts
            .iter()
            .map(|p| ProviderBatchPart {
                part: p.part,
                batch_id: p.batch_id.as_deref(),
                model: &p.model,
                requests: p.requests,
                status: p.status.as_deref(),
                request_counts: p.request_counts,
                downloaded: p.output.is_some() || p.errors.is_some(),
            })
            .collect(),
    }
}

/// A JSON document and a line break.
fn json_line(value: &impl serde::Serialize) -> Result<String, Error> {
    let mut t = serde_json::to_string(value)
        .map_err(|e| Error::Internal(format!("cannot encode the status: {e}")))?;
    t.push('\n');
    Ok(t)
}

fn status_text(ledger: &Ledger, json: bool) -> Result<String, Error> {
    if json {
        return json_line(&status_json(ledger));
    }
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
    Ok(t)
}

/// Cancel every part that has not ended, once the provider's batch object shows it is this
/// submission's (a ledger cannot make qwen cancel another batch).
fn cancel(
    name: &str,
    common: &CommonSettings,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let Existing {
        place,
        session,
        mut ledger,
        lock: _lock,
    } = open_existing(name, common, ctx, true)?;
    runtime.block_on(async {
        for i in 0..ledger.parts.len() {
            let Some(id) = ledger.parts[i].batch_id.clone() else {
                continue;
            };
            if ledger.parts[i].is_terminal() {
                continue;
            }
            if owned_batch(&session.api, &ledger, &ledger.parts[i], &id)
                .await?
                .is_none()
            {
                return Err(Error::input(
                    format!(
                        "part {}: the provider's batch `{id}` carries nothing that proves this submission made it (metadata naming it; for Anthropic, the part's request count)",
                        ledger.parts[i].part
                    ),
                    "cancel it yourself at the provider if it is yours; nothing was cancelled",
                ));
            }
            let batch = session.api.cancel(&id).await?;
            let metadata = ledger.metadata(ledger.parts[i].part);
            apply(&session.api, &mut ledger.parts[i], &metadata, &batch)?;
            place.save(&ledger)?;
        }
        Ok::<(), Error>(())
    })?;
    print(&status_text(&ledger, false)?)
}

/// The batches recorded in the state directory (no network). A ledger that fails its check is
/// named on stderr and left out.
fn list(dir: Option<&Path>, json: bool, ctx: &Context) -> Result<ExitStatus, Error> {
    let dir = state_dir(dir, ctx)?;
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
            if ledger::check_name(name).is_err() {
                continue;
            }
            match Place::new(&dir, name).load() {
                Ok(Some(l)) => ledgers.push(l),
                Ok(None) => {}
                Err(e) => diag::warn(&format!("warning: {e}")),
            }
        }
    }
    ledgers.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    let text = if json {
        json_line(&ledgers.iter().map(status_json).collect::<Vec<_>>())?
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
    print(&text)
}
