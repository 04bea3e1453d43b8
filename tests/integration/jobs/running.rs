//! Running jobs: bounded and real concurrency, client-side request spacing, retries and failures
//! per job with their exit codes, and shards that cover the file exactly once.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::MockServer;

use super::{
    assert_error_line, assert_success_line, echo, failing, numbered_jobs, request_count, run_jobs,
    write_prompt_jobs,
};
use crate::batch_support::{HoldingServer, by_id, echo_server, file_lines, ids, jsonl, sorted};
use crate::common::{KEY, TestEnv, run};

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
