//! OpenTelemetry traces over OTLP/HTTP, when the standard variables ask for them
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `…_TRACES_ENDPOINT`, `…_HEADERS`, `…_PROTOCOL`): a span for
//! the run (or batch), one per job, one per attempt, with the `GenAI` semantic conventions. A
//! `TRACEPARENT` in the environment makes the run a child of that trace, and every request sends
//! a W3C `traceparent`. Written by hand over the client's reqwest (see `encode`): the
//! `opentelemetry` crates' SDK brings a second runtime thread and a protobuf stack for a few
//! spans a run. Export never delays or fails the run: spans are sent in the background as they
//! pile up and once at the end, within a bounded time; a failure is one warning.

mod encode;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::client::{AttemptRecord, ClientEvent, RequestTrace, TraceContext, new_span_id};
use crate::config::env::{
    self, EnvSnapshot, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, OTEL_SDK_DISABLED, OTEL_SERVICE_NAME,
    OTEL_TRACES_EXPORTER, TRACEPARENT,
};
use crate::diag;

/// Spans are sent in batches of this many while a batch runs.
const BATCH_SPANS: usize = 512;
/// At most this many exports in flight; a batch of spans beyond them is dropped (and counted).
const MAX_PENDING_EXPORTS: usize = 4;
/// The longest qwen waits for the last spans to be sent when it ends.
const MAX_WAIT_AT_EXIT: Duration = Duration::from_secs(5);
/// `OTEL_EXPORTER_OTLP_TIMEOUT`'s default (the specification's: 10 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A captured message or error text is cut to this many characters.
const MAX_TEXT_CHARS: usize = 8 * 1024;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    F64(f64),
    StrList(Vec<String>),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<u64> for AttrValue {
    fn from(n: u64) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<u32> for AttrValue {
    fn from(n: u32) -> Self {
        Self::Int(i64::from(n))
    }
}

impl From<f64> for AttrValue {
    fn from(n: f64) -> Self {
        Self::F64(n)
    }
}

impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<Vec<String>> for AttrValue {
    fn from(v: Vec<String>) -> Self {
        Self::StrList(v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusCode {
    Unset,
    Error,
}

/// A finished span, as it is exported.
#[derive(Debug, Clone)]
pub(crate) struct SpanData {
    trace_id: u128,
    span_id: u64,
    parent: Option<u64>,
    name: String,
    kind: Kind,
    /// Unix nanoseconds.
    start: u64,
    end: u64,
    attributes: Vec<(String, AttrValue)>,
    status: StatusCode,
    status_message: String,
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A span being recorded: ended with [`Tracer::end`].
#[derive(Debug)]
pub(crate) struct Span {
    data: SpanData,
    started: SystemTime,
    sampled: bool,
}

impl Span {
    /// The context its children (and the requests sent under it) name as their parent.
    pub(crate) fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.data.trace_id,
            span_id: self.data.span_id,
            sampled: self.sampled,
        }
    }

    pub(crate) fn set(&mut self, key: &str, value: impl Into<AttrValue>) {
        self.data.attributes.push((key.to_owned(), value.into()));
    }

    /// A failure: `error.type`, and the span's status with the message (already sanitised).
    pub(crate) fn error(&mut self, kind: &str, message: &str) {
        self.set("error.type", kind);
        self.data.status = StatusCode::Error;
        self.data.status_message = crate::sanitize::first_chars(message, MAX_TEXT_CHARS);
    }

    pub(crate) fn rename(&mut self, name: String) {
        self.data.name = name;
    }
}

/// How spans are encoded (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Protobuf,
    Json,
}

/// Where the API is, for `gen_ai.provider.name` and `server.address`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Server {
    provider: &'static str,
    address: String,
    port: Option<u16>,
}

impl Server {
    /// The provider a base URL names (a well-known `gen_ai.provider.name` when the host is one
    /// of theirs; `openai`, the API spoken, otherwise).
    pub(crate) fn of(base_url: &Url) -> Self {
        let host = base_url.host_str().unwrap_or_default().to_ascii_lowercase();
        let known = [
            ("openai.azure.com", "azure.ai.openai"),
            ("api.openai.com", "openai"),
            ("api.deepseek.com", "deepseek"),
            ("api.groq.com", "groq"),
            ("api.mistral.ai", "mistral_ai"),
            ("api.x.ai", "x_ai"),
            ("api.perplexity.ai", "perplexity"),
            ("openrouter.ai", "openrouter"),
            ("dashscope", "dashscope"),
        ];
        let provider = known
            .iter()
            .find(|(h, _)| host.contains(h))
            .map_or("openai", |(_, p)| p);
        Self {
            provider,
            address: host,
            port: base_url.port_or_known_default(),
        }
    }

    fn describe(&self, span: &mut Span) {
        span.set("gen_ai.operation.name", "chat");
        span.set("gen_ai.provider.name", self.provider);
        span.set("server.address", self.address.clone());
        if let Some(port) = self.port {
            span.set("server.port", u32::from(port));
        }
    }
}

struct Exporter {
    http: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    protocol: Protocol,
    resource: Vec<(String, AttrValue)>,
}

#[derive(Default)]
struct State {
    spans: Vec<SpanData>,
    pending: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    /// The first export failure (the one warning), and spans dropped.
    failure: Option<String>,
    dropped: usize,
}

struct Inner {
    exporter: Exporter,
    /// The CI's trace (`TRACEPARENT`): the run's span is its child.
    remote_parent: Option<TraceContext>,
    trace_id: u128,
    capture: bool,
    timeout: Duration,
    /// Where the API is (set once the configuration is known).
    server: Mutex<Server>,
    state: Mutex<State>,
}

/// Records spans and exports them; cheap to clone.
#[derive(Clone)]
pub(crate) struct Tracer {
    inner: Arc<Inner>,
}

/// What the environment asks for.
#[derive(Clone)]
pub(crate) enum Tracing {
    /// No export, no `TRACEPARENT`.
    Off,
    /// No export, but a `TRACEPARENT` to hand on to the provider, as it is.
    PassOn(TraceContext),
    Export(Tracer),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tracing {
    /// Read the OpenTelemetry variables. A setting that cannot work (a bad endpoint, gRPC) is a
    /// warning and no export: tracing never fails a run.
    pub(crate) fn from_env(env: &EnvSnapshot) -> Self {
        let parent = env.get(TRACEPARENT).and_then(TraceContext::parse);
        let pass_on = || parent.map_or(Self::Off, Self::PassOn);
        let disabled = env.get(OTEL_SDK_DISABLED).is_some_and(env::is_true)
            || env
                .get(OTEL_TRACES_EXPORTER)
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("none"));
        let endpoint = match (
            env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
            env.get(OTEL_EXPORTER_OTLP_ENDPOINT),
        ) {
            (Some(traces), _) => Url::parse(traces.trim()),
            (None, Some(base)) => {
                Url::parse(&format!("{}/v1/traces", base.trim().trim_end_matches('/')))
            }
            (None, None) => return pass_on(),
        };
        if disabled {
            return pass_on();
        }
        match exporter(env, endpoint) {
            Ok(exporter) => Self::Export(Tracer::new(exporter, parent, env)),
            Err(why) => {
                diag::warn(&format!(
                    "warning: OpenTelemetry export is off: {why} (the run is not affected)"
                ));
                pass_on()
            }
        }
    }

    /// The tracer, when spans are exported.
    pub(crate) fn tracer(&self) -> Option<&Tracer> {
        match self {
            Self::Export(t) => Some(t),
            _ => None,
        }
    }

    /// The trace a request sent under `span` belongs to: its attempts recorded under it when
    /// exporting, else the CI's `TRACEPARENT` handed on as it is.
    pub(crate) fn request(&self, span: Option<TraceContext>) -> Option<RequestTrace> {
        match (self, span) {
            (Self::Export(_), Some(parent)) => Some(RequestTrace {
                parent,
                record: true,
            }),
            (Self::PassOn(parent), _) => Some(RequestTrace {
                parent: *parent,
                record: false,
            }),
            _ => None,
        }
    }
}

/// The exporter `env` describes, or why there is none.
fn exporter(env: &EnvSnapshot, endpoint: Result<Url, url::ParseError>) -> Result<Exporter, String> {
    let endpoint = endpoint.map_err(|e| format!("the OTLP endpoint is not a URL ({e})"))?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err("the OTLP endpoint must be an http:// or https:// URL".to_owned());
    }
    if !endpoint.username().is_empty() || endpoint.password().is_some() {
        return Err(
            "the OTLP endpoint holds credentials (user:password@); give them in OTEL_EXPORTER_OTLP_HEADERS"
                .to_owned(),
        );
    }
    let protocol = match env
        .get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        .or_else(|| env.get(OTEL_EXPORTER_OTLP_PROTOCOL))
        .map(str::trim)
    {
        None | Some("http/protobuf") => Protocol::Protobuf,
        Some("http/json") => Protocol::Json,
        Some(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported: qwen exports over OTLP/HTTP (http/protobuf or http/json)"
            ));
        }
    };
    let mut headers = HeaderMap::new();
    for var in [
        OTEL_EXPORTER_OTLP_HEADERS,
        OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    ] {
        for (name, value) in parse_headers(env.get(var).unwrap_or_default())
            .map_err(|bad| format!("{var} has a header that cannot be sent ({bad})"))?
        {
            headers.insert(name, value);
        }
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(match protocol {
            Protocol::Protobuf => "application/x-protobuf",
            Protocol::Json => "application/json",
        }),
    );
    let timeout = timeout_of(env);
    let http = crate::client::http_builder(&endpoint)
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot set up the HTTP client ({e})"))?;
    let service = env
        .get(OTEL_SERVICE_NAME)
        .map_or("qwen", str::trim)
        .to_owned();
    let resource = vec![
        ("service.name".to_owned(), AttrValue::Str(service)),
        (
            "service.version".to_owned(),
            AttrValue::from(env!("CARGO_PKG_VERSION")),
        ),
        ("telemetry.sdk.name".to_owned(), AttrValue::from("qwen")),
        ("telemetry.sdk.language".to_owned(), AttrValue::from("rust")),
    ];
    Ok(Exporter {
        http,
        endpoint,
        headers,
        protocol,
        resource,
    })
}

/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
fn timeout_of(env: &EnvSnapshot) -> Duration {
    env.get(OTEL_EXPORTER_OTLP_TIMEOUT)
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas, values
/// percent-decoded. Every value is sensitive (never printed, never in a span). `Err` names the
/// bad header (its name only).
fn parse_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| "a pair without `=`".to_owned())?;
            let name = name.trim();
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let mut value = HeaderValue::from_bytes(&percent_decode(value.trim()))
                .map_err(|_| format!("the value of `{name}`"))?;
            value.set_sensitive(true);
            Ok((header, value))
        })
        .collect()
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

impl Tracer {
    fn new(exporter: Exporter, remote_parent: Option<TraceContext>, env: &EnvSnapshot) -> Self {
        let trace_id = remote_parent.map_or_else(
            || loop {
                let id = fastrand::u128(..);
                if id != 0 {
                    break id;
                }
            },
            |p| p.trace_id,
        );
        Self {
            inner: Arc::new(Inner {
                exporter,
                remote_parent,
                trace_id,
                capture: env
                    .get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)
                    .is_some_and(env::is_true),
                timeout: timeout_of(env),
                server: Mutex::default(),
                state: Mutex::default(),
            }),
        }
    }

    /// Whether prompts and answers may go into spans
    /// (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
    pub(crate) fn captures_content(&self) -> bool {
        self.inner.capture
    }

    /// Where the API is, once the configuration says.
    pub(crate) fn set_server(&self, server: Server) {
        *lock(&self.inner.server) = server;
    }

    /// The run's span: the root of the trace, or the child of `TRACEPARENT`.
    pub(crate) fn root(&self, name: &str) -> Span {
        let parent = self.inner.remote_parent;
        self.span(
            name,
            Kind::Internal,
            parent.map(|p| p.span_id),
            parent.is_none_or(|p| p.sampled),
        )
    }

    /// A span under `parent`.
    pub(crate) fn child(&self, parent: TraceContext, name: &str) -> Span {
        self.span(name, Kind::Internal, Some(parent.span_id), parent.sampled)
    }

    /// A span for one chat exchange (a job) under `parent`: the `GenAI` attributes of the request.
    pub(crate) fn chat(&self, parent: TraceContext, model: &str) -> Span {
        let mut span = self.child(parent, &format!("chat {model}"));
        lock(&self.inner.server).describe(&mut span);
        span.set("gen_ai.request.model", model);
        span
    }

    fn span(&self, name: &str, kind: Kind, parent: Option<u64>, sampled: bool) -> Span {
        let started = SystemTime::now();
        Span {
            data: SpanData {
                trace_id: self.inner.trace_id,
                span_id: new_span_id(),
                parent,
                name: name.to_owned(),
                kind,
                start: unix_nanos(started),
                end: 0,
                attributes: Vec::new(),
                status: StatusCode::Unset,
                status_message: String::new(),
            },
            started,
            sampled,
        }
    }

    /// End `span`; a full batch of spans is sent in the background.
    pub(crate) fn end(&self, mut span: Span) {
        span.data.end = unix_nanos(SystemTime::now().max(span.started));
        self.push(span.data);
    }

    fn push(&self, data: SpanData) {
        let batch = {
            let mut state = lock(&self.inner.state);
            state.spans.push(data);
            if state.spans.len() < BATCH_SPANS {
                return;
            }
            std::mem::take(&mut state.spans)
        };
        self.send_in_background(batch);
    }

    fn send_in_background(&self, batch: Vec<SpanData>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            lock(&self.inner.state).spans.extend(batch);
            return;
        };
        let mut state = lock(&self.inner.state);
        state.pending.retain(|h| !h.is_finished());
        if state.pending.len() >= MAX_PENDING_EXPORTS {
            state.dropped += batch.len();
            return;
        }
        let tracer = self.clone();
        state
            .pending
            .push(runtime.spawn(async move { tracer.send(batch).await }));
    }

    /// The client's hook for attempt spans.
    pub(crate) fn attempt_hook(&self) -> impl Fn(&ClientEvent) + Send + Sync + 'static {
        let tracer = self.clone();
        move |event| {
            if let ClientEvent::Attempt(record) = event {
                tracer.attempt(record);
            }
        }
    }

    fn attempt(&self, r: &AttemptRecord) {
        let mut span = Span {
            data: SpanData {
                trace_id: r.parent.trace_id,
                span_id: r.span_id,
                parent: Some(r.parent.span_id),
                name: format!("chat {}", r.model),
                kind: Kind::Client,
                start: unix_nanos(r.start),
                end: unix_nanos(r.end.max(r.start)),
                attributes: Vec::new(),
                status: StatusCode::Unset,
                status_message: String::new(),
            },
            started: r.start,
            sampled: r.parent.sampled,
        };
        lock(&self.inner.server).describe(&mut span);
        span.set("gen_ai.request.model", r.model.clone());
        span.set("qwen.attempt", r.attempt);
        if let Some(status) = r.status {
            span.set("http.response.status_code", u32::from(status));
        }
        if let Some(model) = &r.server_model {
            span.set("gen_ai.response.model", model.clone());
        }
        if let Some(id) = &r.response_id {
            span.set("gen_ai.response.id", id.clone());
        }
        if let Some(reason) = &r.finish_reason {
            span.set("gen_ai.response.finish_reasons", vec![reason.clone()]);
        }
        if let Some(u) = r.usage {
            span.set("gen_ai.usage.input_tokens", u.input_tokens);
            span.set("gen_ai.usage.output_tokens", u.output_tokens);
        }
        if let Some((kind, message)) = &r.error {
            span.error(kind, message);
        }
        self.push(span.data);
    }

    /// Send the spans left and wait for the exports in flight, for at most
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` and never more than 5 s; a failure is one warning.
    pub(crate) async fn shutdown(&self) {
        let (rest, pending) = {
            let mut state = lock(&self.inner.state);
            (
                std::mem::take(&mut state.spans),
                std::mem::take(&mut state.pending),
            )
        };
        let bound = self.inner.timeout.min(MAX_WAIT_AT_EXIT);
        let all = async {
            let mut failure = None;
            if !rest.is_empty()
                && let Err(e) = self.send(rest).await
            {
                failure = Some(e);
            }
            for handle in pending {
                if let Ok(Err(e)) = handle.await {
                    failure.get_or_insert(e);
                }
            }
            failure
        };
        let failure = match tokio::time::timeout(bound, all).await {
            Ok(failure) => failure,
            Err(_) => Some(format!(
                "the receiver did not answer within {}",
                diag::duration(bound)
            )),
        };
        let state = lock(&self.inner.state);
        let failure = failure.or_else(|| state.failure.clone());
        if let Some(why) = failure {
            diag::warn(&format!(
                "warning: OpenTelemetry export to {} failed: {why}; spans were lost (the run is not affected)",
                self.shown_endpoint()
            ));
        } else if state.dropped > 0 {
            diag::warn(&format!(
                "warning: OpenTelemetry export fell behind: {} spans were dropped (the run is not affected)",
                state.dropped
            ));
        }
    }

    /// The endpoint without its query (which might carry a token).
    fn shown_endpoint(&self) -> String {
        let mut url = self.inner.exporter.endpoint.clone();
        url.set_query(None);
        url.set_fragment(None);
        format!("`{url}`")
    }

    async fn send(&self, spans: Vec<SpanData>) -> Result<(), String> {
        let exporter = &self.inner.exporter;
        let resource = encode::Resource {
            attributes: &exporter.resource,
            scope: "qwen",
            version: env!("CARGO_PKG_VERSION"),
        };
        let body = match exporter.protocol {
            Protocol::Protobuf => encode::protobuf(&resource, &spans),
            Protocol::Json => encode::json(&resource, &spans),
        };
        let result = exporter
            .http
            .post(exporter.endpoint.clone())
            .headers(exporter.headers.clone())
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(crate::client::transport_error(&e).to_string()),
        };
        if let Err(e) = &outcome {
            lock(&self.inner.state)
                .failure
                .get_or_insert_with(|| e.clone());
        }
        outcome
    }
}

/// Text captured into a span (a prompt, an answer), cut to a bounded length.
pub(crate) fn captured(text: &str) -> String {
    crate::sanitize::first_chars(text, MAX_TEXT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn traceparent_round_trips_and_bad_ones_are_ignored() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(text).expect("valid");
        assert_eq!(ctx.traceparent(), text);
        assert!(ctx.sampled);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_environment_decides_export_pass_on_or_nothing() {
        assert!(matches!(Tracing::from_env(&env(&[])), Tracing::Off));
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(matches!(
            Tracing::from_env(&env(&[(TRACEPARENT, parent)])),
            Tracing::PassOn(_)
        ));
        let on = Tracing::from_env(&env(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://127.0.0.1:4318/"),
            (TRACEPARENT, parent),
        ]));
        let tracer = on.tracer().expect("export");
        assert_eq!(
            tracer.inner.exporter.endpoint.as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        let root = tracer.root("qwen");
        assert_eq!(root.data.parent, Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(
            root.context().trace_id,
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736
        );
        for off in [(OTEL_SDK_DISABLED, "true"), (OTEL_TRACES_EXPORTER, "none")] {
            let t = Tracing::from_env(&env(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://x:1"), off]));
            assert!(matches!(t, Tracing::Off), "{off:?}");
        }
        let grpc = Tracing::from_env(&env(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://x:4317"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
        ]));
        assert!(matches!(grpc, Tracing::Off));
    }

    #[test]
    fn headers_are_percent_decoded_and_sensitive() {
        let headers = parse_headers("Authorization=Bearer%20abc, x-team = ci ,").expect("parse");
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].1.as_bytes(), b"Bearer abc");
        assert!(headers.iter().all(|(_, v)| v.is_sensitive()));
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("bad name=x").is_err());
    }
}
