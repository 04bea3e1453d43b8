//! What a server answers is bounded (a line, an answer, a body, an error body past
//! `--max-response-bytes` is refused or read only in part), and an answer without text fails.

use std::io::Write;

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use super::{RawServer, read_request};
use crate::batch_support::jsonl;
use crate::common::{KEY, Sse, TestEnv, assert_error_result, base_url, run, server_with};

#[test]
fn an_endless_sse_line_is_refused_past_max_response_bytes_with_a_json_document() {
    let env = TestEnv::new();
    // A stream whose first line never ends: 2 MiB of it with a limit of 1000 bytes.
    let server = RawServer::start(|mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 2097160\r\n\r\ndata: \"",
        );
        let block = vec![b'a'; 64 * 1024];
        for _ in 0..32 {
            if stream.write_all(&block).is_err() {
                return;
            }
        }
    });
    let r = run(env.cmd_with(&server.base_url(), KEY).args([
        "--max-response-bytes",
        "1000",
        "--json",
        "hi",
    ]));
    r.code(1).stderr_has("--max-response-bytes");
    assert_error_result(&r.result(), "response_too_large");
    assert_eq!(server.connections(), 1, "not retried");
}

#[tokio::test]
async fn an_answer_past_max_response_bytes_is_refused() {
    let env = TestEnv::new();
    let pieces = vec!["0123456789"; 200];
    let server = server_with(Sse::answer(&pieces).respond(), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args([
        "--max-response-bytes",
        "1000",
        "--json",
        "hi",
    ]));
    r.code(1);
    assert_error_result(&r.result(), "response_too_large");
    // The same answer fits a limit it does not pass.
    let server = server_with(Sse::answer(&pieces).respond(), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args([
        "--max-response-bytes",
        "2000",
        "--json",
        "hi",
    ]));
    r.code(0);
}

#[tokio::test]
async fn a_json_body_past_max_response_bytes_is_refused() {
    let env = TestEnv::new();
    let text = "x".repeat(5000);
    let body =
        json!({"id": "c", "choices": [{"message": {"content": text}, "finish_reason": "stop"}]});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args([
        "--max-response-bytes",
        "1000",
        "--json",
        "hi",
    ]));
    r.code(1);
    assert_error_result(&r.result(), "response_too_large");
}

#[tokio::test]
async fn a_json_body_s_short_values_are_cleaned_once_as_in_a_stream() {
    // 50 control characters: each shown as a 6-character escape, all 50 kept (the 200-character
    // limit counts the server's characters). Cleaned twice, the 300 characters of escapes were
    // cut to 200.
    let env = TestEnv::new();
    let reason = "\u{7}".repeat(50);
    let body =
        json!({"id": "c", "choices": [{"message": {"content": "ok"}, "finish_reason": reason}]});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args(["--json", "hi"]));
    r.code(0);
    let result = r.result();
    assert_eq!(result["finish_reason"], "\\u{7}".repeat(50), "{result}");
}

#[test]
fn an_endless_error_body_is_read_only_in_part() {
    let env = TestEnv::new();
    // A 400 whose chunked body never ends: only its start is read, and shown shortened.
    let server = RawServer::start(|mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let first = b"{\"error\":{\"message\":\"quota exceeded ";
        let _ = stream.write_all(format!("{:x}\r\n", first.len()).as_bytes());
        let _ = stream.write_all(first);
        let _ = stream.write_all(b"\r\n");
        let block = vec![b'a'; 16 * 1024];
        loop {
            let ok = stream
                .write_all(format!("{:x}\r\n", block.len()).as_bytes())
                .and_then(|()| stream.write_all(&block))
                .and_then(|()| stream.write_all(b"\r\n"));
            if ok.is_err() {
                return;
            }
        }
    });
    let r = run(env.cmd_with(&server.base_url(), KEY).args(["--json", "hi"]));
    r.code(1).stderr_has("quota exceeded");
    let result = r.result();
    let message = result["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("quota exceeded"), "{result}");
    assert!(message.len() < 2000, "shortened: {} bytes", message.len());
}

#[tokio::test]
async fn an_answer_without_text_is_a_failure() {
    // A stream with no finish_reason at all (a lone `[DONE]`, empty choices) is incomplete, not
    // empty: tests/integration/completeness.rs.
    let cases: [(&str, ResponseTemplate, &str); 3] = [
        (
            "content null",
            Sse::default()
                .chunk(&json!({"role": "assistant", "content": null}), Some("stop"))
                .done()
                .respond(),
            "stop",
        ),
        (
            "content filter",
            Sse::new().finish("content_filter").done().respond(),
            "content filter",
        ),
        (
            "a JSON body with null content",
            ResponseTemplate::new(200).set_body_json(
                json!({"choices": [{"message": {"content": null}, "finish_reason": "length"}]}),
            ),
            "length",
        ),
    ];
    for (what, response, says) in cases {
        let env = TestEnv::new();
        let server = server_with(response, 1).await;
        let r = run(env.cmd_for(&server).args(["--json", "hi"]));
        assert_eq!(r.code, Some(1), "{what}\n{r}");
        let result = r.result();
        assert_error_result(&result, "empty_answer");
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message}");
    }
}

#[tokio::test]
async fn an_empty_answer_fails_its_job_in_a_batch() {
    let env = TestEnv::new();
    let server = server_with(Sse::new().finish("stop").done().respond(), 1).await;
    env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl"]));
    r.code(1);
    let line: Value = serde_json::from_str(env.read_project("out.jsonl").trim()).expect("a line");
    assert_eq!(line["is_error"], true, "{line}");
}

#[tokio::test]
async fn a_tool_call_without_text_is_an_answer() {
    let env = TestEnv::new();
    let call = json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
        "function": {"name": "f", "arguments": "{}"}}]});
    let server = server_with(
        Sse::new().chunk(&call, Some("tool_calls")).done().respond(),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0);
}
