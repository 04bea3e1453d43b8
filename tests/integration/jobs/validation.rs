//! A job file is validated before anything is sent: a malformed line names its number, an invalid
//! file or an empty prompt file is refused and the server sees nothing.

use std::time::Duration;

use super::{request_count, run_jobs};
use crate::batch_support::echo_server;
use crate::common::{TestEnv, run};

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
