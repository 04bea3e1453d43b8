//! Qwen OAuth against a local server: the device flow in a terminal (pending, `slow_down`, success,
//! expiry, denial, a discontinued service), runs with cached credentials, refresh before expiry
//! (once, even for two runs at once), and refusal without credentials in non-interactive sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic by design

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::common::{CHAT_PATH, RUN_BOUND, TestEnv, chat, wait_bounded};
use crate::common_oauth::{AuthEnv, Pty, chat_answer, form, mode, now_ms, output};

const DEVICE_PATH: &str = "/api/v1/oauth2/device/code";
const TOKEN_PATH: &str = "/api/v1/oauth2/token";
const ACCESS: &str = "qwen-access-token-0123456789";
const REFRESHED: &str = "qwen-refreshed-token-9876543210";

fn device_code(expires_in: u32, interval: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "device_code": "dev-code-1",
        "user_code": "ABCD-1234",
        "verification_uri": "https://chat.qwen.ai/authorize",
        "verification_uri_complete": "https://chat.qwen.ai/authorize?user_code=ABCD-1234&client=qwen-code",
        "expires_in": expires_in,
        "interval": interval,
    }))
}

fn oauth_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": error, "error_description": "test"}))
}

/// A mock for `POST <path>`, to be completed with matchers and a response.
fn post(to: &str) -> MockBuilder {
    Mock::given(method("POST")).and(path(to))
}

/// A server that hands out `device_code(expires_in, interval)` and answers every poll with the
/// OAuth error `error` (HTTP 400); polled exactly `polls` times when given.
async fn device_flow_failing(
    expires_in: u32,
    interval: u32,
    error: &str,
    polls: Option<u64>,
) -> MockServer {
    let server = MockServer::start().await;
    post(DEVICE_PATH)
        .respond_with(device_code(expires_in, interval))
        .mount(&server)
        .await;
    let token = post(TOKEN_PATH).respond_with(oauth_error(400, error));
    match polls {
        Some(n) => token.expect(n),
        None => token,
    }
    .mount(&server)
    .await;
    server
}

/// Mount `answer` for one poll of the token endpoint, tried in `priority` order.
async fn poll_answered_once(server: &MockServer, priority: u8, answer: ResponseTemplate) {
    post(TOKEN_PATH)
        .respond_with(answer)
        .up_to_n_times(1)
        .with_priority(priority)
        .mount(server)
        .await;
}

/// `qwen auth login --method qwen-oauth` in a terminal, against `server`, on a fast schedule.
fn oauth_login(sandbox: &TestEnv, server: &MockServer) -> (i32, String) {
    let mut cmd = sandbox.auth_cmd();
    cmd.args(["auth", "login", "--method", "qwen-oauth"])
        .env("QWEN_OAUTH_BASE_URL", server.uri())
        .env("QWEN_OAUTH_POLL_UNIT_MS", "5");
    Pty::spawn(&cmd).finish()
}

/// `qwen --auth-type qwen-oauth ping` with the OAuth endpoints on `server`.
fn oauth_ping(sandbox: &TestEnv, server: &MockServer) -> Command {
    let mut cmd = sandbox.auth_cmd();
    cmd.env("QWEN_OAUTH_BASE_URL", server.uri())
        .args(["--auth-type", "qwen-oauth", "ping"]);
    cmd
}

#[tokio::test]
async fn device_flow_pending_then_slow_down_then_success_caches_creds_0600() {
    let sandbox = TestEnv::new();
    let server = MockServer::start().await;
    post(DEVICE_PATH)
        .respond_with(device_code(300, 1))
        .expect(1)
        .mount(&server)
        .await;
    poll_answered_once(&server, 1, oauth_error(400, "authorization_pending")).await;
    poll_answered_once(&server, 2, oauth_error(429, "slow_down")).await;
    post(TOKEN_PATH)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": ACCESS,
            "refresh_token": "qwen-refresh-token",
            "token_type": "Bearer",
            "expires_in": 3600,
            "resource_url": "portal.qwen.ai",
        })))
        .with_priority(3)
        .mount(&server)
        .await;

    let started = now_ms();
    let (code, output) = oauth_login(&sandbox, &server);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("ABCD-1234"), "{output}");
    assert!(
        output.contains("https://chat.qwen.ai/authorize?user_code=ABCD-1234&client=qwen-code"),
        "{output}"
    );
    assert!(output.contains("poll more slowly: every 6 s"), "{output}");
    assert!(!output.contains(ACCESS) && !output.contains("qwen-refresh-token"));

    // The requests: the device code with the PKCE challenge, then three polls with its verifier.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    let device = form(&requests[0].body);
    assert_eq!(device["client_id"], "f0304373b74a44d2b584a3fb70ca9e56");
    assert_eq!(device["scope"], "openid profile email model.completion");
    assert_eq!(device["code_challenge_method"], "S256");
    for poll in &requests[1..] {
        let poll = form(&poll.body);
        assert_eq!(
            poll["grant_type"],
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(poll["device_code"], "dev-code-1");
        assert_eq!(poll["client_id"], "f0304373b74a44d2b584a3fb70ca9e56");
        let verifier = &poll["code_verifier"];
        assert!((43..=128).contains(&verifier.len()));
        assert_eq!(qwen::s256_challenge(verifier), device["code_challenge"]);
    }

    // The cache, as Qwen Code writes it.
    assert_eq!(mode(&sandbox.creds_path()), 0o600);
    let creds = sandbox.read_creds();
    assert_eq!(creds["access_token"], ACCESS);
    assert_eq!(creds["refresh_token"], "qwen-refresh-token");
    assert_eq!(creds["token_type"], "Bearer");
    assert_eq!(creds["resource_url"], "portal.qwen.ai");
    let expiry = creds["expiry_date"].as_u64().unwrap();
    assert!(expiry >= started + 3_600_000 && expiry <= now_ms() + 3_600_000);
    // The login selected the method it set up.
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.settings_path()).unwrap()).unwrap();
    assert_eq!(settings["security"]["auth"]["selectedType"], "qwen-oauth");
}

#[tokio::test]
async fn device_flow_that_expires_before_approval_fails_with_exit_41() {
    let sandbox = TestEnv::new();
    let server = device_flow_failing(20, 1, "authorization_pending", None).await;
    let (code, output) = oauth_login(&sandbox, &server);
    assert_eq!(code, 41, "{output}");
    assert!(
        output.contains("expired before it was approved"),
        "{output}"
    );
    assert!(!sandbox.creds_path().exists());
    // Every 5 ms of a 100 ms life: a bounded number of polls, not a loop.
    let polls = server.received_requests().await.unwrap().len() - 1;
    assert!((1..=20).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn expired_token_from_the_server_fails_with_exit_41() {
    let sandbox = TestEnv::new();
    let server = device_flow_failing(300, 0, "expired_token", Some(1)).await;
    let (code, output) = oauth_login(&sandbox, &server);
    assert_eq!(code, 41, "{output}");
    assert!(output.contains("expired"), "{output}");
    assert!(!sandbox.creds_path().exists());
}

#[tokio::test]
async fn device_flow_denial_fails_with_exit_41_and_caches_nothing() {
    let sandbox = TestEnv::new();
    let server = device_flow_failing(300, 0, "access_denied", Some(1)).await;
    let (code, output) = oauth_login(&sandbox, &server);
    assert_eq!(code, 41, "{output}");
    assert!(output.contains("denied"), "{output}");
    assert!(output.contains("hint:"), "{output}");
    assert!(!sandbox.creds_path().exists());
    assert!(!sandbox.settings_path().exists());
}

#[tokio::test]
async fn a_discontinued_login_says_so_and_suggests_the_api_key_method() {
    let sandbox = TestEnv::new();
    let server = MockServer::start().await;
    post(DEVICE_PATH)
        .respond_with(ResponseTemplate::new(410).set_body_string("gone"))
        .expect(1)
        .mount(&server)
        .await;
    let (code, output) = oauth_login(&sandbox, &server);
    assert_eq!(code, 41, "{output}");
    assert!(output.contains("no longer offered"), "{output}");
    assert!(output.contains("--method openai"), "{output}");
    assert!(output.contains("OPENAI_API_KEY"), "{output}");
}

fn creds(resource_url: &str, access: &str, expires_in_ms: i64) -> Value {
    let expiry = i64::try_from(now_ms()).unwrap() + expires_in_ms;
    json!({
        "access_token": access,
        "refresh_token": "qwen-refresh-token",
        "token_type": "Bearer",
        "expiry_date": expiry,
        "resource_url": resource_url,
    })
}

#[tokio::test]
async fn a_run_with_cached_creds_goes_to_resource_url_with_the_access_token() {
    let sandbox = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .and(body_string_contains("\"model\":\"coder-model\""))
        .respond_with(chat_answer("pong"))
        .expect(1)
        .mount(&server)
        .await;
    // The scheme is given, `/v1` is not: it is appended as Qwen Code does.
    sandbox.write_creds(&creds(&server.uri(), ACCESS, 3_600_000));
    sandbox.select("qwen-oauth");
    let run = output(
        sandbox
            .auth_cmd()
            .env("OPENAI_MODEL", "gpt-4o")
            .args(["--json", "ping"]),
    );
    run.code(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc[2]["result"], "pong");
    assert!(!run.stdout.contains(ACCESS) && !run.stderr.contains(ACCESS));
    // No refresh was needed.
    assert_eq!(sandbox.read_creds()["access_token"], ACCESS);
}

async fn refresh_server() -> MockServer {
    let server = MockServer::start().await;
    post(TOKEN_PATH)
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=qwen-refresh-token"))
        .and(body_string_contains(
            "client_id=f0304373b74a44d2b584a3fb70ca9e56",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "access_token": REFRESHED,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }))
                .set_delay(Duration::from_millis(400)),
        )
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .and(header(
            "authorization",
            format!("Bearer {REFRESHED}").as_str(),
        ))
        .respond_with(chat_answer("pong"))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn creds_expiring_within_30_s_are_refreshed_before_the_request() {
    let sandbox = TestEnv::new();
    let server = refresh_server().await;
    sandbox.write_creds(&creds(&format!("{}/v1", server.uri()), ACCESS, 10_000));
    let run = output(&mut oauth_ping(&sandbox, &server));
    run.code(0).stdout_is("pong\n");
    assert!(!run.stderr.contains(REFRESHED) && !run.stderr.contains(ACCESS));
    let saved = sandbox.read_creds();
    assert_eq!(saved["access_token"], REFRESHED);
    assert_eq!(
        saved["refresh_token"], "qwen-refresh-token",
        "kept when not resent"
    );
    assert_eq!(saved["resource_url"], format!("{}/v1", server.uri()));
    assert!(saved["expiry_date"].as_u64().unwrap() > now_ms() + 3_000_000);
    assert_eq!(mode(&sandbox.creds_path()), 0o600);
    // Qwen Code's lock file is gone again (Qwen Code would wait on a left-over one).
    assert!(!sandbox.home.join(".qwen/oauth_creds.lock").exists());
    let chats = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == CHAT_PATH)
        .count();
    assert_eq!(chats, 1);
}

#[tokio::test]
async fn two_runs_at_once_refresh_the_token_once() {
    let sandbox = TestEnv::new();
    let server = refresh_server().await;
    sandbox.write_creds(&creds(&server.uri(), ACCESS, 5_000));
    let spawn = || oauth_ping(&sandbox, &server).spawn().unwrap();
    // The refresh answer takes 400 ms, so the second run finds the token expiring while the first
    // holds the lock; it must wait, read the refreshed token and not refresh again.
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        wait_bounded(child, RUN_BOUND).code(0).stdout_is("pong\n");
    }
    // `.expect(1)` on the token endpoint is checked when the server is dropped; say it here too.
    let requests = server.received_requests().await.unwrap();
    let refreshes = requests
        .iter()
        .filter(|r| r.url.path() == TOKEN_PATH)
        .count();
    let chats = requests.len() - refreshes;
    assert_eq!((refreshes, chats), (1, 2));
    assert_eq!(sandbox.read_creds()["access_token"], REFRESHED);
}

#[tokio::test]
async fn a_refused_refresh_is_an_auth_failure() {
    let sandbox = TestEnv::new();
    let server = MockServer::start().await;
    post(TOKEN_PATH)
        .respond_with(oauth_error(400, "invalid_grant"))
        .expect(1)
        .mount(&server)
        .await;
    sandbox.write_creds(&creds(&server.uri(), ACCESS, -1_000));
    output(&mut oauth_ping(&sandbox, &server))
        .code(41)
        .stderr_has("could not be refreshed")
        .stderr_lacks("qwen-refresh-token")
        .stdout_empty();
}

type Setup = fn(&TestEnv, &str);

/// Every way a non-interactive session could be asked for Qwen OAuth without usable credentials:
/// exit 41 at once, the API-key advice, and not one request to any server.
#[tokio::test]
async fn without_usable_creds_non_interactive_runs_are_refused_without_network() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let cases: [(&str, Setup, &[&str]); 4] = [
        (
            "flag, no creds",
            |_, _| {},
            &["--auth-type", "qwen-oauth", "ping"],
        ),
        (
            "setting, no creds",
            |s, _| s.select("qwen-oauth"),
            &["ping"],
        ),
        (
            "setting, expired creds without refresh token",
            |s, uri| {
                s.select("qwen-oauth");
                s.write_creds(
                    &json!({"access_token": "old", "expiry_date": 1, "resource_url": uri}),
                );
            },
            &["ping"],
        ),
        (
            "auth login",
            |_, _| {},
            &["auth", "login", "--method", "qwen-oauth"],
        ),
    ];
    for (name, setup, args) in cases {
        let sandbox = TestEnv::new();
        setup(&sandbox, &server.uri());
        let out = sandbox
            .auth_cmd()
            .env("QWEN_OAUTH_BASE_URL", server.uri())
            .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(41), "{name}: {stderr}");
        assert!(stderr.contains("OPENAI_API_KEY"), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn auth_status_shows_the_method_its_source_and_redacted_oauth_creds() {
    let sandbox = TestEnv::new();
    sandbox.select("qwen-oauth");
    sandbox.write_creds(&creds("portal.qwen.ai", ACCESS, 3_600_000));
    let run = output(sandbox.auth_cmd().args(["auth", "status", "--json"]));
    run.code(0);
    assert!(!run.stdout.contains(ACCESS) && !run.stdout.contains("qwen-refresh-token"));
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["auth_type"]["value"], "qwen-oauth");
    assert_eq!(doc["auth_type"]["source"]["type"], "setting");
    assert_eq!(doc["oauth"]["cached"], true);
    assert_eq!(doc["oauth"]["state"], "fresh");
    assert_eq!(doc["oauth"]["resource_url"], "portal.qwen.ai");
    assert_eq!(doc["oauth"]["base_url"], "https://portal.qwen.ai/v1");
    assert_eq!(doc["oauth"]["access_token"], "qwe…89");
    assert_eq!(doc["model"]["value"], "coder-model");

    let text = output(sandbox.auth_cmd().args(["auth", "status"])).stdout;
    assert!(
        text.contains("auth method: qwen-oauth (settings file"),
        "{text}"
    );
    assert!(
        text.contains("oauth creds:") && text.contains("(cached)"),
        "{text}"
    );
    assert!(text.contains("resource:    portal.qwen.ai"), "{text}");
    assert!(!text.contains(ACCESS));
}

/// Answers the chat, and on the first request moves the test clock two hours ahead: the token
/// handed out at the start then expires during the batch, whatever the machine's load.
struct AnswerAndAdvanceClock {
    clock_file: std::path::PathBuf,
    calls: std::sync::atomic::AtomicUsize,
}

impl wiremock::Respond for AnswerAndAdvanceClock {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            std::fs::write(&self.clock_file, "7200000").expect("advance the test clock");
        }
        chat_answer("pong")
    }
}

#[tokio::test]
async fn a_batch_refreshes_the_token_when_it_expires_mid_run() {
    let sandbox = TestEnv::new();
    let server = MockServer::start().await;
    // The first refresh (at the start: the cached token is about to expire) gives a token good for
    // an hour; the first chat request moves the clock two hours ahead, so the next job refreshes
    // again and gets the second token.
    post(TOKEN_PATH)
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "short-lived-token-000000", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    post(TOKEN_PATH)
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": REFRESHED, "token_type": "Bearer", "expires_in": 36000}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let clock_file = sandbox.project_path("clock-offset-ms");
    std::fs::write(&clock_file, "0").expect("write the clock file");
    chat()
        .respond_with(AnswerAndAdvanceClock {
            clock_file: clock_file.clone(),
            calls: std::sync::atomic::AtomicUsize::new(0),
        })
        .mount(&server)
        .await;
    sandbox.write_creds(&creds(&server.uri(), ACCESS, 10_000));
    sandbox.write_project(
        "jobs.jsonl",
        "{\"prompt\":\"one\"}\n{\"prompt\":\"two\"}\n{\"prompt\":\"three\"}\n",
    );
    let run = output(
        sandbox
            .auth_cmd()
            .env("QWEN_OAUTH_BASE_URL", server.uri())
            .env("QWEN_TEST_CLOCK_OFFSET_FILE", &clock_file)
            .args([
                "--auth-type",
                "qwen-oauth",
                "--jobs",
                "jobs.jsonl",
                "--concurrency",
                "1",
                "--quiet",
            ]),
    );
    run.code(0).stderr_has("3 succeeded");
    let requests = server.received_requests().await.unwrap();
    let tokens: Vec<String> = requests
        .iter()
        .filter(|r| r.url.path() == CHAT_PATH)
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tokens,
        [
            "Bearer short-lived-token-000000".to_owned(),
            format!("Bearer {REFRESHED}"),
            format!("Bearer {REFRESHED}"),
        ],
        "the jobs after the expiry go out with the refreshed token"
    );
    assert_eq!(sandbox.read_creds()["access_token"], REFRESHED);
}
