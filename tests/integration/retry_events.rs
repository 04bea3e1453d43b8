//! Every wait before another try is said: in `-o stream-json` as a `system`/`api_retry` message
//! written before the wait (the shape of Claude Code's stream-json retry notice), in `-o json` in
//! the array, and in a batch on the progress line and in `--summary`.

use serde_json::{Value, json};
use wiremock::matchers::body_string_contains;
use wiremock::{MockServer, ResponseTemplate};

use crate::batch_support::{file_lines, jsonl};
use crate::common::{Sse, TestEnv, chat, error_response, run};

/// Each of `failures` once, in order, then "ok".
async fn failing_then_ok(failures: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    // wiremock tries mocks in the order they were mounted; each answers once.
    for failure in failures {
        chat()
            .respond_with(failure)
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
    }
    chat()
        .respond_with(Sse::answer(&["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn retries_of(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "system" && l["subtype"] == "api_retry")
        .collect()
}

#[tokio::test]
async fn stream_json_says_each_wait_before_a_retry_after_429_and_5xx() {
    let env = TestEnv::new();
    let server = failing_then_ok(vec![
        error_response(429, "slow down").insert_header("retry-after-ms", "20"),
        error_response(500, "boom"),
        error_response(503, "busy"),
    ])
    .await;
    let r = run(env
        .cmd_for(&server)
        .args(["-o", "stream-json", "--retry-base-delay", "0", "hi"]));
    r.code(0);
    let lines = r.json_lines();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{}/{}",
                l["type"].as_str().unwrap_or(""),
                l["subtype"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "system/init",
            "system/api_retry",
            "system/api_retry",
            "system/api_retry",
            "assistant/",
            "result/success"
        ],
        "{lines:#?}"
    );
    let retries = retries_of(&lines);
    let session = &lines[0]["session_id"];
    let want = [
        (1, json!(429), "rate_limit_error", "server_hint", Some(20)),
        (2, json!(500), "server_error", "backoff", None),
        (3, json!(503), "server_error", "backoff", None),
    ];
    for (event, (attempt, status, error, reason, delay)) in retries.iter().zip(want) {
        assert_eq!(event["attempt"], attempt, "{event}");
        assert_eq!(event["max_retries"], 4, "{event}");
        assert_eq!(event["error_status"], status, "{event}");
        assert_eq!(event["error"], error, "{event}");
        assert_eq!(event["reason"], reason, "{event}");
        assert_eq!(event["model"], "gpt-4o", "{event}");
        assert_eq!(&event["session_id"], session, "{event}");
        assert!(event["uuid"].is_string(), "{event}");
        if let Some(ms) = delay {
            assert_eq!(event["retry_delay_ms"], ms, "{event}");
        } else {
            assert!(event["retry_delay_ms"].is_u64(), "{event}");
        }
    }
    assert_eq!(lines[5]["attempts"], 4);
}

#[tokio::test]
async fn a_request_that_never_succeeds_says_every_retry_and_none_after_the_last() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .respond_with(error_response(502, "bad gateway"))
        .expect(3)
        .mount(&server)
        .await;
    let r = run(env.cmd_for(&server).args([
        "-o",
        "stream-json",
        "--retries",
        "2",
        "--retry-base-delay",
        "0",
        "hi",
    ]));
    r.code(75);
    let lines = r.json_lines();
    let retries = retries_of(&lines);
    assert_eq!(retries.len(), 2, "{lines:#?}");
    assert_eq!(retries[1]["attempt"], 2);
    assert_eq!(lines.last().expect("result")["attempts"], 3);
}

#[tokio::test]
async fn json_puts_the_retry_messages_in_the_array_and_text_shows_none() {
    let env = TestEnv::new();
    let server = failing_then_ok(vec![error_response(500, "boom")]).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json", "--retry-base-delay", "0", "hi"]));
    r.code(0);
    let messages = r.json();
    let types: Vec<&str> = messages
        .iter()
        .map(|m| {
            m["subtype"]
                .as_str()
                .unwrap_or_else(|| m["type"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        types,
        ["init", "api_retry", "assistant", "success"],
        "{messages:#?}"
    );

    let server = failing_then_ok(vec![error_response(500, "boom")]).await;
    let r = run(env.cmd_for(&server).args(["--retry-base-delay", "0", "hi"]));
    r.code(0).stdout_is("ok\n");
}

#[tokio::test]
async fn a_fallback_to_another_model_is_said_too() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(body_string_contains(r#""model":"primary""#))
        .respond_with(error_response(503, "overloaded"))
        .mount(&server)
        .await;
    chat()
        .and(body_string_contains(r#""model":"backup""#))
        .respond_with(Sse::answer(&["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    let r = run(env.cmd_for(&server).args([
        "-o",
        "stream-json",
        "--retries",
        "0",
        "-m",
        "primary",
        "--fallback-model",
        "backup",
        "hi",
    ]));
    r.code(0);
    let lines = r.json_lines();
    let retries = retries_of(&lines);
    assert_eq!(retries.len(), 1, "{lines:#?}");
    let event = retries[0];
    assert_eq!(event["reason"], "fallback");
    assert_eq!(event["model"], "primary");
    assert_eq!(event["fallback_model"], "backup");
    assert_eq!(event["error_status"], 503);
    assert_eq!(event["retry_delay_ms"], 0);
}

#[tokio::test]
async fn a_batch_counts_its_waits_in_the_summary_and_on_the_progress_line() {
    let env = TestEnv::new();
    // The first request is refused for rate with a short hint; the batch pauses and re-queues it.
    let server = failing_then_ok(vec![
        error_response(429, "slow down").insert_header("retry-after-ms", "200"),
        error_response(500, "boom"),
    ])
    .await;
    let jobs = [json!({"id": "a", "prompt": "x"})];
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--summary",
        "summary.json",
        "--retry-base-delay",
        "0",
        "--progress-interval",
        "100ms",
    ]));
    r.code(0)
        .stderr_has("2 waits before a retry")
        .stderr_has("retry waits (0.2s on rate limits)");
    assert_eq!(file_lines(&env, "out.jsonl").len(), 1);
    let summary: Value = serde_json::from_str(&env.read_project("summary.json")).expect("json");
    assert_eq!(summary["retry_waits"], 2, "{summary}");
    assert!(
        summary["rate_limit_wait_ms"]
            .as_u64()
            .is_some_and(|ms| (150..=400).contains(&ms)),
        "{summary}"
    );
}
