//! The wire protocols beyond Chat Completions, against emulators that send what each provider
//! documents: `OpenAI` Responses (the `ResponseStreamEvent`s and `ResponseUsage` of
//! openai/openai-openapi `openapi.yaml`, whose `createResponse` streaming example is reproduced
//! here), Anthropic Messages ("Streaming Messages", <https://docs.anthropic.com/en/docs/build-with-claude/streaming>;
//! "Errors", <https://docs.anthropic.com/en/api/errors>: `429 rate_limit_error`, `529
//! overloaded_error`; "Rate limits", <https://docs.anthropic.com/en/api/rate-limits>: the
//! `anthropic-ratelimit-*` headers and `retry-after`) and Gemini ("Generating content",
//! <https://ai.google.dev/api/generate-content>: `GenerateContentResponse` events of
//! `streamGenerateContent?alt=sse`; "Troubleshooting", <https://ai.google.dev/gemini-api/docs/troubleshooting>:
//! `429 RESOURCE_EXHAUSTED`, `503 UNAVAILABLE`). Each behaviour runs for every protocol: a
//! single run in three formats, a schema run, reasoning, a 429, a capacity failure and its
//! fallback, a cut stream, and a 100-job batch with `--resume`.

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::common::{KEY, Sse, TestEnv};

const MODEL: &str = "model-a";
const FALLBACK: &str = "model-b";

#[derive(Debug, Clone, Copy)]
enum P {
    Responses,
    Anthropic,
    Gemini,
}

impl P {
    fn auth_type(self) -> &'static str {
        match self {
            Self::Responses => "openai-responses",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    /// `qwen --auth-type TYPE` with this protocol's key, base URL and model variables.
    fn cmd(self, env: &TestEnv, server: &MockServer) -> assert_cmd::Command {
        let mut cmd = env.cmd();
        let (key, base, model, url) = match self {
            Self::Responses => (
                "OPENAI_API_KEY",
                "OPENAI_BASE_URL",
                "OPENAI_MODEL",
                format!("{}/v1", server.uri()),
            ),
            Self::Anthropic => (
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_BASE_URL",
                "ANTHROPIC_MODEL",
                server.uri(),
            ),
            Self::Gemini => (
                "GEMINI_API_KEY",
                "GOOGLE_GEMINI_BASE_URL",
                "GEMINI_MODEL",
                server.uri(),
            ),
        };
        cmd.env(key, KEY)
            .env(base, url)
            .env(model, MODEL)
            .args(["--auth-type", self.auth_type()])
            .args(["--retry-base-delay", "0"]);
        cmd
    }

    /// A mock for requests to `model`, with the key in the protocol's header.
    fn mock(self, model: &str) -> MockBuilder {
        match self {
            Self::Responses => Mock::given(method("POST"))
                .and(path("/v1/responses"))
                .and(wiremock::matchers::header(
                    "authorization",
                    format!("Bearer {KEY}").as_str(),
                ))
                .and(body_string_contains(format!("\"model\":\"{model}\""))),
            Self::Anthropic => Mock::given(method("POST"))
                .and(path("/v1/messages"))
                .and(wiremock::matchers::header("x-api-key", KEY))
                .and(wiremock::matchers::header(
                    "anthropic-version",
                    "2023-06-01",
                ))
                .and(body_string_contains(format!("\"model\":\"{model}\""))),
            Self::Gemini => Mock::given(method("POST"))
                .and(path(format!(
                    "/v1beta/models/{model}:streamGenerateContent"
                )))
                .and(query_param("alt", "sse"))
                .and(wiremock::matchers::header("x-goog-api-key", KEY)),
        }
    }

    /// A whole streamed answer: optional reasoning, then the text in pieces, then usage 12 in
    /// (4 of them cached) / 2 out.
    fn answer(self, reasoning: Option<&str>, pieces: &[&str]) -> Sse {
        let sse = Sse::from_server("", "");
        match self {
            Self::Responses => responses_answer(sse, reasoning, pieces),
            Self::Anthropic => anthropic_answer(sse, reasoning, pieces),
            Self::Gemini => gemini_answer(sse, reasoning, pieces),
        }
    }

    /// A stream that stops after some text, before the protocol's end of an answer.
    fn cut(self) -> Sse {
        let sse = Sse::from_server("", "");
        match self {
            Self::Responses => responses_event(
                responses_event(
                    sse,
                    &json!({"type": "response.created", "sequence_number": 0, "response": response_object("in_progress", None)}),
                ),
                &json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                        "content_index": 0, "delta": "Hal", "sequence_number": 1}),
            ),
            Self::Anthropic => anthropic_event(
                anthropic_event(
                    anthropic_start(sse),
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hal"}}),
            ),
            Self::Gemini => gemini_event(
                sse,
                &json!({"candidates": [{"content": {"parts": [{"text": "Hal"}], "role": "model"}, "index": 0}], "modelVersion": MODEL}),
            ),
        }
    }

    /// The provider's 429, with its own headers (or, for Gemini, its `RetryInfo`).
    fn rate_limited(self) -> ResponseTemplate {
        match self {
            // OpenAI's `x-ratelimit-*` headers and `rate_limit_exceeded` body.
            Self::Responses => ResponseTemplate::new(429)
                .insert_header("x-ratelimit-limit-requests", "60")
                .insert_header("x-ratelimit-remaining-requests", "0")
                .insert_header("x-ratelimit-reset-requests", "20ms")
                .insert_header("x-request-id", "req_429")
                .set_body_json(json!({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                                "param": null, "code": "rate_limit_exceeded"}})),
            Self::Anthropic => ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                // A tier-4 limit: the pacer paces a batch to it (50, tier 1's, would space
                // these jobs 1.2 s apart).
                .insert_header("anthropic-ratelimit-requests-limit", "4000")
                .insert_header("anthropic-ratelimit-requests-remaining", "0")
                .insert_header("anthropic-ratelimit-requests-reset", "2024-06-01T12:00:30Z")
                .insert_header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")
                .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error",
                    "message": "This request would exceed the rate limit for your organization of 50 requests per minute."},
                    "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})),
            Self::Gemini => ResponseTemplate::new(429).set_body_json(json!({"error": {"code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}]}})),
        }
    }

    /// The provider's "no capacity now".
    fn overloaded(self) -> ResponseTemplate {
        match self {
            Self::Responses => ResponseTemplate::new(503).set_body_json(json!({"error": {
                "message": "The server is overloaded or not ready yet.", "type": "server_error", "param": null, "code": null}})),
            Self::Anthropic => ResponseTemplate::new(529).set_body_json(json!({"type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            Self::Gemini => ResponseTemplate::new(503).set_body_json(json!({"error": {"code": 503,
                "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})),
        }
    }

    /// Where the request asked for the schema, and how it asked for reasoning.
    fn schema_of(self, body: &Value) -> Value {
        match self {
            Self::Responses => body["text"]["format"]["schema"].clone(),
            Self::Anthropic => body["tools"][0]["input_schema"].clone(),
            Self::Gemini => body["generationConfig"]["responseJsonSchema"].clone(),
        }
    }

    fn reasoning_of(self, body: &Value) -> Value {
        match self {
            Self::Responses => body["reasoning"].clone(),
            Self::Anthropic => body["thinking"].clone(),
            Self::Gemini => body["generationConfig"]["thinkingConfig"].clone(),
        }
    }

    /// An answer that is a JSON value, as the protocol sends a schema's answer.
    fn json_answer(self, value: &str) -> Sse {
        match self {
            Self::Anthropic => {
                // The forced tool's input, streamed as `input_json_delta`s ("Streaming Messages":
                // "Input JSON delta").
                let (a, b) = value.split_at(value.len() / 2);
                let mut sse = anthropic_event(
                    anthropic_start(Sse::from_server("", "")),
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "label", "input": {}}}),
                );
                for part in [a, b] {
                    sse = anthropic_event(
                        sse,
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}}),
                    );
                }
                anthropic_end(
                    anthropic_event(
                        sse,
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": 0}),
                    ),
                    "tool_use",
                )
            }
            _ => self.answer(None, &[value]),
        }
    }
}

fn responses_answer(sse: Sse, reasoning: Option<&str>, pieces: &[&str]) -> Sse {
    let mut sse = responses_event(
        sse,
        &json!({"type": "response.created", "sequence_number": 0, "response": response_object("in_progress", None)}),
    );
    if let Some(r) = reasoning {
        sse = responses_event(
            sse,
            &json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
                                "output_index": 0, "summary_index": 0, "delta": r, "sequence_number": 1}),
        );
    }
    for p in pieces {
        sse = responses_event(
            sse,
            &json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1,
                                "content_index": 0, "delta": p, "sequence_number": 2}),
        );
    }
    let usage = json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                                   "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 14});
    responses_event(
        sse,
        &json!({"type": "response.completed", "sequence_number": 3, "response": response_object("completed", Some(&usage))}),
    )
}

fn anthropic_answer(sse: Sse, reasoning: Option<&str>, pieces: &[&str]) -> Sse {
    let mut sse = anthropic_start(sse);
    let mut index = 0;
    if let Some(r) = reasoning {
        sse = anthropic_event(
            sse,
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        );
        sse = anthropic_event(
            sse,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": r}}),
        );
        sse = anthropic_event(
            sse,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
        );
        sse = anthropic_event(
            sse,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        index = 1;
    }
    sse = anthropic_event(
        sse,
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
    );
    sse = anthropic_event(sse, "ping", &json!({"type": "ping"}));
    for p in pieces {
        sse = anthropic_event(
            sse,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}),
        );
    }
    anthropic_end(
        anthropic_event(
            sse,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ),
        "end_turn",
    )
}

fn gemini_answer(sse: Sse, reasoning: Option<&str>, pieces: &[&str]) -> Sse {
    let mut sse = sse;
    if let Some(r) = reasoning {
        sse = gemini_event(
            sse,
            &json!({"candidates": [{"content": {"parts": [{"text": r, "thought": true}], "role": "model"}, "index": 0}],
                        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}, "modelVersion": MODEL, "responseId": "gem-1"}),
        );
    }
    let last = pieces.len().saturating_sub(1);
    for (i, p) in pieces.iter().enumerate() {
        let mut candidate =
            json!({"content": {"parts": [{"text": p}], "role": "model"}, "index": 0});
        let mut event = json!({"modelVersion": MODEL, "responseId": "gem-1",
                        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}});
        if i == last {
            candidate["finishReason"] = json!("STOP");
            event["usageMetadata"] = json!({"promptTokenCount": 12, "cachedContentTokenCount": 4,
                            "candidatesTokenCount": 1, "thoughtsTokenCount": 1, "totalTokenCount": 14});
        }
        event["candidates"] = json!([candidate]);
        sse = gemini_event(sse, &event);
    }
    sse
}

fn responses_event(sse: Sse, data: &Value) -> Sse {
    let kind = data["type"].as_str().unwrap_or_default();
    sse.raw(&format!("event: {kind}\ndata: {data}\n\n"))
}

/// A `Response` object as the stream's `response.created` and `response.completed` carry it.
fn response_object(status: &str, usage: Option<&Value>) -> Value {
    json!({"id": "resp_67c9fdcecf488190bdd9a0409de3a1ec", "object": "response", "created_at": 1_741_290_958,
           "status": status, "error": null, "incomplete_details": null, "model": MODEL, "output": [],
           "store": false, "usage": usage})
}

fn anthropic_event(sse: Sse, event: &str, data: &Value) -> Sse {
    sse.raw(&format!("event: {event}\ndata: {data}\n\n"))
}

fn anthropic_start(sse: Sse) -> Sse {
    anthropic_event(
        sse,
        "message_start",
        &json!({"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message", "role": "assistant", "content": [], "model": MODEL, "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 5, "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 4, "output_tokens": 1}}}),
    )
}

fn anthropic_end(sse: Sse, stop_reason: &str) -> Sse {
    anthropic_event(
        anthropic_event(
            sse,
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 2}}),
        ),
        "message_stop",
        &json!({"type": "message_stop"}),
    )
}

fn gemini_event(sse: Sse, data: &Value) -> Sse {
    sse.raw(&format!("data: {data}\r\n\r\n"))
}

const ALL: [P; 3] = [P::Responses, P::Anthropic, P::Gemini];

async fn server_answering(p: P, sse: &Sse) -> MockServer {
    let server = MockServer::start().await;
    p.mock(MODEL)
        .respond_with(sse.respond())
        .mount(&server)
        .await;
    server
}

/// Runs `body` for each protocol, naming the protocol in any failure.
macro_rules! each {
    ($p:ident => $body:block) => {
        for $p in ALL {
            let _label = format!("{:?}", $p);
            $body
        }
    };
}

// After `each!`, which they use.
mod auth_types;
mod behaviours;
