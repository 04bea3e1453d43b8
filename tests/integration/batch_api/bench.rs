//! The provider batch benchmark of BENCHMARKS.md (ignored; run on demand).

use std::fmt::Write as _;
use std::process::Stdio;

use crate::batch_api_emulator::Emulator;
use crate::common::{KEY, TestEnv};

/// GNU time's figures for one command: (wall seconds, user+system seconds, peak RSS in KiB).
fn timed(env: &TestEnv, emu: &Emulator, bin: &str, args: &[&str]) -> (f64, f64, u64) {
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .args(args)
        .env_clear()
        .env("HOME", &env.home)
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &emu.base_url)
        .current_dir(&env.project)
        .stdin(Stdio::null())
        .output()
        .expect("run GNU time");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    let field = |name: &str| -> String {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map_or_else(
                || panic!("no `{name}` in:\n{stderr}"),
                |v| v.trim().to_owned(),
            )
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .rsplit(':')
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .expect("seconds");
    let cpu = field("User time (seconds):").parse::<f64>().expect("user")
        + field("System time (seconds):")
            .parse::<f64>()
            .expect("system");
    let rss = field("Maximum resident set size (kbytes):")
        .parse()
        .expect("rss");
    (wall, cpu, rss)
}

/// The benchmark of BENCHMARKS.md: `QWEN_BENCH_BIN=target/release/qwen cargo nextest run
/// --run-ignored only -E 'test(bench_provider_batch)' --no-capture`.
#[test]
#[ignore = "a benchmark: run on demand with QWEN_BENCH_BIN"]
#[allow(
    clippy::print_stderr,
    clippy::cast_precision_loss,
    reason = "the benchmark reports its figures"
)]
fn bench_provider_batch_submit_and_fetch_100k_jobs() {
    let bin = std::env::var("QWEN_BENCH_BIN").expect("QWEN_BENCH_BIN: the qwen binary to measure");
    let n: usize = std::env::var("QWEN_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let env = TestEnv::new();
    let mut jobs = String::with_capacity(n * 80);
    for i in 0..n {
        let _ = writeln!(
            jobs,
            "{{\"id\":\"job-{i}\",\"prompt\":\"Summarise item number {i} of the nightly review queue in one line.\"}}"
        );
    }
    env.write_project("jobs.jsonl", &jobs);
    let emu = Emulator::start(KEY);
    emu.set_tick_on_poll(false);
    let submit = timed(
        &env,
        &emu,
        &bin,
        &[
            "batch",
            "submit",
            "jobs.jsonl",
            "--name",
            "bench",
            "--quiet",
        ],
    );
    let parts = emu.batch_count();
    for _ in 0..3 {
        emu.advance();
    }
    assert!(emu.statuses().iter().all(|s| s == "completed"));
    let fetch = timed(
        &env,
        &emu,
        &bin,
        &[
            "batch",
            "fetch",
            "bench",
            "--output",
            "results.jsonl",
            "--quiet",
        ],
    );
    let results = env.read_project("results.jsonl");
    let ids: std::collections::HashSet<&str> = results
        .lines()
        .map(|l| {
            l.split("\"id\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("an id")
        })
        .collect();
    assert_eq!(ids.len(), n);
    assert_eq!(results.lines().count(), n);
    let input_mb = jobs.len() as f64 / 1e6;
    let uploaded: usize = emu.uploads().iter().map(|(_, c)| c.len()).sum();
    eprintln!(
        "jobs {n} ({input_mb:.1} MB job file, {:.1} MB uploaded in {parts} parts, {:.1} MB results)\n\
         submit: wall {:.2} s, cpu {:.2} s, peak RSS {:.1} MiB\n\
         fetch:  wall {:.2} s, cpu {:.2} s, peak RSS {:.1} MiB",
        uploaded as f64 / 1e6,
        results.len() as f64 / 1e6,
        submit.0,
        submit.1,
        submit.2 as f64 / 1024.0,
        fetch.0,
        fetch.1,
        fetch.2 as f64 / 1024.0,
    );
}
