//! The HTTP side: one streaming chat request with retries. Knows nothing about jobs or output formats.

pub(crate) mod limits;
pub(crate) mod pacing;
pub(crate) mod params;
pub(crate) mod retry;
pub(crate) mod sse;
pub(crate) mod transport;
pub(crate) mod url;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use crate::diag;
use crate::exit::ExitStatus;
use crate::sanitize;
pub(crate) use limits::{DEFAULT_MAX_RESPONSE_BYTES, MAX_ERROR_BODY_BYTES, read_capped};
pub(crate) use pacing::Pacers;
pub(crate) use retry::{Decision, RetryPolicy};
use sse::SseParser;

/// Token counts as the result schema names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the names of the public JSON fields"
)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) total_tokens: u64,
    /// Of `output_tokens`, those spent reasoning, when the server says
    /// (`completion_tokens_details.reasoning_tokens`, or `output_tokens_details`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_tokens: Option<u64>,
    /// Of `input_tokens`, those read from the provider's prompt cache
    /// (`prompt_tokens_details.cached_tokens`; `DeepSeek`'s `prompt_cache_hit_tokens`); 0 when
    /// the server reports none (plain 32-bit numbers: this struct rides inside `ApiError`,
    /// whose size clippy bounds).
    pub(crate) cache_read_input_tokens: u32,
    /// Input tokens written to the prompt cache, for the providers that report them
    /// (`prompt_tokens_details.cache_write_tokens` on `OpenRouter`, `cache_creation_input_tokens`);
    /// 0 otherwise.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) cache_creation_input_tokens: u32,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Usage {
    pub(crate) fn from_openai(v: &Value) -> Option<Self> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        let input = n("prompt_tokens")?;
        let output = n("completion_tokens").unwrap_or(0);
        let reasoning = ["completion_tokens_details", "output_tokens_details"]
            .iter()
            .find_map(|d| v.get(*d)?.get("reasoning_tokens")?.as_u64());
        let details = |k: &str| v.get("prompt_tokens_details")?.get(k)?.as_u64();
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Some(Self {
            input_tokens: input,
            output_tokens: output,
            total_tokens: n("total_tokens").unwrap_or(input + output),
            reasoning_tokens: reasoning,
            cache_read_input_tokens: details("cached_tokens")
                .or_else(|| n("cache_read_input_tokens"))
                .or_else(|| n("prompt_cache_hit_tokens"))
                .map_or(0, small),
            cache_creation_input_tokens: details("cache_write_tokens")
                .or_else(|| details("cache_creation_tokens"))
                .or_else(|| n("cache_creation_input_tokens"))
                .map_or(0, small),
        })
    }
}

/// A piece of a streamed answer: the text, or the model's reasoning before it
/// (`delta.reasoning_content` on `DashScope`, `DeepSeek`, vLLM and llama.cpp; `delta.reasoning` on
/// `OpenRouter`, Ollama and newer vLLM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Reasoning(&'a str),
}

/// The callback that sees each piece as it arrives.
pub(crate) type OnPiece<'d> = dyn FnMut(Piece<'_>) -> std::io::Result<()> + Send + 'd;

/// One request as a caller hands it to [`ChatClient::send`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// The full JSON body; the streaming fields are set by the client.
    pub(crate) body: &'a Value,
    /// Headers of this request only (a job's `headers`), over the client's own.
    pub(crate) headers: &'a [params::ExtraHeader],
    /// The body's `max_tokens` is qwen's own limit (a flag or a job's field): the client sends it
    /// under the name the host reads. `false` for a body the user wrote out in full.
    pub(crate) own_token_limit: bool,
}

/// A finished answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Completion {
    pub(crate) text: String,
    /// The reasoning streamed before the text (empty when there was none).
    pub(crate) reasoning: String,
    /// What was changed in the request because a server refused part of it (`adjusted`).
    pub(crate) adjusted: Vec<String>,
    /// `None` when the server sent no usage.
    pub(crate) usage: Option<Usage>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) response_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) server_model: Option<String>,
    /// The server sent tool or function calls: an answer even without text.
    pub(crate) structured: bool,
    pub(crate) created: Option<u64>,
    pub(crate) attempts: u32,
    pub(crate) api_duration: Duration,
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("API error: HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        /// The body's `error.code`, else `error.type` (`insufficient_quota`, `overloaded_error`).
        code: Option<String>,
    },
    #[error("network error: {0}")]
    Network(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the response stream was cut before it completed")]
    StreamCut,
    #[error("the server reported an error in the stream: {0}")]
    StreamError(String),
    #[error("unusable response: {0}")]
    InvalidResponse(String),
    #[error(
        "HTTP {status}: the server asked to wait {} before retrying, more than --max-retry-wait ({})",
        crate::diag::duration(*wait), crate::diag::duration(*max)
    )]
    RetryAfterTooLong {
        status: u16,
        wait: Duration,
        max: Duration,
    },
    #[error("HTTP 429: insufficient quota: {message}")]
    QuotaExhausted { message: String },
    #[error(
        "the server refused every request for {} (--max-rate-limit-wait); nothing more was sent",
        crate::diag::duration(*waited)
    )]
    RateLimitWait { waited: Duration },
    #[error("{}", empty_after_reasoning(finish_reason.as_deref()))]
    EmptyAfterReasoning {
        finish_reason: Option<String>,
        /// What the server reported the empty answer cost (it still counts against budgets).
        usage: Option<Usage>,
    },
    #[error("standard output was closed")]
    OutputClosed,
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    #[error(
        "cannot set up the HTTP client: the API key has characters not allowed in an HTTP header"
    )]
    InvalidKey,
    /// More than `--max-response-bytes` (of answer text, or of one event or body).
    #[error("the response is larger than --max-response-bytes ({limit} bytes): {what}")]
    TooLarge { limit: usize, what: &'static str },
    /// A 3xx: an API call never follows a redirect (it would resend the key elsewhere, or turn
    /// the POST into a GET).
    #[error(
        "API error: HTTP {status}: the server redirects to `{location}`; API requests are never redirected"
    )]
    Redirect { status: u16, location: String },
    /// The server's certificate failed verification: a configuration problem, not a temporary one.
    #[error("TLS certificate verification failed: {0}")]
    Certificate(String),
    /// The peer does not speak HTTP as it must (not HTTP at all, headers too large, a broken
    /// chunked body, a TLS failure other than the certificate): retrying cannot help.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server finished without any text or structured content.
    #[error("the server sent an empty answer (finish reason: {}){}", finish_reason.as_deref().unwrap_or("none"),
        if finish_reason.as_deref() == Some("content_filter") { "; the provider's content filter withheld it" } else { "" })]
    EmptyAnswer {
        finish_reason: Option<String>,
        /// What the server reported the empty answer cost (it still counts against budgets).
        usage: Option<Usage>,
    },
}

impl ApiError {
    /// The tokens a failed request still cost, when the server said (an empty answer).
    pub(crate) fn usage(&self) -> Option<Usage> {
        match self {
            Self::EmptyAnswer { usage, .. } | Self::EmptyAfterReasoning { usage, .. } => *usage,
            _ => None,
        }
    }

    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => retry::is_retryable_status(*status),
            Self::Network(_) | Self::Timeout(_) | Self::StreamCut => true,
            _ => false,
        }
    }

    /// The HTTP status the server answered with, when there was one.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } | Self::RetryAfterTooLong { status, .. } => Some(*status),
            Self::QuotaExhausted { .. } => Some(429),
            _ => None,
        }
    }

    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Http {
                status: 401 | 403, ..
            } => ExitStatus::Auth,
            Self::RetryAfterTooLong { .. } | Self::RateLimitWait { .. } => ExitStatus::TempFail,
            Self::OutputClosed => ExitStatus::Success,
            Self::Setup(_) | Self::InvalidKey | Self::Certificate(_) => ExitStatus::Config,
            e if e.is_retryable() => ExitStatus::TempFail,
            _ => ExitStatus::Failure,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Http {
                status: 401 | 403, ..
            } => "authentication_error",
            Self::Http { status: 429, .. }
            | Self::RetryAfterTooLong { .. }
            | Self::RateLimitWait { .. } => "rate_limit_error",
            Self::QuotaExhausted { .. } => "insufficient_quota",
            Self::Http { status, .. } if *status >= 500 => "server_error",
            Self::Http { .. } => "api_error",
            Self::Network(_) => "network_error",
            Self::Timeout(_) => "timeout",
            Self::StreamCut => "stream_cut",
            Self::StreamError(_) => "stream_error",
            Self::InvalidResponse(_) => "invalid_response",
            Self::OutputClosed => "output_closed",
            Self::Setup(_) | Self::InvalidKey => "configuration_error",
            Self::TooLarge { .. } => "response_too_large",
            Self::Redirect { .. } => "redirect",
            Self::Certificate(_) => "tls_error",
            Self::Protocol(_) => "protocol_error",
            Self::EmptyAnswer { .. } | Self::EmptyAfterReasoning { .. } => "empty_answer",
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::Http {
                status: 401 | 403, ..
            } => {
                "check OPENAI_API_KEY and that it belongs to the provider at OPENAI_BASE_URL (`qwen auth status` shows what is used)"
            }
            Self::Http { status: 404, .. } => {
                "check OPENAI_BASE_URL (it usually ends in /v1) and the model name"
            }
            Self::InvalidKey => "check the key for stray characters, such as a newline from a file",
            Self::Setup(_) => {
                "TLS needs a CA bundle: install the `ca-certificates` package, or point SSL_CERT_FILE at a PEM bundle"
            }
            Self::Certificate(_) => {
                "the server's certificate is not trusted: check OPENAI_BASE_URL, or point SSL_CERT_FILE at a PEM bundle holding its CA (a private or corporate CA)"
            }
            Self::Redirect { .. } => {
                "set OPENAI_BASE_URL to the final address (the one in `Location`), if you trust it"
            }
            Self::TooLarge { .. } => {
                "raise --max-response-bytes if such a large answer is expected, or ask for a shorter one"
            }
            Self::Protocol(_) => {
                "check OPENAI_BASE_URL: the host and port must serve an OpenAI-compatible HTTP API (and http vs https must match)"
            }
            Self::RetryAfterTooLong { .. } => {
                "raise --max-retry-wait, or retry the step later (exit 75 means temporary)"
            }
            Self::QuotaExhausted { .. } => {
                "the account behind the key is out of credit or over its spending limit: check the provider's billing page; retrying will not help"
            }
            Self::RateLimitWait { .. } => {
                "run again later with --resume (exit 75 means temporary), or raise --max-rate-limit-wait"
            }
            Self::EmptyAfterReasoning {
                finish_reason: Some(reason),
                ..
            } if reason == "length" => {
                "raise --max-tokens (reasoning counts against it), or lower --reasoning-effort"
            }
            Self::EmptyAfterReasoning { .. } => {
                "run again, or ask for a shorter answer; --show-reasoning shows what the model thought"
            }
            e if e.is_retryable() => "the failure looks temporary: retry later (exit 75)",
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

/// What became of a paced attempt.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// Refused for rate: wait for another turn.
    Requeue,
    Answered,
}

/// Wait for a turn at the pacer; a pacer that gave up (quota, or refused for too long) says why.
async fn wait_turn(pacer: &Arc<pacing::Pacer>, body: &Value) -> Result<pacing::Turn, ApiError> {
    let (estimate, prompt) = pacer.estimate(body);
    pacer
        .acquire_for(estimate, prompt)
        .await
        .map_err(|refusal| match refusal {
            pacing::Refusal::WaitExceeded(waited) => ApiError::RateLimitWait { waited },
            pacing::Refusal::Quota(message) => ApiError::QuotaExhausted { message },
        })
}

fn empty_after_reasoning(finish_reason: Option<&str>) -> String {
    match finish_reason {
        Some("length") => "the answer was empty after reasoning: the token limit was reached while the model was still reasoning (finish_reason: length)".to_owned(),
        Some(reason) => format!("the answer was empty after reasoning (finish_reason: {reason})"),
        None => "the answer was empty after reasoning".to_owned(),
    }
}

/// An `ApiError` after the retry policy gave up, with the attempts spent on it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) error: ApiError,
    pub(crate) attempts: u32,
    /// What was changed in the request before it failed for good (`adjusted`).
    pub(crate) adjusted: Vec<String>,
}

impl Failure {
    fn new(error: ApiError, attempts: u32, adjusted: &[params::Adjustment]) -> Self {
        Self {
            error,
            attempts,
            adjusted: described(adjusted),
        }
    }
}

/// The adjustments made to a request, as results report them.
fn described(adjusted: &[params::Adjustment]) -> Vec<String> {
    adjusted.iter().map(|a| a.describe()).collect()
}

/// Spaces requests out to at most `per_minute`, shared by all clones of a client.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    pub(crate) fn per_minute(per_minute: u32) -> Self {
        Self {
            interval: Duration::from_secs(60) / per_minute.max(1),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    pub(crate) async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Settings of the HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) debug: bool,
    pub(crate) max_connections: usize,
    /// `-H/--header`: sent with every request.
    pub(crate) headers: Vec<params::ExtraHeader>,
    /// The most answer text accepted (and the bound on one event or a whole JSON body).
    pub(crate) max_response_bytes: usize,
}

/// The key and the `Authorization` header made from it. Shared by all clones of a client, so
/// that a refreshed OAuth token reaches every request that starts afterwards.
struct Bearer {
    header: HeaderValue,
    key: SecretString,
}

impl Bearer {
    fn new(key: SecretString) -> Result<Self, ApiError> {
        let mut header = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            .map_err(|_| ApiError::InvalidKey)?;
        header.set_sensitive(true);
        Ok(Self { header, key })
    }
}

/// A chat-completions client for one endpoint and key; cheap to clone.
#[derive(Clone)]
pub(crate) struct ChatClient {
    http: reqwest::Client,
    url: Url,
    bearer: Arc<std::sync::RwLock<Bearer>>,
    settings: ClientSettings,
    limiter: Option<Arc<RateLimiter>>,
    /// A batch's shared pacing (see `pacing`); `None` for a single run.
    pacers: Option<Arc<Pacers>>,
    /// The token-limit name this host reads, for qwen's own limit.
    token_param: params::Param,
    /// Adjustments learned from refusals, shared by all clones (a batch adjusts once).
    learned: params::Learned,
    /// Header values that carry credentials (`-H`, a job file's `headers`): scrubbed like the key.
    secrets: Arc<std::sync::RwLock<Vec<SecretString>>>,
    /// What has been said once for the whole run (see [`ChatClient::first_notice`]).
    notices: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// Install the TLS crypto provider once per process (reqwest is built without a default one).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain client for small one-off requests to `target`'s host (the login's key check, the
/// OAuth server): connect timeout 10 s, 30 s for the whole request, no retries, no redirects, and
/// no proxy when the host is loopback.
pub(crate) fn one_off_http_client(target: &Url) -> Result<reqwest::Client, ApiError> {
    http_builder(target)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ApiError::Setup(error_chain(&e)))
}

/// The one way an HTTP client that carries the key is built (the chat client, the Batch API
/// client, the one-off clients): no redirects (a redirect would resend the key to another
/// address, or turn a POST into a GET), and `NO_PROXY` semantics for loopback (the key never
/// travels through a proxy to reach this machine).
pub(crate) fn http_builder(target: &Url) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("qwen-headless/", env!("CARGO_PKG_VERSION")));
    if url::is_loopback(target) {
        builder.no_proxy()
    } else {
        builder
    }
}

impl ChatClient {
    pub(crate) fn new(
        base_url: &Url,
        key: SecretString,
        settings: ClientSettings,
    ) -> Result<Self, ApiError> {
        let builder = http_builder(base_url)
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(settings.max_connections);
        let http = builder
            .build()
            .map_err(|e| ApiError::Setup(error_chain(&e)))?;
        Ok(Self {
            http,
            url: url::endpoint(base_url, "chat/completions"),
            bearer: Arc::new(std::sync::RwLock::new(Bearer::new(key)?)),
            token_param: params::token_param_for(base_url),
            settings,
            limiter: None,
            pacers: None,
            learned: params::Learned::default(),
            secrets: Arc::default(),
            notices: Arc::default(),
        })
        .inspect(|client| {
            let values: Vec<String> = client
                .settings
                .headers
                .iter()
                .filter(|h| h.is_secret())
                .map(|h| h.value.clone())
                .collect();
            client.add_secrets(values);
        })
    }

    /// Use another key from now on, for this client and all its clones (a refreshed OAuth token).
    pub(crate) fn set_key(&self, key: SecretString) -> Result<(), ApiError> {
        *self
            .bearer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Bearer::new(key)?;
        Ok(())
    }

    /// Scrub these values from server text from now on, like the key (a job file's credential
    /// headers), for this client and all its clones.
    pub(crate) fn add_secrets(&self, values: impl IntoIterator<Item = String>) {
        self.secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(values.into_iter().map(SecretString::from));
    }

    fn auth_header(&self) -> HeaderValue {
        self.bearer().header.clone()
    }

    /// The current key and header (a poisoned lock still holds a whole value: it is only ever
    /// replaced whole).
    fn bearer(&self) -> std::sync::RwLockReadGuard<'_, Bearer> {
        self.bearer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[must_use]
    pub(crate) fn with_rate_limit(mut self, limiter: Option<Arc<RateLimiter>>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Pace requests to the server's limits, shared by all clones (a batch).
    #[must_use]
    pub(crate) fn with_pacers(mut self, pacers: Arc<Pacers>) -> Self {
        self.pacers = Some(pacers);
        self
    }

    /// True the first time `what` is asked about in this run (by any clone): for a warning about
    /// the state of a model, not of one request, which a batch would otherwise print per job.
    pub(crate) fn first_notice(&self, what: &str) -> bool {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(what.to_owned())
    }

    /// Send one chat request, retrying per the policy. `on_piece` gets each piece of text (and of
    /// reasoning) as it arrives; when `deltas_are_final` is set, text handed to it counts as shown
    /// to the user, so a stream cut after that is not retried. A 400 that refuses one of the
    /// parameters in [`params::Param`] gets one adjusted retry per parameter, reported once per run
    /// and remembered for every later request of this client and its clones. In a batch
    /// (`with_pacers`), each attempt first waits its turn at the pacer of its model, and a 429 for
    /// rate sends it back to the line; neither counts against `--retries`.
    pub(crate) async fn send(
        &self,
        request: Outgoing<'_>,
        on_piece: &mut OnPiece<'_>,
        deltas_are_final: bool,
    ) -> Result<Completion, Failure> {
        let mut body = streaming_body(request.body);
        let mut adjusted = self.learned.prepare(
            &mut body,
            request.own_token_limit.then_some(self.token_param),
        );
        let mut attempt = 0;
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let pacer = self
            .pacers
            .as_ref()
            .map(|p| p.get(self.url.as_str(), &model));
        // Failures that count against --retries (a paced 429 and an adjusted retry do not).
        let mut failures = 0;
        loop {
            let turn = match &pacer {
                Some(pacer) => Some(
                    wait_turn(pacer, &body)
                        .await
                        .map_err(|error| Failure::new(error, attempt, &adjusted))?,
                ),
                None => None,
            };
            attempt += 1;
            let mut emitted = false;
            let mut rate = pacing::RateHeaders::default();
            let result = {
                let mut tracked = |piece: Piece<'_>| {
                    emitted |= matches!(piece, Piece::Text(_));
                    on_piece(piece)
                };
                self.attempt(&body, request.headers, &mut tracked, attempt, &mut rate)
                    .await
            };
            if let Some(turn) = turn
                && self
                    .settle(turn, &result, &rate, attempt)
                    .map_err(|error| Failure::new(error, attempt, &adjusted))?
                    == Settled::Requeue
            {
                continue;
            }
            let error = match result {
                Ok(mut completion) => {
                    // `api_duration` is the caller's: it spans every model and turn.
                    completion.attempts = attempt;
                    completion.adjusted = described(&adjusted);
                    return Ok(completion);
                }
                Err(e) => e,
            };
            if let Some(adjustment) = self.learned.retry_adjustment(&error, &mut body, &adjusted) {
                adjusted.push(adjustment);
                continue;
            }
            failures += 1;
            let wait =
                match self
                    .settings
                    .retry
                    .decide(error, failures, deltas_are_final && emitted)
                {
                    Decision::Retry { error, wait } => {
                        if self.settings.debug {
                            diag::debug(&format!(
                                "attempt {attempt} failed ({error}); retrying in {} ms",
                                wait.as_millis()
                            ));
                        }
                        wait
                    }
                    Decision::GiveUp(error) => {
                        return Err(Failure::new(error, attempt, &adjusted));
                    }
                };
            tokio::time::sleep(wait).await;
        }
    }

    /// Tell the pacer how a paced attempt went: a 429 for rate goes back to the line, quota
    /// stops everyone (`Err`), anything else is an answer that corrects the budget.
    fn settle(
        &self,
        turn: pacing::Turn,
        result: &Result<Completion, ApiError>,
        rate: &pacing::RateHeaders,
        attempt: u32,
    ) -> Result<Settled, ApiError> {
        match result {
            Err(ApiError::Http { status: 429, .. }) => {
                if self.settings.debug {
                    diag::debug(&format!(
                        "attempt {attempt}: HTTP 429 (rate); the batch pauses and this request waits its turn again"
                    ));
                }
                turn.rate_limited(rate, None);
                Ok(Settled::Requeue)
            }
            Err(ApiError::QuotaExhausted { message }) => {
                turn.quota_exhausted(message);
                Err(ApiError::QuotaExhausted {
                    message: message.clone(),
                })
            }
            _ => {
                let usage = result
                    .as_ref()
                    .ok()
                    .and_then(|c| c.usage)
                    .map(|u| (u.input_tokens, u.output_tokens));
                turn.answered(rate, result.is_ok(), usage);
                Ok(Settled::Answered)
            }
        }
    }

    async fn attempt(
        &self,
        body: &Value,
        headers: &[params::ExtraHeader],
        on_piece: &mut OnPiece<'_>,
        attempt: u32,
        rate: &mut pacing::RateHeaders,
    ) -> Result<Completion, ApiError> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        if self.settings.debug {
            diag::debug(&format!(
                "POST {} model={} attempt={attempt}",
                self.url,
                body.get("model").and_then(Value::as_str).unwrap_or("?")
            ));
        }
        let mut builder = self.http.post(self.url.clone());
        for h in params::merge_headers(&self.settings.headers, headers) {
            let mut value = HeaderValue::from_str(&h.value).map_err(|_| {
                ApiError::Setup(format!(
                    "the header `{}` has a value not allowed in a header",
                    h.name
                ))
            })?;
            value.set_sensitive(h.is_secret());
            builder = builder.header(h.name.as_str(), value);
        }
        let response = builder
            .header(AUTHORIZATION, self.auth_header())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        *rate = pacing::RateHeaders::parse(response.headers());
        let request_id = ["x-request-id", "request-id", "x-dashscope-request-id"]
            .iter()
            .find_map(|h| response.headers().get(*h))
            .map(|v| self.short(&String::from_utf8_lossy(v.as_bytes())));
        if self.settings.debug {
            diag::debug(&format!(
                "HTTP {} request-id={}",
                status.as_u16(),
                request_id.as_deref().unwrap_or("-")
            ));
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map_or_else(
                    || "(none)".to_owned(),
                    |v| self.short(&String::from_utf8_lossy(v.as_bytes())),
                );
            return Err(ApiError::Redirect {
                status: status.as_u16(),
                location,
            });
        }
        if !status.is_success() {
            return Err(self.http_error(status, response, rate).await);
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        let mut completion = if is_sse {
            self.read_stream(response, on_piece).await?
        } else {
            self.read_whole(response, on_piece).await?
        };
        completion.request_id = request_id;
        Ok(completion)
    }

    async fn read_stream(
        &self,
        mut response: reqwest::Response,
        on_piece: &mut OnPiece<'_>,
    ) -> Result<Completion, ApiError> {
        let limit = self.settings.max_response_bytes;
        let mut parser = SseParser::with_limit(limits::event_limit(limit));
        let mut events = Vec::new();
        let mut completion = Completion::default();
        let mut saw_done = false;
        let mut eof = false;
        while !saw_done && !eof {
            if let Some(bytes) = response
                .chunk()
                .await
                .map_err(|e| self.transport_error(&e))?
            {
                parser
                    .feed(&bytes, &mut events)
                    .map_err(|sse::TooLong| ApiError::TooLarge {
                        limit,
                        what: "one event of the stream is too long",
                    })?;
            } else {
                parser.finish(&mut events);
                eof = true;
            }
            for event in events.drain(..) {
                if event.data.trim() == "[DONE]" {
                    saw_done = true;
                    break;
                }
                if event.event.as_deref() == Some("error") {
                    return Err(ApiError::StreamError(self.scrubbed_message(&event.data)));
                }
                // At the end of input, an event that does not parse is one the cut went through.
                let chunk: Value = serde_json::from_str(&event.data).map_err(|e| {
                    if eof {
                        ApiError::StreamCut
                    } else {
                        ApiError::InvalidResponse(format!("a stream event is not JSON ({e})"))
                    }
                })?;
                if chunk.get("error").is_some() {
                    return Err(ApiError::StreamError(self.scrubbed_message(&event.data)));
                }
                apply_chunk(&chunk, &mut completion, on_piece, limit)?;
            }
        }
        if completion.finish_reason.is_none() && !saw_done {
            return Err(ApiError::StreamCut);
        }
        self.checked(completion)
    }

    /// A server that ignored `stream: true` and answered with one JSON body.
    async fn read_whole(
        &self,
        response: reqwest::Response,
        on_piece: &mut OnPiece<'_>,
    ) -> Result<Completion, ApiError> {
        let limit = self.settings.max_response_bytes;
        let (bytes, whole) = read_capped(response, limits::event_limit(limit))
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !whole {
            return Err(ApiError::TooLarge {
                limit,
                what: "the response body is too long",
            });
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::InvalidResponse(format!(
                "the response is neither an event stream nor JSON ({e})"
            ))
        })?;
        if value.get("error").is_some() {
            return Err(ApiError::StreamError(
                self.scrubbed_message(&String::from_utf8_lossy(&bytes)),
            ));
        }
        let choice = value
            .pointer("/choices/0")
            .ok_or_else(|| ApiError::InvalidResponse("the response has no choices".into()))?;
        let text = choice
            .pointer("/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if text.len() > limit {
            return Err(ApiError::TooLarge {
                limit,
                what: "the answer is too long",
            });
        }
        let structured = has_structured_content(choice.get("message"));
        let reasoning = choice
            .get("message")
            .and_then(reasoning_of)
            .unwrap_or_default()
            .to_owned();
        if !reasoning.is_empty() {
            on_piece(Piece::Reasoning(&reasoning)).map_err(|_| ApiError::OutputClosed)?;
        }
        if !text.is_empty() {
            on_piece(Piece::Text(&text)).map_err(|_| ApiError::OutputClosed)?;
        }
        // `checked` passes the server's short values through `short`, as for a stream.
        let text_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        self.checked(Completion {
            text,
            reasoning,
            structured,
            usage: value.get("usage").and_then(Usage::from_openai),
            finish_reason: text_of(choice.get("finish_reason")).or_else(|| Some("stop".into())),
            response_id: text_of(value.get("id")),
            server_model: text_of(value.get("model")),
            created: value.get("created").and_then(Value::as_u64),
            ..Completion::default()
        })
    }

    async fn http_error(
        &self,
        status: StatusCode,
        response: reqwest::Response,
        rate: &pacing::RateHeaders,
    ) -> ApiError {
        // `rate` was parsed from this response's headers: Retry-After is read once.
        let mut retry_after = rate.retry_after;
        if status == StatusCode::TOO_MANY_REQUESTS {
            // OpenAI's 429 often names no Retry-After, only when its budgets reset.
            retry_after = retry_after.or_else(|| rate.wait_hint());
        }
        // Only the start of an error body is read: it is shortened for the message anyway.
        let (bytes, _) = read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if status == StatusCode::TOO_MANY_REQUESTS && is_insufficient_quota(&body) {
            return ApiError::QuotaExhausted {
                message: self.scrubbed_message(&body),
            };
        }
        let mut message = self.scrubbed_message(&body);
        if message.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("error")
                .clone_into(&mut message);
        }
        ApiError::Http {
            status: status.as_u16(),
            message,
            retry_after,
            code: error_code(&body).map(|c| self.short(&c)),
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> ApiError {
        match transport_error(e) {
            ApiError::Timeout(detail) => ApiError::Timeout(self.scrubbed(&detail)),
            ApiError::Network(detail) => ApiError::Network(self.scrubbed(&detail)),
            ApiError::Protocol(detail) => ApiError::Protocol(self.scrubbed(&detail)),
            ApiError::Certificate(detail) => ApiError::Certificate(self.scrubbed(&detail)),
            other => other,
        }
    }

    /// Server text through the one door (`sanitize::line`): the key removed, one line, no
    /// escape sequences or workflow commands.
    fn scrubbed(&self, text: &str) -> String {
        self.sanitized(text, MAX_MESSAGE_CHARS)
    }

    /// Text that quotes a server (a validation error quoting the answer) through the one door:
    /// the key removed, one line, no escape sequences or workflow commands.
    pub(crate) fn sanitized_line(&self, text: &str) -> String {
        self.scrubbed(text)
    }

    /// A server's text of several lines (an answer copied into a step summary): the key removed,
    /// workflow commands and escape sequences neutralised, line breaks kept.
    pub(crate) fn sanitized_block(&self, text: &str) -> String {
        let text = self.without_header_secrets(text);
        sanitize::block(&text, Some(self.bearer().key.expose_secret()))
    }

    /// Header values that carry credentials (`-H`, a job file's `headers`) are removed like the
    /// key; others (`X-Title: CI`) are not, so that ordinary words are not blanked.
    fn without_header_secrets(&self, text: &str) -> String {
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        secrets.iter().fold(text.to_owned(), |text, secret| {
            sanitize::scrub_key(&text, secret.expose_secret())
        })
    }

    /// A short server value (a request id, a model name, a finish reason) through the same door.
    fn short(&self, text: &str) -> String {
        self.sanitized(text, MAX_SHORT_CHARS)
    }

    fn sanitized(&self, text: &str, max_chars: usize) -> String {
        let text = &self.without_header_secrets(text);
        sanitize::line(text, Some(self.bearer().key.expose_secret()), max_chars)
    }

    /// The human part of a server's error body, without the key: the key removed from the body
    /// (before a cut could leave a piece of it), then the message through the one door (after
    /// JSON unescaping, which may reveal another form of the key or control characters).
    fn scrubbed_message(&self, body: &str) -> String {
        // An error event of a stream can be as long as an answer: only its start is looked at.
        let body = sanitize::prefix_bytes(body, MAX_ERROR_BODY_BYTES);
        let without_key = sanitize::scrub_key(body, self.bearer().key.expose_secret());
        self.scrubbed(&error_message(&without_key))
    }

    /// A finished answer with neither text nor structured content is a failure.
    fn checked(&self, mut completion: Completion) -> Result<Completion, ApiError> {
        completion.finish_reason = completion.finish_reason.map(|r| self.short(&r));
        completion.response_id = completion.response_id.map(|r| self.short(&r));
        completion.server_model = completion.server_model.map(|r| self.short(&r));
        if completion.text.is_empty() && !completion.structured && !completion.reasoning.is_empty()
        {
            return Err(ApiError::EmptyAfterReasoning {
                finish_reason: completion.finish_reason,
                usage: completion.usage,
            });
        }
        if completion.text.is_empty() && !completion.structured {
            return Err(ApiError::EmptyAnswer {
                finish_reason: completion.finish_reason,
                usage: completion.usage,
            });
        }
        Ok(completion)
    }
}

/// A server's error message is cut to this many characters (after the key is removed).
const MAX_MESSAGE_CHARS: usize = 1000;

/// A short value from a server (an id, a name) is cut to this many characters.
const MAX_SHORT_CHARS: usize = 200;

/// A failure to send or to read a response: a timeout, a permanent protocol or certificate
/// failure (`transport::classify`), or any other network error, with its causes.
pub(crate) fn transport_error(e: &reqwest::Error) -> ApiError {
    let detail = error_chain(e);
    if e.is_timeout() {
        return ApiError::Timeout(detail);
    }
    match transport::classify(e) {
        transport::Kind::Certificate => ApiError::Certificate(detail),
        transport::Kind::Protocol => ApiError::Protocol(detail),
        transport::Kind::Temporary => ApiError::Network(detail),
    }
}

/// An error and all its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

fn apply_chunk(
    chunk: &Value,
    completion: &mut Completion,
    on_piece: &mut OnPiece<'_>,
    limit: usize,
) -> Result<(), ApiError> {
    if completion.response_id.is_none() {
        completion.response_id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        completion.server_model = chunk
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned);
        completion.created = chunk.get("created").and_then(Value::as_u64);
    }
    if let Some(usage) = chunk.get("usage").and_then(Usage::from_openai) {
        completion.usage = Some(usage);
    }
    if let Some(choice) = chunk.pointer("/choices/0") {
        if let Some(reasoning) = choice.get("delta").and_then(reasoning_of) {
            if completion.reasoning.len().saturating_add(reasoning.len()) > limit {
                return Err(ApiError::TooLarge {
                    limit,
                    what: "the reasoning is too long",
                });
            }
            completion.reasoning.push_str(reasoning);
            on_piece(Piece::Reasoning(reasoning)).map_err(|_| ApiError::OutputClosed)?;
        }
        if has_structured_content(choice.get("delta")) {
            completion.structured = true;
        }
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
            && !text.is_empty()
        {
            if completion.text.len().saturating_add(text.len()) > limit {
                return Err(ApiError::TooLarge {
                    limit,
                    what: "the answer is too long",
                });
            }
            completion.text.push_str(text);
            on_piece(Piece::Text(text)).map_err(|_| ApiError::OutputClosed)?;
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            completion.finish_reason = Some(reason.to_owned());
        }
    }
    Ok(())
}

/// Whether a 429 body is the "out of credit" answer rather than a rate limit:
/// `"code": "insufficient_quota"`, or (older keys, `"code": null`) `"type": "insufficient_quota"`.
fn is_insufficient_quota(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    ["/error/code", "/error/type", "/code", "/type"]
        .iter()
        .any(|p| v.pointer(p).and_then(Value::as_str) == Some("insufficient_quota"))
}

/// The reasoning in a delta or a message: `reasoning_content` (`DashScope`, `DeepSeek`, vLLM,
/// llama.cpp), else `reasoning` (`OpenRouter`, Ollama, newer vLLM); one of them, so a server that
/// sends both with the same text is not read twice. (`DeepSeek`'s API guide, "Reasoning Model":
/// `chunk.choices[0].delta.reasoning_content`; `OpenRouter`'s "Reasoning Tokens" guide:
/// `delta.reasoning` in streamed chunks; Ollama's `/v1` streams `{"delta": {"content": "",
/// "reasoning": "..."}}`, as captured in dirac-run/dirac#227 and anomalyco/opencode#46061.)
fn reasoning_of(v: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| v.get(*k)?.as_str().filter(|t| !t.is_empty()))
}

/// Whether a message (or a delta) carries structured content besides text: tool or function calls.
fn has_structured_content(message: Option<&Value>) -> bool {
    message.is_some_and(|m| {
        ["tool_calls", "function_call"]
            .iter()
            .any(|k| m.get(*k).is_some_and(|v| !v.is_null()))
    })
}

/// The human part of an error body: `error.message`, `message`, or the text itself (shortened).
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error"))
            .or_else(|| v.get("detail"));
        if let Some(m) = found {
            return m.as_str().map_or_else(|| m.to_string(), str::to_owned);
        }
    }
    sanitize::first_chars(body.trim(), 500)
}

/// The machine-readable kind of an error body: `error.code` when it is a string, else `error.type`
/// (`OpenAI`: `{"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}`; Anthropic-style
/// gateways: `{"type": "error", "error": {"type": "overloaded_error"}}`). Bounded: a name, not text.
fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let code = v
        .pointer("/error/code")
        .and_then(Value::as_str)
        .or_else(|| v.pointer("/error/type").and_then(Value::as_str))?;
    (code.len() <= 64).then(|| code.to_owned())
}

/// The body with the streaming fields set, whatever the caller gave.
fn streaming_body(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.insert("stream".into(), Value::Bool(true));
        map.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_shapes() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message(r#"{"message":"slow down"}"#), "slow down");
        assert_eq!(error_message(r#"{"error":"plain"}"#), "plain");
        assert_eq!(error_message("  upstream failure \n"), "upstream failure");
    }

    #[test]
    fn reasoning_is_read_from_either_field_once() {
        use serde_json::json;
        let cases = [
            (json!({"reasoning_content": "a"}), Some("a")),
            (json!({"reasoning": "b"}), Some("b")),
            (
                json!({"reasoning_content": "same", "reasoning": "same"}),
                Some("same"),
            ),
            (
                json!({"reasoning_content": null, "reasoning": "c"}),
                Some("c"),
            ),
            (json!({"reasoning_content": "", "content": "x"}), None),
            (json!({"content": "x"}), None),
        ];
        for (delta, want) in cases {
            assert_eq!(reasoning_of(&delta), want, "{delta}");
        }
        let mut completion = Completion::default();
        let mut pieces = Vec::new();
        let mut on_piece = |p: Piece<'_>| {
            pieces.push(format!("{p:?}"));
            Ok(())
        };
        for chunk in [
            json!({"choices": [{"delta": {"reasoning": "think"}}]}),
            json!({"choices": [{"delta": {"content": "say"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 5,
                             "output_tokens_details": {"reasoning_tokens": 4}}}),
        ] {
            apply_chunk(&chunk, &mut completion, &mut on_piece, usize::MAX).expect("applied");
        }
        assert_eq!(
            (completion.reasoning.as_str(), completion.text.as_str()),
            ("think", "say")
        );
        assert_eq!(completion.usage.and_then(|u| u.reasoning_tokens), Some(4));
        assert_eq!(pieces, ["Reasoning(\"think\")", "Text(\"say\")"]);
    }

    #[test]
    fn exit_status_of_api_errors() {
        let http = |status| ApiError::Http {
            status,
            message: String::new(),
            retry_after: None,
            code: None,
        };
        assert_eq!(http(401).exit_status(), ExitStatus::Auth);
        assert_eq!(http(403).exit_status(), ExitStatus::Auth);
        assert_eq!(http(429).exit_status(), ExitStatus::TempFail);
        assert_eq!(http(503).exit_status(), ExitStatus::TempFail);
        assert_eq!(http(400).exit_status(), ExitStatus::Failure);
        assert_eq!(http(404).exit_status(), ExitStatus::Failure);
        assert_eq!(ApiError::StreamCut.exit_status(), ExitStatus::TempFail);
        assert_eq!(
            ApiError::InvalidResponse(String::new()).exit_status(),
            ExitStatus::Failure
        );
    }
}
