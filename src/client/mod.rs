//! The HTTP side: one streaming chat request with retries. Knows nothing about jobs or output formats.

pub(crate) mod limits;
pub(crate) mod retry;
pub(crate) mod sse;
pub(crate) mod transport;
pub(crate) mod url;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use crate::diag;
use crate::exit::ExitStatus;
use crate::sanitize;
pub(crate) use limits::{DEFAULT_MAX_RESPONSE_BYTES, MAX_ERROR_BODY_BYTES, read_capped};
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
}

impl Usage {
    fn from_openai(v: &Value) -> Option<Self> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        let input = n("prompt_tokens")?;
        let output = n("completion_tokens").unwrap_or(0);
        Some(Self {
            input_tokens: input,
            output_tokens: output,
            total_tokens: n("total_tokens").unwrap_or(input + output),
        })
    }
}

/// A finished answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Completion {
    pub(crate) text: String,
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
        "HTTP {status}: the server asked to wait {}s before retrying, more than --max-retry-wait ({}s)",
        wait.as_secs(), max.as_secs()
    )]
    RetryAfterTooLong {
        status: u16,
        wait: Duration,
        max: Duration,
    },
    #[error("standard output was closed")]
    OutputClosed,
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
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
    EmptyAnswer { finish_reason: Option<String> },
}

impl ApiError {
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
            _ => None,
        }
    }

    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Http {
                status: 401 | 403, ..
            } => ExitStatus::Auth,
            Self::RetryAfterTooLong { .. } => ExitStatus::TempFail,
            Self::OutputClosed => ExitStatus::Success,
            Self::Setup(_) | Self::Certificate(_) => ExitStatus::Config,
            e if e.is_retryable() => ExitStatus::TempFail,
            _ => ExitStatus::Failure,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Http {
                status: 401 | 403, ..
            } => "authentication_error",
            Self::Http { status: 429, .. } | Self::RetryAfterTooLong { .. } => "rate_limit_error",
            Self::Http { status, .. } if *status >= 500 => "server_error",
            Self::Http { .. } => "api_error",
            Self::Network(_) => "network_error",
            Self::Timeout(_) => "timeout",
            Self::StreamCut => "stream_cut",
            Self::StreamError(_) => "stream_error",
            Self::InvalidResponse(_) => "invalid_response",
            Self::OutputClosed => "output_closed",
            Self::Setup(_) => "configuration_error",
            Self::TooLarge { .. } => "response_too_large",
            Self::Redirect { .. } => "redirect",
            Self::Certificate(_) => "tls_error",
            Self::Protocol(_) => "protocol_error",
            Self::EmptyAnswer { .. } => "empty_answer",
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
            Self::Setup(why) if why.contains("header") => {
                "check the key for stray characters, such as a newline from a file"
            }
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
            e if e.is_retryable() => "the failure looks temporary: retry later (exit 75)",
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

/// An `ApiError` after the retry policy gave up, with the attempts spent on it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) error: ApiError,
    pub(crate) attempts: u32,
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
            .map_err(|_| {
                ApiError::Setup("the API key has characters not allowed in an HTTP header".into())
            })?;
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
}

/// Install the TLS crypto provider once per process (reqwest is built without a default one).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain client for small one-off requests to `target`'s host (the login's key check, the
/// OAuth server): connect timeout 10 s, 30 s for the whole request, no retries, no redirects, and
/// no proxy when the host is loopback.
pub(crate) fn one_off_http_client(target: &Url) -> Result<reqwest::Client, ApiError> {
    install_crypto_provider();
    let builder = reqwest::Client::builder();
    let builder = if url::is_loopback(target) {
        builder.no_proxy()
    } else {
        builder
    };
    builder
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("qwen-headless/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::Setup(error_chain(&e)))
}

impl ChatClient {
    pub(crate) fn new(
        base_url: &Url,
        key: SecretString,
        settings: ClientSettings,
    ) -> Result<Self, ApiError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(settings.max_connections)
            // A redirect would resend the key to another address, or turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("qwen-headless/", env!("CARGO_PKG_VERSION")));
        if url::is_loopback(base_url) {
            // NO_PROXY semantics for loopback: the key never travels through a proxy to reach
            // this machine.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Setup(error_chain(&e)))?;
        Ok(Self {
            http,
            url: url::endpoint(base_url, "chat/completions"),
            bearer: Arc::new(std::sync::RwLock::new(Bearer::new(key)?)),
            settings,
            limiter: None,
        })
    }

    /// Use another key from now on, for this client and all its clones (a refreshed OAuth token).
    pub(crate) fn set_key(&self, key: SecretString) -> Result<(), ApiError> {
        let bearer = Bearer::new(key)?;
        match self.bearer.write() {
            Ok(mut guard) => *guard = bearer,
            Err(poisoned) => *poisoned.into_inner() = bearer,
        }
        Ok(())
    }

    fn auth_header(&self) -> HeaderValue {
        match self.bearer.read() {
            Ok(b) => b.header.clone(),
            Err(poisoned) => poisoned.into_inner().header.clone(),
        }
    }

    #[must_use]
    pub(crate) fn with_rate_limit(mut self, limiter: Option<Arc<RateLimiter>>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Send one chat request (`body` is the full JSON body; streaming fields are set here),
    /// retrying per the policy. `on_delta` gets each piece of text as it arrives; when
    /// `deltas_are_final` is set, text handed to it counts as shown to the user, so a stream
    /// cut after that is not retried.
    pub(crate) async fn send(
        &self,
        body: &Value,
        on_delta: &mut (dyn FnMut(&str) -> std::io::Result<()> + Send),
        deltas_are_final: bool,
    ) -> Result<Completion, Failure> {
        let start = Instant::now();
        let body = streaming_body(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut emitted = false;
            let result = {
                let mut tracked = |text: &str| {
                    emitted = true;
                    on_delta(text)
                };
                self.attempt(&body, &mut tracked, attempt).await
            };
            let error = match result {
                Ok(mut completion) => {
                    completion.attempts = attempt;
                    completion.api_duration = start.elapsed();
                    return Ok(completion);
                }
                Err(e) => e,
            };
            let wait = match self
                .settings
                .retry
                .decide(error, attempt, deltas_are_final && emitted)
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
                    return Err(Failure {
                        error,
                        attempts: attempt,
                    });
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        body: &Value,
        on_delta: &mut (dyn FnMut(&str) -> std::io::Result<()> + Send),
        attempt: u32,
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
        let response = self
            .http
            .post(self.url.clone())
            .header(AUTHORIZATION, self.auth_header())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
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
            return Err(self.http_error(status, response).await);
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        let mut completion = if is_sse {
            self.read_stream(response, on_delta).await?
        } else {
            self.read_whole(response, on_delta).await?
        };
        completion.request_id = request_id;
        Ok(completion)
    }

    async fn read_stream(
        &self,
        mut response: reqwest::Response,
        on_delta: &mut (dyn FnMut(&str) -> std::io::Result<()> + Send),
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
                apply_chunk(&chunk, &mut completion, on_delta, limit)?;
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
        on_delta: &mut (dyn FnMut(&str) -> std::io::Result<()> + Send),
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
        if !text.is_empty() {
            on_delta(&text).map_err(|_| ApiError::OutputClosed)?;
        }
        self.checked(Completion {
            text,
            structured,
            usage: value.get("usage").and_then(Usage::from_openai),
            finish_reason: choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(|r| self.short(r))
                .or_else(|| Some("stop".into())),
            response_id: value
                .get("id")
                .and_then(Value::as_str)
                .map(|v| self.short(v)),
            server_model: value
                .get("model")
                .and_then(Value::as_str)
                .map(|v| self.short(v)),
            created: value.get("created").and_then(Value::as_u64),
            ..Completion::default()
        })
    }

    async fn http_error(&self, status: StatusCode, response: reqwest::Response) -> ApiError {
        let retry_after = retry::retry_after(response.headers(), SystemTime::now());
        // Only the start of an error body is read: it is shortened for the message anyway.
        let (bytes, _) = read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes).into_owned();
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
        match self.bearer.read() {
            Ok(b) => sanitize::block(text, Some(b.key.expose_secret())),
            Err(poisoned) => sanitize::block(text, Some(poisoned.into_inner().key.expose_secret())),
        }
    }

    /// A short server value (a request id, a model name, a finish reason) through the same door.
    fn short(&self, text: &str) -> String {
        self.sanitized(text, MAX_SHORT_CHARS)
    }

    fn sanitized(&self, text: &str, max_chars: usize) -> String {
        match self.bearer.read() {
            Ok(b) => sanitize::line(text, Some(b.key.expose_secret()), max_chars),
            Err(poisoned) => sanitize::line(
                text,
                Some(poisoned.into_inner().key.expose_secret()),
                max_chars,
            ),
        }
    }

    /// The human part of a server's error body, without the key: the key removed from the body
    /// (before a cut could leave a piece of it), then the message through the one door (after
    /// JSON unescaping, which may reveal another form of the key or control characters).
    fn scrubbed_message(&self, body: &str) -> String {
        // An error event of a stream can be as long as an answer: only its start is looked at.
        let body = sanitize::prefix_bytes(body, MAX_ERROR_BODY_BYTES);
        let without_key = match self.bearer.read() {
            Ok(b) => sanitize::scrub_key(body, b.key.expose_secret()),
            Err(poisoned) => sanitize::scrub_key(body, poisoned.into_inner().key.expose_secret()),
        };
        self.scrubbed(&error_message(&without_key))
    }

    /// A finished answer with neither text nor structured content is a failure.
    fn checked(&self, mut completion: Completion) -> Result<Completion, ApiError> {
        completion.finish_reason = completion.finish_reason.map(|r| self.short(&r));
        completion.response_id = completion.response_id.map(|r| self.short(&r));
        completion.server_model = completion.server_model.map(|r| self.short(&r));
        if completion.text.is_empty() && !completion.structured {
            return Err(ApiError::EmptyAnswer {
                finish_reason: completion.finish_reason,
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
    on_delta: &mut (dyn FnMut(&str) -> std::io::Result<()> + Send),
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
            on_delta(text).map_err(|_| ApiError::OutputClosed)?;
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            completion.finish_reason = Some(reason.to_owned());
        }
    }
    Ok(())
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
fn error_message(body: &str) -> String {
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
    let trimmed = body.trim();
    let mut short: String = trimmed.chars().take(500).collect();
    if short.len() < trimmed.len() {
        short.push('…');
    }
    short
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
