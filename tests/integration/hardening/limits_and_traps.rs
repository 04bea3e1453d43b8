//! Signals, time and limits (no duration flag panics, a trickling server is bounded, a signal while
//! reading stdin), and small parsing traps.

use std::time::Duration;

use serde_json::json;
use wiremock::MockServer;

use super::request_count;
use crate::batch_support::{echo_server, ids, jsonl, sorted};
use crate::common::{KEY, TestEnv, base_url, run};

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
