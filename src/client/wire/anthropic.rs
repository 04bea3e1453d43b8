//! Anthropic Messages (`POST {base}/v1/messages`), as Anthropic documents it: the request
//! ("Messages", <https://docs.anthropic.com/en/api/messages>: `max_tokens` required, `system`,
//! `stop_sequences`, `thinking: {type: "enabled", budget_tokens}` with `budget_tokens` ≥ 1024 and
//! below `max_tokens`), the stream ("Streaming Messages",
//! <https://docs.anthropic.com/en/docs/build-with-claude/streaming>: `message_start`,
//! `content_block_start`, `content_block_delta` with `text_delta` / `thinking_delta` /
//! `input_json_delta`, `content_block_stop`, `message_delta` with `stop_reason` and cumulative
//! `usage.output_tokens`, `message_stop`, `ping`, and `error` events such as `overloaded_error`),
//! and the rate-limit headers ("Rate limits", <https://docs.anthropic.com/en/api/rate-limits>:
//! `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, the reset in RFC 3339).
//! A JSON schema is asked for with a forced tool whose `input_schema` is the schema ("Tool use":
//! `tool_choice: {"type": "tool", "name": ...}`); the tool's input is the answer's text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::{ChatRequest, EventError, Format, Out, Step, event_json, put};
use crate::client::sse::SseEvent;
use crate::client::{ApiError, Completion, Usage};

/// The `anthropic-version` header every request carries.
pub(crate) const VERSION: &str = "2023-06-01";

/// `max_tokens` when neither the command line nor the job sets one: Anthropic requires it.
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 8192;

/// The thinking budget for `--reasoning-effort` low, medium and high.
fn thinking_budget(effort: &str) -> u64 {
    match effort {
        "low" => 1024,
        "medium" => 4096,
        _ => 16384,
    }
}

/// The smallest thinking budget Anthropic accepts.
const MIN_BUDGET: u64 = 1024;

/// The Messages body for a Chat Completions body. `seed` has no Messages field and is left out.
pub(crate) fn body(chat: &Value) -> Value {
    let r = ChatRequest::read(chat);
    let mut map = Map::new();
    map.insert("model".into(), json!(r.model));
    put(&mut map, "system", r.system.map(Value::String));
    map.insert(
        "messages".into(),
        Value::Array(
            r.turns
                .iter()
                .map(|(role, text)| {
                    let role = if *role == "assistant" {
                        "assistant"
                    } else {
                        "user"
                    };
                    json!({"role": role, "content": text})
                })
                .collect(),
        ),
    );
    let tool = match &r.format {
        Some(Format::JsonSchema { name, schema, .. }) => Some((tool_name(name), *schema)),
        _ => None,
    };
    // A forced tool cannot be combined with extended thinking ("Extended thinking": "tool_choice:
    // {type: 'any'} or {type: 'tool'} ... not supported"): the schema wins.
    let budget = r
        .reasoning_effort
        .filter(|_| tool.is_none())
        .map(thinking_budget);
    let mut max_tokens = r.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let budget = match (budget, r.max_tokens) {
        (Some(b), Some(max)) if max > MIN_BUDGET => Some(b.min(max - 1)),
        (Some(_), Some(_)) | (None, _) => None,
        (Some(b), None) => {
            max_tokens = max_tokens.max(b + 4096);
            Some(b)
        }
    };
    map.insert("max_tokens".into(), json!(max_tokens));
    if let Some(b) = budget {
        map.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": b}),
        );
    }
    put(&mut map, "temperature", r.temperature.cloned());
    put(&mut map, "top_p", r.top_p.cloned());
    if !r.stop.is_empty() {
        map.insert("stop_sequences".into(), json!(r.stop));
    }
    if let Some((name, schema)) = tool {
        map.insert(
            "tools".into(),
            json!([{"name": name, "description": "Answer with a value of this schema.", "input_schema": schema}]),
        );
        map.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
    }
    map.extend(r.extra);
    map.insert("stream".into(), Value::Bool(true));
    Value::Object(map)
}

/// A tool name Anthropic accepts (`^[a-zA-Z0-9_-]{1,64}$`) from a schema's name.
fn tool_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "answer".to_owned()
    } else {
        cleaned
    }
}

/// A Messages stream's state.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub(crate) done: bool,
    /// The answer came as a tool's input (the forced tool of a schema).
    tool: bool,
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
        match kind {
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                let text = |k: &str| message.get(k).and_then(Value::as_str).map(str::to_owned);
                out.completion.response_id = text("id");
                out.completion.server_model = text("model");
                out.completion.usage = message.get("usage").map(|u| usage(u, None));
            }
            "content_block_start"
                if data.pointer("/content_block/type").and_then(Value::as_str)
                    == Some("tool_use") =>
            {
                self.tool = true;
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let field = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or_default();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.text(field("text"))?,
                    Some("thinking_delta") => out.reasoning(field("thinking"))?,
                    Some("input_json_delta") => out.text(field("partial_json"))?,
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.completion.finish_reason = Some(finish_reason(reason, self.tool));
                }
                if let Some(u) = data.get("usage") {
                    out.completion.usage = Some(usage(u, out.completion.usage));
                    // A LiteLLM proxy's own price (`usage.cost`), as for Responses.
                    if let Some(cost) = crate::client::usage_cost(u) {
                        out.completion.provider_cost = Some(cost);
                    }
                }
            }
            "message_stop" => {
                self.done = true;
                return Ok(Step::Done);
            }
            "error" => return Err(EventError::Server(event.data.clone())),
            _ => {}
        }
        Ok(Step::More)
    }
}

/// `stop_reason` in Chat Completions' words: `end_turn`/`stop_sequence` are `stop`,
/// `max_tokens` is `length`, `refusal` is `content_filter`, `tool_use` is `stop` for the
/// schema's forced tool.
fn finish_reason(reason: &str, tool: bool) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "refusal" => "content_filter",
        "tool_use" if tool => "stop",
        other => other,
    }
    .to_owned()
}

/// Anthropic's usage over what was known: `input_tokens` does not count the cache, so input is
/// `input_tokens + cache_creation_input_tokens + cache_read_input_tokens` (the reads and writes
/// also kept as such); `output_tokens` in `message_delta` is cumulative.
fn usage(v: &Value, before: Option<Usage>) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let before = before.unwrap_or_default();
    let cached = n("cache_read_input_tokens").unwrap_or(u64::from(before.cache_read_input_tokens));
    let created =
        n("cache_creation_input_tokens").unwrap_or(u64::from(before.cache_creation_input_tokens));
    let input = match n("input_tokens") {
        Some(i) => i.saturating_add(created).saturating_add(cached),
        None => before.input_tokens,
    };
    let output = n("output_tokens").unwrap_or(before.output_tokens);
    Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input.saturating_add(output),
        reasoning_tokens: None,
        cache_read_input_tokens: Usage::cache_count(cached),
        cache_creation_input_tokens: Usage::cache_count(created),
    }
}

/// A whole `Message` (a server that did not stream).
pub(crate) fn whole(value: &Value, limit: usize) -> Result<Completion, ApiError> {
    if value.get("type").and_then(Value::as_str) != Some("message") {
        return Err(ApiError::InvalidResponse(
            "the response is not a Messages object".into(),
        ));
    }
    let mut completion = Completion::default();
    let mut tool = false;
    for block in value
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                completion.text.push_str(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            Some("thinking") => completion.reasoning.push_str(
                block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => {
                tool = true;
                completion
                    .text
                    .push_str(&block.get("input").map(Value::to_string).unwrap_or_default());
            }
            _ => {}
        }
    }
    if completion.text.len() > limit || completion.reasoning.len() > limit {
        return Err(ApiError::TooLarge {
            limit,
            what: "the answer is too long",
        });
    }
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    completion.response_id = text("id");
    completion.server_model = text("model");
    completion.finish_reason = text("stop_reason").map(|r| finish_reason(&r, tool));
    completion.usage = value.get("usage").map(|u| usage(u, None));
    Ok(completion)
}

/// The `anthropic-ratelimit-*` headers under the `x-ratelimit-*` names the pacer reads, resets
/// turned from RFC 3339 times into durations from now; `retry-after` as it is. Only the
/// mapping lives here: the pacing is the same for every protocol.
pub(crate) fn rate_headers(headers: &HeaderMap) -> HeaderMap {
    rate_headers_at(headers, SystemTime::now())
}

fn rate_headers_at(headers: &HeaderMap, now: SystemTime) -> HeaderMap {
    let mut mapped = HeaderMap::new();
    for name in ["retry-after", "retry-after-ms"] {
        if let Some(v) = headers.get(name) {
            mapped.insert(HeaderName::from_static(name), v.clone());
        }
    }
    for kind in ["requests", "tokens"] {
        for (field, ours) in [
            ("limit", "limit"),
            ("remaining", "remaining"),
            ("reset", "reset"),
        ] {
            let Some(value) = headers
                .get(format!("anthropic-ratelimit-{kind}-{field}"))
                .and_then(|v| v.to_str().ok())
            else {
                continue;
            };
            let value = if field == "reset" {
                let Some(wait) = rfc3339(value).map(|t| t.duration_since(now).unwrap_or_default())
                else {
                    continue;
                };
                format!("{}ms", wait.as_millis())
            } else {
                value.to_owned()
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(format!("x-ratelimit-{ours}-{kind}")),
                HeaderValue::from_str(&value),
            ) {
                mapped.insert(name, value);
            }
        }
    }
    mapped
}

/// An RFC 3339 time (`2024-06-01T12:00:30Z`, with optional fractional seconds and offset).
pub(crate) fn rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_maps_fields_thinking_and_the_schema_tool() {
        let chat = json!({
            "model": "claude", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
            "temperature": 0.2, "stop": ["END"], "seed": 3, "reasoning_effort": "low",
        });
        assert_eq!(
            body(&chat),
            json!({
                "model": "claude", "system": "sys",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 8192, "thinking": {"type": "enabled", "budget_tokens": 1024},
                "temperature": 0.2, "stop_sequences": ["END"], "stream": true,
            })
        );
        let small = body(
            &json!({"model": "c", "messages": [], "max_tokens": 2000, "reasoning_effort": "high"}),
        );
        assert_eq!(small["thinking"]["budget_tokens"], 1999);
        let tiny = body(
            &json!({"model": "c", "messages": [], "max_tokens": 100, "reasoning_effort": "high"}),
        );
        assert!(tiny.get("thinking").is_none());
        let schema = body(
            &json!({"model": "c", "messages": [], "reasoning_effort": "high",
            "response_format": {"type": "json_schema", "json_schema": {"name": "my schema!", "schema": {"type": "object"}}}}),
        );
        assert_eq!(
            schema["tool_choice"],
            json!({"type": "tool", "name": "myschema"})
        );
        assert_eq!(
            schema["tools"][0]["input_schema"],
            json!({"type": "object"})
        );
        assert!(schema.get("thinking").is_none());
    }

    #[test]
    fn rate_headers_map_to_the_pacers_names() {
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-requests-limit",
            HeaderValue::from_static("50"),
        );
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_static("2024-06-01T12:00:30Z"),
        );
        h.insert("retry-after", HeaderValue::from_static("7"));
        let now = rfc3339("2024-06-01T12:00:00.5Z").unwrap();
        let m = rate_headers_at(&h, now);
        assert_eq!(m["x-ratelimit-limit-requests"], "50");
        assert_eq!(m["x-ratelimit-remaining-requests"], "0");
        assert_eq!(m["x-ratelimit-reset-requests"], "29500ms");
        assert_eq!(m["retry-after"], "7");
    }

    #[test]
    fn rfc3339_times() {
        let t = |s: &str| rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("2024-06-01T12:00:30Z"), Some(1_717_243_230));
        assert_eq!(t("2024-06-01T14:00:30+02:00"), Some(1_717_243_230));
        assert_eq!(t("2024-06-01"), None);
        assert_eq!(t("not a time at all!!"), None);
    }
}
