//! Inside GitHub Actions (`GITHUB_ACTIONS=true`): the key is masked before anything else is printed,
//! failures become `::error::` annotations, and a Markdown summary lands in `$GITHUB_STEP_SUMMARY`.

use serde_json::json;
use wiremock::matchers::body_string_contains;

use crate::batch_support::jsonl;
use crate::common::{KEY, TestEnv, chat, error_response, run, server_answering};

/// `cmd_for` plus the variables the Actions runner sets, with the summary in a temp file.
fn in_actions(
    env: &TestEnv,
    server: &wiremock::MockServer,
) -> (assert_cmd::Command, std::path::PathBuf) {
    let summary = env.root.join("step-summary.md");
    let mut cmd = env.cmd_for(server);
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("CI", "true");
    (cmd, summary)
}

#[tokio::test]
async fn single_run_masks_the_key_first_and_writes_a_step_summary() {
    let env = TestEnv::new();
    let server = server_answering(&["Hello ", "Actions"]).await;
    let (mut cmd, summary) = in_actions(&env, &server);
    let r = run(cmd.args(["--json", "hi"]));
    r.code(0);
    let first_line = r.stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first_line,
        format!("::add-mask::{KEY}"),
        "stderr:\n{}",
        r.stderr
    );
    assert!(!r.stdout.contains(KEY), "stdout has the key");
    assert!(
        !r.stdout.contains("::"),
        "workflow commands stay off stdout: {}",
        r.stdout
    );
    let md = std::fs::read_to_string(&summary).expect("a step summary");
    assert!(md.contains("gpt-4o"), "{md}");
    assert!(md.contains("<details>"), "{md}");
    assert!(md.contains("Hello Actions"), "{md}");
    assert!(md.contains("success"), "{md}");
    assert!(!md.contains(KEY));
}

#[tokio::test]
async fn single_run_failure_is_an_error_annotation_and_a_failed_summary() {
    let env = TestEnv::new();
    let server = wiremock::MockServer::start().await;
    chat()
        .respond_with(error_response(400, "model `nope` does not exist"))
        .mount(&server)
        .await;
    let (mut cmd, summary) = in_actions(&env, &server);
    let r = run(cmd.args(["hi"]));
    r.code(1).stdout_empty();
    let annotation = r
        .stderr
        .lines()
        .find(|l| l.starts_with("::error"))
        .unwrap_or_else(|| panic!("no ::error:: line in:\n{}", r.stderr));
    assert!(annotation.contains("does not exist"), "{annotation}");
    let md = std::fs::read_to_string(&summary).expect("a step summary");
    assert!(md.contains("failed"), "{md}");
    assert!(md.contains("does not exist"), "{md}");
}

#[tokio::test]
async fn outside_actions_there_are_no_workflow_commands() {
    let env = TestEnv::new();
    let server = server_answering(&["plain"]).await;
    let summary = env.root.join("step-summary.md");
    let r = run(env
        .cmd_for(&server)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["hi"]));
    r.code(0).stdout_is("plain\n").stderr_empty();
    assert!(!summary.exists(), "no summary without GITHUB_ACTIONS=true");
}

#[tokio::test]
async fn batch_annotates_each_failed_job_and_summarises_the_run() {
    let env = TestEnv::new();
    let server = wiremock::MockServer::start().await;
    chat()
        .and(body_string_contains("bad prompt"))
        .respond_with(error_response(400, "refused"))
        .mount(&server)
        .await;
    chat()
        .respond_with(crate::common::Sse::answer(&["ok"]).respond())
        .mount(&server)
        .await;
    let jobs = jsonl(&[
        json!({"id": "good-1", "prompt": "fine"}),
        json!({"id": "bad-1", "prompt": "bad prompt one"}),
        json!({"id": "bad-2", "prompt": "bad prompt two"}),
    ]);
    env.write_project("jobs.jsonl", &jobs);
    let (mut cmd, summary) = in_actions(&env, &server);
    let r = run(cmd.args(["--jobs", "jobs.jsonl", "--output", "out.jsonl", "--quiet"]));
    r.code(1).stdout_empty();
    assert!(
        r.stderr.starts_with(&format!("::add-mask::{KEY}\n")),
        "{}",
        r.stderr
    );
    let annotations: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(annotations.len(), 2, "{}", r.stderr);
    assert!(
        annotations.iter().any(|a| a.contains("bad-1")),
        "{annotations:?}"
    );
    assert!(
        annotations.iter().any(|a| a.contains("bad-2")),
        "{annotations:?}"
    );
    let md = std::fs::read_to_string(&summary).expect("a step summary");
    for needle in ["bad-1", "bad-2", "refused"] {
        assert!(md.contains(needle), "`{needle}` missing from:\n{md}");
    }
    assert!(!md.contains("good-1"), "only failures are listed:\n{md}");
}
