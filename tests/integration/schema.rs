//! `--json-schema` (`response_format`, validation, repair turns, degradation, exit 65), job schemas,
//! `--fallback-model`, `--result-file` and `--max-total-tokens`, against wiremock servers.

use serde_json::{Value, json};
use wiremock::matchers::body_string_contains;
use wiremock::{MockServer, ResponseTemplate};

use crate::batch_support::{by_id, file_lines, jsonl};
use crate::common::{
    Run, Sse, TestEnv, assert_error_result, chat, error_response, request_bodies, run,
    server_expecting, server_mounting, server_with,
};

const LABEL_SCHEMA: &str = r#"{"type":"object","properties":{"label":{"enum":["bug","feature"]}},"required":["label"],"additionalProperties":false}"#;

/// `OpenAI`'s answer to a model without Structured Outputs (Chat Completions, HTTP 400).
fn refuses(kind: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": format!("Invalid parameter: 'response_format' of type '{kind}' is not supported with this model."),
        "type": "invalid_request_error", "param": "response_format", "code": null}}))
}

fn answer(text: &str) -> ResponseTemplate {
    Sse::answer(&[text]).respond()
}

fn qwen(env: &TestEnv, server: &MockServer, args: &[&str]) -> Run {
    run(env
        .cmd_for(server)
        .args(["--retries", "0", "--retry-base-delay", "0"])
        .args(args))
}

fn messages(body: &Value) -> &Vec<Value> {
    body["messages"].as_array().expect("messages")
}

#[tokio::test]
async fn a_strict_schema_is_sent_as_response_format_and_the_value_is_the_result() {
    let env = TestEnv::new();
    let server = server_with(answer(r#"{"label": "bug"}"#), 1).await;
    let r = qwen(
        &env,
        &server,
        &[
            "--json",
            "--json-schema",
            LABEL_SCHEMA,
            "Classify: it crashes",
        ],
    );
    r.code(0);
    let body = request_bodies(&server).await.remove(0);
    let schema: Value = serde_json::from_str(LABEL_SCHEMA).unwrap();
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": true}})
    );
    // The schema travels in response_format only: no extra system message.
    assert_eq!(messages(&body).len(), 1);
    let result = r.result();
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], r#"{"label":"bug"}"#);
    assert_eq!(result["structured_result"], json!({"label": "bug"}));
    assert_eq!(result["response_format"], "json_schema");
}

#[tokio::test]
async fn a_schema_outside_the_strict_rules_is_sent_with_strict_false() {
    let env = TestEnv::new();
    let server = server_with(answer(r#"{"label": "bug", "why": "crash"}"#), 1).await;
    let open = r#"{"title":"Triage","type":"object","properties":{"label":{"type":"string"}},"required":["label"]}"#;
    let r = qwen(
        &env,
        &server,
        &["-o", "stream-json", "--json-schema", open, "go"],
    );
    r.code(0);
    let body = request_bodies(&server).await.remove(0);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], false);
    assert_eq!(body["response_format"]["json_schema"]["name"], "Triage");
    let result = r.json_lines().pop().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["structured_result"]["why"], "crash");
}

/// Issue 21 point 3: a prompt file's `jsonSchema` is sent as written, as `actions/ai-inference`
/// v2 sends `JSON.parse(jsonSchema)`: its `name`, its `strict: false`, no `strict` when it gives
/// none; in a single run and in a job file's `prompt_file` alike.
#[tokio::test]
async fn a_prompt_files_json_schema_is_sent_as_written() {
    let env = TestEnv::new();
    let specs = [
        json!({"name": "describe_animal", "strict": false, "schema": serde_json::from_str::<Value>(LABEL_SCHEMA).unwrap()}),
        json!({"name": "no_strict", "schema": {"type": "object"}}),
    ];
    for spec in &specs {
        let server = server_with(answer(r#"{"label": "bug"}"#), 2).await;
        env.write_project(
            "a.prompt.yml",
            &format!(
                "messages:\n  - role: user\n    content: Classify\nresponseFormat: json_schema\njsonSchema: '{spec}'\n"
            ),
        );
        qwen(&env, &server, &["--prompt-file", "a.prompt.yml"]).code(0);
        env.write_project(
            "j.jsonl",
            &jsonl(&[json!({"id": "a", "prompt_file": "a.prompt.yml"})]),
        );
        qwen(
            &env,
            &server,
            &["--jobs", "j.jsonl", "--output", "o.jsonl", "--overwrite"],
        )
        .code(0);
        for body in request_bodies(&server).await {
            assert_eq!(
                body["response_format"],
                json!({"type": "json_schema", "json_schema": spec})
            );
        }
    }
}

#[tokio::test]
async fn text_mode_stdout_is_exactly_the_compact_value_and_a_newline_even_from_a_fence() {
    let env = TestEnv::new();
    let server = server_with(answer("```json\n{\n  \"label\" : \"feature\"\n}\n```"), 1).await;
    env.write_project("schemas/label.json", LABEL_SCHEMA);
    let r = qwen(
        &env,
        &server,
        &["--json-schema", "@schemas/label.json", "x"],
    );
    r.code(0).stdout_is("{\"label\":\"feature\"}\n");
}

#[tokio::test]
async fn an_invalid_then_valid_answer_takes_two_requests_the_second_carrying_the_errors() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .respond_with(answer(r#"{"label": "question"}"#))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(answer(r#"{"label": "bug"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let r = qwen(&env, &server, &["--json-schema", LABEL_SCHEMA, "Classify"]);
    r.code(0).stdout_is("{\"label\":\"bug\"}\n");
    let bodies = request_bodies(&server).await;
    assert_eq!(bodies.len(), 2);
    let second = messages(&bodies[1]);
    assert_eq!(second.len(), 3, "user, the wrong answer, the repair turn");
    assert_eq!(second[1]["role"], "assistant");
    assert_eq!(second[1]["content"], r#"{"label": "question"}"#);
    assert_eq!(second[2]["role"], "user");
    let repair = second[2]["content"].as_str().unwrap();
    assert!(repair.contains("at `/label`"), "{repair}");
    assert!(repair.contains("question"), "{repair}");
    assert_eq!(bodies[1]["response_format"]["type"], "json_schema");
}

#[tokio::test]
async fn an_answer_that_never_matches_exits_65_after_one_plus_n_requests() {
    let env = TestEnv::new();
    let server = server_with(answer("Sure! It is a bug."), 4).await;
    let r = qwen(
        &env,
        &server,
        &[
            "--json",
            "--json-schema",
            LABEL_SCHEMA,
            "--schema-retries",
            "3",
            "Classify",
        ],
    );
    r.code(65)
        .stderr_has("error: the answer does not match the JSON schema");
    let result = r.result();
    assert_error_result(&result, "schema_validation");
    assert_eq!(result["error"]["last_answer"], "Sure! It is a bug.");
    // Four answers were received, and their tokens are reported.
    assert_eq!(result["num_turns"], 4);
    assert_eq!(result["usage"]["total_tokens"], 4 * 14);
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{result}"
    );
    // Text mode prints nothing on stdout when it fails.
    let server = server_with(answer(r#"{"label": 1}"#), 3).await;
    qwen(&env, &server, &["--json-schema", LABEL_SCHEMA, "Classify"])
        .code(65)
        .stdout_empty();
}

#[tokio::test]
async fn a_server_that_refuses_response_format_gets_json_object_then_none_and_is_remembered() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(body_string_contains(r#""type":"json_schema""#))
        .respond_with(refuses("json_schema"))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .and(body_string_contains(r#""type":"json_object""#))
        .respond_with(refuses("json_object"))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    // Without response_format: a wrong answer first, then a right one.
    chat()
        .respond_with(answer(r#"{"label": "nope"}"#))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    chat()
        .respond_with(answer(
            r#"```json
{"label": "feature"}
```"#,
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let r = qwen(
        &env,
        &server,
        &["--json", "--json-schema", LABEL_SCHEMA, "Classify"],
    );
    r.code(0).stderr_has("refused `response_format`");
    let result = r.result();
    assert_eq!(result["structured_result"], json!({"label": "feature"}));
    assert_eq!(result["response_format"], "none");
    let bodies = request_bodies(&server).await;
    assert_eq!(
        bodies.len(),
        4,
        "json_schema, json_object, none, the repair"
    );
    assert_eq!(bodies[1]["response_format"], json!({"type": "json_object"}));
    for body in &bodies[2..] {
        assert!(body.get("response_format").is_none(), "{body}");
        let system = &messages(body)[0];
        assert_eq!(system["role"], "system");
        assert!(
            system["content"]
                .as_str()
                .unwrap()
                .contains(r#""enum":["bug","feature"]"#),
            "the schema is in the system message: {system}"
        );
    }
}

#[tokio::test]
async fn an_invalid_schema_exits_2_before_anything_is_sent() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    for schema in [
        r#"{"type":"invalid_type"}"#,
        "{not json",
        "@missing.json",
        r#"{"$schema":"http://json-schema.org/draft-04/schema#"}"#,
    ] {
        qwen(&env, &server, &["--json-schema", schema, "x"])
            .code(2)
            .stdout_empty()
            .stderr_has("error: --json-schema:");
    }
}

#[tokio::test]
async fn a_remote_ref_is_refused_and_never_fetched() {
    let env = TestEnv::new();
    // The server a hostile schema points at: it must see no request at all.
    let target = MockServer::start().await;
    let schema = json!({"$ref": format!("{}/schema.json", target.uri())}).to_string();
    let server = server_expecting(0).await;
    qwen(&env, &server, &["--json-schema", &schema, "x"])
        .code(2)
        .stderr_has("external references are not followed");
    assert!(target.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_validates_per_job_schemas_and_fails_only_the_job_that_never_matches() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    for (prompt, text) in [
        ("classify one", r#"{"label": "bug"}"#),
        ("count two", "```json\n[1, 2]\n```"),
        ("classify three", "it is a bug"),
    ] {
        chat()
            .and(body_string_contains(prompt))
            .respond_with(answer(text))
            .mount(&server)
            .await;
    }
    env.write_project(
        "jobs/schemas/list.json",
        r#"{"type":"array","items":{"type":"integer"}}"#,
    );
    env.write_project(
        "jobs/jobs.yaml",
        &format!(
            "defaults:\n  json_schema: {LABEL_SCHEMA}\njobs:\n  - {{id: one, prompt: classify one}}\n  - {{id: two, prompt: count two, json_schema: schemas/list.json}}\n  - {{id: three, prompt: classify three}}\n"
        ),
    );
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs/jobs.yaml",
        "--schema-retries",
        "1",
        "--retries",
        "0",
    ]));
    r.code(1);
    let lines = by_id(&r.json_lines());
    assert_eq!(lines["one"]["structured_result"], json!({"label": "bug"}));
    assert_eq!(lines["two"]["structured_result"], json!([1, 2]));
    assert_eq!(lines["two"]["result"], "[1,2]");
    assert_error_result(&lines["three"], "schema_validation");
    assert_eq!(lines["three"]["error"]["last_answer"], "it is a bug");
    // Job three: the first answer and one repair turn.
    let three = request_bodies(&server)
        .await
        .into_iter()
        .filter(|b| b.to_string().contains("classify three"))
        .count();
    assert_eq!(three, 2);
}

#[tokio::test]
async fn a_bad_job_schema_is_exit_42_naming_the_job_before_anything_is_sent() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    std::fs::write(env.root.join("secret.json"), r#"{"type":"string"}"#).unwrap();
    for (job, needle) in [
        (
            json!({"id": "bad", "prompt": "p", "json_schema": {"type": "nope"}}),
            "not a valid JSON Schema",
        ),
        (
            json!({"id": "out", "prompt": "p", "json_schema": "../secret.json"}),
            "inside the job file's directory",
        ),
        (
            json!({"id": "gone", "prompt": "p", "json_schema": "missing.json"}),
            "missing.json",
        ),
    ] {
        env.write_project(
            "jobs.jsonl",
            &jsonl(&[json!({"id": "fine", "prompt": "p"}), job]),
        );
        run(env.cmd_for(&server).args(["--jobs", "jobs.jsonl"]))
            .code(42)
            .stdout_empty()
            .stderr_has("line 2: `json_schema`")
            .stderr_has(needle);
    }
}

/// A server on which `primary` fails with `status` and `backup` answers.
async fn fallback_server(status: u16, backup_calls: u64) -> MockServer {
    let server = MockServer::start().await;
    let failure = if status == 529 {
        ResponseTemplate::new(529)
            .set_body_json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    } else {
        error_response(status, "no")
    };
    chat()
        .and(body_string_contains(r#""model":"primary""#))
        .respond_with(failure)
        .mount(&server)
        .await;
    chat()
        .and(body_string_contains(r#""model":"backup""#))
        .respond_with(answer("from backup"))
        .expect(backup_calls)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_503_or_529_falls_back_to_the_next_model_and_says_so() {
    for status in [503, 529] {
        let env = TestEnv::new();
        let server = fallback_server(status, 1).await;
        let r = qwen(
            &env,
            &server,
            &[
                "--json",
                "-m",
                "primary",
                "--fallback-model",
                "backup",
                "hi",
            ],
        );
        r.code(0).stderr_has("trying `backup`");
        let result = r.result();
        assert_eq!(result["result"], "from backup");
        assert_eq!(result["model"], "backup");
        assert_eq!(result["fallback_from"], json!(["primary"]));
    }
}

#[tokio::test]
async fn a_400_never_falls_back() {
    let env = TestEnv::new();
    let server = fallback_server(400, 0).await;
    let r = qwen(
        &env,
        &server,
        &[
            "--json",
            "-m",
            "primary",
            "--fallback-model",
            "backup",
            "hi",
        ],
    );
    r.code(1);
    assert_error_result(&r.result(), "api_error");
    qwen(
        &env,
        &server,
        &[
            "-m",
            "primary",
            "--fallback-model",
            "a",
            "--fallback-model",
            "b",
            "--fallback-model",
            "c",
            "--fallback-model",
            "d",
            "hi",
        ],
    )
    .code(2)
    .stderr_has("at most 3");
}

#[tokio::test]
async fn a_batch_falls_back_per_job_and_counts_answers_per_model() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(body_string_contains("busy job"))
        .and(body_string_contains(r#""model":"primary""#))
        .respond_with(error_response(503, "busy"))
        .mount(&server)
        .await;
    chat().respond_with(answer("ok")).mount(&server).await;
    env.write_project(
        "jobs.yaml",
        "defaults:\n  model: primary\n  fallback_models: [backup]\njobs:\n  - {id: a, prompt: calm job}\n  - {id: b, prompt: busy job}\n",
    );
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "jobs.yaml", "--retries", "0"]));
    r.code(0)
        .stderr_has("batch: answers per model: backup 1, primary 1");
    let lines = by_id(&r.json_lines());
    assert_eq!(lines["a"]["model"], "primary");
    assert!(lines["a"].get("fallback_from").is_none());
    assert_eq!(lines["b"]["model"], "backup");
    assert_eq!(lines["b"]["fallback_from"], json!(["primary"]));
}

#[tokio::test]
async fn the_result_file_is_written_atomically_and_left_alone_on_failure() {
    let env = TestEnv::new();
    let server = server_with(answer(r#"{"label":"bug"}"#), 1).await;
    let path = env.write_project("out/answer.json", "previous\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("out/answer.json", env.project_path("link.json")).unwrap();
    }
    let target = if cfg!(unix) {
        "link.json"
    } else {
        "out/answer.json"
    };
    let r = qwen(
        &env,
        &server,
        &[
            "--json",
            "--json-schema",
            LABEL_SCHEMA,
            "--result-file",
            target,
            "x",
        ],
    );
    r.code(0);
    assert_eq!(env.read_project("out/answer.json"), "{\"label\":\"bug\"}\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(
            std::fs::symlink_metadata(env.project_path("link.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    let names: Vec<_> = std::fs::read_dir(env.project_path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");

    // Plain text, whatever the stdout format.
    let server = server_with(answer("just text"), 1).await;
    qwen(
        &env,
        &server,
        &["-o", "stream-json", "--result-file", "plain.txt", "x"],
    )
    .code(0);
    assert_eq!(env.read_project("plain.txt"), "just text");

    // A failed run leaves the file as it was.
    let failing = server_with(error_response(400, "bad request"), 1).await;
    qwen(&env, &failing, &["--result-file", "out/answer.json", "x"]).code(1);
    assert_eq!(env.read_project("out/answer.json"), "{\"label\":\"bug\"}\n");
    let never = server_with(answer("nope"), 1).await;
    qwen(
        &env,
        &never,
        &[
            "--json-schema",
            LABEL_SCHEMA,
            "--schema-retries",
            "0",
            "--result-file",
            "out/answer.json",
            "x",
        ],
    )
    .code(65);
    assert_eq!(env.read_project("out/answer.json"), "{\"label\":\"bug\"}\n");
}

#[tokio::test]
async fn max_total_tokens_stops_dispatch_with_exit_55_and_resume_finishes() {
    let env = TestEnv::new();
    // Every answer reports 14 tokens.
    let server = server_mounting(chat().respond_with(answer("ok")), 4).await;
    let jobs: Vec<Value> = (0..4)
        .map(|i| json!({"id": format!("t{i}"), "prompt": format!("prompt {i}")}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "results.jsonl",
        "--concurrency",
        "1",
        "--max-total-tokens",
        "20",
    ]));
    r.code(55)
        .stderr_has("stopped at --max-total-tokens (28 tokens used of 20)")
        .stderr_has("2 not run");
    assert_eq!(file_lines(&env, "results.jsonl").len(), 2);

    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "results.jsonl",
        "--resume",
    ]));
    r.code(0).stderr_has("2 skipped (resume)");
    let lines = by_id(&file_lines(&env, "results.jsonl"));
    assert_eq!(lines.len(), 4);
    assert!(lines.values().all(|l| l["is_error"] == false));
}

#[tokio::test]
async fn a_rate_limit_429_falls_back_but_insufficient_quota_does_not() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(body_string_contains(r#""model":"primary""#))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}})))
        .mount(&server)
        .await;
    chat()
        .and(body_string_contains(r#""model":"backup""#))
        .respond_with(answer("from backup"))
        .expect(1)
        .mount(&server)
        .await;
    let r = qwen(
        &env,
        &server,
        &[
            "--json",
            "-m",
            "primary",
            "--fallback-model",
            "backup",
            "hi",
        ],
    );
    r.code(0);
    assert_eq!(r.result()["model"], "backup");

    // `OpenAI`'s quota error is a 429 too, but another model cannot fix the account.
    let server = MockServer::start().await;
    chat()
        .and(body_string_contains(r#""model":"primary""#))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}})))
        .expect(1)
        .mount(&server)
        .await;
    chat()
        .and(body_string_contains(r#""model":"backup""#))
        .respond_with(answer("from backup"))
        .expect(0)
        .mount(&server)
        .await;
    qwen(
        &env,
        &server,
        &["-m", "primary", "--fallback-model", "backup", "hi"],
    )
    // Quota is billing, not capacity (issue 10): exit 1 at once, and no fallback.
    .code(1)
    .stdout_empty()
    .stderr_has("insufficient quota")
    .stderr_lacks("trying `backup`");
}
