//! Real providers' wire behaviour, reproduced: `OpenAI`'s 400s for `max_tokens` and `temperature` on
//! reasoning models and the one adjusted retry; reasoning streamed as `delta.reasoning_content`
//! (`DashScope`, `DeepSeek`, vLLM) and `delta.reasoning` (`OpenRouter`), with `OpenRouter`'s
//! `: OPENROUTER PROCESSING` comments; an error object arriving mid-stream with status 200;
//! provider parameters, headers, and `.prompt.yml` prompt files.

use serde_json::{Value, json};
use wiremock::{Match, MockServer, Request, ResponseTemplate};

use crate::common::{
    Sse, TestEnv, chat, only_body, request_bodies, run, server_answering, server_mounting,
};

/// `OpenAI`'s answer to `max_tokens` on a reasoning model (gpt-5, o-series), byte for byte as
/// quoted in `griptape-ai/ComfyUI-Griptape#312` and `ITSpecialist111/ai_automation_suggester#38`.
fn openai_max_tokens_refusal() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error",
        "param": "max_tokens",
        "code": "unsupported_parameter"
    }}))
}

/// `OpenAI`'s answer to a non-default `temperature` on a reasoning model (holoviz/lumen#1087,
/// BeehiveInnovations/pal-mcp-server#78).
fn openai_temperature_refusal() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "unsupported_value"
    }}))
}

/// Matches a request whose JSON body has the top-level key.
struct BodyHas(&'static str);

impl Match for BodyHas {
    fn matches(&self, request: &Request) -> bool {
        request
            .body_json::<Value>()
            .is_ok_and(|b| b.get(self.0).is_some())
    }
}

/// A server that refuses any body holding `param` with `refusal`, and answers "ok" otherwise.
async fn refusing(param: &'static str, refusal: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    chat()
        .and(BodyHas(param))
        .respond_with(refusal)
        .with_priority(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(Sse::answer(&["ok"]).respond())
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_refused_max_tokens_is_retried_once_as_max_completion_tokens_and_reported() {
    let env = TestEnv::new();
    let server = refusing("max_tokens", openai_max_tokens_refusal()).await;
    let out =
        run(env
            .cmd_for(&server)
            .args(["-m", "gpt-5", "--max-tokens", "50", "-o", "json", "hi"]));
    out.code(0)
        .stderr_has("refused `max_tokens`")
        .stderr_has("max_completion_tokens instead of max_tokens");
    let result = out.result();
    assert_eq!(
        result["adjusted"],
        json!(["max_completion_tokens instead of max_tokens"])
    );
    assert_eq!(result["result"], "ok");
    let bodies = request_bodies(&server).await;
    assert_eq!(bodies.len(), 2, "one refusal, one adjusted retry");
    assert_eq!(
        bodies[0]["max_tokens"], 50,
        "a local server gets max_tokens"
    );
    assert_eq!(bodies[1]["max_completion_tokens"], 50);
    assert!(bodies[1].get("max_tokens").is_none(), "{}", bodies[1]);
}

#[tokio::test]
async fn a_refused_temperature_is_dropped_and_a_batch_adjusts_once_not_per_job() {
    let env = TestEnv::new();
    let server = refusing("temperature", openai_temperature_refusal()).await;
    env.write_project(
        "jobs.jsonl",
        "{\"id\":\"a\",\"prompt\":\"1\"}\n{\"id\":\"b\",\"prompt\":\"2\"}\n{\"id\":\"c\",\"prompt\":\"3\"}\n",
    );
    let out = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--concurrency",
        "1",
        "--temperature",
        "0.2",
        "-q",
    ]));
    out.code(0);
    assert_eq!(
        out.stderr.matches("refused `temperature`").count(),
        1,
        "one warning for the run: {}",
        out.stderr
    );
    let lines = out.json_lines();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["adjusted"], json!(["temperature removed"]), "{line}");
        assert_eq!(line["is_error"], false);
    }
    let bodies = request_bodies(&server).await;
    assert_eq!(
        bodies.len(),
        4,
        "one refusal, then three requests sent adjusted"
    );
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.get("temperature").is_some())
            .count(),
        1
    );
}

#[tokio::test]
async fn an_openai_batch_body_is_sent_as_written_then_gets_the_same_adjusted_retry() {
    let env = TestEnv::new();
    let server = refusing("max_tokens", openai_max_tokens_refusal()).await;
    env.write_project(
        "batch.jsonl",
        "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-5\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":7}}\n",
    );
    let out = run(env
        .cmd_for(&server)
        .args(["--jobs", "batch.jsonl", "-o", "openai-batch", "-q"]));
    out.code(0);
    let bodies = request_bodies(&server).await;
    assert_eq!(bodies[0]["max_tokens"], 7, "sent as written first");
    assert_eq!(bodies[1]["max_completion_tokens"], 7);
    assert_eq!(out.json_lines()[0]["response"]["status_code"], 200);
}

/// `DashScope`'s Qwen3 with `enable_thinking` (and `DeepSeek`-R1, vLLM's reasoning parsers): the
/// reasoning streams as `delta.reasoning_content` with `content` null, then the answer as
/// `content` ("Deep thinking", <https://help.aliyun.com/en/model-studio/deep-thinking>); usage
/// reports `completion_tokens_details.reasoning_tokens`.
fn dashscope_thinking_stream() -> Sse {
    Sse::from_server("chatcmpl-ds", "qwen-plus")
        .chunk(&json!({"role": "assistant", "content": null, "reasoning_content": ""}), None)
        .chunk(&json!({"content": null, "reasoning_content": "The user greets. "}), None)
        .chunk(&json!({"content": null, "reasoning_content": "Answer briefly."}), None)
        .chunk(&json!({"content": "Hello", "reasoning_content": null}), None)
        .chunk(&json!({"content": " there"}), None)
        .finish("stop")
        .raw(&format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-ds", "object": "chat.completion.chunk", "created": 1, "model": "qwen-plus", "choices": [],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40,
                             "completion_tokens_details": {"reasoning_tokens": 22}}})
        ))
        .done()
}

#[tokio::test]
async fn dashscope_reasoning_content_is_a_thinking_message_before_the_text_with_reasoning_tokens() {
    let env = TestEnv::new();
    let server = server_mounting(
        chat().respond_with(dashscope_thinking_stream().respond()),
        1,
    )
    .await;
    let out = run(env.cmd_for(&server).args([
        "-m",
        "qwen-plus",
        "--extra-body",
        r#"{"enable_thinking": true}"#,
        "-o",
        "json",
        "hi",
    ]));
    out.code(0);
    let doc = out.json();
    let assistants: Vec<&Value> = doc.iter().filter(|m| m["type"] == "assistant").collect();
    assert_eq!(assistants.len(), 2, "{doc:?}");
    assert_eq!(
        assistants[0]["message"]["content"],
        json!([{"type": "thinking", "thinking": "The user greets. Answer briefly.", "signature": ""}])
    );
    assert_eq!(
        assistants[1]["message"]["content"],
        json!([{"type": "text", "text": "Hello there"}])
    );
    let result = out.result();
    assert_eq!(result["result"], "Hello there");
    assert_eq!(result["usage"]["reasoning_tokens"], 22);
    assert_eq!(only_body(&server).await["enable_thinking"], true);
}

#[tokio::test]
async fn text_mode_keeps_reasoning_off_stdout_and_show_reasoning_writes_it_to_stderr() {
    let env = TestEnv::new();
    let server = server_mounting(
        chat().respond_with(dashscope_thinking_stream().respond()),
        2,
    )
    .await;
    run(env.cmd_for(&server).arg("hi"))
        .code(0)
        .stdout_is("Hello there\n")
        .stderr_lacks("Answer briefly");
    run(env.cmd_for(&server).args(["--show-reasoning", "hi"]))
        .code(0)
        .stdout_is("Hello there\n")
        .stderr_has("The user greets. Answer briefly.\n");
}

/// `OpenRouter`: keep-alive comments `: OPENROUTER PROCESSING` between events ("Streaming",
/// <https://openrouter.ai/docs/api-reference/streaming>), and the reasoning as `delta.reasoning`
/// ("Reasoning Tokens", <https://openrouter.ai/docs/use-cases/reasoning-tokens>).
#[tokio::test]
async fn openrouter_reasoning_and_processing_comments_stream_as_thinking_then_text_deltas() {
    let env = TestEnv::new();
    let sse = Sse::from_server("gen-1", "deepseek/deepseek-r1")
        .raw(": OPENROUTER PROCESSING\n\n")
        .chunk(
            &json!({"role": "assistant", "content": "", "reasoning": "Think"}),
            None,
        )
        .raw(": OPENROUTER PROCESSING\n\n")
        .chunk(&json!({"content": "", "reasoning": "ing."}), None)
        .chunk(&json!({"content": "Done", "reasoning": null}), None)
        .finish("stop")
        .usage(5, 9)
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 1).await;
    let out = run(env.cmd_for(&server).args([
        "-H",
        "HTTP-Referer: https://example.org",
        "-H",
        "X-Title: CI",
        "--reasoning-effort",
        "high",
        "-o",
        "stream-json",
        "--include-partial-messages",
        "hi",
    ]));
    out.code(0);
    let lines = out.json_lines();
    let events: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "stream_event")
        .map(|l| {
            let e = &l["event"];
            match e["type"].as_str().unwrap_or_default() {
                "content_block_start" => format!(
                    "start:{}",
                    e["content_block"]["type"].as_str().unwrap_or_default()
                ),
                "content_block_delta" => format!(
                    "{}:{}",
                    e["delta"]["type"].as_str().unwrap_or_default(),
                    e["delta"]["thinking"]
                        .as_str()
                        .or(e["delta"]["text"].as_str())
                        .unwrap_or_default()
                ),
                other => other.to_owned(),
            }
        })
        .collect();
    // One streamed message for the turn, both blocks at index 0, as Qwen Code 0.24.4 writes it.
    assert_eq!(
        events,
        [
            "message_start",
            "start:thinking",
            "thinking_delta:Think",
            "thinking_delta:ing.",
            "content_block_stop",
            "start:text",
            "text_delta:Done",
            "content_block_stop",
            "message_stop",
        ]
    );
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "assistant")
        .map(|l| {
            l["message"]["content"][0]["type"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(kinds, ["thinking", "text"]);
    let requests = server.received_requests().await.expect("recorded");
    let headers = &requests[0].headers;
    assert_eq!(
        headers
            .get("x-title")
            .map(wiremock::http::HeaderValue::as_bytes),
        Some(&b"CI"[..])
    );
    assert_eq!(
        headers
            .get("http-referer")
            .map(wiremock::http::HeaderValue::as_bytes),
        Some(&b"https://example.org"[..])
    );
    assert_eq!(
        requests[0].body_json::<Value>().expect("json")["reasoning_effort"],
        "high"
    );
}

#[tokio::test]
async fn reasoning_with_no_text_is_exit_1_and_says_the_token_limit_was_reached() {
    let env = TestEnv::new();
    let sse = Sse::new()
        .chunk(
            &json!({"reasoning_content": "Let me think about this at length"}),
            None,
        )
        .finish("length")
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 1).await;
    let out = run(env
        .cmd_for(&server)
        .args(["--max-tokens", "16", "-o", "json", "hi"]));
    out.code(1)
        .stderr_has("empty after reasoning")
        .stderr_has("raise --max-tokens");
    let result = out.result();
    assert_eq!(result["error"]["type"], "empty_answer");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("finish_reason: length")),
        "{result}"
    );
}

/// `OpenRouter`: "any error occurred while the LLM is producing the output will be emitted ... as
/// an SSE data event" with HTTP 200 already sent ("Errors", <https://openrouter.ai/docs/api-reference/errors>):
/// a chunk with an `error` object and `finish_reason: error`.
#[tokio::test]
async fn an_error_object_mid_stream_with_status_200_fails_the_run() {
    let env = TestEnv::new();
    let sse = Sse::from_server("gen-2", "openai/gpt-4o")
        .text("Partial ")
        .raw(&format!(
            "data: {}\n\n",
            json!({"id": "gen-2", "object": "chat.completion.chunk", "created": 1, "model": "openai/gpt-4o",
                   "provider": "OpenAI",
                   "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                   "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
        ))
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 1).await;
    let out = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    out.code(1).stderr_has("Provider disconnected unexpectedly");
    assert_eq!(out.result()["error"]["type"], "stream_error");
}

#[tokio::test]
async fn provider_parameters_reach_the_body_and_the_extra_body_cannot_replace_the_request() {
    let env = TestEnv::new();
    env.write_project(
        "extra.json",
        r#"{"top_k": 20, "provider": {"order": ["a"]}, "seed": 1}"#,
    );
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args([
        "--top-p",
        "0.9",
        "--seed",
        "42",
        "--stop",
        "END",
        "--stop",
        "STOP",
        "--extra-body",
        "@extra.json",
        "hi",
    ]))
    .code(0);
    let body = only_body(&server).await;
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(
        body["seed"], 42,
        "a flag wins over the same key in the extra body"
    );
    assert_eq!(body["stop"], json!(["END", "STOP"]));
    assert_eq!(body["top_k"], 20);
    assert_eq!(body["provider"], json!({"order": ["a"]}));
    assert_eq!(body["stream"], true);
    for bad in [r#"{"model": "x"}"#, r#"{"stream": false}"#, "[1]", "{oops"] {
        run(env.cmd_for(&server).args(["--extra-body", bad, "hi"]))
            .code(2)
            .stderr_has("--extra-body");
    }
}

#[tokio::test]
async fn a_batch_masks_a_credential_header_flag_once() {
    let env = TestEnv::new();
    let secret = "hdr-secret-1234567890";
    let server = server_answering(&["ok"]).await;
    env.write_project(
        "jobs.jsonl",
        "{\"id\": \"a\", \"prompt\": \"one\"}\n{\"id\": \"b\", \"prompt\": \"two\"}\n",
    );
    let out = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "-H",
        &format!("X-Api-Key: {secret}"),
        "--jobs",
        "jobs.jsonl",
        "-q",
    ]));
    out.code(0);
    assert_eq!(
        out.stderr.matches(&format!("::add-mask::{secret}")).count(),
        1,
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn headers_are_checked_and_credential_headers_are_masked_and_scrubbed_but_others_not() {
    let env = TestEnv::new();
    let secret = "hdr-secret-9876543210";
    let server = server_mounting(
        chat().respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": format!("bad tenant key {secret} for CI")}}),
        )),
        2,
    )
    .await;
    let out = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "-H",
        &format!("X-Api-Key: {secret}"),
        "-H",
        "X-Title: CI",
        "hi",
    ]));
    out.code(1)
        .stderr_has(&format!("::add-mask::{secret}"))
        .stderr_lacks("::add-mask::CI")
        .stderr_has("for CI");
    assert_eq!(
        out.stderr.matches(secret).count(),
        1,
        "only the mask command: {}",
        out.stderr
    );
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(
        requests[0]
            .headers
            .get("x-api-key")
            .map(wiremock::http::HeaderValue::as_bytes),
        Some(secret.as_bytes())
    );
    for bad in [
        "Authorization: Bearer x",
        "Bad Name: x",
        "X-A: a\rb",
        "no-colon",
    ] {
        let out = run(env.cmd_for(&server).args(["-H", bad, "hi"]));
        out.code(2).stderr_lacks("Bearer x");
    }
    let debug = run(env.cmd_for(&server).args([
        "--debug",
        "-H",
        &format!("X-Api-Key: {secret}"),
        "-H",
        "X-Title: CI",
        "hi",
    ]));
    debug
        .code(1)
        .stderr_has("DEBUG header X-Api-Key: hdr…10 (--header)")
        .stderr_has("DEBUG header X-Title: **** (--header)");
    assert!(!debug.stderr.contains(secret), "{}", debug.stderr);
    let status = run(env.cmd_for(&server).args([
        "auth",
        "status",
        "-H",
        &format!("X-Api-Key: {secret}"),
        "-H",
        "X-Title: CI",
    ]));
    status
        .code(0)
        .stdout_has("header:      X-Api-Key: hdr…10 (--header)")
        .stdout_has("header:      X-Title: **** (--header)");
    assert!(!status.stdout.contains(secret), "{}", status.stdout);
}

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

#[tokio::test]
async fn batch_lines_carry_reasoning_and_a_jobs_credential_header_is_masked_and_scrubbed() {
    let env = TestEnv::new();
    let secret = "tenant-secret-123456789";
    let server = MockServer::start().await;
    chat()
        .and(wiremock::matchers::header("x-tenant-token", secret))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": format!("tenant {secret} is unknown")}}),
            ),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(dashscope_thinking_stream().respond())
        .with_priority(2)
        .mount(&server)
        .await;
    env.write_project(
        "jobs.yaml",
        &format!(
            "jobs:\n  - id: think\n    prompt: hi\n  - id: tenant\n    prompt: hi\n    headers: {{X-Tenant-Token: {secret}}}\n"
        ),
    );
    let out = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "--jobs",
        "jobs.yaml",
        "--concurrency",
        "1",
        "-q",
    ]));
    out.code(1).stderr_has(&format!("::add-mask::{secret}"));
    let lines = out.json_lines();
    let think = lines.iter().find(|l| l["id"] == "think").expect("a line");
    assert_eq!(think["reasoning"], "The user greets. Answer briefly.");
    assert_eq!(think["result"], "Hello there");
    let tenant = lines.iter().find(|l| l["id"] == "tenant").expect("a line");
    assert!(tenant.get("reasoning").is_none());
    let message = tenant["error"]["message"].as_str().expect("a message");
    assert!(
        !message.contains(secret) && message.contains("[REDACTED]"),
        "{message}"
    );
    assert_eq!(out.stderr.matches(secret).count(), 1, "{}", out.stderr);
}

#[tokio::test]
async fn an_adjusted_request_that_still_fails_says_what_was_adjusted() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    chat()
        .and(BodyHas("max_tokens"))
        .respond_with(openai_max_tokens_refusal())
        .with_priority(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "This model's maximum context length is 8 tokens.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})))
        .with_priority(2)
        .mount(&server)
        .await;
    let out = run(env
        .cmd_for(&server)
        .args(["--max-tokens", "5", "-o", "json", "hi"]));
    out.code(1).stderr_has("maximum context length");
    let result = out.result();
    assert_eq!(result["is_error"], true);
    assert_eq!(
        result["adjusted"],
        json!(["max_completion_tokens instead of max_tokens"])
    );
    assert_eq!(result["attempts"], 2);
}

/// A server that ignores `stream: true` and answers with one body (llama-cpp-python and vLLM do so
/// for some requests) still has its `message.reasoning_content` read.
#[tokio::test]
async fn a_whole_json_answer_with_reasoning_content_gets_its_thinking_message_too() {
    let env = TestEnv::new();
    let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "deepseek-r1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "42", "reasoning_content": "6 times 7."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12,
                  "completion_tokens_details": {"reasoning_tokens": 5}}});
    let server = server_mounting(
        chat().respond_with(ResponseTemplate::new(200).set_body_json(body)),
        1,
    )
    .await;
    let out = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    out.code(0);
    let doc = out.json();
    assert_eq!(
        doc[1]["message"]["content"][0],
        json!({"type": "thinking", "thinking": "6 times 7.", "signature": ""})
    );
    assert_eq!(
        doc[2]["message"]["content"][0],
        json!({"type": "text", "text": "42"})
    );
    assert_eq!(out.result()["usage"]["reasoning_tokens"], 5);
}

/// An answer that is only reasoning fails, but its tokens were spent: they count in the result's
/// usage and against `--max-total-tokens` (a batch stops instead of spending on).
#[tokio::test]
async fn an_empty_answers_tokens_count_against_the_budget() {
    let env = TestEnv::new();
    let sse = Sse::from_server("r", "deepseek-reasoner")
        .chunk(
            &json!({"role": "assistant", "content": "", "reasoning_content": "thinking..."}),
            None,
        )
        .finish("length")
        .usage(10, 1000)
        .done();
    let server = server_mounting(chat().respond_with(sse.respond()), 2).await;
    let jobs = "{\"prompt\":\"p\"}\n".repeat(6);
    env.write_project("jobs.jsonl", &jobs);
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--concurrency",
        "1",
        "--max-total-tokens",
        "1500",
        "--output",
        "out.jsonl",
    ]));
    r.code(55).stderr_has("--max-total-tokens");
    let lines: Vec<serde_json::Value> = env
        .read_project("out.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["usage"]["total_tokens"], 1010);
    assert_eq!(lines[0]["error"]["type"], "empty_answer");
}
