//! `qwen batch submit|status|fetch|cancel|list` against the local Files + Batches emulator: the
//! full path, crashes at each step, splitting, expiry then a local `--resume`, cancel, the
//! provider's own line format, and the key kept out of every output.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::batch_api_emulator::{Emulator, Ending, Hang, SUBMIT_WAIT};
use crate::common::{KEY, Run, TestEnv, run, server_answering, wait_bounded};

/// Five jobs; `b` is refused by the provider (a per-line 400).
const JOBS: &str = "\
jobs:
  - id: a
    prompt: first
  - id: b
    prompt: FAIL400 please
  - id: c
    prompt: third
  - id: d
    prompt: fourth
  - id: e
    prompt: fifth
";

const OK_JOBS: &str = "\
jobs:
  - id: a
    prompt: first
  - id: b
    prompt: second
  - id: c
    prompt: third
  - id: d
    prompt: fourth
  - id: e
    prompt: fifth
";

fn qwen(env: &TestEnv, emu: &Emulator, args: &[&str]) -> Run {
    run(env.cmd_with(&emu.base_url, KEY).args(args))
}

/// The result lines of a file, by id; fails when an id appears twice.
fn lines_by_id(text: &str) -> HashMap<String, Value> {
    let mut by_id = HashMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let id = v
            .get("custom_id")
            .or_else(|| v.get("id"))
            .and_then(Value::as_str)
            .expect("an id")
            .to_owned();
        assert!(
            by_id.insert(id.clone(), v).is_none(),
            "`{id}` twice in:\n{text}"
        );
    }
    by_id
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn keys(map: &HashMap<String, Value>) -> BTreeSet<String> {
    map.keys().cloned().collect()
}

#[test]
fn submit_wait_fetch_writes_one_local_line_per_job() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "nightly",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "results.jsonl",
        ],
    );
    // One job was refused for good: exit 1.
    r.code(1).stdout_empty().stderr_has("1 failed");
    let results = lines_by_id(&env.read_project("results.jsonl"));
    assert_eq!(keys(&results), ids(&["a", "b", "c", "d", "e"]));
    assert_eq!(results["a"]["result"], "echo: first");
    assert_eq!(results["a"]["is_error"], false);
    assert_eq!(results["a"]["index"], 0);
    assert_eq!(results["a"]["usage"]["input_tokens"], 10);
    assert_eq!(results["b"]["is_error"], true);
    assert_eq!(results["b"]["error"]["type"], "api_error");
    // Each job became one Batch API input line, without `stream`.
    let uploads = emu.uploads();
    assert_eq!(uploads.len(), 1);
    let input: Vec<Value> = uploads[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(input.len(), 5);
    assert_eq!(input[0]["custom_id"], "a");
    assert_eq!(input[0]["method"], "POST");
    assert_eq!(input[0]["url"], "/v1/chat/completions");
    assert_eq!(input[0]["body"]["messages"][0]["content"], "first");
    assert!(input[0]["body"].get("stream").is_none());
    // Metadata names the batch and the part.
    assert_eq!(emu.batch_count(), 1);
    let ledger: Value =
        serde_json::from_str(&env.read_project(".qwen/batches/nightly.json")).expect("the ledger");
    assert_eq!(ledger["parts"][0]["status"], "completed");
    assert_eq!(ledger["parts"][0]["create"], "done");
    assert_eq!(ledger["parts"][0]["download"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_lines_have_the_fields_of_a_local_batch() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    let server = server_answering(&["echo"]).await;
    let local = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.yaml", "--output", "local.jsonl"]));
    local.code(0);
    let remote = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "remote.jsonl",
        ],
    );
    remote.code(0);
    let fields = |text: &str| -> BTreeSet<String> {
        let v: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
        v.as_object().expect("an object").keys().cloned().collect()
    };
    assert_eq!(
        fields(&env.read_project("local.jsonl")),
        fields(&env.read_project("remote.jsonl"))
    );
}

#[test]
fn output_flags_without_wait_are_a_usage_error() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.yaml", "--output", "r.jsonl"],
    )
    .code(2)
    .stderr_has("need --wait");
    assert!(emu.log().is_empty());
}

#[test]
fn an_invalid_job_file_uploads_nothing() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", "jobs:\n  - id: a\n  - id: b\n    prompt: ok\n");
    let emu = Emulator::start(KEY);
    qwen(&env, &emu, &["batch", "submit", "jobs.yaml"])
        .code(42)
        .stdout_empty()
        .stderr_has("nothing was sent");
    assert!(emu.log().is_empty(), "{:?}", emu.log());
}

#[test]
fn qwen_oauth_is_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    let expiry = crate::common_oauth::now_ms() + 3_600_000;
    env.write_home(
        ".qwen/oauth_creds.json",
        &serde_json::json!({"access_token": "tok-oauth-1234", "refresh_token": "r", "token_type": "Bearer",
            "expiry_date": expiry, "resource_url": "127.0.0.1:9"}).to_string(),
    );
    run(env
        .cmd()
        .args(["batch", "submit", "jobs.yaml", "--auth-type", "qwen-oauth"]))
    .code(41)
    .stdout_empty()
    .stderr_has("Qwen OAuth");
    assert!(emu.log().is_empty());
}

/// Start `qwen batch submit` as a child, wait until the emulator holds `request`, kill it.
fn crash_during(env: &TestEnv, emu: &Emulator, hang: Hang, ready: impl Fn(&Emulator) -> bool) {
    emu.set_hang(Some(hang));
    let mut child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &emu.base_url)
        .args(["batch", "submit", "jobs.yaml", "--name", "n"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn qwen");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready(emu) {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached: {:?}",
            emu.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill qwen");
    let _ = wait_bounded(child, Duration::from_secs(20));
    emu.set_hang(None);
}

#[test]
fn a_crash_after_the_upload_resumes_without_uploading_again() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    crash_during(&env, &emu, Hang::BeforeCreate, |e| {
        e.count("POST /v1/batches") == 1
    });
    let ledger = env.read_project(".qwen/batches/n.json");
    assert!(ledger.contains("\"upload\": \"done\""), "{ledger}");
    assert_eq!(emu.batch_count(), 0);
    let r = qwen(&env, &emu, &["batch", "submit", "jobs.yaml", "--name", "n"]);
    r.code(0).stderr_has("resuming");
    assert_eq!(emu.count("POST /v1/files"), 1, "{:?}", emu.log());
    assert_eq!(emu.batch_count(), 1);
    assert_eq!(r.stdout.trim(), "batch_000002");
}

#[test]
fn a_crash_while_the_upload_answer_is_lost_finds_the_file_instead_of_uploading_again() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    crash_during(&env, &emu, Hang::AfterUpload, |e| e.file_count() == 1);
    let ledger = env.read_project(".qwen/batches/n.json");
    assert!(ledger.contains("\"upload\": \"started\""), "{ledger}");
    let r = qwen(&env, &emu, &["batch", "submit", "jobs.yaml", "--name", "n"]);
    r.code(0);
    assert_eq!(emu.count("POST /v1/files"), 1, "{:?}", emu.log());
    assert_eq!(emu.count("GET /v1/files"), 1, "{:?}", emu.log());
    assert_eq!(emu.file_count(), 1);
    assert_eq!(emu.batch_count(), 1);
}

#[test]
fn a_failed_batch_gives_every_job_a_temporary_error_line() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_ending(Ending::Fail);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "r.jsonl",
        ],
    );
    r.code(75).stderr_has("failed 1");
    let results = lines_by_id(&env.read_project("r.jsonl"));
    assert_eq!(results.len(), 5);
    for v in results.values() {
        assert_eq!(v["error"]["type"], "batch_failed");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("message")
                .contains("rejected"),
            "{v}"
        );
    }
}

#[test]
fn a_crash_after_the_create_finds_the_batch_instead_of_creating_another() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    crash_during(&env, &emu, Hang::AfterCreate, |e| e.batch_count() == 1);
    let ledger = env.read_project(".qwen/batches/n.json");
    assert!(ledger.contains("\"create\": \"started\""), "{ledger}");
    let r = qwen(&env, &emu, &["batch", "submit", "jobs.yaml", "--name", "n"]);
    r.code(0);
    assert_eq!(emu.batch_count(), 1, "{:?}", emu.log());
    assert_eq!(emu.count("POST /v1/files"), 1);
    assert_eq!(emu.count("POST /v1/batches"), 1, "{:?}", emu.log());
    assert_eq!(r.stdout.trim(), "batch_000002");
    // And the rest of the way works: every job once.
    let f = qwen(
        &env,
        &emu,
        &[&SUBMIT_WAIT[..], &["--output", "r.jsonl"]].concat(),
    );
    f.code(0);
    assert_eq!(
        keys(&lines_by_id(&env.read_project("r.jsonl"))),
        ids(&["a", "b", "c", "d", "e"])
    );
    assert_eq!(emu.batch_count(), 1);
}

#[test]
fn parts_respect_the_per_file_limit_and_hold_one_model_each() {
    let env = TestEnv::new();
    env.write_project(
        "jobs.jsonl",
        &(0..7).fold(String::new(), |mut text, i| {
            let model = if i % 3 == 0 { "other-model" } else { "gpt-4o" };
            let _ = writeln!(
                text,
                "{{\"id\":\"j{i}\",\"prompt\":\"p{i}\",\"model\":\"{model}\"}}"
            );
            text
        }),
    );
    let emu = Emulator::start(KEY);
    emu.set_max_requests(3);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.jsonl",
            "--name",
            "split",
            "--max-requests-per-file",
            "3",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "r.jsonl",
        ],
    );
    r.code(0);
    // gpt-4o: 4 jobs -> 3 + 1; other-model: 3 jobs -> 3.
    let uploads = emu.uploads();
    assert_eq!(uploads.len(), 3, "{uploads:?}");
    for (_, content) in &uploads {
        let models: BTreeSet<String> = content
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("JSON")["body"]["model"]
                    .as_str()
                    .expect("model")
                    .to_owned()
            })
            .collect();
        assert_eq!(models.len(), 1, "{content}");
        assert!(content.lines().count() <= 3);
    }
    assert_eq!(emu.statuses(), vec!["completed"; 3]);
    let results = lines_by_id(&env.read_project("r.jsonl"));
    assert_eq!(results.len(), 7);
    assert_eq!(results["j3"]["model"], "other-model");
    assert_eq!(results["j3"]["index"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_batch_gives_error_lines_that_a_local_resume_runs_exactly() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_ending(Ending::Expire { ran: 2 });
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "x",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "results.jsonl",
        ],
    );
    r.code(75).stderr_has("--resume");
    let results = lines_by_id(&env.read_project("results.jsonl"));
    assert_eq!(results.len(), 5);
    let failed: BTreeSet<String> = results
        .iter()
        .filter(|(_, v)| v["is_error"] == true)
        .map(|(k, v)| {
            assert_eq!(v["error"]["type"], "batch_expired");
            // From the provider's error file, where an expired batch lists what it never ran.
            assert!(
                v["error"]["message"]
                    .as_str()
                    .expect("message")
                    .contains("never ran"),
                "{v}"
            );
            k.clone()
        })
        .collect();
    assert_eq!(failed, ids(&["c", "d", "e"]));
    // The local run sends exactly the three that did not run.
    let server = crate::common::server_expecting(3).await;
    run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.yaml",
        "--resume",
        "--output",
        "results.jsonl",
    ]))
    .code(0);
    let after = lines_by_id(&env.read_project("results.jsonl"));
    assert_eq!(keys(&after), ids(&["a", "b", "c", "d", "e"]));
    assert!(after.values().all(|v| v["is_error"] == false));
}

#[test]
fn cancel_then_fetch_gives_the_unrun_jobs_error_lines() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_tick_on_poll(false);
    let s = qwen(&env, &emu, &["batch", "submit", "jobs.yaml", "--name", "c"]);
    s.code(0);
    assert_eq!(s.stdout, "batch_000002\n");
    emu.advance(); // validating -> in_progress, half of it ran
    qwen(&env, &emu, &["batch", "status", "c"])
        .code(0)
        .stdout_has("in_progress");
    qwen(&env, &emu, &["batch", "cancel", "c"])
        .code(0)
        .stdout_has("cancelling");
    // Not ended yet: fetch says so (temporary).
    qwen(&env, &emu, &["batch", "fetch", "c", "--output", "r.jsonl"])
        .code(75)
        .stderr_has("has not finished");
    emu.advance(); // cancelling -> cancelled
    let st = qwen(&env, &emu, &["batch", "status", "c", "--json"]);
    st.code(0);
    let status: Value = serde_json::from_str(&st.stdout).expect("JSON");
    assert_eq!(status["status"], "cancelled");
    let f = qwen(&env, &emu, &["batch", "fetch", "c", "--output", "r.jsonl"]);
    f.code(1);
    let results = lines_by_id(&env.read_project("r.jsonl"));
    assert_eq!(keys(&results), ids(&["a", "b", "c", "d", "e"]));
    let cancelled = results
        .values()
        .filter(|v| v["error"]["type"] == "batch_cancelled")
        .count();
    assert_eq!(cancelled, 3, "{results:?}");
    // `list` knows the batch without the network.
    run(env.cmd().args(["batch", "list"]))
        .code(0)
        .stdout_has("c\tcancelled\t5 jobs");
}

#[test]
fn openai_batch_format_keeps_the_provider_lines() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    emu.set_ending(Ending::Expire { ran: 4 });
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--wait",
            "--poll-interval",
            "10ms",
            "-o",
            "openai-batch",
        ],
    );
    r.code(1);
    let lines = lines_by_id(&r.stdout);
    assert_eq!(keys(&lines), ids(&["a", "b", "c", "d", "e"]));
    assert_eq!(lines["a"]["response"]["status_code"], 200);
    assert_eq!(
        lines["a"]["response"]["body"]["choices"][0]["message"]["content"],
        "echo: first"
    );
    assert!(
        lines["a"]["id"]
            .as_str()
            .expect("id")
            .starts_with("batch_req_")
    );
    assert_eq!(lines["b"]["response"]["status_code"], 400);
    assert_eq!(lines["e"]["response"], Value::Null);
    assert_eq!(lines["e"]["error"]["code"], "batch_expired");
}

#[test]
fn the_key_is_never_printed_or_stored_in_results() {
    let env = TestEnv::new();
    env.write_project(
        "jobs.yaml",
        "jobs:\n  - id: a\n    prompt: LEAKKEY\n  - id: b\n    prompt: fine\n",
    );
    let emu = Emulator::start(KEY);
    for format in ["json", "openai-batch"] {
        let out = format!("r-{format}.jsonl");
        let r = qwen(
            &env,
            &emu,
            &[
                "batch",
                "submit",
                "jobs.yaml",
                "--name",
                format,
                "--wait",
                "--poll-interval",
                "10ms",
                "-o",
                format,
                "--output",
                &out,
                "--debug",
            ],
        );
        r.code(1);
        let results = env.read_project(&out);
        let ledger = env.read_project(&format!(".qwen/batches/{format}.json"));
        for text in [&r.stdout, &r.stderr, &results, &ledger] {
            assert!(!text.contains(KEY), "the key leaked:\n{text}");
        }
        assert!(results.contains("[REDACTED]"), "{results}");
    }
}

#[test]
fn a_second_fetch_does_not_download_again_and_delete_remote_cleans_up() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "f",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "one.jsonl",
        ],
    )
    .code(1);
    let downloads = emu.count("GET /v1/files/");
    assert_eq!(downloads, 2, "output and error files: {:?}", emu.log());
    qwen(
        &env,
        &emu,
        &["batch", "fetch", "f", "--output", "one.jsonl"],
    )
    .code(42)
    .stderr_has("--overwrite");
    let again = qwen(
        &env,
        &emu,
        &[
            "batch",
            "fetch",
            "f",
            "--output",
            "one.jsonl",
            "--overwrite",
            "--delete-remote",
        ],
    );
    again.code(1);
    assert_eq!(emu.count("GET /v1/files/"), downloads);
    assert_eq!(keys(&lines_by_id(&env.read_project("one.jsonl"))).len(), 5);
    assert_eq!(
        emu.file_count(),
        0,
        "input, output and error files are deleted"
    );
}

#[test]
fn max_wall_time_stops_waiting_and_leaves_the_batch_running() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_tick_on_poll(false);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "w",
            "--wait",
            "--poll-interval",
            "10ms",
            "--max-wall-time",
            "200ms",
        ],
    );
    r.code(55).stdout_empty().stderr_has("qwen batch fetch w");
    assert_eq!(emu.statuses(), vec!["validating"]);
}

#[test]
fn sigint_while_waiting_exits_130_and_leaves_the_batch_running() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_tick_on_poll(false);
    let mut child = crate::batch_support::spawn(
        &env,
        &emu.base_url,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "s",
            "--wait",
            "--poll-interval",
            "10ms",
        ],
    );
    // The progress line says the batch exists and is being polled.
    child.wait_until("the first progress line", Duration::from_secs(20), |c| {
        c.stderr_now().contains("validating 1")
    });
    child.signal("INT");
    let r = child.wait(Duration::from_secs(20));
    r.code(130)
        .stdout_empty()
        .stderr_has("keeps running at the provider");
    assert_eq!(emu.statuses(), vec!["validating"]);
    assert_eq!(emu.count("POST /v1/batches/"), 0, "not cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_a_command_word_and_a_prompt_needs_p() {
    let env = TestEnv::new();
    let emu = Emulator::start(KEY);
    // `qwen batch …` is the command, not a prompt.
    qwen(&env, &emu, &["batch", "these", "files"])
        .code(2)
        .stdout_empty();
    assert!(emu.log().is_empty());
    let server = crate::common::server_expecting(1).await;
    run(env.cmd_for(&server).args(["-p", "batch these files"]))
        .code(0)
        .stdout_is("ok\n");
}

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

#[test]
fn fields_a_batch_api_line_cannot_carry_are_refused_before_anything_is_uploaded() {
    let env = TestEnv::new();
    env.write_project("schema.json", r#"{"type":"object"}"#);
    let emu = Emulator::start(KEY);
    for job in [
        r#"{"id":"a","prompt":"hi","headers":{"X-Api-Key":"job-secret-value-1234"}}"#,
        r#"{"id":"a","prompt":"hi","fallback_models":["m2"]}"#,
    ] {
        env.write_project("jobs.jsonl", &format!("{job}\n"));
        qwen(
            &env,
            &emu,
            &["batch", "submit", "jobs.jsonl", "--name", "x"],
        )
        .code(42)
        .stdout_empty()
        .stderr_has("not supported by the provider's Batch API");
        assert!(emu.log().is_empty(), "{:?}", emu.log());
    }
}

#[test]
fn a_jobs_schema_is_asked_for_and_its_answer_validated_on_fetch() {
    let env = TestEnv::new();
    env.write_project(
        "schema.json",
        r#"{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}"#,
    );
    env.write_project(
        "jobs.jsonl",
        concat!(
            r#"{"id":"good","prompt":"JSON:{\"ok\":true}","json_schema":"schema.json"}"#,
            "\n",
            r#"{"id":"bad","prompt":"JSON:{\"ok\":\"no\"}","json_schema":"schema.json"}"#,
            "\n",
            r#"{"id":"plain","prompt":"hello"}"#,
            "\n"
        ),
    );
    let emu = Emulator::start(KEY);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.jsonl",
            "--name",
            "schema",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "results.jsonl",
        ],
    );
    // The answer that does not match is a job failed for good.
    r.code(1).stdout_empty();
    let results = lines_by_id(&env.read_project("results.jsonl"));
    assert_eq!(results["good"]["is_error"], false);
    assert_eq!(
        results["good"]["structured_result"],
        serde_json::json!({"ok": true})
    );
    assert_eq!(results["good"]["result"], r#"{"ok":true}"#);
    assert_eq!(results["bad"]["is_error"], true);
    assert_eq!(results["bad"]["error"]["type"], "schema_validation");
    assert_eq!(results["bad"]["error"]["last_answer"], r#"{"ok":"no"}"#);
    assert!(results["plain"].get("structured_result").is_none());
    // The schema was asked for as a local run asks: `response_format` with the schema.
    let input: Vec<Value> = emu.uploads()[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(input[0]["body"]["response_format"]["type"], "json_schema");
    assert!(input[2]["body"].get("response_format").is_none());
}

// ---- A hostile repository or provider (issue 19): ledgers, ids, the state directory, outputs.

/// A finished batch `name` of `OK_JOBS`, submitted and waited for (not fetched).
fn finished_batch(env: &TestEnv, emu: &Emulator, name: &str) {
    qwen(env, emu, &["batch", "submit", "jobs.yaml", "--name", name]).code(0);
    for _ in 0..3 {
        emu.advance();
    }
}

/// Edit the ledger of `name` as a pull request could.
fn edit_ledger(env: &TestEnv, name: &str, edit: impl FnOnce(&mut Value)) {
    let rel = format!(".qwen/batches/{name}.json");
    let mut ledger: Value = serde_json::from_str(&env.read_project(&rel)).expect("the ledger");
    edit(&mut ledger);
    env.write_project(&rel, &ledger.to_string());
}

/// A ledger as a repository would commit it: one part not yet uploaded, its input file `input`.
fn committed_ledger(name: &str, input: &str) -> String {
    serde_json::json!({
        "version": 1, "name": name, "submission": "0123456789abcdef0123456789abcdef",
        "created_at": 1, "base_url": "BASE", "job_file": "jobs.jsonl", "jobs": 1,
        "completion_window": "24h",
        "parts": [{"part": 1, "model": "gpt-4o", "requests": 1, "bytes": 10, "input": input,
            "upload": "pending", "input_file_id": null, "create": "pending", "batch_id": null,
            "status": null, "request_counts": null, "output_file_id": null, "error_file_id": null,
            "batch_error": null, "download": "pending", "output": null, "errors": null}]
    })
    .to_string()
}

#[test]
fn a_committed_ledger_cannot_upload_delete_or_read_a_file_outside_its_directory() {
    let env = TestEnv::new();
    env.write_project("jobs.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    let secret = env.write_project("id_deploy", "PRIVATE KEY");
    let emu = Emulator::start(KEY);
    let absolute = secret.display().to_string();
    for input in [
        "../../../id_deploy",
        absolute.as_str(),
        "part-0001.input.jsonl/../../x",
    ] {
        let ledger = committed_ledger("nightly", input).replace("BASE", &emu.base_url);
        env.write_project(".qwen/batches/nightly.json", &ledger);
        qwen(
            &env,
            &emu,
            &["batch", "submit", "jobs.jsonl", "--name", "nightly"],
        )
        .code(42)
        .stdout_empty()
        .stderr_has("damaged");
        assert_eq!(env.read_project("id_deploy"), "PRIVATE KEY", "{input}");
        assert!(emu.log().is_empty(), "{input}: {:?}", emu.log());
    }
    // The right name, but a link to the file: not uploaded, not removed.
    let ledger =
        committed_ledger("nightly", "part-0001.input.jsonl").replace("BASE", &emu.base_url);
    env.write_project(".qwen/batches/nightly.json", &ledger);
    std::fs::create_dir_all(env.project_path(".qwen/batches/nightly")).expect("mkdir");
    std::os::unix::fs::symlink(
        &secret,
        env.project_path(".qwen/batches/nightly/part-0001.input.jsonl"),
    )
    .expect("symlink");
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.jsonl", "--name", "nightly"],
    )
    .code(42)
    .stdout_empty()
    .stderr_has("cannot upload");
    assert_eq!(env.read_project("id_deploy"), "PRIVATE KEY");
    assert_eq!(emu.count("POST /v1/files"), 0, "{:?}", emu.log());
    // A ledger named for another batch, or whose `output` names another file, is damaged too.
    env.write_project(
        ".qwen/batches/other.json",
        &committed_ledger("nightly", "part-0001.input.jsonl"),
    );
    qwen(&env, &emu, &["batch", "fetch", "other"])
        .code(42)
        .stderr_has("damaged");
    env.write_project(
        ".qwen/batches/nightly.json",
        &ledger.replace("\"output\":null", "\"output\":\"../../../id_deploy\""),
    );
    qwen(&env, &emu, &["batch", "fetch", "nightly"])
        .code(42)
        .stdout_empty()
        .stderr_has("damaged");
    // `list` names a damaged ledger on stderr and leaves it out.
    run(env.cmd().args(["batch", "list"]))
        .code(0)
        .stdout_empty()
        .stderr_has("damaged");
    // A committed part file that is a regular file of the tree is sent like a job file would be,
    // but not removed: qwen did not make its directory (no marker).
    std::fs::remove_file(env.project_path(".qwen/batches/other.json")).expect("rm");
    std::fs::remove_file(env.project_path(".qwen/batches/nightly/part-0001.input.jsonl"))
        .expect("rm");
    let line = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o\",\"messages\":[]}}\n";
    env.write_project(".qwen/batches/nightly/part-0001.input.jsonl", line);
    env.write_project(".qwen/batches/nightly.json", &ledger);
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.jsonl", "--name", "nightly"],
    )
    .code(0);
    assert_eq!(emu.uploads().len(), 1);
    assert_eq!(
        env.read_project(".qwen/batches/nightly/part-0001.input.jsonl"),
        line
    );
}

#[test]
fn ids_from_a_ledger_never_become_other_api_paths() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    let before = emu.log().len();
    let hostile = [
        ("batch_id", "../models/ft:gpt-4o:x"),
        ("output_file_id", "../assistants/asst_1"),
        ("input_file_id", "../fine_tuning/jobs/ftjob-1"),
        ("error_file_id", "file-1%2F..%2Fx"),
        ("batch_id", "batch_1\u{1b}[2J"),
    ];
    for (field, id) in hostile {
        edit_ledger(&env, "n", |l| l["parts"][0][field] = Value::from(id));
        for args in [
            &["batch", "fetch", "n", "--delete-remote"][..],
            &["batch", "cancel", "n"],
            &["batch", "status", "n"],
        ] {
            let r = qwen(&env, &emu, args);
            r.code(42).stdout_empty().stderr_has("damaged");
            assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
        }
        edit_ledger(&env, "n", |l| l["parts"][0][field] = Value::Null);
    }
    assert_eq!(emu.log().len(), before, "nothing sent: {:?}", emu.log());
}

#[test]
fn delete_remote_and_cancel_touch_only_what_this_submission_made() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_tick_on_poll(false);
    // Batch `mine` ends; batch `yours` (the user's other batch) is still running.
    finished_batch(&env, &emu, "mine");
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.yaml", "--name", "yours"],
    )
    .code(0);
    let yours: Value =
        serde_json::from_str(&env.read_project(".qwen/batches/yours.json")).expect("ledger");
    let your_batch = yours["parts"][0]["batch_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let your_file = yours["parts"][0]["input_file_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A ledger that names the other batch's file: --delete-remote deletes what `mine`'s batch
    // object names, never that file.
    edit_ledger(&env, "mine", |l| {
        l["parts"][0]["input_file_id"] = Value::from(your_file.as_str());
        l["parts"][0]["output_file_id"] = Value::from(your_file.as_str());
    });
    let files_before = emu.file_count();
    qwen(
        &env,
        &emu,
        &[
            "batch",
            "fetch",
            "mine",
            "--output",
            "r.jsonl",
            "--delete-remote",
        ],
    )
    .code(0);
    assert!(
        !emu.log().contains(&format!("DELETE /v1/files/{your_file}")),
        "{:?}",
        emu.log()
    );
    assert_eq!(
        emu.file_count(),
        files_before - 2,
        "mine's input and output"
    );
    // A ledger whose batch id is the other batch: cancel refuses, nothing is cancelled.
    edit_ledger(&env, "mine", |l| {
        l["parts"][0]["batch_id"] = Value::from(your_batch.as_str());
        l["parts"][0]["status"] = Value::from("in_progress");
    });
    qwen(&env, &emu, &["batch", "cancel", "mine"])
        .code(42)
        .stdout_empty()
        .stderr_has("not created by this submission");
    assert_eq!(emu.count("POST /v1/batches/"), 0, "{:?}", emu.log());
    assert_eq!(emu.statuses()[1], "validating");
}

#[test]
fn a_linked_state_directory_is_refused_and_nothing_outside_is_removed() {
    let env = TestEnv::new();
    env.write_project("reviews.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    let emu = Emulator::start(KEY);
    let projects = env.home.join("projects");
    std::fs::create_dir_all(projects.join("reviews")).expect("mkdir");
    std::fs::write(projects.join("reviews/keep.txt"), "mine").expect("write");
    std::fs::create_dir_all(env.project_path(".git")).expect("mkdir");
    for (link, target) in [
        (".qwen", env.home.clone()),
        (".qwen/batches", projects.clone()),
    ] {
        if link == ".qwen/batches" {
            std::fs::create_dir_all(env.project_path(".qwen")).expect("mkdir");
        }
        std::os::unix::fs::symlink(&target, env.project_path(link)).expect("symlink");
        qwen(&env, &emu, &["batch", "submit", "reviews.jsonl"])
            .code(42)
            .stdout_empty()
            .stderr_has("symbolic link");
        assert_eq!(
            std::fs::read_to_string(projects.join("reviews/keep.txt")).expect("kept"),
            "mine"
        );
        std::fs::remove_file(env.project_path(link)).expect("unlink");
    }
    // `--state-dir` through a link out of the project is refused the same way.
    std::os::unix::fs::symlink(&projects, env.project_path("state")).expect("symlink");
    qwen(
        &env,
        &emu,
        &["batch", "submit", "reviews.jsonl", "--state-dir", "state"],
    )
    .code(42)
    .stderr_has("symbolic link");
    // A directory qwen did not make (no marker) is never removed.
    std::fs::create_dir_all(env.project_path(".qwen/batches/reviews")).expect("mkdir");
    env.write_project(".qwen/batches/reviews/keep.txt", "mine");
    qwen(&env, &emu, &["batch", "submit", "reviews.jsonl"])
        .code(42)
        .stderr_has("not made by qwen");
    assert_eq!(env.read_project(".qwen/batches/reviews/keep.txt"), "mine");
    assert!(emu.log().is_empty(), "{:?}", emu.log());
    assert_eq!(
        std::fs::read_to_string(projects.join("reviews/keep.txt")).expect("kept"),
        "mine"
    );
}

#[test]
fn openai_batch_lines_are_data_never_cut_or_rewritten() {
    let env = TestEnv::new();
    let long = format!("##[error]x ::warning::y {}", "z".repeat(3000));
    env.write_project(
        "jobs.jsonl",
        &format!("{}\n", serde_json::json!({"id": "a", "prompt": long})),
    );
    let emu = Emulator::start(KEY);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.jsonl",
            "--name",
            "d",
            "--wait",
            "--poll-interval",
            "10ms",
            "-o",
            "openai-batch",
        ],
    );
    r.code(0);
    let line: Value = serde_json::from_str(r.stdout.trim_end()).expect("one valid JSON line");
    assert_eq!(
        line["response"]["body"]["choices"][0]["message"]["content"],
        format!("echo: {long}")
    );
}

#[test]
fn hostile_batch_objects_are_refused_never_printed_or_stored() {
    let hostile = [
        serde_json::json!({"id": "batch_1\n::warning::pwned"}),
        serde_json::json!({"id": format!("batch_{KEY}")}),
        serde_json::json!({"status": "validating\u{1b}]0;title\u{7}"}),
        serde_json::json!({"status": format!("x{KEY}")}),
        serde_json::json!({"output_file_id": "../models/ft:x"}),
        serde_json::json!({"error_file_id": format!("../{KEY}/\u{1b}[2J")}),
    ];
    for patch in hostile {
        let env = TestEnv::new();
        env.write_project("jobs.yaml", OK_JOBS);
        let emu = Emulator::start(KEY);
        emu.set_batch_patch(Some(patch.clone()));
        let r = qwen(&env, &emu, &["batch", "submit", "jobs.yaml", "--name", "h"]);
        r.code(1).stdout_empty().stderr_has("refused");
        let ledger = env.read_project(".qwen/batches/h.json");
        for text in [&r.stderr, &ledger] {
            assert!(!text.contains(KEY), "{patch}: {text}");
            assert!(!text.contains('\u{1b}'), "{patch}: {text}");
            assert!(!text.contains("\n::warning"), "{patch}: {text}");
        }
        assert!(
            !emu.log().iter().any(|l| l.contains("models")),
            "{:?}",
            emu.log()
        );
    }
}

#[test]
fn a_credential_header_echoed_in_a_batch_api_error_is_scrubbed() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start("sk-another-key-9999");
    emu.set_echo_headers(true);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "-H",
            "X-Api-Key: header-secret-value-123456",
            "--retries",
            "0",
        ],
    );
    r.code(41).stdout_empty().stderr_has("Incorrect API key");
    assert!(
        !r.stderr.contains("header-secret-value-123456"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(KEY), "{}", r.stderr);
}

#[test]
fn a_second_process_on_the_same_batch_exits_75_naming_the_first() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_hang(Some(Hang::AfterCreate));
    let mut first = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &emu.base_url)
        .args(["batch", "submit", "jobs.yaml", "--name", "same"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn qwen");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while emu.batch_count() == 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", emu.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = first.id().to_string();
    for args in [
        &["batch", "submit", "jobs.yaml", "--name", "same"][..],
        &["batch", "fetch", "same"],
        &["batch", "cancel", "same"],
    ] {
        qwen(&env, &emu, args)
            .code(75)
            .stdout_empty()
            .stderr_has("in use by another qwen process")
            .stderr_has(&pid);
    }
    // `status` still answers (and leaves the ledger to its holder).
    qwen(&env, &emu, &["batch", "status", "same"]).code(0);
    assert_eq!(emu.batch_count(), 1, "one paid batch: {:?}", emu.log());
    first.kill().expect("kill qwen");
    let _ = wait_bounded(first, Duration::from_secs(20));
}

#[test]
fn an_oversized_download_is_refused_and_a_part_that_failed_to_convert_is_downloaded_again() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", "jobs:\n  - id: a\n    prompt: one\n");
    let emu = Emulator::start(KEY);
    // One request may need at most one line of 64 MiB: 65 MiB is more than it can need.
    let mut huge = vec![b'x'; 65 * 1024 * 1024];
    huge.push(b'\n');
    emu.set_output_override(Some(huge));
    finished_batch(&env, &emu, "big");
    qwen(
        &env,
        &emu,
        &["batch", "fetch", "big", "--output", "r.jsonl"],
    )
    .code(1)
    .stderr_has("larger than");
    let names: Vec<_> = std::fs::read_dir(env.project_path(".qwen/batches/big"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("output")),
        "nothing of it kept: {names:?}"
    );
    assert!(!env.project_path("r.jsonl").exists());
}

#[test]
fn a_line_too_long_to_convert_drops_its_part_file_for_the_next_fetch() {
    let env = TestEnv::new();
    env.write_project(
        "jobs.yaml",
        "jobs:\n  - id: a\n    prompt: one\n  - id: b\n    prompt: two\n",
    );
    let emu = Emulator::start(KEY);
    let mut long = vec![b'x'; 64 * 1024 * 1024 + 10];
    long.push(b'\n');
    emu.set_output_override(Some(long));
    finished_batch(&env, &emu, "long");
    let downloads = |emu: &Emulator| emu.count("GET /v1/files/");
    qwen(
        &env,
        &emu,
        &["batch", "fetch", "long", "--output", "r.jsonl"],
    )
    .code(42)
    .stderr_has("longer than")
    .stderr_has("downloads it again");
    assert_eq!(downloads(&emu), 1);
    assert!(
        !env.project_path(".qwen/batches/long/part-0001.output.jsonl")
            .exists()
    );
    let ledger: Value =
        serde_json::from_str(&env.read_project(".qwen/batches/long.json")).expect("ledger");
    assert_eq!(ledger["parts"][0]["output"], Value::Null);
    qwen(
        &env,
        &emu,
        &["batch", "fetch", "long", "--output", "r.jsonl"],
    )
    .code(42);
    assert_eq!(downloads(&emu), 2, "downloaded again, not reused");
}

#[test]
fn fetch_output_writes_through_a_link_and_refuses_its_own_state_files() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    let real = env.write_project("real.jsonl", "old\n");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::symlink("real.jsonl", env.project_path("link.jsonl")).expect("symlink");
    qwen(
        &env,
        &emu,
        &[
            "batch",
            "fetch",
            "n",
            "--output",
            "link.jsonl",
            "--overwrite",
        ],
    )
    .code(0);
    let link = std::fs::symlink_metadata(env.project_path("link.jsonl")).expect("link");
    assert!(link.file_type().is_symlink(), "the link is kept");
    assert_eq!(lines_by_id(&env.read_project("real.jsonl")).len(), 5);
    let mode = std::fs::metadata(&real).expect("real").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "its mode is kept");
    // The job file, the ledger (by a link too) and the state directory are never the output.
    std::os::unix::fs::symlink(".qwen/batches/n.json", env.project_path("ledger-link"))
        .expect("symlink");
    for output in [
        "jobs.yaml",
        ".qwen/batches/n.json",
        "ledger-link",
        ".qwen/batches/n.lock",
        ".qwen/batches/n/part-0001.output.jsonl",
    ] {
        qwen(
            &env,
            &emu,
            &["batch", "fetch", "n", "--output", output, "--overwrite"],
        )
        .code(2)
        .stdout_empty();
    }
    assert_eq!(env.read_project("jobs.yaml"), OK_JOBS);
    qwen(&env, &emu, &["batch", "status", "n"]).code(0);
    // A link to nothing is refused, never replaced.
    std::os::unix::fs::symlink("nowhere.jsonl", env.project_path("dangling")).expect("symlink");
    qwen(&env, &emu, &["batch", "fetch", "n", "--output", "dangling"])
        .code(42)
        .stderr_has("a link to nothing");
    assert!(!env.project_path("nowhere.jsonl").exists());
    // A FIFO is not a results file (and opening it never hangs).
    let fifo = env.project_path("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    qwen(&env, &emu, &["batch", "fetch", "n", "--output", "fifo"])
        .code(42)
        .stderr_has("not a regular file");
}

#[test]
fn a_stdout_write_error_other_than_a_closed_pipe_is_exit_1() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    for args in [
        &["batch", "fetch", "n"][..],
        &["batch", "status", "n"],
        &["batch", "list"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let child = env
            .std_cmd()
            .env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", &emu.base_url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(full)
            .spawn()
            .expect("spawn qwen");
        wait_bounded(child, Duration::from_secs(20))
            .code(1)
            .stderr_has("standard output");
    }
}

#[test]
fn status_and_list_json_keep_their_fields_in_order() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    let r = qwen(&env, &emu, &["batch", "status", "n", "--json"]);
    r.code(0);
    let status: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("an object").keys().cloned().collect() };
    assert_eq!(
        keys(&status),
        ["name", "status", "jobs", "created_at", "job_file", "parts"]
    );
    assert_eq!(
        keys(&status["parts"][0]),
        [
            "part",
            "batch_id",
            "model",
            "requests",
            "status",
            "request_counts",
            "downloaded"
        ]
    );
    assert_eq!(status["parts"][0]["request_counts"]["total"], 5);
    let list = run(env.cmd().args(["batch", "list", "--json"]));
    list.code(0);
    let list: Value = serde_json::from_str(&list.stdout).expect("JSON");
    assert_eq!(list[0], status);
}

#[test]
fn a_providers_huge_request_counts_do_not_wrap_or_crash() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_batch_patch(Some(serde_json::json!({
        "request_counts": {"total": u64::MAX, "completed": u64::MAX, "failed": u64::MAX}
    })));
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "huge",
            "--max-requests-per-file",
            "2",
            "--wait",
            "--poll-interval",
            "10ms",
            "--output",
            "r.jsonl",
        ],
    );
    r.code(0)
        .stderr_has(&format!("requests {}/{}", u64::MAX, u64::MAX));
    assert_eq!(lines_by_id(&env.read_project("r.jsonl")).len(), 5);
}

#[test]
fn a_refusal_in_a_providers_output_is_a_failed_refusal_line() {
    let env = TestEnv::new();
    env.write_project(
        "jobs.yaml",
        "jobs:\n  - id: ok\n    prompt: fine\n  - id: no\n    prompt: REFUSE this\n",
    );
    let emu = Emulator::start(KEY);
    let r = qwen(
        &env,
        &emu,
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "r",
            "--wait",
            "--poll-interval",
            "0s",
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let lines = lines_by_id(&r.stdout);
    assert_eq!(lines["ok"]["is_error"], false, "{}", r.stdout);
    assert_eq!(lines["no"]["is_error"], true, "{}", r.stdout);
    assert_eq!(lines["no"]["error"]["type"], "refusal", "{}", r.stdout);
    assert!(
        lines["no"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("I can't help with that.")),
        "{}",
        r.stdout
    );
}
