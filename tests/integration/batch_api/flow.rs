//! The full path through the provider's Batch API: submit, wait, fetch into local result lines,
//! parts split by the per-file limit, the provider's own line format, schemas, usage errors, status
//! and list as JSON, and the key kept out of every output.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::{JOBS, OK_JOBS, finished_batch, ids, keys, lines_by_id, qwen, submit_and_wait};
use crate::batch_api_emulator::{Emulator, Ending};
use crate::common::{KEY, TestEnv, run, server_answering};

#[test]
fn submit_wait_fetch_writes_one_local_line_per_job() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.yaml",
        &["--name", "nightly", "--output", "results.jsonl"],
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
    let remote = submit_and_wait(&env, &emu, "jobs.yaml", &["--output", "remote.jsonl"]);
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
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.jsonl",
        &[
            "--name",
            "split",
            "--max-requests-per-file",
            "3",
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

#[test]
fn openai_batch_format_keeps_the_provider_lines() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    emu.set_ending(Ending::Expire { ran: 4 });
    let r = submit_and_wait(&env, &emu, "jobs.yaml", &["-o", "openai-batch"]);
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
    let r = submit_and_wait(
        &env,
        &emu,
        "jobs.jsonl",
        &["--name", "schema", "--output", "results.jsonl"],
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
