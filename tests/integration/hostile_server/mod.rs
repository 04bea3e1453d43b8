//! Hostile and broken servers (issue 9, section 5): bounded responses, server text that can carry
//! neither the key nor a workflow command, permanent failures that are not retried, no redirects,
//! empty answers that fail, no credentials in a base URL, and no proxy for loopback.
//! Misbehaving peers are tiny TCP servers on 127.0.0.1 (one thread per connection), which count
//! the connections they get: a count of 1 proves that nothing was retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::Sse;

mod answers;
mod not_retried;
mod server_text;
mod urls_and_proxies;

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
