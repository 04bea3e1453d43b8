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

/// A batch against each kind of limited server loses no job, with no retry budget at all
/// (`--retries 0`): a 429 for rate is not a job's failure.
fn no_job_lost(style: Style) {
    let env = TestEnv::new();
    write_jobs(&env, 24);
    let server = LimitedServer::start(Mode::Bucket {
        rate: 40.0,
        burst: 4.0,
        style,
    });
    // Under GitHub Actions, so that the step summary is written too.
    let step_summary = env.root.join("step-summary.md");
    let out = run(env
        .cmd_with(&server.base_url, crate::common::KEY)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl", "--quiet"])
        .args([
            "--concurrency",
            "8",
            "--retries",
            "0",
            "--retry-base-delay",
            "0",
            "--summary",
            "summary.json",
        ]));
    out.code(0);
    all_succeeded(&env, 24);
    let markdown = std::fs::read_to_string(&step_summary).expect("a step summary");
    assert!(
        markdown.contains("rate limited (429)")
            && markdown.contains(&format!(" | {} |\n", server.rejected())),
        "the step summary counts every 429 ({}): {markdown}",
        server.rejected()
    );
    let summary: Value =
        serde_json::from_str(&env.read_project("summary.json")).expect("summary JSON");
    assert_eq!(summary["succeeded"], 24);
    assert_eq!(
        summary["rate_limited"].as_u64(),
        Some(server.rejected() as u64),
        "the summary counts every 429: {summary}"
    );
    assert!(summary["effective_requests_per_sec"].as_f64().is_some());
}

#[test]
fn no_job_lost_with_openai_ratelimit_headers() {
    no_job_lost(Style::Headers);
}

#[test]
fn no_job_lost_with_retry_after_only() {
    no_job_lost(Style::RetryAfter);
}

#[test]
fn no_job_lost_with_bare_429() {
    no_job_lost(Style::Bare);
}

#[test]
fn insufficient_quota_stops_the_batch_with_exit_1_and_no_retries() {
    let env = TestEnv::new();
    write_jobs(&env, 10);
    let server = LimitedServer::start(Mode::Quota);
    let out = batch(&env, &server, &["--concurrency", "4", "--retries", "5"]);
    out.code(1)
        .stderr_has("billing")
        .stderr_has("insufficient quota");
    // The batch starts with --concurrency 4 requests at most; none is retried, no other job is sent.
    assert!(server.requests() <= 4, "{} requests", server.requests());
    // The refused job has its line; the others are not run, or refused without a request.
    let lines = file_lines(&env, "out.jsonl");
    for line in &lines {
        assert_eq!(line["error"]["type"], "insufficient_quota", "{line}");
    }
}

#[test]
fn insufficient_quota_in_a_single_run_is_exit_1_without_retries() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::Quota);
    let out =
        run(env
            .cmd_with(&server.base_url, crate::common::KEY)
            .args(["--retries", "3", "hello"]));
    out.code(1).stderr_has("billing");
    assert_eq!(server.requests(), 1);
}

/// The first request is refused with `headers`; the batch waits the pause out (no request while it
/// runs) and then finishes.
fn honours(headers: &[(&str, &str)], pause: Duration) {
    let headers = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    honours_mode(Mode::PauseOnce { headers, pause });
}

fn honours_mode(mode: Mode) {
    let env = TestEnv::new();
    write_jobs(&env, 8);
    let server = LimitedServer::start(mode);
    let out = batch(&env, &server, &["--concurrency", "4", "--retries", "0"]);
    out.code(0);
    all_succeeded(&env, 8);
    assert_eq!(server.early(), 0, "a request was sent during the pause");
}

#[test]
fn retry_after_in_seconds_is_honoured() {
    honours(&[("retry-after", "1")], Duration::from_millis(950));
}

#[test]
fn retry_after_ms_is_honoured() {
    honours(&[("retry-after-ms", "400")], Duration::from_millis(380));
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    // The date has whole seconds: the pause ends at that second, between 1 and 2 s from now.
    let until = httpdate::parse_http_date(&date).expect("a date");
    honours_mode(Mode::PauseUntil {
        headers: vec![("retry-after".into(), date)],
        until,
    });
}

#[test]
fn openai_reset_durations_are_honoured() {
    honours(
        &[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "600ms"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149000"),
            ("x-ratelimit-reset-tokens", "0s"),
        ],
        Duration::from_millis(580),
    );
}

#[test]
fn a_long_retry_after_pauses_the_batch_instead_of_failing_jobs() {
    // 2 s is beyond --max-retry-wait 1s: a single run would fail; a batch waits.
    let env = TestEnv::new();
    write_jobs(&env, 4);
    let server = LimitedServer::start(Mode::PauseOnce {
        headers: vec![("x-ratelimit-reset-tokens".into(), "1.5s".into())],
        pause: Duration::from_millis(1450),
    });
    let out = batch(
        &env,
        &server,
        &["--concurrency", "4", "--max-retry-wait", "1s"],
    );
    out.code(0);
    all_succeeded(&env, 4);
    assert_eq!(server.early(), 0);
}

#[test]
fn the_pause_is_shared_by_the_requests_in_flight() {
    let env = TestEnv::new();
    write_jobs(&env, 40);
    let server = LimitedServer::start(Mode::PauseAt {
        at: 12,
        pause: Duration::from_millis(800),
    });
    let out = batch(
        &env,
        &server,
        &[
            "--concurrency",
            "8",
            "--retries",
            "0",
            "--summary",
            "s.json",
        ],
    );
    out.code(0);
    all_succeeded(&env, 40);
    assert_eq!(
        server.early(),
        0,
        "requests were sent while the server's pause ran"
    );
}

#[test]
fn single_run_honours_openai_reset_hint() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::PauseOnce {
        headers: vec![
            ("x-ratelimit-remaining-requests".into(), "0".into()),
            ("x-ratelimit-reset-requests".into(), "300ms".into()),
        ],
        pause: Duration::from_millis(280),
    });
    let out =
        run(env
            .cmd_with(&server.base_url, crate::common::KEY)
            .args(["--retries", "1", "hello"]));
    out.code(0);
    assert_eq!(server.early(), 0);
    assert_eq!(server.requests(), 2);
}

#[test]
fn single_run_refuses_a_reset_beyond_max_retry_wait() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::PauseOnce {
        headers: vec![
            ("x-ratelimit-remaining-tokens".into(), "0".into()),
            ("x-ratelimit-reset-tokens".into(), "6m0s".into()),
        ],
        pause: Duration::from_secs(360),
    });
    let out = run(env.cmd_with(&server.base_url, crate::common::KEY).args([
        "--retries",
        "3",
        "--max-retry-wait",
        "10s",
        "hello",
    ]));
    out.code(75).stderr_has("360s");
    assert_eq!(server.requests(), 1);
}

#[test]
fn a_server_that_never_recovers_ends_the_batch_with_75_and_resume_finishes_it() {
    let env = TestEnv::new();
    write_jobs(&env, 12);
    let server = LimitedServer::start(Mode::Never);
    let out = batch(
        &env,
        &server,
        &[
            "--concurrency",
            "4",
            "--max-rate-limit-wait",
            "300ms",
            "--retry-base-delay",
            "0",
        ],
    );
    out.code(75)
        .stderr_has("--max-rate-limit-wait (300ms)")
        .stderr_has("--resume");
    let lines = file_lines(&env, "out.jsonl");
    assert!(
        lines.iter().all(|l| l["is_error"] == true),
        "no success is possible: {lines:#?}"
    );

    server.set_mode(Mode::Open);
    let out = batch(&env, &server, &["--concurrency", "4", "--resume"]);
    out.code(0);
    all_succeeded(&env, 12);
}

/// With fallback models, a model whose server has refused for `--max-rate-limit-wait` hands its
/// jobs to the next model instead of ending the batch: every job succeeds there.
#[test]
fn a_model_refused_past_the_rate_limit_wait_hands_its_jobs_to_the_fallback_model() {
    let env = TestEnv::new();
    write_jobs(&env, 12);
    let server = LimitedServer::start(Mode::NeverFor("primary".to_owned()));
    let out = batch(
        &env,
        &server,
        &[
            "--model",
            "primary",
            "--fallback-model",
            "backup",
            "--concurrency",
            "4",
            "--max-rate-limit-wait",
            "300ms",
            "--retry-base-delay",
            "0",
        ],
    );
    out.code(0);
    assert_eq!(
        out.stderr
            .matches("its jobs go to `backup` from now on")
            .count(),
        1,
        "said once, not once per job: {}",
        out.stderr
    );
    all_succeeded(&env, 12);
    for line in file_lines(&env, "out.jsonl") {
        assert_eq!(line["fallback_from"], json!(["primary"]), "{line}");
    }
    assert!(server.rejected() > 0, "the primary model was refused");
}

/// `LiteLLM`'s own 429 says only `llm_provider-retry-after`: a single run waits that long (no request
/// before it is over) instead of spending its retries on a backoff of its own.
#[test]
fn a_single_run_waits_for_litellms_llm_provider_retry_after() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::PauseOnce {
        headers: vec![("llm_provider-retry-after".into(), "1".into())],
        pause: Duration::from_millis(950),
    });
    let started = Instant::now();
    let out = run(env.cmd_with(&server.base_url, crate::common::KEY).args([
        "--retries",
        "3",
        "--retry-base-delay",
        "0",
        "hello",
    ]));
    out.code(0);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "the retry did not wait for the hint"
    );
    assert_eq!(
        server.early(),
        0,
        "a request was sent before the hint ran out"
    );
    assert_eq!(server.requests(), 2);
}

#[test]
fn a_single_run_refuses_a_litellm_hint_beyond_max_retry_wait_at_once() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::PauseOnce {
        headers: vec![("llm_provider-retry-after".into(), "60".into())],
        pause: Duration::from_secs(60),
    });
    let out = run(env.cmd_with(&server.base_url, crate::common::KEY).args([
        "--retries",
        "3",
        "--retry-base-delay",
        "0",
        "--max-retry-wait",
        "10s",
        "hello",
    ]));
    out.code(75)
        .stderr_has("the server asked to wait 60s before retrying");
    assert_eq!(server.requests(), 1);
}

/// Issue 19 L8: `Retry-After: 1.0000001` against `--max-retry-wait 1s` is one second, not "1s, more
/// than 1s".
#[test]
fn a_retry_after_a_hair_over_max_retry_wait_is_honoured() {
    let env = TestEnv::new();
    let server = LimitedServer::start(Mode::PauseOnce {
        headers: vec![("retry-after".into(), "1.0000001".into())],
        pause: Duration::from_millis(950),
    });
    let out = run(env.cmd_with(&server.base_url, crate::common::KEY).args([
        "--retries",
        "1",
        "--max-retry-wait",
        "1s",
        "hello",
    ]));
    out.code(0);
    assert_eq!(server.early(), 0);
    assert_eq!(server.requests(), 2);
}

/// Issue 19 L1: one success saying the budget is one request a day, spent, held every later
/// request up to an hour, past --max-rate-limit-wait, while the progress line said "1 in flight".
/// The wait on the server's budget is bounded like a 429's pause, and said.
#[test]
fn a_day_long_budget_wait_is_held_back_and_bounded_by_max_rate_limit_wait() {
    let env = TestEnv::new();
    write_jobs(&env, 3);
    let server = LimitedServer::start(Mode::HeadersOnce(vec![
        ("x-ratelimit-limit-requests".into(), "1".into()),
        ("x-ratelimit-remaining-requests".into(), "0".into()),
        ("x-ratelimit-reset-requests".into(), "24h".into()),
    ]));
    let started = Instant::now();
    let out = run(env
        .cmd_with(&server.base_url, crate::common::KEY)
        .args(["--jobs", "jobs.jsonl", "--output", "out.jsonl"])
        .args([
            "--concurrency",
            "1",
            "--max-rate-limit-wait",
            "2s",
            "--progress-interval",
            "500ms",
        ]));
    out.code(75)
        .stderr_has("--max-rate-limit-wait (2s)")
        .stderr_has("held back by the server for 1s (nothing sent)");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.requests(), 1, "nothing was sent while held");
}

/// `LiteLLM`'s fixed windows: its 429 always says 60 s, its successes say what is left but not when
/// the window reopens. The batch finds the reopened window by a probe and sends what it allows,
/// instead of waiting the 60 s out or keeping a learnt pace. 25 jobs, 10 per 2-second window: three
/// windows, the last opening 4 s after the start.
#[test]
fn a_fixed_window_is_used_as_soon_as_it_reopens() {
    let env = TestEnv::new();
    write_jobs(&env, 25);
    let server = LimitedServer::start(Mode::FixedWindow {
        limit: 10,
        window: Duration::from_secs(2),
    });
    let started = Instant::now();
    let out = batch(
        &env,
        &server,
        &[
            "--concurrency",
            "10",
            "--retries",
            "0",
            "--summary",
            "s.json",
        ],
    );
    let took = started.elapsed();
    out.code(0);
    all_succeeded(&env, 25);
    // The third window opens at 4 s; probes every 2 s find each window at most 2 s late.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        server.rejected() <= 15,
        "{} refused: more than the probes",
        server.rejected()
    );
}
