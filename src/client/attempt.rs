//! One attempt of a chat request: the POST, the status and headers, and the answer read from an
//! event stream or a JSON body into a `Completion` (or the `ApiError` it amounts to).

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use super::error::{error_code, is_insufficient_quota, transport_failure};
use super::sse::{self, SseParser};
use super::{ApiError, ChatClient, Completion, OnPiece, Piece, Usage, limits, pacing, params};
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
        let response = self.post(body, headers, attempt).await?;
        let status = response.status();
        *rate = pacing::RateHeaders::parse(response.headers());
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
        builder
            .header(AUTHORIZATION, self.auth_header())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(serde_json::to_vec(body).unwrap_or_default())
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
                self.apply_event(&event, eof, &mut completion, on_piece)?;
            }
        }
        // Closed without `[DONE]` and without a finish reason: the transport was cut.
        if completion.finish_reason.is_none() && !saw_done {
            return Err(ApiError::StreamCut);
        }
        self.checked(completion)
    }

    /// One event of a stream: an error event, or a chunk added to `completion`.
    fn apply_event(
        &self,
        event: &sse::SseEvent,
        eof: bool,
        completion: &mut Completion,
        on_piece: &mut OnPiece<'_>,
    ) -> Result<(), ApiError> {
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
        apply_chunk(
            &chunk,
            completion,
            on_piece,
            self.settings.max_response_bytes,
        )
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
        let completion = whole_completion(&value, limit)?;
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

/// The `Completion` a JSON body holds (`choices[0].message`), before `checked`. `refusal` sits
/// beside `content` (`content: null` when the model declined: `ChatCompletionResponseMessage` in
/// openai/openai-openapi `openapi.yaml`); `finish_reason` is required there, so its absence is
/// not read as `stop`.
fn whole_completion(value: &Value, limit: usize) -> Result<Completion, ApiError> {
    let choice = value
        .pointer("/choices/0")
        .ok_or_else(|| ApiError::InvalidResponse("the response has no choices".into()))?;
    let text_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let message = choice.get("message");
    let text = text_of(message.and_then(|m| m.get("content"))).unwrap_or_default();
    if text.len() > limit {
        return Err(ApiError::TooLarge {
            limit,
            what: "the answer is too long",
        });
    }
    Ok(Completion {
        text,
        reasoning: message
            .and_then(reasoning_of)
            .unwrap_or_default()
            .to_owned(),
        refusal: text_of(message.and_then(|m| m.get("refusal"))).unwrap_or_default(),
        structured: has_structured_content(message),
        usage: value.get("usage").and_then(Usage::from_openai),
        provider_cost: value.get("usage").and_then(super::usage_cost),
        finish_reason: text_of(choice.get("finish_reason")),
        response_id: text_of(value.get("id")),
        server_model: text_of(value.get("model")),
        created: value.get("created").and_then(Value::as_u64),
        ..Completion::default()
    })
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
    if let Some(cost) = chunk.get("usage").and_then(super::usage_cost) {
        completion.provider_cost = Some(cost);
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
        // `delta.refusal`: the model declines, piece by piece (`ChatCompletionStreamResponseDelta`
        // in openai/openai-openapi `openapi.yaml`). Bounded like the text; never handed on.
        if let Some(refusal) = choice.pointer("/delta/refusal").and_then(Value::as_str) {
            if completion.refusal.len().saturating_add(refusal.len()) > limit {
                return Err(ApiError::TooLarge {
                    limit,
                    what: "the refusal is too long",
                });
            }
            completion.refusal.push_str(refusal);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
