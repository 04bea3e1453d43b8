//! The end of a batch: its figures (stderr, `--summary FILE`, the GitHub step summary) and the
//! one rule that turns how it ended into an exit status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::dispatch::{JobOutcome, Stop};
use crate::client::Pacers;
use crate::cost::{CostSource, CostTotal};
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::schema::JobFailure;

/// At most this many failed jobs are listed in the summary.
const MAX_LISTED_FAILURES: usize = 100;

/// The end-of-run figures.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) jobs: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) failed_temporary: u64,
    pub(crate) skipped_resumed: u64,
    pub(crate) not_run: u64,
    pub(crate) retried: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    /// Answers whose server reported no usage (their tokens are unknown, not zero).
    pub(crate) answers_without_usage: u64,
    /// All tokens the servers reported (what `--max-total-tokens` counts).
    pub(crate) total_tokens: u64,
    /// `--max-total-tokens`, when given.
    pub(crate) token_budget: Option<u64>,
    /// What the jobs cost in US dollars: the sum of the known costs; `null` when none was known
    /// (never `0` for unknown).
    pub(crate) total_cost_usd: Option<f64>,
    /// `provider`, `price_table`, `mixed`, or `null`.
    pub(crate) cost_source: Option<CostSource>,
    /// Jobs that used tokens but whose cost is unknown (not in `total_cost_usd`).
    pub(crate) jobs_without_cost: u64,
    /// `--max-budget-usd`, when given.
    pub(crate) cost_budget_usd: Option<f64>,
    #[serde(skip)]
    pub(crate) cost: CostTotal,
    /// Successful answers per model that gave them (fallback models included).
    pub(crate) answers_by_model: BTreeMap<String, u64>,
    pub(crate) wall_ms: u128,
    pub(crate) requests_per_sec: f64,
    /// 429s for rate received (each one re-queued its request; none is a job's failure).
    pub(crate) rate_limited: u64,
    /// Waits before another try (backoff, a server's hint, the batch's 429 pauses).
    pub(crate) retry_waits: u64,
    /// Milliseconds requests spent paused by the server's rate limits (429s), added over requests.
    pub(crate) rate_limit_wait_ms: u64,
    /// Requests sent to a `--fallback-model` because their model had no capacity.
    pub(crate) fallbacks: u64,
    /// Milliseconds jobs slept before retries (backoff, `Retry-After`), added over jobs.
    pub(crate) retry_wait_ms: u64,
    /// Requests the server admitted (answered with anything but a 429) per second of wall time.
    pub(crate) effective_requests_per_sec: f64,
    pub(crate) exit_code: u8,
    /// The failed jobs, the first 100.
    pub(crate) failures: Vec<JobFailure>,
}

impl Summary {
    /// Count one finished job.
    pub(crate) fn count(&mut self, outcome: &JobOutcome) {
        if let Some(u) = outcome.usage() {
            self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
            self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
            self.total_tokens = self.total_tokens.saturating_add(u.total_tokens);
        }
        // A job that used nothing the server reported (an invalid job, a network failure) has
        // no cost to know.
        let cost = outcome.cost();
        if cost.usd.is_some() || outcome.usage().is_some() {
            self.cost.add(cost);
            self.total_cost_usd = self.cost.usd;
            self.cost_source = self.cost.source;
            self.jobs_without_cost = self.cost.unknown;
        }
        match &outcome.result {
            Some(Ok(a)) => {
                self.retry_wait_ms += millis(a.completion.retry_wait);
                self.succeeded += 1;
                self.answers_without_usage += u64::from(a.completion.usage.is_none());
                self.retried += u64::from(a.completion.attempts > 1);
                *self.answers_by_model.entry(a.model.clone()).or_default() += 1;
            }
            Some(Err(f)) => {
                self.retry_wait_ms += millis(f.retry_wait);
                self.failed += 1;
                self.retried += u64::from(f.attempts > 1);
                if f.error.exit_status() == ExitStatus::TempFail {
                    self.failed_temporary += 1;
                }
                if self.failures.len() < MAX_LISTED_FAILURES {
                    self.failures.push(JobFailure {
                        id: outcome.job.id.clone(),
                        kind: f.error.kind().to_owned(),
                        message: f.error.to_string(),
                    });
                }
            }
            None => {}
        }
    }

    /// The pacing figures (429s received, admitted requests per second).
    pub(crate) fn paced(&mut self, pacers: &Pacers) {
        self.rate_limited = pacers.rate_limited();
        let secs =
            Duration::from_millis(u64::try_from(self.wall_ms).unwrap_or(u64::MAX)).as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let answered = pacers.answered() as f64;
        self.effective_requests_per_sec = if secs > 0.0 { answered / secs } else { 0.0 };
    }

    pub(crate) fn finish(&mut self, skipped: u64, wall: Duration) {
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
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How a finished batch exits: a stop wins (a signal, the wall time, a results file that could
/// not be written); a closed stdout is a quiet end; otherwise any permanent failure is 1, only
/// temporary failures 75.
pub(crate) fn outcome(stop: Option<&Stop>, summary: &Summary) -> ExitStatus {
    match stop {
        Some(Stop::Signal(signal)) => Error::Interrupted { signal: *signal }.exit_status(),
        Some(Stop::WallTime | Stop::TokenBudget | Stop::CostBudget) => ExitStatus::WallTime,
        Some(Stop::CostUnknown(_)) => ExitStatus::Usage,
        Some(Stop::RateLimited(_)) => ExitStatus::TempFail,
        Some(Stop::OutputClosed) => ExitStatus::Success,
        // Jobs left without a result (the job file changed under the run, say) are never a success.
        None if summary.not_run > 0 => ExitStatus::Failure,
        None => ExitStatus::of_results(summary.failed, summary.failed_temporary),
        Some(Stop::OutputFailed(_) | Stop::Quota(_)) => ExitStatus::Failure,
    }
}

/// Why the batch stopped early, in a line that says what to do next.
fn stop_line(summary: &Summary, stop: Option<&Stop>) -> Option<String> {
    match stop {
        Some(Stop::Signal(s)) => Some(format!(
            "batch: stopped by {s}; run again with --resume to finish"
        )),
        Some(Stop::WallTime) => {
            Some("batch: stopped at --max-wall-time; run again with --resume to finish".to_owned())
        }
        Some(Stop::TokenBudget) => Some(format!(
            "batch: stopped at --max-total-tokens ({} tokens used of {}); run again with --resume to finish",
            summary.total_tokens,
            summary.token_budget.unwrap_or_default()
        )),
        Some(Stop::CostBudget) => Some(format!(
            "batch: stopped at --max-budget-usd (${:.6} spent of ${}); run again with --resume to finish",
            summary.total_cost_usd.unwrap_or_default(),
            summary.cost_budget_usd.unwrap_or_default()
        )),
        Some(Stop::CostUnknown(model)) => Some(format!(
            "error: --max-budget-usd: the cost of an answer of `{model}` is unknown (the server reported none, and no --prices entry names the model); no new jobs were started\nhint: give --prices FILE (LiteLLM's model_prices_and_context_window.json) with the model, or drop --max-budget-usd; then run again with --resume"
        )),
        Some(Stop::RateLimited(waited)) => Some(format!(
            "batch: stopped: the server refused every request for {} (--max-rate-limit-wait); run again later with --resume to finish",
            diag::duration(*waited)
        )),
        Some(Stop::Quota(message)) => Some(format!(
            "error: the API refused for insufficient quota: {message}\nhint: the account behind the key is out of credit or over its spending limit: check the provider's billing page, then run again with --resume"
        )),
        None if summary.not_run > 0 => Some(format!(
            "error: {} jobs were not run (the job file changed while the batch ran?); run again with --resume to finish",
            summary.not_run
        )),
        Some(Stop::OutputFailed(why)) => Some(format!(
            "error: {why}\nbatch: stopped; fix the output and run again with --resume"
        )),
        _ => None,
    }
}

/// The summary on stderr, and as JSON in `summary_path`.
pub(crate) fn report(
    summary: &Summary,
    stop: Option<&Stop>,
    summary_path: Option<&Path>,
) -> Result<(), Error> {
    let secs =
        Duration::from_millis(u64::try_from(summary.wall_ms).unwrap_or(u64::MAX)).as_secs_f64();
    let mut text = format!(
        "batch: {} jobs: {} succeeded, {} failed ({} temporary), {} retried, {} skipped (resume), {} not run; tokens in {} out {}; cost {}; {:.1}s, {:.1} req/s; {} rate limited (429), {:.1} req/s admitted\n",
        summary.jobs,
        summary.succeeded,
        summary.failed,
        summary.failed_temporary,
        summary.retried,
        summary.skipped_resumed,
        summary.not_run,
        summary.input_tokens,
        summary.output_tokens,
        crate::output::github::cost_text(summary.total_cost_usd, summary.cost_source),
        secs,
        summary.requests_per_sec,
        summary.rate_limited,
        summary.effective_requests_per_sec,
    );
    if summary.answers_without_usage > 0 {
        let _ = writeln!(
            text,
            "batch: {} answers came without usage (the server did not report it): their tokens are unknown, not counted",
            summary.answers_without_usage
        );
    }
    if summary.retry_waits > 0 || summary.fallbacks > 0 {
        let _ = writeln!(
            text,
            "batch: {} waits before a retry, {:.1}s waiting on rate limits (added over requests), {} sent to a fallback model",
            summary.retry_waits,
            Duration::from_millis(summary.rate_limit_wait_ms).as_secs_f64(),
            summary.fallbacks
        );
    }
    if let Some(line) = stop_line(summary, stop) {
        text.push_str(&line);
        text.push('\n');
    }
    if summary.answers_by_model.len() > 1 {
        let counts: Vec<String> = summary
            .answers_by_model
            .iter()
            .map(|(model, n)| format!("{model} {n}"))
            .collect();
        let _ = writeln!(text, "batch: answers per model: {}", counts.join(", "));
    }
    diag::text(&text);
    if let Some(path) = summary_path {
        let doc = serde_json::to_vec_pretty(summary)
            .map_err(|e| Error::Internal(format!("cannot encode the summary: {e}")))?;
        std::fs::write(path, doc).map_err(|e| Error::file("write the summary", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Signal;

    #[test]
    fn the_exit_status_of_a_finished_batch() {
        let counts = |failed, temporary| Summary {
            jobs: 10,
            succeeded: 10 - failed,
            failed,
            failed_temporary: temporary,
            ..Summary::default()
        };
        let cases = [
            (None, counts(0, 0), ExitStatus::Success),
            (None, counts(3, 3), ExitStatus::TempFail),
            (None, counts(3, 1), ExitStatus::Failure),
            (
                Some(Stop::Signal(Signal::Terminate)),
                counts(0, 0),
                ExitStatus::Terminated,
            ),
            (
                Some(Stop::Signal(Signal::Interrupt)),
                counts(1, 0),
                ExitStatus::Interrupted,
            ),
            (Some(Stop::WallTime), counts(0, 0), ExitStatus::WallTime),
            (Some(Stop::TokenBudget), counts(1, 0), ExitStatus::WallTime),
            (
                Some(Stop::RateLimited(Duration::from_secs(600))),
                counts(0, 0),
                ExitStatus::TempFail,
            ),
            (
                Some(Stop::Quota("billing".into())),
                counts(0, 0),
                ExitStatus::Failure,
            ),
            (Some(Stop::OutputClosed), counts(2, 0), ExitStatus::Success),
            (
                None,
                Summary {
                    not_run: 1,
                    ..counts(0, 0)
                },
                ExitStatus::Failure,
            ),
            (
                Some(Stop::OutputFailed("disk full".into())),
                counts(0, 0),
                ExitStatus::Failure,
            ),
        ];
        for (stop, summary, want) in cases {
            assert_eq!(outcome(stop.as_ref(), &summary), want, "{stop:?}");
        }
    }
}
