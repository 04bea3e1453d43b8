//! A submission that is interrupted finishes without doing anything twice: a crash at each step,
//! a failed or expired batch, cancel, a second fetch, the wall-time limit, SIGINT while waiting, and
//! a second process on the same batch.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::{JOBS, OK_JOBS, ids, keys, lines_by_id, qwen, submit_and_wait};
use crate::batch_api_emulator::{Emulator, Ending, Hang, SUBMIT_WAIT};
use crate::common::{KEY, TestEnv, run, wait_bounded};

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
    let r = submit_and_wait(&env, &emu, "jobs.yaml", &["--output", "r.jsonl"]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_batch_gives_error_lines_that_a_local_resume_runs_exactly() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_ending(Ending::Expire { ran: 2 });
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.yaml",
        &["--name", "x", "--output", "results.jsonl"],
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
fn a_second_fetch_does_not_download_again_and_delete_remote_cleans_up() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    submit_and_wait(
        &env,
        &emu,
        "jobs.yaml",
        &["--name", "f", "--output", "one.jsonl"],
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
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.yaml",
        &["--name", "w", "--max-wall-time", "200ms"],
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
