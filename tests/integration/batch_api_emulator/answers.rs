//! What the emulated provider answers to each request of a batch, and the output and error files
//! (or Anthropic's results) it writes when a batch ends.

use serde_json::{Value, json};

use super::{Ending, FileRec, Flavor, State};

/// The usage every answer reports: 10 tokens in (4 of them cached), 2 out (1 of them reasoning).
pub(super) const INPUT_TOKENS: u64 = 10;
pub(super) const CACHED_TOKENS: u64 = 4;
pub(super) const OUTPUT_TOKENS: u64 = 2;
pub(super) const REASONING_TOKENS: u64 = 1;
/// The provider's own figure for an answer whose prompt holds `COST` (`usage.cost`, as
/// `OpenRouter` and `LiteLLM` report it).
pub(super) const PROVIDER_COST: f64 = 0.0042;

/// The last turn's text of a request body: Chat Completions `messages`, Responses `input`.
pub(super) fn prompt_of(body: &Value) -> String {
    ["messages", "input"]
        .iter()
        .find_map(|k| body[*k].as_array())
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The answer text for a prompt: `JSON:` answers the rest as it is (for schema tests); else an
/// echo.
pub(super) fn answer_text(prompt: &str) -> String {
    prompt
        .strip_prefix("JSON:")
        .map_or_else(|| format!("echo: {prompt}"), str::to_owned)
}

/// A Responses object (openai-openapi's `Response`: `output` items of type `message` with
/// `output_text` parts, `usage` with `input_tokens_details.cached_tokens` and
/// `output_tokens_details.reasoning_tokens`).
fn response_object(s: &State, prompt: &str, model: &Value, n: usize) -> Value {
    json!({"id": format!("resp_{n}"), "object": "response", "created_at": s.clock, "status": "completed",
        "model": model, "error": null, "incomplete_details": null,
        "output": [{"type": "message", "id": format!("msg_{n}"), "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": answer_text(prompt), "annotations": []}]}],
        "usage": {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
            "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}})
}

/// The provider's line for one request: (whether it goes to the error file, the line). Markers
/// in the prompt choose a failure: `FAIL400`, `LEAKKEY`, `REFUSE`, `NORESPONSE`; `COST` adds
/// the provider's own cost.
fn answer(
    s: &State,
    (id, endpoint): (&str, &str),
    custom_id: &Value,
    prompt: &str,
    model: &Value,
    n: usize,
) -> (bool, Value) {
    if prompt.contains("FAIL400") {
        (
            true,
            json!({"id": id, "custom_id": custom_id, "response": {"status_code": 400, "request_id": format!("req_{n}"),
            "body": {"error": {"message": "the prompt was refused", "type": "invalid_request_error", "param": null, "code": null}}}, "error": null}),
        )
    } else if prompt.contains("LEAKKEY") {
        (
            true,
            json!({"id": id, "custom_id": custom_id, "response": {"status_code": 401, "request_id": format!("req_{n}"),
            "body": {"error": {"message": format!("Incorrect API key provided: {}", s.key), "type": "invalid_request_error"}}}, "error": null}),
        )
    } else if prompt.contains("REFUSE") {
        // OpenAI's shape for a model that declines: `content: null` and `refusal`
        // (openai-openapi, ChatCompletionResponseMessage).
        (
            false,
            json!({"id": id, "custom_id": custom_id, "response": {"status_code": 200, "request_id": format!("req_{n}"),
            "body": {"id": format!("chatcmpl-{n}"), "object": "chat.completion", "created": s.clock, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}}, "error": null}),
        )
    } else if prompt.contains("NORESPONSE") {
        (
            true,
            json!({"id": id, "custom_id": custom_id, "response": null,
            "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}),
        )
    } else if endpoint == "/v1/responses" {
        let body = response_object(s, prompt, model, n);
        (
            false,
            json!({"id": id, "custom_id": custom_id, "response": {"status_code": 200, "request_id": format!("req_{n}"),
            "body": body}, "error": null}),
        )
    } else {
        let text = answer_text(prompt);
        let mut body = json!({"id": format!("chatcmpl-{n}"), "object": "chat.completion", "created": s.clock, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}, "system_fingerprint": null});
        if prompt.contains("COST") {
            body["usage"]["cost"] = json!(PROVIDER_COST);
        }
        (
            false,
            json!({"id": id, "custom_id": custom_id, "response": {"status_code": 200, "request_id": format!("req_{n}"),
            "body": body}, "error": null}),
        )
    }
}

/// The output and error files of the requests that ran (the first `ran` lines).
pub(super) fn write_results(s: &mut State, i: usize) {
    if s.flavor == Flavor::Anthropic {
        return super::messages::write_results(s, i);
    }
    let lines = input_lines(s, i);
    let ran = s.batches[i].ran.min(lines.len());
    let endpoint = s.batches[i].endpoint.clone();
    let mut output = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in lines.iter().take(ran).enumerate() {
        let custom_id = line["custom_id"].clone();
        let prompt = prompt_of(&line["body"]);
        let model = line["body"]["model"].clone();
        let id = format!("batch_req_{i}_{n}");
        let (is_error, value) = answer(s, (&id, &endpoint), &custom_id, &prompt, &model, n);
        let target = if is_error { &mut errors } else { &mut output };
        let mut bytes = value.to_string().into_bytes();
        bytes.push(b'\n');
        target.extend_from_slice(&bytes);
    }
    // An expired batch lists the requests it never ran in the error file (`batch_expired`).
    if s.batches[i].status == "in_progress" && matches!(s.ending, Ending::Expire { .. }) {
        for line in lines.iter().skip(ran) {
            let mut bytes = json!({"id": format!("batch_req_{i}_x"), "custom_id": line["custom_id"], "response": null,
                "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
            .to_string()
            .into_bytes();
            bytes.push(b'\n');
            errors.extend_from_slice(&bytes);
        }
    }
    let output = s.output_override.clone().unwrap_or(output);
    // The provider writes lines in any order: reverse them to prove nobody relies on order.
    let reorder = |bytes: Vec<u8>| -> Vec<u8> {
        let mut lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        lines.reverse();
        let mut out = Vec::with_capacity(bytes.len());
        for l in lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        out
    };
    let mut store = |bytes: Vec<u8>, purpose: &str| -> Option<String> {
        if bytes.is_empty() {
            return None;
        }
        s.next += 1;
        let id = format!("file-{:06}", s.next);
        s.files.insert(
            id.clone(),
            FileRec {
                filename: format!("{purpose}.jsonl"),
                purpose: purpose.to_owned(),
                bytes: reorder(bytes),
                created_at: s.clock,
            },
        );
        Some(id)
    };
    let failed = errors
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let output_id = store(output, "batch_output");
    let error_id = store(errors, "batch_output");
    let b = &mut s.batches[i];
    b.output_file_id = output_id;
    b.error_file_id = error_id;
    b.failed = failed;
}

/// The input lines of batch `i` (JSON; a line that is not is `null`).
pub(super) fn input_lines(s: &State, i: usize) -> Vec<Value> {
    let file = &s.files[&s.batches[i].input_file_id];
    file.bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
        .collect()
}
