//! Per-job fields beat the flags, explicit flags beat the file's defaults, and the defaults cannot
//! hold what belongs to one job.

use std::time::Duration;

use serde_json::json;

use super::{assert_success_line, run_jobs};
use crate::batch_support::{bodies_by_prompt, by_id, echo_server, jsonl};
use crate::common::{TestEnv, request_bodies, run};

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
