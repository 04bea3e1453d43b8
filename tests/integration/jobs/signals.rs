//! Signals and the wall-time limit: results flushed, the in-flight jobs cancelled after the
//! shutdown grace (at once on a second signal), and the exit codes 143, 130 and 55.

use std::time::Duration;

use super::{numbered_jobs, request_count, run_jobs, wait_for_requests};
use crate::batch_support::{by_id, echo_server, file_lines, ids, sorted, spawn};
use crate::common::{TestEnv, base_url};

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
