//! What a batch writes: `OpenAI` Batch output lines, the summary file's figures, progress lines or
//! a live bar, usage counted as unknown when missing, an unwritable output, and the key kept out.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::MockServer;
use wiremock::matchers::{body_string_contains, header};

use super::{assert_error_line, echo, failing, numbered_jobs, run_jobs, write_prompt_jobs};
use crate::batch_support::{
    COMPLETION_TOKENS, Echo, PROMPT_TOKENS, REQUEST_ID, by_id, echo_server, file_lines,
};
use crate::common::{KEY, TestEnv, base_url, chat, error_response, request_bodies, run};

#[tokio::test]
async fn openai_batch_output_lines_for_a_success_an_http_error_and_a_stream_error() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    failing("rejected job", 400, "bad request body")
        .mount(&server)
        .await;
    chat()
        .and(body_string_contains("broken stream job"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_raw(
            "data: {\"error\":{\"message\":\"overloaded mid-stream\"}}\n\n",
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    echo().mount(&server).await;
    write_prompt_jobs(
        &env,
        &[
            ("good", "good job"),
            ("bad", "rejected job"),
            ("broken", "broken stream job"),
        ],
    );

    let r = run_jobs(
        &env,
        &server,
        &[
            "-o",
            "openai-batch",
            "--output",
            "results.jsonl",
            "--retry-base-delay",
            "0",
        ],
    );
    r.code(1)
        .stdout_empty()
        .stderr_has("batch: 3 jobs: 1 succeeded, 2 failed");
    let lines = file_lines(&env, "results.jsonl");
    let mut batch_ids: Vec<&str> = lines
        .iter()
        .map(|l| l["id"].as_str().expect("a batch request id"))
        .collect();
    assert!(
        batch_ids.iter().all(|id| id.starts_with("batch_req_")),
        "{batch_ids:?}"
    );
    batch_ids.sort_unstable();
    batch_ids.dedup();
    assert_eq!(batch_ids.len(), 3, "batch request ids are unique");
    for line in &lines {
        assert!(line.get("type").is_none(), "not a result message: {line}");
    }
    let lines = by_id(&lines);

    let good = &lines["good"];
    assert_eq!(good["custom_id"], "good");
    assert_eq!(good["error"], Value::Null, "{good}");
    assert_eq!(good["response"]["status_code"], 200, "{good}");
    assert_eq!(good["response"]["request_id"], REQUEST_ID, "{good}");
    let body = &good["response"]["body"];
    assert_eq!(body["object"], "chat.completion", "{good}");
    assert_eq!(body["id"], "chatcmpl-echo", "{good}");
    assert_eq!(body["model"], "echo-server", "{good}");
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "good job"}, "finish_reason": "stop"}]),
        "{good}"
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
               "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}),
        "{good}"
    );

    let bad = &lines["bad"];
    assert_eq!(bad["error"], Value::Null, "{bad}");
    assert_eq!(bad["response"]["status_code"], 400, "{bad}");
    let message = bad["response"]["body"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("bad request body"), "{bad}");

    let broken = &lines["broken"];
    assert_eq!(broken["response"], Value::Null, "{broken}");
    assert_eq!(broken["error"]["code"], "stream_error", "{broken}");
    let message = broken["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("overloaded mid-stream"), "{broken}");
}

#[tokio::test]
async fn summary_file_holds_every_figure() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    failing("rejected job", 400, "refused").mount(&server).await;
    failing("flaky job", 502, "bad gateway")
        .up_to_n_times(1)
        .mount(&server)
        .await;
    echo().mount(&server).await;
    write_prompt_jobs(
        &env,
        &[
            ("a", "fine a"),
            ("bad", "rejected job"),
            ("flaky", "flaky job"),
            ("b", "fine b"),
        ],
    );

    let r = run_jobs(
        &env,
        &server,
        &[
            "--output",
            "results.jsonl",
            "--summary",
            "summary.json",
            "--retry-base-delay",
            "0",
        ],
    );
    r.code(1).stdout_empty().stderr_has(&format!(
        "batch: 4 jobs: 3 succeeded, 1 failed (0 temporary), 1 retried, 0 skipped (resume), 0 not run; tokens in {} out {}",
        3 * PROMPT_TOKENS,
        3 * COMPLETION_TOKENS
    ));

    let summary: Value =
        serde_json::from_str(&env.read_project("summary.json")).expect("summary JSON");
    let expected = [
        ("jobs", json!(4)),
        ("succeeded", json!(3)),
        ("failed", json!(1)),
        ("failed_temporary", json!(0)),
        ("skipped_resumed", json!(0)),
        ("not_run", json!(0)),
        ("retried", json!(1)),
        ("input_tokens", json!(3 * PROMPT_TOKENS)),
        ("output_tokens", json!(3 * COMPLETION_TOKENS)),
        ("exit_code", json!(1)),
    ];
    for (field, value) in expected {
        assert_eq!(summary[field], value, "`{field}` in {summary:#}");
    }
    assert!(summary["wall_ms"].is_u64(), "{summary:#}");
    let rate = summary["requests_per_sec"].as_f64().expect("a rate");
    assert!(rate > 0.0, "{summary:#}");
    let failures = summary["failures"].as_array().expect("a failures list");
    assert_eq!(failures.len(), 1, "{summary:#}");
    assert_eq!(failures[0][0], "bad", "{summary:#}");
    assert_eq!(failures[0][1], "api_error", "{summary:#}");
    assert!(
        failures[0][2]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{summary:#}"
    );
}

#[tokio::test]
async fn progress_lines_every_interval_without_a_terminal_and_none_with_quiet() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_millis(200)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("p", 3));
    let args = [
        "--jobs",
        "jobs.jsonl",
        "--concurrency",
        "1",
        "--progress-interval",
        "100ms",
    ];

    let r = run(env.cmd_for(&server).args(args));
    r.code(0).stderr_has("batch: 3 jobs: 3 succeeded");
    let progress: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(
        progress.len() >= 2,
        "a ~600 ms run at a 100 ms interval reports progress\n{r}"
    );
    for line in &progress {
        assert!(line.contains("/3 done"), "{line}");
        assert!(line.contains("in flight"), "{line}");
    }
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no escape codes without a terminal\n{r}"
    );
    assert_eq!(r.stdout_lines().len(), 3);

    let r = run(env.cmd_for(&server).args(args).arg("--quiet"));
    r.code(0)
        .stderr_lacks("progress:")
        .stderr_has("batch: 3 jobs: 3 succeeded");
    assert_eq!(r.stdout_lines().len(), 3);
}

#[tokio::test]
async fn api_key_is_never_written_to_streams_results_or_summary() {
    const SECRET: &str = "sk-BATCHSECRET-0123456789";
    let env = TestEnv::new();
    let server = MockServer::start().await;
    let auth = format!("Bearer {SECRET}");
    // A careless server that repeats the key in its error message.
    chat()
        .and(header("authorization", auth.as_str()))
        .and(body_string_contains("leaky job"))
        .respond_with(error_response(
            400,
            &format!("invalid request for key {SECRET}"),
        ))
        .mount(&server)
        .await;
    chat()
        .and(header("authorization", auth.as_str()))
        .respond_with(Echo::after(Duration::ZERO))
        .mount(&server)
        .await;
    write_prompt_jobs(&env, &[("fine", "fine job"), ("leaky", "leaky job")]);

    let r1 = run(env.cmd_with(&base_url(&server), SECRET).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "results.jsonl",
        "--summary",
        "summary.json",
        "--debug",
        "--retry-base-delay",
        "0",
    ]));
    r1.code(1)
        .stderr_has("batch: 2 jobs: 1 succeeded, 1 failed");
    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_eq!(
        lines["fine"]["is_error"], false,
        "the key was accepted: {r1}"
    );
    assert_error_line(&lines["leaky"], "api_error", "[REDACTED]");

    let r2 = run(env.cmd_with(&base_url(&server), SECRET).args([
        "--jobs",
        "jobs.jsonl",
        "-o",
        "openai-batch",
        "--debug",
        "--retry-base-delay",
        "0",
    ]));
    r2.code(1);
    assert_eq!(r2.stdout_lines().len(), 2);

    for (what, text) in [
        ("stdout", r1.stdout.clone()),
        ("stderr", r1.stderr.clone()),
        ("openai-batch stdout", r2.stdout.clone()),
        ("openai-batch stderr", r2.stderr.clone()),
        ("the output file", env.read_project("results.jsonl")),
        ("the summary file", env.read_project("summary.json")),
    ] {
        assert!(!text.contains(SECRET), "the key appears in {what}:\n{text}");
        assert!(
            !text.contains("BATCHSECRET"),
            "part of the key appears in {what}:\n{text}"
        );
    }
    assert_eq!(request_bodies(&server).await.len(), 4);
}

#[tokio::test]
async fn an_output_file_that_cannot_be_written_fails_the_batch() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("jobs.jsonl", &numbered_jobs("w", 3));
    let r = run_jobs(&env, &server, &["--output", "/dev/full", "--overwrite"]);
    r.code(1)
        .stdout_empty()
        .stderr_has("cannot write a result line")
        .stderr_has("batch: 3 jobs");
}

#[tokio::test]
async fn on_a_terminal_progress_is_a_live_bar() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_millis(150)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("t", 6));
    let mut cmd = env.std_cmd();
    cmd.env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .env("TERM", "xterm")
        .args([
            "--jobs",
            "jobs.jsonl",
            "--output",
            "out.jsonl",
            "--concurrency",
            "2",
        ]);
    let pty = crate::common_oauth::Pty::spawn(&cmd);
    let (code, screen) = pty.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("/6 "), "a done/total counter:\n{screen}");
    assert!(screen.contains("in flight"), "{screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(
        screen.contains("\u{1b}[2K"),
        "the bar redraws its line in place:\n{screen}"
    );
    assert!(
        !screen.contains("progress: "),
        "no plain progress lines on a terminal:\n{screen}"
    );
    assert!(screen.contains("batch: 6 jobs: 6 succeeded"), "{screen}");
}

#[tokio::test]
async fn answers_without_usage_are_counted_as_unknown_not_zero() {
    // llama.cpp's server streams without usage even when asked (`stream_options.include_usage`).
    let env = TestEnv::new();
    let server = crate::common::server_mounting(
        chat().respond_with(
            crate::common::Sse::new()
                .text("no usage here")
                .finish("stop")
                .done()
                .respond(),
        ),
        2,
    )
    .await;
    env.write_project("jobs.jsonl", &numbered_jobs("u", 2));
    let r = run_jobs(&env, &server, &[]);
    r.code(0)
        .stderr_has("2 succeeded")
        .stderr_has("batch: 2 answers came without usage");
    for line in r.json_lines() {
        assert_eq!(line["usage"]["input_tokens"], serde_json::Value::Null);
    }
}
