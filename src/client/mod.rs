//! The HTTP side: one streaming chat request with retries. Knows nothing about jobs or output formats.

mod attempt;
pub(crate) mod batch_api;
mod error;
pub(crate) mod exchange_log;
pub(crate) mod limits;
pub(crate) mod message_batches;
pub(crate) mod pacing;
pub(crate) mod params;
pub(crate) mod retry;
mod send;
pub(crate) mod sse;
pub(crate) mod transport;
pub(crate) mod url;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use crate::sanitize;
use error::error_chain;
pub(crate) use error::{ApiError, Failure, error_message, transport_error};
pub(crate) use limits::{DEFAULT_MAX_RESPONSE_BYTES, MAX_ERROR_BODY_BYTES, read_capped};
pub(crate) use pacing::Pacers;
pub(crate) use retry::{Decision, RetryPolicy};

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
    /// A cache token count as stored (32 bits, saturating).
    pub(crate) fn cache_count(n: u64) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub(crate) fn from_openai(v: &Value) -> Option<Self> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        let input = n("prompt_tokens")?;
        let output = n("completion_tokens").unwrap_or(0);
        let reasoning = ["completion_tokens_details", "output_tokens_details"]
            .iter()
            .find_map(|d| v.get(*d)?.get("reasoning_tokens")?.as_u64());
        let details = |k: &str| v.get("prompt_tokens_details")?.get(k)?.as_u64();
        let small = Self::cache_count;
        Some(Self {
            input_tokens: input,
            output_tokens: output,
            total_tokens: n("total_tokens").unwrap_or_else(|| input.saturating_add(output)),
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

/// The provider's own price of a request, in US dollars, from its `usage` object: `usage.cost`
/// (`OpenRouter`'s usage accounting, <https://openrouter.ai/docs/use-cases/usage-accounting>,
/// in credits of one dollar; `LiteLLM`'s proxy when it adds the cost to the usage it streams).
pub(crate) fn usage_cost(usage: &Value) -> Option<f64> {
    usage
        .get("cost")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c >= 0.0)
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
    /// The trace the request belongs to, if any: `traceparent` is sent with every attempt.
    pub(crate) trace: Option<RequestTrace>,
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
    /// What the provider says the request cost, in US dollars (`usage.cost`, else `LiteLLM`'s
    /// `x-litellm-response-cost` header); `None` when it said nothing.
    pub(crate) provider_cost: Option<f64>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) response_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) server_model: Option<String>,
    /// The server sent tool or function calls: an answer even without text.
    pub(crate) structured: bool,
    pub(crate) created: Option<u64>,
    pub(crate) attempts: u32,
    /// Time slept before retries (`retry_wait_ms`).
    pub(crate) retry_wait: Duration,
    pub(crate) api_duration: Duration,
    /// `message.refusal` / `delta.refusal`: the model declined (an answer of its own, a failure).
    pub(crate) refusal: String,
}

/// Why qwen waits before it tries again (a retry event's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitReason {
    /// The server said how long (`Retry-After`, `retry-after-ms`, the reset of a spent budget).
    ServerHint,
    /// qwen's own exponential backoff.
    Backoff,
    /// A batch's shared pause after a 429: every request of the model waits.
    RateLimitPause,
    /// The model has no capacity: the request goes to the next `--fallback-model` at once.
    Fallback,
}

impl WaitReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ServerHint => "server_hint",
            Self::Backoff => "backoff",
            Self::RateLimitPause => "rate_limit_pause",
            Self::Fallback => "fallback",
        }
    }
}

/// One wait before another try: what failed, how long qwen waits and why. Handed to the
/// client's [`OnRetry`] hook before the wait starts.
#[derive(Debug, Clone)]
pub(crate) struct RetryEvent {
    /// The attempt that failed (1-based, over this request's attempts).
    pub(crate) attempt: u32,
    /// `--retries`.
    pub(crate) max_retries: u32,
    /// The HTTP status, when the server answered.
    pub(crate) status: Option<u16>,
    /// The failure's `error.type` (`rate_limit_error`, `server_error`, `network_error`, ...).
    pub(crate) error: &'static str,
    pub(crate) wait: Duration,
    pub(crate) reason: WaitReason,
    /// The model the failed attempt went to.
    pub(crate) model: String,
    /// With `WaitReason::Fallback`: the model tried next.
    pub(crate) fallback_model: Option<String>,
}

/// One attempt as it ended, for a trace: when it ran, what it asked and what came back. Only
/// made for a request that carries a recorded trace ([`RequestTrace::record`]).
#[derive(Debug, Clone)]
pub(crate) struct AttemptRecord {
    /// The span the attempt belongs under (the job's), and the attempt's own span id, which
    /// the `traceparent` header sent with it named.
    pub(crate) parent: TraceContext,
    pub(crate) span_id: u64,
    pub(crate) start: std::time::SystemTime,
    pub(crate) end: std::time::SystemTime,
    /// 1-based, over the request's attempts.
    pub(crate) attempt: u32,
    pub(crate) model: String,
    pub(crate) status: Option<u16>,
    /// The failure's `error.type` and message (server text already through the one door).
    pub(crate) error: Option<(&'static str, String)>,
    pub(crate) usage: Option<Usage>,
    pub(crate) server_model: Option<String>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) response_id: Option<String>,
}

/// What the send loop tells its hook: a wait before another try, or an attempt that ended.
#[derive(Debug, Clone)]
pub(crate) enum ClientEvent {
    Retry(RetryEvent),
    Attempt(AttemptRecord),
}

/// The one hook out of the send loop: stream-json's `api_retry` messages, a batch's progress line
/// and summary, the trace's attempt spans. Called on the runtime thread: it must not block.
pub(crate) type OnEvent = Arc<dyn Fn(&ClientEvent) + Send + Sync>;

/// A W3C trace context (`traceparent`): a trace id and the span id of the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) sampled: bool,
}

impl TraceContext {
    /// `00-<trace id>-<span id>-<flags>`, the `traceparent` header's value.
    pub(crate) fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// A `traceparent` value (W3C Trace Context, version 00; a later version is read the same
    /// way, ignoring what follows): `None` when malformed or when an id is all zeros.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// The trace a request belongs to: `parent` is sent as `traceparent`, or, when `record` is set,
/// each attempt gets a span of its own under `parent` (named in its `traceparent`) and is
/// reported to the hook as an [`AttemptRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTrace {
    pub(crate) parent: TraceContext,
    pub(crate) record: bool,
}

/// A random non-zero span id.
pub(crate) fn new_span_id() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
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
    /// Accept an answer that ends without a `finish_reason` (`--accept-missing-finish-reason`),
    /// for a server that never sends one; otherwise such an answer is incomplete (retried, exit 75).
    pub(crate) accept_missing_finish_reason: bool,
    /// How requests reach the server: `--proxy`, `--insecure`.
    pub(crate) transport: Transport,
    /// `--openai-logging`: the directory each exchange is logged to.
    pub(crate) exchange_log: Option<std::path::PathBuf>,
}

/// How the requests that carry the key reach the server, beyond the environment's proxies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transport {
    /// `--proxy`: every request to a host that is not loopback goes through it, in place of the
    /// environment's `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`.
    pub(crate) proxy: Option<Url>,
    /// `NO_PROXY` from the environment snapshot: the hosts `proxy` is not used for (as curl
    /// applies `NO_PROXY` to `-x`).
    pub(crate) no_proxy: Option<String>,
    /// `--insecure`/`QWEN_TLS_INSECURE`: no certificate verification.
    pub(crate) insecure: bool,
}

/// The key and the `Authorization` header made from it. Shared by all clones of a client, so
/// that a refreshed OAuth token reaches every request that starts afterwards.
struct Bearer {
    header: HeaderValue,
    key: SecretString,
    /// Which header the key goes in (`Authorization: Bearer`, `x-api-key`, `x-goog-api-key`).
    kind: wire::KeyHeader,
}

impl Bearer {
    fn new(key: SecretString, kind: wire::KeyHeader) -> Result<Self, ApiError> {
        let mut header = HeaderValue::from_str(&kind.value(key.expose_secret()))
            .map_err(|_| ApiError::InvalidKey)?;
        header.set_sensitive(true);
        Ok(Self { header, key, kind })
    }
}

/// A chat-completions client for one endpoint and key; cheap to clone.
#[derive(Clone)]
pub(crate) struct ChatClient {
    http: reqwest::Client,
    /// The endpoint of a protocol whose URL does not name the model (the pacers' key).
    url: Url,
    base_url: Url,
    /// The wire protocol: how a request body is written and a response read.
    wire: wire::Wire,
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
    /// Hears of every wait before another try and every recorded attempt (see [`ClientEvent`]).
    on_event: Option<OnEvent>,
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

/// [`http_builder`] with `transport`: `--proxy` in place of the environment's proxies (still
/// never for loopback), and `--insecure`'s unverified certificates.
pub(crate) fn transport_builder(
    target: &Url,
    transport: &Transport,
) -> Result<reqwest::ClientBuilder, ApiError> {
    let mut builder = http_builder(target).danger_accept_invalid_certs(transport.insecure);
    if let Some(proxy) = &transport.proxy
        && !url::is_loopback(target)
    {
        let no_proxy = transport
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        let proxy = reqwest::Proxy::all(proxy.as_str())
            .map_err(|_| {
                ApiError::Setup(format!(
                    "the proxy `{}` cannot be used",
                    url::without_userinfo(proxy.as_str())
                ))
            })?
            .no_proxy(no_proxy);
        // `Proxy::all` with an explicit proxy replaces the environment's (reqwest reads them only
        // when no proxy is set on the builder).
        builder = builder.proxy(proxy);
    }
    Ok(builder)
}

impl ChatClient {
    pub(crate) fn new(
        base_url: &Url,
        key: SecretString,
        settings: ClientSettings,
    ) -> Result<Self, ApiError> {
        let builder = transport_builder(base_url, &settings.transport)?
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(settings.max_connections);
        let http = builder
            .build()
            .map_err(|e| ApiError::Setup(error_chain(&e)))?;
        Ok(Self {
            http,
            url: url::endpoint(base_url, "chat/completions"),
            base_url: base_url.clone(),
            wire: wire::Wire::Chat,
            bearer: Arc::new(std::sync::RwLock::new(Bearer::new(
                key,
                wire::KeyHeader::Bearer,
            )?)),
            token_param: params::token_param_for(base_url),
            settings,
            limiter: None,
            pacers: None,
            learned: params::Learned::default(),
            secrets: Arc::default(),
            notices: Arc::default(),
            on_event: None,
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

    /// Speak `wire` instead of Chat Completions, with the key in `key_header`.
    pub(crate) fn with_wire(
        mut self,
        wire: wire::Wire,
        key_header: wire::KeyHeader,
    ) -> Result<Self, ApiError> {
        self.wire = wire;
        self.url = wire.url(&self.base_url, "");
        let key = self.bearer().key.clone();
        self.bearer = Arc::new(std::sync::RwLock::new(Bearer::new(key, key_header)?));
        Ok(self)
    }

    /// Use another key from now on, for this client and all its clones (a refreshed OAuth token).
    pub(crate) fn set_key(&self, key: SecretString) -> Result<(), ApiError> {
        let kind = self.bearer().kind;
        *self
            .bearer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Bearer::new(key, kind)?;
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

    /// The key's header: its name and value.
    fn auth_header(&self) -> (&'static str, HeaderValue) {
        let bearer = self.bearer();
        (bearer.kind.name(), bearer.header.clone())
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

    /// Tell `on_event` of every wait before another try and every recorded attempt, for this
    /// client and its later clones.
    #[must_use]
    pub(crate) fn with_on_event(mut self, on_event: OnEvent) -> Self {
        self.on_event = Some(on_event);
        self
    }

    /// `--retries` and the backoff this client retries with.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.settings.retry
    }

    /// Report a wait before another try to the hook, if there is one.
    pub(crate) fn retry_event(&self, event: RetryEvent) {
        if let Some(hook) = &self.on_event {
            hook(&ClientEvent::Retry(event));
        }
    }

    /// Report an attempt that ended to the hook, if there is one.
    pub(crate) fn attempt_event(&self, record: AttemptRecord) {
        if let Some(hook) = &self.on_event {
            hook(&ClientEvent::Attempt(record));
        }
    }

    /// True the first time `what` is asked about in this run (by any clone): for a warning about
    /// the state of a model, not of one request, which a batch would otherwise print per job.
    pub(crate) fn first_notice(&self, what: &str) -> bool {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(what.to_owned())
    }

    /// Server text, or text that quotes a server (a validation error quoting the answer), through
    /// the one door (`sanitize::line`): the key removed, one line, no escape sequences or workflow
    /// commands.
    pub(crate) fn scrubbed(&self, text: &str) -> String {
        self.sanitized(text, MAX_MESSAGE_CHARS)
    }

    /// A server's text of several lines (an answer copied into a step summary): the key removed,
    /// workflow commands and escape sequences neutralised, line breaks kept.
    pub(crate) fn sanitized_block(&self, text: &str) -> String {
        let text = self.without_header_secrets(text);
        sanitize::block(&text, Some(self.bearer().key.expose_secret()))
    }

    /// `text` without the key and the credential header values, nothing else changed (a log
    /// file's JSON).
    pub(crate) fn without_secrets(&self, text: &str) -> String {
        let text = self.without_header_secrets(text);
        sanitize::scrub_key(&text, self.bearer().key.expose_secret())
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
        self.message_lines(&error_message(&without_key))
    }

    /// A server's message with its line breaks kept readable: each line through the one door
    /// (`scrubbed`), blank ones dropped, at most `MAX_MESSAGE_CHARS` in all. A literal `\n` counts
    /// as a line break: `LiteLLM`'s proxy escapes the line breaks of the provider errors it relays
    /// once more, so that its JSON bodies hold the text `\n\n` (measured on `litellm[proxy]`
    /// 1.108.7: `"litellm.AuthenticationError: AuthenticationError: OpenAIException - ...\n\n
    /// Received Model Group=..."`), which a one-line message would show as `\n\n`.
    fn message_lines(&self, text: &str) -> String {
        let text = sanitize::prefix_bytes(text, MAX_ERROR_BODY_BYTES).replace("\\n", "\n");
        let mut out = String::new();
        let mut left = MAX_MESSAGE_CHARS;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if left == 0 {
                if !out.ends_with('…') {
                    out.push('…');
                }
                break;
            }
            let line = self.sanitized(line, left);
            left = left.saturating_sub(line.chars().count());
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&line);
        }
        out
    }
}

/// A server's error message is cut to this many characters (after the key is removed).
const MAX_MESSAGE_CHARS: usize = 1000;

/// A short value from a server (an id, a name) is cut to this many characters.
const MAX_SHORT_CHARS: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_total_the_server_leaves_out_saturates_instead_of_overflowing() {
        let huge = json!({"prompt_tokens": u64::MAX, "completion_tokens": 5});
        let usage = Usage::from_openai(&huge).expect("usage");
        assert_eq!(usage.total_tokens, u64::MAX);
        let given = json!({"prompt_tokens": u64::MAX, "completion_tokens": 5, "total_tokens": 7});
        assert_eq!(Usage::from_openai(&given).expect("usage").total_tokens, 7);
    }
}
