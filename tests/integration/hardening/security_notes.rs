//! The documented security notes, enforced: a `.env` key git would publish is warned about, and a
//! job cannot read what the run writes.

use std::time::Duration;

use serde_json::json;
use wiremock::MockServer;

use super::request_count;
use crate::batch_support::{echo_server, jsonl};
use crate::common::{KEY, TestEnv, base_url, run};

// ---------------------------------------------------------------------------------------------
// 8. The documented security notes, enforced

fn git(env: &TestEnv, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(&env.project)
        .env_clear()
        .env("HOME", &env.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

/// `qwen hi` and `qwen auth status --json` with PATH (for git) and a key only in `.qwen/.env`.
fn runs_with_git(env: &TestEnv, server: &MockServer) -> (crate::common::Run, serde_json::Value) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let r = run(env
        .cmd()
        .env("PATH", &path)
        .env("OPENAI_BASE_URL", base_url(server))
        .arg("hi"));
    let status = run(env
        .cmd()
        .env("PATH", &path)
        .env("OPENAI_BASE_URL", base_url(server))
        .args(["auth", "status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("auth status JSON");
    (r, doc["dotenv"]["git"].clone())
}

#[tokio::test]
async fn a_dotenv_key_that_git_would_publish_is_warned_about_and_shown() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(".qwen/.env", &format!("OPENAI_API_KEY={KEY}\n"));
    // Not a repository: nothing to say.
    let (r, git_state) = runs_with_git(&env, &server);
    r.code(0).stderr_empty();
    assert!(git_state.is_null());
    git(&env, &["init", "-q"]);
    // In a repository, not ignored.
    let (r, git_state) = runs_with_git(&env, &server);
    r.code(0)
        .stderr_has("holds a secret and is not ignored by git")
        .stderr_has("add the line `.qwen/.env` to .gitignore")
        .stderr_lacks(KEY);
    assert_eq!(r.stderr.matches("warning:").count(), 1, "warned once");
    assert_eq!(git_state["exposure"], "not_ignored");
    // Tracked, even when ignored afterwards.
    env.write_project(".gitignore", ".qwen/.env\n");
    git(&env, &["add", "-f", ".qwen/.env"]);
    let (r, git_state) = runs_with_git(&env, &server);
    r.code(0)
        .stderr_has("is tracked by git")
        .stderr_has("git rm --cached .qwen/.env");
    assert_eq!(git_state["exposure"], "tracked");
    assert_eq!(git_state["path"], ".qwen/.env");
    // Untracked and ignored: silent.
    git(&env, &["rm", "-q", "--cached", ".qwen/.env"]);
    let (r, git_state) = runs_with_git(&env, &server);
    r.code(0).stderr_empty();
    assert!(git_state.is_null());
    // A file with no secret in it is never checked.
    env.write_project(".gitignore", "");
    env.write_project(".qwen/.env", "OPENAI_MODEL=m\n");
    let r = run(env
        .cmd()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"));
    r.code(0).stderr_empty();
}

#[tokio::test]
async fn a_job_cannot_read_the_file_the_run_writes() {
    // Sibling of `--output j.jsonl`: a job whose prompt_file is the run's own --output or --summary
    // would read an emptied file (or its own results) once the run starts writing.
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("p.txt", "a prompt");
    env.write_project(
        "j.jsonl",
        &jsonl(&[json!({"id": "a", "prompt_file": "p.txt"})]),
    );
    let r =
        run(env
            .cmd_for(&server)
            .args(["--jobs", "j.jsonl", "--output", "./p.txt", "--overwrite"]));
    r.code(42)
        .stderr_has("prompt_file `p.txt` is the --output file of this run");
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "j.jsonl", "--summary", "p.txt"]));
    r.code(42)
        .stderr_has("prompt_file `p.txt` is the --summary file of this run");
    assert_eq!(env.read_project("p.txt"), "a prompt");
    assert_eq!(request_count(&server).await, 0);
}

#[tokio::test]
async fn results_on_stdout_appended_to_the_job_file_are_refused() {
    // `qwen --jobs j.jsonl >> j.jsonl`: the result lines would be read back as jobs.
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let jobs = jsonl(&[json!({"id": "a", "prompt": "one"})]);
    env.write_project("j.jsonl", &jobs);
    let append = std::fs::OpenOptions::new()
        .append(true)
        .open(env.project_path("j.jsonl"))
        .expect("open for append");
    let output = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--jobs", "j.jsonl"])
        .stdin(std::process::Stdio::null())
        .stdout(append)
        .output()
        .expect("run qwen");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--jobs and standard output name the same file")
    );
    assert_eq!(env.read_project("j.jsonl"), jobs);
    assert_eq!(request_count(&server).await, 0);
}

/// A single run never writes its answer over a file it reads: the prompt file, a `--var @file`,
/// an `--extra-body @file` (reading one file twice is fine).
#[test]
fn a_result_file_that_is_an_input_is_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    env.write_project(
        "r.prompt.yml",
        "messages:\n  - role: user\n    content: 'Review {{diff}}'\n",
    );
    env.write_project("d.txt", "the diff");
    env.write_project("eb.json", "{\"seed\": 1}");
    let cases: [&[&str]; 3] = [
        &[
            "--prompt-file",
            "r.prompt.yml",
            "--var",
            "diff=@d.txt",
            "--result-file",
            "r.prompt.yml",
        ],
        &[
            "--prompt-file",
            "r.prompt.yml",
            "--var",
            "diff=@d.txt",
            "--result-file",
            "d.txt",
        ],
        &["--extra-body", "@eb.json", "--result-file", "eb.json", "hi"],
    ];
    for args in cases {
        let r = run(env.cmd_with("http://127.0.0.1:9/v1", "sk-test").args(args));
        r.code(2).stderr_has("name the same file");
    }
    assert_eq!(
        env.read_project("r.prompt.yml"),
        "messages:\n  - role: user\n    content: 'Review {{diff}}'\n"
    );
    assert_eq!(env.read_project("d.txt"), "the diff");
    assert_eq!(env.read_project("eb.json"), "{\"seed\": 1}");
}
