//! Qwen Code's hermetic-run flags (issue 24, point 3): `--json-file`/`--json-fd` (the JSON events
//! beside stdout), `--openai-logging[-dir]` (each exchange to a file, without the key),
//! `--insecure`/`QWEN_TLS_INSECURE`, and `--proxy`.

use std::process::Stdio;

use serde_json::Value;

use crate::common::{
    KEY, RUN_BOUND, Sse, TestEnv, error_response, json_lines, run, server_answering, server_with,
    wait_bounded,
};
use crate::hostile_server::{replying, sse_reply, tls_server};

fn kinds(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let sub = l["subtype"]
                .as_str()
                .or_else(|| l["event"]["type"].as_str())
                .unwrap_or("");
            format!("{}/{sub}", l["type"].as_str().unwrap_or("?"))
        })
        .collect()
}

// ---- --json-file / --json-fd ---------------------------------------------------------------

#[tokio::test]
async fn json_file_gets_the_stream_json_events_while_stdout_stays_text() {
    let env = TestEnv::new();
    let server = server_answering(&["Hel", "lo"]).await;
    std::fs::write(env.project_path("events.jsonl"), "old events\n").expect("write");
    run(env
        .cmd_for(&server)
        .args(["--json-file", "events.jsonl", "hi"]))
    .code(0)
    .stdout_is("Hello\n")
    .stderr_empty();
    let lines = json_lines(&env.read_project("events.jsonl"), "events");
    assert_eq!(
        kinds(&lines),
        [
            "system/session_start",
            "system/init",
            "stream_event/message_start",
            "stream_event/content_block_start",
            "stream_event/content_block_delta",
            "stream_event/content_block_delta",
            "stream_event/content_block_stop",
            "assistant/",
            "stream_event/message_stop",
            "result/success",
        ]
    );
    let start = &lines[0];
    assert_eq!(start["data"]["protocol_version"], 2);
    assert_eq!(start["data"]["session_id"], lines[1]["session_id"]);
    assert_eq!(lines[4]["event"]["delta"]["text"], "Hel");
    assert_eq!(lines[9]["result"], "Hello");
}

#[tokio::test]
async fn json_file_beside_json_output_and_a_failure_still_ends_with_the_result() {
    let env = TestEnv::new();
    let server = server_with(error_response(400, "bad request"), 1).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json-file", "ev.jsonl", "-o", "json", "hi"]));
    r.code(1);
    assert_eq!(r.json().last().expect("a result")["is_error"], true);
    let lines = json_lines(&env.read_project("ev.jsonl"), "events");
    let last = lines.last().expect("lines");
    assert_eq!(last["type"], "result");
    assert_eq!(last["is_error"], true);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.project_path("ev.jsonl"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "a new events file is private");
}

/// `qwen --json-fd 3 ... 3>FILE` through a shell (the test cannot hand a descriptor itself).
fn with_fd(env: &TestEnv, redirect: &str, args: &str, base_url: &str) -> crate::common::Run {
    let script = format!("exec \"$0\" {args} {redirect}");
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_qwen"))
        .env_clear()
        .env("HOME", &env.home)
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url)
        .current_dir(&env.project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    wait_bounded(child, RUN_BOUND)
}

#[tokio::test]
async fn json_fd_writes_the_events_to_an_inherited_descriptor() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    let url = crate::common::base_url(&server);
    with_fd(&env, "3>fd.jsonl", "--json-fd 3 hi", &url)
        .code(0)
        .stdout_is("ok\n");
    let lines = json_lines(&env.read_project("fd.jsonl"), "events");
    assert_eq!(lines[0]["subtype"], "session_start");
    assert_eq!(lines.last().expect("lines")["result"], "ok");
}

#[tokio::test]
async fn bad_json_destinations_are_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    let server = server_with(Sse::answer(&["ok"]).respond(), 0).await;
    let url = crate::common::base_url(&server);
    for (fd, why) in [
        ("0", "standard streams"),
        ("1", "standard streams"),
        ("2", "standard streams"),
        ("-4", "not a file descriptor"),
    ] {
        run(env
            .cmd_for(&server)
            .arg(format!("--json-fd={fd}"))
            .arg("hi"))
        .code(2)
        .stderr_has(why);
    }
    // (Closed by the shell: a test runner may hand its children descriptors of its own.)
    with_fd(&env, "9>&-", "--json-fd 9 hi", &url)
        .code(42)
        .stderr_has("--json-fd 9: the descriptor is not open");
    std::fs::write(env.project_path("in.txt"), "x").expect("write");
    with_fd(&env, "3<in.txt", "--json-fd 3 hi", &url)
        .code(42)
        .stderr_has("not open for writing");
    assert_eq!(env.read_project("in.txt"), "x");
    run(env
        .cmd_for(&server)
        .args(["--json-fd", "3", "--json-file", "a", "hi"]))
    .code(2);
    // A FIFO would block the open: refused at once. /proc and /dev are never written.
    let fifo = env.project_path("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    for (path, says) in [
        ("fifo", "not a regular file"),
        ("/proc/self/fd/1", "/proc"),
        ("/dev/null", "/dev"),
    ] {
        run(env.cmd_for(&server).args(["--json-file", path, "hi"]))
            .code(42)
            .stderr_has(says);
    }
    // A link in the workspace may not lead out of it; one file may not be two outputs.
    std::os::unix::fs::symlink(env.root.join("outside.jsonl"), env.project_path("out"))
        .expect("symlink");
    run(env.cmd_for(&server).args(["--json-file", "out", "hi"]))
        .code(42)
        .stderr_has("leads out of the workspace");
    assert!(!env.root.join("outside.jsonl").exists());
    run(env
        .cmd_for(&server)
        .args(["--json-file", "r.txt", "--result-file", "r.txt", "hi"]))
    .code(2);
    // A batch writes JSON lines already; so does --input-format stream-json.
    env.write_project("jobs.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.jsonl", "--json-file", "e.jsonl"]))
    .code(2)
    .stderr_has("a batch writes JSON lines already");
}

// ---- --openai-logging ----------------------------------------------------------------------

fn log_files(dir: &std::path::Path) -> Vec<Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("the log directory")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                name.starts_with("openai-")
                    && p.extension().and_then(|e| e.to_str()) == Some("json"),
                "{name}"
            );
            let text = std::fs::read_to_string(p).expect("read log");
            assert!(!text.contains(KEY), "the key in {name}:\n{text}");
            assert!(!text.contains("hdr-secret-value-42"), "a header in {name}");
            serde_json::from_str(&text).expect("a JSON log")
        })
        .collect()
}

#[tokio::test]
async fn openai_logging_writes_each_exchange_without_the_key_or_credential_headers() {
    let env = TestEnv::new();
    let server = server_answering(&["logged"]).await;
    let prompt = format!("my key is {KEY} and my token hdr-secret-value-42");
    run(env.cmd_for(&server).args([
        "--openai-logging",
        "-H",
        "X-Api-Token: hdr-secret-value-42",
        &prompt,
    ]))
    .code(0)
    .stdout_is("logged\n");
    let logs = log_files(&env.project_path("logs/openai"));
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log["status"], 200);
    assert_eq!(log["request"]["model"], "gpt-4o");
    assert!(
        log["request"]["messages"][0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("[REDACTED]")),
        "{log}"
    );
    assert_eq!(
        log["response"]["choices"][0]["message"]["content"],
        "logged"
    );
    assert_eq!(log["response"]["object"], "chat.completion");
    assert!(log["error"].is_null());
    assert!(log["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test]
async fn openai_logging_logs_failed_attempts_and_honours_its_directory() {
    let env = TestEnv::new();
    let server = server_with(error_response(500, "boom"), 2).await;
    run(env.cmd_for(&server).args([
        "--openai-logging",
        "--openai-logging-dir",
        "~/qlogs",
        "--retries",
        "1",
        "--retry-base-delay",
        "0",
        "hi",
    ]))
    .code(75);
    let logs = log_files(&env.home.join("qlogs"));
    assert_eq!(logs.len(), 2);
    for log in &logs {
        assert_eq!(log["status"], 500);
        assert!(log["response"].is_null());
        assert!(
            log["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("boom"))
        );
    }
    assert!(!env.project_path("logs").exists());
    // The directory alone would be silently ignored: refused.
    run(env
        .cmd_for(&server)
        .args(["--openai-logging-dir", "logs", "hi"]))
    .code(2);
}

// ---- --insecure ----------------------------------------------------------------------------

#[test]
fn insecure_skips_certificate_verification_with_a_warning_every_run() {
    let env = TestEnv::new();
    let (server, _pem) = tls_server();
    let url = format!("https://{}/v1", server.addr);
    run(env.cmd_with(&url, KEY).args(["--insecure", "hi"]))
        .code(0)
        .stdout_is("secure\n")
        .stderr_has("warning: --insecure")
        .stderr_has("not verified");
    run(env
        .cmd_with(&url, KEY)
        .env("QWEN_TLS_INSECURE", "1")
        .arg("hi"))
    .code(0)
    .stdout_is("secure\n")
    .stderr_has("warning: --insecure");
    // Without it the certificate is refused, as before; a typo in the variable is no switch.
    run(env.cmd_with(&url, KEY).args(["--retries", "0", "hi"])).code(52);
    run(env
        .cmd_with(&url, KEY)
        .env("QWEN_TLS_INSECURE", "yes please")
        .arg("hi"))
    .code(52)
    .stderr_has("QWEN_TLS_INSECURE");
    // A project's .env cannot turn verification off.
    env.write_project(".env", "QWEN_TLS_INSECURE=1\n");
    run(env.cmd_with(&url, KEY).args(["--retries", "0", "hi"])).code(52);
}

#[test]
fn insecure_is_refused_with_a_key_over_plain_http_to_a_remote_host() {
    let env = TestEnv::new();
    let proxy = replying(sse_reply("never"));
    run(env.cmd_with("http://api.example.invalid/v1", KEY).args([
        "--insecure",
        "--proxy",
        &format!("http://{}", proxy.addr),
        "hi",
    ]))
    .code(2)
    .stderr_has("plain http")
    .stdout_empty();
    assert_eq!(proxy.connections(), 0);
}

// ---- --proxy -------------------------------------------------------------------------------

#[test]
fn proxy_flag_wins_over_the_environment_and_its_credentials_are_never_shown() {
    let env = TestEnv::new();
    let proxy = replying(sse_reply("proxied"));
    let unused = replying(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    let r = run(env
        .cmd_with("http://api.example.invalid/v1", KEY)
        .env("HTTP_PROXY", format!("http://{}", unused.addr))
        .env("ALL_PROXY", format!("http://{}", unused.addr))
        .args([
            "--debug",
            "--proxy",
            &format!("http://user:pw-secret@{}", proxy.addr),
            "hi",
        ]));
    r.code(0)
        .stdout_is("proxied\n")
        .stderr_has(&format!("through the proxy `http://***@{}", proxy.addr))
        .stderr_lacks("pw-secret");
    assert_eq!(proxy.connections(), 1);
    assert_eq!(unused.connections(), 0);
}

#[tokio::test]
async fn proxy_is_never_used_for_loopback_and_a_bad_url_is_a_usage_error() {
    let env = TestEnv::new();
    let server = server_answering(&["direct"]).await;
    let proxy = replying(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    run(env
        .cmd_for(&server)
        .args(["--proxy", &format!("http://{}", proxy.addr), "hi"]))
    .code(0)
    .stdout_is("direct\n");
    assert_eq!(proxy.connections(), 0);
    for bad in [
        "not a url",
        "socks5://u:pw-secret@h:1",
        "ftp://h",
        "http://",
    ] {
        run(env.cmd_for(&server).args(["--proxy", bad, "hi"]))
            .code(2)
            .stderr_has("is not a proxy URL")
            .stderr_lacks("pw-secret");
    }
}
