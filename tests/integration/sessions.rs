//! Recorded conversations: `-c` after a first run sends both turns; `-r ID`, `--session-id`,
//! `--fork-session`, `--chat-recording=false`, `qwen sessions list`; two processes on one
//! session; no key in a session file.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    KEY, Sse, TestEnv, chat, request_bodies, run, server_answering, wait_bounded, wait_for_request,
};

fn sessions(env: &TestEnv) -> Vec<Value> {
    let out = env
        .std_cmd()
        .args(["sessions", "list", "--json"])
        .output()
        .expect("run qwen sessions list");
    assert!(out.status.success(), "{out:?}");
    crate::common::json_lines(&String::from_utf8_lossy(&out.stdout), "sessions list")
}

fn messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, c)| ((*r).to_owned(), (*c).to_owned()))
        .collect()
}

#[tokio::test]
async fn continue_sends_the_earlier_turns_and_appends_its_own() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).arg("first"))
        .code(0)
        .stdout_is("ok\n");
    run(env
        .cmd_for(&server)
        .args(["-c", "--system-prompt", "S", "follow-up"]))
    .code(0)
    .stdout_is("ok\n");
    run(env.cmd_for(&server).args(["--continue", "third"])).code(0);
    let bodies = request_bodies(&server).await;
    assert_eq!(messages(&bodies[0]), pairs(&[("user", "first")]));
    assert_eq!(
        messages(&bodies[1]),
        pairs(&[
            ("system", "S"),
            ("user", "first"),
            ("assistant", "ok"),
            ("user", "follow-up")
        ])
    );
    assert_eq!(messages(&bodies[2]).len(), 5);
    let listed = sessions(&env);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["messages"], 6);
    assert_eq!(listed[0]["first_prompt"], "first");
    // The key is never stored.
    let dir = env.home.join(".qwen/headless/sessions");
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(!text.contains(KEY), "{}", entry.display());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&entry)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{} is private", entry.display());
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn session_id_resume_and_fork() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    let id = "0d2c0e1a-8f7e-4c1b-9d2e-3b4a5c6d7e8f";
    let out = run(env
        .cmd_for(&server)
        .args(["--session-id", id, "-o", "json", "one"]));
    out.code(0);
    assert!(out.json().iter().all(|m| m["session_id"] == id));
    run(env.cmd_for(&server).args(["--session-id", id, "again"]))
        .code(42)
        .stderr_has("exists already");
    run(env
        .cmd_for(&server)
        .args(["-r", id, "--fork-session", "forked"]))
    .code(0);
    run(env.cmd_for(&server).args(["--resume", id, "two"])).code(0);
    let bodies = request_bodies(&server).await;
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        messages(&bodies[1]),
        pairs(&[("user", "one"), ("assistant", "ok"), ("user", "forked")])
    );
    assert_eq!(
        messages(&bodies[2]),
        pairs(&[("user", "one"), ("assistant", "ok"), ("user", "two")]),
        "the fork left the original as it was"
    );
    let listed = sessions(&env);
    assert_eq!(listed.len(), 2);
    let original = listed.iter().find(|s| s["id"] == id).expect("original");
    assert_eq!(original["messages"], 4);
    let fork = listed.iter().find(|s| s["id"] != id).expect("fork");
    assert_eq!(fork["messages"], 4);
    run(env.cmd_for(&server).args(["-r", "no-such-session", "x"]))
        .code(42)
        .stderr_has("no session `no-such-session`");
}

#[tokio::test]
async fn chat_recording_false_writes_nothing_and_a_failed_run_leaves_no_session() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args(["--chat-recording=false", "one"])).code(0);
    run(env
        .cmd_for(&server)
        .args(["--chat-recording", "false", "two"]))
    .code(0);
    assert!(sessions(&env).is_empty());
    run(env.cmd_for(&server).args(["-c", "x"]))
        .code(42)
        .stderr_has("no recorded session");
    run(env
        .cmd_with("http://127.0.0.1:9/v1", KEY)
        .args(["--retries", "0", "fails"]))
    .code(75);
    assert!(
        sessions(&env).is_empty(),
        "a failed first run records nothing"
    );
    run(env.cmd_for(&server).arg("recorded")).code(0);
    run(env
        .cmd_for(&server)
        .args(["-c", "--chat-recording=false", "peek"]))
    .code(0);
    assert_eq!(sessions(&env)[0]["messages"], 2, "read, not appended");
    assert_eq!(json!(request_bodies(&server).await.len()), json!(4));
}

#[tokio::test]
async fn two_processes_cannot_interleave_one_session() {
    let env = TestEnv::new();
    let quick = server_answering(&["ok"]).await;
    run(env.cmd_for(&quick).arg("first")).code(0);
    let slow = wiremock::MockServer::start().await;
    chat()
        .respond_with(
            Sse::answer(&["late"])
                .respond()
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&slow)
        .await;
    let mut holder = env.std_cmd();
    holder
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", crate::common::base_url(&slow))
        .args(["-c", "slow"]);
    let child = holder.spawn().expect("spawn");
    wait_for_request(&slow).await;
    run(env.cmd_for(&quick).args(["-c", "second"]))
        .code(75)
        .stderr_has("in use by another qwen process");
    let done = wait_bounded(child, Duration::from_secs(20));
    done.code(0);
    assert_eq!(sessions(&env)[0]["messages"], 4);
}

#[test]
fn session_flags_that_do_not_fit_are_usage_errors() {
    let env = TestEnv::new();
    for (args, needle) in [
        (&["-c", "-r", "x", "hi"][..], "both choose the session"),
        (&["--fork-session", "hi"][..], "--fork-session branches off"),
        (&["--resume"][..], "needs a session id"),
        (&["-r", "../etc", "hi"][..], "is not a session id"),
        (&["--session-id", "a/b", "hi"][..], "is not a session id"),
    ] {
        run(env.cmd_with("http://127.0.0.1:9/v1", KEY).args(args))
            .code(2)
            .stderr_has(needle);
    }
}

#[tokio::test]
async fn a_home_that_cannot_hold_sessions_costs_the_recording_not_the_answer() {
    let env = TestEnv::new();
    // `~/.qwen/headless` is a file: the sessions directory cannot be made (as in a container
    // whose HOME is read-only; a file works as root too).
    env.write_home(".qwen/headless", "not a directory");
    let server = server_answering(&["still answered"]).await;
    let r = run(env.cmd_for(&server).arg("hi"));
    r.code(0)
        .stdout_is("still answered\n")
        .stderr_has("not recorded");
    // A run that asked for a session still fails.
    let asked = run(env.cmd_for(&server).args(["-c", "again"]));
    assert_ne!(asked.code, Some(0), "{}", asked.stderr);
}

#[tokio::test]
async fn a_session_file_never_holds_the_key_a_header_or_an_environment_token() {
    let env = TestEnv::new();
    let header = "hdr-secret-value-0123";
    let token = "ghs_environmentToken0123456789";
    // A hostile server echoes every secret it saw, and the prompt quotes them too.
    let echo = format!("you sent {KEY} and {header} and {}", token.to_uppercase());
    let server = server_answering(&[&echo]).await;
    let prompt = format!("my key is {KEY}, header {header}, token {token}");
    run(env
        .cmd_for(&server)
        .env("GITHUB_TOKEN", token)
        .env("QWEN_AUTH_TYPE", "openai")
        .args(["-H", &format!("X-Custom-Auth: {header}")])
        .arg(&prompt))
    .code(0);
    let files = walk(&env.home.join(".qwen/headless/sessions"));
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).expect("the session file");
    for secret in [KEY, header, token, &token.to_uppercase()] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(text.matches("[REDACTED]").count(), 6, "{text}");
    // The scrubbed turn is what a later run sends (the word "openai" is no secret).
    run(env.cmd_for(&server).args(["-c", "openai again"])).code(0);
    let bodies = request_bodies(&server).await;
    assert_eq!(
        messages(&bodies[1]),
        pairs(&[
            (
                "user",
                "my key is [REDACTED], header [REDACTED], token [REDACTED]"
            ),
            (
                "assistant",
                "you sent [REDACTED] and [REDACTED] and [REDACTED]"
            ),
            ("user", "openai again"),
        ])
    );
}
