//! `OpenAI` Responses (`POST {base}/responses`), as openai/openai-openapi's `openapi.yaml` defines
//! it: `CreateResponse` (`input`, `instructions`, `max_output_tokens`, `reasoning: {effort,
//! summary}`, `text.format`, `store`), and the `ResponseStreamEvent`s read here:
//! `response.created` (id, model, `created_at`), `response.output_text.delta`,
//! `response.reasoning_summary_text.delta`, `response.refusal.delta`, the terminal
//! `response.completed` / `response.incomplete` (`incomplete_details.reason`) /
//! `response.failed` (`response.error`), and `error`. A stream that ends before a terminal event
//! is cut. `store: false` unless the request says otherwise: a CI run leaves no stored
//! conversation at the provider.

use serde_json::{Map, Value, json};

use super::{ChatRequest, EventError, Format, Out, Step, event_json, put};
use crate::client::sse::SseEvent;
use crate::client::{ApiError, Completion, Usage};

/// The Responses body for a Chat Completions body. `stop` and `seed` have no Responses field and
/// are left out (the README says so).
pub(crate) fn body(chat: &Value) -> Value {
    let r = ChatRequest::read(chat);
    let mut map = Map::new();
    map.insert("model".into(), json!(r.model));
    put(&mut map, "instructions", r.system.map(Value::String));
    map.insert(
        "input".into(),
        Value::Array(
            r.turns
                .iter()
                .map(|(role, text)| json!({"role": role, "content": text}))
                .collect(),
        ),
    );
    put(&mut map, "max_output_tokens", r.max_tokens.map(Value::from));
    put(&mut map, "temperature", r.temperature.cloned());
    put(&mut map, "top_p", r.top_p.cloned());
    if let Some(effort) = r.reasoning_effort {
        map.insert(
            "reasoning".into(),
            json!({"effort": effort, "summary": "auto"}),
        );
    }
    match r.format {
        Some(Format::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut format = json!({"type": "json_schema", "name": name, "schema": schema});
            if let (Some(strict), Some(f)) = (strict, format.as_object_mut()) {
                f.insert("strict".into(), strict.clone());
            }
            map.insert("text".into(), json!({ "format": format }));
        }
        Some(Format::JsonObject) => {
            map.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        None => {}
    }
    map.insert("store".into(), Value::Bool(false));
    map.extend(r.extra);
    map.insert("stream".into(), Value::Bool(true));
    Value::Object(map)
}

/// A Responses stream's state: whether a terminal event was seen.
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
        let data = event_json(event, eof)?;
        let kind = super::event_kind(&data, event);
        let delta = || {
            data.get("delta")
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        match kind {
            "response.created" | "response.in_progress" => {
                if let Some(response) = data.get("response") {
                    identify(response, out.completion);
                }
            }
            "response.output_text.delta" => out.text(delta())?,
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                out.reasoning(delta())?;
            }
            "response.refusal.delta" => out.refusal(delta())?,
            "response.output_item.added" | "response.output_item.done"
                if data.pointer("/item/type").and_then(Value::as_str) == Some("function_call") =>
            {
                out.completion.structured = true;
            }
            "response.completed" | "response.incomplete" => {
                let response = data.get("response").unwrap_or(&Value::Null);
                finish(response, out.completion);
                self.done = true;
                return Ok(Step::Done);
            }
            "response.failed" => {
                let error = data.pointer("/response/error").unwrap_or(&Value::Null);
                return Err(EventError::Server(json!({ "error": error }).to_string()));
            }
            "error" => return Err(EventError::Server(event.data.clone())),
            _ => {}
        }
        Ok(Step::More)
    }
}

/// The response's id, model and creation time.
fn identify(response: &Value, completion: &mut Completion) {
    let text = |k: &str| response.get(k).and_then(Value::as_str).map(str::to_owned);
    if completion.response_id.is_none() {
        completion.response_id = text("id");
        completion.server_model = text("model");
        completion.created = response.get("created_at").and_then(Value::as_u64);
    }
}

/// The terminal response: usage and the finish reason. `completed` is `stop`; `incomplete` is
/// `length` for `max_output_tokens` and `content_filter` for the filter.
fn finish(response: &Value, completion: &mut Completion) {
    identify(response, completion);
    completion.usage = response.get("usage").and_then(usage);
    // A LiteLLM proxy's own price, added to the usage it streams (`cost`, with
    // `include_cost_in_streaming_usage`; seen from litellm 1.108.7 in scripts/litellm-test.sh).
    if let Some(cost) = response.get("usage").and_then(crate::client::usage_cost) {
        completion.provider_cost = Some(cost);
    }
    let status = response.get("status").and_then(Value::as_str);
    let reason = response
        .pointer("/incomplete_details/reason")
        .and_then(Value::as_str);
    completion.finish_reason = Some(
        match (status, reason) {
            (Some("incomplete") | None, Some("max_output_tokens")) => "length",
            (Some("incomplete") | None, Some("content_filter")) => "content_filter",
            (Some("incomplete"), Some(other)) => other,
            _ if completion.structured && completion.text.is_empty() => "tool_calls",
            _ => "stop",
        }
        .to_owned(),
    );
}

/// `ResponseUsage`: `input_tokens` (of which `input_tokens_details.cached_tokens`),
/// `output_tokens` (of which `output_tokens_details.reasoning_tokens`), `total_tokens`.
fn usage(v: &Value) -> Option<Usage> {
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64);
    let input = n("/input_tokens")?;
    let output = n("/output_tokens").unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: n("/total_tokens").unwrap_or_else(|| input.saturating_add(output)),
        reasoning_tokens: n("/output_tokens_details/reasoning_tokens"),
        cache_read_input_tokens: n("/input_tokens_details/cached_tokens")
            .map_or(0, Usage::cache_count),
        ..Usage::default()
    })
}

/// A whole `Response` object (a server that did not stream): the `output_text` parts of its
/// `message` items, the summaries of its `reasoning` items.
pub(crate) fn whole(value: &Value, limit: usize) -> Result<Completion, ApiError> {
    if value.get("object").and_then(Value::as_str) != Some("response")
        && value.get("output").is_none()
    {
        return Err(ApiError::InvalidResponse(
            "the response is not a Responses object".into(),
        ));
    }
    let mut completion = Completion::default();
    for item in value
        .get("output")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let text = part.get("text").and_then(Value::as_str).unwrap_or_default();
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => completion.text.push_str(text),
                        Some("refusal") => completion.refusal.push_str(
                            part.get("refusal")
                                .and_then(Value::as_str)
                                .unwrap_or_default(),
                        ),
                        _ => {}
                    }
                }
            }
            Some("reasoning") => {
                for part in item
                    .get("summary")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        completion.reasoning.push_str(text);
                    }
                }
            }
            Some("function_call") => completion.structured = true,
            _ => {}
        }
    }
    if completion.text.len() > limit || completion.reasoning.len() > limit {
        return Err(ApiError::TooLarge {
            limit,
            what: "the answer is too long",
        });
    }
    finish(value, &mut completion);
    Ok(completion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_maps_every_field() {
        let chat = json!({
            "model": "gpt-5", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
            "max_completion_tokens": 100, "temperature": 0.5, "stop": ["x"], "seed": 1,
            "reasoning_effort": "high",
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": true}},
            "service_tier": "flex",
        });
        assert_eq!(
            body(&chat),
            json!({
                "model": "gpt-5", "instructions": "sys",
                "input": [{"role": "user", "content": "hi"}],
                "max_output_tokens": 100, "temperature": 0.5,
                "reasoning": {"effort": "high", "summary": "auto"},
                "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": true}},
                "store": false, "service_tier": "flex", "stream": true,
            })
        );
        let stored = body(&json!({"model": "m", "messages": [], "store": true}));
        assert_eq!(stored["store"], true);
    }

    #[test]
    fn whole_response_object() {
        let v = json!({
            "id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-5", "status": "completed",
            "output": [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi", "annotations": []}]},
            ],
            "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 3,
                      "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 8},
        });
        let c = whole(&v, 1000).unwrap();
        assert_eq!((c.text.as_str(), c.reasoning.as_str()), ("hi", "think"));
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.cache_read_input_tokens, u.reasoning_tokens),
            (2, Some(1))
        );
    }
}
