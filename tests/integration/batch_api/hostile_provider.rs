//! A hostile provider (issue 19): its batch objects, lines, errors and figures are checked, scrubbed
//! and bounded, never printed or stored as they came.

use serde_json::Value;

use super::{OK_JOBS, finished_batch, lines_by_id, qwen, submit_and_wait};
use crate::batch_api_emulator::Emulator;
use crate::common::{KEY, TestEnv};

#[test]
fn openai_batch_lines_are_data_never_cut_or_rewritten() {
    let env = TestEnv::new();
    let long = format!("##[error]x ::warning::y {}", "z".repeat(3000));
    env.write_project(
        "jobs.jsonl",
        &format!("{}\n", serde_json::json!({"id": "a", "prompt": long})),
    );
    let emu = Emulator::start(KEY);
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.jsonl",
        &["--name", "d", "-o", "openai-batch"],
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
fn a_providers_huge_request_counts_do_not_wrap_or_crash() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_batch_patch(Some(serde_json::json!({
        "request_counts": {"total": u64::MAX, "completed": u64::MAX, "failed": u64::MAX}
    })));
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.yaml",
        &[
            "--name",
            "huge",
            "--max-requests-per-file",
            "2",
            "--output",
            "r.jsonl",
        ],
    );
    r.code(0)
        .stderr_has(&format!("requests {}/{}", u64::MAX, u64::MAX));
    assert_eq!(lines_by_id(&env.read_project("r.jsonl")).len(), 5);
}
