//! Long waits: a server that never recovers ends the batch resumably, a model refused past the
//! wait hands its jobs to the fallback, a budget wait is bounded and said, a fixed window is used as
//! soon as it reopens.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{LimitedServer, Mode, all_succeeded, batch, write_jobs};
use crate::batch_support::file_lines;
use crate::common::{TestEnv, run};

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
