//! Issue 9: a hostile repository or disk gets a clear error, nothing leaks, nothing is destroyed.
//! Job-file paths, outputs that would destroy inputs, write errors, signals while reading input,
//! durations, small parsing traps, and the `.env` that git would publish.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::MockServer;

use crate::batch_support::{echo_server, file_lines, ids, jsonl, sorted};
use crate::common::{KEY, TestEnv, base_url, request_bodies, run};

async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .map_or(0, |requests| requests.len())
}

// ---------------------------------------------------------------------------------------------
// 2. A job file reads only what it should

#[tokio::test]
async fn a_job_file_cannot_send_a_file_outside_its_directory() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("outside.txt", "SECRET-OUTSIDE");
    env.write_project("jobs/inside.txt", "inside prompt");
    std::os::unix::fs::symlink(
        env.project_path("outside.txt"),
        env.project_path("jobs/link.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink("/proc/self/environ", env.project_path("jobs/environ"))
        .expect("symlink");
    let cases = [
        ("/proc/self/environ", "must be a path inside"),
        ("../outside.txt", "must be a path inside"),
        ("link.txt", "leads outside"),
        ("environ", "leads outside"),
    ];
    for (path, why) in cases {
        env.write_project(
            "jobs/j.jsonl",
            &jsonl(&[
                json!({"id": "fine", "prompt_file": "inside.txt"}),
                json!({"id": "evil", "prompt_file": path}),
            ]),
        );
        let r = run(env.cmd_for(&server).args([
            "--jobs",
            "jobs/j.jsonl",
            "--output",
            "o.jsonl",
            "--overwrite",
        ]));
        r.code(42)
            .stdout_empty()
            .stderr_has(&format!("jobs/j.jsonl: line 2: prompt_file `{path}` {why}"))
            .stderr_has("--allow-outside-paths")
            .stderr_lacks(KEY);
        assert!(!env.project_path("o.jsonl").exists(), "{path}: no output");
    }
    // The same door for `json_schema` paths, in a job and in a file's defaults.
    env.write_project("schema.json", r#"{"type": "string"}"#);
    env.write_project(
        "jobs/s.yaml",
        "defaults:\n  json_schema: ../schema.json\njobs:\n  - prompt: hi\n",
    );
    run(env.cmd_for(&server).args(["--jobs", "jobs/s.yaml"]))
        .code(42)
        .stderr_has("`defaults.json_schema`: json_schema `../schema.json` must be a path inside");
    assert_eq!(request_count(&server).await, 0, "nothing may be sent");
}

#[tokio::test]
async fn allow_outside_paths_lets_a_user_name_any_file() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("outside.txt", "from outside");
    env.write_project(
        "jobs/j.jsonl",
        &jsonl(&[json!({"id": "a", "prompt_file": "../outside.txt"})]),
    );
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs/j.jsonl", "--allow-outside-paths"]));
    r.code(0);
    assert_eq!(r.stdout_lines()[0]["result"], "from outside");
    // Without --jobs the flag is a usage error, like every batch-only flag.
    run(env.cmd_for(&server).args(["--allow-outside-paths", "hi"]))
        .code(2)
        .stderr_has("--allow-outside-paths only applies to a batch");
}

#[tokio::test]
async fn a_prompt_file_that_claims_to_be_empty_is_still_bounded() {
    // `/proc` files report a size of 0: the size check alone let them through unbounded.
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "j.jsonl",
        &jsonl(&[json!({"id": "a", "prompt_file": "/proc/self/environ"})]),
    );
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "j.jsonl",
        "--allow-outside-paths",
        "--max-input-bytes",
        "8",
    ]));
    r.code(42)
        .stderr_has("prompt_file `/proc/self/environ` is larger than 8 bytes");
    assert_eq!(request_count(&server).await, 0);
}
