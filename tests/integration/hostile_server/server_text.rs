//! Server text carries neither the key nor a command: keys echoed in headers, errors or answers are
//! scrubbed in every form, workflow commands and terminal escapes are shown, never run.

use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

use crate::batch_support::jsonl;
use crate::common::{KEY, Sse, TestEnv, base_url, chat, error_response, run, server_with};

/// Every run of 12 characters of `key` (lower-cased), to prove that no piece of it is shown.
#[track_caller]
fn assert_no_piece_of(key: &str, text: &str) {
    let text = text.to_lowercase();
    let key: Vec<char> = key.to_lowercase().chars().collect();
    for window in key.windows(12) {
        let piece: String = window.iter().collect();
        assert!(!text.contains(&piece), "`{piece}` (of the key) in:\n{text}");
    }
}

#[tokio::test]
async fn a_key_echoed_in_response_headers_is_never_printed_or_stored() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .respond_with(
            Sse::answer(&["ok"])
                .respond()
                .insert_header("x-request-id", format!("req-{KEY}").as_str()),
        )
        .mount(&server)
        .await;
    let r = run(env.cmd_for(&server).args(["--debug", "--json", "hi"]));
    r.code(0).stderr_has("request-id=req-[REDACTED]");
    assert!(
        !r.stderr.contains(KEY) && !r.stdout.contains(KEY),
        "{}",
        r.stderr
    );

    env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "-o",
        "openai-batch",
        "--output",
        "out.jsonl",
    ]));
    r.code(0);
    let out = env.read_project("out.jsonl");
    assert!(out.contains("req-[REDACTED]"), "{out}");
    assert!(!out.contains(KEY), "{out}");
}

/// The lines of `stderr` a GitHub Actions runner would run as commands, other than ours.
fn foreign_commands(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            (t.starts_with("::") && !t.starts_with("::add-mask::") && !t.starts_with("::error"))
                || l.contains("##[")
        })
        .collect()
}

#[tokio::test]
async fn server_text_cannot_issue_workflow_commands_under_actions() {
    let hostile = "denied\n::warning::pwned\n  ::add-mask::x\r\n##[error]old syntax";
    let stream_error = format!(
        "event: error\ndata: {}\n\n",
        json!({"error": {"message": hostile}})
    );
    let responses = [
        error_response(400, hostile),
        ResponseTemplate::new(400).set_body_string(hostile),
        Sse::new().raw(&stream_error).respond(),
    ];
    for response in responses {
        let env = TestEnv::new();
        let summary = env.root.join("summary.md");
        let server = server_with(response, 1).await;
        let r = run(env
            .cmd_for(&server)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .args(["--debug", "hi"]));
        r.code(1).stderr_has("pwned");
        assert_eq!(
            foreign_commands(&r.stderr),
            Vec::<&str>::new(),
            "{}",
            r.stderr
        );
        let md = std::fs::read_to_string(&summary).unwrap_or_default();
        assert_eq!(foreign_commands(&md), Vec::<&str>::new(), "{md}");
    }
}

#[tokio::test]
async fn server_text_in_a_batch_cannot_issue_workflow_commands() {
    let env = TestEnv::new();
    let server = server_with(error_response(400, "no\n::warning::pwned\n##[error]x"), 1).await;
    env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
    let r = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
    ]));
    r.code(1);
    assert_eq!(
        foreign_commands(&r.stderr),
        Vec::<&str>::new(),
        "{}",
        r.stderr
    );
    let out = env.read_project("out.jsonl");
    assert_eq!(foreign_commands(&out), Vec::<&str>::new(), "{out}");
}

#[tokio::test]
async fn terminal_escapes_from_a_server_are_shown_not_run() {
    let env = TestEnv::new();
    let server = server_with(
        error_response(400, "\u{1b}]0;owned\u{7}\u{1b}[2Jgone\u{202e}"),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).arg("hi"));
    r.code(1).stderr_has("\\u{1b}[2Jgone");
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{202e}'),
        "{r}"
    );
}

#[tokio::test]
async fn a_partly_echoed_key_is_scrubbed_in_every_form() {
    let key = "sk-abc/def/ghijklmnopqrstuvwxyz0123";
    let upper = key.to_uppercase();
    let cut = &key[3..31];
    let escaped = key.replace('/', "\\/");
    let body = format!("bad key {upper}; or {cut}...; or \"{escaped}\"");
    for response in [
        ResponseTemplate::new(401).set_body_string(body.clone()),
        error_response(401, &body),
    ] {
        let env = TestEnv::new();
        let server = server_with(response, 1).await;
        let r = run(env.cmd_with(&base_url(&server), key).args(["--json", "hi"]));
        r.code(41).stderr_has("[REDACTED]");
        assert_no_piece_of(key, &r.stderr);
        assert_no_piece_of(key, &r.stdout);
    }
}

#[tokio::test]
async fn a_validation_error_quoting_the_answer_never_shows_the_key() {
    let env = TestEnv::new();
    let answer = json!(format!("the key is {KEY}")).to_string();
    let server = server_with(Sse::answer(&[&answer]).respond(), 1).await;
    let r = run(env.cmd_for(&server).args([
        "--json-schema",
        r#"{"type":"integer"}"#,
        "--schema-retries",
        "0",
        "hi",
    ]));
    r.code(65).stderr_has("[REDACTED]");
    assert!(!r.stderr.contains(KEY), "{r}");
}

#[tokio::test]
async fn an_answer_echoing_the_key_stays_data_on_stdout_but_not_in_the_step_summary() {
    let env = TestEnv::new();
    let answer = format!("your key: {KEY}\n::warning::x\n");
    let server = server_with(Sse::answer(&[&answer]).respond(), 1).await;
    let summary = env.root.join("summary.md");
    let r = run(env
        .cmd_for(&server)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .arg("hi"));
    r.code(0).stdout_is(&answer);
    let md = std::fs::read_to_string(&summary).expect("a summary");
    assert!(
        !md.contains(KEY) && md.contains("your key: [REDACTED]"),
        "{md}"
    );
    assert_eq!(foreign_commands(&md), Vec::<&str>::new(), "{md}");
}

#[tokio::test]
async fn a_long_stream_error_event_is_shown_short_and_without_the_key() {
    let env = TestEnv::new();
    let data = format!("{KEY} {}", "y".repeat(4 * 1024 * 1024));
    let server = server_with(
        Sse::new()
            .raw(&format!("event: error\ndata: {data}\n\n"))
            .respond(),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(1);
    let result = r.result();
    let message = result["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the server reported an error in the stream: [REDACTED] yyy"),
        "{message}"
    );
    assert!(message.len() < 2000, "{} bytes", message.len());
    assert!(!r.stderr.contains(KEY) && !r.stdout.contains(KEY));
}

/// Reasoning shown with `--show-reasoning` is server text on stderr: a workflow command split
/// across stream pieces, or an escape sequence, must not reach a GitHub Actions runner.
#[tokio::test]
async fn reasoning_on_stderr_cannot_issue_workflow_commands() {
    let env = TestEnv::new();
    let sse = crate::common::Sse::from_server("r1", "deepseek-reasoner")
        .chunk(
            &serde_json::json!({"role": "assistant", "content": "", "reasoning_content": format!("fine {}\n:", crate::common::KEY)}),
            None,
        )
        .chunk(
            &serde_json::json!({"content": "", "reasoning_content": ":warning::pwned\n\u{1b}[31mred\n"}),
            None,
        )
        .chunk(&serde_json::json!({"content": "ok"}), None)
        .finish("stop")
        .done();
    let server =
        crate::common::server_mounting(crate::common::chat().respond_with(sse.respond()), 1).await;
    let r = crate::common::run(
        env.cmd_for(&server)
            .env("GITHUB_ACTIONS", "true")
            .args(["--show-reasoning", "hi"]),
    );
    r.code(0).stdout_is("ok\n");
    for line in r.stderr.lines() {
        assert!(!line.trim_start().starts_with("::warning"), "{line}");
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
    r.stderr_has("[!]::warning::pwned");
    // The reasoning is server text: the key is removed from what stderr shows.
    let after_mask: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect();
    assert!(
        !after_mask.join("\n").contains(crate::common::KEY),
        "{}",
        r.stderr
    );
}
