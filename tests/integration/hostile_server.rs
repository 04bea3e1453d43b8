//! Hostile and broken servers (issue 9, section 5): bounded responses, server text that can carry
//! neither the key nor a workflow command, permanent failures that are not retried, no redirects,
//! empty answers that fail, no credentials in a base URL, and no proxy for loopback.
//! Misbehaving peers are tiny TCP servers on 127.0.0.1 (one thread per connection), which count
//! the connections they get: a count of 1 proves that nothing was retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use crate::batch_support::jsonl;
use crate::common::{
    KEY, Sse, TestEnv, assert_error_result, base_url, chat, error_response, run, server_with,
};

/// A raw TCP server: every connection is handed to `handler` on its own thread.
pub(crate) struct RawServer {
    pub(crate) addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl RawServer {
    pub(crate) fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || handler(stream));
            }
        });
        Self { addr, connections }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Read one HTTP request (head and a `Content-Length` body) so that the client is done sending.
fn read_request(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return head;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    head
}

/// A server that reads the request, then writes `reply` and closes.
pub(crate) fn replying(reply: &'static [u8]) -> RawServer {
    RawServer::start(move |mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(reply);
    })
}

/// A raw HTTP reply carrying an event stream that answers `text`.
pub(crate) fn sse_reply(text: &str) -> &'static [u8] {
    let body = Sse::answer(&[text]).body();
    Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    )
}

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

// ---- Unbounded responses -------------------------------------------------------------------

#[test]
fn an_endless_sse_line_is_refused_past_max_response_bytes_with_a_json_document() {
    let env = TestEnv::new();
    // A stream whose first line never ends: 2 MiB of it with a limit of 1000 bytes.
    let server = RawServer::start(|mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 2097160\r\n\r\ndata: \"",
        );
        let block = vec![b'a'; 64 * 1024];
        for _ in 0..32 {
            if stream.write_all(&block).is_err() {
                return;
            }
        }
    });
    let r = run(env.cmd_with(&server.base_url(), KEY).args([
        "--max-response-bytes",
        "1000",
        "--json",
        "hi",
    ]));
    r.code(1).stderr_has("--max-response-bytes");
    assert_error_result(&r.result(), "response_too_large");
    assert_eq!(server.connections(), 1, "not retried");
}

#[tokio::test]
async fn an_answer_past_max_response_bytes_is_refused() {
    let env = TestEnv::new();
    let pieces = vec!["0123456789"; 200];
    let server = server_with(Sse::answer(&pieces).respond(), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args([
        "--max-response-bytes",
        "1000",
        "--json",
        "hi",
    ]));
    r.code(1);
    assert_error_result(&r.result(), "response_too_large");
    // The same answer fits a limit it does not pass.
    let server = server_with(Sse::answer(&pieces).respond(), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args([
        "--max-response-bytes",
        "2000",
        "--json",
        "hi",
    ]));
    r.code(0);
}

#[tokio::test]
async fn a_json_body_past_max_response_bytes_is_refused() {
    let env = TestEnv::new();
    let text = "x".repeat(5000);
    let body =
        json!({"id": "c", "choices": [{"message": {"content": text}, "finish_reason": "stop"}]});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args([
        "--max-response-bytes",
        "1000",
        "--json",
        "hi",
    ]));
    r.code(1);
    assert_error_result(&r.result(), "response_too_large");
}

#[tokio::test]
async fn a_json_body_s_short_values_are_cleaned_once_as_in_a_stream() {
    // 50 control characters: each shown as a 6-character escape, all 50 kept (the 200-character
    // limit counts the server's characters). Cleaned twice, the 300 characters of escapes were
    // cut to 200.
    let env = TestEnv::new();
    let reason = "\u{7}".repeat(50);
    let body =
        json!({"id": "c", "choices": [{"message": {"content": "ok"}, "finish_reason": reason}]});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body), 1).await;
    let r = run(env.cmd_with(&base_url(&server), KEY).args(["--json", "hi"]));
    r.code(0);
    let result = r.result();
    assert_eq!(result["finish_reason"], "\\u{7}".repeat(50), "{result}");
}

#[test]
fn an_endless_error_body_is_read_only_in_part() {
    let env = TestEnv::new();
    // A 400 whose chunked body never ends: only its start is read, and shown shortened.
    let server = RawServer::start(|mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let first = b"{\"error\":{\"message\":\"quota exceeded ";
        let _ = stream.write_all(format!("{:x}\r\n", first.len()).as_bytes());
        let _ = stream.write_all(first);
        let _ = stream.write_all(b"\r\n");
        let block = vec![b'a'; 16 * 1024];
        loop {
            let ok = stream
                .write_all(format!("{:x}\r\n", block.len()).as_bytes())
                .and_then(|()| stream.write_all(&block))
                .and_then(|()| stream.write_all(b"\r\n"));
            if ok.is_err() {
                return;
            }
        }
    });
    let r = run(env.cmd_with(&server.base_url(), KEY).args(["--json", "hi"]));
    r.code(1).stderr_has("quota exceeded");
    let result = r.result();
    let message = result["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("quota exceeded"), "{result}");
    assert!(message.len() < 2000, "shortened: {} bytes", message.len());
}

// ---- Server text: the key and workflow commands ----------------------------------------------

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

// ---- Permanent failures are not retried ------------------------------------------------------

/// `cmd --retry-base-delay 0 --json hi` against `server` ends as a protocol error (exit 1) after a
/// single connection: not retried.
#[track_caller]
fn protocol_error_sent_once(server: &RawServer, mut cmd: assert_cmd::Command) {
    let r = run(cmd.args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(1);
    assert_error_result(&r.result(), "protocol_error");
    assert_eq!(server.connections(), 1, "not retried\n{r}");
}

#[test]
fn a_peer_that_does_not_speak_http_is_not_retried() {
    let env = TestEnv::new();
    let server = replying(b"SSH-2.0-OpenSSH_9.6\r\n");
    protocol_error_sent_once(&server, env.cmd_with(&server.base_url(), KEY));
}

#[test]
fn oversized_response_headers_are_not_retried() {
    let env = TestEnv::new();
    let server = RawServer::start(|mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Big: ");
        let block = vec![b'a'; 64 * 1024];
        for _ in 0..32 {
            if stream.write_all(&block).is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"\r\n\r\n");
    });
    protocol_error_sent_once(&server, env.cmd_with(&server.base_url(), KEY));
}

#[test]
fn a_broken_chunked_body_is_not_retried() {
    let env = TestEnv::new();
    let server = replying(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-a-size\r\ndata: x\r\n\r\n",
    );
    protocol_error_sent_once(&server, env.cmd_with(&server.base_url(), KEY));
}

#[test]
fn a_connection_closed_before_any_answer_is_still_retried() {
    // The boundary of the rule: a peer that says nothing may be restarting.
    let env = TestEnv::new();
    let server = replying(b"");
    let r = run(env.cmd_with(&server.base_url(), KEY).args([
        "--retries",
        "2",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75);
    assert_eq!(server.connections(), 3, "retried\n{r}");
}

/// A self-signed certificate for `127.0.0.1` and a TLS server using it, answering one stream.
pub(crate) fn tls_server() -> (RawServer, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a cert");
    let pem = cert.cert.pem();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .expect("a key");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .expect("a server config"),
    );
    let server = RawServer::start(move |mut tcp| {
        let Ok(mut conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut buf = [0u8; 16 * 1024];
        // Read until the end of the request head and a little more (the body is small).
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let body = Sse::answer(&["secure"]).body();
        let _ = tls.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let _ = tls.flush();
    });
    (server, pem)
}

#[test]
fn an_untrusted_certificate_is_a_configuration_error_not_retried() {
    let env = TestEnv::new();
    let (server, pem) = tls_server();
    let url = format!("https://{}/v1", server.addr);
    let r = run(env
        .cmd_with(&url, KEY)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(52).stderr_has("SSL_CERT_FILE");
    assert_error_result(&r.result(), "tls_error");
    assert_eq!(server.connections(), 1, "not retried\n{r}");

    // What the hint says works: the certificate's PEM in SSL_CERT_FILE.
    let ca = env.root.join("ca.pem");
    std::fs::write(&ca, pem).expect("write the CA");
    let r = run(env.cmd_with(&url, KEY).env("SSL_CERT_FILE", &ca).arg("hi"));
    r.code(0).stdout_is("secure\n");
}

#[test]
fn https_to_a_plain_http_server_is_not_retried() {
    let env = TestEnv::new();
    let server = replying(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let url = format!("https://{}/v1", server.addr);
    protocol_error_sent_once(&server, env.cmd_with(&url, KEY));
}

// ---- Redirects -------------------------------------------------------------------------------

#[tokio::test]
async fn a_redirect_loop_sends_one_request() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    let location = format!("{}/chat/completions", base_url(&server));
    chat()
        .respond_with(ResponseTemplate::new(302).insert_header("location", location.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let r = run(env
        .cmd_for(&server)
        .args(["--retry-base-delay", "0", "--json", "hi"]));
    r.code(1).stderr_has("HTTP 302").stderr_has(&location);
    assert_error_result(&r.result(), "redirect");
}

#[tokio::test]
async fn redirects_are_errors_and_never_followed() {
    let elsewhere = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(Sse::answer(&["followed"]).respond())
        .expect(0)
        .mount(&elsewhere)
        .await;
    for status in [301, 302, 303, 307, 308] {
        let env = TestEnv::new();
        let server = server_with(
            ResponseTemplate::new(status)
                .insert_header("location", format!("{}/x", elsewhere.uri()).as_str()),
            1,
        )
        .await;
        let r = run(env.cmd_for(&server).args(["--json", "hi"]));
        r.code(1)
            .stderr_has(&format!("HTTP {status}"))
            .stderr_has(&format!("{}/x", elsewhere.uri()));
        assert_error_result(&r.result(), "redirect");
    }
}

// ---- Empty answers ---------------------------------------------------------------------------

#[tokio::test]
async fn an_answer_without_text_is_a_failure() {
    // A stream with no finish_reason at all (a lone `[DONE]`, empty choices) is incomplete, not
    // empty: tests/integration/completeness.rs.
    let cases: [(&str, ResponseTemplate, &str); 3] = [
        (
            "content null",
            Sse::default()
                .chunk(&json!({"role": "assistant", "content": null}), Some("stop"))
                .done()
                .respond(),
            "stop",
        ),
        (
            "content filter",
            Sse::new().finish("content_filter").done().respond(),
            "content filter",
        ),
        (
            "a JSON body with null content",
            ResponseTemplate::new(200).set_body_json(
                json!({"choices": [{"message": {"content": null}, "finish_reason": "length"}]}),
            ),
            "length",
        ),
    ];
    for (what, response, says) in cases {
        let env = TestEnv::new();
        let server = server_with(response, 1).await;
        let r = run(env.cmd_for(&server).args(["--json", "hi"]));
        assert_eq!(r.code, Some(1), "{what}\n{r}");
        let result = r.result();
        assert_error_result(&result, "empty_answer");
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message}");
    }
}

#[tokio::test]
async fn an_empty_answer_fails_its_job_in_a_batch() {
    let env = TestEnv::new();
    let server = server_with(Sse::new().finish("stop").done().respond(), 1).await;
    env.write_project("jobs.jsonl", &jsonl(&[json!({"id": "a", "prompt": "hi"})]));
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl"]));
    r.code(1);
    let line: Value = serde_json::from_str(env.read_project("out.jsonl").trim()).expect("a line");
    assert_eq!(line["is_error"], true, "{line}");
}

#[tokio::test]
async fn a_tool_call_without_text_is_an_answer() {
    let env = TestEnv::new();
    let call = json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
        "function": {"name": "f", "arguments": "{}"}}]});
    let server = server_with(
        Sse::new().chunk(&call, Some("tool_calls")).done().respond(),
        1,
    )
    .await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0);
}

// ---- Credentials in a base URL ---------------------------------------------------------------

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

#[test]
fn a_chunked_stream_cut_mid_chunk_is_still_retried() {
    // The boundary of the broken-chunked rule: a connection that ends inside a chunk was cut, and
    // a cut is temporary.
    let env = TestEnv::new();
    let server = replying(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n40\r\ndata: {\"choices\"",
    );
    let r = run(env.cmd_with(&server.base_url(), KEY).args([
        "--retries",
        "2",
        "--retry-base-delay",
        "0",
        "--json",
        "hi",
    ]));
    r.code(75);
    assert_eq!(server.connections(), 3, "retried\n{r}");
}

#[test]
fn an_http2_peer_that_breaks_the_protocol_is_not_retried() {
    // TLS with ALPN `h2`, then bytes that are not HTTP/2 frames.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a cert");
    let pem = cert.cert.pem();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .expect("a key");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("a server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let server = RawServer::start(move |mut tcp| {
        let Ok(mut conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        // Wait for the request's HEADERS frame (after the 24-byte preface, frames of a 9-byte
        // header and a payload), so that the garbage answers a request in flight.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut at = 24;
        loop {
            while got.len() >= at + 9 {
                let len = usize::from(got[at]) << 16
                    | usize::from(got[at + 1]) << 8
                    | usize::from(got[at + 2]);
                if got[at + 3] == 1 {
                    let _ = tls.write_all(&[0xff; 64]);
                    let _ = tls.flush();
                    let _ = tls.read(&mut buf);
                    return;
                }
                at += 9 + len;
            }
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let env = TestEnv::new();
    let ca = env.root.join("ca.pem");
    std::fs::write(&ca, pem).expect("write the CA");
    let mut cmd = env.cmd_with(&format!("https://{}/v1", server.addr), KEY);
    cmd.env("SSL_CERT_FILE", &ca);
    protocol_error_sent_once(&server, cmd);
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
