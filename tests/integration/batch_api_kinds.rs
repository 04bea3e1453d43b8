//! `qwen batch` for every auth type with a Batch API: `openai-responses` (`OpenAI`'s Batch API
//! with `/v1/responses` lines), `anthropic` (Message Batches), and what each answer cost on a
//! fetch (the provider's figure, else `--prices` with its batch prices, else `null`), against the
//! batch emulator in both of its flavours.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::batch_api_emulator::{Emulator, Hang, SUBMIT_WAIT};
use crate::common::{KEY, Run, TestEnv, run, wait_bounded};

const JOBS: &str = "\
jobs:
  - id: a
    prompt: first
  - id: b
    prompt: FAIL400 please
  - id: c
    prompt: OVERLOADED now
  - id: d
    prompt: fourth
  - id: e
    prompt: fifth
";

const MODEL: &str = "model-x";

/// Regular and batch prices for `MODEL`, dollars per token.
const PRICES: &str = r#"{"model-x": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
    "cache_read_input_token_cost": 1e-06,
    "input_cost_per_token_batches": 1e-06, "output_cost_per_token_batches": 4e-06}}"#;

/// What one emulated answer (10 tokens in, 4 of them cached; 2 out) costs at the batch prices.
const BATCH_COST: f64 = 6.0 * 1e-6 + 4.0 * 1e-6 + 2.0 * 4e-6;

/// `qwen` against the emulator with `auth_type`'s key and base URL variables.
fn qwen(env: &TestEnv, emu: &Emulator, auth_type: &str, args: &[&str]) -> Run {
    let mut cmd = env.cmd();
    if auth_type == "anthropic" {
        cmd.env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", &emu.base_url);
    } else {
        cmd.env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", &emu.base_url);
    }
    run(cmd
        .args(args)
        .args(["--auth-type", auth_type, "--model", MODEL]))
}

fn submit_wait(env: &TestEnv, emu: &Emulator, auth_type: &str, extra: &[&str]) -> Run {
    let mut args = SUBMIT_WAIT.to_vec();
    args.extend_from_slice(extra);
    qwen(env, emu, auth_type, &args)
}

fn by_id(text: &str) -> HashMap<String, Value> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|v| (v["id"].as_str().expect("an id").to_owned(), v))
        .collect()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|got| (got - want).abs() < 1e-12)
}

#[test]
fn responses_batches_send_responses_lines_and_read_responses_objects_back() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    env.write_project("prices.json", PRICES);
    let emu = Emulator::start(KEY);
    let r = submit_wait(
        &env,
        &emu,
        "openai-responses",
        &["--output", "out.jsonl", "--prices", "prices.json"],
    );
    // `b` was refused for good: exit 1. `c` is an ordinary answer on this provider.
    r.code(1)
        .stdout_empty()
        .stderr_has("1 failed")
        .stderr_has("cost $");
    assert_eq!(emu.posted()[0]["endpoint"], "/v1/responses");
    let input: Vec<Value> = emu.uploads()[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(input.len(), 5);
    for line in &input {
        assert_eq!(line["url"], "/v1/responses");
        let body = &line["body"];
        assert_eq!(body["store"], false, "{body}");
        assert_eq!(body["model"], MODEL);
        assert!(body.get("stream").is_none() && body.get("messages").is_none());
    }
    assert_eq!(input[0]["body"]["input"][0]["content"], "first");
    let results = by_id(&env.read_project("out.jsonl"));
    assert_eq!(results.len(), 5);
    let a = &results["a"];
    assert_eq!(
        (a["result"].as_str(), a["is_error"].as_bool()),
        (Some("echo: first"), Some(false))
    );
    assert_eq!(a["usage"]["input_tokens"], 10);
    assert_eq!(a["usage"]["cache_read_input_tokens"], 4);
    assert!(close(&a["total_cost_usd"], BATCH_COST), "{a}");
    assert_eq!(a["cost_source"], "price_table");
    assert_eq!(results["b"]["is_error"], true);
    assert!(results["b"]["total_cost_usd"].is_null());
    let ledger: Value =
        serde_json::from_str(&env.read_project(".qwen/batches/n.json")).expect("the ledger");
    assert_eq!(ledger["api"], "openai_responses");
    // The ledger remembers its API: another auth type cannot continue it.
    qwen(&env, &emu, "openai", &["batch", "status", "n"])
        .code(52)
        .stderr_has("--auth-type openai-responses");
}

#[test]
fn fetched_costs_are_the_providers_else_the_tables_else_null() {
    let env = TestEnv::new();
    env.write_project(
        "jobs.yaml",
        "jobs:\n  - {id: a, prompt: COST first}\n  - {id: b, prompt: second}\n  - {id: c, prompt: FAIL400}\n",
    );
    // Regular prices only: a provider batch is priced at them, and the summary says so.
    env.write_project(
        "regular.json",
        r#"{"model-x": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06}}"#,
    );
    let emu = Emulator::start(KEY);
    submit_wait(&env, &emu, "openai", &["--output", "first.jsonl"]).code(1);
    let regular = 10.0 * 2e-6 + 2.0 * 8e-6;
    let cases: [(&[&str], Option<f64>, Value, bool); 2] = [
        // --prices, b's cost, b's source, the regular-rate warning
        (
            &["--prices", "regular.json"],
            Some(regular),
            json!("price_table"),
            true,
        ),
        (&[], None, Value::Null, false),
    ];
    for (extra, b_cost, b_source, warned) in cases {
        let mut args = vec!["batch", "fetch", "n"];
        args.extend_from_slice(extra);
        let r = qwen(&env, &emu, "openai", &args);
        r.code(1);
        let lines = by_id(&r.stdout);
        assert!(
            close(&lines["a"]["total_cost_usd"], 0.0042),
            "{}",
            lines["a"]
        );
        assert_eq!(lines["a"]["cost_source"], "provider");
        match b_cost {
            Some(want) => assert!(close(&lines["b"]["total_cost_usd"], want), "{}", lines["b"]),
            None => assert!(lines["b"]["total_cost_usd"].is_null()),
        }
        assert_eq!(lines["b"]["cost_source"], b_source);
        assert!(lines["c"]["total_cost_usd"].is_null() && lines["c"]["cost_source"].is_null());
        let summed = 0.0042 + b_cost.unwrap_or(0.0);
        assert!(
            r.stderr.contains(&format!("cost ${summed:.6}")),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.contains("regular rates"), warned, "{}", r.stderr);
    }
    // --prices is for the results: without --wait there are none.
    qwen(
        &env,
        &emu,
        "openai",
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "m",
            "--prices",
            "regular.json",
        ],
    )
    .code(2)
    .stderr_has("--prices");
}

#[test]
fn anthropic_message_batches_give_local_lines_with_their_costs() {
    for (key_var, header) in [
        ("ANTHROPIC_API_KEY", "x-api-key"),
        ("ANTHROPIC_AUTH_TOKEN", "bearer"),
    ] {
        let env = TestEnv::new();
        env.write_project("jobs.yaml", JOBS);
        env.write_project("prices.json", PRICES);
        let emu = Emulator::start_anthropic(KEY);
        let r = run(env
            .cmd()
            .env(key_var, KEY)
            .env("ANTHROPIC_BASE_URL", &emu.base_url)
            .args(SUBMIT_WAIT)
            .args(["--output", "out.jsonl", "--prices", "prices.json"])
            .args(["--auth-type", "anthropic", "--model", MODEL]));
        // `b` refused for good, `c` overloaded (temporary): exit 1.
        r.code(1)
            .stderr_has("2 failed (1 temporary")
            .stderr_has(&format!("cost ${:.6}", 3.0 * BATCH_COST));
        assert_eq!(emu.key_headers(), [header], "{key_var}");
        let created = &emu.posted()[0];
        let requests = created["requests"].as_array().expect("requests");
        assert_eq!(requests.len(), 5);
        assert_eq!(requests[0]["custom_id"], "a");
        let params = &requests[0]["params"];
        assert_eq!(
            (params["model"].as_str(), params["max_tokens"].as_u64()),
            (Some(MODEL), Some(8192))
        );
        assert_eq!(params["messages"][0]["content"], "first");
        assert!(params.get("stream").is_none());
        let log = emu.log();
        assert!(log.iter().all(|l| !l.contains("/v1/files")), "{log:?}");
        assert!(
            log.iter()
                .any(|l| l.starts_with("GET /v1/messages/batches/") && l.ends_with("/results"))
        );
        let results = by_id(&env.read_project("out.jsonl"));
        assert_eq!(results.len(), 5);
        let a = &results["a"];
        assert_eq!(a["result"], "echo: first");
        assert_eq!(
            (
                a["usage"]["input_tokens"].as_u64(),
                a["usage"]["cache_read_input_tokens"].as_u64()
            ),
            (Some(10), Some(4))
        );
        assert!(close(&a["total_cost_usd"], BATCH_COST), "{a}");
        assert_eq!(results["b"]["error"]["type"], "api_error");
        assert_eq!(results["c"]["is_error"], true);
        assert!(!env.read_project("out.jsonl").contains(KEY));
        let ledger: Value =
            serde_json::from_str(&env.read_project(".qwen/batches/n.json")).expect("the ledger");
        assert_eq!(ledger["api"], "anthropic");
        // Anthropic's results are not OpenAI Batch API lines.
        qwen(
            &env,
            &emu,
            "anthropic",
            &["batch", "fetch", "n", "-o", "openai-batch"],
        )
        .code(2)
        .stderr_has("-o json");
    }
}

#[test]
fn anthropic_cancel_keeps_what_ran_and_names_the_cancelled_jobs() {
    let env = TestEnv::new();
    env.write_project(
        "jobs.yaml",
        &JOBS
            .replace("FAIL400 please", "second")
            .replace("OVERLOADED now", "third"),
    );
    let emu = Emulator::start_anthropic(KEY);
    let id = qwen(
        &env,
        &emu,
        "anthropic",
        &["batch", "submit", "jobs.yaml", "--name", "n"],
    );
    id.code(0);
    assert!(id.stdout.starts_with("msgbatch_"), "{}", id.stdout);
    // The batch stays where it is (two of five requests run) until the cancel has arrived.
    emu.set_tick_on_poll(false);
    qwen(&env, &emu, "anthropic", &["batch", "cancel", "n"])
        .code(0)
        .stdout_has("cancelling");
    assert_eq!(emu.count("POST /v1/messages/batches/msgbatch_"), 1);
    emu.set_tick_on_poll(true);
    let r = qwen(
        &env,
        &emu,
        "anthropic",
        &["batch", "fetch", "n", "--delete-remote"],
    );
    r.code(1).stderr_has("3 not run by the provider");
    let lines = by_id(&r.stdout);
    // The emulator had run the first two requests when the cancel came.
    assert_eq!(lines["a"]["result"], "echo: first");
    assert_eq!(lines["c"]["error"]["type"], "batch_cancelled");
    assert_eq!(emu.count("DELETE /v1/messages/batches/"), 1);
    assert_eq!(emu.batch_count(), 0);
}

#[test]
fn anthropic_parts_respect_the_limits_and_job_ids_must_be_custom_ids() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start_anthropic(KEY);
    qwen(
        &env,
        &emu,
        "anthropic",
        &[
            "batch",
            "submit",
            "jobs.yaml",
            "--max-requests-per-file",
            "2",
        ],
    )
    .code(0);
    let sizes: Vec<usize> = emu
        .posted()
        .iter()
        .map(|p| p["requests"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [2, 2, 1]);
    env.write_project("bad.yaml", "jobs:\n  - {id: a.b, prompt: hi}\n");
    let refused: [(&[&str], i32, &str); 2] = [
        // A job id must be a `custom_id`; Anthropic's batches always end within 24 hours.
        (&["bad.yaml"], 42, "custom_id"),
        (
            &["jobs.yaml", "--name", "w", "--completion-window", "48h"],
            2,
            "24 hours",
        ),
    ];
    for (args, code, message) in refused {
        let args = [&["batch", "submit"][..], args].concat();
        qwen(&env, &emu, "anthropic", &args)
            .code(code)
            .stderr_has(message);
    }
    assert_eq!(emu.posted().len(), 3, "nothing more was sent");
}

#[test]
fn a_lost_anthropic_create_answer_is_never_created_twice() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start_anthropic(KEY);
    emu.set_hang(Some(Hang::AfterCreate));
    let mut child = env
        .std_cmd()
        .env("ANTHROPIC_API_KEY", KEY)
        .env("ANTHROPIC_BASE_URL", &emu.base_url)
        .args([
            "batch",
            "submit",
            "jobs.yaml",
            "--name",
            "n",
            "--auth-type",
            "anthropic",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn qwen");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while emu.batch_count() == 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", emu.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill qwen");
    let _ = wait_bounded(child, Duration::from_secs(20));
    emu.set_hang(None);
    qwen(
        &env,
        &emu,
        "anthropic",
        &["batch", "submit", "jobs.yaml", "--name", "n"],
    )
    .code(42)
    .stderr_has("was lost")
    .stderr_has("Anthropic Console");
    assert_eq!(emu.batch_count(), 1, "no second batch");
}

#[test]
fn anthropic_batches_that_do_not_fit_the_ledger_are_not_touched() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", JOBS);
    let emu = Emulator::start_anthropic(KEY);
    qwen(
        &env,
        &emu,
        "anthropic",
        &["batch", "submit", "jobs.yaml", "--name", "n"],
    )
    .code(0);
    let cases = [
        // a patch over every batch object, the command, the exit code, the message
        (
            json!({"request_counts": {"processing": 9}}),
            "cancel",
            42,
            "proves",
        ),
        (
            json!({"processing_status": "ended", "results_url": "http://127.0.0.2:9/r"}),
            "fetch",
            1,
            "not on the base URL's host",
        ),
    ];
    for (patch, command, code, message) in cases {
        emu.set_batch_patch(Some(patch));
        qwen(&env, &emu, "anthropic", &["batch", command, "n"])
            .code(code)
            .stderr_has(message);
    }
    assert_eq!(
        emu.count("POST /v1/messages/batches/msgbatch_"),
        0,
        "nothing cancelled"
    );
}
