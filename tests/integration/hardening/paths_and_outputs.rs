//! A job file reads only what it should, outputs never destroy inputs, and write errors are
//! failures.

use std::time::Duration;

use serde_json::json;

use super::request_count;
use crate::batch_support::{echo_server, file_lines, ids, jsonl, sorted};
use crate::common::{KEY, TestEnv, base_url, request_bodies, run};

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
    // A single run takes it too: a --prompt-file that links out of the workspace is refused
    // without it and read with it.
    std::fs::write(env.root.join("beside.txt"), "from beside").expect("write");
    std::os::unix::fs::symlink(env.root.join("beside.txt"), env.project_path("link.txt"))
        .expect("symlink");
    run(env.cmd_for(&server).args(["--prompt-file", "link.txt"])).code(42);
    let r = run(env
        .cmd_for(&server)
        .args(["--prompt-file", "link.txt", "--allow-outside-paths"]));
    r.code(0);
    assert!(r.stdout.contains("from beside"), "{}", r.stdout);
}

#[tokio::test]
async fn a_kernel_file_is_never_read_even_with_allow_outside_paths() {
    // `/proc` files report a size of 0 (the size check alone let them through unbounded) and hold
    // the process's secrets: refused wherever they are named (issue 19 H4); every read is bounded
    // whatever size a file claims.
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
        .stderr_has("prompt_file `/proc/self/environ` is a kernel file")
        .stderr_lacks(KEY);
    assert_eq!(request_count(&server).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Outputs never destroy inputs

#[tokio::test]
async fn an_output_that_is_an_input_or_another_output_is_refused_before_anything_is_touched() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let jobs = jsonl(&[
        json!({"id": "a", "prompt": "one"}),
        json!({"id": "b", "prompt": "two"}),
    ]);
    env.write_project("j.jsonl", &jobs);
    env.write_project("done.jsonl", "{\"keep\": true}\n");
    env.write_project("schema.json", r#"{"type": "string"}"#);
    std::os::unix::fs::symlink(env.project_path("j.jsonl"), env.project_path("link.jsonl"))
        .expect("symlink");
    std::fs::hard_link(env.project_path("j.jsonl"), env.project_path("hard.jsonl"))
        .expect("hard link");
    let cases: [&[&str]; 7] = [
        &["--jobs", "j.jsonl", "--output", "j.jsonl"],
        &["--jobs", "j.jsonl", "--output", "./link.jsonl"],
        &["--jobs", "j.jsonl", "--output", "hard.jsonl", "--overwrite"],
        &["--jobs", "j.jsonl", "--summary", "j.jsonl"],
        &[
            "--jobs",
            "j.jsonl",
            "--output",
            "done.jsonl",
            "--summary",
            "done.jsonl",
            "--resume",
        ],
        &[
            "--jobs",
            "j.jsonl",
            "--output",
            "new.jsonl",
            "--summary",
            "./new.jsonl",
        ],
        &[
            "--jobs",
            "j.jsonl",
            "--json-schema",
            "@schema.json",
            "--summary",
            "schema.json",
        ],
    ];
    for args in cases {
        run(env.cmd_for(&server).args(args))
            .code(2)
            .stdout_empty()
            .stderr_has("name the same file")
            .stderr_has("nothing was read or written");
        assert_eq!(env.read_project("j.jsonl"), jobs, "{args:?}");
        assert_eq!(
            env.read_project("done.jsonl"),
            "{\"keep\": true}\n",
            "{args:?}"
        );
        assert_eq!(
            env.read_project("schema.json"),
            r#"{"type": "string"}"#,
            "{args:?}"
        );
        assert!(!env.project_path("new.jsonl").exists(), "{args:?}");
    }
    // A single run: --result-file must not overwrite the --json-schema file it reads.
    let r = run(env.cmd_for(&server).args([
        "--json-schema",
        "@schema.json",
        "--result-file",
        "schema.json",
        "--json",
        "hi",
    ]));
    r.code(2)
        .stderr_has("--json-schema and --result-file name the same file");
    assert_eq!(r.result()["is_error"], true);
    assert_eq!(env.read_project("schema.json"), r#"{"type": "string"}"#);
    assert_eq!(request_count(&server).await, 0, "nothing may be sent");
}

#[tokio::test]
async fn a_second_run_on_the_same_output_exits_75_naming_the_holder() {
    let env = TestEnv::new();
    let server = echo_server(Duration::from_secs(60)).await;
    env.write_project("j.jsonl", &jsonl(&[json!({"id": "a", "prompt": "one"})]));
    let mut first = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--jobs", "j.jsonl", "--output", "o.jsonl", "-q"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn the first qwen");
    for _ in 0..2000 {
        if request_count(&server).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(request_count(&server).await, 1, "the first run is sending");
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "j.jsonl", "--output", "o.jsonl", "--resume"]));
    let _ = first.kill();
    let _ = first.wait();
    r.code(75)
        .stderr_has("is being written by another qwen process")
        .stderr_has(&format!("(pid {})", first.id()));
    assert_eq!(
        request_count(&server).await,
        1,
        "the second run sent nothing"
    );
}

/// A successful result line for `id`, as a batch writes it.
fn success_line(id: &str, text: &str) -> String {
    json!({"id": id, "index": 0, "type": "result", "subtype": "success", "uuid": "u",
        "session_id": "s", "is_error": false, "duration_ms": 1, "duration_api_ms": 1,
        "num_turns": 1, "result": text,
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        "permission_denials": [], "model": "m", "attempts": 1})
    .to_string()
}

#[tokio::test]
async fn resume_keeps_one_line_per_id_its_mode_and_its_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project(
        "j.jsonl",
        &jsonl(&[
            json!({"id": "a", "prompt": "one"}),
            json!({"id": "b", "prompt": "two"}),
            json!({"id": "c", "prompt": "three"}),
        ]),
    );
    // What two torn concurrent runs left: `a` twice, `b` failed then half a line.
    let damaged = format!(
        "{}\n{}\n{{\"id\":\"b\",\"type\":\"result\",\"is_error\":true}}\n{}\n{}",
        success_line("a", "first"),
        success_line("a", "second"),
        success_line("a", "last"),
        &success_line("b", "torn")[..40]
    );
    env.write_project("real/out.jsonl", &damaged);
    std::fs::set_permissions(
        env.project_path("real/out.jsonl"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("real/out.jsonl", env.project_path("out.jsonl")).expect("symlink");
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "j.jsonl",
        "--output",
        "out.jsonl",
        "--resume",
        "-q",
    ]));
    r.code(0);
    let lines = file_lines(&env, "real/out.jsonl");
    assert_eq!(sorted(&ids(&lines)), ["a", "b", "c"], "one line per id");
    let a = lines.iter().find(|l| l["id"] == "a").expect("a");
    assert_eq!(a["result"], "last", "the last successful line wins");
    assert!(
        std::fs::symlink_metadata(env.project_path("out.jsonl"))
            .expect("link")
            .file_type()
            .is_symlink(),
        "the symlink stays a symlink"
    );
    let mode = std::fs::metadata(env.project_path("real/out.jsonl"))
        .expect("target")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "the mode is kept");
    assert_eq!(request_bodies(&server).await.len(), 2, "b and c ran");
}

// ---------------------------------------------------------------------------------------------
// 4. Write errors are failures

/// Run with stdout on `/dev/full` (every write fails with ENOSPC).
fn run_to_dev_full(env: &TestEnv, base: &str, args: &[&str]) -> crate::common::Run {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let output = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .output()
        .expect("run qwen");
    crate::common::Run {
        code: output.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn a_stdout_that_cannot_be_written_fails_every_command() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let base = base_url(&server);
    env.write_project("j.jsonl", &jsonl(&[json!({"id": "a", "prompt": "one"})]));
    let cases: [&[&str]; 9] = [
        &["hi"],
        &["--json", "hi"],
        &["-o", "stream-json", "hi"],
        &["-o", "stream-json", "--include-partial-messages", "hi"],
        &["--json-schema", r#"{"type": "string"}"#, r#""hi""#],
        &["auth", "status"],
        &["auth", "status", "--json"],
        &["completions", "bash"],
        &["man"],
    ];
    for args in cases {
        run_to_dev_full(&env, &base, args)
            .code(1)
            .stderr_has("cannot write to standard output");
    }
    // Files on a full disk: the summary, the result file, the results file.
    for args in [
        &["--jobs", "j.jsonl", "--summary", "/dev/full"][..],
        &["--jobs", "j.jsonl", "--output", "/dev/full", "--overwrite"],
        &["--result-file", "/dev/full", "hi"],
    ] {
        let r = run(env.cmd_for(&server).args(args));
        r.code(1);
        assert!(
            r.stderr.contains("No space left on device") || r.stderr.contains("not a regular file"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // A batch to a full stdout: the line that was not written is not counted as succeeded.
    run_to_dev_full(&env, &base, &["--jobs", "j.jsonl"])
        .code(1)
        .stderr_has("cannot write a result line to standard output")
        .stderr_has("batch: 1 jobs: 0 succeeded, 0 failed");
}
