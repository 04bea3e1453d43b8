//! Each behaviour for every protocol: a single run in three formats, a schema run, reasoning, a
//! 429 (paced in a batch), a whole JSON answer, a safety stop, a capacity failure and its fallback,
//! a cut stream, and a 100-job batch with `--resume`.

use serde_json::{Value, json};
use wiremock::matchers::body_string_contains;
use wiremock::{MockServer, ResponseTemplate};

use super::{
    ALL, FALLBACK, MODEL, P, anthropic_event, anthropic_start, gemini_event, server_answering,
};
use crate::common::{Run, Sse, TestEnv, json_lines, request_bodies, run};

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
