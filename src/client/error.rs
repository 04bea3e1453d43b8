//! Why a request failed (`ApiError`), what each failure means for the exit status, its
//! `error.type` name and its hint, and the failure after the retries (`Failure`). Also the reading
//! of error bodies and transport errors into an `ApiError`.

use std::time::Duration;

use serde_json::Value;

use super::{Usage, retry, transport};
use crate::exit::ExitStatus;
use crate::sanitize;

/// The `error.type` of a `LiteLLM` proxy without a database answering a key other than its master key.
const LITELLM_NO_DB: &str = "no_db_connection";

/// How `LiteLLM` starts the message of an authentication failure it maps from the provider behind
/// it ("`LiteLLM` errors always include a `litellm.` prefix": BerriAI/litellm,
/// `docs/my-website/docs/troubleshoot.md`); its own key check answers "Authentication Error, ...".
const LITELLM_UPSTREAM_AUTH: &str = "litellm.AuthenticationError";

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
    /// The same 500 twice, saying a setting of the server's own is missing (a `LiteLLM` proxy
    /// without `files_settings` answers a Batch API call `500 files_settings is not set`):
    /// waiting will not heal it.
    #[error("the server is misconfigured: HTTP 500: {0}")]
    ServerMisconfigured(String),
    /// The server refused or reset the connection: a busy, restarting or overloaded server
    /// (`transport::Kind::Dropped`), worth another try and a sign of congestion.
    #[error("network error: {0}")]
    Dropped(String),
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
    /// The answer ended without a `finish_reason`: the server never said it was complete (a
    /// stream closed, or ended with `[DONE]`, before its last chunk; llama.cpp's server does this
    /// to a request that a newer one interrupts). `partial` is what had arrived, already through
    /// the one door and shortened: for the message, never for `result`.
    #[error("{}", incomplete(partial, *chars))]
    Incomplete {
        partial: String,
        /// Characters of answer text received before the cut.
        chars: usize,
        usage: Option<Usage>,
    },
    /// The model declined: `message.refusal` / `delta.refusal` (`OpenAI`, with `content: null`),
    /// the model's words through the one door.
    #[error("the model refused to answer: {0}")]
    Refusal(String),
}

impl ApiError {
    /// The tokens a failed request still cost, when the server said (an empty answer).
    pub(crate) fn usage(&self) -> Option<Usage> {
        match self {
            Self::EmptyAnswer { usage, .. }
            | Self::EmptyAfterReasoning { usage, .. }
            | Self::Incomplete { usage, .. } => *usage,
            _ => None,
        }
    }

    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => retry::is_retryable_status(*status),
            Self::Network(_)
            | Self::Dropped(_)
            | Self::Timeout(_)
            | Self::StreamCut
            | Self::Incomplete { .. } => true,
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

    /// Whether the key was refused: HTTP 401/403, or the `400 no_db_connection` of a `LiteLLM`
    /// proxy without a database, which can check no key but its master key (BerriAI/litellm,
    /// `litellm/proxy/_types.py`, `ProxyErrorTypes.no_db_connection`; measured on `litellm[proxy]`
    /// 1.108.7: `400 {"error":{"message":"No connected db.","type":"no_db_connection",...}}`).
    fn is_auth(&self) -> bool {
        match self {
            Self::Http {
                status: 401 | 403, ..
            } => true,
            Self::Http {
                status: 400, code, ..
            } => code.as_deref() == Some(LITELLM_NO_DB),
            _ => false,
        }
    }

    /// Whether the failure says the server is congested, so that a batch's pacer can lower its
    /// window as for a 429: an answer cut short (`Incomplete`, `StreamCut`: a one-slot server such
    /// as llama.cpp's interrupts a request for a newer one), a connection refused or reset
    /// (`Dropped`), or a 503 whose message says the server is busy or still loading its model
    /// (llama.cpp's server: `503 {"error":{"code":503,"message":"Loading model",
    /// "type":"unavailable_error"}}`).
    pub(crate) fn is_congestion(&self) -> bool {
        match self {
            Self::Incomplete { .. } | Self::StreamCut | Self::Dropped(_) => true,
            Self::Http {
                status: 503,
                message,
                ..
            } => {
                let message = message.to_ascii_lowercase();
                message.contains("busy") || message.contains("loading")
            }
            _ => false,
        }
    }

    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            e if e.is_auth() => ExitStatus::Auth,
            Self::RetryAfterTooLong { .. } | Self::RateLimitWait { .. } => ExitStatus::TempFail,
            Self::OutputClosed => ExitStatus::Success,
            Self::Setup(_) | Self::InvalidKey | Self::Certificate(_) => ExitStatus::Config,
            e if e.is_retryable() => ExitStatus::TempFail,
            _ => ExitStatus::Failure,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            e if e.is_auth() => "authentication_error",
            Self::Http { status: 429, .. }
            | Self::RetryAfterTooLong { .. }
            | Self::RateLimitWait { .. } => "rate_limit_error",
            Self::QuotaExhausted { .. } => "insufficient_quota",
            Self::Http { status, .. } if *status >= 500 => "server_error",
            Self::ServerMisconfigured(_) => "server_configuration_error",
            Self::Http { .. } => "api_error",
            Self::Network(_) | Self::Dropped(_) => "network_error",
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
            Self::Incomplete { .. } => "incomplete_answer",
            Self::Refusal(_) => "refusal",
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::Http { status: 400, .. } if self.is_auth() => {
                "this gateway (a LiteLLM proxy without a database) accepts only its master key: set OPENAI_API_KEY to the proxy's master key"
            }
            Self::Http {
                status: 401,
                message,
                ..
            } if message.starts_with(LITELLM_UPSTREAM_AUTH) => {
                "the gateway accepted OPENAI_API_KEY, but the provider behind it refused the gateway's own key for this model: fix that key in the gateway's configuration"
            }
            Self::Http {
                status: 401 | 403, ..
            } => {
                "check OPENAI_API_KEY and that it belongs to the provider at OPENAI_BASE_URL (`qwen auth status` shows what is used)"
            }
            Self::Http { status: 404, .. } => {
                "check OPENAI_BASE_URL (it usually ends in /v1) and the model name"
            }
            Self::InvalidKey => "check the key for stray characters, such as a newline from a file",
            Self::ServerMisconfigured(_) => {
                "the server says a setting of its own is missing, and asking again will not change that: fix the server's configuration (a LiteLLM proxy needs `files_settings` for the Batch API)"
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
            Self::Incomplete { .. } => {
                "the server cut the answer short (a one-slot server such as llama.cpp's does so when another request arrives): retry later (exit 75) or send fewer requests at once; a server that never sends finish_reason needs --accept-missing-finish-reason"
            }
            Self::Refusal(_) => {
                "the model declined the prompt: change the prompt; retrying or another model is not tried for a refusal"
            }
            e if e.is_retryable() => "the failure looks temporary: retry later (exit 75)",
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

fn empty_after_reasoning(finish_reason: Option<&str>) -> String {
    match finish_reason {
        Some("length") => "the answer was empty after reasoning: the token limit was reached while the model was still reasoning (finish_reason: length)".to_owned(),
        Some(reason) => format!("the answer was empty after reasoning (finish_reason: {reason})"),
        None => "the answer was empty after reasoning".to_owned(),
    }
}

fn incomplete(partial: &str, chars: usize) -> String {
    let what = "the server ended the answer before it was complete (no finish_reason)";
    if chars == 0 {
        format!("{what}, before any text")
    } else {
        format!("{what}, after {chars} characters: \"{partial}\"")
    }
}

/// An `ApiError` after the retry policy gave up, with the attempts spent on it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) error: ApiError,
    pub(crate) attempts: u32,
    /// What was changed in the request before it failed for good (`adjusted`).
    pub(crate) adjusted: Vec<String>,
    /// Time slept before retries (`retry_wait_ms`).
    pub(crate) retry_wait: Duration,
}

/// A failure to send or to read a response: a timeout, a permanent protocol or certificate
/// failure (`transport::classify`), or any other network error, with its causes. For the callers
/// outside the chat client (the Batch API client, OAuth), a dropped connection is a plain
/// `Network` error, as before.
pub(crate) fn transport_error(e: &reqwest::Error) -> ApiError {
    match transport_failure(e) {
        ApiError::Dropped(detail) => ApiError::Network(detail),
        other => other,
    }
}

/// `transport_error`, with a refused, reset or early-closed connection as `Dropped` (congestion).
pub(super) fn transport_failure(e: &reqwest::Error) -> ApiError {
    let detail = error_chain(e);
    if e.is_timeout() {
        return ApiError::Timeout(detail);
    }
    match transport::classify(e) {
        transport::Kind::Certificate => ApiError::Certificate(detail),
        transport::Kind::Protocol => ApiError::Protocol(detail),
        transport::Kind::Dropped => ApiError::Dropped(detail),
        transport::Kind::Temporary => ApiError::Network(detail),
    }
}

/// An error and all its sources, `: `-separated.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}
/// Whether a 429 body is the "out of credit" answer rather than a rate limit:
/// `"code": "insufficient_quota"`, or (older keys, `"code": null`) `"type": "insufficient_quota"`.
pub(super) fn is_insufficient_quota(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    ["/error/code", "/error/type", "/code", "/type"]
        .iter()
        .any(|p| v.pointer(p).and_then(Value::as_str) == Some("insufficient_quota"))
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

/// The machine-readable kind of an error body: `error.code` when it is a name, else `error.type`
/// (`OpenAI`: `{"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}`; Anthropic-style
/// gateways: `{"type": "error", "error": {"type": "overloaded_error"}}`; `LiteLLM`'s proxy, whose
/// `code` only repeats the status as a string: `{"error": {"message": "No connected db.",
/// "type": "no_db_connection", "param": "None", "code": "400"}}`). Bounded: a name, not text.
pub(super) fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let name = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty() && !c.bytes().all(|b| b.is_ascii_digit()))
    };
    let code = name("/error/code").or_else(|| name("/error/type"))?;
    (code.len() <= 64).then(|| code.to_owned())
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

    #[test]
    fn congestion_is_a_cut_a_dropped_connection_or_a_busy_503() {
        let http = |status, message: &str| ApiError::Http {
            status,
            message: message.to_owned(),
            retry_after: None,
            code: None,
        };
        let incomplete = ApiError::Incomplete {
            partial: String::new(),
            chars: 0,
            usage: None,
        };
        let yes = [
            incomplete,
            ApiError::StreamCut,
            ApiError::Dropped("connection refused".into()),
            http(503, "Loading model"),
            http(503, "the server is busy"),
        ];
        for e in &yes {
            assert!(e.is_congestion(), "{e:?}");
            assert_eq!(e.exit_status(), ExitStatus::TempFail, "{e:?}");
        }
        let no = [
            http(503, "Service Unavailable"),
            http(429, "slow down"),
            http(500, "busy"),
            ApiError::Network("dns error".into()),
            ApiError::Timeout("idle".into()),
            ApiError::Refusal("no".into()),
        ];
        for e in &no {
            assert!(!e.is_congestion(), "{e:?}");
        }
        assert_eq!(
            ApiError::Refusal("no".into()).exit_status(),
            ExitStatus::Failure
        );
        assert_eq!(ApiError::Refusal("no".into()).kind(), "refusal");
    }

    #[test]
    fn a_numeric_error_code_gives_way_to_the_type() {
        let cases = [
            (
                r#"{"error":{"message":"No connected db.","type":"no_db_connection","param":"None","code":"400"}}"#,
                Some("no_db_connection"),
            ),
            (
                r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#,
                Some("insufficient_quota"),
            ),
            (
                r#"{"error":{"type":"overloaded_error"}}"#,
                Some("overloaded_error"),
            ),
            (r#"{"error":{"code":"429"}}"#, None),
            ("not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(error_code(body).as_deref(), want, "{body}");
        }
        let no_db = ApiError::Http {
            status: 400,
            message: "No connected db.".into(),
            retry_after: None,
            code: error_code(cases[0].0),
        };
        assert_eq!(no_db.exit_status(), ExitStatus::Auth);
        assert_eq!(no_db.kind(), "authentication_error");
    }
}
