//! The action's run step for real, against wiremock: its outputs, its exit codes, its refusals,
//! and what the action passes reaching the request through the real qwen.

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{ActionEnv, KEY, base_url, run_action, server_answering};

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
