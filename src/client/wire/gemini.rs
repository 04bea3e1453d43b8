//! The Gemini API (`POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`, key in
//! `x-goog-api-key`), and Vertex AI in express mode, which takes the same body. As Google
//! documents it ("Generating content", <https://ai.google.dev/api/generate-content>):
//! `contents` (`role` `user` / `model`, `parts[].text`), `systemInstruction`, `generationConfig`
//! (`maxOutputTokens`, `temperature`, `topP`, `stopSequences`, `seed`, `responseMimeType` with
//! `responseJsonSchema`, `thinkingConfig: {thinkingBudget, includeThoughts}`); each event of the
//! stream is a `GenerateContentResponse` (`candidates[0].content.parts[]` where `thought: true`
//! marks a thought summary, `candidates[0].finishReason`, `promptFeedback.blockReason`,
//! `usageMetadata`, `responseId`, `modelVersion`). The stream has no end marker: an answer is
//! whole when a finish reason came. Thinking ("Gemini thinking",
//! <https://ai.google.dev/gemini-api/docs/thinking>): `includeThoughts` returns thought summaries.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{ChatRequest, EventError, Format, Out, Step, event_json, put};
use crate::client::sse::SseEvent;
use crate::client::{ApiError, Completion, Usage};

/// The thinking budget for `--reasoning-effort` low, medium and high.
fn thinking_budget(effort: &str) -> u64 {
    match effort {
        "low" => 1024,
        "medium" => 8192,
        _ => 24576,
    }
}

/// The `generateContent` body for a Chat Completions body (the model goes in the URL).
pub(crate) fn body(chat: &Value) -> Value {
    let r = ChatRequest::read(chat);
    let mut map = Map::new();
    map.insert(
        "contents".into(),
        Value::Array(
            r.turns
                .iter()
                .map(|(role, text)| {
                    let role = if *role == "assistant" {
                        "model"
                    } else {
                        "user"
                    };
                    json!({"role": role, "parts": [{"text": text}]})
                })
                .collect(),
        ),
    );
    put(
        &mut map,
        "systemInstruction",
        r.system.map(|s| json!({"parts": [{"text": s}]})),
    );
    let mut config = Map::new();
    put(
        &mut config,
        "maxOutputTokens",
        r.max_tokens.map(Value::from),
    );
    put(&mut config, "temperature", r.temperature.cloned());
    put(&mut config, "topP", r.top_p.cloned());
    if !r.stop.is_empty() {
        config.insert("stopSequences".into(), json!(r.stop));
    }
    put(&mut config, "seed", r.seed.cloned());
    match r.format {
        Some(Format::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
        Some(Format::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        None => {}
    }
    if let Some(effort) = r.reasoning_effort {
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": thinking_budget(effort), "includeThoughts": true}),
        );
    }
    let mut extra = r.extra;
    // A `generationConfig` of the extra body merges into ours, field by field.
    if let Some(Value::Object(more)) = extra.remove("generationConfig") {
        config.extend(more);
    }
    if !config.is_empty() {
        map.insert("generationConfig".into(), Value::Object(config));
    }
    map.extend(extra);
    Value::Object(map)
}

/// A Gemini stream keeps no state: every event is a whole `GenerateContentResponse`.
#[derive(Debug, Default)]
pub(crate) struct Reader;

impl Reader {
    pub(super) fn event(
        event: &SseEvent,
        eof: bool,
        out: &mut Out<'_, '_, '_>,
    ) -> Result<Step, EventError> {
        let data = event_json(event, eof)?;
        if data.get("error").is_some() {
            return Err(EventError::Server(event.data.clone()));
        }
        apply(&data, out)?;
        Ok(Step::More)
    }
}

/// One `GenerateContentResponse` added to the completion.
fn apply(data: &Value, out: &mut Out<'_, '_, '_>) -> Result<(), ApiError> {
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
    if out.completion.response_id.is_none() {
        out.completion.response_id = text("responseId");
        out.completion.server_model = text("modelVersion");
    }
    if let Some(u) = data.get("usageMetadata").and_then(usage) {
        out.completion.usage = Some(u);
    }
    if data.pointer("/promptFeedback/blockReason").is_some() {
        out.completion.finish_reason = Some("content_filter".to_owned());
    }
    let Some(candidate) = data.pointer("/candidates/0") else {
        return Ok(());
    };
    for part in candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if part.get("functionCall").is_some() {
            out.completion.structured = true;
        }
        let Some(piece) = part.get("text").and_then(Value::as_str) else {
            continue;
        };
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            out.reasoning(piece)?;
        } else {
            out.text(piece)?;
        }
    }
    if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
        out.completion.finish_reason = Some(finish_reason(reason));
    }
    Ok(())
}

/// `finishReason` in Chat Completions' words: `STOP` is `stop`, `MAX_TOKENS` is `length`, the
/// safety reasons (`SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`,
/// `IMAGE_SAFETY`) are `content_filter`; others are kept, lower-cased.
fn finish_reason(reason: &str) -> String {
    match reason {
        "STOP" => "stop".to_owned(),
        "MAX_TOKENS" => "length".to_owned(),
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter".to_owned()
        }
        other => other.to_ascii_lowercase(),
    }
}

/// `usageMetadata`: `promptTokenCount` (of which `cachedContentTokenCount`),
/// `candidatesTokenCount` plus `thoughtsTokenCount` as output (the thoughts are the reasoning
/// tokens), `totalTokenCount`.
fn usage(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let input = n("promptTokenCount")?;
    let thoughts = n("thoughtsTokenCount");
    // Server numbers: saturate, as every other usage sum does (a hostile count must not wrap).
    let output = n("candidatesTokenCount")
        .unwrap_or(0)
        .saturating_add(thoughts.unwrap_or(0));
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: n("totalTokenCount").unwrap_or_else(|| input.saturating_add(output)),
        reasoning_tokens: thoughts,
        cache_read_input_tokens: n("cachedContentTokenCount").map_or(0, Usage::cache_count),
        ..Usage::default()
    })
}

/// A whole `GenerateContentResponse` (a server that did not stream).
pub(crate) fn whole(value: &Value, limit: usize) -> Result<Completion, ApiError> {
    if value.get("candidates").is_none() && value.get("promptFeedback").is_none() {
        return Err(ApiError::InvalidResponse(
            "the response is not a GenerateContentResponse".into(),
        ));
    }
    let mut completion = Completion::default();
    let mut ignore = |_: crate::client::Piece<'_>| Ok(());
    let mut out = Out {
        completion: &mut completion,
        on_piece: &mut ignore,
        limit,
    };
    apply(value, &mut out)?;
    Ok(completion)
}

/// How long a Gemini error asks to wait: the `retryDelay` of a `google.rpc.RetryInfo` among
/// `error.details` (`"37s"`, `"1.5s"`), as the Gemini API sends with `429 RESOURCE_EXHAUSTED`
/// ("Rate limits", <https://ai.google.dev/gemini-api/docs/rate-limits>).
pub(crate) fn retry_delay(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.pointer("/error/details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| {
            let secs: f64 = d
                .get("retryDelay")?
                .as_str()?
                .strip_suffix('s')?
                .parse()
                .ok()?;
            (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_maps_every_field() {
        let chat = json!({
            "model": "gemini-2.5-flash", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "no"}, {"role": "user", "content": "again"}],
            "max_tokens": 50, "temperature": 0.1, "top_p": 0.9, "stop": "END", "seed": 4,
            "reasoning_effort": "medium",
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
            "generationConfig": {"topK": 3}, "safetySettings": [],
        });
        assert_eq!(
            body(&chat),
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "no"}]},
                    {"role": "user", "parts": [{"text": "again"}]},
                ],
                "systemInstruction": {"parts": [{"text": "sys"}]},
                "generationConfig": {
                    "maxOutputTokens": 50, "temperature": 0.1, "topP": 0.9, "stopSequences": ["END"],
                    "seed": 4, "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
                    "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": true}, "topK": 3,
                },
                "safetySettings": [],
            })
        );
    }

    #[test]
    fn output_tokens_saturate_instead_of_overflowing() {
        let u = usage(&json!({
            "promptTokenCount": 1,
            "candidatesTokenCount": u64::MAX,
            "thoughtsTokenCount": 1
        }))
        .expect("usage");
        assert_eq!(u.output_tokens, u64::MAX);
        assert_eq!(u.reasoning_tokens, Some(1));
        assert_eq!(u.total_tokens, u64::MAX);
    }

    #[test]
    fn finish_reasons_and_retry_delay() {
        assert_eq!(finish_reason("MAX_TOKENS"), "length");
        assert_eq!(finish_reason("SAFETY"), "content_filter");
        assert_eq!(finish_reason("OTHER"), "other");
        let body = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
        assert_eq!(retry_delay(body), Some(Duration::from_millis(1500)));
        assert_eq!(retry_delay("{}"), None);
    }
}
