//! `OpenAI` Chat Completions: the body is the request model itself; the stream is
//! `chat.completion.chunk` events ending in `data: [DONE]` (or at a finish reason), with an
//! error object or an `event: error` standing for a failure mid-stream.

use serde_json::Value;

use super::{EventError, Out, Step, event_json};
use crate::client::sse::SseEvent;
use crate::client::{ApiError, Completion, Usage};

/// A Chat Completions stream's state: whether `[DONE]` was seen.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub(crate) done: bool,
}

impl Reader {
    pub(super) fn event(
        &mut self,
        event: &SseEvent,
        eof: bool,
        out: &mut Out<'_, '_, '_>,
    ) -> Result<Step, EventError> {
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Step::Done);
        }
        if event.event.as_deref() == Some("error") {
            return Err(EventError::Server(event.data.clone()));
        }
        let chunk = event_json(event, eof)?;
        if chunk.get("error").is_some() {
            return Err(EventError::Server(event.data.clone()));
        }
        apply_chunk(&chunk, out)?;
        Ok(Step::More)
    }
}

/// The `Completion` a JSON body holds (`choices[0].message`), before `checked`. `refusal` sits
/// beside `content` (`content: null` when the model declined: `ChatCompletionResponseMessage` in
/// openai/openai-openapi `openapi.yaml`); `finish_reason` is required there, so its absence is
/// not read as `stop`.
pub(crate) fn whole(value: &Value, limit: usize) -> Result<Completion, ApiError> {
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
        // OpenRouter's `usage.cost` (and LiteLLM's, when it adds one): the provider's own price.
        provider_cost: value.get("usage").and_then(super::super::usage_cost),
        finish_reason: text_of(choice.get("finish_reason")),
        response_id: text_of(value.get("id")),
        server_model: text_of(value.get("model")),
        created: value.get("created").and_then(Value::as_u64),
        ..Completion::default()
    })
}

fn apply_chunk(chunk: &Value, out: &mut Out<'_, '_, '_>) -> Result<(), ApiError> {
    let completion = &mut *out.completion;
    if completion.response_id.is_none() {
        completion.response_id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        completion.server_model = chunk
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned);
        completion.created = chunk.get("created").and_then(Value::as_u64);
    }
    if let Some(cost) = chunk.get("usage").and_then(super::super::usage_cost) {
        completion.provider_cost = Some(cost);
    }
    if let Some(usage) = chunk.get("usage").and_then(Usage::from_openai) {
        completion.usage = Some(usage);
    }
    if let Some(choice) = chunk.pointer("/choices/0") {
        if let Some(reasoning) = choice.get("delta").and_then(reasoning_of) {
            out.reasoning(reasoning)?;
        }
        if has_structured_content(choice.get("delta")) {
            out.completion.structured = true;
        }
        // `delta.refusal`: the model declines, piece by piece (`ChatCompletionStreamResponseDelta`
        // in openai/openai-openapi `openapi.yaml`). Bounded like the text; never handed on.
        if let Some(refusal) = choice.pointer("/delta/refusal").and_then(Value::as_str) {
            out.refusal(refusal)?;
        }
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
            out.text(text)?;
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            out.completion.finish_reason = Some(reason.to_owned());
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
        let mut on_piece = |p: crate::client::Piece<'_>| {
            pieces.push(format!("{p:?}"));
            Ok(())
        };
        let mut out = Out {
            completion: &mut completion,
            on_piece: &mut on_piece,
            limit: usize::MAX,
        };
        for chunk in [
            json!({"choices": [{"delta": {"reasoning": "think"}}]}),
            json!({"choices": [{"delta": {"content": "say"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 5,
                             "output_tokens_details": {"reasoning_tokens": 4}}}),
        ] {
            apply_chunk(&chunk, &mut out).expect("applied");
        }
        assert_eq!(
            (completion.reasoning.as_str(), completion.text.as_str()),
            ("think", "say")
        );
        assert_eq!(completion.usage.and_then(|u| u.reasoning_tokens), Some(4));
        assert_eq!(pieces, ["Reasoning(\"think\")", "Text(\"say\")"]);
    }
}
