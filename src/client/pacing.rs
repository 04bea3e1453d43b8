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
//   allowance is whole again, so `(limit - remaining) / reset` is the refill rate. Groq (requests
//   per day, tokens per minute, same names and formats) sends the same family. Azure OpenAI sends
//   only `x-ratelimit-remaining-requests` and `-tokens` (no limit, no reset: EvolvingPrograms/oaib#11,
//   Azure/azure-rest-api-specs#26884), and on a 429 for tokens `x-rate-limit-reset-tokens: 55`
//   (openai-python#937), read as the tokens' reset.
// - A 429 for rate has `"code": "rate_limit_exceeded"`; a 429 for billing has
//   `{"error": {"message": "You exceeded your current quota, please check your plan and billing
//   details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}`
//   (ChatGPTNextWeb/NextChat#3123; older keys send `"code": null` with the same `type`). The
//   quota case is detected in `super::ChatClient::http_error` and never reaches a pacer.
// - `retry-after-ms` before `Retry-After` (seconds or an HTTP date), as openai-python's
//   `_calculate_retry_timeout` reads them (`super::retry::retry_after`, which also knows the
//   gateways' spellings).
// - The LiteLLM proxy (docs.litellm.ai/docs/proxy/response_headers; BerriAI/litellm 1.108.7):
//   every upstream header comes back prefixed `llm_provider-` (`_get_llm_provider_headers` in
//   `litellm/litellm_core_utils/llm_response_utils/get_headers.py`), so a 429 relayed from OpenAI
//   keeps its resets only as `llm_provider-x-ratelimit-reset-requests`; the plain names are read
//   first, the prefixed ones when they are missing. For a deployment's own `rpm`/`tpm`
//   (`Router.get_remaining_model_group_usage` in `litellm/router.py`) its successes carry
//   `x-ratelimit-limit-requests` and `x-ratelimit-remaining-requests` and no reset: the limits are
//   fixed calendar-minute windows (`model_rate_limit_check.py` keys its counter by `%H-%M`), and
//   its 429 says `llm_provider-retry-after: 60` whatever is left of the minute. A budget reported
//   with its limit but without a reset is therefore modelled as a fixed window (`Budget::window`):
//   it does not refill by itself; when it is spent the pacer sends one probe every `PROBE_EVERY`
//   (a 429 costs the server nothing), and the first request admitted after that, its remaining
//   back near the limit, reopens the window at once, whatever the 429's pause said.
// - OpenRouter (openrouter.ai/docs/api_reference/limits: "X-RateLimit-* headers on the error
//   response"): `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` as epoch
//   milliseconds (`"X-RateLimit-Reset": "1761609600000"` for `free-models-per-day`,
//   Gitlawb/openclaude#936). Without a `-requests`/`-tokens` suffix they name no budget, so only
//   their reset is used, as the wait after a 429 (`RateHeaders::wait_hint`).
// - Servers that send no rate headers at all, so that only the 429 (or 503) itself and the shared
//   backoff and window apply: vLLM (no built-in limit; docs.vllm.ai serving/openai_compatible_server),
//   Text Generation Inference (its `--max-concurrent-requests` overflow is `429 Model is
//   overloaded`, `InferError::Overloaded => StatusCode::TOO_MANY_REQUESTS` in
//   huggingface/text-generation-inference `router/src/server.rs`), Ollama (`503 server busy,
//   please try again. maximum pending requests exceeded` past `OLLAMA_MAX_QUEUE`, ollama/ollama#4144),
//   LM Studio (queues requests, lmstudio-ai/lms#69), Cloudflare AI Gateway (a 429 when its rate
//   limit is hit; its `cf-aig-*` headers configure caching, retries and logs,
//   developers.cloudflare.com/ai-gateway/glossary) and Portkey (passes the provider's headers
//   through; its own are `x-portkey-trace-id`, `x-portkey-retry-attempt-count`, ...,
//   portkey.ai/docs/api-reference/inference-api/response-schema).
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
/// While a fixed window is spent, one request goes out this often to see whether it reopened.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A success reporting at least this share of the limit left, from a request sent after the window
/// was seen spent, means the window reopened.
const REOPENED_SHARE: f64 = 0.5;
/// Waiting longer than this on the server's own budget counts as being held back by it (the
/// progress line says so, and `--max-rate-limit-wait` bounds it as it bounds a 429's pause).
const HELD_AFTER: Duration = Duration::from_secs(1);

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
    /// `retry-after-ms` / `Retry-After` (or a gateway's spelling), when sent.
    pub(crate) retry_after: Option<Duration>,
    /// `OpenRouter`'s `X-RateLimit-Remaining` / `X-RateLimit-Reset` (no budget named).
    pub(crate) remaining_any: Option<f64>,
    pub(crate) reset_any: Option<Duration>,
}

impl RateHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let now = std::time::SystemTime::now();
        // The plain name, else LiteLLM's `llm_provider-` copy of an upstream's header.
        let text = |name: &str| {
            let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            get(name)
                .or_else(|| get(&format!("llm_provider-{name}")))
                .map(str::trim)
        };
        // A count; LiteLLM reports `limit - used`, negative once past the limit: none left.
        let number = |name: &str| {
            text(name)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|n| n.is_finite())
                .map(|n| n.max(0.0))
        };
        let reset = |name: &str| text(name).and_then(parse_reset);
        Self {
            remaining_any: number("x-ratelimit-remaining"),
            reset_any: text("x-ratelimit-reset").and_then(|v| parse_reset_at(v, now)),
            limit_requests: number("x-ratelimit-limit-requests"),
            remaining_requests: number("x-ratelimit-remaining-requests"),
            reset_requests: reset("x-ratelimit-reset-requests"),
            limit_tokens: number("x-ratelimit-limit-tokens"),
            remaining_tokens: number("x-ratelimit-remaining-tokens"),
            // Azure OpenAI's 429 for tokens spells it `x-rate-limit-reset-tokens` (openai-python#937).
            reset_tokens: reset("x-ratelimit-reset-tokens")
                .or_else(|| reset("x-rate-limit-reset-tokens")),
            retry_after: super::retry::retry_after(headers, now),
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
            (None, None) => self.reset_requests.max(self.reset_tokens).or_else(|| {
                self.reset_any
                    .filter(|_| !self.remaining_any.is_some_and(|r| r >= 1.0))
            }),
            (a, b) => a.max(b),
        }
    }
}

/// `OpenRouter`'s `X-RateLimit-Reset`: when the limit resets as epoch milliseconds (or seconds, for
/// a value that small), else a duration as `parse_reset` reads it. Bounded like `parse_reset`.
fn parse_reset_at(text: &str, now: std::time::SystemTime) -> Option<Duration> {
    const DAY: Duration = Duration::from_secs(86_400);
    let n = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    let at = match n {
        Some(ms) if ms >= 1e12 => Duration::from_secs_f64((ms / 1000.0).min(1e11)),
        Some(secs) if secs >= 1e9 => Duration::from_secs_f64(secs.min(1e11)),
        _ => return parse_reset(text),
    };
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(at.saturating_sub(since_epoch).min(DAY))
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
/// was full and refilled nothing, which a report from a request sent earlier cannot). A budget
/// whose reports name its limit but never a reset is a fixed window (`LiteLLM`'s calendar minutes): it does not
/// refill by itself, and goes back up only when a request sent after it was seen spent is admitted
/// with its remaining near the limit.
#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: f64,
    /// Per second; from `(limit - remaining) / reset`, else `limit` per minute (unused in a window).
    refill: f64,
    level: f64,
    level_at: Instant,
    /// The sequence number of the request whose report the level was last anchored on.
    seq: u64,
    /// No report named a reset: a fixed window.
    window: bool,
    /// The window was seen spent when this many requests had been sent: a success from a later
    /// one was admitted in a new window.
    spent_at_seq: Option<u64>,
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
        // LiteLLM names its limit; Azure OpenAI names neither limit nor reset (only the
        // remaining counts, EvolvingPrograms/oaib#11): that stays a bucket refilling per minute.
        let window = r.reset.is_none() && r.limit.is_some() && old.is_none_or(|b| b.window);
        if window {
            return Some(Self::update_window(old, r, now));
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
            window: false,
            spent_at_seq: None,
        })
    }

    /// `update` for a fixed window: the level follows the reports down, and goes back up only when
    /// the window reopened (see `Budget`).
    fn update_window(old: Option<Self>, r: &Report, now: Instant) -> Self {
        let limit = r
            .limit
            .or(old.map(|b| b.limit))
            .unwrap_or(r.remaining)
            .max(r.remaining)
            .max(1.0);
        let reported = (r.remaining - r.spent_since).min(limit);
        let reopened = old.is_some_and(|b| {
            b.spent_at_seq.is_some_and(|spent| r.seq > spent)
                && r.remaining >= (limit * REOPENED_SHARE).max(1.0)
        });
        let level = match old {
            Some(b) if !reopened => b.level_now(now).min(reported),
            _ => reported,
        };
        let spent_at_seq = match old {
            Some(b) if !reopened => b.spent_at_seq,
            _ => None,
        };
        Self {
            limit,
            refill: limit / 60.0,
            level,
            level_at: now,
            seq: r.seq,
            window: true,
            spent_at_seq,
        }
    }

    fn level_now(&self, now: Instant) -> f64 {
        if self.window {
            return self.level.min(self.limit);
        }
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
    /// The first moment since the last success that the server held the batch back: a 429, or its
    /// budget holding the next request longer than `HELD_AFTER`.
    held_since: Option<Instant>,
    /// A probe of a spent fixed window is in flight; the next may leave at `next_probe`.
    probing: bool,
    next_probe: Instant,
    /// A failure that looked like congestion (see `Turn::congested`) was seen: the adaptive
    /// window applies even when the headers describe the server's budget.
    congested: bool,
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
    /// Sent as the probe of a spent fixed window.
    probe: bool,
    /// Requests in flight once this one was sent (itself included).
    in_flight_at_send: usize,
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
                held_since: None,
                probing: false,
                next_probe: now,
                congested: false,
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
                if let Some(since) = s.held_since {
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
                    Wait::Ready { probe } => {
                        let mut turn = s.take(self, now, estimate);
                        turn.prompt_estimate = prompt;
                        turn.probe = probe;
                        s.probing |= probe;
                        return Ok(turn);
                    }
                    Wait::Until { at, held } => {
                        if held && at.saturating_duration_since(now) > HELD_AFTER {
                            // Bounded by --max-rate-limit-wait like a 429's pause (the deadline
                            // below), and reported as held back.
                            s.held_since.get_or_insert(now);
                        }
                        let deadline = s
                            .held_since
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
        let since = s.held_since?;
        let held = now.saturating_duration_since(since).as_secs();
        let spent_window = [s.requests, s.tokens]
            .iter()
            .flatten()
            .any(|b| b.window && b.spent_at_seq.is_some());
        let how = if spent_window {
            format!(
                ", its window spent (a probe every {}s)",
                PROBE_EVERY.as_secs()
            )
        } else {
            s.pace
                .or_else(|| s.requests.map(|b| b.refill))
                .map_or_else(String::new, |p| format!(", pace {p:.1} req/s"))
        };
        // The jobs the progress line counts as in flight may all be waiting here, unsent.
        let sent = match s.in_flight {
            0 => "nothing sent".to_owned(),
            n => format!("{n} sent"),
        };
        Some(format!(
            "held back by the server for {held}s ({sent}){how}, {} at once",
            s.effective_window()
        ))
    }
}

enum Wait {
    /// Send now; `probe`: as the one probe of a spent fixed window.
    Ready { probe: bool },
    /// Until `at`; `held`: the server's budget or pause is what holds the request.
    Until { at: Instant, held: bool },
    /// Until a request in flight ends.
    Slot,
}

impl State {
    fn effective_window(&self) -> usize {
        if (self.requests.is_some() || self.tokens.is_some()) && !self.congested {
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

    fn wait(&mut self, now: Instant, estimate: f64) -> Wait {
        // A spent fixed window: when it reopens is unknown (a 429's pause is only an upper bound),
        // so one request at a time goes to find out, every PROBE_EVERY.
        let sent = self.sent;
        let mut probe = false;
        let mut newly_spent = false;
        for (budget, cost) in [(&mut self.requests, 1.0), (&mut self.tokens, estimate)] {
            if let Some(b) = budget.as_mut()
                && b.window
                && (b.spent_at_seq.is_some() || b.level_now(now) < cost.min(b.limit))
            {
                newly_spent |= b.spent_at_seq.is_none();
                b.spent_at_seq.get_or_insert(sent);
                probe = true;
            }
        }
        if newly_spent && !self.probing {
            // Spent by what was sent: the first probe a little later, not at once.
            self.next_probe = self.next_probe.max(now + PROBE_EVERY);
        }
        let mut server = now;
        if probe {
            if self.probing {
                return Wait::Slot;
            }
            server = server.max(self.next_probe);
        } else if let Some(until) = self.paused_until {
            server = server.max(until);
        }
        for (budget, cost) in [(&self.requests, 1.0), (&self.tokens, estimate)] {
            if let Some(b) = budget.filter(|b| !b.window) {
                server = server.max(now + b.wait_for(cost, now));
            }
        }
        let mut at = server;
        if self.pace.is_some() {
            at = at.max(self.next_paced);
        }
        at = at.max(self.next_tpm);
        if at > now {
            return Wait::Until {
                at,
                held: server >= at,
            };
        }
        if self.in_flight >= self.effective_window() {
            return Wait::Slot;
        }
        Wait::Ready { probe }
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
            probe: false,
            in_flight_at_send: self.in_flight,
            done: false,
        }
    }

    /// Re-anchor the budgets on a report. True when a spent fixed window reopened with it.
    fn observe(&mut self, turn: &Turn, headers: &RateHeaders) -> bool {
        let now = Instant::now();
        let spent = |b: Option<Budget>| b.is_some_and(|b| b.spent_at_seq.is_some());
        let was_spent = spent(self.requests) || spent(self.tokens);
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
        let reopened = was_spent && !spent(self.requests) && !spent(self.tokens);
        if reopened {
            // The server admitted a request in a new window: its pause is over, and the window,
            // not a pace learnt from bare 429s, says what may go.
            self.paused_until = None;
            self.next_probe = now;
            self.pace = None;
        }
        reopened
    }

    /// A probe's answer came back: the next may leave in `PROBE_EVERY` (at once if it reopened).
    fn probe_done(&mut self, turn: &Turn, reopened: bool) {
        if turn.probe {
            self.probing = false;
            if !reopened {
                self.next_probe = Instant::now() + PROBE_EVERY;
            }
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
            let reopened = s.observe(&self, headers);
            s.probe_done(&self, reopened);
            if success {
                s.held_since = None;
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
            s.probe_done(&self, false);
            s.refused = Some(Refusal::Quota(message.to_owned()));
        }
        pacer.changed.notify_one();
    }

    /// The request failed in a way that says the server is over its capacity rather than that
    /// this request is wrong: an answer cut short or left incomplete, a 503 "busy"/"loading", a
    /// connection refused or reset (`ApiError::is_congestion`). When other requests were in flight
    /// when it was sent or when it failed, that is congestion: the adaptive window is halved as for a
    /// 429 (once per event, ending slow start), and from then on it applies even when the server's
    /// headers describe its budget; the caller should put the request back in line without
    /// spending a retry, and `true` is returned. A request that was alone gets `false`: the server
    /// fails even one request at a time, so the failure is the request's, for the retry policy.
    pub(crate) fn congested(mut self, headers: &RateHeaders) -> bool {
        self.done = true;
        let pacer = Arc::clone(&self.pacer);
        let now = Instant::now();
        let mut s = lock(&pacer.state);
        s.in_flight = s.in_flight.saturating_sub(1);
        s.observe(&self, headers);
        s.probe_done(&self, false);
        // Others in flight now, or sent while this one was (a later sequence number).
        let crowded = s.in_flight > 0 || s.sent > self.seq || self.in_flight_at_send > 1;
        if crowded {
            let new_event = s.last_decrease.is_none_or(|t| self.sent_at > t);
            if new_event {
                if !s.congested {
                    // The window was not in use: start it from what was in flight.
                    #[allow(clippy::cast_precision_loss)]
                    let in_flight = self.in_flight_at_send.max(s.in_flight + 1) as f64;
                    s.window = s.window.min(in_flight);
                }
                s.congested = true;
                s.last_decrease = Some(now);
                s.slow_start = false;
                s.window = (s.window / 2.0).max(1.0);
            }
        }
        drop(s);
        pacer.changed.notify_one();
        crowded
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
            s.probe_done(&self, false);
            s.held_since.get_or_insert(now);
            let sent = s.sent;
            let mut window = false;
            let st = &mut *s;
            for b in [st.requests.as_mut(), st.tokens.as_mut()]
                .into_iter()
                .flatten()
            {
                if b.window {
                    // Whichever budget ran out, nothing more goes until a probe is admitted.
                    b.spent_at_seq.get_or_insert(sent);
                    window = true;
                }
            }
            if window {
                if !self.probe {
                    s.next_probe = s.next_probe.max(now + PROBE_EVERY);
                }
                // A probe's 429 is the same hold: no new pause, no second decrease.
                if self.probe {
                    drop(s);
                    lock(&pacer.totals).rate_limited += 1;
                    pacer.changed.notify_one();
                    // The next probe, not a pause, is what this request waits for.
                    return PROBE_EVERY;
                }
            }
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
                // A pace is a guess for a server that says nothing; a window says what it allows.
                if headers.is_empty() && !window {
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
            s.probe_done(self, false);
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

    #[test]
    fn litellm_prefixed_headers_are_read_when_the_plain_ones_are_missing() {
        // A 429 LiteLLM relays from an OpenAI upstream: every header under `llm_provider-`.
        let h = headers(&[
            ("llm_provider-x-ratelimit-limit-requests", "60"),
            ("llm_provider-x-ratelimit-remaining-requests", "0"),
            ("llm_provider-x-ratelimit-reset-requests", "1.5s"),
            ("llm_provider-x-ratelimit-remaining-tokens", "900"),
            ("llm_provider-retry-after", "2"),
        ]);
        assert_eq!(h.limit_requests, Some(60.0));
        assert_eq!(h.remaining_requests, Some(0.0));
        assert_eq!(h.reset_requests, Some(Duration::from_millis(1500)));
        assert_eq!(h.remaining_tokens, Some(900.0));
        assert_eq!(h.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(h.wait_hint(), Some(Duration::from_millis(1500)));
        // The server's own headers win over a relayed upstream's.
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "59"),
            ("llm_provider-x-ratelimit-remaining-requests", "3"),
        ]);
        assert_eq!(h.remaining_requests, Some(59.0));
        // LiteLLM reports `limit - used`, below zero once past the limit: none left.
        let h = headers(&[("x-ratelimit-remaining-requests", "-7")]);
        assert_eq!(h.remaining_requests, Some(0.0));
    }

    #[test]
    fn openrouter_reset_in_epoch_milliseconds_is_the_wait_after_a_429() {
        let now = std::time::SystemTime::now();
        let epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap();
        let in_30s = (epoch + Duration::from_secs(30)).as_millis().to_string();
        let got = parse_reset_at(&in_30s, now).unwrap();
        assert!(
            got <= Duration::from_secs(30) && got > Duration::from_secs(29),
            "{got:?}"
        );
        let past = epoch
            .checked_sub(Duration::from_secs(5))
            .unwrap()
            .as_millis()
            .to_string();
        assert_eq!(parse_reset_at(&past, now), Some(Duration::ZERO));
        let in_10s_as_secs = (epoch.as_secs() + 10).to_string();
        let got = parse_reset_at(&in_10s_as_secs, now).unwrap();
        assert!(got <= Duration::from_secs(10) && got > Duration::from_secs(8));
        assert_eq!(parse_reset_at("7s", now), Some(Duration::from_secs(7)));
        let far = (epoch + Duration::from_secs(10 * 86_400))
            .as_millis()
            .to_string();
        assert_eq!(parse_reset_at(&far, now), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_reset_at("soon", now), None);

        let mut map = HeaderMap::new();
        map.insert("x-ratelimit-limit", HeaderValue::from_static("50"));
        map.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        map.insert("x-ratelimit-reset", HeaderValue::from_str(&in_30s).unwrap());
        let h = RateHeaders::parse(&map);
        assert!(h.is_empty(), "no budget is named");
        assert!(
            h.wait_hint()
                .is_some_and(|d| d > Duration::from_secs(29) && d <= Duration::from_secs(30))
        );
        map.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert_eq!(RateHeaders::parse(&map).wait_hint(), None, "not spent");
    }

    /// Issue 19 L1: one answer saying the budget is 1 a day, spent, held every later request up to
    /// an hour each, past --max-rate-limit-wait, with the progress line saying nothing.
    #[tokio::test(start_paused = true)]
    async fn a_budget_wait_past_max_rate_limit_wait_is_held_back_and_then_refused() {
        let pacers = Pacers::new(PacingSettings {
            max_rate_limit_wait: Duration::from_secs(5),
            ..settings()
        });
        let p = pacers.get("http://127.0.0.1/v1/", "m");
        let t = p.acquire(1).await.unwrap();
        t.answered(
            &headers(&[
                ("x-ratelimit-limit-requests", "1"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "24h"),
            ]),
            true,
            None,
        );
        let started = Instant::now();
        let waiting = {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.acquire(1).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let note = pacers.held_back().expect("said to be held back");
        assert!(
            note.contains("held back by the server for 2s (nothing sent)"),
            "{note}"
        );
        assert_eq!(
            waiting.await.unwrap().unwrap_err(),
            Refusal::WaitExceeded(Duration::from_secs(5))
        );
        assert!(started.elapsed() <= Duration::from_secs(6));
    }

    /// `LiteLLM`: `x-ratelimit-limit-requests` and `-remaining-requests` without a reset, fixed
    /// calendar-minute windows, and a 429 saying 60 s whatever is left of the minute.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_reopens_on_a_probe_instead_of_waiting_out_the_429s_pause() {
        let p = pacer(PacingSettings {
            max_concurrency: 30,
            ..settings()
        });
        let report = |remaining: &'static str| {
            headers(&[
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", remaining),
            ])
        };
        let t = p.acquire(1).await.unwrap();
        t.answered(&report("10"), true, None);
        // Ten are left, and the window does not refill by itself.
        let ten = futures_take(&p, 10).await;
        assert!(
            waits(&p, 1, Duration::from_secs(1)).await,
            "nothing more before a probe is due"
        );
        for t in ten {
            t.answered(&report("0"), true, None);
        }
        // A request refused for the window: LiteLLM's 429 names 60 s.
        let t = p.acquire(1).await.unwrap();
        let refused_at = Instant::now();
        t.rate_limited(&RateHeaders::default(), Some(Duration::from_secs(60)));
        // Probes, one at a time, every PROBE_EVERY; the window reopens 7 s later.
        loop {
            let probe = p.acquire(1).await.unwrap();
            assert!(probe.probe);
            assert!(
                waits(&p, 1, Duration::from_millis(100)).await,
                "one probe at a time"
            );
            if refused_at.elapsed() < Duration::from_secs(7) {
                probe.rate_limited(&RateHeaders::default(), Some(Duration::from_secs(60)));
            } else {
                probe.answered(&report("59"), true, None);
                break;
            }
        }
        let reopened_after = refused_at.elapsed();
        assert!(
            reopened_after < Duration::from_secs(10),
            "{reopened_after:?}: not the 60 s pause"
        );
        // The window sends what it allows at once: 59, up to --concurrency (30) in flight.
        let burst = futures_take(&p, 30).await;
        assert_eq!(refused_at.elapsed(), reopened_after, "no pacing");
        assert!(burst.iter().all(|t| !t.probe));
        assert!(
            waits(&p, 1, Duration::from_millis(10)).await,
            "30 in flight"
        );
        drop(burst);
        let rest = futures_take(&p, 29).await;
        assert!(
            refused_at.elapsed() <= reopened_after + Duration::from_millis(10),
            "no pacing after the 30 in flight ended"
        );
        drop(rest);
        assert!(
            p.acquire(1).await.unwrap().probe,
            "the 60 spent: probing again"
        );
    }

    /// Azure `OpenAI` sends only `x-ratelimit-remaining-*`: no limit, no reset. No fixed window is
    /// assumed: the budget refills per minute as before.
    #[tokio::test(start_paused = true)]
    async fn remaining_counts_alone_are_a_bucket_not_a_fixed_window() {
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        t.answered(
            &headers(&[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-remaining-tokens", "61353"),
            ]),
            true,
            None,
        );
        assert!(lock(&p.state).requests.is_some_and(|b| !b.window));
        // Azure's 429 for tokens: `x-rate-limit-reset-tokens`.
        let h = headers(&[("x-rate-limit-reset-tokens", "55")]);
        assert_eq!(h.reset_tokens, Some(Duration::from_secs(55)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_a_reset_is_no_fixed_window_and_is_not_probed() {
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        t.rate_limited(
            &headers(&[
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "20s"),
            ]),
            None,
        );
        assert!(
            waits(&p, 1, Duration::from_millis(19_900)).await,
            "the reset is honoured"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn congestion_with_others_in_flight_halves_the_window_even_with_headers() {
        let p = pacer(PacingSettings {
            max_concurrency: 16,
            ..settings()
        });
        let roomy = headers(&[
            ("x-ratelimit-limit-requests", "1000"),
            ("x-ratelimit-remaining-requests", "999"),
            ("x-ratelimit-reset-requests", "1s"),
        ]);
        let t = p.acquire(1).await.unwrap();
        t.answered(&roomy, true, None);
        assert_eq!(
            lock(&p.state).effective_window(),
            16,
            "headers: the budget rules"
        );
        let mut eight = futures_take(&p, 8).await.into_iter();
        assert!(
            eight.next().unwrap().congested(&roomy),
            "others were in flight"
        );
        assert_eq!(lock(&p.state).effective_window(), 4, "8 in flight, halved");
        assert!(
            eight.next().unwrap().congested(&roomy),
            "the same event: no second halving"
        );
        assert_eq!(lock(&p.state).effective_window(), 4);
        drop(eight);
        // Alone, a failure is the request's own.
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        assert!(!t.congested(&RateHeaders::default()));
        assert!((lock(&p.state).window - 8.0).abs() < 1e-9, "no decrease");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_turn_frees_its_slot() {
        let p = pacer(settings());
        let t = p.acquire(1).await.unwrap();
        drop(t);
        assert!(!waits(&p, 1, Duration::from_millis(1)).await);
    }
}
