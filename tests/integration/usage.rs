//! Flags that would be silently ignored are usage errors (exit 2) that say what to do instead;
//! in a JSON format the error is a JSON document too.

use serde_json::Value;

use crate::common::{TestEnv, run};

fn types(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn batch_only_flags_without_jobs_are_usage_errors() {
    let env = TestEnv::new();
    let cases: [&[&str]; 10] = [
        &["--concurrency", "4"],
        &["--rpm", "10"],
        &["--tpm", "1000"],
        &["--max-rate-limit-wait", "1m"],
        &["--shard", "1/2"],
        &["--progress-interval", "1s"],
        &["--shutdown-grace", "1s"],
        &["--concurrency=4"],
        &["--rpm=1"],
        &["--shard=2/2"],
    ];
    for flags in cases {
        let mut args = flags.to_vec();
        args.push("hi");
        let flag = flags[0].split('=').next().unwrap_or_default();
        let r = run(env.cmd_with("http://127.0.0.1:9/v1", "sk-test").args(&args));
        r.code(2)
            .stdout_empty()
            .stderr_has(&format!("{flag} only applies to a batch"))
            .stderr_has("hint: add --jobs FILE");
    }
}

#[test]
fn output_resume_overwrite_and_summary_need_jobs_too() {
    let env = TestEnv::new();
    for flags in [
        &["--output", "o.jsonl"][..],
        &["--summary", "s.json"],
        &["--overwrite"],
    ] {
        let mut args = flags.to_vec();
        args.push("hi");
        let r = run(env.cmd_with("http://127.0.0.1:9/v1", "sk-test").args(&args));
        r.code(2).stdout_empty();
    }
}

#[test]
fn json_together_with_an_output_format_is_a_usage_error() {
    let env = TestEnv::new();
    let r = run(env
        .cmd_with("http://127.0.0.1:9/v1", "sk-test")
        .args(["--json", "-o", "text", "hi"]));
    r.code(2)
        .stderr_has("--json and -o/--output-format both choose");
}

#[test]
fn a_batch_refuses_text_and_stream_json_but_accepts_json() {
    let env = TestEnv::new();
    env.write_project("jobs.jsonl", "{\"prompt\":\"a\"}\n");
    for format in ["text", "stream-json"] {
        let r = run(env.cmd_with("http://127.0.0.1:9/v1", "sk-test").args([
            "--jobs",
            "jobs.jsonl",
            "-o",
            format,
        ]));
        r.code(2)
            .stderr_has("a batch writes JSON lines")
            .stderr_has(format);
        if format == "text" {
            r.stdout_empty();
        } else {
            // stream-json was asked for: the usage error is a document too.
            assert_eq!(types(&r.json_lines()), ["system", "result"]);
        }
    }
    let ok = run(env.cmd_with("http://127.0.0.1:9/v1", "sk-test").args([
        "--jobs",
        "jobs.jsonl",
        "--json",
        "--retries",
        "0",
    ]));
    // Accepted (a batch's JSON is JSON lines): it runs, and fails only on the unreachable server.
    ok.code(75).stderr_has("batch: 1 jobs");
}

#[test]
fn a_usage_error_in_json_mode_still_writes_a_json_document() {
    let env = TestEnv::new();
    // A flag clap does not know, and a value it refuses: both exit 2 with a document.
    for args in [
        &["--json", "--no-such-flag", "hi"][..],
        &["-o", "json", "--retries", "many", "hi"],
        &["-o", "stream-json", "--concurrency", "4", "hi"],
    ] {
        let r = run(env.cmd_with("http://127.0.0.1:9/v1", "sk-test").args(args));
        r.code(2);
        let messages = if args.contains(&"stream-json") {
            r.json_lines()
        } else {
            r.json()
        };
        assert_eq!(types(&messages), ["system", "result"], "{args:?}");
        assert_eq!(messages[1]["is_error"], true);
        assert_eq!(messages[1]["error"]["type"], "usage_error");
    }
}

#[test]
fn a_usage_error_in_text_mode_writes_nothing_on_stdout() {
    let env = TestEnv::new();
    let r = run(env
        .cmd_with("http://127.0.0.1:9/v1", "sk-test")
        .args(["--no-such-flag", "hi"]));
    r.code(2).stdout_empty();
}
