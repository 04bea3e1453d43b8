//! Distribution: shell completions and the man page from the real binary, the Dockerfile's final
//! stage against the static-root check, and the sample files under `examples/` and `fixtures/`.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use serde_yaml::Value as Yaml;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The binary with a cleared environment in an empty temporary directory.
fn qwen(bin: &str, args: &[&str]) -> Output {
    crate::common::TestEnv::new()
        .cmd_named(bin)
        .args(args)
        .output()
        .expect("run qwen")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

// ---- completions and man page ----------------------------------------------------------------

#[test]
fn completions_for_each_shell_are_plausible_scripts_for_qwen() {
    let cases = [
        ("bash", "complete -F _qwen"),
        ("zsh", "#compdef qwen"),
        ("fish", "complete -c qwen"),
        ("powershell", "Register-ArgumentCompleter"),
    ];
    for (shell, marker) in cases {
        let out = qwen("qwen", &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            out.stderr.is_empty(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for word in ["openai-base-url", "auth", "completions"] {
            assert!(script.contains(word), "{shell}: no `{word}`");
        }
    }
}

#[test]
fn qwen_code_generates_completions_under_the_name_qwen() {
    let out = qwen("qwen-code", &["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = stdout(&out);
    assert!(script.contains("complete -F _qwen"), "{script}");
    assert!(!script.contains("qwen-code"));
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let out = qwen("qwen", &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

#[test]
fn man_prints_a_roff_page_for_qwen() {
    let out = qwen("qwen", &["man"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    let page = stdout(&out);
    for needle in [
        ".TH qwen 1",
        ".SH NAME",
        ".SH SYNOPSIS",
        "openai\\-base\\-url",
        "completions",
    ] {
        assert!(page.contains(needle), "no `{needle}` in the man page");
    }
}

#[test]
fn help_mentions_completions_and_man() {
    let out = qwen("qwen", &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    assert!(help.contains("qwen completions zsh"), "{help}");
    assert!(help.contains("qwen man"), "{help}");
}

// ---- Dockerfile and the static-root check ------------------------------------------------------

/// The instructions of the Dockerfile's last stage (continuation lines joined).
fn final_stage() -> Vec<String> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    lines[last_from..].to_vec()
}

#[test]
fn dockerfile_final_stage_is_scratch_with_ca_bundle_non_root_and_entrypoint() {
    let stage = final_stage();
    assert_eq!(stage[0], "FROM scratch");
    assert!(stage.contains(&"USER 10001:10001".to_owned()), "{stage:?}");
    assert!(
        stage.contains(&r#"ENTRYPOINT ["qwen"]"#.to_owned()),
        "{stage:?}"
    );
    let build = read("Dockerfile");
    assert!(build.contains("cargo build --release --locked --target"));
    assert!(build.contains("-unknown-linux-musl"));
    assert!(build.contains("qwen:x:10001:10001:"));
}

#[test]
fn static_root_check_lays_out_exactly_the_final_stage_files() {
    let copied: BTreeSet<String> = final_stage()
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .map(|l| format!(".{}", l.split_whitespace().last().expect("destination")))
        .collect();
    assert_eq!(
        copied.iter().cloned().collect::<Vec<_>>(),
        [
            "./etc/group",
            "./etc/passwd",
            "./etc/ssl/certs/ca-certificates.crt",
            "./usr/local/bin/qwen"
        ]
    );
    let script = read("scripts/static-root-test.sh");
    let listing = copied.iter().fold(String::new(), |acc, p| acc + p + " ");
    assert!(
        script.contains(&listing),
        "scripts/static-root-test.sh must check for exactly `{listing}`"
    );
    assert!(script.contains("--userspec=10001:10001"));
    assert!(script.contains("qwen:x:10001:10001:"));
}

#[test]
fn dockerignore_keeps_build_output_history_and_secrets_out() {
    let ignore = read(".dockerignore");
    let entries: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for needed in ["target/", ".git", ".env", ".qwen/"] {
        assert!(
            entries.contains(needed),
            "{needed} missing from .dockerignore"
        );
    }
}

#[test]
fn distribution_files_open_with_a_comment_saying_why() {
    let files = [
        ("Dockerfile", "# "),
        (".dockerignore", "# "),
        ("action.yml", "# "),
        (".github/workflows/ci.yml", "# "),
        (".github/workflows/release.yml", "# "),
        ("examples/github-actions/pr-review.yml", "# "),
        ("examples/github-actions/sharded-batch.yml", "# "),
        ("examples/github-actions/issue-triage.yml", "# "),
        (
            "examples/github-actions/migrate-from-ai-inference.yml",
            "# ",
        ),
        ("examples/github-actions/prompts/triage.prompt.yml", "# "),
        ("examples/qwen.env.sample", "# "),
        ("fixtures/jobs.yaml", "# "),
        ("fixtures/README.md", "<!-- "),
    ];
    for (file, prefix) in files {
        let text = read(file);
        assert!(
            text.starts_with(prefix),
            "{file} does not open with a comment"
        );
    }
    for script in [
        "scripts/static-root-test.sh",
        "scripts/action-run.sh",
        "scripts/action-install.sh",
        "scripts/lint-ci.sh",
        "examples/pipelines.sh",
    ] {
        let text = read(script);
        let second = text.lines().nth(1).unwrap_or_default();
        assert!(text.starts_with("#!/usr/bin/env bash\n# "), "{script}");
        assert!(second.len() > 20, "{script}: say why it exists");
    }
}

// ---- examples and fixtures ---------------------------------------------------------------------

/// A job as the batch issue defines it: a prompt, messages or a prompt file, and known field types.
fn check_job(job: &Value, where_: &str, base: &Path) {
    let obj = job
        .as_object()
        .unwrap_or_else(|| panic!("{where_}: not an object"));
    let sources = ["prompt", "messages", "prompt_file"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    assert_eq!(
        sources, 1,
        "{where_}: exactly one of prompt, messages, prompt_file"
    );
    if let Some(file) = obj.get("prompt_file") {
        let path = base.join(file.as_str().expect("prompt_file is a string"));
        assert!(path.is_file(), "{where_}: {} is missing", path.display());
    }
    if let Some(messages) = obj.get("messages") {
        let messages = messages.as_array().expect("messages is a list");
        assert!(!messages.is_empty());
        for m in messages {
            assert!(
                m["role"].is_string() && m["content"].is_string(),
                "{where_}: {m}"
            );
        }
    }
    for (field, ok) in [
        ("id", Value::is_string as fn(&Value) -> bool),
        ("prompt", Value::is_string),
        ("system", Value::is_string),
        ("model", Value::is_string),
        ("temperature", Value::is_number),
        ("max_tokens", Value::is_u64),
    ] {
        if let Some(v) = obj.get(field) {
            assert!(ok(v), "{where_}: `{field}` has the wrong type: {v}");
        }
    }
}

fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = BTreeSet::new();
    ids.into_iter().all(|id| seen.insert(id))
}

#[test]
fn fixture_jobs_yaml_has_defaults_and_jobs_including_a_prompt_file() {
    let doc: Yaml = serde_yaml::from_str(&read("fixtures/jobs.yaml")).expect("valid YAML");
    let doc: Value = serde_json::to_value(doc).expect("YAML as JSON");
    assert!(doc["defaults"].is_object());
    let jobs = doc["jobs"].as_array().expect("jobs list");
    assert!(jobs.len() >= 3);
    let base = repo_file("fixtures");
    for (i, job) in jobs.iter().enumerate() {
        check_job(job, &format!("jobs.yaml job {i}"), &base);
    }
    assert!(jobs.iter().any(|j| j["prompt_file"] == "prompts/review.md"));
    assert!(jobs.iter().any(|j| j.get("messages").is_some()));
    assert!(
        jobs.iter().any(|j| j.get("id").is_none()),
        "one job relies on a positional id"
    );
    assert!(unique_ids(jobs.iter().filter_map(|j| j["id"].as_str())));
}

#[test]
fn fixture_jobs_json_is_a_plain_list() {
    let doc: Value = serde_json::from_str(&read("fixtures/jobs.json")).expect("valid JSON");
    let jobs = doc.as_array().expect("a plain list");
    let base = repo_file("fixtures");
    for (i, job) in jobs.iter().enumerate() {
        check_job(job, &format!("jobs.json job {i}"), &base);
    }
    assert!(unique_ids(jobs.iter().filter_map(|j| j["id"].as_str())));
}

#[test]
fn fixture_jobs_jsonl_has_one_job_with_an_id_per_line() {
    let text = read("fixtures/jobs.jsonl");
    let base = repo_file("fixtures");
    let jobs: Vec<Value> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("jobs.jsonl line {}: {e}", i + 1))
        })
        .collect();
    assert!(jobs.len() >= 4, "enough lines for a 4-way shard");
    for (i, job) in jobs.iter().enumerate() {
        check_job(job, &format!("jobs.jsonl line {}", i + 1), &base);
        assert!(job["id"].is_string(), "line {}: an id", i + 1);
    }
    assert!(unique_ids(jobs.iter().filter_map(|j| j["id"].as_str())));
}

#[test]
fn fixture_openai_batch_lines_are_batch_api_requests() {
    let text = read("fixtures/openai-batch.jsonl");
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let req: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert_eq!(req["method"], "POST", "line {}", i + 1);
        assert_eq!(req["url"], "/v1/chat/completions", "line {}", i + 1);
        assert!(req["body"]["messages"].is_array(), "line {}", i + 1);
        ids.push(req["custom_id"].as_str().expect("custom_id").to_owned());
    }
    assert!(ids.len() >= 2);
    assert!(unique_ids(ids.iter().map(String::as_str)));
}
