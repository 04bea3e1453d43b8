//! Batch pacing against the server's real limits: one shared view per (base URL, model) of what the
//! server allows (its `x-ratelimit-*` headers, its 429s), so that a batch pauses, slows and speeds up
//! as one instead of as many independent retry timers.
//
// What servers send (the formats reproduced by the tests):
// - OpenAI (<https://platform.openai.com/docs/guides/rate-limits>, "Rate limits in headers"):
//   `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests`
//   and the `-tokens` equivalents, the resets as Go-style durations: `1s`, `6m0s`, `20ms`,
//   `1h2m3.5s` (seen in the field: `x-ratelimit-reset-requests: 12ms`, OpenAI community thread
//   "How to get rate limit reset time for response API?"). "Reset" is the time until the
//   allowance is whole again, so `(limit - remaining) / reset` is the refill rate. Azure OpenAI,
//   Groq (requests per day, tokens per minute, same names and formats) and OpenRouter send the same family.
// - A 429 for rate has `"code": "rate_limit_exceeded"`; a 429 for billing has
//   `{"error": {"message": "You exceeded your current quota, please check your plan and billing
//   details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}`
//   (ChatGPTNextWeb/NextChat#3123; older keys send `"code": null` with the same `type`). The
//   quota case is detected in `super::ChatClient::http_error` and never reaches a pacer.
// - `retry-after-ms` before `Retry-After` (seconds or an HTTP date), as openai-python's
//   `_calculate_retry_timeout` reads them (`super::retry::retry_after`).
//
// The pacer is a gate: a request waits its turn in FIFO order (a 429'd request goes back to the
// end of the line instead of sleeping on a timer of its own), and the head of the line waits until
// (1) no shared pause is running, (2) fewer requests are in flight than the adaptive window,
// (3) the server's remaining request and token budget, as estimated from its last headers and
// what was sent since, covers the request, and (4) the `--tpm` cap allows it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests in flight at first, before anything is known of the server (TCP's initial window is
/// ten segments; a batch's first burst should not run into a small burst allowance).
const INITIAL_WINDOW: usize = 8;
/// Each success raises a learnt pace by this factor (about 2 % a second at 10 requests/s).
const PACE_GROWTH: f64 = 1.002;
/// A 429 sets the learnt pace to this share of the rate the server was admitting.
const PACE_BACKOFF: f64 = 0.85;

/// How a batch paces itself, from its flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacingSettings {
    /// `--concurrency`: the window never grows above it.
    pub(crate) max_concurrency: usize,
    /// `--max-rate-limit-wait`: refused this long without a success in between, the batch gives up.
    pub(crate) max_rate_limit_wait: Duration,
    /// `--tpm`: at most this many (estimated) tokens per minute.
    pub(crate) tpm: Option<u32>,
    /// The first shared backoff after a 429 that names no wait (`--retry-base-delay`, capped).
    pub(crate) base_backoff: Duration,
    /// The longest shared backoff chosen without a server hint.
    pub(crate) max_backoff: Duration,
}

/// Why a pacer refuses to send any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-rate-limit-wait` passed with nothing but 429s.
    WaitExceeded(Duration),
    /// The server said the account is out of quota (its message): nothing more is sent.
    Quota(String),
}

/// The rate-limit headers of one response; absent values are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RateHeaders {
    pub(crate) limit_requests: Option<f64>,
    pub(crate) remaining_requests: Option<f64>,
    pub(crate) reset_requests: Option<Duration>,
    pub(crate) limit_tokens: Option<f64>,
    pub(crate) remaining_tokens: Option<f64>,
    pub(crate) reset_tokens: Option<Duration>,
    /// `retry-after-ms` / `Retry-After`, when sent.
    pub(crate) retry_after: Option<Duration>,
}

impl RateHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let number = |name: &str| {
            text(name)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        let reset = |name: &str| text(name).and_then(parse_reset);
        Self {
            limit_requests: number("x-ratelimit-limit-requests"),
            remaining_requests: number("x-ratelimit-remaining-requests"),
            reset_requests: reset("x-ratelimit-reset-requests"),
            limit_tokens: number("x-ratelimit-limit-tokens"),
            remaining_tokens: number("x-ratelimit-remaining-tokens"),
            reset_tokens: reset("x-ratelimit-reset-tokens"),
            retry_after: super::retry::retry_after(headers, std::time::SystemTime::now()),
        }
    }

    fn is_empty(&self) -> bool {
        self.remaining_requests.is_none() && self.remaining_tokens.is_none()
    }

    /// The wait these headers imply after a 429: the reset of whichever budget is spent (both when
    /// both are, the longer), or of any budget named when none is reported spent.
    pub(crate) fn wait_hint(&self) -> Option<Duration> {
        let spent = |remaining: Option<f64>| remaining.is_some_and(|r| r < 1.0);
        let req = self
            .reset_requests
            .filter(|_| spent(self.remaining_requests));
        let tok = self.reset_tokens.filter(|_| spent(self.remaining_tokens));
        match (req, tok) {
            (None, None) => self.reset_requests.max(self.reset_tokens),
            (a, b) => a.max(b),
        }
    }
}

/// A reset value: a Go-style duration (`1s`, `6m0s`, `20ms`, `1h2m3.5s`, `250us`), or a plain
/// number of seconds as some servers send. Bounded: at most a day.
pub(crate) fn parse_reset(text: &str) -> Option<Duration> {
    const DAY: f64 = 86_400.0;
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(DAY)));
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(Duration::from_secs_f64(total.min(DAY)))
}

/// A request's estimated token cost: prompt characters / 4 plus the completion allowance
/// (`max_tokens`, else `typical_output`).
#[cfg(test)]
pub(crate) fn estimate_tokens(body: &serde_json::Value, typical_output: u64) -> u64 {
    let (prompt, max_tokens) = estimate_parts(body);
    prompt + max_tokens.unwrap_or(typical_output)
}

/// The prompt's estimated tokens (characters / 4) and the completion allowance, if the body sets one.
fn estimate_parts(body: &serde_json::Value) -> (u64, Option<u64>) {
    let chars: usize = body
        .get("messages")
        .and_then(serde_json::Value::as_array)
        .map_or(0, |messages| {
            messages
                .iter()
                .map(|m| match m.get("content") {
                    Some(serde_json::Value::String(s)) => s.chars().count(),
                    Some(other) => other.to_string().len(),
                    None => 0,
                })
                .sum()
        });
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(serde_json::Value::as_u64));
    ((chars as u64).div_ceil(4), max_tokens)
}

/// The server's budget of one kind (requests or tokens), modelled as the bucket its headers
/// describe: a level that refills at `refill` per second up to `limit`, spent locally as requests
/// leave and re-anchored on each report (never upwards: the local model knows when the bucket
/// was full and refilled nothing, which a report from a request sent earlier cannot).
#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: f64,
    /// Per second; from `(limit - remaining) / reset`, else `limit` per minute.
    refill: f64,
    level: f64,
    level_at: Instant,
    /// The sequence number of the request whose report the level was last anchored on.
    seq: u64,
}

/// One report: what was left when request `seq` (sent at `sent_at`) was admitted, and what has
/// been spent since it was sent.
struct Report {
    limit: Option<f64>,
    remaining: f64,
    reset: Option<Duration>,
    seq: u64,
    sent_at: Instant,
    spent_since: f64,
}

impl Budget {
    fn update(old: Option<Self>, r: &Report, now: Instant) -> Option<Self> {
        if old.is_some_and(|b| b.seq > r.seq) {
            return old;
        }
        let limit = r
            .limit
            .or(old.map(|b| b.limit))
            .unwrap_or(r.remaining)
            .max(r.remaining);
        // `remaining` is whole (rounded down) while the reset is exact, so one measurement may
        // overstate the rate by up to one unit: the lowest of them is the closest.
        let measured = r
            .reset
            .filter(|d| !d.is_zero() && r.remaining < limit)
            .map(|d| (limit - r.remaining) / d.as_secs_f64());
        let same_limit = old.filter(|b| (b.limit - limit).abs() < 0.5);
        let refill = match (measured, same_limit.map(|b| b.refill)) {
            (Some(m), Some(p)) => m.min(p),
            (m, p) => m.or(p).unwrap_or(limit / 60.0),
        }
        .max(1e-6);
        let elapsed = now.saturating_duration_since(r.sent_at).as_secs_f64();
        let reported = (r.remaining - r.spent_since + refill * elapsed).min(limit);
        let level = match same_limit {
            Some(b) => b.level_now(now).min(reported),
            None => reported,
        };
        Some(Self {
            limit,
            refill,
            level,
            level_at: now,
            seq: r.seq,
        })
    }

    fn level_now(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.level_at).as_secs_f64();
        (self.level + self.refill * dt).min(self.limit)
    }

    fn spend(&mut self, cost: f64, now: Instant) {
        self.level = self.level_now(now) - cost;
        self.level_at = now;
    }

    /// How long until `cost` is available (zero when it is; a cost above the limit waits for a
    /// full bucket).
    fn wait_for(&self, cost: f64, now: Instant) -> Duration {
        let need = cost.min(self.limit) - self.level_now(now);
        if need <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((need / self.refill).min(3600.0))
    }
}

/// The mutable state of one pacer.
#[derive(Debug)]
struct State {
    settings: PacingSettings,
    /// No request starts before this.
    paused_until: Option<Instant>,
    /// The adaptive window (AIMD): requests in flight at once.
    window: f64,
    /// Until the first 429 the window doubles on each success (slow start).
    slow_start: bool,
    in_flight: usize,
    /// The learnt pace (requests/s) when the server says nothing but 429: set on a 429 below the
    /// rate that was being admitted, raised a little with each success.
    pace: Option<f64>,
    next_paced: Instant,
    /// When the window and pace were last lowered: a 429 for a request sent earlier is the same event.
    last_decrease: Option<Instant>,
    /// Recent successes (send times), to measure the rate the server admits.
    admitted: VecDeque<Instant>,
    requests: Option<Budget>,
    tokens: Option<Budget>,
    /// Sequence number and estimated tokens of everything sent.
    sent: u64,
    tokens_spent: f64,
    /// `--tpm`: the earliest start of the next request.
    next_tpm: Instant,
    /// The first 429 since the last success.
    refusing_since: Option<Instant>,
    /// Consecutive 429s naming no wait, for the shared backoff.
    bare_streak: u32,
    refused: Option<Refusal>,
    /// Output tokens of answers so far, to estimate a request without `max_tokens`.
    output_tokens: u64,
    /// Smoothed time from send to answer.
    latency: Option<f64>,
    /// Prompt tokens estimated (characters / 4) and reported by the server, for the successes.
    prompt_estimated: u64,
    prompt_reported: u64,
    answers: u64,
}

/// Counters of all pacers of a batch.
#[derive(Debug, Default)]
struct Totals {
    rate_limited: u64,
    answered: u64,
}

/// One (base URL, model)'s shared view of the server's limits.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<State>,
    /// Wakes the head of the line when something changed (a request ended, a pause was set).
    changed: Notify,
    /// The line: FIFO, held by the request whose turn it is while it waits.
    line: tokio::sync::Mutex<()>,
    totals: Arc<Mutex<Totals>>,
}

/// The pacers of one batch, one per (base URL, model), created on first use.
#[derive(Debug)]
pub(crate) struct Pacers {
    settings: PacingSettings,
    by_key: Mutex<HashMap<(String, String), Arc<Pacer>>>,
    totals: Arc<Mutex<Totals>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pacers {
    pub(crate) fn new(settings: PacingSettings) -> Self {
        Self {
            settings,
            by_key: Mutex::new(HashMap::new()),
            totals: Arc::default(),
        }
    }

    /// The pacer of `model` at `base_url`.
    pub(crate) fn get(&self, base_url: &str, model: &str) -> Arc<Pacer> {
        let mut map = lock(&self.by_key);
        let key = (base_url.to_owned(), model.to_owned());
        Arc::clone(
            map.entry(key)
                .or_insert_with(|| Arc::new(Pacer::new(self.settings, Arc::clone(&self.totals)))),
        )
    }

    /// 429s received so far (all models).
    pub(crate) fn rate_limited(&self) -> u64 {
        lock(&self.totals).rate_limited
    }

    /// Answers other than a 429 received so far (all models).
    pub(crate) fn answered(&self) -> u64 {
        lock(&self.totals).answered
    }

    /// For the progress line: `held back by the server for 12s, pace 9.8 req/s, 3 at once`, when
    /// some pacer is pausing or refusing now.
    pub(crate) fn held_back(&self) -> Option<String> {
        let now = Instant::now();
        let pacers: Vec<Arc<Pacer>> = lock(&self.by_key).values().cloned().collect();
        pacers.iter().find_map(|p| p.held_back(now))
    }
}

/// A granted turn: the request is in flight until this is resolved or dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    pacer: Arc<Pacer>,
    seq: u64,
    sent_at: Instant,
    tokens_before: f64,
    estimate: f64,
    prompt_estimate: u64,
    done: bool,
}

impl Pacer {
    fn new(settings: PacingSettings, totals: Arc<Mutex<Totals>>) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                settings,
                paused_until: None,
                #[allow(clippy::cast_precision_loss)]
                window: settings.max_concurrency.clamp(1, INITIAL_WINDOW) as f64,
                slow_start: true,
                in_flight: 0,
                pace: None,
                next_paced: now,
                last_decrease: None,
                admitted: VecDeque::new(),
                requests: None,
                tokens: None,
                sent: 0,
                tokens_spent: 0.0,
                next_tpm: now,
                refusing_since: None,
                bare_streak: 0,
                refused: None,
                output_tokens: 0,
                latency: None,
                prompt_estimated: 0,
                prompt_reported: 0,
                answers: 0,
            }),
            changed: Notify::new(),
            line: tokio::sync::Mutex::new(()),
            totals,
        }
    }

    /// A typical answer's length so far, for requests that set no `max_tokens`.
    #[cfg(test)]
    pub(crate) fn typical_output(&self) -> u64 {
        let s = lock(&self.state);
        s.output_tokens.checked_div(s.answers).unwrap_or(0)
    }

    /// The estimated token cost of `body`: prompt characters / 4, corrected by the ratio of the
    /// prompt tokens the server reported to what was estimated so far, plus `max_tokens` (else the
    /// typical answer's length so far). Returns (cost, uncorrected prompt estimate).
    pub(crate) fn estimate(&self, body: &serde_json::Value) -> (u64, u64) {
        let (prompt, max_tokens) = estimate_parts(body);
        let s = lock(&self.state);
        let typical = s.output_tokens.checked_div(s.answers).unwrap_or(0);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let corrected = if s.prompt_estimated > 0 {
            (prompt as f64 * (s.prompt_reported as f64 / s.prompt_estimated as f64)).ceil() as u64
        } else {
            prompt
        };
        (corrected + max_tokens.unwrap_or(typical), prompt)
    }

    /// Wait for this request's turn (`estimate`: its token cost). Fails once the server has refused
    /// for longer than `--max-rate-limit-wait`.
    #[cfg(test)]
    pub(crate) async fn acquire(self: &Arc<Self>, estimate: u64) -> Result<Turn, Refusal> {
        self.acquire_for(estimate, 0).await
    }

    /// `acquire`, knowing the uncorrected prompt estimate (see `estimate`) so that the usage of the
    /// answer can correct later estimates.
    pub(crate) async fn acquire_for(
        self: &Arc<Self>,
        estimate: u64,
        prompt: u64,
    ) -> Result<Turn, Refusal> {
        #[allow(clippy::cast_precision_loss)]
        let estimate = estimate as f64;
        let _head = self.line.lock().await;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let wait = {
                let mut s = lock(&self.state);
                if let Some(refusal) = &s.refused {
                    return Err(refusal.clone());
                }
                if let Some(since) = s.refusing_since {
                    let limit = s.settings.max_rate_limit_wait;
                    if now.saturating_duration_since(since) >= limit {
                        let refusal = Refusal::WaitExceeded(limit);
                        s.refused = Some(refusal.clone());
                        drop(s);
                        self.changed.notify_waiters();
                        return Err(refusal);
                    }
                }
                match s.wait(now, estimate) {
                    Wait::Ready => {
                        let mut turn = s.take(self, now, estimate);
                        turn.prompt_estimate = prompt;
                        return Ok(turn);
                    }
                    Wait::Until(at) => {
                        let deadline = s
                            .refusing_since
                            .map(|since| since + s.settings.max_rate_limit_wait);
                        Some(deadline.map_or(at, |d| at.min(d)))
                    }
                    Wait::Slot => None,
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn held_back(&self, now: Instant) -> Option<String> {
        let s = lock(&self.state);
        let since = s.refusing_since?;
        let held = now.saturating_duration_since(since).as_secs();
        let pace = s
            .pace
            .or_else(|| s.requests.map(|b| b.refill))
            .map_or_else(String::new, |p| format!(", pace {p:.1} req/s"));
        Some(format!(
            "held back by the server for {held}s{pace}, {} at once",
            s.effective_window()
        ))
    }
}

enum Wait {
    Ready,
    Until(Instant),
    /// Until a request in flight ends.
    Slot,
}

impl State {
    fn effective_window(&self) -> usize {
        if self.requests.is_some() || self.tokens.is_some() {
            // The headers say what is allowed: no need to guess with a window.
            return self.settings.max_concurrency.max(1);
        }
        let mut w = self.window.floor().max(1.0);
        if let (Some(pace), Some(latency)) = (self.pace, self.latency) {
            // With a learnt pace, the window must not be what holds the pace back.
            w = w.max((pace * latency).ceil() + 1.0);
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let w = w.min(1e6) as usize;
        w.min(self.settings.max_concurrency.max(1))
    }

    fn wait(&self, now: Instant, estimate: f64) -> Wait {
        let mut at = now;
        if let Some(until) = self.paused_until {
            at = at.max(until);
        }
        if self.pace.is_some() {
            at = at.max(self.next_paced);
        }
        at = at.max(self.next_tpm);
        if let Some(b) = &self.requests {
            at = at.max(now + b.wait_for(1.0, now));
        }
        if let Some(b) = &self.tokens {
            at = at.max(now + b.wait_for(estimate, now));
        }
        if at > now {
            return Wait::Until(at);
        }
        if self.in_flight >= self.effective_window() {
            return Wait::Slot;
        }
        Wait::Ready
    }

    fn take(&mut self, pacer: &Arc<Pacer>, now: Instant, estimate: f64) -> Turn {
        self.sent += 1;
        self.in_flight += 1;
        let tokens_before = self.tokens_spent;
        self.tokens_spent += estimate;
        if let Some(b) = self.requests.as_mut() {
            b.spend(1.0, now);
        }
        if let Some(b) = self.tokens.as_mut() {
            b.spend(estimate, now);
        }
        if let Some(pace) = self.pace {
            self.next_paced = self.next_paced.max(now) + Duration::from_secs_f64(1.0 / pace);
        }
        if let Some(tpm) = self.settings.tpm {
            let per_token = 60.0 / f64::from(tpm.max(1));
            self.next_tpm = self.next_tpm.max(now)
                + Duration::from_secs_f64((estimate * per_token).min(3600.0));
        }
        Turn {
            pacer: Arc::clone(pacer),
            seq: self.sent,
            sent_at: now,
            tokens_before,
            estimate,
            prompt_estimate: 0,
            done: false,
        }
    }

    fn observe(&mut self, turn: &Turn, headers: &RateHeaders) {
        let now = Instant::now();
        if let Some(remaining) = headers.remaining_requests {
            #[allow(clippy::cast_precision_loss)]
            let report = Report {
                limit: headers.limit_requests,
                remaining,
                reset: headers.reset_requests,
                seq: turn.seq,
                sent_at: turn.sent_at,
                spent_since: (self.sent - turn.seq) as f64,
            };
            self.requests = Budget::update(self.requests, &report, now);
        }
        if let Some(remaining) = headers.remaining_tokens {
            // The server counted this request's cost when it admitted it, as we did.
            let report = Report {
                limit: headers.limit_tokens,
                remaining,
                reset: headers.reset_tokens,
                seq: turn.seq,
                sent_at: turn.sent_at,
                spent_since: self.tokens_spent - (turn.tokens_before + turn.estimate),
            };
            self.tokens = Budget::update(self.tokens, &report, now);
        }
    }
}

impl Turn {
    /// The request was answered (anything but a 429 for rate): adjust to its headers, and on a
    /// success to its usage (`(input, output)` tokens), which corrects later estimates. The budget
    /// itself is corrected by the server's next headers, not by usage: servers differ in whether
    /// they give back what `max_tokens` reserved.
    pub(crate) fn answered(
        mut self,
        headers: &RateHeaders,
        success: bool,
        usage: Option<(u64, u64)>,
    ) {
        self.done = true;
        let pacer = Arc::clone(&self.pacer);
        let now = Instant::now();
        {
            let mut s = lock(&pacer.state);
            s.in_flight = s.in_flight.saturating_sub(1);
            s.observe(&self, headers);
            if success {
                s.refusing_since = None;
                s.bare_streak = 0;
                #[allow(clippy::cast_precision_loss)]
                let max = s.settings.max_concurrency.max(1) as f64;
                s.window = if s.slow_start {
                    (s.window + 1.0).min(max)
                } else {
                    (s.window + 1.0 / s.window.max(1.0)).min(max)
                };
                if let Some(pace) = s.pace {
                    s.pace = Some(pace * PACE_GROWTH);
                }
                let took = now.saturating_duration_since(self.sent_at).as_secs_f64();
                s.latency = Some(s.latency.map_or(took, |l| l * 0.9 + took * 0.1));
                s.admitted.push_back(self.sent_at);
                while s.admitted.len() > 64 {
                    s.admitted.pop_front();
                }
                if let Some((input, output)) = usage {
                    if self.prompt_estimate > 0 {
                        s.prompt_estimated += self.prompt_estimate;
                        s.prompt_reported += input;
                    }
                    s.output_tokens += output;
                    s.answers += 1;
                }
            }
            drop(s);
        }
        lock(&pacer.totals).answered += 1;
        pacer.changed.notify_one();
    }

    /// The server answered that the account is out of quota: every later request is refused here.
    pub(crate) fn quota_exhausted(mut self, message: &str) {
        self.done = true;
        let pacer = Arc::clone(&self.pacer);
        {
            let mut s = lock(&pacer.state);
            s.in_flight = s.in_flight.saturating_sub(1);
            s.refused = Some(Refusal::Quota(message.to_owned()));
        }
        pacer.changed.notify_one();
    }

    /// The request was refused for rate: pause everyone for the server's hint, or a shared backoff;
    /// shrink the window and the pace once per event. Returns how long the pause lasts from now.
    pub(crate) fn rate_limited(
        mut self,
        headers: &RateHeaders,
        hint: Option<Duration>,
    ) -> Duration {
        let hint = hint.or(headers.retry_after);
        self.done = true;
        let pacer = Arc::clone(&self.pacer);
        let now = Instant::now();
        let waited;
        {
            let mut s = lock(&pacer.state);
            s.in_flight = s.in_flight.saturating_sub(1);
            s.observe(&self, headers);
            s.refusing_since.get_or_insert(now);
            // Without Retry-After, the reset of the spent budget (OpenAI, Azure, Groq); with
            // neither, a shared backoff.
            let hint = hint.or_else(|| headers.wait_hint());
            let new_event = s.last_decrease.is_none_or(|t| self.sent_at > t);
            let pause = if let Some(wait) = hint {
                wait
            } else {
                if new_event {
                    s.bare_streak += 1;
                }
                let exp = s
                    .settings
                    .base_backoff
                    .saturating_mul(1 << s.bare_streak.saturating_sub(1).min(16));
                exp.min(s.settings.max_backoff)
            };
            let until = now + pause;
            let paused_until = s.paused_until.map_or(until, |p| p.max(until));
            s.paused_until = Some(paused_until);
            waited = paused_until.saturating_duration_since(now);
            if new_event {
                s.last_decrease = Some(now);
                s.slow_start = false;
                s.window = (s.window / 2.0).max(1.0);
                if headers.is_empty() {
                    let measured = s.admitted_rate(now);
                    let current = s.pace.unwrap_or(f64::INFINITY);
                    let next = measured.map_or(current, |m| m.min(current)) * PACE_BACKOFF;
                    if next.is_finite() {
                        s.pace = Some(next.max(0.01));
                    }
                }
            }
            drop(s);
        }
        lock(&pacer.totals).rate_limited += 1;
        pacer.changed.notify_one();
        waited
    }
}

impl State {
    /// The rate of successes over the recent ones (requests per second), when enough are known.
    fn admitted_rate(&self, now: Instant) -> Option<f64> {
        let first = *self.admitted.front()?;
        let n = self.admitted.len();
        if n < 4 {
            return None;
        }
        let span = now.saturating_duration_since(first).as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = n as f64 / span.max(0.05);
        Some(rate)
    }
}

impl Drop for Turn {
    /// A turn dropped unresolved (the request was cancelled, or failed without an answer) frees its slot.
    fn drop(&mut self) {
        if !self.done {
            let mut s = lock(&self.pacer.state);
            s.in_flight = s.in_flight.saturating_sub(1);
            drop(s);
            self.pacer.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn settings() -> PacingSettings {
        PacingSettings {
            max_concurrency: 8,
            max_rate_limit_wait: Duration::from_secs(600),
            tpm: None,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }

    fn pacer(settings: PacingSettings) -> Arc<Pacer> {
        Pacers::new(settings).get("http://127.0.0.1/v1/", "m")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> RateHeaders {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        RateHeaders::parse(&map)
    }

    /// Whether `acquire` is still waiting after `after` of virtual time.
    async fn waits(pacer: &Arc<Pacer>, estimate: u64, after: Duration) -> bool {
        tokio::time::timeout(after, pacer.acquire(estimate))
            .await
            .is_err()
    }

    #[test]
    fn openai_reset_durations() {
        let ms = Duration::from_millis;
        let cases = [
            ("1s", Some(ms(1000))),
            ("6m0s", Some(ms(360_000))),
            ("20ms", Some(ms(20))),
            ("1h2m3.5s", Some(ms(3_723_500))),
            ("0s", Some(Duration::ZERO)),
            ("250us", Some(Duration::from_micros(250))),
            ("7.66s", Some(ms(7660))),
            ("2m59.56s", Some(ms(179_560))),
            ("1.5", Some(ms(1500))),
            ("48h", Some(Duration::from_secs(86_400))),
            ("", None),
            ("soon", None),
            ("5x", None),
            ("s", None),
            ("-1s", None),
        ];
        for (text, want) in cases {
            let got = parse_reset(text)
                .map(|d| Duration::from_micros(u64::try_from(d.as_micros()).unwrap()));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn headers_and_their_wait_hint() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(h.limit_requests, Some(60.0));
        assert_eq!(h.remaining_tokens, Some(149_984.0));
        // The spent budget decides, not the longer reset.
        assert_eq!(h.wait_hint(), Some(Duration::from_secs(1)));
        let h = headers(&[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ]);
        assert_eq!(h.wait_hint(), Some(Duration::from_millis(20)));
        assert_eq!(headers(&[]).wait_hint(), None);
        assert!(headers(&[("x-ratelimit-remaining-requests", "nope")]).is_empty());
    }

    #[test]
    fn token_estimate_is_prompt_chars_over_4_plus_max_tokens() {
        let body = json!({"messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": "efghijkl"}
        ], "max_tokens": 100});
        assert_eq!(estimate_tokens(&body, 7), 3 + 100);
        let body = json!({"messages": [{"role": "user", "content": "abcde"}]});
        assert_eq!(
            estimate_tokens(&body, 7),
            2 + 7,
            "the typical answer without max_tokens"
        );
        let body = json!({"messages": [], "max_completion_tokens": 50});
        assert_eq!(estimate_tokens(&body, 7), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_then_the_window_grows_to_the_concurrency_and_no_further() {
        let p = pacer(PacingSettings {
            max_concurrency: 32,
            ..settings()
        });
        let first = futures_take(&p, 8).await;
        assert!(waits(&p, 1, Duration::from_secs(5)).await, "eight at first");
        for t in first {
            t.answered(&RateHeaders::default(), true, None);
        }
        for _ in 0..20 {
            let turns: Vec<Turn> = {
                let mut v = Vec::new();
                while let Ok(Ok(t)) =
                    tokio::time::timeout(Duration::from_millis(1), p.acquire(1)).await
                {
                    v.push(t);
                }
                v
            };
            assert!(
                turns.len() <= 32,
                "never above --concurrency: {}",
                turns.len()
            );
            for t in turns {
                t.answered(&RateHeaders::default(), true, None);
            }
        }
        assert_eq!(lock(&p.state).effective_window(), 32);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_a_hint_pauses_everyone_and_halves_the_window() {
        let p = pacer(settings());
        lock(&p.state).window = 8.0;
        let turns: Vec<Turn> = futures_take(&p, 4).await;
        let mut turns = turns.into_iter();
        turns
            .next()
            .unwrap()
            .rate_limited(&RateHeaders::default(), Some(Duration::from_secs(2)));
        assert_eq!(lock(&p.state).effective_window(), 4);
        // The others of the same moment are the same event: no second halving.
        turns
            .next()
            .unwrap()
            .rate_limited(&RateHeaders::default(), Some(Duration::from_secs(2)));
        assert_eq!(lock(&p.state).effective_window(), 4);
        let started = Instant::now();
        assert!(waits(&p, 1, Duration::from_millis(1990)).await, "paused");
        let _t = p.acquire(1).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(p.held_back(Instant::now()).is_some());
    }

    async fn futures_take(p: &Arc<Pacer>, n: usize) -> Vec<Turn> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(p.acquire(1).await.unwrap());
        }
        v
    }

    #[tokio::test(start_paused = true)]
    async fn a_bare_429_pauses_for_a_shared_backoff_that_doubles_and_learns_a_pace() {
        let p = pacer(settings());
        lock(&p.state).window = 8.0;
        // Eight successes, sent 100 ms apart: the server admitted about 10/s.
        for _ in 0..8 {
            let t = p.acquire(1).await.unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
            t.answered(&RateHeaders::default(), true, None);
        }
        let t = p.acquire(1).await.unwrap();
        t.rate_limited(&RateHeaders::default(), None);
        let pace = lock(&p.state).pace.unwrap();
        assert!(pace < 10.0 && pace > 5.0, "{pace}");
        assert!(
            waits(&p, 1, Duration::from_millis(240)).await,
            "250 ms pause"
        );
        let t = p.acquire(1).await.unwrap();
        t.rate_limited(&RateHeaders::default(), None);
        assert!(
            waits(&p, 1, Duration::from_millis(490)).await,
            "then 500 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_requests_zero_waits_for_the_refill() {
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        t.answered(
            &headers(&[
                ("x-ratelimit-limit-requests", "10"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "1s"),
            ]),
            true,
            None,
        );
        // 10 per second refill: the next slot in 100 ms, then one each 100 ms.
        assert!(waits(&p, 1, Duration::from_millis(95)).await);
        let _a = p.acquire(1).await.unwrap();
        assert!(waits(&p, 1, Duration::from_millis(95)).await);
        let _b = p.acquire(1).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_budget_refills_only_up_to_its_limit() {
        let p = pacer(PacingSettings {
            max_concurrency: 50,
            ..settings()
        });
        let t = p.acquire(1).await.unwrap();
        t.answered(
            &headers(&[
                ("x-ratelimit-limit-requests", "10"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "1s"),
            ]),
            true,
            None,
        );
        // Five seconds idle refill ten, not fifty: ten go at once, the eleventh waits.
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut turns = Vec::new();
        for _ in 0..10 {
            turns.push(p.acquire(1).await.unwrap());
        }
        assert!(waits(&p, 1, Duration::from_millis(95)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_budget_is_spent_by_estimate_and_corrected_by_usage() {
        let p = pacer(settings());
        let t = p.acquire(500).await.unwrap();
        t.answered(
            &headers(&[
                ("x-ratelimit-limit-tokens", "1000"),
                ("x-ratelimit-remaining-tokens", "500"),
                ("x-ratelimit-reset-tokens", "50s"),
            ]),
            true,
            Some((100, 20)),
        );
        // 500 are left, and 10 come back each second: 900 take 40 s.
        assert!(waits(&p, 900, Duration::from_secs(39)).await);
        let _a = p.acquire(400).await.unwrap();
        assert_eq!(p.typical_output(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn usage_corrects_later_estimates() {
        let p = pacer(settings());
        let body =
            json!({"messages": [{"role": "user", "content": "x".repeat(400)}], "max_tokens": 10});
        assert_eq!(p.estimate(&body), (110, 100));
        let (cost, prompt) = p.estimate(&body);
        let t = p.acquire_for(cost, prompt).await.unwrap();
        // The server counted 150 prompt tokens where 100 were estimated.
        t.answered(&RateHeaders::default(), true, Some((150, 5)));
        assert_eq!(p.estimate(&body), (160, 100));
        let without = json!({"messages": [{"role": "user", "content": "x".repeat(400)}]});
        assert_eq!(
            p.estimate(&without).0,
            150 + 5,
            "the typical answer stands in for max_tokens"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_caps_what_the_server_would_allow() {
        let p = pacer(PacingSettings {
            tpm: Some(600),
            ..settings()
        });
        lock(&p.state).window = 8.0;
        let _a = p.acquire(100).await.unwrap();
        // 600 a minute is 10 a second: 100 tokens hold the next request 10 s.
        assert!(waits(&p, 100, Duration::from_millis(9_900)).await);
        let _b = p.acquire(100).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn refused_for_max_rate_limit_wait_gives_up_for_everyone() {
        let p = pacer(PacingSettings {
            max_rate_limit_wait: Duration::from_secs(5),
            ..settings()
        });
        loop {
            match p.acquire(1).await {
                Ok(t) => {
                    t.rate_limited(&RateHeaders::default(), Some(Duration::from_secs(1)));
                }
                Err(refusal) => {
                    assert_eq!(refusal, Refusal::WaitExceeded(Duration::from_secs(5)));
                    break;
                }
            }
        }
        assert!(p.acquire(1).await.is_err(), "and stays refused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_max_rate_limit_wait_clock() {
        let p = pacer(PacingSettings {
            max_rate_limit_wait: Duration::from_secs(5),
            ..settings()
        });
        for _ in 0..4 {
            let t = p.acquire(1).await.unwrap();
            t.rate_limited(&RateHeaders::default(), Some(Duration::from_secs(3)));
            let t = p.acquire(1).await.unwrap();
            t.answered(&RateHeaders::default(), true, None);
        }
        assert!(p.acquire(1).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn quota_refuses_every_later_request() {
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        t.quota_exhausted("out of credit");
        assert_eq!(
            p.acquire(1).await.unwrap_err(),
            Refusal::Quota("out of credit".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pacers_are_per_base_url_and_model_and_count_429s() {
        let pacers = Pacers::new(settings());
        let a = pacers.get("http://x/v1/", "m1");
        let b = pacers.get("http://x/v1/", "m2");
        let t = a.acquire(1).await.unwrap();
        t.rate_limited(&RateHeaders::default(), Some(Duration::from_secs(60)));
        // m2 is not paused by m1's limit.
        assert!(!waits(&b, 1, Duration::from_millis(1)).await);
        assert!(Arc::ptr_eq(&a, &pacers.get("http://x/v1/", "m1")));
        assert_eq!(pacers.rate_limited(), 1);
        assert!(
            pacers
                .held_back()
                .is_some_and(|s| s.contains("held back by the server"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_turn_frees_its_slot() {
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        drop(t);
        assert!(!waits(&p, 1, Duration::from_millis(1)).await);
    }
}
