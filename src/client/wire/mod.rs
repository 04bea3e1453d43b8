//! The wire protocols behind one request model. Everything above the client composes one body in
//! the Chat Completions shape (`model`, `messages`, `max_tokens`, sampling, `reasoning_effort`,
//! `response_format`, extra fields); `Wire` turns it into each protocol's body, URL and headers,
//! and its `Reader` reads each protocol's stream (or JSON body) back into the same `Completion`.
//! The send loop, retries, pacing, limits and the sanitiser are the same for every protocol.

pub(crate) mod anthropic;
pub(crate) mod chat;
pub(crate) mod gemini;
pub(crate) mod responses;

use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::sse::SseEvent;
use super::{ApiError, Completion, OnPiece, Piece, url};

/// The protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Wire {
    /// `OpenAI` Chat Completions (`POST {base}/chat/completions`).
    #[default]
    Chat,
    /// `OpenAI` Responses (`POST {base}/responses`).
    Responses,
    /// Anthropic Messages (`POST {base}/v1/messages`).
    Anthropic,
    /// Gemini API (`POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`).
    Gemini,
    /// Vertex AI express mode (`POST {base}/v1/publishers/google/models/{model}:streamGenerateContent?alt=sse`):
    /// the global endpoint with an API key and no project or location ("Vertex AI in express mode
    /// REST API reference", <https://cloud.google.com/vertex-ai/generative-ai/docs/start/express-mode/vertex-ai-express-mode-api-reference>).
    Vertex,
}

/// The header the key travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer KEY`.
    #[default]
    Bearer,
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: KEY` (Gemini, Vertex AI express mode).
    GoogApiKey,
}

impl KeyHeader {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Bearer => "authorization",
            Self::XApiKey => "x-api-key",
            Self::GoogApiKey => "x-goog-api-key",
        }
    }

    pub(crate) fn value(self, key: &str) -> String {
        match self {
            Self::Bearer => format!("Bearer {key}"),
            Self::XApiKey | Self::GoogApiKey => key.to_owned(),
        }
    }
}

/// The fields of the Chat Completions body that each protocol maps by name; any other top-level
/// field (`--extra-body`, a job's `extra_body`) is copied into the protocol's body as it is.
const MAPPED: [&str; 14] = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "reasoning_effort",
    "response_format",
    "n",
    "user",
];

impl Wire {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat-completions",
            Self::Responses => "responses",
            Self::Anthropic => "anthropic-messages",
            Self::Gemini => "gemini",
            Self::Vertex => "vertex-ai",
        }
    }

    /// Where a request for `model` goes.
    pub(crate) fn url(self, base: &Url, model: &str) -> Url {
        match self {
            Self::Chat => url::endpoint(base, "chat/completions"),
            Self::Responses => url::endpoint(base, "responses"),
            Self::Anthropic => url::endpoint(base, "v1/messages"),
            Self::Gemini | Self::Vertex => {
                let prefix = if self == Self::Gemini {
                    "v1beta/models"
                } else {
                    "v1/publishers/google/models"
                };
                // The model is one path segment, encoded: a model name cannot reach another path.
                let mut url = url::endpoint(base, prefix);
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.push(&format!("{model}:streamGenerateContent"));
                }
                url.set_query(Some("alt=sse"));
                url
            }
        }
    }

    /// Headers every request of this protocol carries (unless a `-H` header of the same name
    /// replaces it).
    pub(crate) fn fixed_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // "Versions": the `anthropic-version` header is required
            // (<https://docs.anthropic.com/en/api/versioning>).
            Self::Anthropic => &[("anthropic-version", anthropic::VERSION)],
            _ => &[],
        }
    }

    /// The protocol's body for a Chat Completions body (as the send loop adjusted it).
    pub(crate) fn body(self, chat: &Value) -> Value {
        match self {
            Self::Chat => chat.clone(),
            Self::Responses => responses::body(chat),
            Self::Anthropic => anthropic::body(chat),
            Self::Gemini | Self::Vertex => gemini::body(chat),
        }
    }

    /// The bytes sent for a Chat Completions body. Chat Completions' own body is serialised as it
    /// is, not copied first: a copy would live as long as the request is in flight, which at
    /// `--concurrency 1000` is a thousand bodies more (BENCHMARKS.md, "1,000,000 jobs").
    pub(crate) fn encode(self, chat: &Value) -> Vec<u8> {
        let bytes = match self {
            Self::Chat => serde_json::to_vec(chat),
            _ => serde_json::to_vec(&self.body(chat)),
        };
        bytes.unwrap_or_default()
    }

    /// A reader for one response stream.
    pub(crate) fn reader(self) -> Reader {
        match self {
            Self::Chat => Reader::Chat(chat::Reader::default()),
            Self::Responses => Reader::Responses(responses::Reader::default()),
            Self::Anthropic => Reader::Anthropic(anthropic::Reader::default()),
            Self::Gemini | Self::Vertex => Reader::Gemini(gemini::Reader),
        }
    }

    /// The `Completion` a whole JSON body holds (a server that ignored `stream: true`).
    pub(crate) fn whole(self, value: &Value, limit: usize) -> Result<Completion, ApiError> {
        match self {
            Self::Chat => chat::whole(value, limit),
            Self::Responses => responses::whole(value, limit),
            Self::Anthropic => anthropic::whole(value, limit),
            Self::Gemini | Self::Vertex => gemini::whole(value, limit),
        }
    }

    /// The response's rate-limit headers in the `x-ratelimit-*` names the pacer reads.
    pub(crate) fn rate_headers(self, headers: &HeaderMap) -> Option<HeaderMap> {
        match self {
            Self::Anthropic => Some(anthropic::rate_headers(headers)),
            _ => None,
        }
    }

    /// Whether this protocol says how long to wait in its error bodies.
    pub(crate) fn waits_in_body(self) -> bool {
        matches!(self, Self::Gemini | Self::Vertex)
    }

    /// How long an error body asks to wait, when it says so in the body rather than in a header
    /// (Gemini's `google.rpc.RetryInfo`).
    pub(crate) fn body_retry_after(self, body: &str) -> Option<std::time::Duration> {
        match self {
            Self::Gemini | Self::Vertex => gemini::retry_delay(body),
            _ => None,
        }
    }
}

/// What an event meant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read on.
    More,
    /// The stream's last event: stop reading.
    Done,
}

/// A failed event: a server error (its raw JSON, for the one door of error bodies) or another
/// failure.
#[derive(Debug)]
pub(crate) enum EventError {
    Server(String),
    Api(ApiError),
}

impl From<ApiError> for EventError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// One stream's reading state, per protocol.
#[derive(Debug)]
pub(crate) enum Reader {
    Chat(chat::Reader),
    Responses(responses::Reader),
    Anthropic(anthropic::Reader),
    Gemini(gemini::Reader),
}

impl Reader {
    /// One event, added to `completion` (pieces handed to `on_piece`). `eof`: the input ended
    /// with this event, so an event that does not parse is one the cut went through.
    pub(crate) fn event(
        &mut self,
        event: &SseEvent,
        eof: bool,
        completion: &mut Completion,
        on_piece: &mut OnPiece<'_>,
        limit: usize,
    ) -> Result<Step, EventError> {
        let mut out = Out {
            completion,
            on_piece,
            limit,
        };
        match self {
            Self::Chat(r) => r.event(event, eof, &mut out),
            Self::Responses(r) => r.event(event, eof, &mut out),
            Self::Anthropic(r) => r.event(event, eof, &mut out),
            Self::Gemini(_) => gemini::Reader::event(event, eof, &mut out),
        }
    }

    /// Whether the stream ended as the protocol ends a whole answer: `[DONE]` or a finish reason
    /// (Chat Completions, Gemini), `response.completed`/`response.incomplete` (Responses),
    /// `message_stop` (Anthropic). Otherwise the transport was cut.
    pub(crate) fn complete(&self, completion: &Completion) -> bool {
        match self {
            Self::Chat(r) => r.done || completion.finish_reason.is_some(),
            Self::Responses(r) => r.done,
            Self::Anthropic(r) => r.done,
            Self::Gemini(_) => completion.finish_reason.is_some(),
        }
    }
}

/// Where a reader puts what it reads: the completion, the piece callback, the size limit.
pub(crate) struct Out<'a, 'b, 'c> {
    pub(crate) completion: &'a mut Completion,
    pub(crate) on_piece: &'b mut OnPiece<'c>,
    pub(crate) limit: usize,
}

impl Out<'_, '_, '_> {
    /// Answer text, bounded and handed on.
    pub(crate) fn text(&mut self, text: &str) -> Result<(), ApiError> {
        if text.is_empty() {
            return Ok(());
        }
        bounded(
            &self.completion.text,
            text,
            self.limit,
            "the answer is too long",
        )?;
        self.completion.text.push_str(text);
        (self.on_piece)(Piece::Text(text)).map_err(|_| ApiError::OutputClosed)
    }

    /// Reasoning text, bounded and handed on.
    pub(crate) fn reasoning(&mut self, text: &str) -> Result<(), ApiError> {
        if text.is_empty() {
            return Ok(());
        }
        bounded(
            &self.completion.reasoning,
            text,
            self.limit,
            "the reasoning is too long",
        )?;
        self.completion.reasoning.push_str(text);
        (self.on_piece)(Piece::Reasoning(text)).map_err(|_| ApiError::OutputClosed)
    }

    /// A refusal, bounded; never handed on.
    pub(crate) fn refusal(&mut self, text: &str) -> Result<(), ApiError> {
        bounded(
            &self.completion.refusal,
            text,
            self.limit,
            "the refusal is too long",
        )?;
        self.completion.refusal.push_str(text);
        Ok(())
    }
}

fn bounded(have: &str, more: &str, limit: usize, what: &'static str) -> Result<(), ApiError> {
    if have.len().saturating_add(more.len()) > limit {
        return Err(ApiError::TooLarge { limit, what });
    }
    Ok(())
}

/// An event's data as JSON; at the end of input, data that does not parse is a cut.
pub(crate) fn event_json(event: &SseEvent, eof: bool) -> Result<Value, ApiError> {
    serde_json::from_str(&event.data).map_err(|e| {
        if eof {
            ApiError::StreamCut
        } else {
            ApiError::InvalidResponse(format!("a stream event is not JSON ({e})"))
        }
    })
}

/// A typed event's name: its data's `type`, else the SSE `event:` line (Responses and Messages
/// both send the two, equal).
pub(crate) fn event_kind<'a>(data: &'a Value, event: &'a SseEvent) -> &'a str {
    data.get("type")
        .and_then(Value::as_str)
        .or(event.event.as_deref())
        .unwrap_or_default()
}

/// The parts of a Chat Completions body every protocol maps.
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    /// The system messages, joined by blank lines.
    pub(crate) system: Option<String>,
    /// The other messages: role and text.
    pub(crate) turns: Vec<(&'a str, String)>,
    pub(crate) max_tokens: Option<u64>,
    pub(crate) temperature: Option<&'a Value>,
    pub(crate) top_p: Option<&'a Value>,
    pub(crate) stop: Vec<String>,
    pub(crate) seed: Option<&'a Value>,
    pub(crate) reasoning_effort: Option<&'a str>,
    /// `response_format.type`, and for `json_schema` its name, schema and strictness.
    pub(crate) format: Option<Format<'a>>,
    /// Fields no protocol maps by name, to be copied as they are.
    pub(crate) extra: Map<String, Value>,
}

/// What `response_format` asks for.
pub(crate) enum Format<'a> {
    JsonObject,
    JsonSchema {
        name: &'a str,
        schema: &'a Value,
        strict: Option<&'a Value>,
    },
}

impl<'a> ChatRequest<'a> {
    pub(crate) fn read(body: &'a Value) -> Self {
        let get = |k: &str| body.get(k).filter(|v| !v.is_null());
        let mut system = Vec::new();
        let mut turns = Vec::new();
        for message in get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("user");
            let text = content_text(message.get("content"));
            if role == "system" || role == "developer" {
                system.push(text);
            } else {
                turns.push((role, text));
            }
        }
        let stop = match get("stop") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let format =
            get("response_format").and_then(|f| match f.get("type").and_then(Value::as_str)? {
                "json_object" => Some(Format::JsonObject),
                "json_schema" => {
                    let spec = f.get("json_schema")?;
                    Some(Format::JsonSchema {
                        name: spec.get("name").and_then(Value::as_str).unwrap_or("answer"),
                        schema: spec.get("schema")?,
                        strict: spec.get("strict"),
                    })
                }
                _ => None,
            });
        Self {
            model: get("model").and_then(Value::as_str).unwrap_or_default(),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            turns,
            max_tokens: get("max_tokens")
                .or_else(|| get("max_completion_tokens"))
                .and_then(Value::as_u64),
            temperature: get("temperature"),
            top_p: get("top_p"),
            stop,
            seed: get("seed"),
            reasoning_effort: get("reasoning_effort").and_then(Value::as_str),
            format,
            extra: body
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !MAPPED.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A message's text: a string, or the text parts of a content array.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Insert `value` under `key` when it is set.
pub(crate) fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_per_protocol() {
        let base = Url::parse("http://127.0.0.1:9/v1").unwrap();
        let host = Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            Wire::Chat.url(&base, "m").as_str(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(
            Wire::Responses.url(&base, "m").as_str(),
            "http://127.0.0.1:9/v1/responses"
        );
        assert_eq!(
            Wire::Anthropic.url(&host, "m").as_str(),
            "http://127.0.0.1:9/v1/messages"
        );
        assert_eq!(
            Wire::Gemini.url(&host, "gemini-2.5-flash").as_str(),
            "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            Wire::Vertex.url(&host, "a/../b").as_str(),
            "http://127.0.0.1:9/v1/publishers/google/models/a%2F..%2Fb:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn chat_request_reads_every_mapped_field_and_keeps_the_rest() {
        let body = json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            "max_completion_tokens": 9, "stop": "END", "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
            "safetySettings": [1],
        });
        let r = ChatRequest::read(&body);
        assert_eq!(r.model, "m");
        assert_eq!(r.system.as_deref(), Some("be brief"));
        assert_eq!(r.turns, vec![("user", "hi".to_owned())]);
        assert_eq!(r.max_tokens, Some(9));
        assert_eq!(r.stop, ["END"]);
        assert_eq!(r.reasoning_effort, Some("low"));
        assert!(matches!(
            r.format,
            Some(Format::JsonSchema { name: "n", .. })
        ));
        assert_eq!(Value::Object(r.extra), json!({"safetySettings": [1]}));
    }
}
