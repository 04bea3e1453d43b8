//! One door for the command line: a request flag means the same in `qwen --jobs FILE` and in
//! `qwen batch submit FILE` (the same request bodies, flag for flag), and a flag the Batch API
//! cannot honour is refused there with its reason.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::batch_api_emulator::Emulator;
use crate::common::{KEY, TestEnv, run, server_answering};

const JOBS: &str = "\
jobs:
  - id: a
    prompt: first
  - id: b
    prompt: second
    temperature: 0.9
";

const SCHEMA: &str = r#"{"type":"object","properties":{"label":{"type":"string"}},"required":["label"],"additionalProperties":false}"#;

/// Every request flag `qwen` accepts, with a value, as `qwen batch submit` must accept it too.
fn request_flags() -> Vec<&'static str> {
    vec![
        "--system-prompt",
        "be brief",
        "--temperature",
        "0.25",
        "--max-tokens",
        "77",
        "--top-p",
        "0.5",
        "--seed",
        "7",
        "--stop",
        "END",
        "--stop",
        "FIN",
        "--reasoning-effort",
        "low",
        "--extra-body",
        r#"{"x":1,"top_k":20}"#,
        "--json-schema",
        "@s.json",
        "-m",
        "model-from-flag",
    ]
}

/// A body without what differs by transport: streaming (a local run streams, a Batch API line
/// cannot) and the token limit's name (the local client names it when it sends).
fn comparable(mut body: Value) -> Value {
    let map = body.as_object_mut().expect("a body object");
    map.remove("stream");
    map.remove("stream_options");
    if let Some(n) = map.remove("max_completion_tokens") {
        map.insert("max_tokens".into(), n);
    }
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_submit_builds_the_same_bodies_as_a_local_batch_for_every_request_flag() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    env.write_project("s.json", SCHEMA);

    // The local batch, against a server that records what it is sent.
    let server = server_answering(&[r#"{"label":"ok"}"#]).await;
    let local = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.yaml", "--output", "local.jsonl"])
        .args(request_flags()));
    assert_eq!(local.code, Some(0), "{}", local.stderr);
    let mut sent: BTreeMap<String, Value> = BTreeMap::new();
    for request in server.received_requests().await.expect("recorded") {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON");
        let prompt = body["messages"][1]["content"]
            .as_str()
            .expect("a prompt")
            .to_owned();
        sent.insert(prompt, comparable(body));
    }
    assert_eq!(sent.len(), 2, "{sent:?}");

    // The same file and flags through the provider's Batch API.
    let emu = Emulator::start(KEY);
    let submitted = run(env
        .cmd_with(&emu.base_url, KEY)
        .args(["batch", "submit", "jobs.yaml", "--name", "same"])
        .args(request_flags()));
    assert_eq!(submitted.code, Some(0), "{}", submitted.stderr);
    let uploads = emu.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let mut uploaded: BTreeMap<String, Value> = BTreeMap::new();
    for line in uploads[0].1.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let body = v["body"].clone();
        let prompt = body["messages"][1]["content"]
            .as_str()
            .expect("a prompt")
            .to_owned();
        uploaded.insert(prompt, comparable(body));
    }
    assert_eq!(uploaded, sent);

    // And each flag really reached the body (the comparison alone would pass if both lost it).
    let a = &sent["first"];
    assert_eq!(a["model"], json!("model-from-flag"));
    assert_eq!(
        a["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(a["temperature"], json!(0.25));
    assert_eq!(
        sent["second"]["temperature"],
        json!(0.9),
        "a job's own field wins"
    );
    assert_eq!(a["max_tokens"], json!(77));
    assert_eq!(a["top_p"], json!(0.5));
    assert_eq!(a["seed"], json!(7));
    assert_eq!(a["stop"], json!(["END", "FIN"]));
    assert_eq!(a["reasoning_effort"], json!("low"));
    assert_eq!(a["x"], json!(1));
    assert_eq!(a["top_k"], json!(20));
    assert_eq!(
        a["response_format"]["json_schema"]["schema"],
        serde_json::from_str::<Value>(SCHEMA).expect("schema")
    );
}

#[test]
fn batch_submit_refuses_fallback_models_with_the_batch_apis_reason() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start(KEY);
    let r = run(env.cmd_with(&emu.base_url, KEY).args([
        "batch",
        "submit",
        "jobs.yaml",
        "--fallback-model",
        "other",
    ]));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--fallback-model"), "{}", r.stderr);
    assert!(
        r.stderr.contains("not retried on another model"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(emu.uploads().is_empty(), "nothing may be uploaded");
}

#[test]
fn a_batch_only_flag_in_a_single_run_is_refused_by_name() {
    let env = TestEnv::new();
    for (flag, value) in [("--output", Some("x.jsonl")), ("--overwrite", None)] {
        let mut cmd = env.cmd_with("http://127.0.0.1:9", KEY);
        cmd.args(["-p", "hi", flag]);
        if let Some(v) = value {
            cmd.arg(v);
        }
        if flag == "--overwrite" {
            cmd.args(["--output", "x.jsonl"]);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(2), "{flag}: {}", r.stderr);
        assert!(
            r.stderr.contains("only applies to a batch"),
            "{flag}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{flag}: {}", r.stdout);
    }
}

#[test]
fn batch_submit_takes_allow_outside_paths_for_its_job_file() {
    let env = TestEnv::new();
    env.write_project("beside.txt", "from beside");
    env.write_project(
        "jobs/j.jsonl",
        "{\"id\": \"a\", \"prompt_file\": \"../beside.txt\"}\n",
    );
    let emu = Emulator::start(KEY);
    let refused = run(env.cmd_with(&emu.base_url, KEY).args([
        "batch",
        "submit",
        "jobs/j.jsonl",
        "--name",
        "n1",
    ]));
    assert_eq!(refused.code, Some(42), "{}", refused.stderr);
    assert!(emu.uploads().is_empty(), "nothing may be uploaded");
    let allowed = run(env.cmd_with(&emu.base_url, KEY).args([
        "batch",
        "submit",
        "jobs/j.jsonl",
        "--name",
        "n2",
        "--allow-outside-paths",
    ]));
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);
    let uploads = emu.uploads();
    assert_eq!(uploads.len(), 1);
    assert!(uploads[0].1.contains("from beside"), "{}", uploads[0].1);
}
