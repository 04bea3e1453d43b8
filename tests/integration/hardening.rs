//! Issue 9: a hostile repository or disk gets a clear error, nothing leaks, nothing is destroyed.
//! Job-file paths, outputs that would destroy inputs, write errors, signals while reading input,
//! durations, small parsing traps, and the `.env` that git would publish.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::time::Duration;

use serde_json::json;
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

// ---------------------------------------------------------------------------------------------
// 6. Signals, time and limits

const DURATION_FLAGS: [&str; 8] = [
    "--stdin-timeout",
    "--retry-base-delay",
    "--max-retry-wait",
    "--idle-timeout",
    "--connect-timeout",
    "--max-wall-time",
    "--progress-interval",
    "--shutdown-grace",
];

#[tokio::test]
async fn no_duration_flag_panics_on_huge_zero_or_negative_values() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("j.jsonl", &jsonl(&[json!({"id": "a", "prompt": "one"})]));
    for flag in DURATION_FLAGS {
        for (value, usage_error) in [
            ("10000000000000000000s", true),
            ("18446744073709551615", true),
            ("9999999h", true),
            ("-1s", true),
            ("NaN", true),
            ("0", false),
            ("0ms", false),
        ] {
            let arg = format!("{flag}={value}");
            let r = run(env
                .cmd_for(&server)
                .args(["--jobs", "j.jsonl", "--retries", "0", &arg])
                .write_stdin(""));
            assert_ne!(r.code, Some(101), "{arg}: panicked\n{}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{arg}\n{}", r.stderr);
            if usage_error {
                r.code(2);
            }
        }
    }
}

#[tokio::test]
async fn max_wall_time_bounds_a_single_run_against_a_trickling_server() {
    use crate::common::{Sse, chat};
    let env = TestEnv::new();
    let server = MockServer::start().await;
    // The idle timeout never fires (a byte keeps coming), but the answer never ends in time.
    chat()
        .respond_with(
            Sse::answer(&["slow"])
                .respond()
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&server)
        .await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json", "--max-wall-time", "300ms", "hi"])
        .write_stdin(""));
    r.code(55).stderr_has("--max-wall-time");
    let result = r.result();
    assert_eq!(result["is_error"], true);
    assert_eq!(result["error"]["type"], "wall_time");
}

/// Whether `pid` has a handler installed for signal number `sig` (`SigCgt` in /proc/PID/status):
/// the moment a signal is caught rather than fatal, read from the kernel, not guessed with a sleep.
fn catches(pid: u32, sig: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

fn signal_while_waiting_for_stdin(
    env: &TestEnv,
    base: &str,
    args: &[&str],
    signal: (&str, u32),
) -> crate::common::Run {
    let child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn qwen");
    let pid = child.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !catches(pid, signal.1) {
        assert!(
            std::time::Instant::now() < deadline,
            "qwen never listened for {}",
            signal.0
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args([&format!("-{}", signal.0), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // stdin stays open (held by `child`) the whole time: `sleep 100 | qwen`.
    crate::common::wait_bounded(child, Duration::from_secs(15))
}

#[tokio::test]
async fn a_signal_while_waiting_for_stdin_is_an_interrupted_run_with_its_document() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let base = base_url(&server);
    let r = signal_while_waiting_for_stdin(&env, &base, &["--json"], ("TERM", 15));
    r.code(143).stderr_has("interrupted by SIGTERM");
    assert_eq!(r.result()["error"]["type"], "interrupted");
    let r = signal_while_waiting_for_stdin(&env, &base, &["-o", "stream-json"], ("INT", 2));
    r.code(130);
    let last = r.json_lines().pop().expect("a result line");
    assert_eq!(last["error"]["type"], "interrupted");
    let r = signal_while_waiting_for_stdin(&env, &base, &["--jobs", "-"], ("TERM", 15));
    r.code(143).stderr_has("interrupted by SIGTERM");
    assert_eq!(request_count(&server).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 7. Small ones

#[tokio::test]
async fn non_finite_numbers_are_refused_on_the_command_line_and_in_yaml() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    for value in ["NaN", "nan", "inf", "-inf", "1e999"] {
        for args in [
            vec![format!("--temperature={value}"), "hi".to_owned()],
            vec![format!("--top-p={value}"), "hi".to_owned()],
            vec![
                "batch".to_owned(),
                "submit".to_owned(),
                "j.jsonl".to_owned(),
                format!("--temperature={value}"),
            ],
        ] {
            run(env.cmd_for(&server).args(&args))
                .code(2)
                .stderr_has("is not a finite number");
        }
    }
    env.write_project("j.yaml", "- id: a\n  prompt: hi\n  temperature: .nan\n");
    run(env.cmd_for(&server).args(["--jobs", "j.yaml"]))
        .code(42)
        .stderr_has("NaN or infinite");
    assert_eq!(request_count(&server).await, 0);
}

#[tokio::test]
async fn numeric_ids_are_kept_as_written_and_empty_ids_are_refused() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    // Each number is a distinct id, kept as the exact text of the file.
    let written = [
        "1",
        "1.0",
        "1.00",
        "1e2",
        "100.0",
        "12345678901234567890",
        "123456789012345678901234",
        "123456789012345678901235",
    ];
    let lines: Vec<String> = written
        .iter()
        .enumerate()
        .map(|(i, id)| format!("{{\"id\": {id}, \"prompt\": \"p{i}\"}}\n"))
        .collect();
    env.write_project("j.jsonl", &lines.concat());
    let r = run(env.cmd_for(&server).args(["--jobs", "j.jsonl"]));
    r.code(0);
    assert_eq!(sorted(&ids(&r.stdout_lines())), sorted(&written));
    // The same in a JSON document.
    let doc = format!(
        "{{\"jobs\": [{}]}}",
        written
            .iter()
            .enumerate()
            .map(|(i, id)| format!("{{\"id\": {id}, \"prompt\": \"p{i}\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    env.write_project("j.json", &doc);
    let r = run(env.cmd_for(&server).args(["--jobs", "j.json"]));
    r.code(0);
    assert_eq!(sorted(&ids(&r.stdout_lines())), sorted(&written));
    // YAML keeps no number text: a fraction must be quoted.
    env.write_project("j.yaml", "- id: 1.0\n  prompt: hi\n");
    run(env.cmd_for(&server).args(["--jobs", "j.yaml"]))
        .code(42)
        .stderr_has("is not a whole number: quote it");
    // Empty ids, whatever their name.
    for job in [
        json!({"id": "", "prompt": "hi"}),
        json!({"custom_id": "", "prompt": "hi"}),
        json!({"custom_id": " ", "method": "POST", "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": "hi"}]}}),
    ] {
        env.write_project("e.jsonl", &jsonl(std::slice::from_ref(&job)));
        run(env.cmd_for(&server).args(["--jobs", "e.jsonl"]))
            .code(42)
            .stderr_has("must be a non-empty string");
    }
}

#[tokio::test]
async fn a_byte_order_mark_starts_a_job_file_harmlessly() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("j.jsonl", "\u{feff}{\"id\": \"a\", \"prompt\": \"one\"}\n");
    env.write_project("j.json", "\u{feff}[{\"id\": \"b\", \"prompt\": \"two\"}]");
    env.write_project("j.yaml", "\u{feff}- id: c\n  prompt: three\n");
    for (file, id) in [("j.jsonl", "a"), ("j.json", "b"), ("j.yaml", "c")] {
        let r = run(env.cmd_for(&server).args(["--jobs", file]));
        r.code(0);
        assert_eq!(ids(&r.stdout_lines()), [id], "{file}");
    }
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "-"])
        .write_stdin("\u{feff}{\"id\": \"d\", \"prompt\": \"four\"}\n"));
    r.code(0);
    assert_eq!(ids(&r.stdout_lines()), ["d"]);
}

const FOREIGN: &str = "http://example.invalid/v1";

#[test]
fn qwen_trust_project_env_is_read_strictly() {
    let env = TestEnv::new();
    env.write_project(".env", &format!("OPENAI_BASE_URL={FOREIGN}\n"));
    let with = |value: &str| {
        run(env
            .cmd()
            .env("OPENAI_API_KEY", KEY)
            .env("QWEN_TRUST_PROJECT_ENV", value)
            .args(["--retries", "0", "--connect-timeout", "2s", "hi"]))
    };
    for off in ["", "0", "false", "no", "OFF"] {
        with(off)
            .code(52)
            .stderr_has("refusing to send the API key");
    }
    for bad in ["disabled", "nope", "2"] {
        with(bad)
            .code(52)
            .stderr_has(&format!("QWEN_TRUST_PROJECT_ENV=`{bad}` is neither on"));
    }
    for on in ["1", "true", "YES", "on"] {
        with(on)
            .stderr_lacks("refusing")
            .stderr_lacks("is neither on");
    }
}

#[test]
fn a_home_that_is_a_git_working_tree_is_a_project() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.project_path(".git")).expect("a .git");
    env.write_project(".qwen/.env", &format!("OPENAI_BASE_URL={FOREIGN}\n"));
    run(env
        .cmd()
        .env("HOME", &env.project)
        .env("OPENAI_API_KEY", KEY)
        .args(["--retries", "0", "--connect-timeout", "2s", "hi"]))
    .code(52)
    .stderr_has("refusing to send the API key");
    run(env
        .cmd()
        .env("HOME", &env.project)
        .env("OPENAI_API_KEY", KEY)
        .args(["auth", "status"]))
    .stdout_has("project");
}

#[tokio::test]
async fn help_followed_by_words_is_a_prompt() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    run(env
        .cmd_for(&server)
        .args(["help", "me", "write", "a", "test"]))
    .code(0)
    .stdout_is("help me write a test\n");
    run(env.cmd_for(&server).args(["help"]))
        .code(0)
        .stdout_has("Usage:");
    run(env.cmd_for(&server).args(["help", "auth"]))
        .code(0)
        .stdout_has("auth");
}

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
