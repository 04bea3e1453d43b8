//! No job lost whatever the rate-limited server says (x-ratelimit-* headers, Retry-After only, a
//! bare 429), and quota is not rate: `insufficient_quota` is exit 1 without retries.

use serde_json::Value;

use super::{LimitedServer, Mode, Style, all_succeeded, batch, write_jobs};
use crate::batch_support::file_lines;
use crate::common::{TestEnv, run};

/// A batch against each kind of limited server loses no job, with no retry budget at all
/// (`--retries 0`): a 429 for rate is not a job's failure.
fn no_job_lost(style: Style) {
    let env = TestEnv::new();
    write_jobs(&env, 24);
    let server = LimitedServer::start(Mode::Bucket {
        rate: 40.0,
        burst: 4.0,
        style,
    });
    // Under GitHub Actions, so that the step summary is written too.
    let step_summary = env.root.join("step-summary.md");
    let out = run(env
        .cmd_with(&server.base_url, crate::common::KEY)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl", "--quiet"])
        .args([
            "--concurrency",
            "8",
            "--retries",
            "0",
            "--retry-base-delay",
            "0",
            "--summary",
            "summary.json",
        ]));
    out.code(0);
    all_succeeded(&env, 24);
    let markdown = std::fs::read_to_string(&step_summary).expect("a step summary");
    assert!(
        markdown.contains("rate limited (429)")
            && markdown.contains(&format!(" | {} |\n", server.rejected())),
        "the step summary counts every 429 ({}): {markdown}",
        server.rejected()
    );
    let summary: Value =
        serde_json::from_str(&env.read_project("summary.json")).expect("summary JSON");
    assert_eq!(summary["succeeded"], 24);
    assert_eq!(
        summary["rate_limited"].as_u64(),
        Some(server.rejected() as u64),
        "the summary counts every 429: {summary}"
    );
    assert!(summary["effective_requests_per_sec"].as_f64().is_some());
}

#[test]
fn no_job_lost_with_openai_ratelimit_headers() {
    no_job_lost(Style::Headers);
}

#[test]
fn no_job_lost_with_retry_after_only() {
    no_job_lost(Style::RetryAfter);
}

#[test]
fn no_job_lost_with_bare_429() {
    no_job_lost(Style::Bare);
}

#[test]
fn insufficient_quota_stops_the_batch_with_exit_1_and_no_retries() {
    let env = TestEnv::new();
    write_jobs(&env, 10);
    let server = LimitedServer::start(Mode::Quota);
    let out = batch(&env, &server, &["--concurrency", "4", "--retries", "5"]);
    out.code(1)
        .stderr_has("billing")
        .stderr_has("insufficient quota");
    // The batch starts with --concurrency 4 requests at most; none is retried, no other job is sent.
    assert!(server.requests() <= 4, "{} requests", server.requests());
    // The refused job has its line; the others are not run, or refused without a request.
    let lines = file_lines(&env, "out.jsonl");
    for line in &lines {
        assert_eq!(line["error"]["type"], "insufficient_quota", "{line}");
    }
}

#[test]
fn insufficient_quota_in_a_single_run_is_exit_1_without_retries() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::Quota);
    let out =
        run(env
            .cmd_with(&server.base_url, crate::common::KEY)
            .args(["--retries", "3", "hello"]));
    out.code(1).stderr_has("billing");
    assert_eq!(server.requests(), 1);
}
