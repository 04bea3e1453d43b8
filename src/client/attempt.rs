//! One attempt of a chat request: the POST, the status and headers, and the answer read from an
//! event stream or a JSON body into a `Completion` (or the `ApiError` it amounts to).

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use super::error::{error_code, is_insufficient_quota, transport_failure};
use super::sse::{self, SseParser};
use super::wire::{EventError, Step};
use super::{ApiError, ChatClient, Completion, OnPiece, Piece, limits, pacing, params};
use super::{MAX_ERROR_BODY_BYTES, read_capped};
use crate::diag;

impl ChatClient {
    /// One attempt: the POST, then the answer or the failure it amounts to. `rate` gets the
    /// response's rate-limit headers (for the pacer), whatever the status.
    pub(super) async fn attempt(
        &self,
        body: &Value,
        headers: &[params::ExtraHeader],
        on_piece: &mut OnPiece<'_>,
        attempt: u32,
        rate: &mut pacing::RateHeaders,
    ) -> Result<Completion, ApiError> {
        let (status, result) = match self.post(body, headers, attempt).await {
            Ok(response) => (
                Some(response.status().as_u16()),
                self.answer(response, on_piece, rate).await,
            ),
            Err(e) => (None, Err(e)),
        };
        if self.settings.exchange_log.is_some() {
            self.log_exchange(&self.wire.body(body), status, &result);
        }
        result
    }

    /// The response of one attempt read into an answer, or the failure it amounts to.
    async fn answer(
        &self,
        response: reqwest::Response,
        on_piece: &mut OnPiece<'_>,
        rate: &mut pacing::RateHeaders,
    ) -> Result<Completion, ApiError> {
        let status = response.status();
        *rate = match self.wire.rate_headers(response.headers()) {
            Some(mapped) => pacing::RateHeaders::parse(&mapped),
            None => pacing::RateHeaders::parse(response.headers()),
        };
        let request_id = self.request_id(response.headers());
        let header_cost = response_cost(response.headers());
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
            let error = self.http_error(status, response, rate).await;
            // A wait the protocol gives in its error body (Gemini's `RetryInfo`) paces a batch as
            // a `Retry-After` header would.
            if let ApiError::Http {
                retry_after: Some(wait),
                ..
            } = &error
                && rate.retry_after.is_none()
                && self.wire.waits_in_body()
            {
                rate.retry_after = Some(*wait);
            }
            return Err(error);
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
        // The figure in the body is the final one. The header is written before a stream's body,
        // when the price cannot be known yet: a zero there means "not computed", not "free".
        let header_cost = header_cost.filter(|c| !(is_sse && *c == 0.0));
        completion.provider_cost = completion.provider_cost.or(header_cost);
        Ok(completion)
    }

    /// Send the request: the client's and this request's headers, the key, the body.
    async fn post(
        &self,
        body: &Value,
        headers: &[params::ExtraHeader],
        attempt: u32,
    ) -> Result<reqwest::Response, ApiError> {
        let model = body.get("model").and_then(Value::as_str).unwrap_or("?");
        let url = self.wire.url(&self.base_url, model);
        if self.settings.debug {
            diag::debug(&format!(
                "POST {url} model={model} attempt={attempt} protocol={}",
                self.wire.name()
            ));
        }
        let mut builder = self.http.post(url);
        let merged = params::merge_headers(&self.settings.headers, headers);
        let (key_name, key_value) = self.auth_header();
        // The key's own header (`x-api-key`, `x-goog-api-key`) is the key's: a second value
        // would be sent next to it.
        if let Some(h) = merged
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(key_name))
        {
            return Err(ApiError::Setup(format!(
                "the header `{}` carries the API key for this protocol: set the key instead of passing it as a header",
                h.name
            )));
        }
        for (name, value) in self.wire.fixed_headers() {
            if !merged.iter().any(|h| h.name.eq_ignore_ascii_case(name)) {
                builder = builder.header(*name, HeaderValue::from_static(value));
            }
        }
        for h in merged {
            let mut value = HeaderValue::from_str(&h.value).map_err(|_| {
                ApiError::Setup(format!(
                    "the header `{}` has a value not allowed in a header",
                    h.name
                ))
            })?;
            value.set_sensitive(h.is_secret());
            builder = builder.header(h.name.as_str(), value);
        }
        builder
            .header(key_name, key_value)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(self.wire.encode(body))
            .send()
            .await
            .map_err(|e| self.transport_error(&e))
    }

    /// The server's handle on this request: `x-request-id` (`OpenAI`), `request-id`,
    /// `x-dashscope-request-id`, else `x-litellm-call-id`, the id `LiteLLM`'s proxy gives every call
    /// ("Getting the `LiteLLM` Call ID", <https://docs.litellm.ai/docs/proxy/logging>; listed among the
    /// proxy's response headers, <https://docs.litellm.ai/docs/proxy/response_headers>).
    fn request_id(&self, headers: &reqwest::header::HeaderMap) -> Option<String> {
        [
            "x-request-id",
            "request-id",
            "x-dashscope-request-id",
            "x-litellm-call-id",
        ]
        .iter()
        .find_map(|h| headers.get(*h))
        .map(|v| self.short(&String::from_utf8_lossy(v.as_bytes())))
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
        let mut reader = self.wire.reader();
        let mut done = false;
        let mut eof = false;
        while !done && !eof {
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
                match reader.event(&event, eof, &mut completion, on_piece, limit) {
                    Ok(Step::More) => {}
                    Ok(Step::Done) => {
                        done = true;
                        break;
                    }
                    Err(EventError::Server(data)) => {
                        return Err(ApiError::StreamError(self.scrubbed_message(&data)));
                    }
                    Err(EventError::Api(e)) => return Err(e),
                }
            }
        }
        // Closed before the protocol's end of an answer: the transport was cut.
        if !reader.complete(&completion) {
            return Err(ApiError::StreamCut);
        }
        self.checked(completion)
    }

    /// A server that ignored `stream: true` and answered with one JSON body. The answer is
    /// checked whole before its text is handed on: a body without a finish reason, or a refusal,
    /// never reaches the user as an answer.
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
        let completion = self.wire.whole(&value, limit)?;
        if !completion.reasoning.is_empty() {
            on_piece(Piece::Reasoning(&completion.reasoning))
                .map_err(|_| ApiError::OutputClosed)?;
        }
        let completion = self.checked(completion)?;
        if !completion.text.is_empty() {
            on_piece(Piece::Text(&completion.text)).map_err(|_| ApiError::OutputClosed)?;
        }
        Ok(completion)
    }

    async fn http_error(
        &self,
        status: StatusCode,
        response: reqwest::Response,
        rate: &pacing::RateHeaders,
    ) -> ApiError {
        // `rate` was parsed from this response's headers: Retry-After is read once.
        let mut retry_after = rate.retry_after;
        let (bytes, _) = read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        retry_after = retry_after.or_else(|| self.wire.body_retry_after(&body));
        if status == StatusCode::TOO_MANY_REQUESTS {
            // OpenAI's 429 often names no Retry-After, only when its budgets reset.
            retry_after = retry_after.or_else(|| rate.wait_hint());
        }
        // Only the start of an error body was read: it is shortened for the message anyway.
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
        match transport_failure(e) {
            ApiError::Timeout(detail) => ApiError::Timeout(self.scrubbed(&detail)),
            ApiError::Network(detail) => ApiError::Network(self.scrubbed(&detail)),
            ApiError::Dropped(detail) => ApiError::Dropped(self.scrubbed(&detail)),
            ApiError::Protocol(detail) => ApiError::Protocol(self.scrubbed(&detail)),
            ApiError::Certificate(detail) => ApiError::Certificate(self.scrubbed(&detail)),
            other => other,
        }
    }

    /// The rules an answer must pass, for a stream and a JSON body alike: a refusal is a failure
    /// of its own; an answer the server never finished (no `finish_reason`) is incomplete, unless
    /// the server is known never to send one (`--accept-missing-finish-reason`); an answer with
    /// neither text nor structured content is empty. The server's short values pass the one door.
    fn checked(&self, mut completion: Completion) -> Result<Completion, ApiError> {
        completion.finish_reason = completion.finish_reason.map(|r| self.short(&r));
        completion.response_id = completion.response_id.map(|r| self.short(&r));
        completion.server_model = completion.server_model.map(|r| self.short(&r));
        if !completion.refusal.is_empty() {
            return Err(ApiError::Refusal(self.scrubbed(&completion.refusal)));
        }
        if completion.finish_reason.is_none() {
            self.missing_finish_reason(&completion)?;
        }
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

    /// An answer without a `finish_reason`: incomplete, or accepted when the server is known never
    /// to send one. `--debug` says which, so that a user can tell which servers need the opt-out.
    fn missing_finish_reason(&self, completion: &Completion) -> Result<(), ApiError> {
        let accept = self.settings.accept_missing_finish_reason;
        if self.settings.debug {
            diag::debug(&format!(
                "the answer has no finish_reason ({} characters of text): {}",
                completion.text.chars().count(),
                if accept {
                    "accepted (--accept-missing-finish-reason)"
                } else {
                    "incomplete; a server that never sends one needs --accept-missing-finish-reason"
                }
            ));
        }
        if accept {
            return Ok(());
        }
        Err(ApiError::Incomplete {
            partial: self.sanitized(&completion.text, MAX_PARTIAL_CHARS),
            chars: completion.text.chars().count(),
            usage: completion.usage,
        })
    }
}

/// `LiteLLM`'s proxy's price of the call, in US dollars: the `x-litellm-response-cost` header
/// (<https://docs.litellm.ai/docs/proxy/response_headers>). A header that is not a finite,
/// non-negative number is ignored.
fn response_cost(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    headers
        .get("x-litellm-response-cost")?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|c| c.is_finite() && *c >= 0.0)
}

/// At most this many characters of a cut answer are quoted in its error message.
const MAX_PARTIAL_CHARS: usize = 300;
