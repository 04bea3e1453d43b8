//! The dispatcher: keeps at most `--concurrency` jobs in flight, hands every finished one to the
//! single writer, and stops on a signal, the wall-time limit or a closed output. One method per
//! event; the loop in [`Dispatcher::run`] only waits for the next one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant as Deadline;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::ask::{self, Answer, AskError, AskFailure, Request};
use crate::auth::session::OauthSession;
use crate::budget::TokenBudget;
use crate::client::TraceContext;
use crate::client::{ApiError, ChatClient, Pacers};
use crate::commands::{trace_answer, trace_failure};
use crate::cost::{Cost, CostBudget, Gate, PriceTable};
use crate::diag;
use crate::job::Job;
use crate::otel::{Span, Tracing};
use crate::progress::Progress;
use crate::schema::SharedMode;
use crate::signals::{Listener, Signal};

/// Who a job is, for its result line.
#[derive(Debug, Clone)]
pub(crate) struct JobMeta {
    pub(crate) id: String,
    pub(crate) index: usize,
    pub(crate) model: String,
}

/// What became of one job.
pub(crate) struct JobOutcome {
    pub(crate) job: JobMeta,
    /// `None`: cancelled before it finished (no line is written).
    pub(crate) result: Option<Result<Answer, AskFailure>>,
    pub(crate) elapsed: Duration,
}

impl JobOutcome {
    /// A job that failed before it was sent (it could not be built).
    pub(crate) fn invalid(job: JobMeta, reason: &str) -> Self {
        Self::failed(
            job,
            ApiError::InvalidResponse(format!("invalid job: {reason}")),
            0,
        )
    }

    fn failed(job: JobMeta, error: ApiError, attempts: u32) -> Self {
        let mut failure = AskFailure::without_request(error, &job.model);
        failure.attempts = attempts;
        Self {
            job,
            result: Some(Err(failure)),
            elapsed: Duration::ZERO,
        }
    }

    /// What the job cost, answered or refused, when known.
    pub(crate) fn cost(&self) -> Cost {
        match &self.result {
            Some(Ok(a)) => a.cost,
            Some(Err(f)) => f.cost,
            None => Cost::default(),
        }
    }

    /// The tokens the job reported, answered or refused (a schema failure's answers count too).
    pub(crate) fn usage(&self) -> Option<crate::client::Usage> {
        match &self.result {
            Some(Ok(a)) => a.completion.usage,
            Some(Err(f)) => f.usage,
            None => None,
        }
    }
}

/// Why a batch stopped before its last job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Signal(Signal),
    WallTime,
    /// `--max-total-tokens` reached: no new job was dispatched.
    TokenBudget,
    /// `--max-budget-usd`: the next job could have gone over it; no new job was dispatched.
    CostBudget,
    /// `--max-budget-usd` without a cost for an answer (the server reported none, `--prices`
    /// has no entry for the model): the budget cannot be kept; a usage error.
    CostUnknown(String),
    /// The server refused for longer than `--max-rate-limit-wait`: exit 75, resumable.
    RateLimited(Duration),
    /// The account is out of quota (billing): every job would fail the same way; exit 1.
    Quota(String),
    /// stdout was closed (`| head`): a quiet end.
    OutputClosed,
    /// The results file could not be written: the batch fails.
    OutputFailed(String),
}

/// The next job to run: a job, a job that could not be built, or `None` at the end.
pub(crate) type NextJob<'a> = dyn FnMut() -> Option<Result<Job, (JobMeta, String)>> + 'a;
/// The single writer: gets every finished job; an `Err` stops the batch.
pub(crate) type OnDone<'a> = dyn FnMut(JobOutcome) -> Result<(), Stop> + 'a;

/// The limits a dispatcher works within.
pub(crate) struct Limits {
    pub(crate) concurrency: usize,
    pub(crate) max_wall_time: Option<Duration>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_total_tokens: Option<u64>,
    pub(crate) max_rate_limit_wait: Duration,
    pub(crate) max_budget_usd: Option<f64>,
}

/// What every job of the run shares: the `response_format` degradation and the repair-turn limit.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) mode: Arc<SharedMode>,
    pub(crate) schema_retries: u32,
    /// `--prices`.
    pub(crate) prices: Option<Arc<PriceTable>>,
    /// OpenTelemetry, and the batch's span that every job's span goes under.
    pub(crate) tracing: Tracing,
    pub(crate) batch_span: Option<TraceContext>,
}

pub(crate) struct Dispatcher<'a> {
    /// One copy of the client that every job's task shares: a clone per job would copy its
    /// settings (URLs, headers) into each of the thousand tasks in flight. Its key is the
    /// caller's (clones share it), so an OAuth refresh through it reaches every job.
    client: Arc<ChatClient>,
    pacers: &'a Pacers,
    limits: Limits,
    shared: Shared,
    budget: TokenBudget,
    budget_hit: bool,
    cost_budget: CostBudget,
    cost_budget_hit: bool,
    /// A job taken from the file while the cost budget waited for a first price: it goes next.
    held: Option<Job>,
    progress: &'a Progress,
    oauth: Option<&'a mut OauthSession>,
    set: JoinSet<JobOutcome>,
    in_flight: HashMap<Id, JobMeta>,
    hard_cancel: CancellationToken,
    stop: Option<Stop>,
    dispatching: bool,
    wall_deadline: Deadline,
    grace_deadline: Deadline,
}

/// A deadline that never comes.
fn far_future() -> Deadline {
    Deadline::now() + Duration::from_secs(86_400 * 365)
}

impl<'a> Dispatcher<'a> {
    pub(crate) fn new(
        client: &'a ChatClient,
        pacers: &'a Pacers,
        limits: Limits,
        shared: Shared,
        progress: &'a Progress,
        oauth: Option<&'a mut OauthSession>,
    ) -> Self {
        let wall_deadline = limits
            .max_wall_time
            .map_or_else(far_future, |d| Deadline::now() + d);
        Self {
            client: Arc::new(client.clone()),
            pacers,
            budget: TokenBudget::new(limits.max_total_tokens),
            budget_hit: false,
            cost_budget: CostBudget::new(limits.max_budget_usd),
            cost_budget_hit: false,
            held: None,
            limits,
            shared,
            progress,
            oauth,
            set: JoinSet::new(),
            in_flight: HashMap::new(),
            hard_cancel: CancellationToken::new(),
            stop: None,
            dispatching: true,
            wall_deadline,
            grace_deadline: far_future(),
        }
    }

    /// Run every job `next_job` yields; returns why the batch stopped early, if it did.
    pub(crate) async fn run(
        mut self,
        next_job: &mut NextJob<'_>,
        on_done: &mut OnDone<'_>,
    ) -> Option<Stop> {
        let mut signals = Listener::new();
        let mut tick = tokio::time::interval(self.progress.tick_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.fill(next_job, on_done).await;
            self.progress.in_flight(self.set.len());
            if self.set.is_empty() {
                break;
            }
            tokio::select! {
                joined = self.set.join_next_with_id() => self.on_joined(joined, on_done),
                signal = signals.next() => self.on_signal(signal),
                () = tokio::time::sleep_until(self.wall_deadline), if self.stop.is_none() => {
                    self.on_wall_time();
                }
                () = tokio::time::sleep_until(self.grace_deadline), if !self.hard_cancel.is_cancelled() => {
                    self.hard_cancel.cancel();
                }
                _ = tick.tick() => {
                    self.progress.held_back(self.pacers.held_back());
                    self.progress.tick();
                }
            }
        }
        if self.stop.is_none() && self.budget_hit {
            self.stop = Some(Stop::TokenBudget);
        }
        if self.stop.is_none() && self.cost_budget_hit {
            self.stop = Some(Stop::CostBudget);
        }
        self.stop
    }

    /// Stop dispatching, and cancel what is in flight.
    fn halt(&mut self, why: Stop) {
        self.stop = Some(why);
        self.dispatching = false;
        self.hard_cancel.cancel();
    }

    /// Start jobs until `concurrency` are in flight or there are no more.
    async fn fill(&mut self, next_job: &mut NextJob<'_>, on_done: &mut OnDone<'_>) {
        while self.dispatching && self.set.len() < self.limits.concurrency {
            let next = match self.held.take() {
                Some(job) => Some(Ok(job)),
                None => next_job(),
            };
            match next {
                None => self.dispatching = false,
                Some(_) if self.budget.exhausted() => self.on_budget_spent(),
                Some(Err((meta, reason))) => {
                    if let Err(why) = on_done(JobOutcome::invalid(meta, &reason)) {
                        self.halt(why);
                    }
                }
                Some(Ok(job)) => match self.cost_gate(&job) {
                    Gate::Go => self.spawn(job).await,
                    Gate::Wait => {
                        self.held = Some(job);
                        return;
                    }
                    Gate::Spent => self.on_cost_budget_spent(),
                },
            }
        }
    }

    /// Whether `--max-budget-usd` lets `job` start now (see [`CostBudget::gate`]); the job's own
    /// worst case from `--prices` counts when the table prices its model and it has a token limit.
    fn cost_gate(&self, job: &Job) -> Gate {
        if self.cost_budget.limit().is_none() {
            return Gate::Go;
        }
        let estimate = self
            .shared
            .prices
            .as_deref()
            .and_then(|t| t.get(&job.model))
            .and_then(|p| crate::cost::request_estimate(p, &job.body));
        self.cost_budget.gate(self.set.len(), estimate)
    }

    /// `--max-budget-usd` could be exceeded by the next job: it stays without a line
    /// (`--resume` runs it later), and no new job starts.
    fn on_cost_budget_spent(&mut self) {
        self.dispatching = false;
        self.cost_budget_hit = true;
        diag::warn(&format!(
            "--max-budget-usd reached (${:.6} spent of ${}): the next job could exceed it; no new jobs; {} in flight finish",
            self.cost_budget.spent(),
            self.cost_budget.limit().unwrap_or_default(),
            self.set.len()
        ));
    }

    /// Count what a finished job cost against `--max-budget-usd`; an answer whose cost is unknown
    /// stops the dispatching (the budget cannot be kept): in-flight jobs finish, exit 2.
    fn count_cost(&mut self, outcome: &JobOutcome) {
        if self.cost_budget.limit().is_none() {
            return;
        }
        match (outcome.cost().usd, &outcome.result) {
            (Some(usd), _) => self.cost_budget.add(usd),
            (None, Some(Ok(answer))) if self.stop.is_none() => {
                self.dispatching = false;
                self.held = None;
                self.stop = Some(Stop::CostUnknown(answer.model.clone()));
            }
            _ => {}
        }
    }

    /// `--max-total-tokens` reached: the job just taken stays without a line (`--resume` runs
    /// it later), and no new job starts.
    fn on_budget_spent(&mut self) {
        self.dispatching = false;
        self.budget_hit = true;
        diag::warn(&format!(
            "--max-total-tokens reached ({} of {} tokens used): no new jobs; {} in flight finish",
            self.budget.used(),
            self.budget.limit().unwrap_or_default(),
            self.set.len()
        ));
    }

    async fn spawn(&mut self, job: Job) {
        if let Some(session) = self.oauth.as_deref_mut()
            && let Err(e) = session.keep_fresh(&self.client).await
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
        let task = run_job(
            Arc::clone(&self.client),
            job,
            meta.clone(),
            self.shared.clone(),
            self.hard_cancel.clone(),
        );
        let handle = self.set.spawn(task);
        self.in_flight.insert(handle.id(), meta);
    }

    /// A job ended (or its task panicked): hand it to the writer.
    fn on_joined(
        &mut self,
        joined: Option<Result<(Id, JobOutcome), JoinError>>,
        on_done: &mut OnDone<'_>,
    ) {
        let outcome = match joined {
            Some(Ok((id, outcome))) => {
                self.in_flight.remove(&id);
                outcome
            }
            Some(Err(e)) => {
                let Some(job) = self.in_flight.remove(&e.id()) else {
                    return;
                };
                let message = if e.is_panic() {
                    "the job panicked"
                } else {
                    "the job was aborted"
                };
                JobOutcome::failed(job, ApiError::InvalidResponse(message.to_owned()), 1)
            }
            None => return,
        };
        self.budget
            .add(outcome.usage().map_or(0, |u| u.total_tokens));
        self.count_cost(&outcome);
        let outcome = self.rate_stop(outcome);
        self.progress.held_back(self.pacers.held_back());
        if outcome.result.is_some()
            && let Err(why) = on_done(outcome)
        {
            self.halt(why);
        }
    }

    /// A job refused by the pacer ends the dispatching of the whole batch: after
    /// `--max-rate-limit-wait` the job was never answered and gets no line (`--resume` runs it);
    /// out of quota, whatever waits or runs would fail the same way, so it is cancelled.
    fn rate_stop(&mut self, mut outcome: JobOutcome) -> JobOutcome {
        let why = match &outcome.result {
            Some(Err(f)) => match &f.error {
                AskError::Api(ApiError::RateLimitWait { waited }) => Stop::RateLimited(*waited),
                AskError::Api(ApiError::QuotaExhausted { message }) => Stop::Quota(message.clone()),
                _ => return outcome,
            },
            _ => return outcome,
        };
        if matches!(why, Stop::RateLimited(_)) {
            outcome.result = None;
        } else {
            self.hard_cancel.cancel();
        }
        if self.stop.is_none() {
            diag::warn(&match &why {
                Stop::Quota(_) => {
                    "error: the API reports insufficient quota (billing): no new jobs are started"
                        .to_owned()
                }
                _ => format!(
                    "the server has refused for --max-rate-limit-wait ({}): no new jobs; finishing {} in flight",
                    diag::duration(self.limits.max_rate_limit_wait),
                    self.set.len()
                ),
            });
            self.stop = Some(why);
        }
        self.dispatching = false;
        outcome
    }

    /// The first signal stops dispatching and gives in-flight jobs the grace period; a second
    /// cancels them at once.
    fn on_signal(&mut self, signal: Signal) {
        if self.stop.is_some() {
            self.hard_cancel.cancel();
            return;
        }
        self.stop = Some(Stop::Signal(signal));
        self.dispatching = false;
        self.grace_deadline = Deadline::now() + self.limits.shutdown_grace;
        diag::warn(&format!(
            "{signal}: no new jobs; waiting up to {} for {} in flight (again to stop at once)",
            diag::duration(self.limits.shutdown_grace),
            self.set.len()
        ));
    }

    fn on_wall_time(&mut self) {
        self.halt(Stop::WallTime);
        diag::warn("--max-wall-time reached: cancelling the jobs in flight");
    }
}

async fn run_job(
    client: Arc<ChatClient>,
    job: Job,
    meta: JobMeta,
    shared: Shared,
    cancel: CancellationToken,
) -> JobOutcome {
    let started = Instant::now();
    let mut ignore_deltas = |_: crate::client::Piece<'_>| Ok(());
    let tracer = shared.tracing.tracer();
    let mut span = tracer.zip(shared.batch_span).map(|(t, parent)| {
        let mut span = t.chat(parent, &job.model);
        span.set("qwen.job.id", meta.id.clone());
        span.set("qwen.job.index", meta.index as u64);
        span
    });
    let request = Request {
        models: crate::fallback::model_order(&job.model, &job.fallback_models),
        body: job.body,
        schema: job.schema,
        schema_retries: shared.schema_retries,
        mode: &shared.mode,
        headers: job.headers,
        own_token_limit: job.own_token_limit,
        prices: shared.prices.as_deref(),
        trace: shared.tracing.request(span.as_ref().map(Span::context)),
    };
    let result = tokio::select! {
        r = ask::ask(&client, &request, &mut ignore_deltas, false) => Some(r),
        () = cancel.cancelled() => None,
    };
    if let (Some(tracer), Some(mut span)) = (tracer, span.take()) {
        match &result {
            Some(Ok(answer)) => {
                let capture = tracer.captures_content();
                trace_answer(&mut span, answer, &request.body, capture);
            }
            Some(Err(f)) => trace_failure(
                &mut span,
                f.error.kind(),
                &f.error.to_string(),
                f.attempts,
                &ask::failure_extras(f),
            ),
            None => span.error("cancelled", "the job was cancelled before it finished"),
        }
        tracer.end(span);
    }
    JobOutcome {
        job: meta,
        result,
        elapsed: started.elapsed(),
    }
}
