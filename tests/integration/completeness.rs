//! An answer counts only when the server finished it (issue 20): a stream or a JSON body without
//! `finish_reason` is `incomplete_answer` (retried, then exit 75, the partial text in the error and
//! never in `result`), unless `--accept-missing-finish-reason`; a refusal is exit 1 with the
//! model's words and is neither repaired nor sent to another model; a gateway's (`LiteLLM`'s)
//! errors say which key failed; `retry_wait_ms` sits beside `attempts`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use crate::batch_support::{file_lines, jsonl, sse_answer};
use crate::common::{
    KEY, Sse, TestEnv, assert_error_result, chat, request_bodies, run, server_with,
};

/// The stream llama.cpp's server (`llama-cpp-python[server]` 0.3.36) sends to a request that a
/// newer one interrupts: ordinary chunks, the last with `finish_reason: null`, then `[DONE]`
/// (sse-starlette's `\r\n` line ends).
fn llama_cpp_interrupted(pieces: &[&str]) -> ResponseTemplate {
    let chunk = |delta: Value| {
        let chunk = json!({
            "id": "chatcmpl-5f0c", "object": "chat.completion.chunk", "created": 1_765_000_000,
            "model": "smollm2",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}],
        });
        format!("data: {chunk}\r\n\r\n")
    };
    let mut body = chunk(json!({"role": "assistant"}));
    for piece in pieces {
        body.push_str(&chunk(json!({"content": piece})));
    }
    body.push_str("data: [DONE]\r\n\r\n");
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

/// `first` once, then the complete answer "Paris." (`finish_reason: stop`).
async fn once_then_paris(first: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    chat()
        .respond_with(first)
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(Sse::answer(&["Par", "is."]).respond())
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn message(result: &Value) -> &str {
    result["error"]["message"].as_str().unwrap_or_default()
}

// ---- Incomplete answers ------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_that_ends_with_done_but_no_finish_reason_is_incomplete_and_exits_75() {
    let env = TestEnv::new();
    let server = server_with(llama_cpp_interrupted(&["The capital", " of Fr"]), 3).await;
    let r = run(env.cmd_for(&server).args([
        "--retries",
        "2",
        "--retry-base-delay",
        "0",
        "--json",
        "capital of France?",
    ]));
    r.code(75)
        .stderr_has("no finish_reason")
        .stderr_has("The capital of Fr")
        .stderr_has("hint:");
    let result = r.result();
    assert_error_result(&result, "incomplete_answer");
    assert!(message(&result).contains("The capital of Fr"), "{result}");
    assert_eq!(result["attempts"], 3, "{result}");
    // Never an assistant message with the cut text.
    assert!(
        !r.json().iter().any(|m| m["type"] == "assistant"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn an_interrupted_answer_is_retried_and_only_the_whole_answer_is_the_result() {
    let env = TestEnv::new();
    let server = once_then_paris(llama_cpp_interrupted(&["Pa"])).await;
    let r = run(env.cmd_for(&server).args([
        "--retry-base-delay",
        "20ms",
        "--json",
        "capital of France?",
    ]));
    r.code(0).stderr_empty();
    let result = r.result();
    assert_eq!(result["result"], "Paris.", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    // Equal jitter: between half and all of the 20 ms backoff was slept, and said so.
    let waited = result["retry_wait_ms"].as_u64().expect("retry_wait_ms");
    assert!((10..=20).contains(&waited), "{result}");
}

#[tokio::test]
async fn an_interruption_before_any_text_is_incomplete_not_an_empty_answer() {
    let env = TestEnv::new();
    let server = server_with(llama_cpp_interrupted(&[]), 1).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retries", "0", "--json", "hi"]));
    r.code(75).stderr_has("before any text");
    assert_error_result(&r.result(), "incomplete_answer");
    // Neither is a lone `[DONE]`, nor a stream of usage only.
    for response in [
        Sse::default().done().respond(),
        Sse::default().usage(3, 0).done().respond(),
    ] {
        let server = server_with(response, 1).await;
        let r = run(env
            .cmd_for(&server)
            .args(["--retries", "0", "--json", "hi"]));
        r.code(75);
        assert_error_result(&r.result(), "incomplete_answer");
    }
}

#[tokio::test]
async fn a_json_body_without_finish_reason_is_incomplete() {
    let env = TestEnv::new();
    let body = json!({"id": "c", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "half an ans"}}]});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body), 2).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retries", "1", "--retry-base-delay", "0", "hi"]));
    // Text mode: the body is checked whole before any of it is shown, so it could be retried.
    r.code(75).stdout_empty().stderr_has("half an ans");
}

#[tokio::test]
async fn text_already_shown_is_not_retried_and_the_run_still_fails() {
    let env = TestEnv::new();
    let server = server_with(llama_cpp_interrupted(&["The capital", " of Fr"]), 1).await;
    let r = run(env.cmd_for(&server).args(["--retry-base-delay", "0", "hi"]));
    r.code(75)
        .stdout_is("The capital of Fr\n")
        .stderr_has("error: the server ended the answer before it was complete");
}

#[tokio::test]
async fn accept_missing_finish_reason_takes_such_an_answer_and_debug_says_which() {
    let env = TestEnv::new();
    let server = server_with(llama_cpp_interrupted(&["Paris"]), 1).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--accept-missing-finish-reason", "--debug", "hi"]));
    r.code(0)
        .stdout_is("Paris\n")
        .stderr_has("no finish_reason (5 characters of text): accepted");
    let server = server_with(llama_cpp_interrupted(&["Paris"]), 1).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retries", "0", "--debug", "--json", "hi"]));
    r.code(75)
        .stderr_has("no finish_reason (5 characters of text): incomplete")
        .stderr_has("--accept-missing-finish-reason");
}

#[tokio::test]
async fn an_interrupted_job_is_a_failed_temporary_line_in_a_batch() {
    let env = TestEnv::new();
    let server = server_with(llama_cpp_interrupted(&["cut"]), 2).await;
    env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--retries",
        "1",
        "--retry-base-delay",
        "0",
    ]));
    r.code(75).stderr_has("1 failed (1 temporary)");
    let lines = file_lines(&env, "out.jsonl");
    assert_eq!(lines.len(), 1);
    assert_error_result(&lines[0], "incomplete_answer");
    assert_eq!(lines[0]["attempts"], 2, "{}", lines[0]);
    // No backoff (`--retry-base-delay 0`): nothing was slept, and the line says so.
    assert_eq!(lines[0]["retry_wait_ms"], 0, "{}", lines[0]);
    assert!(lines[0].get("result").is_none(), "{}", lines[0]);
}

/// A one-slot server: it answers one request at a time (in `busy` each), and cuts short, as
/// llama.cpp's server does, any request that arrives while it is busy.
struct OneSlot {
    busy: Duration,
    until: Mutex<Option<Instant>>,
}

impl Respond for OneSlot {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut until = self.until.lock().expect("lock");
        if until.is_some_and(|t| now < t) {
            return llama_cpp_interrupted(&["cut sh"]);
        }
        *until = Some(now + self.busy);
        ResponseTemplate::new(200)
            .set_body_raw(sse_answer("whole"), "text/event-stream")
            .set_delay(self.busy)
    }
}

#[tokio::test]
async fn a_batch_against_a_one_slot_server_narrows_to_what_it_can_serve() {
    // Six jobs at once, retried at once (no backoff): with the window left at six, every round
    // has one answer and five cut, and eleven attempts are spent in a moment; cuts narrow the
    // window to one (it still probes two after each answer, so a job may be cut a few times).
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .respond_with(OneSlot {
            busy: Duration::from_millis(150),
            until: Mutex::new(None),
        })
        .mount(&server)
        .await;
    let jobs: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("j{i}"), "prompt": "hi"}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--concurrency",
        "6",
        "--retries",
        "10",
        "--retry-base-delay",
        "0",
    ]));
    r.code(0).stderr_has("6 succeeded, 0 failed");
    let lines = file_lines(&env, "out.jsonl");
    assert_eq!(lines.len(), 6);
    for line in &lines {
        assert_eq!(line["result"], "whole", "{line}");
    }
}

#[tokio::test]
async fn a_refused_connection_and_a_loading_503_are_congestion_in_a_batch() {
    // llama.cpp's server while it loads its model.
    let loading = ResponseTemplate::new(503).set_body_json(
        json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}),
    );
    let server = server_with(loading, 1).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        format!("http://{addr}/v1")
    };
    for (base_url, kind) in [
        (crate::common::base_url(&server), "server_error"),
        (closed, "network_error"),
    ] {
        let env = TestEnv::new();
        env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
        let r = run(env.cmd_with(&base_url, KEY).args([
            "--jobs",
            "jobs.jsonl",
            "--output",
            "out.jsonl",
            "--retries",
            "0",
            "--debug",
        ]));
        r.code(75)
            .stderr_has("the server looks congested")
            .stderr_has("the batch sends fewer requests at once");
        assert_error_result(&file_lines(&env, "out.jsonl")[0], kind);
    }
}

// ---- Refusals ----------------------------------------------------------------------------------

/// `OpenAI`'s refusal as a JSON body: `content: null` beside `refusal` (openai-openapi
/// `ChatCompletionResponseMessage`), `finish_reason: stop`.
fn refusal_body(words: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-r", "object": "chat.completion", "created": 1_765_000_000, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": words},
                     "logprobs": null, "finish_reason": "stop"}],
    }))
}

/// The same as a stream: `delta.refusal` pieces (`ChatCompletionStreamResponseDelta`).
fn refusal_stream(pieces: &[&str]) -> ResponseTemplate {
    pieces
        .iter()
        .fold(
            Sse::default().chunk(
                &json!({"role": "assistant", "content": null, "refusal": ""}),
                None,
            ),
            |sse, piece| sse.chunk(&json!({"refusal": piece}), None),
        )
        .finish("stop")
        .done()
        .respond()
}

#[tokio::test]
async fn a_refusal_is_exit_1_with_the_models_words_streamed_or_not() {
    let words = "I'm sorry, I can't help with that.";
    let cases = [
        ("a JSON body", refusal_body(words)),
        (
            "a stream",
            refusal_stream(&["I'm sorry, ", "I can't help", " with that."]),
        ),
    ];
    for (what, response) in cases {
        let env = TestEnv::new();
        let server = server_with(response, 1).await;
        let r = run(env.cmd_for(&server).args(["--json", "hi"]));
        assert_eq!(r.code, Some(1), "{what}\n{r}");
        let result = r.result();
        assert_error_result(&result, "refusal");
        assert!(message(&result).contains(words), "{what}: {result}");
        assert!(r.stderr.contains(words), "{what}\n{r}");
    }
}

#[tokio::test]
async fn a_refusal_is_neither_repaired_nor_sent_to_another_model() {
    let env = TestEnv::new();
    let server = server_with(refusal_body("No."), 1).await;
    env.write_project(
        "s.json",
        r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}"#,
    );
    let r = run(env.cmd_for(&server).args([
        "--json-schema",
        "@s.json",
        "--fallback-model",
        "other-model",
        "--json",
        "hi",
    ]));
    r.code(1).stderr_lacks("trying `other-model`");
    assert_error_result(&r.result(), "refusal");
    let bodies = request_bodies(&server).await;
    assert_eq!(bodies.len(), 1, "one request: no repair turn, no fallback");
}

#[tokio::test]
async fn a_refusal_fails_its_job_in_a_batch_and_never_shows_the_key() {
    let env = TestEnv::new();
    let server = server_with(refusal_stream(&["No: ", KEY]), 1).await;
    env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl"]));
    r.code(1).stderr_lacks(KEY);
    let lines = file_lines(&env, "out.jsonl");
    assert_error_result(&lines[0], "refusal");
    assert!(!lines[0].to_string().contains(KEY), "{}", lines[0]);
}

// ---- Gateways ----------------------------------------------------------------------------------

#[tokio::test]
async fn litellm_without_a_database_refusing_a_key_is_an_authentication_failure() {
    let env = TestEnv::new();
    // What `litellm[proxy]` 1.108.7 without a database answers any key but its master key.
    let body = json!({"error": {"message": "No connected db.", "type": "no_db_connection",
        "param": "None", "code": "400"}});
    let server = server_with(ResponseTemplate::new(400).set_body_json(body), 1).await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(41).stderr_has("No connected db.").stderr_has(
        "hint: this gateway (a LiteLLM proxy without a database) accepts only its master key",
    );
    assert_error_result(&r.result(), "authentication_error");
}

#[tokio::test]
async fn litellm_relaying_an_upstream_401_blames_the_gateway_s_key_with_readable_lines() {
    let env = TestEnv::new();
    // LiteLLM escapes the provider's line breaks once more: the JSON text holds `\\n`.
    let body = r#"{"error":{"message":"litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key provided: sk-upstr*****.\\n\\nReceived Model Group=gpt-4o\\nAvailable Model Group Fallbacks=None","type":"auth_error","param":"None","code":"401"}}"#;
    let server = server_with(
        ResponseTemplate::new(401).set_body_raw(body, "application/json"),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["hi"]));
    r.code(41)
        .stderr_has("Incorrect API key provided: sk-upstr*****.\nReceived Model Group=gpt-4o\nAvailable Model Group Fallbacks=None")
        .stderr_has("the provider behind it refused the gateway's own key")
        .stderr_lacks("\\n")
        .stderr_lacks("check OPENAI_API_KEY");
}

#[tokio::test]
async fn litellm_s_call_id_is_the_request_id_when_no_other_is_given() {
    let env = TestEnv::new();
    let server = server_with(
        Sse::answer(&["ok"])
            .respond()
            .insert_header("x-litellm-call-id", "b980db26-9512-45cc-b1da-c511a363b83f"),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--debug", "hi"]));
    r.code(0)
        .stdout_is("ok\n")
        .stderr_has("request-id=b980db26-9512-45cc-b1da-c511a363b83f");
}
