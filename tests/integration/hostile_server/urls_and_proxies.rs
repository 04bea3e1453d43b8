//! No credentials in a base URL or an OAuth resource URL, and no proxy for loopback; a key sent
//! over plain HTTP through a proxy is warned about.

use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

use super::{replying, sse_reply};
use crate::common::{KEY, Sse, TestEnv, base_url, chat, run};

#[test]
fn a_base_url_with_userinfo_is_refused_and_never_shown() {
    let env = TestEnv::new();
    let url = "http://alice:hunter2secret@127.0.0.1:9/v1";
    for args in [
        vec!["--json", "hi"],
        vec!["auth", "status"],
        vec!["--debug", "hi"],
    ] {
        let r = run(env.cmd_with(url, KEY).args(&args));
        r.code(52).stderr_has("OPENAI_API_KEY");
        assert!(
            !r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"),
            "{r}"
        );
    }
    let r = run(env.cmd_with("https://api.example.com/v1", KEY).args([
        "--openai-base-url",
        "https://tok@api.example.com/v1",
        "hi",
    ]));
    r.code(52);
    assert!(!r.stderr.contains("tok@"), "{r}");
}

// ---- Proxies ---------------------------------------------------------------------------------

#[tokio::test]
async fn loopback_requests_never_go_through_a_proxy() {
    let proxy = replying(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    let proxy_url = format!("http://{}", proxy.addr);
    let server = MockServer::start().await;
    chat()
        .respond_with(Sse::answer(&["direct"]).respond())
        .mount(&server)
        .await;
    let port = server.address().port();
    for host in ["127.0.0.1", "localhost"] {
        for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
            let env = TestEnv::new();
            let url = format!("http://{host}:{port}/v1");
            let r = run(env.cmd_with(&url, KEY).env(var, &proxy_url).arg("hi"));
            r.code(0).stdout_is("direct\n");
        }
    }
    assert_eq!(proxy.connections(), 0, "the proxy saw a loopback request");
}

#[test]
fn a_key_sent_over_plain_http_through_a_proxy_is_warned_about() {
    let env = TestEnv::new();
    // The proxy answers for the remote host: the key went through it in clear text.
    let proxy = replying(sse_reply("proxied"));
    let r = run(env
        .cmd_with("http://api.example.invalid/v1", KEY)
        .env("HTTP_PROXY", format!("http://user:pw@{}", proxy.addr))
        .arg("hi"));
    r.code(0)
        .stdout_is("proxied\n")
        .stderr_has("plain http")
        .stderr_has(&format!("proxy `http://***@{}", proxy.addr));
    assert!(!r.stderr.contains("user:pw"), "{r}");
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn a_loopback_oauth_server_is_never_reached_through_a_proxy() {
    let proxy = replying(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/api/v1/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "qwen-refreshed-0123456789", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(Sse::answer(&["pong"]).respond())
        .mount(&server)
        .await;
    let env = TestEnv::new();
    // Credentials that expire within the refresh margin: the token endpoint is asked first.
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis()
        + 5_000;
    env.write_home(
        ".qwen/oauth_creds.json",
        &json!({"access_token": "qwen-access-0123456789", "refresh_token": "r",
            "token_type": "Bearer", "expiry_date": u64::try_from(expiry).expect("ms"),
            "resource_url": base_url(&server)})
        .to_string(),
    );
    let r = run(env
        .cmd()
        .env("QWEN_OAUTH_BASE_URL", server.uri())
        .env("HTTP_PROXY", format!("http://{}", proxy.addr))
        .args(["--auth-type", "qwen-oauth", "ping"]));
    r.code(0).stdout_is("pong\n");
    assert_eq!(proxy.connections(), 0, "the proxy saw a loopback request");
}

#[test]
fn an_oauth_resource_url_with_userinfo_is_refused_and_never_shown() {
    let env = TestEnv::new();
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis()
        + 3_600_000;
    env.write_home(
        ".qwen/oauth_creds.json",
        &json!({"access_token": "qwen-access-0123456789", "refresh_token": "r",
            "token_type": "Bearer", "expiry_date": u64::try_from(expiry).expect("ms"),
            "resource_url": "http://u:secretpw@127.0.0.1:9/v1"})
        .to_string(),
    );
    let r = run(env.cmd().args([
        "--auth-type",
        "qwen-oauth",
        "--retry-base-delay",
        "0",
        "ping",
    ]));
    r.code(41).stderr_has("resource_url");
    assert!(!r.stderr.contains("secretpw"), "{r}");
}
