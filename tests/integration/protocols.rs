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

use crate::common::{KEY, Run, Sse, TestEnv, json_lines, request_bodies, run};

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

#[tokio::test]
async fn a_single_run_in_text_json_and_stream_json() {
    each!(p => {
        let env = TestEnv::new();
        let server = server_answering(p, &p.answer(None, &["Hel", "lo"])).await;
        run(p.cmd(&env, &server).arg("hi")).code(0).stdout_is("Hello\n");

        let r = run(p.cmd(&env, &server).args(["--json", "hi"]));
        r.code(0);
        let result = r.result();
        assert_eq!(result["result"], "Hello", "{p:?}: {result}");
        assert_eq!(result["usage"]["input_tokens"], 12, "{p:?}: {result}");
        assert_eq!(result["usage"]["cache_read_input_tokens"], 4, "{p:?}: {result}");
        assert_eq!(result["usage"]["output_tokens"], 2, "{p:?}: {result}");

        let r = run(p.cmd(&env, &server).args(["-o", "stream-json", "--include-partial-messages", "hi"]));
        r.code(0);
        let lines = json_lines(&r.stdout, "stream-json");
        let deltas: String = lines
            .iter()
            .filter_map(|l| l.pointer("/event/delta/text").and_then(Value::as_str))
            .collect();
        assert_eq!(deltas, "Hello", "{p:?}: {}", r.stdout);
        assert_eq!(lines.last().unwrap()["type"], "result", "{p:?}");

        // The body is the protocol's own: the prompt where the protocol puts it, and no
        // Chat Completions fields.
        let body = &request_bodies(&server).await[0];
        assert!(body.get("messages").is_none() || matches!(p, P::Anthropic), "{p:?}: {body}");
        assert!(body.get("stream_options").is_none(), "{p:?}: {body}");
        match p {
            P::Responses => {
                assert_eq!(body["input"], json!([{"role": "user", "content": "hi"}]), "{body}");
                assert_eq!(body["store"], false, "{body}");
            }
            P::Anthropic => {
                assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]), "{body}");
                assert_eq!(body["max_tokens"], 8192, "{body}");
            }
            P::Gemini => {
                assert_eq!(body["contents"], json!([{"role": "user", "parts": [{"text": "hi"}]}]), "{body}");
                assert!(body.get("model").is_none(), "{body}");
            }
        }
    });
}

#[tokio::test]
async fn a_schema_run_validates_the_answer_and_exits_65_after_the_repair_turns() {
    let schema = r#"{"type":"object","properties":{"label":{"type":"string","enum":["bug","feature"]}},"required":["label"],"additionalProperties":false}"#;
    each!(p => {
        let env = TestEnv::new();
        let server = server_answering(p, &p.json_answer(r#"{"label": "bug"}"#)).await;
        let r = run(p.cmd(&env, &server).args(["--json", "--json-schema", schema, "Classify"]));
        r.code(0);
        assert_eq!(r.result()["structured_result"], json!({"label": "bug"}), "{p:?}: {}", r.stdout);
        let body = &request_bodies(&server).await[0];
        assert_eq!(p.schema_of(body)["required"], json!(["label"]), "{p:?}: {body}");

        let server = MockServer::start().await;
        p.mock(MODEL)
            .respond_with(p.json_answer(r#"{"label": "question"}"#).respond())
            .expect(3)
            .mount(&server)
            .await;
        let r = run(p.cmd(&env, &server).args([
            "--json", "--json-schema", schema, "--schema-retries", "2", "--retries", "0", "Classify",
        ]));
        r.code(65).stderr_has("does not match the JSON schema");
        server.verify().await;
    });
}

#[tokio::test]
async fn reasoning_is_asked_for_and_shown_with_show_reasoning() {
    each!(p => {
        let env = TestEnv::new();
        let server = server_answering(p, &p.answer(Some("The user greets."), &["Hi"])).await;
        run(p.cmd(&env, &server).args(["--reasoning-effort", "low", "hi"]))
            .code(0)
            .stdout_is("Hi\n")
            .stderr_lacks("The user greets.");
        run(p.cmd(&env, &server).args(["--reasoning-effort", "low", "--show-reasoning", "hi"]))
            .code(0)
            .stdout_is("Hi\n")
            .stderr_has("The user greets.");
        let r = run(p.cmd(&env, &server).args(["--reasoning-effort", "low", "-o", "json", "hi"]));
        r.code(0).stdout_has("The user greets.");
        let body = &request_bodies(&server).await[0];
        let want = match p {
            P::Responses => json!({"effort": "low", "summary": "auto"}),
            P::Anthropic => json!({"type": "enabled", "budget_tokens": 1024}),
            P::Gemini => json!({"thinkingBudget": 1024, "includeThoughts": true}),
        };
        assert_eq!(p.reasoning_of(body), want, "{p:?}: {body}");
    });
}

#[tokio::test]
async fn a_429_with_the_providers_headers_is_retried() {
    each!(p => {
        let env = TestEnv::new();
        let server = MockServer::start().await;
        p.mock(MODEL)
            .respond_with(p.rate_limited())
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        p.mock(MODEL)
            .respond_with(p.answer(None, &["ok"]).respond())
            .with_priority(2)
            .mount(&server)
            .await;
        let r = run(p.cmd(&env, &server).args(["--json", "hi"]));
        r.code(0);
        assert_eq!(r.result()["result"], "ok", "{p:?}");
        assert_eq!(request_bodies(&server).await.len(), 2, "{p:?}");
    });
}

/// In a batch the 429 goes to the shared pacer: the request waits its turn again, without
/// counting against `--retries` (here 0), and every job succeeds.
#[tokio::test]
async fn a_429_in_a_batch_is_paced_not_failed() {
    each!(p => {
        let env = TestEnv::new();
        let jobs: String = (0..5)
            .map(|i| json!({"id": format!("j{i}"), "prompt": format!("p{i}")}).to_string() + "\n")
            .collect();
        env.write_project("jobs.jsonl", &jobs);
        let server = MockServer::start().await;
        p.mock(MODEL)
            .respond_with(p.rate_limited())
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        p.mock(MODEL)
            .respond_with(p.answer(None, &["ok"]).respond())
            .with_priority(2)
            .mount(&server)
            .await;
        run(p.cmd(&env, &server).args(["--jobs", "jobs.jsonl", "--retries", "0", "--concurrency", "2", "--quiet"]))
            .code(0)
            .stderr_has("batch: 5 jobs: 5 succeeded, 0 failed");
        assert_eq!(request_bodies(&server).await.len(), 6, "{p:?}");
    });
}

/// A server that ignores `stream: true` and answers with one JSON object (`LiteLLM`'s proxy
/// answers a `mock_response` model's `/v1/responses` so) is read as a whole answer.
#[tokio::test]
async fn a_whole_json_answer_is_read_for_every_protocol() {
    each!(p => {
        let env = TestEnv::new();
        let body = match p {
            P::Responses => json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
                "model": MODEL, "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "whole", "annotations": []}]}],
                "usage": {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1,
                          "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 4}}),
            P::Anthropic => json!({"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
                "content": [{"type": "text", "text": "whole"}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 3, "output_tokens": 1}}),
            P::Gemini => json!({"candidates": [{"content": {"parts": [{"text": "whole"}], "role": "model"},
                "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 3,
                "candidatesTokenCount": 1, "totalTokenCount": 4}, "modelVersion": MODEL}),
        };
        let server = MockServer::start().await;
        p.mock(MODEL).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
        let r = run(p.cmd(&env, &server).args(["--json", "hi"]));
        r.code(0);
        let result = r.result();
        assert_eq!(result["result"], "whole", "{p:?}: {result}");
        assert_eq!(result["usage"]["total_tokens"], 4, "{p:?}: {result}");
    });
}

/// Gemini's safety stop is the content filter: an empty answer that says so.
#[tokio::test]
async fn a_gemini_safety_stop_is_reported_as_the_content_filter() {
    let p = P::Gemini;
    let env = TestEnv::new();
    let blocked = gemini_event(
        Sse::from_server("", ""),
        &json!({"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "SAFETY", "index": 0}],
                "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}, "modelVersion": MODEL}),
    );
    let server = server_answering(p, &blocked).await;
    run(p.cmd(&env, &server).args(["--retries", "0", "hi"]))
        .code(1)
        .stderr_has("content filter");
}

#[tokio::test]
async fn a_capacity_failure_falls_back_to_the_next_model() {
    each!(p => {
        let env = TestEnv::new();
        let server = MockServer::start().await;
        p.mock(MODEL)
            .respond_with(p.overloaded())
            .expect(1)
            .mount(&server)
            .await;
        p.mock(FALLBACK)
            .respond_with(p.answer(None, &["from b"]).respond())
            .expect(1)
            .mount(&server)
            .await;
        let r = run(p.cmd(&env, &server).args([
            "--retries", "0", "--fallback-model", FALLBACK, "--json", "hi",
        ]));
        r.code(0);
        assert_eq!(r.result()["result"], "from b", "{p:?}: {}", r.stdout);
        server.verify().await;
    });
}

/// Anthropic's `overloaded_error` can also come as an `error` event after a 200 ("Streaming
/// Messages": "Error events").
#[tokio::test]
async fn an_anthropic_overloaded_error_event_falls_back_too() {
    let p = P::Anthropic;
    let env = TestEnv::new();
    let server = MockServer::start().await;
    let overloaded = anthropic_event(
        anthropic_start(Sse::from_server("", "")),
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    p.mock(MODEL)
        .respond_with(overloaded.respond())
        .expect(1)
        .mount(&server)
        .await;
    p.mock(FALLBACK)
        .respond_with(p.answer(None, &["from b"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    let r = run(p
        .cmd(&env, &server)
        .args(["--retries", "0", "--fallback-model", FALLBACK, "hi"]));
    r.code(0).stdout_is("from b\n");
    server.verify().await;
}

#[tokio::test]
async fn a_cut_stream_is_retried() {
    each!(p => {
        let env = TestEnv::new();
        let server = MockServer::start().await;
        p.mock(MODEL)
            .respond_with(p.cut().respond())
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        p.mock(MODEL)
            .respond_with(p.answer(None, &["Hallo"]).respond())
            .with_priority(2)
            .mount(&server)
            .await;
        let r = run(p.cmd(&env, &server).args(["--json", "hi"]));
        r.code(0);
        let result = r.result();
        assert_eq!(result["result"], "Hallo", "{p:?}: {result}");
        assert_eq!(request_bodies(&server).await.len(), 2, "{p:?}");

        // With no retries left, a cut stream is a temporary failure.
        let server = server_answering(p, &p.cut()).await;
        run(p.cmd(&env, &server).args(["--retries", "0", "hi"]))
            .code(75)
            .stderr_has("cut");
    });
}

#[tokio::test]
async fn a_hundred_job_batch_resumes_only_the_failed_jobs() {
    each!(p => {
        let env = TestEnv::new();
        let jobs: String = (0..100)
            .map(|i| {
                let prompt = if i % 10 == 0 { format!("refused-{i}") } else { format!("prompt-{i}") };
                json!({"id": format!("j{i}"), "prompt": prompt}).to_string() + "\n"
            })
            .collect();
        env.write_project("jobs.jsonl", &jobs);

        let server = MockServer::start().await;
        p.mock(MODEL)
            .and(body_string_contains("refused-"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "refused", "type": "invalid_request_error"}})))
            .with_priority(1)
            .mount(&server)
            .await;
        p.mock(MODEL)
            .respond_with(p.answer(None, &["done"]).respond())
            .with_priority(2)
            .mount(&server)
            .await;
        let batch = |server: &MockServer, resume: bool| -> Run {
            let mut cmd = p.cmd(&env, server);
            cmd.args(["--jobs", "jobs.jsonl", "--output", "results.jsonl", "--concurrency", "8", "--retries", "0", "--quiet"]);
            if resume {
                cmd.arg("--resume");
            }
            run(&mut cmd)
        };
        batch(&server, false)
            .code(1)
            .stderr_has("batch: 100 jobs: 90 succeeded, 10 failed");
        assert_eq!(request_bodies(&server).await.len(), 100, "{p:?}");

        let again = server_answering(p, &p.answer(None, &["done"])).await;
        batch(&again, true)
            .code(0)
            .stderr_has("90 skipped (resume)");
        assert_eq!(request_bodies(&again).await.len(), 10, "{p:?}: only the failed jobs again");
        let lines = json_lines(&env.read_project("results.jsonl"), "results");
        assert_eq!(lines.len(), 100, "{p:?}");
        assert!(lines.iter().all(|l| l["result"] == "done"), "{p:?}");
    });
}

/// Each auth type but `openai`: its key, base URL and model variables, its default base URL, and
/// its protocol as `auth status` names it (`[name, endpoint for the model m-env, key header]`).
type AuthTypeRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    [&'static str; 3],
);
const AUTH_TYPES: [AuthTypeRow; 4] = [
    (
        "openai-responses",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "https://api.openai.com/v1",
        [
            "responses",
            "https://api.openai.com/v1/responses",
            "authorization",
        ],
    ),
    (
        "anthropic",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "https://api.anthropic.com/",
        [
            "anthropic-messages",
            "https://api.anthropic.com/v1/messages",
            "x-api-key",
        ],
    ),
    (
        "gemini",
        "GEMINI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GEMINI_MODEL",
        "https://generativelanguage.googleapis.com/",
        [
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/models/m-env:streamGenerateContent?alt=sse",
            "x-goog-api-key",
        ],
    ),
    (
        "vertex-ai",
        "GOOGLE_API_KEY",
        "GOOGLE_VERTEX_BASE_URL",
        "GOOGLE_MODEL",
        "https://aiplatform.googleapis.com/",
        [
            "vertex-ai",
            "https://aiplatform.googleapis.com/v1/publishers/google/models/m-env:streamGenerateContent?alt=sse",
            "x-goog-api-key",
        ],
    ),
];

/// `auth status` names the protocol, in `--json` and in text: `[name, endpoint, key header]`.
fn assert_protocol(doc: &Value, text: &Run, [name, endpoint, key_header]: [&str; 3]) {
    assert_eq!(doc["protocol"]["name"], name, "{doc}");
    assert_eq!(doc["protocol"]["endpoint"], endpoint, "{doc}");
    assert_eq!(doc["protocol"]["key_header"], key_header, "{doc}");
    text.code(0).stdout_has(&format!(
        "protocol:    {name} (POST {endpoint}, the key in {key_header})"
    ));
}

#[tokio::test]
async fn anthropic_auth_token_is_a_bearer_token_and_auth_status_names_each_types_variables() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {KEY}").as_str(),
        ))
        .respond_with(P::Anthropic.answer(None, &["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    run(env
        .cmd()
        .env("QWEN_AUTH_TYPE", "anthropic")
        .env("ANTHROPIC_AUTH_TOKEN", KEY)
        .env("ANTHROPIC_BASE_URL", server.uri())
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n");
    server.verify().await;

    for (auth_type, key_var, base_var, model_var, default_base, protocol) in AUTH_TYPES {
        let r = run(env
            .cmd()
            .env(key_var, "sk-some-key-1234567890")
            .env(model_var, "m-env")
            .args(["auth", "status", "--json", "--auth-type", auth_type]));
        r.code(0);
        let doc: Value = serde_json::from_str(&r.stdout).expect("JSON");
        assert_eq!(doc["auth_type"]["value"], auth_type, "{doc}");
        assert_eq!(doc["api_key"]["source"]["name"], key_var, "{doc}");
        assert_eq!(doc["base_url"]["value"], default_base, "{doc}");
        assert_eq!(doc["model"]["value"], "m-env", "{doc}");
        assert_eq!(doc["model"]["source"]["name"], model_var, "{doc}");
        let text = run(env
            .cmd()
            .env(key_var, "sk-some-key-1234567890")
            .env(model_var, "m-env")
            .args(["auth", "status", "--auth-type", auth_type]));
        assert_protocol(&doc, &text, protocol);

        // A project `.env` cannot send a key from the environment to its own host.
        env.write_project(
            ".qwen/.env",
            &format!("{base_var}=https://evil.example.com\n"),
        );
        run(env.cmd().env(key_var, "sk-some-key-1234567890").args([
            "--auth-type",
            auth_type,
            "hi",
        ]))
        .code(52)
        .stderr_has("refusing to send the API key")
        .stderr_has(base_var);
        std::fs::remove_file(env.project_path(".qwen/.env")).expect("remove .env");
    }
}

#[tokio::test]
async fn a_provider_batch_refuses_gemini_and_vertex_and_a_bad_qwen_auth_type_is_named() {
    let env = TestEnv::new();
    env.write_project("jobs.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    // Gemini's batch mode is another shape: refused before anything is sent (the base URL is a
    // closed port), with the reason and the local batch as the way out.
    for (auth_type, key_var) in [
        ("gemini", "GEMINI_API_KEY"),
        ("vertex-ai", "GOOGLE_API_KEY"),
    ] {
        run(env
            .cmd()
            .env(key_var, KEY)
            .env("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
            .env("GOOGLE_VERTEX_BASE_URL", "http://127.0.0.1:9")
            .args(["batch", "submit", "jobs.jsonl", "--auth-type", auth_type]))
        .code(2)
        .stderr_has(&format!("not the batch mode of --auth-type {auth_type}"))
        .stderr_has("batchGenerateContent")
        .stderr_has("qwen --jobs FILE");
    }
    assert!(!env.project_path(".qwen/batches/jobs.json").exists());
    // The key's own header cannot be given again with -H.
    run(env
        .cmd()
        .env("ANTHROPIC_API_KEY", KEY)
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .args([
            "--auth-type",
            "anthropic",
            "-H",
            "X-Api-Key: other",
            "--retries",
            "0",
            "hi",
        ]))
    .code(52)
    .stderr_has("carries the API key");
    run(env.cmd().env("QWEN_AUTH_TYPE", "claude").arg("hi"))
        .code(52)
        .stderr_has("QWEN_AUTH_TYPE=`claude`")
        .stderr_has("openai-responses");
}

/// Vertex AI in express mode: the Gemini body and stream, at the global endpoint's
/// `publishers/google/models` path, with `GOOGLE_API_KEY` in `x-goog-api-key`; without that key the
/// run stops at once and says that only express mode is supported.
#[tokio::test]
async fn vertex_ai_express_mode_uses_the_gemini_wire_at_the_publishers_path() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1/publishers/google/models/{MODEL}:streamGenerateContent"
        )))
        .and(query_param("alt", "sse"))
        .and(wiremock::matchers::header("x-goog-api-key", KEY))
        .respond_with(P::Gemini.answer(None, &["from ", "vertex"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    run(env
        .cmd()
        .env("GOOGLE_API_KEY", KEY)
        .env("GOOGLE_VERTEX_BASE_URL", server.uri())
        .env("GOOGLE_MODEL", MODEL)
        .args(["--auth-type", "vertex-ai", "hi"]))
    .code(0)
    .stdout_is("from vertex\n");
    server.verify().await;

    run(env
        .cmd()
        .env("GOOGLE_CLOUD_PROJECT", "p")
        .env("GOOGLE_CLOUD_LOCATION", "us-central1")
        .args(["--auth-type", "vertex-ai", "hi"]))
    .code(41)
    .stderr_has("GOOGLE_API_KEY is not set")
    .stderr_has("express mode only");
}
