//! `OpenAI`'s 400s for `max_tokens` and `temperature` on reasoning models, and the one adjusted
//! retry (once per batch, not per job; said when it still fails).

use serde_json::{Value, json};
use wiremock::{Match, MockServer, Request, ResponseTemplate};

use crate::common::{Sse, TestEnv, chat, request_bodies, run};

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
