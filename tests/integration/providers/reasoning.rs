//! Reasoning streamed as `delta.reasoning_content` (`DashScope`, `DeepSeek`, vLLM) and
//! `delta.reasoning` (`OpenRouter`, with its processing comments): thinking messages, stderr, batch
//! lines, token budgets; and an error object mid-stream with status 200.

use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use crate::common::{Sse, TestEnv, chat, only_body, run, server_mounting};

/// `DashScope`'s Qwen3 with `enable_thinking` (and `DeepSeek`-R1, vLLM's reasoning parsers): the
/// reasoning streams as `delta.reasoning_content` with `content` null, then the answer as
/// `content` ("Deep thinking", <https://help.aliyun.com/en/model-studio/deep-thinking>); usage
/// reports `completion_tokens_details.reasoning_tokens`.
fn dashscope_thinking_stream() -> Sse {
    Sse::from_server("chatcmpl-ds", "qwen-plus")
        .chunk(&json!({"role": "assistant", "content": null, "reasoning_content": ""}), None)
        .chunk(&json!({"content": null, "reasoning_content": "The user greets. "}), None)
        .chunk(&json!({"content": null, "reasoning_content": "Answer briefly."}), None)
        .chunk(&json!({"content": "Hello", "reasoning_content": null}), None)
        .chunk(&json!({"content": " there"}), None)
        .finish("stop")
        .raw(&format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-ds", "object": "chat.completion.chunk", "created": 1, "model": "qwen-plus", "choices": [],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40,
                             "completion_tokens_details": {"reasoning_tokens": 22}}})
        ))
        .done()
}

#[tokio::test]
async fn dashscope_reasoning_content_is_a_thinking_message_before_the_text_with_reasoning_tokens() {
    let env = TestEnv::new();
    let server = server_mounting(
        chat().respond_with(dashscope_thinking_stream().respond()),
        1,
    )
    .await;
    let out = run(env.cmd_for(&server).args([
        "-m",
        "qwen-plus",
        "--extra-body",
        r#"{"enable_thinking": true}"#,
        "-o",
        "json",
        "hi",
    ]));
    out.code(0);
    let doc = out.json();
    let assistants: Vec<&Value> = doc.iter().filter(|m| m["type"] == "assistant").collect();
    assert_eq!(assistants.len(), 2, "{doc:?}");
    assert_eq!(
        assistants[0]["message"]["content"],
        json!([{"type": "thinking", "thinking": "The user greets. Answer briefly.", "signature": ""}])
    );
    assert_eq!(
        assistants[1]["message"]["content"],
        json!([{"type": "text", "text": "Hello there"}])
    );
    let result = out.result();
    assert_eq!(result["result"], "Hello there");
    assert_eq!(result["usage"]["reasoning_tokens"], 22);
    assert_eq!(only_body(&server).await["enable_thinking"], true);
}

#[tokio::test]
async fn text_mode_keeps_reasoning_off_stdout_and_show_reasoning_writes_it_to_stderr() {
    let env = TestEnv::new();
    let server = server_mounting(
        chat().respond_with(dashscope_thinking_stream().respond()),
        2,
    )
    .await;
    run(env.cmd_for(&server).arg("hi"))
        .code(0)
        .stdout_is("Hello there\n")
        .stderr_lacks("Answer briefly");
    run(env.cmd_for(&server).args(["--show-reasoning", "hi"]))
        .code(0)
        .stdout_is("Hello there\n")
        .stderr_has("The user greets. Answer briefly.\n");
}

/// `OpenRouter`: keep-alive comments `: OPENROUTER PROCESSING` between events ("Streaming",
/// <https://openrouter.ai/docs/api-reference/streaming>), and the reasoning as `delta.reasoning`
/// ("Reasoning Tokens", <https://openrouter.ai/docs/use-cases/reasoning-tokens>).
#[tokio::test]
async fn openrouter_reasoning_and_processing_comments_stream_as_thinking_then_text_deltas() {
    let env = TestEnv::new();
    let sse = Sse::from_server("gen-1", "deepseek/deepseek-r1")
        .raw(": OPENROUTER PROCESSING\n\n")
        .chunk(
            &json!({"role": "assistant", "content": "", "reasoning": "Think"}),
            None,
        )
        .raw(": OPENROUTER PROCESSING\n\n")
        .chunk(&json!({"content": "", "reasoning": "ing."}), None)
        .chunk(&json!({"content": "Done", "reasoning": null}), None)
        .finish("stop")
        .usage(5, 9)
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 1).await;
    let out = run(env.cmd_for(&server).args([
        "-H",
        "HTTP-Referer: https://example.org",
        "-H",
        "X-Title: CI",
        "--reasoning-effort",
        "high",
        "-o",
        "stream-json",
        "--include-partial-messages",
        "hi",
    ]));
    out.code(0);
    let lines = out.json_lines();
    let events: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "stream_event")
        .map(|l| {
            let e = &l["event"];
            match e["type"].as_str().unwrap_or_default() {
                "content_block_start" => format!(
                    "start:{}",
                    e["content_block"]["type"].as_str().unwrap_or_default()
                ),
                "content_block_delta" => format!(
                    "{}:{}",
                    e["delta"]["type"].as_str().unwrap_or_default(),
                    e["delta"]["thinking"]
                        .as_str()
                        .or(e["delta"]["text"].as_str())
                        .unwrap_or_default()
                ),
                other => other.to_owned(),
            }
        })
        .collect();
    // One streamed message for the turn, both blocks at index 0, as Qwen Code 0.24.4 writes it.
    assert_eq!(
        events,
        [
            "message_start",
            "start:thinking",
            "thinking_delta:Think",
            "thinking_delta:ing.",
            "content_block_stop",
            "start:text",
            "text_delta:Done",
            "content_block_stop",
            "message_stop",
        ]
    );
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "assistant")
        .map(|l| {
            l["message"]["content"][0]["type"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(kinds, ["thinking", "text"]);
    let requests = server.received_requests().await.expect("recorded");
    let headers = &requests[0].headers;
    assert_eq!(
        headers
            .get("x-title")
            .map(wiremock::http::HeaderValue::as_bytes),
        Some(&b"CI"[..])
    );
    assert_eq!(
        headers
            .get("http-referer")
            .map(wiremock::http::HeaderValue::as_bytes),
        Some(&b"https://example.org"[..])
    );
    assert_eq!(
        requests[0].body_json::<Value>().expect("json")["reasoning_effort"],
        "high"
    );
}

#[tokio::test]
async fn reasoning_with_no_text_is_exit_1_and_says_the_token_limit_was_reached() {
    let env = TestEnv::new();
    let sse = Sse::new()
        .chunk(
            &json!({"reasoning_content": "Let me think about this at length"}),
            None,
        )
        .finish("length")
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 1).await;
    let out = run(env
        .cmd_for(&server)
        .args(["--max-tokens", "16", "-o", "json", "hi"]));
    out.code(1)
        .stderr_has("empty after reasoning")
        .stderr_has("raise --max-tokens");
    let result = out.result();
    assert_eq!(result["error"]["type"], "empty_answer");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("finish_reason: length")),
        "{result}"
    );
}

/// `OpenRouter`: "any error occurred while the LLM is producing the output will be emitted ... as
/// an SSE data event" with HTTP 200 already sent ("Errors", <https://openrouter.ai/docs/api-reference/errors>):
/// a chunk with an `error` object and `finish_reason: error`.
#[tokio::test]
async fn an_error_object_mid_stream_with_status_200_fails_the_run() {
    let env = TestEnv::new();
    let sse = Sse::from_server("gen-2", "openai/gpt-4o")
        .text("Partial ")
        .raw(&format!(
            "data: {}\n\n",
            json!({"id": "gen-2", "object": "chat.completion.chunk", "created": 1, "model": "openai/gpt-4o",
                   "provider": "OpenAI",
                   "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                   "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
        ))
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 1).await;
    let out = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    out.code(1).stderr_has("Provider disconnected unexpectedly");
    assert_eq!(out.result()["error"]["type"], "stream_error");
}

#[tokio::test]
async fn batch_lines_carry_reasoning_and_a_jobs_credential_header_is_masked_and_scrubbed() {
    let env = TestEnv::new();
    let secret = "tenant-secret-123456789";
    let server = MockServer::start().await;
    chat()
        .and(wiremock::matchers::header("x-tenant-token", secret))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": format!("tenant {secret} is unknown")}}),
            ),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(dashscope_thinking_stream().respond())
        .with_priority(2)
        .mount(&server)
        .await;
    env.write_project(
        "jobs.yaml",
        &format!(
            "jobs:\n  - id: think\n    prompt: hi\n  - id: tenant\n    prompt: hi\n    headers: {{X-Tenant-Token: {secret}}}\n"
        ),
    );
    let out = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "--jobs",
        "jobs.yaml",
        "--concurrency",
        "1",
        "-q",
    ]));
    out.code(1).stderr_has(&format!("::add-mask::{secret}"));
    let lines = out.json_lines();
    let think = lines.iter().find(|l| l["id"] == "think").expect("a line");
    assert_eq!(think["reasoning"], "The user greets. Answer briefly.");
    assert_eq!(think["result"], "Hello there");
    let tenant = lines.iter().find(|l| l["id"] == "tenant").expect("a line");
    assert!(tenant.get("reasoning").is_none());
    let message = tenant["error"]["message"].as_str().expect("a message");
    assert!(
        !message.contains(secret) && message.contains("[REDACTED]"),
        "{message}"
    );
    assert_eq!(out.stderr.matches(secret).count(), 1, "{}", out.stderr);
}

/// A server that ignores `stream: true` and answers with one body (llama-cpp-python and vLLM do so
/// for some requests) still has its `message.reasoning_content` read.
#[tokio::test]
async fn a_whole_json_answer_with_reasoning_content_gets_its_thinking_message_too() {
    let env = TestEnv::new();
    let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "deepseek-r1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "42", "reasoning_content": "6 times 7."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12,
                  "completion_tokens_details": {"reasoning_tokens": 5}}});
    let server = server_mounting(
        chat().respond_with(ResponseTemplate::new(200).set_body_json(body)),
        1,
    )
    .await;
    let out = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    out.code(0);
    let doc = out.json();
    assert_eq!(
        doc[1]["message"]["content"][0],
        json!({"type": "thinking", "thinking": "6 times 7.", "signature": ""})
    );
    assert_eq!(
        doc[2]["message"]["content"][0],
        json!({"type": "text", "text": "42"})
    );
    assert_eq!(out.result()["usage"]["reasoning_tokens"], 5);
}

/// An answer that is only reasoning fails, but its tokens were spent: they count in the result's
/// usage and against `--max-total-tokens` (a batch stops instead of spending on).
#[tokio::test]
async fn an_empty_answers_tokens_count_against_the_budget() {
    let env = TestEnv::new();
    let sse = Sse::from_server("r", "deepseek-reasoner")
        .chunk(
            &json!({"role": "assistant", "content": "", "reasoning_content": "thinking..."}),
            None,
        )
        .finish("length")
        .usage(10, 1000)
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 2).await;
    let jobs = "{\"prompt\":\"p\"}\n".repeat(6);
    env.write_project("jobs.jsonl", &jobs);
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--concurrency",
        "1",
        "--max-total-tokens",
        "1500",
        "--output",
        "out.jsonl",
    ]));
    r.code(55).stderr_has("--max-total-tokens");
    let lines: Vec<serde_json::Value> = env
        .read_project("out.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["usage"]["total_tokens"], 1010);
    assert_eq!(lines[0]["error"]["type"], "empty_answer");
}
