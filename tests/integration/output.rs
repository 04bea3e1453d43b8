//! Output formats and the request as sent: text, JSON, JSON lines, partial messages, failures in
//! every format, odd-but-valid server answers, and the request body and path.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{
    KEY, Sse, TestEnv, assert_error_result, assert_result_shape, chat, error_response, only_body,
    run, server_answering, server_with,
};

fn types(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn text_mode_prints_exactly_the_answer_and_a_newline() {
    let env = TestEnv::new();
    let server = server_answering(&["Hello", " wo", "rld"]).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(0)
        .stdout_is("Hello world\n")
        .stderr_empty();
}

#[tokio::test]
async fn text_mode_adds_no_second_newline() {
    let env = TestEnv::new();
    let server = server_answering(&["two\n", "lines\n"]).await;
    run(env.cmd_for(&server).args(["-o", "text", "hi"]))
        .code(0)
        .stdout_is("two\nlines\n")
        .stderr_empty();
}

#[tokio::test]
async fn json_is_one_array_of_init_assistant_result() {
    let env = TestEnv::new();
    let server = server_answering(&["Hello", " world"]).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json", "-m", "my-model", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    assert_eq!(types(&messages), ["system", "assistant", "result"]);

    let init = &messages[0];
    assert_eq!(init["subtype"], "init");
    assert_eq!(init["model"], "my-model");
    assert_eq!(init["cwd"], env.project.display().to_string());

    let assistant = &messages[1];
    assert_eq!(assistant["message"]["role"], "assistant");
    assert_eq!(
        assistant["message"]["content"],
        json!([{"type": "text", "text": "Hello world"}])
    );
    // Qwen Code 0.24.4 (`BaseJsonOutputAdapter.buildMessage`): `null` unless the message holds
    // only tool calls; the server's finish reason is the result's `finish_reason`.
    assert_eq!(assistant["message"]["stop_reason"], Value::Null);

    let result = r.result();
    assert_result_shape(&result);
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "Hello world");
    assert_eq!(
        result["usage"],
        json!({"input_tokens": 12, "output_tokens": 2, "cache_read_input_tokens": 0, "total_tokens": 14})
    );
    assert_eq!(result["finish_reason"], "stop");
    assert_eq!(result["num_turns"], 1);
    assert_eq!(result["model"], "my-model");
    assert_eq!(result["attempts"], 1);
    assert!(result.get("error").is_none(), "{result}");
    let session = &result["session_id"];
    assert!(
        messages.iter().all(|m| &m["session_id"] == session),
        "one session id throughout: {messages:?}"
    );
}

#[tokio::test]
async fn dash_o_json_is_the_same_as_dash_dash_json() {
    let env = TestEnv::new();
    let server = server_answering(&["same"]).await;
    let r = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    r.code(0).stderr_empty();
    assert_eq!(types(&r.json()), ["system", "assistant", "result"]);
    assert_eq!(r.result()["result"], "same");
}

#[tokio::test]
async fn stream_json_is_json_lines_in_order() {
    let env = TestEnv::new();
    let server = server_answering(&["a", "b"]).await;
    let r = run(env.cmd_for(&server).args(["-o", "stream-json", "hi"]));
    r.code(0).stderr_empty();
    let lines = r.json_lines();
    assert_eq!(types(&lines), ["system", "assistant", "result"]);
    assert_result_shape(&lines[2]);
    assert_eq!(lines[2]["result"], "ab");
    assert_eq!(lines[2]["is_error"], false);
}

#[tokio::test]
async fn partial_messages_add_stream_events_with_text_deltas() {
    // The assistant message comes before `message_stop`, as Qwen Code 0.24.4 writes it
    // (`StreamJsonOutputAdapter`: the message is finalised, then the stream's stop).
    let env = TestEnv::new();
    let server = server_answering(&["Hel", "lo"]).await;
    let r =
        run(env
            .cmd_for(&server)
            .args(["-o", "stream-json", "--include-partial-messages", "hi"]));
    r.code(0).stderr_empty();
    let lines = r.json_lines();
    assert_eq!(
        types(&lines),
        [
            "system",
            "stream_event",
            "stream_event",
            "stream_event",
            "stream_event",
            "stream_event",
            "assistant",
            "stream_event",
            "result"
        ]
    );
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "stream_event")
        .map(|l| l["event"]["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_stop"
        ]
    );
    let deltas: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"]["type"] == "content_block_delta")
        .map(|l| &l["event"]["delta"])
        .collect();
    assert_eq!(
        deltas,
        [
            &json!({"type": "text_delta", "text": "Hel"}),
            &json!({"type": "text_delta", "text": "lo"})
        ]
    );
    assert_eq!(lines[8]["result"], "Hello");
}

#[tokio::test]
async fn partial_messages_outside_stream_json_are_a_usage_error() {
    // Issue 8: this combination used to be silently ignored (exit 0); it is now exit 2, and the
    // JSON document still says why.
    let env = TestEnv::new();
    let server = server_answering(&["x"]).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json", "--include-partial-messages", "hi"]));
    r.code(2)
        .stderr_has("--include-partial-messages only applies to -o stream-json");
    let messages = r.json();
    assert_eq!(types(&messages), ["system", "result"]);
    assert_error_result(&messages[1], "usage_error");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        0
    );
}

#[test]
fn an_auth_error_is_a_valid_json_document() {
    let env = TestEnv::new();
    let r = run(env.cmd().args(["--json", "hi"]));
    r.code(41).stderr_has("error: no API key");
    let messages = r.json();
    assert_eq!(types(&messages), ["system", "result"]);
    assert_error_result(&messages[1], "authentication_error");
    assert_eq!(messages[1]["attempts"], 0);
    assert_eq!(messages[1]["num_turns"], 0);
}

#[test]
fn an_auth_error_is_a_valid_stream_json_result() {
    let env = TestEnv::new();
    let r = run(env.cmd().args(["-o", "stream-json", "hi"]));
    r.code(41).stderr_has("error: no API key");
    let lines = r.json_lines();
    assert_eq!(types(&lines), ["system", "result"]);
    assert_error_result(&lines[1], "authentication_error");
}

#[tokio::test]
async fn an_input_error_is_a_valid_json_document() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .respond_with(Sse::answer(&["x"]).respond())
        .expect(0)
        .mount(&server)
        .await;
    let r = run(env.cmd_for(&server).arg("--json").write_stdin("   "));
    r.code(42).stderr_has("error: nothing to send");
    assert_error_result(&r.result(), "input_error");
}

#[tokio::test]
async fn an_api_error_is_a_valid_json_document() {
    let env = TestEnv::new();
    let server = server_with(error_response(400, "model not found"), 1).await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(1).stderr_has("HTTP 400: model not found");
    let messages = r.json();
    assert_eq!(types(&messages), ["system", "result"]);
    let result = r.result();
    assert_error_result(&result, "api_error");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("model not found")),
        "{result}"
    );
    assert_eq!(result["attempts"], 1);
}

#[tokio::test]
async fn an_api_error_in_stream_json_ends_with_an_error_result() {
    let env = TestEnv::new();
    let server = server_with(error_response(400, "nope"), 1).await;
    let r = run(env.cmd_for(&server).args(["-o", "stream-json", "hi"]));
    r.code(1).stderr_has("HTTP 400: nope");
    let lines = r.json_lines();
    assert_eq!(types(&lines), ["system", "result"]);
    assert_error_result(&lines[1], "api_error");
}

#[tokio::test]
async fn no_usage_from_the_server_gives_null_counts() {
    let env = TestEnv::new();
    let server = server_with(
        Sse::new().text("no usage").finish("stop").done().respond(),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    let nulls = json!({"input_tokens": null, "output_tokens": null, "cache_read_input_tokens": null, "total_tokens": null});
    assert_eq!(messages[1]["message"]["usage"], nulls);
    let result = r.result();
    assert_eq!(result["usage"], nulls);
    assert_eq!(result["result"], "no usage");
}

#[tokio::test]
async fn sse_with_crlf_comments_and_multibyte_text_is_understood() {
    let env = TestEnv::new();
    let body = Sse::answer(&["caf\u{e9} ", "\u{1f600}"])
        .body()
        .replace('\n', "\r\n");
    let body = format!(": keep-alive\r\n\r\n:another comment\r\n{body}");
    let server = server_with(
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0).stderr_empty();
    assert_eq!(r.result()["result"], "caf\u{e9} \u{1f600}");
}

#[tokio::test]
async fn sse_without_the_final_blank_line_or_done_but_finished_is_accepted() {
    let env = TestEnv::new();
    let body = Sse::new().text("end").finish("stop").body();
    let body = body.trim_end().to_owned();
    let server = server_with(
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"),
        1,
    )
    .await;
    run(env.cmd_for(&server).arg("hi"))
        .code(0)
        .stdout_is("end\n")
        .stderr_empty();
}

#[tokio::test]
async fn an_error_object_mid_stream_is_exit_1_and_is_error() {
    let env = TestEnv::new();
    let server = server_with(
        Sse::new()
            .text("partial")
            .raw("data: {\"error\":{\"message\":\"upstream exploded\",\"code\":500}}\n\n")
            .respond(),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(1)
        .stderr_has("error: the server reported an error in the stream: upstream exploded");
    let result = r.result();
    assert_error_result(&result, "stream_error");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream exploded")),
        "{result}"
    );
}

#[tokio::test]
async fn an_error_event_mid_stream_in_text_mode_is_exit_1() {
    let env = TestEnv::new();
    let server = server_with(
        Sse::new()
            .text("partial")
            .raw("event: error\ndata: {\"message\":\"overloaded\"}\n\n")
            .respond(),
        1,
    )
    .await;
    run(env.cmd_for(&server).arg("hi"))
        .code(1)
        .stdout_is("partial\n")
        .stderr_has("error: the server reported an error in the stream: overloaded");
}

#[tokio::test]
async fn a_plain_json_chat_completion_is_understood() {
    let env = TestEnv::new();
    let server = server_with(ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "server-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })), 1)
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0).stderr_empty();
    let result = r.result();
    assert_eq!(result["result"], "whole answer");
    assert_eq!(
        result["usage"],
        json!({"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 0, "total_tokens": 7})
    );

    let env = TestEnv::new();
    let server = server_with(
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"role": "assistant", "content": "as text"}}]
        })),
        1,
    )
    .await;
    // No finish_reason: accepted only from a server declared never to send one (issue 20).
    run(env
        .cmd_for(&server)
        .args(["--accept-missing-finish-reason", "hi"]))
    .code(0)
    .stdout_is("as text\n")
    .stderr_empty();
}

#[tokio::test]
async fn the_request_body_carries_model_messages_and_streaming_fields() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args(["-m", "m-1", "question"]))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
    let body = only_body(&server).await;
    assert_eq!(
        body,
        json!({
            "model": "m-1",
            "messages": [{"role": "user", "content": "question"}],
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn the_request_carries_the_bearer_key_and_json_content_type() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
    let requests = server.received_requests().await.expect("recording");
    let headers = &requests[0].headers;
    assert_eq!(
        headers.get("authorization").map(|v| v.to_str().ok()),
        Some(Some(format!("Bearer {KEY}").as_str()))
    );
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{headers:?}"
    );
}

#[tokio::test]
async fn system_prompt_temperature_and_max_tokens_are_sent() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(body_partial_json(json!({
            "messages": [
                {"role": "system", "content": "be terse"},
                {"role": "user", "content": "hi"}
            ],
            "temperature": 0.25,
            "max_tokens": 64
        })))
        .respond_with(Sse::answer(&["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    run(env.cmd_for(&server).args([
        "--system-prompt",
        "be terse",
        "--temperature",
        "0.25",
        "--max-tokens",
        "64",
        "hi",
    ]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn a_base_url_ending_in_a_slash_gives_no_doubled_slash() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd().env("OPENAI_API_KEY", KEY).args([
        "--openai-base-url",
        &format!("{}/v1/", server.uri()),
        "hi",
    ]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
    let requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/v1/chat/completions");
}

#[tokio::test]
async fn a_base_url_with_another_path_is_joined_under_it() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/compatible-mode/v1/chat/completions"))
        .respond_with(Sse::answer(&["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .env(
            "OPENAI_BASE_URL",
            format!("{}/compatible-mode/v1", server.uri()),
        )
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn a_closed_stdout_ends_the_program_quietly() {
    let env = TestEnv::new();
    let server = server_answering(&["x".repeat(200_000).as_str(), "tail"]).await;
    let mut child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", crate::common::base_url(&server))
        .arg("hi")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn qwen");
    // Like `| head -c 1`: read one byte, then close the pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("the first byte");
    drop(stdout);
    let r = crate::common::wait_bounded(child, Duration::from_secs(20));
    r.code(0).stderr_empty();
}
