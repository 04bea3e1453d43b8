//! Every exit code a single run can end with, and what the streams say alongside it.

use std::process::Stdio;
use std::time::Duration;

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{
    KEY, Sse, TestEnv, assert_error_result, base_url, chat, error_response, run, server_with,
    wait_bounded, wait_for_request,
};

/// A server that must receive nothing at all, on any path.
async fn untouched_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn success_is_0() {
    let env = TestEnv::new();
    let server = server_with(Sse::answer(&["fine"]).respond(), 1).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(0)
        .stdout_is("fine\n")
        .stderr_empty();
}

#[tokio::test]
async fn http_400_is_1() {
    let env = TestEnv::new();
    let server = server_with(error_response(400, "bad request body"), 1).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(1)
        .stdout_empty()
        .stderr_has("error: API error: HTTP 400: bad request body");
}

#[tokio::test]
async fn http_404_is_1_with_a_hint_about_the_base_url() {
    let env = TestEnv::new();
    let server = server_with(error_response(404, "no such model"), 1).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(1)
        .stdout_empty()
        .stderr_has("HTTP 404")
        .stderr_has("hint: check OPENAI_BASE_URL");
}

#[tokio::test]
async fn an_unusable_response_is_1() {
    let env = TestEnv::new();
    let server = server_with(
        ResponseTemplate::new(200).set_body_raw("<html>not an API</html>", "text/html"),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(1).stderr_has("error: unusable response");
    assert_error_result(&r.result(), "invalid_response");
}

#[tokio::test]
async fn an_sse_event_that_is_not_json_is_1() {
    let env = TestEnv::new();
    let server = server_with(Sse::new().raw("data: {not json\n\n").done().respond(), 1).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(1)
        .stdout_empty()
        .stderr_has("error: unusable response: a stream event is not JSON");
}

#[tokio::test]
async fn an_unknown_flag_is_2() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    run(env.cmd_for(&server).args(["--no-such-flag", "hi"]))
        .code(2)
        .stdout_empty()
        .stderr_has("unexpected argument '--no-such-flag'");
}

#[tokio::test]
async fn a_bad_flag_value_is_2() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "soon", "hi"]))
    .code(2)
    .stdout_empty()
    .stderr_has("is not a duration");
}

#[test]
fn help_and_version_are_0() {
    let env = TestEnv::new();
    run(env.cmd().arg("--help"))
        .code(0)
        .stdout_has("Exit codes:")
        .stderr_empty();
    run(env.cmd().arg("--version"))
        .code(0)
        .stdout_has("qwen ")
        .stderr_empty();
}

#[tokio::test]
async fn no_key_is_41() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(41)
    .stdout_empty()
    .stderr_has("error: no API key: OPENAI_API_KEY is not set")
    .stderr_has("hint: set OPENAI_API_KEY");
}

#[tokio::test]
async fn qwen_oauth_is_refused_at_once_without_a_request() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    let r = run(env
        .cmd_for(&server)
        .args(["--auth-type", "qwen-oauth", "--json", "hi"]));
    r.code(41)
        .stderr_has("non-interactive session")
        .stderr_has("OPENAI_API_KEY")
        .stderr_has(".qwen/.env");
    assert_error_result(&r.result(), "authentication_error");
}

#[tokio::test]
async fn qwen_oauth_is_refused_when_ci_is_set_even_with_a_key() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    run(env
        .cmd_for(&server)
        .env("CI", "true")
        .args(["--auth-type", "qwen-oauth", "hi"]))
    .code(41)
    .stdout_empty()
    .stderr_has("error: Qwen OAuth needs a browser login")
    .stderr_has("hint: ");
}

#[tokio::test]
async fn http_401_is_41() {
    let env = TestEnv::new();
    let server = server_with(error_response(401, "invalid api key"), 1).await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(41)
        .stderr_has("HTTP 401")
        .stderr_has("hint: check OPENAI_API_KEY");
    assert_error_result(&r.result(), "authentication_error");
}

#[tokio::test]
async fn http_403_is_41() {
    let env = TestEnv::new();
    let server = server_with(error_response(403, "forbidden"), 1).await;
    run(env.cmd_for(&server).arg("hi"))
        .code(41)
        .stdout_empty()
        .stderr_has("error: API error: HTTP 403: forbidden");
}

#[tokio::test]
async fn no_prompt_is_42() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    let r = run(env.cmd_for(&server).arg("--json"));
    r.code(42).stderr_has("error: nothing to send");
    assert_error_result(&r.result(), "input_error");
}

#[tokio::test]
async fn a_base_url_that_is_not_http_is_52() {
    let env = TestEnv::new();
    let server = untouched_server().await;
    run(env
        .cmd_for(&server)
        .args(["--openai-base-url", "ftp://x", "hi"]))
    .code(52)
    .stdout_empty()
    .stderr_has("error: invalid base URL `ftp://x` (from flag --openai-base-url)")
    .stderr_has("hint: ");
}

#[test]
fn a_base_url_that_is_not_a_url_is_52_in_json_too() {
    let env = TestEnv::new();
    let r = run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", "not a url")
        .args(["--json", "hi"]));
    r.code(52)
        .stderr_has("invalid base URL `not a url` (from environment variable OPENAI_BASE_URL)");
    assert_error_result(&r.result(), "configuration_error");
}

#[tokio::test]
async fn http_503_after_the_retries_is_75() {
    let env = TestEnv::new();
    let server = server_with(error_response(503, "overloaded"), 2).await;
    let r = run(env.cmd_for(&server).args([
        "--retries",
        "1",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75)
        .stderr_has("HTTP 503: overloaded")
        .stderr_has("hint: the failure looks temporary");
    let result = r.result();
    assert_error_result(&result, "server_error");
    assert_eq!(result["attempts"], 2);
}

#[tokio::test]
async fn retry_after_beyond_max_retry_wait_is_75_at_once() {
    let env = TestEnv::new();
    let server = server_with(
        error_response(429, "slow down").insert_header("retry-after", "120"),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args([
        "--max-retry-wait",
        "1s",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75)
        .stderr_has("asked to wait 120s")
        .stderr_has("--max-retry-wait");
    let result = r.result();
    assert_error_result(&result, "rate_limit_error");
    assert_eq!(result["attempts"], 1);
}

#[tokio::test]
async fn a_refused_connection_after_the_retries_is_75() {
    let env = TestEnv::new();
    // Bind a port, then free it: nothing listens there any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .args(["--retries", "1", "--retry-base-delay", "0", "hi"]))
    .code(75)
    .stdout_empty()
    .stderr_has("error: network error");
}

#[tokio::test]
async fn a_server_silent_past_the_idle_timeout_is_retried_then_75() {
    let env = TestEnv::new();
    let server = server_with(
        Sse::answer(&["too late"])
            .respond()
            .set_delay(Duration::from_secs(30)),
        2,
    )
    .await;
    let r = run(env.cmd_for(&server).args([
        "--idle-timeout",
        "200ms",
        "--retries",
        "1",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75).stderr_has("error: timed out");
    let result = r.result();
    assert_error_result(&result, "timeout");
    assert_eq!(result["attempts"], 2);
}

#[tokio::test]
async fn qwen_code_is_the_same_program_under_its_other_name() {
    let env = TestEnv::new();
    let server = server_with(Sse::answer(&["same"]).respond(), 1).await;
    run(env.cmd_named("qwen-code").args([
        "--openai-api-key",
        KEY,
        "--openai-base-url",
        &base_url(&server),
        "--model",
        "gpt-4o-mini",
        "hello",
    ]))
    .code(0)
    .stdout_is("same\n")
    .stderr_empty();

    run(env.cmd_named("qwen-code").arg("--bogus"))
        .code(2)
        .stdout_empty()
        .stderr_has("Usage: qwen-code");
}

/// Start a run whose response never comes in time, signal it once the request arrived,
/// and return what it wrote and how it ended.
async fn interrupt(signal: &str) -> crate::common::Run {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .respond_with(
            Sse::answer(&["too late"])
                .respond()
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&server)
        .await;
    let child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--json", "hi"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn qwen");
    wait_for_request(&server).await;
    crate::common::send_signal(child.id(), signal.trim_start_matches('-'));
    wait_bounded(child, Duration::from_secs(20))
}

#[tokio::test]
async fn sigterm_is_143_with_an_error_result() {
    let r = interrupt("-TERM").await;
    r.code(143).stderr_has("error: interrupted by SIGTERM");
    let messages = r.json();
    assert_eq!(messages[0]["type"], "system");
    assert_error_result(&r.result(), "interrupted");
}

#[tokio::test]
async fn sigint_is_130_with_an_error_result() {
    let r = interrupt("-INT").await;
    r.code(130).stderr_has("error: interrupted by SIGINT");
    assert_error_result(&r.result(), "interrupted");
}

#[test]
fn a_closed_stdout_does_not_hide_an_auth_failure_in_stream_json() {
    let env = TestEnv::new();
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut cmd = env.std_cmd();
    cmd.args(["-o", "stream-json", "hi"])
        .stdin(Stdio::null())
        .stdout(writer);
    let child = cmd.spawn().expect("spawn qwen");
    drop(cmd);
    let r = wait_bounded(child, Duration::from_secs(20));
    r.code(41).stderr_has("OPENAI_API_KEY");
}
