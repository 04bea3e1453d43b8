//! GitHub Actions: `action.yml` matches the README and keeps the key off command lines, its run script
//! sets the outputs (run for real against wiremock), and the workflows hold the rules CI relies on.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INPUTS: [&str; 8] = [
    "prompt",
    "prompt-file",
    "jobs",
    "model",
    "base-url",
    "api-key",
    "output-format",
    "extra-args",
];
const OUTPUTS: [&str; 3] = ["result", "exit-code", "results-file"];
const KEY: &str = "sk-action-test-key-4242";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn keys(map: &Yaml) -> Vec<String> {
    map.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().expect("a string key").to_owned())
        .collect()
}

/// `on:` as written; a YAML 1.1 reader would turn the key into `true`.
fn triggers(workflow: &Yaml) -> &Yaml {
    workflow
        .get("on")
        .or_else(|| workflow.as_mapping()?.get(Yaml::Bool(true)))
        .expect("the workflow has `on:`")
}

/// Every `run:` script of a workflow or composite action, with the job it belongs to.
fn run_scripts(doc: &Yaml) -> Vec<String> {
    let mut steps: Vec<&Yaml> = Vec::new();
    if let Some(s) = doc.get("runs").and_then(|r| r.get("steps")) {
        steps.extend(s.as_sequence().expect("steps").iter());
    }
    if let Some(jobs) = doc.get("jobs").and_then(Yaml::as_mapping) {
        for job in jobs.values() {
            if let Some(s) = job.get("steps").and_then(Yaml::as_sequence) {
                steps.extend(s.iter());
            }
        }
    }
    steps
        .iter()
        .filter_map(|s| s.get("run").and_then(Yaml::as_str).map(str::to_owned))
        .collect()
}

// ---- action.yml -----------------------------------------------------------------------------

#[test]
fn action_yml_declares_exactly_the_documented_inputs_and_outputs() {
    let action = yaml("action.yml");
    assert_eq!(keys(&action["inputs"]), INPUTS);
    assert_eq!(keys(&action["outputs"]), OUTPUTS);
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    for name in INPUTS {
        let input = &action["inputs"][name];
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "input {name} needs a description"
        );
        assert_eq!(input["required"].as_bool(), Some(false), "input {name}");
    }
    for name in OUTPUTS {
        let value = action["outputs"][name]["value"].as_str().expect("value");
        assert_eq!(value, format!("${{{{ steps.run.outputs.{name} }}}}"));
    }
}

/// The inputs and outputs named in the first column of the README's action tables.
fn readme_action_table(kind: &str) -> Vec<String> {
    let readme = read("README.md");
    let start = readme
        .find("### GitHub Action")
        .expect("README has a `### GitHub Action` section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let section = &section[..end];
    let mut names = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        if line.starts_with(&format!("| {kind} |")) {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let first = line.split('|').nth(1).unwrap_or_default().trim();
            if let Some(name) = first.strip_prefix('`').and_then(|n| n.strip_suffix('`')) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn readme_action_tables_match_action_yml() {
    let action = yaml("action.yml");
    assert_eq!(readme_action_table("input"), keys(&action["inputs"]));
    assert_eq!(readme_action_table("output"), keys(&action["outputs"]));
}

#[test]
fn action_passes_the_key_only_through_the_environment() {
    let action = yaml("action.yml");
    let steps = action["runs"]["steps"].as_sequence().expect("steps");
    let run = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("run"))
        .expect("a step with id `run`");
    let key_env = run["env"]["OPENAI_API_KEY"]
        .as_str()
        .expect("OPENAI_API_KEY in env");
    assert!(key_env.contains("inputs.api-key"), "{key_env}");
    for script in run_scripts(&action) {
        // Inputs reach scripts only through env: no `${{ inputs.* }}` spliced into shell code.
        assert!(
            !script.contains("inputs."),
            "input spliced into a script: {script}"
        );
        assert!(
            !script.contains("OPENAI_API_KEY"),
            "key named in a script: {script}"
        );
    }
    let script = read("scripts/action-run.sh");
    assert!(
        !script.contains("--openai-api-key"),
        "the run script passes the key as a flag"
    );
    assert!(
        !script.contains("set -x"),
        "tracing would print the command lines"
    );
}

// ---- the action's run step, for real ----------------------------------------------------------

fn chat_response(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    }))
}

async fn server_answering(text: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(chat_response(text))
        .mount(&server)
        .await;
    server
}

struct ActionRun {
    output: Output,
    github_output: String,
}

impl ActionRun {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The outputs written to `$GITHUB_OUTPUT`, read the way the runner reads them
    /// (`name=value` lines and `name<<DELIM` … `DELIM` blocks).
    fn outputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = self.github_output.split('\n');
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            if let Some((name, delim)) = line.split_once("<<") {
                let mut value = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                out.push((name.to_owned(), value.join("\n")));
            } else {
                let (name, value) = line.split_once('=').expect("name=value");
                out.push((name.to_owned(), value.to_owned()));
            }
        }
        out
    }

    fn output(&self, name: &str) -> Option<String> {
        self.outputs()
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The key appears nowhere but in the `::add-mask::` command, which the runner consumes
    /// (it is not shown) and which must come before any other line of qwen's.
    fn assert_key_never_shown(&self) {
        let stderr = self.stderr();
        let mask = format!("::add-mask::{KEY}");
        let shown: Vec<&str> = stderr.lines().filter(|l| *l != mask).collect();
        for (what, text) in [
            ("stdout", self.stdout()),
            ("stderr", shown.join("\n")),
            ("GITHUB_OUTPUT", self.github_output.clone()),
        ] {
            assert!(!text.contains(KEY), "the key leaked on {what}: {text}");
        }
        if stderr.contains(&mask) {
            assert_eq!(
                stderr.lines().next(),
                Some(mask.as_str()),
                "the mask comes first:\n{stderr}"
            );
        }
    }
}

/// Run `scripts/action-run.sh` as the action's step does: inputs as `QWEN_ACTION_*` variables,
/// the key as `OPENAI_API_KEY`, a cleared environment and temporary HOME, `RUNNER_TEMP` and cwd.
fn run_action(inputs: &[(&str, &str)], key: Option<&str>) -> ActionRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    let runner_temp = dir.path().join("runner-temp");
    for d in [&home, &work, &runner_temp] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let github_output = dir.path().join("github-output");
    std::fs::write(&github_output, "").expect("create GITHUB_OUTPUT");
    let mut cmd = Command::new("bash");
    cmd.arg(repo_file("scripts/action-run.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("RUNNER_TEMP", &runner_temp)
        .env("GITHUB_OUTPUT", &github_output)
        .env("QWEN_BIN", env!("CARGO_BIN_EXE_qwen"))
        .current_dir(&work)
        .stdin(Stdio::null());
    if let Some(key) = key {
        cmd.env("OPENAI_API_KEY", key);
    }
    for (name, value) in inputs {
        let var = format!(
            "QWEN_ACTION_{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
        cmd.env(var, value);
    }
    let output = cmd.output().expect("run bash");
    let github_output = std::fs::read_to_string(&github_output).expect("read GITHUB_OUTPUT");
    ActionRun {
        output,
        github_output,
    }
}

fn base_url(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

#[tokio::test]
async fn action_single_run_sets_a_multiline_result_and_exit_code_zero() {
    let answer = "line one\nresult<<EOF\nEOF\nlast line";
    let server = server_answering(answer).await;
    let url = base_url(&server);
    let run = run_action(&[("prompt", "hello"), ("base-url", &url)], Some(KEY));
    assert_eq!(run.code(), Some(0), "stderr: {}", run.stderr());
    assert_eq!(run.output("result").as_deref(), Some(answer));
    assert_eq!(run.output("exit-code").as_deref(), Some("0"));
    assert_eq!(run.output("results-file").as_deref(), Some(""));
    assert_eq!(
        run.stdout(),
        format!("{answer}\n"),
        "the answer is in the log too"
    );
    run.assert_key_never_shown();
}

#[tokio::test]
async fn action_passes_model_and_prompt_file_then_prompt() {
    let server = server_answering("ok").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let diff = dir.path().join("pr.diff");
    std::fs::write(&diff, "--- a/x\n+++ b/x\n").expect("write diff");
    let url = base_url(&server);
    let run = run_action(
        &[
            ("prompt-file", diff.to_str().expect("utf-8 path")),
            ("prompt", "Review this"),
            ("model", "my-model"),
            ("base-url", &url),
            ("extra-args", "--max-tokens 77"),
        ],
        Some(KEY),
    );
    assert_eq!(run.code(), Some(0), "stderr: {}", run.stderr());
    let requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("json body");
    assert_eq!(body["model"], "my-model");
    assert_eq!(body["max_tokens"], 77);
    assert_eq!(
        body["messages"][0]["content"],
        "--- a/x\n+++ b/x\n\n\nReview this"
    );
}

#[tokio::test]
async fn action_json_format_result_is_the_json_document() {
    let server = server_answering("structured").await;
    let url = base_url(&server);
    let run = run_action(
        &[
            ("prompt", "hi"),
            ("base-url", &url),
            ("output-format", "json"),
        ],
        Some(KEY),
    );
    assert_eq!(run.code(), Some(0), "stderr: {}", run.stderr());
    let doc: Value =
        serde_json::from_str(&run.output("result").expect("result")).expect("result is JSON");
    assert_eq!(
        doc.as_array().and_then(|a| a.last()).expect("messages")["result"],
        "structured"
    );
}

#[tokio::test]
async fn action_reports_a_failed_run_through_exit_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad key"))
        .mount(&server)
        .await;
    let url = base_url(&server);
    let run = run_action(&[("prompt", "hi"), ("base-url", &url)], Some(KEY));
    assert_eq!(run.code(), Some(41), "stderr: {}", run.stderr());
    assert_eq!(run.output("exit-code").as_deref(), Some("41"));
    assert_eq!(run.output("result").as_deref(), Some(""));
    run.assert_key_never_shown();
}

#[test]
fn action_without_a_key_exits_41_and_says_so() {
    let run = run_action(
        &[("prompt", "hi"), ("base-url", "http://127.0.0.1:9/v1")],
        Some(""),
    );
    assert_eq!(run.code(), Some(41), "stderr: {}", run.stderr());
    assert_eq!(run.output("exit-code").as_deref(), Some("41"));
    assert!(run.stderr().contains("OPENAI_API_KEY"), "{}", run.stderr());
}

#[test]
fn action_refuses_jobs_together_with_a_prompt() {
    let run = run_action(&[("jobs", "jobs.jsonl"), ("prompt", "hi")], Some(KEY));
    assert_eq!(run.code(), Some(2));
    assert_eq!(run.output("exit-code").as_deref(), Some("2"));
    assert!(
        run.stderr().contains("::error title=qwen action::"),
        "{}",
        run.stderr()
    );
}

#[test]
fn action_reports_an_unreadable_prompt_file_as_input_error() {
    let run = run_action(&[("prompt-file", "/nonexistent/pr.diff")], Some(KEY));
    assert_eq!(run.code(), Some(42));
    assert_eq!(run.output("exit-code").as_deref(), Some("42"));
    assert!(run.stderr().contains("::error"), "{}", run.stderr());
}

#[test]
fn action_refuses_an_unknown_output_format() {
    let run = run_action(&[("prompt", "hi"), ("output-format", "xml")], Some(KEY));
    assert_eq!(run.code(), Some(2));
    assert_eq!(run.output("exit-code").as_deref(), Some("2"));
}

#[test]
fn action_batch_sets_results_file_under_runner_temp() {
    // The batch itself belongs to `qwen --jobs`; here only what the script promises around it.
    // No such file in the temporary cwd, and a loopback base URL: nothing can leave the machine.
    let run = run_action(
        &[
            ("jobs", "fixtures/jobs.jsonl"),
            ("base-url", "http://127.0.0.1:9/v1"),
        ],
        Some(KEY),
    );
    let results = run.output("results-file").expect("results-file is set");
    assert!(
        results.ends_with("/runner-temp/qwen-results.jsonl"),
        "{results}"
    );
    assert_eq!(run.output("exit-code"), run.code().map(|c| c.to_string()));
}

// ---- workflows ------------------------------------------------------------------------------

fn cargo_rust_version() -> String {
    let manifest = read("Cargo.toml");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"')
        .to_owned()
}

#[test]
fn ci_workflow_checks_fmt_clippy_tests_and_the_declared_rust_version() {
    let ci = yaml(".github/workflows/ci.yml");
    assert_eq!(ci["permissions"]["contents"].as_str(), Some("read"));
    assert_eq!(
        ci["permissions"].as_mapping().map(serde_yaml::Mapping::len),
        Some(1)
    );
    assert_eq!(
        ci["concurrency"]["cancel-in-progress"].as_bool(),
        Some(true)
    );
    assert!(
        ci["concurrency"]["group"]
            .as_str()
            .is_some_and(|g| g.contains("github.ref"))
    );
    let on = triggers(&ci);
    assert!(on.get("push").is_some() && on.get("pull_request").is_some());

    let scripts = run_scripts(&ci).join("\n");
    assert!(scripts.contains("cargo fmt --all -- --check"), "{scripts}");
    assert!(
        scripts.contains("cargo clippy --all-targets --locked -- -D warnings"),
        "{scripts}"
    );
    assert!(scripts.contains("cargo nextest run --locked"), "{scripts}");
    let text = read(".github/workflows/ci.yml");
    assert!(text.contains("taiki-e/install-action@nextest"));
    assert!(!text.contains("contents: write"));

    let msrv = ci["jobs"]["msrv"]["strategy"]["matrix"]["rust"]
        .as_sequence()
        .expect("msrv matrix");
    assert_eq!(msrv.len(), 1);
    assert_eq!(msrv[0].as_str(), Some(cargo_rust_version().as_str()));
}

#[test]
fn release_workflow_ships_static_binaries_with_checksums_on_tags() {
    let release = yaml(".github/workflows/release.yml");
    let tags = &triggers(&release)["push"]["tags"];
    assert_eq!(tags.as_sequence().map(Vec::len), Some(1));
    assert_eq!(tags[0].as_str(), Some("v*"));
    assert_eq!(release["permissions"]["contents"].as_str(), Some("write"));
    let targets: Vec<&str> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("build matrix")
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(
        targets,
        ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
    );
    let text = read(".github/workflows/release.yml");
    assert!(text.contains("sha256sum"));
    assert!(text.contains("softprops/action-gh-release"));
    assert!(text.contains("--locked"));
}

#[test]
fn example_pr_review_uses_the_action_with_the_diff_as_prompt_file() {
    let wf = yaml("examples/github-actions/pr-review.yml");
    assert!(triggers(&wf).get("pull_request").is_some());
    let steps = wf["jobs"]["review"]["steps"].as_sequence().expect("steps");
    let step = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("qwen-headless/qwen@"))
        })
        .expect("a step using the action");
    let with = &step["with"];
    assert!(
        with["prompt-file"]
            .as_str()
            .is_some_and(|p| p.ends_with("pr.diff"))
    );
    assert_eq!(
        with["api-key"].as_str(),
        Some("${{ secrets.OPENAI_API_KEY }}")
    );
    for key in keys(with) {
        assert!(INPUTS.contains(&key.as_str()), "unknown input {key}");
    }
    assert!(run_scripts(&wf).join("\n").contains("git diff"));
}

#[test]
fn example_sharded_batch_covers_four_shards_and_merges_them() {
    let wf = yaml("examples/github-actions/sharded-batch.yml");
    let shards: Vec<u64> = wf["jobs"]["shard"]["strategy"]["matrix"]["shard"]
        .as_sequence()
        .expect("shard matrix")
        .iter()
        .filter_map(Yaml::as_u64)
        .collect();
    assert_eq!(shards, [1, 2, 3, 4]);
    let scripts = run_scripts(&wf).join("\n");
    assert!(scripts.contains(
        "qwen --jobs fixtures/jobs.jsonl --shard ${{ matrix.shard }}/4 --output part-${{ matrix.shard }}.jsonl"
    ));
    assert!(scripts.contains("cat part-*.jsonl > results.jsonl"));
    assert_eq!(wf["jobs"]["merge"]["needs"].as_str(), Some("shard"));
    assert!(repo_file("fixtures/jobs.jsonl").is_file());
}
