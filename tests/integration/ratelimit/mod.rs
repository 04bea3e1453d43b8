//! Batches against a rate-limited server: no job lost whatever the server says (x-ratelimit-*
//! headers, Retry-After only, a bare 429), quota is not rate, the server's wait hints are honoured
//! and the pause is shared (gateways' spellings too: `LiteLLM`'s `llm_provider-*`), a fixed window
//! is used as soon as it reopens, a wait on the server's budget is bounded and said, and a server
//! that never recovers ends the batch resumably.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::batch_support::{
    TokioServer, file_lines, jsonl, last_user_message, read_json_request, sorted,
};
use crate::common::{Run, TestEnv, run};

mod lost_and_quota;
mod pauses_and_ends;
mod wait_hints;

// The 429 for rate OpenAI sends (the body real servers send; `code: rate_limit_exceeded`).
fn rate_limit_body() -> String {
    json!({"error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "type": "requests",
        "param": null,
        "code": "rate_limit_exceeded"
    }})
    .to_string()
}

// The 429 for billing OpenAI sends (`ChatGPTNextWeb/NextChat#3123`).
fn quota_body() -> String {
    json!({"error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": null,
        "code": "insufficient_quota"
    }})
    .to_string()
}

/// How the test server treats a request.
#[derive(Clone)]
enum Mode {
    /// A token bucket (`rate` per second, `burst`); beyond it a 429 in the given style.
    Bucket { rate: f64, burst: f64, style: Style },
    /// The first request gets a 429 with these headers and the server refuses (and counts as
    /// "early") everything that arrives before `pause` has passed; then it answers everything.
    PauseOnce {
        headers: Vec<(String, String)>,
        pause: Duration,
    },
    /// The same, with the pause ending at a wall-clock time (an HTTP date has whole seconds).
    PauseUntil {
        headers: Vec<(String, String)>,
        until: SystemTime,
    },
    /// Request number `at` (1-based) gets a 429 with `retry-after-ms`; requests arriving during the
    /// pause (after a grace for those already on their way) are early.
    PauseAt { at: usize, pause: Duration },
    /// A 429 for rate, always.
    Never,
    /// A 429 for rate, always, for this model; the other models are answered.
    NeverFor(String),
    /// A 429 for quota, always.
    Quota,
    /// Answers everything.
    Open,
    /// The first answer (a success) carries these headers; then everything is answered.
    HeadersOnce(Vec<(String, String)>),
    /// `LiteLLM`'s `rpm` with `enforce_model_rate_limits`: at most `limit` requests per fixed
    /// window (aligned on the server's start, as `LiteLLM`'s on the calendar minute); successes say
    /// `x-ratelimit-limit-requests` and `-remaining-requests` (no reset), a refusal says only
    /// `llm_provider-retry-after: 60`.
    FixedWindow { limit: usize, window: Duration },
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Headers,
    RetryAfter,
    Bare,
}

struct State {
    mode: Mode,
    level: f64,
    at: Instant,
    requests: usize,
    rejected: usize,
    /// Requests that arrived while the server's announced pause was running.
    early: usize,
    quiet: Option<(Instant, Instant)>,
    /// `Mode::FixedWindow`: the window's number and the requests it admitted.
    window: (u64, usize),
}

/// A raw HTTP/1.1 server on 127.0.0.1 with a rate limit (wiremock cannot keep a token bucket).
struct LimitedServer {
    base_url: String,
    state: Arc<Mutex<State>>,
    _server: TokioServer,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl LimitedServer {
    fn start(mode: Mode) -> Self {
        let burst = match &mode {
            Mode::Bucket { burst, .. } => *burst,
            _ => 0.0,
        };
        let state = Arc::new(Mutex::new(State {
            mode,
            level: burst,
            at: Instant::now(),
            requests: 0,
            rejected: 0,
            early: 0,
            quiet: None,
            window: (0, 0),
        }));
        let shared = Arc::clone(&state);
        let server = TokioServer::start(1, move |socket| {
            let state = Arc::clone(&shared);
            async move {
                let _ = serve(socket, &state).await;
            }
        });
        Self {
            base_url: server.base_url.clone(),
            state,
            _server: server,
        }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("lock").mode = mode;
    }

    fn requests(&self) -> usize {
        self.state.lock().expect("lock").requests
    }

    fn rejected(&self) -> usize {
        self.state.lock().expect("lock").rejected
    }

    fn early(&self) -> usize {
        self.state.lock().expect("lock").early
    }
}

/// Decide the answer to one request.
#[allow(clippy::too_many_lines)]
fn decide(state: &mut State, prompt: &str, model: &str) -> Reply {
    let now = Instant::now();
    state.requests += 1;
    let ok = |prompt: &str| {
        Reply {
        status: 200,
        headers: Vec::new(),
        body: json!({
            "id": "chatcmpl-limited", "object": "chat.completion", "created": 1,
            "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": prompt}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        })
        .to_string(),
    }
    };
    let refuse = |headers: Vec<(String, String)>, body: String| Reply {
        status: 429,
        headers,
        body,
    };
    if let Some((from, until)) = state.quiet
        && now >= from
        && now < until
    {
        state.early += 1;
        state.rejected += 1;
        return refuse(Vec::new(), rate_limit_body());
    }
    let mode = state.mode.clone();
    match mode {
        Mode::Open => ok(prompt),
        Mode::HeadersOnce(headers) => {
            let mut reply = ok(prompt);
            if state.requests == 1 {
                reply.headers = headers;
            }
            reply
        }
        Mode::FixedWindow { limit, window } => {
            let index =
                u64::try_from(now.duration_since(state.at).as_millis() / window.as_millis().max(1))
                    .unwrap_or(u64::MAX);
            if state.window.0 != index {
                state.window = (index, 0);
            }
            if state.window.1 >= limit {
                state.rejected += 1;
                return refuse(
                    vec![("llm_provider-retry-after".into(), "60".into())],
                    rate_limit_body(),
                );
            }
            state.window.1 += 1;
            let mut reply = ok(prompt);
            reply.headers = vec![
                ("x-ratelimit-limit-requests".into(), limit.to_string()),
                (
                    "x-ratelimit-remaining-requests".into(),
                    (limit - state.window.1).to_string(),
                ),
            ];
            reply
        }
        Mode::NeverFor(refused) if refused != model => ok(prompt),
        Mode::Never | Mode::NeverFor(_) => {
            state.rejected += 1;
            refuse(
                vec![("retry-after-ms".into(), "20".into())],
                rate_limit_body(),
            )
        }
        Mode::Quota => {
            state.rejected += 1;
            refuse(Vec::new(), quota_body())
        }
        Mode::PauseUntil { headers, until } => {
            // Less a little: the client's clock is read a moment after the server's.
            let pause = until
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(Duration::from_millis(20));
            state.mode = Mode::PauseOnce { headers, pause };
            state.requests -= 1;
            decide(state, prompt, model)
        }
        Mode::PauseOnce { headers, pause } => {
            if state.requests == 1 {
                state.rejected += 1;
                // Requests sent with the first one, before its 429 came back, are not early.
                state.quiet = Some((now + Duration::from_millis(150), now + pause));
                refuse(headers, rate_limit_body())
            } else {
                ok(prompt)
            }
        }
        Mode::PauseAt { at, pause } => {
            if state.requests == at {
                state.rejected += 1;
                // Requests already on their way when the 429 leaves are not early.
                state.quiet = Some((now + Duration::from_millis(150), now + pause));
                refuse(
                    vec![("retry-after-ms".into(), pause.as_millis().to_string())],
                    rate_limit_body(),
                )
            } else {
                ok(prompt)
            }
        }
        Mode::Bucket { rate, burst, style } => {
            state.level =
                (state.level + now.duration_since(state.at).as_secs_f64() * rate).min(burst);
            state.at = now;
            let admitted = state.level >= 1.0;
            if admitted {
                state.level -= 1.0;
            }
            let mut headers = Vec::new();
            if style == Style::Headers {
                let full_in = (burst - state.level) / rate;
                headers = vec![
                    ("x-ratelimit-limit-requests".into(), format!("{burst}")),
                    (
                        "x-ratelimit-remaining-requests".into(),
                        format!("{}", state.level.floor()),
                    ),
                    (
                        "x-ratelimit-reset-requests".into(),
                        format!("{}ms", (full_in * 1000.0).ceil()),
                    ),
                ];
            }
            if admitted {
                let mut reply = ok(prompt);
                reply.headers = headers;
                return reply;
            }
            state.rejected += 1;
            if style == Style::RetryAfter {
                let wait = (1.0 - state.level) / rate;
                headers.push(("retry-after".into(), format!("{}", wait.ceil().max(1.0))));
            }
            refuse(headers, rate_limit_body())
        }
    }
}

async fn serve(mut socket: tokio::net::TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(body) = read_json_request(&mut socket, &mut buf).await? else {
            return Ok(());
        };
        let prompt = last_user_message(&body).unwrap_or_default();
        let model = body["model"].as_str().unwrap_or_default();
        let reply = decide(&mut state.lock().expect("lock"), &prompt, model);
        let mut response = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            reply.status,
            if reply.status == 200 {
                "OK"
            } else {
                "Too Many Requests"
            },
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            let _ = write!(response, "{name}: {value}\r\n");
        }
        response.push_str("\r\n");
        response.push_str(&reply.body);
        socket.write_all(response.as_bytes()).await?;
        socket.flush().await?;
    }
}

/// `n` jobs `{id: j<i>, prompt: "prompt j<i>"}`.
fn write_jobs(env: &TestEnv, n: usize) {
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("j{i}"), "prompt": format!("prompt j{i}")}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
}

fn batch(env: &TestEnv, server: &LimitedServer, args: &[&str]) -> Run {
    run(env
        .cmd_with(&server.base_url, crate::common::KEY)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl", "--quiet"])
        .args(args))
}

/// Every job has exactly one line, and it is a success.
#[track_caller]
fn all_succeeded(env: &TestEnv, n: usize) {
    let lines = file_lines(env, "out.jsonl");
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["is_error"], false, "a job failed: {l}");
            l["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    ids.sort();
    let want: Vec<String> = sorted(&(0..n).map(|i| format!("j{i}")).collect::<Vec<_>>());
    assert_eq!(ids, want);
}
