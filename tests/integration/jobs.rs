//! Batch mode (`--jobs`): every job file format, validation before anything is sent, per-job
//! overrides, bounded concurrency, retries and failures per job, resume, clobber refusal,
//! sharding, signals, the wall-time limit, both output formats, the summary, progress and secrecy.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header};
use wiremock::{Mock, MockServer};

use crate::batch_support::{
    COMPLETION_TOKENS, Echo, HoldingServer, PROMPT_TOKENS, REQUEST_ID, bodies_by_prompt, by_id,
    echo_server, file_lines, ids, jsonl, sorted, spawn,
};
use crate::common::{KEY, Run, TestEnv, base_url, chat, error_response, request_bodies, run};

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

// ---------------------------------------------------------------------------------------------
// Formats

#[tokio::test]
async fn yaml_file_with_defaults_and_a_prompt_file_runs_every_job() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    // The job file sits in a subdirectory: `prompt_file` is relative to it, not to the cwd.
    env.write_project(
        "jobs/review.yaml",
        &[
            "defaults:",
            "  model: yaml-default-model",
            "  temperature: 0.25",
            "  system: Answer briefly.",
            "jobs:",
            "  - id: alpha",
            "    prompt: first prompt",
            "  - prompt_file: prompts/second.txt",
            "  - id: gamma",
            "    prompt: third prompt",
            "    model: gamma-model",
            "",
        ]
        .join("\n"),
    );
    env.write_project("jobs/prompts/second.txt", "second prompt from a file\n");

    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs/review.yaml",
        "--output",
        "results.jsonl",
        "--retry-base-delay",
        "0",
    ]));
    r.code(0)
        .stdout_empty()
        .stderr_has("batch: 3 jobs: 3 succeeded, 0 failed (0 temporary)");

    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_success_line(
        &lines["alpha"],
        "alpha",
        0,
        "first prompt",
        "yaml-default-model",
    );
    assert_success_line(
        &lines["job-1"],
        "job-1",
        1,
        "second prompt from a file\n",
        "yaml-default-model",
    );
    assert_success_line(&lines["gamma"], "gamma", 2, "third prompt", "gamma-model");

    let bodies = bodies_by_prompt(&server).await;
    assert_eq!(bodies.len(), 3);
    let first = &bodies["first prompt"];
    assert_eq!(first["model"], "yaml-default-model", "{first}");
    assert_eq!(first["temperature"], 0.25, "{first}");
    assert_eq!(
        first["messages"],
        json!([
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "first prompt"},
        ]),
        "{first}"
    );
    assert_eq!(first["stream"], true, "{first}");
    assert_eq!(
        bodies["second prompt from a file\n"]["model"],
        "yaml-default-model"
    );
    assert_eq!(bodies["third prompt"]["model"], "gamma-model");
    assert_eq!(bodies["third prompt"]["temperature"], 0.25);
}

#[tokio::test]
async fn json_list_writes_one_line_per_job_to_stdout() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.json",
        r#"[{"id": "x", "prompt": "one"}, {"prompt": "two"}, {"id": 7, "prompt": "three"}]"#,
    );

    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.json", "-m", "cfg-model"]));
    r.code(0)
        .stderr_has("batch: 3 jobs: 3 succeeded")
        .stderr_lacks("\"type\":\"result\"");
    let lines = by_id(&r.stdout_lines());
    assert_eq!(lines.len(), 3, "{r}");
    assert_success_line(&lines["x"], "x", 0, "one", "cfg-model");
    assert_success_line(&lines["job-1"], "job-1", 1, "two", "cfg-model");
    // A numeric id is kept, as a string.
    assert_success_line(&lines["7"], "7", 2, "three", "cfg-model");
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn jsonl_file_runs_prompt_and_messages_jobs() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "from messages"},
    ]);
    env.write_project(
        "jobs.jsonl",
        &jsonl(&[
            json!({"id": "p", "prompt": "plain prompt"}),
            json!({"id": "m", "messages": messages}),
            json!({"prompt": "no id"}),
        ]),
    );

    let r = run_jobs(&env, &server, &["--output", "results.jsonl"]);
    r.code(0)
        .stdout_empty()
        .stderr_has("batch: 3 jobs: 3 succeeded");
    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_success_line(&lines["p"], "p", 0, "plain prompt", "gpt-4o");
    assert_success_line(&lines["m"], "m", 1, "from messages", "gpt-4o");
    assert_success_line(&lines["job-2"], "job-2", 2, "no id", "gpt-4o");

    let bodies = bodies_by_prompt(&server).await;
    assert_eq!(bodies["from messages"]["messages"], messages);
    assert_eq!(
        bodies["plain prompt"]["messages"],
        json!([{"role": "user", "content": "plain prompt"}])
    );
}

#[tokio::test]
async fn jsonl_on_stdin_runs_with_jobs_dash() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let input = jsonl(&[
        json!({"id": "s1", "prompt": "from stdin"}),
        json!({"prompt": "also from stdin"}),
    ]);

    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "-"])
        .write_stdin(input));
    r.code(0).stderr_has("batch: 2 jobs: 2 succeeded");
    let lines = by_id(&r.stdout_lines());
    assert_eq!(lines.len(), 2, "{r}");
    assert_success_line(&lines["s1"], "s1", 0, "from stdin", "gpt-4o");
    assert_success_line(&lines["job-1"], "job-1", 1, "also from stdin", "gpt-4o");
}

#[tokio::test]
async fn openai_batch_input_lines_are_sent_as_they_are() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let with_model = json!({
        "model": "batch-model",
        "messages": [{"role": "user", "content": "first request"}],
        "max_tokens": 7,
        "logit_bias": {"50256": -100},
    });
    let without_model = json!({
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "second request"},
        ],
    });
    env.write_project(
        "batch.jsonl",
        &jsonl(&[
            json!({"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": with_model}),
            json!({"custom_id": "req-2", "method": "POST", "url": "/v1/chat/completions", "body": without_model}),
        ]),
    );

    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "batch.jsonl",
        "--output",
        "results.jsonl",
        "-m",
        "config-model",
    ]));
    r.code(0)
        .stdout_empty()
        .stderr_has("batch: 2 jobs: 2 succeeded");

    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_success_line(&lines["req-1"], "req-1", 0, "first request", "batch-model");
    assert_success_line(
        &lines["req-2"],
        "req-2",
        1,
        "second request",
        "config-model",
    );

    // The body is sent untouched, apart from the streaming fields (and the model when absent).
    let strip = |mut body: Value| {
        let map = body.as_object_mut().expect("an object body");
        assert_eq!(map.remove("stream"), Some(json!(true)));
        assert!(map.remove("stream_options").is_some());
        body
    };
    let bodies = bodies_by_prompt(&server).await;
    assert_eq!(strip(bodies["first request"].clone()), with_model);
    let mut expected = without_model.clone();
    expected["model"] = json!("config-model");
    assert_eq!(strip(bodies["second request"].clone()), expected);
}

// ---------------------------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn malformed_jsonl_line_is_refused_with_its_line_number_and_nothing_sent() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.jsonl",
        "{\"id\": \"a\", \"prompt\": \"fine\"}\n{\"id\": \"b\", \"prompt\": \"fine too\"}\n{\"id\": \"c\" \"prompt\": \"missing comma\"}\n",
    );

    let r = run_jobs(&env, &server, &["--output", "results.jsonl"]);
    r.code(42)
        .stdout_empty()
        .stderr_has("error:")
        .stderr_has("jobs.jsonl: line 3: not valid JSON")
        .stderr_has("nothing was sent")
        .stderr_lacks("jobs.jsonl: line 1")
        .stderr_lacks("jobs.jsonl: line 2");
    assert_eq!(request_count(&server).await, 0, "nothing may be sent");
    assert!(
        !env.project_path("results.jsonl").exists(),
        "no output file for a refused job file"
    );
}

#[tokio::test]
async fn invalid_job_files_are_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    // (file, contents, what stderr must say)
    let cases = [
        (
            "neither.yaml",
            "- id: ok\n  prompt: fine\n- id: empty\n  temperature: 0.5\n",
            "neither.yaml: job 1: the job has neither `prompt` nor `messages`",
        ),
        (
            "missing.json",
            r#"[{"id": "a", "prompt": "fine"}, {"id": "b", "prompt_file": "nowhere.txt"}]"#,
            "missing.json: job 1: prompt_file `nowhere.txt`",
        ),
        (
            "dup.jsonl",
            "{\"id\": \"a\", \"prompt\": \"one\"}\n{\"id\": \"b\", \"prompt\": \"two\"}\n{\"id\": \"a\", \"prompt\": \"three\"}\n",
            "dup.jsonl: line 3: duplicate id `a`",
        ),
        (
            // A generated id takes part in the duplicate check.
            "clash.jsonl",
            "{\"prompt\": \"one\"}\n{\"id\": \"job-0\", \"prompt\": \"two\"}\n",
            "clash.jsonl: line 2: duplicate id `job-0`",
        ),
        (
            "jobs.txt",
            "{\"prompt\": \"one\"}\n",
            "`jobs.txt`: unknown job file type",
        ),
    ];
    for (file, contents, expected) in cases {
        env.write_project(file, contents);
        let r = run(env.cmd_for(&server).args(["--jobs", file]));
        r.code(42)
            .stdout_empty()
            .stderr_has("error:")
            .stderr_has(expected);
        assert_eq!(
            request_count(&server).await,
            0,
            "{file}: nothing may be sent"
        );
    }
}

#[tokio::test]
async fn empty_prompt_file_is_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.yaml",
        "- id: fine\n  prompt: hello\n- id: blank\n  prompt_file: empty.txt\n",
    );
    env.write_project("empty.txt", "");

    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.yaml", "--output", "results.jsonl"]));
    r.code(42)
        .stdout_empty()
        .stderr_has("jobs.yaml: job 1: prompt_file `empty.txt` is empty");
    assert_eq!(request_count(&server).await, 0, "nothing may be sent");
    assert!(!env.project_path("results.jsonl").exists());
}

// ---------------------------------------------------------------------------------------------
// Per-job overrides

#[tokio::test]
async fn per_job_fields_override_the_flags_and_reach_the_request_body() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.jsonl",
        &jsonl(&[
            json!({
                "id": "custom", "prompt": "custom job", "model": "job-model",
                "temperature": 0.9, "max_tokens": 64, "seed": 1234, "top_p": 0.5,
                "response_format": {"type": "json_object"},
                "system": "job system",
            }),
            json!({"id": "plain", "prompt": "plain job"}),
        ]),
    );

    let r = run_jobs(
        &env,
        &server,
        &[
            "-m",
            "flag-model",
            "--temperature",
            "0.2",
            "--max-tokens",
            "16",
            "--system-prompt",
            "flag system",
        ],
    );
    r.code(0).stderr_has("batch: 2 jobs: 2 succeeded");
    let lines = by_id(&r.stdout_lines());
    assert_success_line(&lines["custom"], "custom", 0, "custom job", "job-model");
    assert_success_line(&lines["plain"], "plain", 1, "plain job", "flag-model");

    let bodies = bodies_by_prompt(&server).await;
    let custom = &bodies["custom job"];
    assert_eq!(custom["model"], "job-model", "{custom}");
    assert_eq!(custom["temperature"], 0.9, "{custom}");
    assert_eq!(custom["max_tokens"], 64, "{custom}");
    assert_eq!(custom["seed"], 1234, "{custom}");
    assert_eq!(custom["top_p"], 0.5, "{custom}");
    assert_eq!(
        custom["response_format"],
        json!({"type": "json_object"}),
        "{custom}"
    );
    assert_eq!(
        custom["messages"][0],
        json!({"role": "system", "content": "job system"}),
        "{custom}"
    );
    let plain = &bodies["plain job"];
    assert_eq!(plain["model"], "flag-model", "{plain}");
    assert_eq!(plain["temperature"], 0.2, "{plain}");
    assert_eq!(plain["max_tokens"], 16, "{plain}");
    assert_eq!(
        plain["messages"][0],
        json!({"role": "system", "content": "flag system"}),
        "{plain}"
    );
    for field in ["seed", "top_p", "response_format"] {
        assert!(
            plain.get(field).is_none(),
            "`{field}` leaked into another job: {plain}"
        );
    }
}

#[tokio::test]
async fn file_defaults_apply_to_every_job_that_does_not_override_them() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.json",
        r#"{"defaults": {"model": "file-model", "seed": 7},
            "jobs": [{"id": "a", "prompt": "uses defaults"},
                     {"id": "b", "prompt": "own model", "model": "own-model", "seed": 8}]}"#,
    );

    // The configured model (here from OPENAI_MODEL) is only a fallback below the file's defaults.
    let r = run(env
        .cmd_for(&server)
        .env("OPENAI_MODEL", "env-model")
        .args(["--jobs", "jobs.json"]));
    r.code(0).stderr_has("batch: 2 jobs: 2 succeeded");
    let lines = by_id(&r.stdout_lines());
    assert_success_line(&lines["a"], "a", 0, "uses defaults", "file-model");
    assert_success_line(&lines["b"], "b", 1, "own model", "own-model");

    let bodies = bodies_by_prompt(&server).await;
    assert_eq!(bodies["uses defaults"]["model"], "file-model");
    assert_eq!(bodies["uses defaults"]["seed"], 7);
    assert_eq!(bodies["own model"]["model"], "own-model");
    assert_eq!(bodies["own model"]["seed"], 8);
}

#[tokio::test]
async fn explicit_flags_beat_file_defaults_but_not_the_job() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.json",
        r#"{"defaults": {"model": "file-model", "temperature": 0.1, "system": "file system"},
            "jobs": [{"id": "a", "prompt": "uses flags"},
                     {"id": "b", "prompt": "own model", "model": "own-model"}]}"#,
    );
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.json",
        "-m",
        "flag-model",
        "--temperature",
        "0.9",
        "--system-prompt",
        "flag system",
    ]));
    r.code(0).stderr_has("batch: 2 jobs: 2 succeeded");
    let bodies = bodies_by_prompt(&server).await;
    assert_eq!(bodies["uses flags"]["model"], "flag-model");
    assert_eq!(bodies["uses flags"]["temperature"], 0.9);
    assert_eq!(
        bodies["uses flags"]["messages"][0]["content"],
        "flag system"
    );
    assert_eq!(bodies["own model"]["model"], "own-model");
}

#[tokio::test]
async fn defaults_cannot_hold_what_belongs_to_one_job() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.yaml",
        "defaults:\n  messages: [{role: user, content: same for all}]\njobs:\n  - prompt: mine\n",
    );
    let r = run(env.cmd_for(&server).args(["--jobs", "jobs.yaml"]));
    r.code(42)
        .stdout_empty()
        .stderr_has("`defaults` cannot hold `messages`");
    assert!(request_bodies(&server).await.is_empty(), "nothing is sent");
}

// ---------------------------------------------------------------------------------------------
// Running

#[test]
fn concurrency_is_bounded_and_really_concurrent() {
    let env = TestEnv::new();
    let server = HoldingServer::start(Duration::from_millis(100));
    env.write_project("jobs.jsonl", &numbered_jobs("c", 12));

    let r = run(env.cmd_with(&server.base_url, KEY).args([
        "--jobs",
        "jobs.jsonl",
        "--concurrency",
        "3",
    ]));
    r.code(0).stderr_has("batch: 12 jobs: 12 succeeded");
    let lines = by_id(&r.stdout_lines());
    assert_eq!(lines.len(), 12, "{r}");
    for (id, line) in &lines {
        assert_eq!(line["result"], format!("prompt {id}"), "{line}");
    }
    assert_eq!(server.served(), 12);
    let max = server.max_in_flight();
    assert!(
        max <= 3,
        "{max} requests were in flight with --concurrency 3"
    );
    assert!(
        max >= 2,
        "at most {max} request in flight: the jobs ran one by one"
    );
}

#[test]
fn rpm_spaces_the_requests_on_the_client_side() {
    let env = TestEnv::new();
    let server = HoldingServer::start(Duration::ZERO);
    env.write_project("jobs.jsonl", &numbered_jobs("q", 4));

    // 600 a minute: one every 100 ms, however many may be in flight.
    let r = run(env.cmd_with(&server.base_url, KEY).args([
        "--jobs",
        "jobs.jsonl",
        "--concurrency",
        "4",
        "--rpm",
        "600",
    ]));
    r.code(0).stderr_has("batch: 4 jobs: 4 succeeded");
    assert_eq!(r.stdout_lines().len(), 4, "{r}");
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 4);
    let span = arrivals[3].duration_since(arrivals[0]);
    assert!(
        span >= Duration::from_millis(250),
        "4 requests at --rpm 600 arrived within {span:?}"
    );
}

#[tokio::test]
async fn a_job_that_fails_once_is_retried_and_succeeds_with_two_attempts() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    failing("flaky job", 500, "boom")
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    echo().expect(3).mount(&server).await;
    write_prompt_jobs(
        &env,
        &[
            ("steady-1", "steady one"),
            ("flaky", "flaky job"),
            ("steady-2", "steady two"),
        ],
    );

    let r = run_jobs(&env, &server, &["--retry-base-delay", "0"]);
    r.code(0)
        .stderr_has("batch: 3 jobs: 3 succeeded, 0 failed (0 temporary), 1 retried");
    let lines = by_id(&r.stdout_lines());
    assert_eq!(lines["flaky"]["is_error"], false, "{r}");
    assert_eq!(lines["flaky"]["result"], "flaky job");
    assert_eq!(lines["flaky"]["attempts"], 2);
    assert_success_line(&lines["steady-1"], "steady-1", 0, "steady one", "gpt-4o");
    assert_success_line(&lines["steady-2"], "steady-2", 2, "steady two", "gpt-4o");
    server.verify().await;
}

#[tokio::test]
async fn one_permanent_failure_fails_only_its_job_and_exits_1() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    failing("rejected job", 400, "this prompt is refused")
        .expect(1)
        .mount(&server)
        .await;
    echo().expect(4).mount(&server).await;
    write_prompt_jobs(
        &env,
        &[
            ("ok-0", "fine 0"),
            ("ok-1", "fine 1"),
            ("bad", "rejected job"),
            ("ok-3", "fine 3"),
            ("ok-4", "fine 4"),
        ],
    );

    let r = run_jobs(
        &env,
        &server,
        &["--output", "results.jsonl", "--retry-base-delay", "0"],
    );
    r.code(1)
        .stdout_empty()
        .stderr_has("batch: 5 jobs: 4 succeeded, 1 failed (0 temporary)");
    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_eq!(lines.len(), 5);
    let bad = &lines["bad"];
    assert_error_line(bad, "api_error", "HTTP 400: this prompt is refused");
    assert_eq!(bad["id"], "bad");
    assert_eq!(bad["index"], 2);
    assert_eq!(bad["attempts"], 1, "a 400 is not retried: {bad}");
    for i in [0, 1, 3, 4] {
        let id = format!("ok-{i}");
        assert_success_line(&lines[&id], &id, i, &format!("fine {i}"), "gpt-4o");
    }
    server.verify().await;
}

#[tokio::test]
async fn only_temporary_failures_exit_75() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    failing("busy job", 503, "overloaded")
        .expect(1)
        .mount(&server)
        .await;
    echo().mount(&server).await;
    write_prompt_jobs(&env, &[("ok", "fine"), ("busy", "busy job")]);

    let r = run_jobs(&env, &server, &["--retries", "0"]);
    r.code(75)
        .stderr_has("batch: 2 jobs: 1 succeeded, 1 failed (1 temporary)");
    let lines = by_id(&r.stdout_lines());
    assert_error_line(&lines["busy"], "server_error", "HTTP 503: overloaded");
    assert_eq!(lines["busy"]["attempts"], 1);
    assert_success_line(&lines["ok"], "ok", 0, "fine", "gpt-4o");
    server.verify().await;
}

#[tokio::test]
async fn a_permanent_failure_among_temporary_ones_exits_1() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    failing("busy job", 503, "overloaded").mount(&server).await;
    failing("rejected job", 400, "refused").mount(&server).await;
    write_prompt_jobs(&env, &[("busy", "busy job"), ("bad", "rejected job")]);

    let r = run_jobs(&env, &server, &["--retries", "0"]);
    r.code(1)
        .stderr_has("batch: 2 jobs: 0 succeeded, 2 failed (1 temporary)");
    let lines = by_id(&r.stdout_lines());
    assert_error_line(&lines["busy"], "server_error", "HTTP 503");
    assert_error_line(&lines["bad"], "api_error", "HTTP 400");
}

// ---------------------------------------------------------------------------------------------
// Resume and clobbering

#[tokio::test]
async fn resume_keeps_successes_reruns_failures_and_tolerates_a_torn_line() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("jobs.jsonl", &numbered_jobs("r", 6));
    let success = |i: u64| {
        json!({"id": format!("r{i}"), "index": i, "type": "result", "subtype": "success",
               "is_error": false, "result": format!("old answer r{i}"), "model": "gpt-4o", "attempts": 1})
        .to_string()
    };
    let failed =
        json!({"id": "r2", "index": 2, "type": "result", "subtype": "error_during_execution",
        "is_error": true, "model": "gpt-4o", "attempts": 5,
        "error": {"type": "server_error", "message": "API error: HTTP 503: busy"}})
        .to_string();
    // What a killed run leaves: two successes, a failure, and half a line.
    let previous = format!(
        "{}\n{failed}\n{}\n{{\"id\":\"r3\",\"index\":3,\"type\":\"res",
        success(0),
        success(1)
    );
    env.write_project("results.jsonl", &previous);

    let r = run_jobs(&env, &server, &["--output", "results.jsonl", "--resume"]);
    r.code(0).stdout_empty().stderr_has(
        "batch: 6 jobs: 4 succeeded, 0 failed (0 temporary), 0 retried, 2 skipped (resume), 0 not run",
    );

    let text = env.read_project("results.jsonl");
    let lines = file_lines(&env, "results.jsonl");
    assert_eq!(
        sorted(&ids(&lines)),
        sorted(&["r0", "r1", "r2", "r3", "r4", "r5"]),
        "every job ends with exactly one line:\n{text}"
    );
    let lines = by_id(&lines);
    // The earlier successes are kept as they were.
    assert!(text.contains(&format!("{}\n", success(0))), "{text}");
    assert!(text.contains(&format!("{}\n", success(1))), "{text}");
    // The failure and the torn job ran again.
    for i in 2..6 {
        let id = format!("r{i}");
        assert_success_line(&lines[&id], &id, i, &format!("prompt {id}"), "gpt-4o");
    }
    let prompts = sorted(
        &bodies_by_prompt(&server)
            .await
            .into_keys()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        prompts,
        sorted(&["prompt r2", "prompt r3", "prompt r4", "prompt r5"]),
        "the jobs that already succeeded must not be sent again"
    );
}

#[tokio::test]
async fn resume_without_an_output_file_yet_runs_every_job() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("jobs.jsonl", &numbered_jobs("n", 3));

    let r = run_jobs(&env, &server, &["--output", "results.jsonl", "--resume"]);
    r.code(0)
        .stdout_empty()
        .stderr_has("batch: 3 jobs: 3 succeeded");
    let lines = file_lines(&env, "results.jsonl");
    assert_eq!(sorted(&ids(&lines)), sorted(&["n0", "n1", "n2"]));
}

#[tokio::test]
async fn resume_reads_openai_batch_output_lines() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("jobs.jsonl", &numbered_jobs("o", 4));
    let ok = json!({"id": "batch_req_1", "custom_id": "o0", "error": null,
        "response": {"status_code": 200, "request_id": "r", "body": {"object": "chat.completion"}}})
    .to_string();
    let http_error = json!({"id": "batch_req_2", "custom_id": "o1", "error": null,
        "response": {"status_code": 400, "request_id": null, "body": {"error": {"message": "no"}}}})
    .to_string();
    let transport_error = json!({"id": "batch_req_3", "custom_id": "o2", "response": null,
        "error": {"code": "network_error", "message": "reset"}})
    .to_string();
    env.write_project(
        "results.jsonl",
        &format!("{ok}\n{http_error}\n{transport_error}\n"),
    );

    let r = run_jobs(
        &env,
        &server,
        &[
            "-o",
            "openai-batch",
            "--output",
            "results.jsonl",
            "--resume",
        ],
    );
    r.code(0).stdout_empty().stderr_has(
        "batch: 4 jobs: 3 succeeded, 0 failed (0 temporary), 0 retried, 1 skipped (resume)",
    );
    let text = env.read_project("results.jsonl");
    assert!(text.starts_with(&format!("{ok}\n")), "{text}");
    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_eq!(
        sorted(&lines.keys().collect::<Vec<_>>()),
        sorted(&["o0", "o1", "o2", "o3"])
    );
    for id in ["o1", "o2", "o3"] {
        assert_eq!(lines[id]["response"]["status_code"], 200, "{}", lines[id]);
    }
    let prompts = sorted(
        &bodies_by_prompt(&server)
            .await
            .into_keys()
            .collect::<Vec<_>>(),
    );
    assert_eq!(prompts, sorted(&["prompt o1", "prompt o2", "prompt o3"]));
}

#[tokio::test]
async fn resume_into_an_output_shared_with_another_shard_counts_only_its_own_jobs() {
    let env = TestEnv::new();
    // Answers that never come in time: nothing of this run finishes.
    let server = echo_server(Duration::from_secs(20)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("h", 4));
    // Shard 1/2 (h0, h2) already finished into the same file.
    let done = |i: u64| {
        json!({"id": format!("h{i}"), "index": i, "type": "result", "subtype": "success",
               "is_error": false, "result": "done", "model": "gpt-4o", "attempts": 1})
        .to_string()
    };
    env.write_project("results.jsonl", &format!("{}\n{}\n", done(0), done(2)));

    let r = run_jobs(
        &env,
        &server,
        &[
            "--shard",
            "2/2",
            "--output",
            "results.jsonl",
            "--resume",
            "--max-wall-time",
            "300ms",
            "--summary",
            "summary.json",
        ],
    );
    r.code(55).stdout_empty().stderr_has(
        "batch: 2 jobs: 0 succeeded, 0 failed (0 temporary), 0 retried, 0 skipped (resume), 2 not run",
    );
    let summary: Value =
        serde_json::from_str(&env.read_project("summary.json")).expect("summary JSON");
    assert_eq!(summary["skipped_resumed"], 0, "{summary:#}");
    assert_eq!(summary["not_run"], 2, "{summary:#}");
}

#[tokio::test]
async fn existing_output_is_refused_and_left_alone_unless_resume_or_overwrite() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("jobs.jsonl", &numbered_jobs("w", 2));
    env.write_project("results.jsonl", "precious earlier results\n");

    let r = run_jobs(&env, &server, &["--output", "results.jsonl"]);
    r.code(42)
        .stdout_empty()
        .stderr_has("error: the output file `")
        .stderr_has("results.jsonl` exists and is not empty")
        .stderr_has("hint: pass --resume")
        .stderr_has("--overwrite");
    assert_eq!(
        env.read_project("results.jsonl"),
        "precious earlier results\n"
    );
    assert_eq!(request_count(&server).await, 0, "nothing may be sent");

    let r = run_jobs(&env, &server, &["--output", "results.jsonl", "--overwrite"]);
    r.code(0)
        .stdout_empty()
        .stderr_has("batch: 2 jobs: 2 succeeded");
    let text = env.read_project("results.jsonl");
    assert!(!text.contains("precious"), "{text}");
    assert_eq!(
        sorted(&ids(&file_lines(&env, "results.jsonl"))),
        sorted(&["w0", "w1"])
    );

    // An empty file is not in the way.
    env.write_project("empty.jsonl", "");
    let r = run_jobs(&env, &server, &["--output", "empty.jsonl"]);
    r.code(0).stdout_empty();
    assert_eq!(file_lines(&env, "empty.jsonl").len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Sharding

#[tokio::test]
async fn shards_cover_the_file_exactly_once() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    // No ids: each job's id comes from its position in the whole file, whatever the shard.
    let jobs: Vec<Value> = (0..10)
        .map(|i| json!({"prompt": format!("shard prompt {i}")}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));

    let mut all = Vec::new();
    for k in 1..=3u64 {
        let output = format!("part-{k}.jsonl");
        let shard = format!("{k}/3");
        let r = run_jobs(&env, &server, &["--shard", &shard, "--output", &output]);
        let expected = (0..10u64).filter(|i| i % 3 == k - 1).count();
        r.code(0)
            .stdout_empty()
            .stderr_has(&format!("batch: {expected} jobs: {expected} succeeded"));
        let lines = file_lines(&env, &output);
        assert_eq!(lines.len(), expected, "shard {shard}");
        for line in &lines {
            let index = line["index"].as_u64().expect("an index");
            assert_eq!(index % 3, k - 1, "shard {shard} ran job {index}");
            assert_eq!(line["id"], format!("job-{index}"), "{line}");
            assert_eq!(line["result"], format!("shard prompt {index}"), "{line}");
        }
        all.extend(ids(&lines));
    }
    let expected: Vec<String> = (0..10).map(|i| format!("job-{i}")).collect();
    assert_eq!(
        sorted(&all),
        sorted(&expected),
        "no gap and no overlap across the shards"
    );
    assert_eq!(request_count(&server).await, 10);
}

// ---------------------------------------------------------------------------------------------
// Signals and the wall-time limit

#[tokio::test]
async fn sigterm_mid_batch_flushes_results_exits_143_and_resume_finishes_the_rest() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_millis(300)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("t", 20));
    let all: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();

    let mut child = spawn(
        &env,
        &base_url(&server),
        &[
            "--jobs",
            "jobs.jsonl",
            "--output",
            "results.jsonl",
            "--concurrency",
            "2",
            "--shutdown-grace",
            "10s",
        ],
    );
    let output = env.project_path("results.jsonl");
    child.wait_until("a first result line", Duration::from_secs(15), |_| {
        std::fs::read_to_string(&output).is_ok_and(|t| t.contains('\n'))
    });
    child.signal("TERM");
    let r = child.wait(Duration::from_secs(15));
    r.code(143)
        .stdout_empty()
        .stderr_has("SIGTERM: no new jobs")
        .stderr_has("batch: stopped by SIGTERM; run again with --resume to finish");

    let lines = file_lines(&env, "results.jsonl");
    assert!(
        !lines.is_empty() && lines.len() < 20,
        "{} lines after SIGTERM\n{r}",
        lines.len()
    );
    for line in &lines {
        assert_eq!(
            line["is_error"], false,
            "in-flight jobs finish within the grace: {line}"
        );
    }
    let finished = lines.len();
    assert_eq!(
        request_count(&server).await,
        finished,
        "every request sent before the signal has its line"
    );
    by_id(&lines);

    let r = run_jobs(
        &env,
        &server,
        &[
            "--output",
            "results.jsonl",
            "--resume",
            "--concurrency",
            "20",
        ],
    );
    r.code(0).stdout_empty().stderr_has(&format!(
        "{} succeeded, 0 failed (0 temporary), 0 retried, {finished} skipped (resume)",
        20 - finished
    ));
    let lines = file_lines(&env, "results.jsonl");
    by_id(&lines);
    assert_eq!(
        sorted(&ids(&lines)),
        sorted(&all),
        "every job exactly once after the resume"
    );
    assert_eq!(
        request_count(&server).await,
        20,
        "no job was sent twice across the two runs"
    );
}

#[tokio::test]
async fn sigint_cancels_in_flight_jobs_after_the_shutdown_grace_and_exits_130() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_secs(20)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("g", 4));

    let child = spawn(
        &env,
        &base_url(&server),
        &[
            "--jobs",
            "jobs.jsonl",
            "--output",
            "results.jsonl",
            "--concurrency",
            "2",
            "--shutdown-grace",
            "200ms",
        ],
    );
    wait_for_requests(&server, 2).await;
    child.signal("INT");
    // The answers would take 20 s: ending well before proves the grace cancelled them.
    let r = child.wait(Duration::from_secs(10));
    r.code(130)
        .stdout_empty()
        .stderr_has("batch: 4 jobs: 0 succeeded, 0 failed (0 temporary), 0 retried, 0 skipped (resume), 4 not run")
        .stderr_has("batch: stopped by SIGINT");
    assert_eq!(
        env.read_project("results.jsonl"),
        "",
        "a cancelled job writes no line"
    );
    assert_eq!(
        request_count(&server).await,
        2,
        "no job started after SIGINT"
    );
}

#[tokio::test]
async fn a_second_signal_cancels_in_flight_jobs_at_once() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_secs(20)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("s", 3));

    let mut child = spawn(
        &env,
        &base_url(&server),
        &[
            "--jobs",
            "jobs.jsonl",
            "--output",
            "results.jsonl",
            "--concurrency",
            "2",
            "--shutdown-grace",
            "60s",
        ],
    );
    wait_for_requests(&server, 2).await;
    child.signal("TERM");
    child.wait_until(
        "the first SIGTERM to be acknowledged",
        Duration::from_secs(10),
        |c| c.stderr_now().contains("SIGTERM: no new jobs"),
    );
    child.signal("TERM");
    // Neither the 60 s grace nor the 20 s answers are waited for.
    let r = child.wait(Duration::from_secs(10));
    r.code(143)
        .stdout_empty()
        .stderr_has("batch: stopped by SIGTERM")
        .stderr_has("3 not run");
    assert_eq!(env.read_project("results.jsonl"), "");
}

#[tokio::test]
async fn max_wall_time_exits_55_and_keeps_the_finished_lines() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_millis(300)).await;
    env.write_project("jobs.jsonl", &numbered_jobs("m", 10));

    let r = run_jobs(
        &env,
        &server,
        &[
            "--output",
            "results.jsonl",
            "--concurrency",
            "2",
            "--max-wall-time",
            "1s",
        ],
    );
    r.code(55)
        .stdout_empty()
        .stderr_has("--max-wall-time reached")
        .stderr_has("batch: stopped at --max-wall-time; run again with --resume to finish");
    let lines = file_lines(&env, "results.jsonl");
    let finished = lines.len();
    assert!((1..10).contains(&finished), "{finished} lines\n{r}");
    for line in &lines {
        assert_eq!(
            line["is_error"], false,
            "cancelled jobs write no line: {line}"
        );
    }
    by_id(&lines);
    r.stderr_has(&format!(
        "batch: 10 jobs: {finished} succeeded, 0 failed (0 temporary), 0 retried, 0 skipped (resume), {} not run",
        10 - finished
    ));
}

// ---------------------------------------------------------------------------------------------
// Output shapes, summary, progress, secrecy

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
async fn every_shipped_fixture_job_file_runs_to_one_success_line_per_job() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for name in ["jobs.yaml", "jobs.json", "jobs.jsonl", "openai-batch.jsonl"] {
        let env = TestEnv::new();
        let server = echo_server(Duration::ZERO).await;
        let file = fixtures.join(name);
        let r = run(env.cmd_with(&base_url(&server), KEY).args([
            "--jobs",
            file.to_str().expect("a UTF-8 path"),
            "--output",
            "out.jsonl",
            "--quiet",
        ]));
        r.code(0).stdout_empty();
        let lines = file_lines(&env, "out.jsonl");
        assert!(!lines.is_empty(), "{name}: no result lines");
        assert_eq!(
            lines.len(),
            request_bodies(&server).await.len(),
            "{name}: one line per request"
        );
        for line in &lines {
            assert_eq!(line["is_error"], false, "{name}: {line}");
        }
        let unique: std::collections::HashSet<_> = ids(&lines).into_iter().collect();
        assert_eq!(unique.len(), lines.len(), "{name}: ids are unique");
    }
}

#[tokio::test]
async fn resume_tolerates_a_torn_line_cut_inside_a_utf8_character() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("jobs.jsonl", &numbered_jobs("u", 2));
    let first = run_jobs(&env, &server, &["--output", "results.jsonl"]);
    first.code(0);
    // Keep u0's line, then half of a line whose cut falls inside `世` (3 bytes in UTF-8).
    let u0 = by_id(&file_lines(&env, "results.jsonl"))["u0"].to_string();
    let mut bytes = format!("{u0}\n").into_bytes();
    bytes.extend_from_slice(b"{\"id\":\"u1\",\"result\":\"");
    bytes.extend_from_slice(&"世".as_bytes()[..2]);
    std::fs::write(env.project_path("results.jsonl"), &bytes).expect("write the torn file");

    let r = run_jobs(&env, &server, &["--output", "results.jsonl", "--resume"]);
    r.code(0).stderr_has(
        "batch: 2 jobs: 1 succeeded, 0 failed (0 temporary), 0 retried, 1 skipped (resume)",
    );
    let lines = file_lines(&env, "results.jsonl");
    assert_eq!(sorted(&ids(&lines)), sorted(&["u0", "u1"]));
}

#[tokio::test]
async fn a_custom_id_without_a_body_names_the_job_and_resume_finds_it() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "jobs.jsonl",
        &jsonl(&[
            json!({"custom_id": "c0", "prompt": "first"}),
            json!({"custom_id": "c1", "id": "i1", "prompt": "second"}),
        ]),
    );
    run_jobs(&env, &server, &["--output", "results.jsonl"]).code(0);
    let lines = file_lines(&env, "results.jsonl");
    assert_eq!(
        sorted(&ids(&lines)),
        sorted(&["c0", "i1"]),
        "`id` wins over `custom_id`"
    );
    for body in request_bodies(&server).await {
        assert!(
            body.get("custom_id").is_none(),
            "not sent as a request field: {body}"
        );
    }

    let again = run_jobs(&env, &server, &["--output", "results.jsonl", "--resume"]);
    again.code(0).stderr_has("2 skipped (resume)");
    assert_eq!(
        file_lines(&env, "results.jsonl").len(),
        2,
        "no duplicate lines"
    );
    assert_eq!(request_bodies(&server).await.len(), 2, "nothing sent again");
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
