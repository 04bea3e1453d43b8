//! What is retried and how long the server may make us wait; backoff is zeroed with
//! `--retry-base-delay 0`, and the waits chosen are read from the `--debug` lines, never timed.

use wiremock::{MockServer, ResponseTemplate};

use crate::common::{
    Sse, TestEnv, assert_error_result, assert_result_shape, chat, error_response, run, server_with,
};

/// `first` once, then a normal answer "ok": the "fail once then succeed" server.
async fn fail_once_then_ok(first: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    chat()
        .respond_with(first)
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(Sse::answer(&["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn http_429_with_retry_after_then_success_takes_two_attempts() {
    let env = TestEnv::new();
    let server =
        fail_once_then_ok(error_response(429, "rate limited").insert_header("retry-after", "1"))
            .await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--debug", "--json", "hi"]));
    r.code(0)
        .stderr_has("HTTP 429: rate limited); retrying in 1000 ms");
    let result = r.result();
    assert_result_shape(&result);
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "ok");
    assert_eq!(result["attempts"], 2);
}

#[tokio::test]
async fn retry_after_ms_is_honoured_over_the_backoff() {
    let env = TestEnv::new();
    let server =
        fail_once_then_ok(error_response(503, "busy").insert_header("retry-after-ms", "10")).await;
    // A backoff of its own would be 5–10 s; the server's 10 ms must be what is waited.
    let r =
        run(env
            .cmd_for(&server)
            .args(["--retry-base-delay", "10s", "--debug", "--json", "hi"]));
    r.code(0).stderr_has("retrying in 10 ms");
    assert_eq!(r.result()["attempts"], 2);
}

#[tokio::test]
async fn retry_after_as_a_past_http_date_retries_at_once() {
    let env = TestEnv::new();
    let server = fail_once_then_ok(
        error_response(503, "busy").insert_header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
    )
    .await;
    let r =
        run(env
            .cmd_for(&server)
            .args(["--retry-base-delay", "10s", "--debug", "--json", "hi"]));
    r.code(0).stderr_has("retrying in 0 ms");
    assert_eq!(r.result()["attempts"], 2);
}

#[tokio::test]
async fn retry_after_as_a_far_http_date_fails_at_once_with_75() {
    let env = TestEnv::new();
    let server = server_with(
        error_response(429, "come back later")
            .insert_header("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT"),
        1,
    )
    .await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(75).stderr_has("--max-retry-wait");
    let result = r.result();
    assert_error_result(&result, "rate_limit_error");
    assert_eq!(result["attempts"], 1);
}

#[tokio::test]
async fn http_500_then_success_with_zero_backoff() {
    let env = TestEnv::new();
    let server = fail_once_then_ok(error_response(500, "oops")).await;
    run(env.cmd_for(&server).args(["--retry-base-delay", "0", "hi"]))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
}

#[tokio::test]
async fn every_retryable_status_is_retried() {
    for status in [408, 429, 500, 502, 503, 504] {
        let env = TestEnv::new();
        let server = fail_once_then_ok(error_response(status, "transient")).await;
        let r = run(env
            .cmd_for(&server)
            .args(["--retry-base-delay", "0", "--json", "hi"]));
        r.code(0).stderr_empty();
        assert_eq!(r.result()["attempts"], 2, "HTTP {status}");
        server.verify().await;
    }
}

#[tokio::test]
async fn http_400_is_never_retried() {
    let env = TestEnv::new();
    let server = server_with(error_response(400, "bad"), 1).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(1).stderr_has("HTTP 400: bad");
    let result = r.result();
    assert_error_result(&result, "api_error");
    assert_eq!(result["attempts"], 1);
}

#[tokio::test]
async fn http_401_is_never_retried() {
    let env = TestEnv::new();
    let server = server_with(error_response(401, "no"), 1).await;
    run(env.cmd_for(&server).args(["--retry-base-delay", "0", "hi"]))
        .code(41)
        .stdout_empty()
        .stderr_has("HTTP 401: no");
}

#[tokio::test]
async fn no_final_status_is_retried() {
    for (status, code) in [(400, 1), (401, 41), (403, 41), (404, 1), (422, 1)] {
        let env = TestEnv::new();
        // Even with a Retry-After the server cannot make a final answer retried.
        let server = server_with(
            error_response(status, "final").insert_header("retry-after", "0"),
            1,
        )
        .await;
        let r = run(env
            .cmd_for(&server)
            .args(["--retry-base-delay", "0", "--json", "hi"]));
        r.code(code).stderr_has(&format!("HTTP {status}: final"));
        assert_eq!(r.result()["attempts"], 1, "HTTP {status}");
        server.verify().await;
    }
}

#[tokio::test]
async fn retries_stop_after_dash_dash_retries() {
    let env = TestEnv::new();
    let server = server_with(error_response(502, "bad gateway"), 4).await;
    let r = run(env.cmd_for(&server).args([
        "--retries",
        "3",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75).stderr_has("HTTP 502");
    assert_eq!(r.result()["attempts"], 4);
}

#[tokio::test]
async fn retries_0_is_a_single_attempt() {
    let env = TestEnv::new();
    let server = server_with(error_response(503, "busy"), 1).await;
    run(env.cmd_for(&server).args(["--retries", "0", "hi"]))
        .code(75)
        .stdout_empty()
        .stderr_has("HTTP 503");
}

/// A stream that ends with neither `[DONE]` nor a `finish_reason`, after `text` (maybe none).
fn cut_stream(text: Option<&str>) -> ResponseTemplate {
    let sse = Sse::new();
    match text {
        Some(t) => sse.text(t),
        None => sse,
    }
    .respond()
}

#[tokio::test]
async fn a_stream_cut_before_any_text_is_retried_in_json_mode() {
    let env = TestEnv::new();
    let server = fail_once_then_ok(cut_stream(None)).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(0).stderr_empty();
    let result = r.result();
    assert_eq!(result["result"], "ok");
    assert_eq!(result["attempts"], 2);
}

#[tokio::test]
async fn a_stream_cut_before_any_text_is_retried_in_text_mode() {
    let env = TestEnv::new();
    let server = fail_once_then_ok(cut_stream(None)).await;
    run(env.cmd_for(&server).args(["--retry-base-delay", "0", "hi"]))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
}

#[tokio::test]
async fn a_stream_cut_after_text_is_retried_in_json_mode_and_the_partial_text_dropped() {
    let env = TestEnv::new();
    let server = fail_once_then_ok(cut_stream(Some("half an ans"))).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    // The wait before the retry is said (`api_retry`), then the answer of the second attempt.
    assert_eq!(messages[1]["subtype"], "api_retry");
    assert_eq!(messages[1]["error"], "stream_cut");
    assert_eq!(messages[2]["message"]["content"][0]["text"], "ok");
    let result = r.result();
    assert_eq!(result["result"], "ok");
    assert_eq!(result["attempts"], 2);
}

#[tokio::test]
async fn a_stream_cut_after_text_was_shown_is_not_retried() {
    let env = TestEnv::new();
    let server = server_with(cut_stream(Some("half an ans")), 1).await;
    run(env.cmd_for(&server).args(["--retry-base-delay", "0", "hi"]))
        .code(75)
        .stdout_is("half an ans\n")
        .stderr_has("error: the response stream was cut");
}

#[tokio::test]
async fn a_stream_cut_after_partial_messages_were_written_is_not_retried() {
    let env = TestEnv::new();
    let server = server_with(cut_stream(Some("half")), 1).await;
    let r = run(env.cmd_for(&server).args([
        "--retry-base-delay",
        "0",
        "-o",
        "stream-json",
        "--include-partial-messages",
        "hi",
    ]));
    r.code(75).stderr_has("stream was cut");
    let lines = r.json_lines();
    let last = lines.last().expect("a result line");
    assert_error_result(last, "stream_cut");
    assert_eq!(last["attempts"], 1);
}

#[tokio::test]
async fn a_stream_cut_on_every_attempt_is_75() {
    let env = TestEnv::new();
    let server = server_with(cut_stream(None), 3).await;
    let r = run(env.cmd_for(&server).args([
        "--retries",
        "2",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75).stderr_has("stream was cut");
    let result = r.result();
    assert_error_result(&result, "stream_cut");
    assert_eq!(result["attempts"], 3);
}

#[tokio::test]
async fn a_stream_cut_inside_an_event_is_retried_like_any_cut() {
    let env = TestEnv::new();
    let cut = Sse::new().raw("data: {\"choices\":[{\"delta\":{\"content\":\"hel");
    let server = fail_once_then_ok(cut.respond()).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(0);
    let result = r.result();
    assert_eq!(result["result"], "ok");
    assert_eq!(result["attempts"], 2);
}

#[tokio::test]
async fn an_absurd_retry_after_ms_fails_at_once_instead_of_crashing() {
    let env = TestEnv::new();
    let server = server_with(
        error_response(429, "slow down").insert_header("retry-after-ms", "1e300"),
        1,
    )
    .await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(75).stderr_has("--max-retry-wait");
    assert_error_result(&r.result(), "rate_limit_error");
}
