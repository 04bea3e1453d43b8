//! Permanent failures are not retried (a peer that does not speak HTTP, oversized headers, a broken
//! body, TLS errors, HTTP/2 protocol errors), redirects are errors, and a cut connection is retried.

use std::io::{Read, Write};
use std::sync::Arc;

use wiremock::{MockServer, ResponseTemplate};

use super::{RawServer, read_request, replying, tls_server};
use crate::common::{KEY, Sse, TestEnv, assert_error_result, base_url, chat, run, server_with};

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
