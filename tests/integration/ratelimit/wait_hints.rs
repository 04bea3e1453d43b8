//! The server's wait hints are honoured (Retry-After in seconds, ms or an HTTP date, `OpenAI`'s
//! reset durations, `LiteLLM`'s `llm_provider-*`), the pause is shared, and a wait beyond
//! `--max-retry-wait` is refused.

use std::time::{Duration, Instant, SystemTime};

use super::{LimitedServer, Mode, all_succeeded, batch, write_jobs};
use crate::common::{TestEnv, run};

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
