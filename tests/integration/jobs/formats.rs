//! Every job file format runs: YAML with defaults and a prompt file, a JSON list, JSONL (also on
//! stdin), `OpenAI` Batch input lines, and every fixture job file the project ships.

use std::time::Duration;

use serde_json::{Value, json};

use super::{assert_success_line, request_count, run_jobs};
use crate::batch_support::{bodies_by_prompt, by_id, echo_server, file_lines, ids, jsonl};
use crate::common::{KEY, TestEnv, base_url, request_bodies, run};

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
