//! A local OpenAI-compatible chat server that echoes the last user message, for trying `qwen`
//! without an account and for benchmarks. Streams SSE like the real APIs, reports usage.
//!
//! ```text
//! cargo run --example echo-server -- --port 8080 --latency-ms 50
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::format_push_string,
    clippy::disallowed_methods,
    reason = "a standalone example program, not part of qwen"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

#[derive(Clone, Copy)]
struct Options {
    latency: Duration,
}

fn usage() -> ! {
    eprintln!("usage: echo-server [--port N] [--latency-ms N]");
    std::process::exit(2)
}

fn parse_args() -> (u16, Options) {
    let mut port = 8080;
    let mut latency_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--port" => port = value(),
            "--latency-ms" => latency_ms = value().into(),
            _ => usage(),
        }
    }
    (
        port,
        Options {
            latency: Duration::from_millis(latency_ms),
        },
    )
}

/// The text of the last user message (a string, or the text parts of a list).
fn last_user_text(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    let Some(message) = messages.iter().rev().find(|m| m["role"] == "user") else {
        return String::new();
    };
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

async fn handle(
    req: Request<Incoming>,
    opts: Options,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path.ends_with("/models") {
        let body = json!({"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "local"}]});
        return Ok(response(
            StatusCode::OK,
            "application/json",
            body.to_string(),
        ));
    }
    if req.method() != Method::POST || !path.ends_with("/chat/completions") {
        let body =
            json!({"error": {"message": format!("no route for {path}"), "type": "not_found"}});
        return Ok(response(
            StatusCode::NOT_FOUND,
            "application/json",
            body.to_string(),
        ));
    }
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(response(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "bad body".into(),
            ));
        }
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        let err =
            json!({"error": {"message": "the body is not JSON", "type": "invalid_request_error"}});
        return Ok(response(
            StatusCode::BAD_REQUEST,
            "application/json",
            err.to_string(),
        ));
    };
    if !opts.latency.is_zero() {
        tokio::time::sleep(opts.latency).await;
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("echo")
        .to_owned();
    let text = last_user_text(&body);
    let input_tokens = text.split_whitespace().count() as u64;
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let output_tokens = words.len() as u64;
    let usage = json!({"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                       "total_tokens": input_tokens + output_tokens});
    let id = "chatcmpl-echo";
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let doc = json!({"id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage});
        return Ok(response(
            StatusCode::OK,
            "application/json",
            doc.to_string(),
        ));
    }
    let mut sse = String::new();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    sse.push_str(&format!(
        "data: {}\n\n",
        chunk(json!({"role": "assistant", "content": ""}), Value::Null)
    ));
    for word in &words {
        sse.push_str(&format!(
            "data: {}\n\n",
            chunk(json!({"content": word}), Value::Null)
        ));
    }
    sse.push_str(&format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
    let usage_chunk = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [], "usage": usage});
    sse.push_str(&format!("data: {usage_chunk}\n\ndata: [DONE]\n\n"));
    Ok(response(StatusCode::OK, "text/event-stream", sse))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (port, opts) = parse_args();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!(
        "echo server listening on http://{addr}/v1 (latency {} ms)",
        opts.latency.as_millis()
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, opts));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
