//! The key never appears on stdout or stderr: every output mode, debug on, `auth status`, and
//! servers or files that put the key into an error message.

use wiremock::{MockServer, ResponseTemplate};

use crate::common::{Run, Sse, TestEnv, base_url, error_response, run, server_with};

/// Recognisable anywhere, in whole or in part.
const SECRET: &str = "sk-TESTSECRET-0123456789abcdef";
/// Pieces of it that must not show up either (a cut or partly redacted key is still a leak).
const SECRET_PARTS: [&str; 3] = ["TESTSECRET", "0123456789", "sk-TESTSECRET-0123456789abcdef"];

#[track_caller]
fn assert_no_secret(r: &Run) {
    for part in SECRET_PARTS {
        assert!(!r.stdout.contains(part), "stdout leaks {part:?}\n{r}");
        assert!(!r.stderr.contains(part), "stderr leaks {part:?}\n{r}");
    }
}

fn secret_cmd(env: &TestEnv, server: &MockServer) -> assert_cmd::Command {
    env.cmd_with(&base_url(server), SECRET)
}

#[tokio::test]
async fn successful_runs_in_every_format_do_not_print_the_key() {
    let server = server_with(Sse::answer(&["fine"]).respond(), 4).await;
    let env = TestEnv::new();
    for args in [
        vec!["hi"],
        vec!["--json", "hi"],
        vec!["-o", "stream-json", "hi"],
        vec!["-o", "stream-json", "--include-partial-messages", "hi"],
    ] {
        let r = run(secret_cmd(&env, &server).args(&args));
        r.code(0).stderr_empty();
        assert_no_secret(&r);
    }
}

#[tokio::test]
async fn debug_output_does_not_print_the_key() {
    let server = server_with(Sse::answer(&["fine"]).respond(), 3).await;
    let env = TestEnv::new();

    let r = run(env.cmd().args([
        "--openai-api-key",
        SECRET,
        "--openai-base-url",
        &base_url(&server),
        "--debug",
        "hi",
    ]));
    r.code(0).stdout_is("fine\n").stderr_has("DEBUG ");
    assert_no_secret(&r);

    let r = run(secret_cmd(&env, &server)
        .env("DEBUG", "1")
        .args(["--json", "hi"]));
    r.code(0).stderr_has("DEBUG api key from");
    assert_no_secret(&r);

    let r = run(secret_cmd(&env, &server).env("DEBUG_MODE", "true").args([
        "-o",
        "stream-json",
        "--include-partial-messages",
        "hi",
    ]));
    r.code(0).stderr_has("DEBUG ");
    assert_no_secret(&r);
}

#[tokio::test]
async fn a_key_from_a_qwen_env_file_with_debug_is_not_printed() {
    let server = server_with(Sse::answer(&["fine"]).respond(), 1).await;
    let env = TestEnv::new();
    env.write_project(
        ".qwen/.env",
        &format!(
            "OPENAI_API_KEY={SECRET}\nOPENAI_BASE_URL={}\nDEBUG=1\n",
            base_url(&server)
        ),
    );
    let r = run(env.cmd().args(["--json", "hi"]));
    r.code(0).stderr_has("DEBUG api key from file");
    assert_no_secret(&r);
}

#[test]
fn auth_status_does_not_print_the_key() {
    let env = TestEnv::new();
    for args in [
        vec!["auth", "status"],
        vec!["auth", "status", "--json"],
        vec!["auth", "status", "--debug"],
        vec!["auth", "status", "--json", "--debug"],
    ] {
        let r = run(env.cmd().env("OPENAI_API_KEY", SECRET).args(&args));
        r.code(0);
        assert!(!r.stdout.is_empty(), "{r}");
        assert_no_secret(&r);
    }
    let r = run(env
        .cmd()
        .args(["auth", "status", "--openai-api-key", SECRET]));
    r.code(0).stdout_has("sk-").stderr_empty();
    assert_no_secret(&r);
}

#[tokio::test]
async fn a_401_that_echoes_the_key_is_scrubbed_in_every_format() {
    let echo = format!("Incorrect API key provided: {SECRET}. You can find your key at ...");
    let server = server_with(error_response(401, &echo), 4).await;
    let env = TestEnv::new();
    for args in [
        vec!["hi"],
        vec!["--json", "hi"],
        vec!["-o", "stream-json", "--include-partial-messages", "hi"],
        vec!["--debug", "--json", "hi"],
    ] {
        let r = run(secret_cmd(&env, &server).args(&args));
        r.code(41)
            .stderr_has("Incorrect API key provided: [REDACTED]");
        assert_no_secret(&r);
    }
}

#[tokio::test]
async fn a_retried_error_that_echoes_the_key_is_scrubbed_in_debug_lines() {
    let server = server_with(
        ResponseTemplate::new(503).set_body_string(format!("upstream rejected key {SECRET}")),
        2,
    )
    .await;
    let env = TestEnv::new();
    let r = run(secret_cmd(&env, &server).args([
        "--retries",
        "1",
        "--retry-base-delay",
        "0",
        "--debug",
        "--json",
        "hi",
    ]));
    r.code(75)
        .stderr_has("retrying in")
        .stderr_has("[REDACTED]");
    assert_no_secret(&r);
}

#[tokio::test]
async fn a_long_error_body_cut_in_the_middle_of_the_key_does_not_leak_a_piece_of_it() {
    // Error text is shortened to 500 characters; here the cut falls inside the key.
    let body = format!("{}{SECRET} and more", "x".repeat(485));
    let server = server_with(ResponseTemplate::new(400).set_body_string(body), 1).await;
    let env = TestEnv::new();
    let r = run(secret_cmd(&env, &server).args(["--json", "hi"]));
    r.code(1).stderr_has("HTTP 400");
    assert_no_secret(&r);
}

#[tokio::test]
async fn an_error_event_that_echoes_the_key_is_scrubbed() {
    let server = server_with(
        Sse::new()
            .raw(&format!(
                "data: {{\"error\":{{\"message\":\"bad key {SECRET}\"}}}}\n\n"
            ))
            .respond(),
        1,
    )
    .await;
    let env = TestEnv::new();
    let r = run(secret_cmd(&env, &server).args(["--json", "hi"]));
    r.code(1).stderr_has("bad key [REDACTED]");
    assert_no_secret(&r);
}

#[tokio::test]
async fn a_plain_json_error_that_echoes_the_key_is_scrubbed() {
    let server = server_with(
        ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"error": {"message": format!("key {SECRET} is disabled")}}),
        ),
        1,
    )
    .await;
    let env = TestEnv::new();
    let r = run(secret_cmd(&env, &server).args(["-o", "stream-json", "hi"]));
    r.code(1).stderr_has("key [REDACTED] is disabled");
    assert_no_secret(&r);
}

#[test]
fn a_dotenv_line_holding_the_key_is_not_echoed() {
    let env = TestEnv::new();
    // A key pasted without a name is a skipped line: named by number, never shown.
    env.write_project(".qwen/.env", &format!("OPENAI_MODEL=m\n{SECRET}\n"));
    let r = run(env.cmd().args(["auth", "status", "--json"]));
    r.stderr_has("line 2: not a KEY=value line, skipped");
    assert_no_secret(&r);

    // A file that is not UTF-8 is refused without quoting it.
    let mut bytes = format!("OPENAI_MODEL=m\nOPENAI_API_KEY=\"{SECRET}\n").into_bytes();
    bytes.extend_from_slice(b"OTHER=\xff\n");
    std::fs::write(env.project.join(".qwen/.env"), bytes).expect("write .env");
    let r = run(env.cmd().args(["--json", "hi"]));
    r.code(52).stderr_has("error: cannot read");
    assert_no_secret(&r);

    let r = run(env.cmd().args(["auth", "status", "--json"]));
    r.code(52);
    assert_no_secret(&r);
}

#[test]
fn the_project_base_url_refusal_does_not_print_the_key() {
    let env = TestEnv::new();
    env.write_project(".env", "OPENAI_BASE_URL=http://example.invalid/v1\n");
    let r = run(env.cmd().args(["--openai-api-key", SECRET, "--json", "hi"]));
    r.code(52).stderr_has("refusing");
    assert_no_secret(&r);
}
