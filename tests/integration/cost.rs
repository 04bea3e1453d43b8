//! What a run cost (`total_cost_usd`, `cost_source`): the provider's own figure (`OpenRouter`'s
//! `usage.cost`, `LiteLLM`'s `x-litellm-response-cost`), else `--prices`, else `null`; and
//! `--max-budget-usd` for a single run and a batch, against wiremock servers.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::batch_support::{by_id, file_lines, jsonl};
use crate::common::{KEY, Sse, TestEnv, chat, run, server_mounting, server_with};

/// A stream whose usage object is `usage` as given (cost, cached and reasoning details).
fn answer_with_usage(usage: &Value) -> ResponseTemplate {
    let chunk = json!({
        "id": "chatcmpl-cost", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "server-model", "choices": [], "usage": usage,
    });
    Sse::new()
        .text("ok")
        .finish("stop")
        .raw(&format!("data: {chunk}\n\n"))
        .done()
        .respond()
}

const PRICES: &str = r#"{
    "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "max_tokens": "set to max_output_tokens if provider specifies it"},
    "priced-model": {"input_cost_per_token": 2e-06, "output_cost_per_token": 1e-05,
                     "cache_read_input_token_cost": 5e-07, "litellm_provider": "openai"}
}"#;

fn close(a: &Value, want: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - want).abs() < 1e-12)
}

#[tokio::test]
async fn openrouter_usage_cost_is_the_result_cost() {
    let env = TestEnv::new();
    // OpenRouter's usage accounting: `usage.cost` in the last chunk (credits of one dollar).
    let usage = json!({"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196,
        "cost": 0.95, "cost_details": {"upstream_inference_cost": 19},
        "prompt_tokens_details": {"cached_tokens": 0}});
    let server = server_with(answer_with_usage(&usage), 1).await;
    // A price table is not consulted when the provider says.
    env.write_project("prices.json", PRICES);
    let r = run(env.cmd_for(&server).args([
        "--json",
        "-m",
        "priced-model",
        "--prices",
        "prices.json",
        "hi",
    ]));
    r.code(0);
    let result = r.result();
    assert!(close(&result["total_cost_usd"], 0.95), "{result}");
    assert_eq!(result["cost_source"], "provider", "{result}");
}

#[tokio::test]
async fn litellm_response_cost_header_is_the_cost_of_a_json_answer() {
    let env = TestEnv::new();
    // A LiteLLM proxy prices the call in `x-litellm-response-cost` (here: a server that ignored
    // `stream: true` and answered with one JSON body).
    let body = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}});
    let response = ResponseTemplate::new(200)
        .insert_header("x-litellm-response-cost", "0.000415")
        .set_body_json(body);
    let server = server_with(response, 1).await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0);
    let result = r.result();
    assert!(close(&result["total_cost_usd"], 0.000_415), "{result}");
    assert_eq!(result["cost_source"], "provider");

    // On a stream the header is written before the answer: a zero there is "not computed yet".
    let response = Sse::answer(&["ok"])
        .respond()
        .insert_header("x-litellm-response-cost", "0.0");
    let server = server_with(response, 1).await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0);
    assert_eq!(r.result()["total_cost_usd"], Value::Null);
}

#[tokio::test]
async fn prices_price_cached_and_reasoning_tokens_and_unknown_is_null() {
    let env = TestEnv::new();
    env.write_project("prices.json", PRICES);
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 400},
        "completion_tokens_details": {"reasoning_tokens": 200}});
    let server = server_with(answer_with_usage(&usage), 2).await;
    let r = run(env.cmd_for(&server).args([
        "--json",
        "-m",
        "priced-model",
        "--prices",
        "prices.json",
        "hi",
    ]));
    r.code(0);
    let result = r.result();
    // 600 uncached at 2e-6, 400 cached at 5e-7, 300 output (200 of them reasoning) at 1e-5.
    let want = 600.0 * 2e-6 + 400.0 * 5e-7 + 300.0 * 1e-5;
    assert!(close(&result["total_cost_usd"], want), "{result}");
    assert_eq!(result["cost_source"], "price_table");
    assert_eq!(result["usage"]["cache_read_input_tokens"], 400);
    assert_eq!(result["usage"]["reasoning_tokens"], 200);

    // A model the table does not list: unknown, never 0.
    let r = run(env.cmd_for(&server).args([
        "--json",
        "-m",
        "unlisted",
        "--prices",
        "prices.json",
        "hi",
    ]));
    r.code(0);
    let result = r.result();
    assert_eq!(result["total_cost_usd"], Value::Null, "{result}");
    assert_eq!(result["cost_source"], Value::Null, "{result}");
}

#[test]
fn a_price_file_that_prices_nothing_is_an_input_error() {
    let env = TestEnv::new();
    env.write_project("prices.json", r#"{"sample_spec": {"max_tokens": 1}}"#);
    for file in ["prices.json", "missing.json"] {
        let r = run(env
            .cmd_with("http://127.0.0.1:9/v1", "sk-test")
            .args(["--prices", file, "hi"]));
        r.code(42).stderr_has("--prices");
    }
}

#[tokio::test]
async fn batch_lines_and_summary_carry_the_cost() {
    let env = TestEnv::new();
    let usage =
        json!({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.25});
    let server = server_with(answer_with_usage(&usage), 3).await;
    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("j{i}"), "prompt": "x"}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--summary",
        "summary.json",
    ]));
    r.code(0)
        .stderr_has("cost $0.750000 (reported by the provider)");
    for line in file_lines(&env, "out.jsonl") {
        assert!(close(&line["total_cost_usd"], 0.25), "{line}");
        assert_eq!(line["cost_source"], "provider");
    }
    let summary: Value = serde_json::from_str(&env.read_project("summary.json")).expect("json");
    assert!(close(&summary["total_cost_usd"], 0.75), "{summary}");
    assert_eq!(summary["cost_source"], "provider");
    assert_eq!(summary["jobs_without_cost"], 0);
}

#[tokio::test]
async fn batch_cost_is_null_when_no_job_cost_is_known() {
    let env = TestEnv::new();
    let server = server_with(Sse::answer(&["ok"]).respond(), 2).await;
    let jobs: Vec<Value> = (0..2)
        .map(|i| json!({"id": format!("j{i}"), "prompt": "x"}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--summary",
        "summary.json",
    ]));
    r.code(0).stderr_has("cost unknown");
    let summary: Value = serde_json::from_str(&env.read_project("summary.json")).expect("json");
    assert_eq!(summary["total_cost_usd"], Value::Null, "{summary}");
    assert_eq!(summary["jobs_without_cost"], 2);
}

/// The done-when test of issue 23: a 1,000-job batch stops within one request's cost of the
/// budget, exit 55, and `--resume` finishes it.
#[tokio::test]
async fn max_budget_usd_stops_a_large_batch_within_one_request_and_resume_finishes() {
    let env = TestEnv::new();
    let per_job = 0.001;
    let usage =
        json!({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": per_job});
    let server = MockServer::start().await;
    chat()
        .respond_with(answer_with_usage(&usage))
        .mount(&server)
        .await;
    let jobs: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("j{i}"), "prompt": format!("prompt {i}")}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let budget = 0.1;
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--summary",
        "summary.json",
        "--concurrency",
        "16",
        "--max-budget-usd",
        "0.1",
    ]));
    r.code(55)
        .stderr_has("stopped at --max-budget-usd")
        .stderr_has("--resume");
    let done = file_lines(&env, "out.jsonl").len();
    #[allow(clippy::cast_precision_loss)]
    let spent = done as f64 * per_job;
    assert!(
        spent <= budget + per_job + 1e-9 && spent > budget - 17.0 * per_job,
        "{done} jobs ran: ${spent} against a budget of ${budget}"
    );
    let summary: Value = serde_json::from_str(&env.read_project("summary.json")).expect("json");
    assert!(close(&summary["total_cost_usd"], spent), "{summary}");
    assert_eq!(summary["exit_code"], 55);

    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--resume",
        "--concurrency",
        "16",
    ]));
    r.code(0);
    let lines = by_id(&file_lines(&env, "out.jsonl"));
    assert_eq!(lines.len(), 1000);
    assert!(lines.values().all(|l| l["is_error"] == false));
}

#[tokio::test]
async fn max_budget_usd_without_a_cost_is_a_usage_error() {
    let env = TestEnv::new();
    // The server reports tokens but no cost, and there is no price table.
    let server = server_mounting(chat().respond_with(Sse::answer(&["ok"]).respond()), 1).await;
    let jobs: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("j{i}"), "prompt": "x"}))
        .collect();
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--concurrency",
        "4",
        "--max-budget-usd",
        "1",
    ]));
    r.code(2)
        .stderr_has("--max-budget-usd: the cost of an answer of `gpt-4o` is unknown")
        .stderr_has("hint: give --prices FILE");
    assert_eq!(file_lines(&env, "out.jsonl").len(), 1, "only the probe ran");

    // A single run: the answer is written, and the run says the budget could not be kept.
    let server = server_with(Sse::answer(&["ok"]).respond(), 1).await;
    let r = run(env.cmd_for(&server).args(["--max-budget-usd", "1", "hi"]));
    r.code(2).stdout_is("ok\n").stderr_has("is unknown");
}

#[tokio::test]
async fn a_single_run_that_could_exceed_the_budget_is_not_sent() {
    let env = TestEnv::new();
    env.write_project("prices.json", PRICES);
    let server = server_with(Sse::answer(&["ok"]).respond(), 0).await;
    // 1000 output tokens at 1e-5 = $0.01, over a budget of $0.005.
    let r = run(env.cmd_for(&server).args([
        "-m",
        "priced-model",
        "--prices",
        "prices.json",
        "--max-tokens",
        "1000",
        "--max-budget-usd",
        "0.005",
        "hi",
    ]));
    r.code(55).stdout_empty().stderr_has("nothing was sent");

    // Within the budget, the answer's cost is counted after it came.
    let usage =
        json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30, "cost": 0.5});
    let server = server_with(answer_with_usage(&usage), 1).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json", "--max-budget-usd", "0.25", "hi"]));
    r.code(55).stderr_has("more than --max-budget-usd");
    assert!(close(&r.result()["total_cost_usd"], 0.5));
}

/// A `LiteLLM` proxy (1.108.7, `litellm_settings: include_cost_in_streaming_usage: true`) in front of
/// an `openai/` deployment priced at 2e-6 / 1e-5 per token: these are its exact bytes (the
/// Responses id shortened), captured with scripts/litellm-test.sh's configuration. It adds `cost`
/// to the usage of `response.completed` and of Messages' `message_delta`, and sends no
/// `x-litellm-response-cost` header on a stream: the usage is the only place the price is.
const LITELLM_RESPONSES_STREAM: &str = r#"data: {"type":"response.created","response":{"id":"resp_litellm","created_at":1796546809,"metadata":{},"model":"upstream","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"auto","tools":[],"top_p":1.0,"reasoning":{"effort":null,"summary":null},"status":"in_progress","text":{"format":{"type":"text"}},"truncation":"disabled","store":false},"sequence_number":0,"model":"upstream"}

data: {"type":"response.in_progress","response":{"id":"resp_litellm","created_at":1796546809,"metadata":{},"model":"upstream","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"auto","tools":[],"top_p":1.0,"reasoning":{"effort":null,"summary":null},"status":"in_progress","text":{"format":{"type":"text"}},"truncation":"disabled","store":false},"sequence_number":1,"model":"upstream"}

data: {"type":"response.output_item.added","output_index":0,"item":{"id":"msg_ad2200b7fab240ea9b7e0ee9","type":"message","status":"in_progress","role":"assistant","content":[]},"sequence_number":2,"model":"upstream"}

data: {"type":"response.content_part.added","item_id":"msg_ad2200b7fab240ea9b7e0ee9","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]},"sequence_number":3,"model":"upstream"}

data: {"type":"response.output_text.delta","item_id":"msg_ad2200b7fab240ea9b7e0ee9","output_index":0,"content_index":0,"delta":"upstream: hi","sequence_number":4,"logprobs":[],"model":"upstream"}

data: {"type":"response.output_text.done","item_id":"msg_ad2200b7fab240ea9b7e0ee9","output_index":0,"content_index":0,"text":"upstream: hi","sequence_number":5,"logprobs":[],"model":"upstream"}

data: {"type":"response.content_part.done","item_id":"msg_ad2200b7fab240ea9b7e0ee9","output_index":0,"content_index":0,"part":{"type":"output_text","text":"upstream: hi","annotations":[]},"sequence_number":6,"model":"upstream"}

data: {"type":"response.output_item.done","output_index":0,"sequence_number":7,"item":{"id":"msg_ad2200b7fab240ea9b7e0ee9","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"upstream: hi","annotations":[]}]},"model":"upstream"}

data: {"type":"response.completed","response":{"id":"resp_litellm","created_at":1796546809,"metadata":{},"model":"upstream","object":"response","output":[{"id":"msg_ad2200b7fab240ea9b7e0ee9","content":[{"annotations":[],"text":"upstream: hi","type":"output_text"}],"role":"assistant","status":"completed","type":"message"}],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"auto","tools":[],"top_p":1.0,"reasoning":{"effort":null,"summary":null},"status":"completed","text":{"format":{"type":"text"}},"truncation":"disabled","usage":{"input_tokens":1,"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":3,"cost":0.000022000000000000003},"store":false,"completed_at":1796546809},"sequence_number":8,"model":"upstream"}

data: [DONE]

"#;

const LITELLM_MESSAGES_STREAM: &str = r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_8d2ecd9c-3958-421b-8284-f0cbbfc42dd3", "type": "message", "role": "assistant", "content": [], "model": "upstream", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "upstream: hi"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"input_tokens": 1, "output_tokens": 2, "cost": 2.2000000000000003e-05}}

event: message_stop
data: {"type": "message_stop"}

"#;

#[tokio::test]
async fn litellm_usage_cost_in_a_responses_or_messages_stream_is_the_cost() {
    let env = TestEnv::new();
    let cases = [
        (
            "openai-responses",
            "/v1/responses",
            LITELLM_RESPONSES_STREAM,
        ),
        ("anthropic", "/v1/messages", LITELLM_MESSAGES_STREAM),
    ];
    for (auth_type, at, stream) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_raw(stream, "text/event-stream"))
            .expect(1)
            .mount(&server)
            .await;
        let r = run(env
            .cmd()
            .env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", server.uri())
            .args(["--auth-type", auth_type, "-m", "upstream", "--json", "hi"]));
        r.code(0);
        let result = r.result();
        assert_eq!(result["result"], "upstream: hi", "{auth_type}: {result}");
        // 1 input token at 2e-6 and 2 output tokens at 1e-5.
        assert!(
            close(&result["total_cost_usd"], 2.2e-5),
            "{auth_type}: {result}"
        );
        assert_eq!(result["cost_source"], "provider", "{auth_type}: {result}");
    }
}
