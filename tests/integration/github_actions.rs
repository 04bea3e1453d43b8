//! GitHub Actions: `action.yml` matches the README and keeps the key off command lines, its run script
//! maps every input (a fake qwen records the arguments) and sets the outputs (run for real against
//! wiremock), the examples run through it, and the workflows hold the rules CI relies on.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INPUTS: [&str; 27] = [
    "prompt",
    "prompt-file",
    "jobs",
    "model",
    "base-url",
    "api-key",
    "output-format",
    "extra-args",
    "endpoint",
    "token",
    "system-prompt",
    "system-prompt-file",
    "input",
    "file_input",
    "max-tokens",
    "max-completion-tokens",
    "temperature",
    "top-p",
    "custom-headers",
    "enable-github-mcp",
    "github-mcp-token",
    "github-mcp-toolsets",
    "provider",
    "copilot-cli-path",
    "copilot-allow-tools",
    "version",
    "download-base-url",
];
const OUTPUTS: [&str; 5] = [
    "result",
    "response",
    "response-file",
    "exit-code",
    "results-file",
];
/// actions/ai-inference v2 inputs the action declares only to warn that they are not supported.
pub(super) const UNSUPPORTED_V2_INPUTS: [&str; 6] = [
    "enable-github-mcp",
    "github-mcp-token",
    "github-mcp-toolsets",
    "provider",
    "copilot-cli-path",
    "copilot-allow-tools",
];
/// Inputs read by the install step, not by the run script.
const INSTALL_INPUTS: [&str; 2] = ["version", "download-base-url"];
pub(super) const KEY: &str = "sk-action-test-key-4242";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub(super) fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub(super) fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

pub(super) fn keys(map: &Yaml) -> Vec<String> {
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

fn step<'a>(action: &'a Yaml, id: &str) -> &'a Yaml {
    action["runs"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("a step with id `{id}`"))
}

#[test]
fn action_passes_the_key_only_through_the_environment() {
    let action = yaml("action.yml");
    let run = step(&action, "run");
    let key_env = run["env"]["OPENAI_API_KEY"]
        .as_str()
        .expect("OPENAI_API_KEY in env");
    // `token` (v2's name) first, then `api-key`, then the job's environment; never github.token.
    assert_eq!(
        key_env,
        "${{ inputs.token || inputs.api-key || env.OPENAI_API_KEY }}"
    );
    assert_eq!(
        action["inputs"]["token"]["default"].as_str(),
        Some(""),
        "token has no default"
    );
    assert_eq!(action["inputs"]["max-tokens"]["default"].as_str(), Some(""));
    assert!(!read("action.yml").contains("github.token"));
    for script in run_scripts(&action) {
        // Inputs reach scripts only through env: no `${{ ... }}` spliced into shell code.
        assert!(!script.contains("${{"), "expression in a script: {script}");
        assert!(
            !script.contains("OPENAI_API_KEY"),
            "key named in a script: {script}"
        );
    }
    for file in ["scripts/action-run.sh", "scripts/action-install.sh"] {
        let script = read(file);
        assert!(
            !script.contains("--openai-api-key"),
            "{file} passes the key as a flag"
        );
        assert!(
            !script.contains("set -x"),
            "tracing would print the command lines"
        );
    }
}

#[test]
fn action_masks_the_secret_inputs_in_its_first_step() {
    let action = yaml("action.yml");
    let first = &action["runs"]["steps"][0];
    let run = step(&action, "run");
    assert!(
        first["run"]
            .as_str()
            .is_some_and(|r| r.contains("action-run.sh\" --mask")),
        "{first:?}"
    );
    for var in ["OPENAI_API_KEY", "QWEN_ACTION_CUSTOM_HEADERS"] {
        assert_eq!(first["env"][var], run["env"][var], "{var}");
    }
    assert_eq!(
        first["env"]["QWEN_ACTION_TOKEN"].as_str(),
        Some("${{ inputs.token }}")
    );
    assert_eq!(
        first["env"]["QWEN_ACTION_API_KEY"].as_str(),
        Some("${{ inputs.api-key }}")
    );
}

/// Every input the run script reads arrives as `QWEN_ACTION_<NAME>` = `${{ inputs.<name> }}`, so the
/// tests below, which set those variables, exercise what the action passes.
#[test]
fn action_run_step_passes_each_input_under_its_qwen_action_name() {
    let action = yaml("action.yml");
    let env = &step(&action, "run")["env"];
    for name in INPUTS {
        if INSTALL_INPUTS.contains(&name) || name == "token" || name == "api-key" {
            continue;
        }
        let var = format!(
            "QWEN_ACTION_{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
        assert_eq!(
            env[var.as_str()].as_str(),
            Some(format!("${{{{ inputs.{name} }}}}").as_str()),
            "{var}"
        );
    }
    let install = &step(&action, "install")["env"];
    assert_eq!(
        install["QWEN_INSTALL_VERSION"].as_str(),
        Some("${{ inputs.version }}")
    );
    assert_eq!(
        install["QWEN_INSTALL_BASE_URL"].as_str(),
        Some("${{ inputs.download-base-url }}")
    );
    assert_eq!(
        install["QWEN_INSTALL_ACTION_REF"].as_str(),
        Some("${{ github.action_ref }}")
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

pub(super) async fn server_answering(text: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(chat_response(text))
        .mount(&server)
        .await;
    server
}

/// A runner's directories for one action run: HOME, the workspace (cwd) and `RUNNER_TEMP`.
pub(super) struct ActionEnv {
    dir: tempfile::TempDir,
}

impl ActionEnv {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["home", "work", "runner-temp"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Self { dir }
    }
    pub(super) fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn runner_temp(&self) -> PathBuf {
        self.dir.path().join("runner-temp")
    }

    /// Run `scripts/action-run.sh` as the action's step does: inputs as `QWEN_ACTION_*` variables,
    /// the key as `OPENAI_API_KEY`, a cleared environment plus `extra_env`.
    pub(super) fn run(
        self,
        inputs: &[(&str, &str)],
        key: Option<&str>,
        extra_env: &[(String, String)],
    ) -> ActionRun {
        let github_output = self.dir.path().join("github-output");
        std::fs::write(&github_output, "").expect("create GITHUB_OUTPUT");
        let mut cmd = Command::new("bash");
        cmd.arg(repo_file("scripts/action-run.sh"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("RUNNER_TEMP", self.runner_temp())
            .env("GITHUB_OUTPUT", &github_output)
            .env("QWEN_BIN", env!("CARGO_BIN_EXE_qwen"))
            .current_dir(self.work())
            .stdin(Stdio::null());
        if let Some(key) = key {
            cmd.env("OPENAI_API_KEY", key);
        }
        for (name, value) in inputs {
            cmd.env(input_var(name), value);
        }
        for (name, value) in extra_env {
            cmd.env(name, value);
        }
        let output = cmd.output().expect("run bash");
        let github_output = std::fs::read_to_string(&github_output).expect("read GITHUB_OUTPUT");
        ActionRun {
            output,
            github_output,
            _env: self,
        }
    }
}

fn input_var(name: &str) -> String {
    format!(
        "QWEN_ACTION_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

pub(super) struct ActionRun {
    output: Output,
    github_output: String,
    /// Kept so that the directories (and `response-file`) outlive the run.
    _env: ActionEnv,
}

impl ActionRun {
    pub(super) fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub(super) fn stderr(&self) -> String {
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

    pub(super) fn output(&self, name: &str) -> Option<String> {
        self.outputs()
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The secrets appear nowhere but in `::add-mask::` commands, which the runner consumes (they
    /// are not shown) and which come before any other line.
    pub(super) fn assert_secrets_never_shown(&self, secrets: &[&str]) {
        let stderr = self.stderr();
        let masks: Vec<String> = secrets.iter().map(|s| format!("::add-mask::{s}")).collect();
        let lines: Vec<&str> = stderr.lines().collect();
        let first_other = lines
            .iter()
            .position(|l| !l.starts_with("::add-mask::"))
            .unwrap_or(lines.len());
        for mask in &masks {
            assert!(
                lines[..first_other].contains(&mask.as_str()),
                "`{mask}` is not among the first lines:\n{stderr}"
            );
        }
        let shown: Vec<&str> = lines[first_other..].to_vec();
        for secret in secrets {
            for (what, text) in [
                ("stdout", self.stdout()),
                ("stderr", shown.join("\n")),
                ("GITHUB_OUTPUT", self.github_output.clone()),
            ] {
                assert!(
                    !text.contains(secret),
                    "`{secret}` leaked on {what}: {text}"
                );
            }
        }
    }

    fn assert_key_never_shown(&self) {
        self.assert_secrets_never_shown(&[KEY]);
    }

    /// The log copy of qwen's stdout, checked to sit between `::stop-commands::<token>` and
    /// `::<token>::` with a token of 32 hex digits.
    fn logged_answer(&self) -> String {
        let stdout = self.stdout();
        let first = stdout.lines().next().unwrap_or_default();
        let token = first
            .strip_prefix("::stop-commands::")
            .unwrap_or_else(|| panic!("no stop-commands first: {stdout}"));
        assert_eq!(token.len(), 32, "{token}");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        let end = format!("::{token}::\n");
        assert!(stdout.ends_with(&end), "not resumed at the end: {stdout}");
        stdout[first.len() + 1..stdout.len() - end.len()].to_owned()
    }
}

fn run_action(inputs: &[(&str, &str)], key: Option<&str>) -> ActionRun {
    ActionEnv::new().run(inputs, key, &[])
}

/// A stand-in for qwen that records its arguments and the key it was given, and prints a chosen
/// answer.
struct FakeQwen {
    dir: tempfile::TempDir,
}

impl FakeQwen {
    fn new(answer: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = r#"#!/usr/bin/env bash
d=$(dirname "$0")
: >"$d/argv"
for a in "$@"; do
  printf '%s\0' "$a" >>"$d/argv"
done
printf '%s' "${OPENAI_API_KEY-<unset>}" >"$d/key"
[ -f "$d/stderr" ] && cat -- "$d/stderr" >&2
cat -- "$d/answer"
exit "$(cat -- "$d/code")"
"#;
        let bin = dir.path().join("qwen");
        std::fs::write(&bin, script).expect("write fake");
        std::fs::write(dir.path().join("answer"), answer).expect("write answer");
        std::fs::write(dir.path().join("code"), "0").expect("write code");
        let mut perms = std::fs::metadata(&bin).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&bin, perms).expect("chmod");
        Self { dir }
    }
    fn env(&self) -> Vec<(String, String)> {
        let bin = self.dir.path().join("qwen");
        vec![("QWEN_BIN".into(), bin.to_string_lossy().into_owned())]
    }
    fn argv(&self) -> Vec<String> {
        let raw = std::fs::read(self.dir.path().join("argv")).unwrap_or_default();
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
    fn ran(&self) -> bool {
        self.dir.path().join("argv").exists()
    }
    fn key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("key")).unwrap_or_default()
    }
}

pub(super) fn base_url(server: &MockServer) -> String {
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
    assert_eq!(run.output("response").as_deref(), Some(answer));
    assert_eq!(run.output("exit-code").as_deref(), Some("0"));
    assert_eq!(run.output("results-file").as_deref(), Some(""));
    let file = run.output("response-file").expect("response-file");
    assert!(file.contains("/runner-temp/qwen-response-"), "{file}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("response file"),
        format!("{answer}\n")
    );
    assert_eq!(
        run.logged_answer(),
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

// ---- v2 inputs, mapped (a fake qwen records what it is given) ----------------------------------

type Inputs = &'static [(&'static str, &'static str)];

/// One row: the inputs, then argument pairs (or single arguments) that must appear in qwen's argv.
struct Mapping {
    inputs: Inputs,
    want: &'static [&'static [&'static str]],
    absent: &'static [&'static str],
}

const MAPPINGS: &[Mapping] = &[
    Mapping {
        inputs: &[("prompt", "hi")],
        want: &[&["--prompt", "hi"]],
        absent: &["--max-tokens", "--system-prompt"],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("model", "m1")],
        want: &[&["--model", "m1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("endpoint", "http://127.0.0.1:9/v1")],
        want: &[&["--openai-base-url", "http://127.0.0.1:9/v1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("base-url", "http://127.0.0.1:9/v1")],
        want: &[&["--openai-base-url", "http://127.0.0.1:9/v1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[
            ("prompt", "hi"),
            ("base-url", "http://x/v1"),
            ("endpoint", "http://x/v1"),
        ],
        want: &[&["--openai-base-url", "http://x/v1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("max-tokens", "300")],
        want: &[&["--max-tokens", "300"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("max-completion-tokens", "300")],
        want: &[&["--max-tokens", "300"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("temperature", "0.3")],
        want: &[&["--temperature", "0.3"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("top-p", "0.9")],
        want: &[&["--top-p", "0.9"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("system-prompt", "Be brief.")],
        want: &[&["--system-prompt", "Be brief."]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("output-format", "json")],
        want: &[&["--output-format", "json"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("extra-args", "--retries 2")],
        want: &[&["--retries", "2"]],
        absent: &[],
    },
    // qwen reads the map inputs from the environment: no value on the command line.
    Mapping {
        inputs: &[("prompt", "hi"), ("custom-headers", "X-Team: qa\n")],
        want: &[&["--ai-inference-inputs"]],
        absent: &["--header", "X-Team: qa"],
    },
    // v2: max-completion-tokens counts, a different max-tokens is ignored (with a warning).
    Mapping {
        inputs: &[
            ("prompt", "hi"),
            ("max-tokens", "100"),
            ("max-completion-tokens", "300"),
        ],
        want: &[&["--max-tokens", "300"]],
        absent: &["100"],
    },
    // v2: a system-prompt-file wins over a system-prompt (with a warning).
    Mapping {
        inputs: &[
            ("prompt", "hi"),
            ("system-prompt", "ignored"),
            ("system-prompt-file", "/dev/null"),
        ],
        want: &[&["--system-prompt-file", "/dev/null"]],
        absent: &["--system-prompt", "ignored"],
    },
    // v2: provider github-models (its default) is a request to `endpoint`.
    Mapping {
        inputs: &[("prompt", "hi"), ("provider", " GitHub-Models ")],
        want: &[&["--prompt", "hi"]],
        absent: &["--ai-inference-inputs"],
    },
];

#[test]
fn action_maps_every_v2_input_to_qwen_flags() {
    let rows = MAPPINGS;
    let mut covered = BTreeSet::new();
    for row in rows {
        let fake = FakeQwen::new("ok");
        let run = ActionEnv::new().run(row.inputs, Some(KEY), &fake.env());
        assert_eq!(run.code(), Some(0), "{:?}: {}", row.inputs, run.stderr());
        let argv = fake.argv();
        for want in row.want {
            assert!(
                argv.windows(want.len()).any(|w| w == *want),
                "{:?}: no {want:?} in {argv:?}",
                row.inputs
            );
        }
        for flag in row.absent {
            assert!(
                !argv.iter().any(|a| a == flag),
                "{:?}: {flag} in {argv:?}",
                row.inputs
            );
        }
        assert_eq!(fake.key(), KEY, "the key arrives in the environment");
        assert!(
            !argv.iter().any(|a| a.contains(KEY)),
            "the key is on the command line"
        );
        covered.extend(row.inputs.iter().map(|(n, _)| *n));
    }
    // The rest of the inputs have their own tests below (files, maps, jobs, install, key).
    covered.extend([
        "prompt-file",
        "system-prompt-file",
        "input",
        "file_input",
        "jobs",
        "token",
        "api-key",
    ]);
    covered.extend(INSTALL_INPUTS);
    // Not supported: warned about by name (`action_warns_by_name_for_the_v2_inputs_it_does_not_support`).
    covered.extend(UNSUPPORTED_V2_INPUTS);
    let all: BTreeSet<&str> = INPUTS.into_iter().collect();
    assert_eq!(covered, all);
}

#[test]
fn action_refuses_inputs_that_contradict_each_other_or_do_not_parse() {
    let rows: [(Inputs, i32, &str); 6] = [
        (
            &[
                ("prompt", "hi"),
                ("base-url", "http://a/v1"),
                ("endpoint", "http://b/v1"),
            ],
            2,
            "`base-url` and `endpoint`",
        ),
        (
            &[
                ("prompt", "hi"),
                ("system-prompt-file", "/nonexistent/system.txt"),
            ],
            42,
            "cannot be read",
        ),
        (
            &[("jobs", "jobs.jsonl"), ("input", "a: 1")],
            2,
            "not to jobs",
        ),
        (
            &[("prompt", "hi"), ("provider", "copilot")],
            2,
            "provider: copilot is not supported",
        ),
        (
            &[("prompt", "hi"), ("provider", "bedrock")],
            2,
            "unsupported provider",
        ),
        (
            &[("prompt", "hi"), ("enable-github-mcp", "yes")],
            2,
            "enable-github-mcp is true or false",
        ),
    ];
    for (inputs, code, message) in rows {
        let fake = FakeQwen::new("ok");
        let run = ActionEnv::new().run(inputs, Some(KEY), &fake.env());
        assert_eq!(run.code(), Some(code), "{inputs:?}: {}", run.stderr());
        assert_eq!(
            run.output("exit-code"),
            Some(code.to_string()),
            "{inputs:?}"
        );
        assert!(
            run.stderr().contains("::error title=qwen action::"),
            "{}",
            run.stderr()
        );
        assert!(
            run.stderr().contains(message),
            "{inputs:?}: {}",
            run.stderr()
        );
        assert!(!fake.ran(), "{inputs:?}: qwen ran");
    }
}

#[test]
fn action_reads_the_system_prompt_from_a_file() {
    let fake = FakeQwen::new("ok");
    let env = ActionEnv::new();
    let file = env.work().join("system.txt");
    std::fs::write(&file, "You review Rust.\nBe terse.\n").expect("write");
    let run = env.run(
        &[("prompt", "hi"), ("system-prompt-file", "system.txt")],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = fake.argv();
    // qwen reads the file itself (through its door): the text is never on a command line.
    assert!(
        argv.windows(2)
            .any(|w| w == ["--system-prompt-file", "system.txt"]),
        "{argv:?}"
    );
    assert!(!argv.iter().any(|a| a == "--system-prompt"), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("Be terse")), "{argv:?}");
}

#[tokio::test]
async fn action_sends_the_system_prompt_file_byte_for_byte() {
    let server = server_answering("ok").await;
    let env = ActionEnv::new();
    std::fs::write(
        env.work().join("system.txt"),
        "You review Rust.\nBe terse.\n\n",
    )
    .expect("write");
    let url = base_url(&server);
    let run = env.run(
        &[
            ("prompt", "hi"),
            ("system-prompt-file", "system.txt"),
            ("base-url", &url),
        ],
        Some(KEY),
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let requests = server.received_requests().await.expect("recorded");
    let body: Value = requests[0].body_json().expect("json");
    assert_eq!(
        body["messages"][0]["content"],
        "You review Rust.\nBe terse.\n\n"
    );
}

/// Issue 19 H4: a file input committed as a link to `/proc/self/environ` (or to a file outside
/// the workspace) is refused, for every input that names a file, and nothing is sent.
#[tokio::test]
async fn action_file_inputs_that_link_out_of_the_workspace_are_refused() {
    let server = server_answering("echo").await;
    let url = base_url(&server);
    let secret = "OUTSIDE-SECRET-4242";
    for target in ["/proc/self/environ", "OUTSIDE"] {
        for case in 0..5 {
            let env = ActionEnv::new();
            let outside = env.runner_temp().join("outside.txt");
            std::fs::write(&outside, secret).expect("write");
            let target = if target == "OUTSIDE" {
                outside.clone()
            } else {
                PathBuf::from(target)
            };
            std::os::unix::fs::symlink(&target, env.work().join("evil.txt")).expect("symlink");
            std::fs::write(
                env.work().join("t.prompt.yml"),
                "messages:\n  - role: user\n    content: '{{d}}'\n",
            )
            .expect("write");
            let inputs: Vec<(&str, &str)> = match case {
                0 => vec![("prompt", "hi"), ("system-prompt-file", "evil.txt")],
                1 => vec![
                    ("prompt-file", "t.prompt.yml"),
                    ("file_input", "d: evil.txt"),
                ],
                2 => vec![("prompt-file", "evil.txt")],
                3 => vec![("prompt-file", "evil.txt"), ("prompt", "review")],
                _ => vec![("prompt-file", "./evil.txt"), ("prompt", "review")],
            };
            let mut all = inputs.clone();
            all.push(("base-url", &url));
            let run = env.run(&all, Some(KEY), &[("SECRET_ENV".into(), secret.into())]);
            assert_eq!(
                run.code(),
                Some(42),
                "{inputs:?} -> {target:?}: {}",
                run.stderr()
            );
            assert_eq!(run.output("exit-code").as_deref(), Some("42"));
            run.assert_key_never_shown();
            assert!(!run.stderr().contains(secret), "{}", run.stderr());
            assert!(!run.stdout().contains(secret), "{}", run.stdout());
        }
    }
    assert_eq!(server.received_requests().await.expect("recorded").len(), 0);
}

#[test]
fn action_passes_every_line_of_extra_args() {
    let fake = FakeQwen::new("ok");
    let env = ActionEnv::new();
    let run = env.run(
        &[
            ("prompt", "hi"),
            ("extra-args", "--retries 2\n--max-tokens 5\n\t --seed 3  \n"),
        ],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = fake.argv();
    for pair in [["--retries", "2"], ["--max-tokens", "5"], ["--seed", "3"]] {
        assert!(argv.windows(2).any(|w| w == pair), "{pair:?} in {argv:?}");
    }
}

/// The map inputs are qwen's to read (`--ai-inference-inputs`, from the same `QWEN_ACTION_*`
/// variables): the script never parses them, and no value reaches a command line. What qwen makes
/// of them is tested against a server in `ai_inference_v2.rs`.
#[test]
fn action_hands_the_map_inputs_to_qwen_through_the_environment() {
    let fake = FakeQwen::new("ok");
    let env = ActionEnv::new();
    std::fs::write(env.work().join("review.prompt.yml"), "messages: []\n").expect("write");
    let run = env.run(
        &[
            ("prompt-file", "review.prompt.yml"),
            ("input", "lang: Rust-value-1\nnotes: |\n  one\n"),
            ("file_input", "{\"diff\": \"pr.diff\"}"),
            ("custom-headers", "X-Team: hdr-value-2"),
        ],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = fake.argv();
    assert!(
        argv.windows(3).any(|w| w
            == [
                "--ai-inference-inputs",
                "--prompt-file",
                "review.prompt.yml"
            ]),
        "{argv:?}"
    );
    for a in &argv {
        for value in [
            "Rust-value-1",
            "pr.diff",
            "hdr-value-2",
            "--var",
            "--header",
        ] {
            assert!(!a.contains(value), "{value} in {argv:?}");
        }
    }
    // Without a .prompt.yml prompt file, v2 never reads input or file_input: a warning, and qwen
    // is not asked to read them.
    let fake = FakeQwen::new("ok");
    let run = ActionEnv::new().run(
        &[("prompt", "hi"), ("input", "a: 1"), ("file_input", "b: x")],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let stderr = run.stderr();
    for name in ["input", "file_input"] {
        assert!(
            stderr.contains(&format!("::warning title=qwen action::{name} is ignored: it fills the placeholders of a .prompt.yml prompt-file")),
            "{stderr}"
        );
    }
    assert!(!fake.argv().iter().any(|a| a == "--ai-inference-inputs"));
}

#[test]
fn action_masks_the_key_and_every_header_value_before_anything_else() {
    let fake = FakeQwen::new("fine");
    let headers = "X-Api-Token: hdr-secret-1\nX-Other: \"hdr-secret-2\"\n";
    let run = ActionEnv::new().run(
        &[("prompt", "hi"), ("custom-headers", headers)],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "hdr-secret-1", "hdr-secret-2"]);

    // Text that is no map (qwen warns and sends no header) is masked line by line all the same,
    // and a JSON object's values are masked by qwen once it has read them.
    let run = ActionEnv::new().run(
        &[
            ("prompt", "hi"),
            ("custom-headers", "X-A: [x]\nhdr-secret-3"),
        ],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "hdr-secret-3"]);
}

/// Issue 21 point 3: the v2 inputs qwen does not support are warned about by name (never by value),
/// the run goes on, and the MCP token is masked like every secret.
#[test]
fn action_warns_by_name_for_the_v2_inputs_it_does_not_support() {
    let fake = FakeQwen::new("fine");
    let inputs = [
        ("enable-github-mcp", "true"),
        ("github-mcp-token", "ghp-mcp-secret-77"),
        ("github-mcp-toolsets", "repos,issues"),
        ("copilot-cli-path", "/opt/copilot"),
        ("copilot-allow-tools", "shell"),
    ];
    let mut all = vec![("prompt", "hi")];
    all.extend(inputs);
    let run = ActionEnv::new().run(&all, Some(KEY), &fake.env());
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "ghp-mcp-secret-77"]);
    let stderr = run.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("::warning"))
        .collect();
    assert_eq!(warnings.len(), inputs.len(), "{stderr}");
    for ((name, value), warning) in inputs.iter().zip(&warnings) {
        assert!(
            warning.starts_with(&format!(
                "::warning title=qwen action::{name} is not supported"
            )),
            "{name}: {stderr}"
        );
        assert!(!warning.contains(value), "{value}: {warning}");
    }
    // `enable-github-mcp: false` and `provider: github-models` (v2's defaults) ask for nothing
    // qwen lacks; `provider: copilot` fails (`action_refuses_inputs_that_contradict_…`).
    for (name, value) in [
        ("enable-github-mcp", "false"),
        ("enable-github-mcp", "FALSE"),
        ("provider", "github-models"),
    ] {
        let run = ActionEnv::new().run(&[("prompt", "hi"), (name, value)], Some(KEY), &fake.env());
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        assert!(!run.stderr().contains("::warning"), "{}", run.stderr());
    }
}

#[test]
fn action_mask_mode_prints_only_masks_and_sets_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let github_output = dir.path().join("out");
    let out = Command::new("bash")
        .arg(repo_file("scripts/action-run.sh"))
        .arg("--mask")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", KEY)
        .env("QWEN_ACTION_CUSTOM_HEADERS", "{\"X-A\": \"v%1\\nv2\"}")
        .env("QWEN_ACTION_TOKEN", KEY)
        .env("QWEN_ACTION_API_KEY", "other-key")
        .env("GITHUB_OUTPUT", &github_output)
        .env("QWEN_BIN", "/nonexistent/qwen")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "::add-mask::{KEY}\n::add-mask::{KEY}\n::add-mask::other-key\n::add-mask::{{\"X-A\": \"v%251\\nv2\"}}\n::add-mask::v%251\\nv2\n"
        )
    );
    assert!(
        !github_output.exists()
            || std::fs::read_to_string(&github_output)
                .unwrap_or_default()
                .is_empty()
    );
}

#[tokio::test]
async fn action_stops_workflow_commands_in_the_answer_it_copies_into_the_log() {
    let answer = "::warning::pwned\n::add-mask::x\n::stop-commands::guess\n::error::done";
    let server = server_answering(answer).await;
    let url = base_url(&server);
    let run = run_action(&[("prompt", "hi"), ("base-url", &url)], Some(KEY));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.logged_answer(), format!("{answer}\n"));
    assert_eq!(run.output("result").as_deref(), Some(answer));
}

/// The runner reads both streams as one log: qwen's own workflow commands on stderr (its masks and
/// annotations) must come before the stopped stretch, never inside it.
#[test]
fn action_copies_the_answer_after_qwens_own_workflow_commands() {
    let fake = FakeQwen::new("::warning::from the server\n");
    std::fs::write(
        fake.dir.path().join("stderr"),
        "::add-mask::oauth-token\n::error::boom\n",
    )
    .expect("write");
    let env = ActionEnv::new();
    let out = Command::new("bash")
        .arg("-c")
        .arg("exec bash \"$0\" 2>&1")
        .arg(repo_file("scripts/action-run.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUNNER_TEMP", env.runner_temp())
        .env("OPENAI_API_KEY", KEY)
        .env("QWEN_ACTION_PROMPT", "hi")
        .env("QWEN_BIN", fake.dir.path().join("qwen"))
        .current_dir(env.work())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = log.lines().collect();
    let stop = lines
        .iter()
        .position(|l| l.starts_with("::stop-commands::"))
        .expect("stop-commands");
    let token = &lines[stop]["::stop-commands::".len()..];
    let end = format!("::{token}::");
    assert_eq!(
        lines[stop + 1..],
        ["::warning::from the server", end.as_str()]
    );
    let error = lines
        .iter()
        .position(|l| *l == "::error::boom")
        .expect("qwen's annotation");
    let mask = lines
        .iter()
        .position(|l| *l == "::add-mask::oauth-token")
        .expect("qwen's mask");
    assert!(error < stop && mask < stop, "{log}");
}

#[test]
fn action_leaves_an_answer_over_256_kib_to_response_file_with_a_warning() {
    let big = "x".repeat(256 * 1024 + 1);
    let fake = FakeQwen::new(&big);
    let run = ActionEnv::new().run(&[("prompt", "hi")], Some(KEY), &fake.env());
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("result").as_deref(), Some(""));
    assert_eq!(run.output("response").as_deref(), Some(""));
    let file = run.output("response-file").expect("response-file");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), big);
    assert!(
        run.stderr()
            .contains("::warning title=qwen action::the answer is 262145 bytes")
            && run.stderr().contains("response-file"),
        "{}",
        run.stderr()
    );

    // Exactly 256 KiB still fits.
    let fits = "y".repeat(256 * 1024);
    let fake = FakeQwen::new(&fits);
    let run = ActionEnv::new().run(&[("prompt", "hi")], Some(KEY), &fake.env());
    assert_eq!(run.output("response").as_deref(), Some(fits.as_str()));
    assert!(!run.stderr().contains("::warning"));
}

// ---- the examples, run through the action's script ------------------------------------------------

/// The `with:` of the example's step that uses this action, with `${{ ... }}` replaced from `values`.
fn example_inputs(rel: &str, values: &[(&str, &str)]) -> Vec<(String, String)> {
    let wf = yaml(rel);
    let jobs = wf["jobs"].as_mapping().expect("jobs");
    let step = jobs
        .values()
        .filter_map(|j| j["steps"].as_sequence())
        .flatten()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("qwen-headless/qwen@"))
        })
        .unwrap_or_else(|| panic!("{rel}: no step uses the action"));
    let uses = step["uses"].as_str().unwrap_or_default();
    let sha = uses.split('@').nth(1).unwrap_or_default();
    assert!(
        sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
        "{rel}: {uses}"
    );
    let mut out = Vec::new();
    for (name, value) in step["with"].as_mapping().expect("with") {
        let name = name.as_str().expect("input name").to_owned();
        assert!(
            INPUTS.contains(&name.as_str()),
            "{rel}: unknown input {name}"
        );
        let mut value = match value {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            other => panic!("{rel}: {name} is {other:?}"),
        };
        while let Some(start) = value.find("${{") {
            let end = value[start..].find("}}").expect("closing }}") + start + 2;
            let expr = value[start + 3..end - 2].trim();
            let (_, with) = values
                .iter()
                .find(|(e, _)| *e == expr)
                .unwrap_or_else(|| panic!("{rel}: no test value for `{expr}`"));
            value.replace_range(start..end, with);
        }
        out.push((name, value));
    }
    out
}

fn as_inputs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .filter(|(n, _)| !INSTALL_INPUTS.contains(&n.as_str()))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn example_pr_review_runs_through_the_action_against_a_local_server() {
    let server = server_answering("Looks fine.").await;
    let url = base_url(&server);
    let env = ActionEnv::new();
    let temp = env.runner_temp().to_string_lossy().into_owned();
    std::fs::write(env.runner_temp().join("pr.diff"), "+fn main() {}\n").expect("write diff");
    let inputs = example_inputs(
        "examples/github-actions/pr-review.yml",
        &[
            ("runner.temp", &temp),
            ("secrets.OPENAI_API_KEY", KEY),
            ("vars.OPENAI_BASE_URL", &url),
            ("vars.OPENAI_MODEL", "review-model"),
        ],
    );
    let run = env.run(
        &as_inputs(&inputs),
        None,
        &[("OPENAI_API_KEY".into(), KEY.into())],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("result").as_deref(), Some("Looks fine."));
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert_eq!(body["model"], "review-model");
    assert_eq!(body["max_tokens"], 1500);
    assert_eq!(body["temperature"], 0.2);
    let prompt = body["messages"][0]["content"].as_str().expect("content");
    assert!(
        prompt.starts_with("+fn main() {}\n\n\nReview this pull request diff."),
        "{prompt}"
    );
    run.assert_key_never_shown();
}

#[tokio::test]
async fn example_migration_runs_the_v2_inputs_against_a_local_server() {
    let server = server_answering("- one").await;
    let url = base_url(&server);
    let rel = "examples/github-actions/migrate-from-ai-inference.yml";
    let inputs = example_inputs(
        rel,
        &[
            ("secrets.OPENAI_API_KEY", KEY),
            ("vars.OPENAI_BASE_URL", &url),
        ],
    );
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    for v2 in [
        "system-prompt",
        "prompt",
        "model",
        "max-tokens",
        "endpoint",
        "token",
    ] {
        assert!(names.contains(&v2), "{v2} missing from {names:?}");
    }
    // The key comes from `token` (action.yml: inputs.token || inputs.api-key || env.OPENAI_API_KEY).
    let token = inputs
        .iter()
        .find(|(n, _)| n == "token")
        .map(|(_, v)| v.clone())
        .expect("token");
    let run = ActionEnv::new().run(&as_inputs(&inputs), Some(&token), &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("response").as_deref(), Some("- one"));
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["max_tokens"], 400);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][0]["content"],
        "You write release notes for engineers."
    );
    // The v2 "before" is shown in the comment, and a later step reads `response`.
    let text = read(rel);
    assert!(text.contains("#         uses: actions/ai-inference@v2"));
    assert!(text.contains("steps.summary.outputs.response"));
    run.assert_key_never_shown();
}

#[tokio::test]
async fn example_issue_triage_passes_its_prompt_file_and_drives_the_label_step() {
    let rel = "examples/github-actions/issue-triage.yml";
    let server = server_answering(r#"{"kind":"bug","reason":"it crashes"}"#).await;
    let url = base_url(&server);
    let env = ActionEnv::new();
    let temp = env.runner_temp().to_string_lossy().into_owned();
    let prompts = env.work().join(".github/prompts");
    std::fs::create_dir_all(&prompts).expect("mkdir");
    std::fs::copy(
        repo_file("examples/github-actions/prompts/triage.prompt.yml"),
        prompts.join("triage.prompt.yml"),
    )
    .expect("copy the prompt file");
    std::fs::write(env.runner_temp().join("title.txt"), "App crashes").expect("write");
    std::fs::write(env.runner_temp().join("body.txt"), "on start").expect("write");
    let inputs = example_inputs(
        rel,
        &[
            ("runner.temp", &temp),
            ("secrets.OPENAI_API_KEY", KEY),
            ("vars.OPENAI_BASE_URL", &url),
        ],
    );
    let run = env.run(&as_inputs(&inputs), Some(KEY), &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let requests = server.received_requests().await.expect("recorded");
    let body: Value = requests[0].body_json().expect("json");
    assert_eq!(body["response_format"]["json_schema"]["name"], "triage");
    assert_eq!(
        body["messages"][1]["content"],
        "Title: App crashes\n\n<issue>\non start\n</issue>\n"
    );
    let response: Value =
        serde_json::from_str(&run.output("response").expect("response")).expect("JSON");
    assert_eq!(response["kind"], "bug");

    // The label step's `if:` reads that field of the response.
    let wf = yaml(rel);
    let steps = wf["jobs"]["triage"]["steps"].as_sequence().expect("steps");
    let label = steps
        .iter()
        .find(|s| s["name"].as_str() == Some("Label a bug"))
        .expect("label step");
    assert_eq!(
        label["if"].as_str(),
        Some(
            "steps.triage.outputs.exit-code == '0' && fromJSON(steps.triage.outputs.response).kind == 'bug'"
        )
    );
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
    assert!(text.contains("tool: nextest"));
    assert!(!text.contains("contents: write"));
    assert!(scripts.contains("./scripts/lint-ci.sh"), "{scripts}");

    let msrv = ci["jobs"]["msrv"]["strategy"]["matrix"]["rust"]
        .as_sequence()
        .expect("msrv matrix");
    assert_eq!(msrv.len(), 1);
    assert_eq!(msrv[0].as_str(), Some(cargo_rust_version().as_str()));
}

#[test]
fn release_workflow_ships_linux_and_macos_binaries_with_one_sha256sums_on_tags() {
    let release = yaml(".github/workflows/release.yml");
    let tags = &triggers(&release)["push"]["tags"];
    assert_eq!(tags.as_sequence().map(Vec::len), Some(1));
    assert_eq!(tags[0].as_str(), Some("v*"));
    // Nothing by default; read for the builds, write only where the release is published.
    assert_eq!(
        release["permissions"]
            .as_mapping()
            .map(serde_yaml::Mapping::len),
        Some(0)
    );
    assert_eq!(
        release["jobs"]["build"]["permissions"]["contents"].as_str(),
        Some("read")
    );
    assert_eq!(
        release["jobs"]["release"]["permissions"]["contents"].as_str(),
        Some("write")
    );
    let matrix: Vec<(&str, &str)> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("build matrix")
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap_or_default(),
                e["os"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        matrix,
        [
            ("x86_64-unknown-linux-musl", "ubuntu-latest"),
            ("aarch64-unknown-linux-musl", "ubuntu-latest"),
            ("x86_64-apple-darwin", "macos-latest"),
            ("aarch64-apple-darwin", "macos-latest"),
        ]
    );
    let scripts = run_scripts(&release).join("\n");
    assert!(scripts.contains("cargo build --release --locked --target \"$TARGET\""));
    assert!(
        scripts.contains("name=\"qwen-$VERSION-$TARGET\""),
        "the asset name the install script expects"
    );
    assert!(scripts.contains("sha256sum qwen-*.tar.gz > SHA256SUMS"));
    assert!(scripts.contains("gh release create") && scripts.contains("gh release upload"));
    assert!(!read(".github/workflows/release.yml").contains("softprops/"));
    // The install script looks for exactly these assets.
    let install = read("scripts/action-install.sh");
    for target in matrix.iter().map(|(t, _)| t) {
        assert!(install.contains(&format!("target={target}")), "{target}");
    }
    assert!(install.contains("asset=\"qwen-$version-$target.tar.gz\""));
}

/// Every `uses:` of the action, the workflows and the examples is pinned to a full commit SHA with the
/// version in a comment (GitHub's own `actions/*` too, so zizmor needs no configuration); every
/// checkout leaves no credentials behind.
#[test]
fn workflows_pin_third_party_actions_and_do_not_persist_credentials() {
    let mut files = vec![
        "action.yml".to_owned(),
        ".github/workflows/ci.yml".to_owned(),
        ".github/workflows/release.yml".to_owned(),
    ];
    for entry in std::fs::read_dir(repo_file("examples/github-actions")).expect("examples") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if Path::new(&name).extension().is_some_and(|e| e == "yml") {
            files.push(format!("examples/github-actions/{name}"));
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        let text = read(file);
        for line in text.lines() {
            let Some(uses) = line
                .trim_start()
                .trim_start_matches("- ")
                .strip_prefix("uses: ")
            else {
                continue;
            };
            let (_, rest) = uses
                .split_once('@')
                .unwrap_or_else(|| panic!("{file}: {line}"));
            let reference = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit()),
                "{file}: `{line}` is not pinned to a commit"
            );
            assert!(rest.contains(" # "), "{file}: `{line}` names no version");
        }
        let doc = yaml(file);
        let mut steps: Vec<&Yaml> = Vec::new();
        if let Some(jobs) = doc.get("jobs").and_then(Yaml::as_mapping) {
            for job in jobs.values() {
                steps.extend(job["steps"].as_sequence().into_iter().flatten());
            }
        }
        for s in steps {
            if s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(
                    s["with"]["persist-credentials"].as_bool(),
                    Some(false),
                    "{file}"
                );
            }
        }
    }
    assert!(
        !repo_file(".github/zizmor.yml").exists() && !repo_file("zizmor.yml").exists(),
        "zizmor runs at its default settings"
    );
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
        "qwen --jobs fixtures/jobs.jsonl --shard \"$SHARD/4\" --output \"part-$SHARD.jsonl\""
    ));
    assert!(scripts.contains("cat part-*.jsonl > results.jsonl"));
    assert_eq!(wf["jobs"]["merge"]["needs"].as_str(), Some("shard"));
    assert!(repo_file("fixtures/jobs.jsonl").is_file());
}

/// What the action passes (`--prompt-file`, `--top-p`, and `input`, `file_input`, `custom-headers`
/// through `--ai-inference-inputs`) reaches the request through the real qwen: the prompt file's
/// messages filled, its `modelParameters` under the inputs, the headers sent and their values masked.
#[tokio::test]
async fn a_prompt_file_with_inputs_top_p_and_headers_runs_through_the_real_qwen() {
    let server = server_answering("LGTM").await;
    let env = ActionEnv::new();
    std::fs::write(
        env.work().join("review.prompt.yml"),
        "model: file-model\nmodelParameters:\n  maxTokens: 300\n  topP: 0.5\nmessages:\n  - role: system\n    content: You review {{lang}}.\n  - role: user\n    content: \"Diff:\\n{{diff}}\"\n",
    )
    .expect("write");
    std::fs::write(env.work().join("pr.diff"), "+ fn main() {}\n").expect("write");
    let url = format!("{}/v1", server.uri());
    let run = env.run(
        &[
            ("prompt-file", "review.prompt.yml"),
            ("input", "lang: Rust"),
            ("file_input", "diff: pr.diff"),
            ("endpoint", &url),
            ("top-p", "0.9"),
            (
                "custom-headers",
                "X-Team: qa\nX-Tenant-Key: tenant-key-000111",
            ),
        ],
        Some(KEY),
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "tenant-key-000111"]);
    assert_eq!(run.output("response").as_deref(), Some("LGTM"));
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let body: Value = requests[0].body_json().expect("json");
    assert_eq!(body["model"], "file-model");
    assert_eq!(
        body["top_p"], 0.9,
        "the input wins over modelParameters.topP"
    );
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You review Rust."},
            {"role": "user", "content": "Diff:\n+ fn main() {}\n"}
        ])
    );
    let header = |name: &str| {
        requests[0]
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    assert_eq!(header("x-team").as_deref(), Some("qa"));
    assert_eq!(header("x-tenant-key").as_deref(), Some("tenant-key-000111"));
}
