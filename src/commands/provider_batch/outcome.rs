//! How one line of a provider's results ended: an `OpenAI` Batch API line (its body a chat
//! completion or a Responses object, read by the wire module a local run uses) or an Anthropic
//! result line, as the outcome a local run would have had, and what its answer cost.

use serde_json::Value;

use crate::client::batch_api::BatchKind;
use crate::client::{ApiError, Completion, Usage};
use crate::cost::{BatchCost, PriceTable};

use super::convert::MAX_LINE_BYTES;

/// How one provider line ended.
pub(super) enum Outcome {
    Ok(Completion),
    Err(ApiError),
    /// An answer that matched its job's schema: the completion (its text the compact value) and
    /// the value.
    Structured(Completion, Value),
    /// The answer does not match the job's schema (the Batch API cannot ask again).
    Invalid {
        errors: Vec<String>,
        last_answer: String,
        usage: Option<Usage>,
    },
    /// The provider never ran the request (`error.code` `batch_expired` or `batch_cancelled`).
    NotRun {
        kind: &'static str,
        message: String,
        temporary: bool,
    },
}

/// A provider line's `error`: a request the batch never ran (expired: temporary; cancelled), or
/// one the provider could not run.
fn error_outcome(error: &Value, scrub: &dyn Fn(&str) -> String) -> Outcome {
    let code = error.get("code").and_then(Value::as_str).unwrap_or("error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    // OpenAI lists the requests an expired (or cancelled) batch never ran in the error file.
    let not_run = match code {
        "batch_expired" => Some(("batch_expired", true)),
        "batch_cancelled" => Some(("batch_cancelled", false)),
        _ => None,
    };
    if let Some((kind, temporary)) = not_run {
        return Outcome::NotRun {
            kind,
            message: scrub(&format!(
                "the provider never ran this request ({message}); run it locally with `qwen --jobs FILE --resume --output FILE`, or submit again"
            )),
            temporary,
        };
    }
    Outcome::Err(ApiError::InvalidResponse(scrub(&format!(
        "the provider could not run the request: {code}: {message}"
    ))))
}

/// What an answer cost: the provider's figure, else `--prices` (its batch prices when it has
/// them), else unknown; nothing for a request that failed without an answer.
pub(super) fn outcome_cost(
    outcome: &Outcome,
    model: &str,
    prices: Option<&PriceTable>,
) -> BatchCost {
    match outcome {
        Outcome::Ok(c) | Outcome::Structured(c, _) => {
            let mut names = vec![model];
            names.extend(c.server_model.as_deref());
            BatchCost::of(c.provider_cost, c.usage, &names, prices)
        }
        Outcome::Invalid { usage, .. } => BatchCost::of(None, *usage, &[model], prices),
        Outcome::Err(_) | Outcome::NotRun { .. } => BatchCost::default(),
    }
}

/// A provider line as an outcome: Anthropic's result line, or an `OpenAI` Batch API line
/// (`{"id","custom_id","response":{"status_code","request_id","body"},"error"}`) whose body is a
/// chat completion or a Responses object.
pub(super) fn classify(kind: BatchKind, line: &Value, scrub: &dyn Fn(&str) -> String) -> Outcome {
    if kind == BatchKind::Anthropic {
        return anthropic_outcome(line, scrub);
    }
    if let Some(error) = line.get("error").filter(|e| !e.is_null()) {
        return error_outcome(error, scrub);
    }
    let Some(response) = line.get("response").filter(|r| !r.is_null()) else {
        return Outcome::Err(ApiError::InvalidResponse(
            "the provider's line has neither `response` nor `error`".into(),
        ));
    };
    let status = response
        .get("status_code")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    let body = response.get("body").unwrap_or(&Value::Null);
    if status != 200 {
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| body.to_string(), str::to_owned);
        let short: String = message.chars().take(500).collect();
        return Outcome::Err(ApiError::Http {
            code: None,
            status,
            message: scrub(&short),
            retry_after: None,
        });
    }
    let mut outcome = match kind {
        BatchKind::OpenaiResponses => responses_outcome(body, scrub),
        BatchKind::OpenaiChat | BatchKind::Anthropic => chat_outcome(body, scrub),
    };
    if let Outcome::Ok(c) = &mut outcome {
        c.request_id = response
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        c.provider_cost = c
            .provider_cost
            .or_else(|| body.get("usage").and_then(crate::client::usage_cost));
    }
    outcome
}

/// A chat completion as an outcome.
fn chat_outcome(body: &Value, scrub: &dyn Fn(&str) -> String) -> Outcome {
    let Some(choice) = body.pointer("/choices/0") else {
        return Outcome::Err(ApiError::InvalidResponse(
            "the response has no choices".into(),
        ));
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let content = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tool_calls = ["tool_calls", "function_call"].iter().any(|k| {
        choice
            .pointer(&format!("/message/{k}"))
            .is_some_and(|v| !v.is_null())
    });
    // As a local run: a refusal is an answer of its own (exit 1, `refusal`), never a success.
    if let Some(refusal) = choice
        .pointer("/message/refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
    {
        return Outcome::Err(ApiError::Refusal(scrub(refusal)));
    }
    if content.is_empty() && !tool_calls {
        // As a local run: an answer with no text is no success.
        return Outcome::Err(ApiError::EmptyAnswer {
            finish_reason: text(choice.get("finish_reason")).map(|r| scrub(&r)),
            usage: body.get("usage").and_then(Usage::from_openai),
        });
    }
    Outcome::Ok(Completion {
        text: content.to_owned(),
        usage: body.get("usage").and_then(Usage::from_openai),
        finish_reason: text(choice.get("finish_reason")),
        response_id: text(body.get("id")),
        server_model: text(body.get("model")),
        created: body.get("created").and_then(Value::as_u64),
        attempts: 1,
        ..Completion::default()
    })
}

/// A Responses object (`response.body` of a `/v1/responses` line) as an outcome; a response
/// whose `status` is `failed` is its `error`.
fn responses_outcome(body: &Value, scrub: &dyn Fn(&str) -> String) -> Outcome {
    if body.get("status").and_then(Value::as_str) == Some("failed") {
        let code = body.pointer("/error/code").and_then(Value::as_str);
        let message = body.pointer("/error/message").and_then(Value::as_str);
        return Outcome::Err(ApiError::InvalidResponse(scrub(&format!(
            "the response failed: {}: {}",
            code.unwrap_or("error"),
            message.unwrap_or_default()
        ))));
    }
    completion_outcome(
        crate::client::wire::responses::whole(body, MAX_LINE_BYTES),
        scrub,
    )
}

/// A completion read by a wire module, checked as a local run checks an answer: a refusal is a
/// failure of its own, an answer with no text (and no structured content) is empty.
fn completion_outcome(
    read: Result<Completion, ApiError>,
    scrub: &dyn Fn(&str) -> String,
) -> Outcome {
    let mut c = match read {
        Ok(c) => c,
        Err(e) => return Outcome::Err(e),
    };
    c.finish_reason = c.finish_reason.map(|r| scrub(&r));
    c.response_id = c.response_id.map(|r| scrub(&r));
    c.server_model = c.server_model.map(|r| scrub(&r));
    if !c.refusal.is_empty() {
        return Outcome::Err(ApiError::Refusal(scrub(&c.refusal)));
    }
    if c.text.is_empty() && !c.structured {
        let (finish_reason, usage) = (c.finish_reason, c.usage);
        return Outcome::Err(if c.reasoning.is_empty() {
            ApiError::EmptyAnswer {
                finish_reason,
                usage,
            }
        } else {
            ApiError::EmptyAfterReasoning {
                finish_reason,
                usage,
            }
        });
    }
    c.attempts = 1;
    Outcome::Ok(c)
}

/// The HTTP status of an Anthropic error type ("Errors", <https://docs.anthropic.com/en/api/errors>).
fn anthropic_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// An Anthropic result line (`{"custom_id", "result": {"type", …}}`) as an outcome: `succeeded`
/// holds a Message, `errored` an error response (`{"type": "error", "error": {"type",
/// "message"}}`), and `canceled` / `expired` requests never ran.
fn anthropic_outcome(line: &Value, scrub: &dyn Fn(&str) -> String) -> Outcome {
    let result = line.get("result").unwrap_or(&Value::Null);
    let hint = "run it locally with `qwen --jobs FILE --resume --output FILE`, or submit again";
    match result.get("type").and_then(Value::as_str) {
        Some("succeeded") => completion_outcome(
            crate::client::wire::anthropic::whole(
                result.get("message").unwrap_or(&Value::Null),
                MAX_LINE_BYTES,
            ),
            scrub,
        ),
        Some("errored") => {
            let error = result.get("error").unwrap_or(&Value::Null);
            let inner = error.get("error").unwrap_or(error);
            let kind = inner
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            let message = inner.get("message").and_then(Value::as_str).unwrap_or("");
            let short: String = message.chars().take(500).collect();
            Outcome::Err(ApiError::Http {
                status: anthropic_status(kind),
                message: scrub(&short),
                retry_after: None,
                code: Some(scrub(kind)),
            })
        }
        Some("canceled") => Outcome::NotRun {
            kind: "batch_cancelled",
            message: format!("the batch was cancelled before this request ran; {hint}"),
            temporary: false,
        },
        Some("expired") => Outcome::NotRun {
            kind: "batch_expired",
            message: format!("the batch expired before this request ran; {hint}"),
            temporary: true,
        },
        _ => Outcome::Err(ApiError::InvalidResponse(
            "the provider's result line has no `result.type` Anthropic defines".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitStatus;
    use serde_json::json;

    /// What an outcome says, for table-driven checks: the result text or the error kind, and
    /// whether the failure is temporary.
    fn said(outcome: &Outcome) -> (String, bool) {
        match outcome {
            Outcome::Ok(c) => (c.text.clone(), false),
            Outcome::Err(e) => (e.kind().to_owned(), e.exit_status() == ExitStatus::TempFail),
            Outcome::NotRun {
                kind, temporary, ..
            } => ((*kind).to_owned(), *temporary),
            Outcome::Structured(..) | Outcome::Invalid { .. } => ("other".to_owned(), false),
        }
    }

    #[test]
    fn anthropic_result_lines_are_classified_like_local_outcomes() {
        let keep = |t: &str| t.to_owned();
        let message = json!({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "hi"}],
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 2, "output_tokens": 1}});
        let errored = |kind: &str| json!({"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": "no"}}});
        let cases = [
            (
                json!({"type": "succeeded", "message": message}),
                "hi",
                false,
            ),
            (
                json!({"type": "succeeded", "message": {"type": "message", "content": [], "stop_reason": "refusal"}}),
                "empty_answer",
                false,
            ),
            (errored("invalid_request_error"), "api_error", false),
            (errored("overloaded_error"), "server_error", true),
            (errored("rate_limit_error"), "rate_limit_error", true),
            (json!({"type": "canceled"}), "batch_cancelled", false),
            (json!({"type": "expired"}), "batch_expired", true),
            (json!({"type": "mystery"}), "invalid_response", false),
        ];
        for (result, want, temporary) in cases {
            let line = json!({"custom_id": "a", "result": result});
            let outcome = classify(BatchKind::Anthropic, &line, &keep);
            let (got, temp) = said(&outcome);
            assert_eq!((got.as_str(), temp), (want, temporary), "{line}");
            if let Outcome::Ok(c) = outcome {
                let u = c.usage.expect("usage");
                assert_eq!((u.input_tokens, u.cache_read_input_tokens), (5, 2));
            }
        }
    }

    #[test]
    fn responses_lines_are_classified_like_local_outcomes() {
        let keep = |t: &str| t.to_owned();
        let message = |text: &str| json!([{"type": "message", "content": [{"type": "output_text", "text": text}]}]);
        let cases = [
            (
                json!({"object": "response", "status": "completed", "output": message("hi")}),
                "hi",
            ),
            (
                json!({"object": "response", "status": "incomplete", "output": message("",),
                    "incomplete_details": {"reason": "max_output_tokens"}}),
                "empty_answer",
            ),
            (
                json!({"object": "response", "status": "completed",
                    "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "no"}]}]}),
                "refusal",
            ),
            (
                json!({"object": "response", "status": "failed", "error": {"code": "server_error", "message": "x"}}),
                "invalid_response",
            ),
        ];
        for (body, want) in cases {
            let line = json!({"custom_id": "a", "response": {"status_code": 200, "request_id": "r", "body": body}});
            let outcome = classify(BatchKind::OpenaiResponses, &line, &keep);
            assert_eq!(said(&outcome).0, want, "{line}");
            if let Outcome::Ok(c) = outcome {
                assert_eq!(c.request_id.as_deref(), Some("r"));
            }
        }
    }

    #[test]
    fn provider_lines_are_classified_like_local_outcomes() {
        let keep = |t: &str| t.to_owned();
        let ok = json!({"custom_id": "a", "response": {"status_code": 200, "request_id": "r",
            "body": {"id": "c", "model": "m", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}, "error": null});
        let Outcome::Ok(c) = classify(BatchKind::OpenaiChat, &ok, &keep) else {
            panic!("a success")
        };
        assert_eq!((c.text.as_str(), c.usage.unwrap().total_tokens), ("hi", 4));
        let cases = [
            (
                json!({"response": {"status_code": 429, "body": {"error": {"message": "slow"}}}}),
                "rate_limit_error",
                true,
            ),
            (
                json!({"response": {"status_code": 400, "body": {"error": {"message": "bad"}}}}),
                "api_error",
                false,
            ),
            (
                json!({"response": null, "error": {"code": "x", "message": "y"}}),
                "invalid_response",
                false,
            ),
            (
                json!({"response": {"status_code": 200, "body": {}}}),
                "invalid_response",
                false,
            ),
        ];
        let expired =
            json!({"response": null, "error": {"code": "batch_expired", "message": "late"}});
        let Outcome::NotRun {
            kind, temporary, ..
        } = classify(BatchKind::OpenaiChat, &expired, &keep)
        else {
            panic!("not run")
        };
        assert_eq!((kind, temporary), ("batch_expired", true));
        for (line, kind, temporary) in cases {
            let Outcome::Err(e) = classify(BatchKind::OpenaiChat, &line, &keep) else {
                panic!("an error: {line}")
            };
            assert_eq!(e.kind(), kind, "{line}");
            assert_eq!(e.exit_status() == ExitStatus::TempFail, temporary, "{line}");
        }
    }
}
