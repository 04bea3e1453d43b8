//! `.prompt.yml` prompt files: messages, model and parameters filled (flags win), their JSON
//! schema, plain prompt files, and a job's prompt file merged over the defaults.

use serde_json::{Value, json};

use crate::common::{TestEnv, only_body, request_bodies, run, server_answering};

const REVIEW: &str = "\
name: Review
model: reviewer-model
modelParameters:
  temperature: 0.1
  maxTokens: 100
messages:
  - role: system
    content: You review {{lang}} code.
  - role: user
    content: |
      Review this:
      {{diff}}
      {{unknown}}
";

#[tokio::test]
async fn a_prompt_file_sends_its_messages_model_and_parameters_filled_and_flags_win() {
    let env = TestEnv::new();
    env.write_project("review.prompt.yml", REVIEW);
    env.write_project("changes.diff", "+ added line\n");
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args([
        "--prompt-file",
        "review.prompt.yml",
        "--var",
        "diff=@changes.diff",
        "--var",
        "lang=Rust",
        "--temperature",
        "0.5",
    ]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_has("no value for `{{unknown}}`");
    let body = only_body(&server).await;
    assert_eq!(body["model"], "reviewer-model");
    assert_eq!(
        body["temperature"], 0.5,
        "the flag wins over modelParameters"
    );
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You review Rust code."},
            {"role": "user", "content": "Review this:\n+ added line\n\n{{unknown}}\n"}
        ])
    );
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "review.prompt.yml", "-m", "flag-model"]))
    .code(0);
    assert_eq!(request_bodies(&server).await[1]["model"], "flag-model");
}

#[tokio::test]
async fn a_prompt_files_json_schema_behaves_like_json_schema() {
    let env = TestEnv::new();
    env.write_project(
        "label.prompt.yaml",
        "messages:\n  - role: user\n    content: Label {{x}}\nresponseFormat: json_schema\njsonSchema: '{\"name\": \"l\", \"strict\": true, \"schema\": {\"type\": \"object\", \"properties\": {\"label\": {\"type\": \"string\"}}, \"required\": [\"label\"], \"additionalProperties\": false}}'\n",
    );
    let server = server_answering(&["{\"label\": ", "\"bug\"}"]).await;
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "label.prompt.yaml", "--var", "x=it"]))
    .code(0)
    .stdout_is("{\"label\":\"bug\"}\n");
    let body = only_body(&server).await;
    assert_eq!(body["response_format"]["type"], "json_schema");
}

#[tokio::test]
async fn a_plain_prompt_file_is_the_prompt_text_and_takes_no_vars() {
    let env = TestEnv::new();
    env.write_project("notes.txt", "Summarize {{this}}");
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args(["--prompt-file", "notes.txt"])).code(0);
    assert_eq!(
        only_body(&server).await["messages"],
        json!([{"role": "user", "content": "Summarize {{this}}"}])
    );
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "notes.txt", "--var", "this=x"]))
    .code(2)
    .stderr_has("--var");
    run(env.cmd_for(&server).args(["--var", "a=b", "hi"])).code(2);
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "missing.prompt.yml"]))
    .code(42);
}

#[tokio::test]
async fn a_jobs_prompt_file_vars_headers_and_extra_body_merge_over_the_defaults() {
    let env = TestEnv::new();
    env.write_project("jobs/review.prompt.yml", REVIEW);
    env.write_project("jobs/a.diff", "+ a\n");
    env.write_project(
        "jobs/jobs.yaml",
        "\
defaults:
  headers: {X-Team: qa, X-Env: ci}
  extra_body: {top_k: 5, enable_thinking: false}
  reasoning_effort: low
jobs:
  - id: one
    prompt_file: review.prompt.yml
    vars: {diff: '@a.diff', lang: Go}
    headers: {X-Env: prod}
    extra_body: {enable_thinking: true}
    top_p: 0.8
    seed: 3
    stop: [END]
",
    );
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs/jobs.yaml", "-H", "X-Title: CI", "-q"]))
    .code(0);
    let requests = server.received_requests().await.expect("recorded");
    let h = |name: &str| {
        requests[0]
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    assert_eq!(h("x-team").as_deref(), Some("qa"));
    assert_eq!(h("x-env").as_deref(), Some("prod"));
    assert_eq!(h("x-title").as_deref(), Some("CI"));
    let body = requests[0].body_json::<Value>().expect("json");
    assert_eq!(body["model"], "reviewer-model");
    assert_eq!(body["top_k"], 5);
    assert_eq!(body["enable_thinking"], true);
    assert_eq!(body["reasoning_effort"], "low");
    assert_eq!(
        (body["top_p"].clone(), body["seed"].clone()),
        (json!(0.8), json!(3))
    );
    assert_eq!(body["stop"], json!(["END"]));
    assert_eq!(
        body["messages"][1]["content"],
        "Review this:\n+ a\n\n{{unknown}}\n"
    );
    assert!(
        body.get("extra_body").is_none()
            && body.get("headers").is_none()
            && body.get("vars").is_none()
    );

    env.write_project(
        "jobs/escape.yaml",
        "jobs:\n  - prompt_file: review.prompt.yml\n    vars: {diff: '@../secret.txt'}\n",
    );
    env.write_project("secret.txt", "do not read");
    run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs/escape.yaml", "-q"]))
    .code(42)
    .stderr_has("inside the job file's directory");
    env.write_project(
        "jobs/model.yaml",
        "jobs:\n  - prompt: hi\n    extra_body: {model: x}\n",
    );
    run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs/model.yaml", "-q"]))
    .code(42)
    .stderr_has("cannot set `model`");
    env.write_project(
        "jobs/bad-defaults.yaml",
        "defaults:\n  headers: {Authorization: Bearer x}\njobs:\n  - prompt: hi\n",
    );
    run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs/bad-defaults.yaml", "-q"]))
    .code(42)
    .stderr_has("`defaults.headers`")
    .stderr_lacks("Bearer x");
}
