//! `--resume` and clobbering: successes kept, failures and torn lines run again, shards sharing one
//! output, and an existing output refused unless resumed or overwritten.

use std::time::Duration;

use serde_json::{Value, json};

use super::{assert_success_line, numbered_jobs, request_count, run_jobs};
use crate::batch_support::{bodies_by_prompt, by_id, echo_server, file_lines, ids, jsonl, sorted};
use crate::common::{TestEnv, request_bodies};

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
