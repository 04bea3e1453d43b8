//! Batch mode (`--jobs`): every job file format, validation before anything is sent, per-job
//! overrides, bounded concurrency, retries and failures per job, resume, clobber refusal,
//! sharding, signals, the wall-time limit, both output formats, the summary, progress and secrecy.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::body_string_contains;
use wiremock::{Mock, MockServer};

use crate::batch_support::{COMPLETION_TOKENS, Echo, PROMPT_TOKENS, jsonl};
use crate::common::{Run, TestEnv, chat, error_response, run};

mod formats;
mod overrides;
mod results;
mod resume;
mod running;
mod signals;
mod validation;

/// Jobs `{id: <prefix><i>, prompt: "prompt <prefix><i>"}` for i in 0..n.
fn numbered_jobs(prefix: &str, n: usize) -> String {
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{prefix}{i}"), "prompt": format!("prompt {prefix}{i}")}))
        .collect();
    jsonl(&jobs)
}

/// Write `jobs.jsonl` with one `{id, prompt}` job per pair.
fn write_prompt_jobs(env: &TestEnv, jobs: &[(&str, &str)]) {
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|(id, prompt)| json!({"id": id, "prompt": prompt}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
}

/// Run `--jobs jobs.jsonl` against `server`, then `args`.
fn run_jobs(env: &TestEnv, server: &MockServer, args: &[&str]) -> Run {
    run(env
        .cmd_for(server)
        .args(["--jobs", "jobs.jsonl"])
        .args(args))
}

/// A chat mock that answers every request at once with `Echo`.
fn echo() -> Mock {
    chat().respond_with(Echo::after(Duration::ZERO))
}

/// A chat mock that answers the requests whose body contains `part` with an error.
fn failing(part: &str, status: u16, message: &str) -> Mock {
    chat()
        .and(body_string_contains(part))
        .respond_with(error_response(status, message))
}

/// How many requests the server has received.
async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .len()
}

/// Poll (bounded) until the server has received at least `n` requests.
async fn wait_for_requests(server: &MockServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while request_count(server).await < n {
        assert!(
            Instant::now() < deadline,
            "the server did not receive {n} requests in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The checks every successful result line shares.
#[track_caller]
fn assert_success_line(line: &Value, id: &str, index: u64, result: &str, model: &str) {
    assert_eq!(line["id"], id, "{line}");
    assert_eq!(line["index"], index, "{line}");
    assert_eq!(line["type"], "result", "{line}");
    assert_eq!(line["subtype"], "success", "{line}");
    assert_eq!(line["is_error"], false, "{line}");
    assert_eq!(line["result"], result, "{line}");
    assert_eq!(line["model"], model, "{line}");
    assert_eq!(line["attempts"], 1, "{line}");
    assert_eq!(line["usage"]["input_tokens"], PROMPT_TOKENS, "{line}");
    assert_eq!(line["usage"]["output_tokens"], COMPLETION_TOKENS, "{line}");
    for field in ["uuid", "session_id", "duration_ms", "duration_api_ms"] {
        assert!(
            line.get(field).is_some(),
            "the line lacks `{field}`: {line}"
        );
    }
}

/// A failed job's line: `is_error`, `error_during_execution`, an `error{type,message}`, no `result`.
#[track_caller]
fn assert_error_line(line: &Value, error_type: &str, message_part: &str) {
    assert_eq!(line["type"], "result", "{line}");
    assert_eq!(line["is_error"], true, "{line}");
    assert_eq!(line["subtype"], "error_during_execution", "{line}");
    assert_eq!(line["error"]["type"], error_type, "{line}");
    let message = line["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "error.message should contain {message_part:?}: {line}"
    );
    assert!(line.get("result").is_none(), "{line}");
}
