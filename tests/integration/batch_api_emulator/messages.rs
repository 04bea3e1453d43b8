//! The emulator's batches spoken as Anthropic's Message Batches, from Anthropic's API reference:
//! "Create a Message Batch" (`POST /v1/messages/batches`, `requests` of 1 to 100,000
//! `{custom_id, params}`, `custom_id` matching `^[a-zA-Z0-9_-]{1,64}$` and unique, `params` a
//! Messages request without streaming; a batch starts `in_progress` at once), "Retrieve a Message
//! Batch" (`type: message_batch`, `processing_status` `in_progress` / `canceling` / `ended`,
//! `request_counts` `{processing, succeeded, errored, canceled, expired}`, RFC 3339 `created_at`,
//! `expires_at`, `ended_at`, `cancel_initiated_at`, `archived_at`, and `results_url` once ended),
//! "Cancel a Message Batch", "Delete a Message Batch" (only once processing ended, answers
//! `message_batch_deleted`), "Retrieve Message Batch results" (JSON Lines, one
//! `{custom_id, result}` per request, in any order, `result.type` `succeeded` with a Message,
//! `errored` with an error response, `canceled` or `expired`), and "Errors"
//! (`{"type": "error", "error": {"type", "message"}}`; `x-api-key` or a Bearer token, and the
//! `anthropic-version` header, on every request).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::answers::{
    CACHED_TOKENS, INPUT_TOKENS, OUTPUT_TOKENS, answer_text, input_lines, prompt_of,
};
use super::{BatchRec, FileRec, State, reply, step};

/// An error in Anthropic's shape.
fn failure(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::from_u16(status).expect("a status"),
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// The header that carried the key (`x-api-key` or `bearer`), or why the request is refused.
pub(super) fn credential(
    key: &str,
    authorization: &str,
    api_key: Option<&str>,
    version: Option<&str>,
) -> Result<&'static str, Box<Response<Full<Bytes>>>> {
    let header = if api_key == Some(key) {
        "x-api-key"
    } else if authorization == format!("Bearer {key}") {
        "bearer"
    } else {
        return Err(Box::new(failure(
            401,
            "authentication_error",
            "invalid x-api-key",
        )));
    };
    if version != Some("2023-06-01") {
        return Err(Box::new(failure(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        )));
    }
    Ok(header)
}

pub(super) fn route(s: &mut State, method: &str, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let Some(rest) = path.strip_prefix("/v1/messages/batches") else {
        return failure(404, "not_found_error", "Not found");
    };
    let segments: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("POST", []) => create(s, body),
        ("GET", [id]) => {
            let Some(i) = s.batches.iter().position(|b| b.id == *id) else {
                return failure(404, "not_found_error", "Message batch not found");
            };
            if s.tick_on_poll {
                step(s, i);
            }
            reply(StatusCode::OK, &view(s, &s.batches[i]))
        }
        ("POST", [id, "cancel"]) => {
            let now = s.clock;
            let Some(b) = s.batches.iter_mut().find(|b| b.id == *id) else {
                return failure(404, "not_found_error", "Message batch not found");
            };
            if matches!(b.status.as_str(), "in_progress" | "finalizing") {
                b.status = "cancelling".into();
                b.stamps.insert("cancelling_at".into(), json!(now));
            }
            let b = b.clone();
            reply(StatusCode::OK, &view(s, &b))
        }
        ("GET", [id, "results"]) => results(s, id),
        ("DELETE", [id]) => {
            let Some(i) = s.batches.iter().position(|b| b.id == *id) else {
                return failure(404, "not_found_error", "Message batch not found");
            };
            if !ended(&s.batches[i]) {
                return failure(
                    400,
                    "invalid_request_error",
                    "Message batch must be finished processing before it can be deleted",
                );
            }
            let b = s.batches.remove(i);
            s.files.remove(&b.input_file_id);
            if let Some(out) = &b.output_file_id {
                s.files.remove(out);
            }
            reply(
                StatusCode::OK,
                &json!({"id": b.id, "type": "message_batch_deleted"}),
            )
        }
        _ => failure(404, "not_found_error", "Not found"),
    }
}

fn ended(b: &BatchRec) -> bool {
    matches!(b.status.as_str(), "completed" | "expired" | "cancelled")
}

/// Whether `id` is a `custom_id` Anthropic accepts.
fn is_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a create body is invalid, if it is.
fn invalid(req: &Value) -> Option<String> {
    let Some(requests) = req["requests"].as_array() else {
        return Some("requests: Field required".into());
    };
    if !(1..=100_000).contains(&requests.len()) {
        return Some("requests: must hold 1 to 100000 items".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (n, r) in requests.iter().enumerate() {
        let id = r["custom_id"].as_str().unwrap_or_default();
        if !is_custom_id(id) || !seen.insert(id.to_owned()) {
            return Some(format!("requests.{n}.custom_id: invalid or duplicate"));
        }
        let p = &r["params"];
        let ok = p["model"].is_string()
            && p["max_tokens"].as_u64().is_some_and(|m| m >= 1)
            && p["messages"].is_array()
            && p.get("stream").is_none();
        if !ok {
            return Some(format!("requests.{n}.params: not a valid Messages request"));
        }
    }
    None
}

fn create(s: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return failure(400, "invalid_request_error", "invalid JSON");
    };
    s.posted.push(req.clone());
    if let Some(problem) = invalid(&req) {
        return failure(400, "invalid_request_error", &problem);
    }
    // The requests are kept as the emulator's input lines (`custom_id`, `body`).
    let mut bytes = Vec::new();
    for r in req["requests"].as_array().into_iter().flatten() {
        bytes.extend_from_slice(
            json!({"custom_id": r["custom_id"], "body": r["params"]})
                .to_string()
                .as_bytes(),
        );
        bytes.push(b'\n');
    }
    let total = req["requests"].as_array().map_or(0, Vec::len);
    s.next += 1;
    let input = format!("file-{:06}", s.next);
    s.files.insert(
        input.clone(),
        FileRec {
            filename: "requests.jsonl".into(),
            purpose: "message_batch".into(),
            bytes,
            created_at: s.clock,
        },
    );
    s.next += 1;
    let batch = BatchRec {
        id: format!("msgbatch_{:06}", s.next),
        endpoint: "/v1/messages".into(),
        input_file_id: input,
        completion_window: "24h".into(),
        metadata: Value::Null,
        status: "in_progress".into(),
        created_at: now(),
        stamps: Map::new(),
        total,
        ran: total / 2,
        output_file_id: None,
        error_file_id: None,
        errors: None,
        model: None,
        failed: 0,
    };
    let answer = view(s, &batch);
    s.batches.push(batch);
    reply(StatusCode::OK, &answer)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as an RFC 3339 time (UTC), by the civil-from-days algorithm.
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).expect("days");
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The counts of an ended batch, from its results.
fn counts(s: &State, b: &BatchRec) -> Map<String, Value> {
    let mut counts = Map::new();
    for k in ["processing", "succeeded", "errored", "canceled", "expired"] {
        counts.insert(k.into(), json!(0));
    }
    let Some(file) = b.output_file_id.as_ref().and_then(|id| s.files.get(id)) else {
        counts.insert("processing".into(), json!(b.total));
        return counts;
    };
    for line in file.bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let result: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        if let Some(kind) = result["result"]["type"].as_str() {
            let seen = counts[kind].as_u64().unwrap_or(0) + 1;
            counts.insert(kind.into(), json!(seen));
        }
    }
    counts
}

/// A batch as a `message_batch` object, with the test's patch over it.
fn view(s: &State, b: &BatchRec) -> Value {
    let done = ended(b);
    let status = if done {
        "ended"
    } else if b.status == "cancelling" {
        "canceling"
    } else {
        "in_progress"
    };
    let stamp = |k: &str| b.stamps.get(k).map(|_| rfc3339(now()));
    let mut v = json!({
        "id": b.id, "type": "message_batch", "processing_status": status,
        "request_counts": counts(s, b),
        "created_at": rfc3339(b.created_at), "expires_at": rfc3339(b.created_at + 86_400),
        "ended_at": done.then(|| rfc3339(now())), "archived_at": null,
        "cancel_initiated_at": stamp("cancelling_at"),
        "results_url": done.then(|| format!("{}/v1/messages/batches/{}/results", s.root, b.id)),
    });
    if let (Some(patch), Some(obj)) = (&s.batch_patch, v.as_object_mut()) {
        for (k, val) in patch {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

fn results(s: &State, id: &str) -> Response<Full<Bytes>> {
    let Some(b) = s.batches.iter().find(|b| b.id == id) else {
        return failure(404, "not_found_error", "Message batch not found");
    };
    let Some(file) = b.output_file_id.as_ref().and_then(|f| s.files.get(f)) else {
        return failure(
            400,
            "invalid_request_error",
            "Message batch results are not available until processing ends",
        );
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/binary")
        .body(Full::new(Bytes::from(file.bytes.clone())))
        .expect("a response")
}

/// The result of one request that ran: markers in the prompt choose `FAIL400`
/// (`invalid_request_error`), `OVERLOADED` (`overloaded_error`), `LEAKKEY` (the key in the
/// message); `JSON:` with a tool answers with the forced tool's input.
fn result(s: &State, body: &Value, prompt: &str, n: usize) -> Value {
    let errored = |kind: &str, message: String| json!({"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}});
    if prompt.contains("FAIL400") {
        return errored("invalid_request_error", "the prompt was refused".into());
    }
    if prompt.contains("OVERLOADED") {
        return errored("overloaded_error", "Overloaded".into());
    }
    if prompt.contains("LEAKKEY") {
        return errored(
            "authentication_error",
            format!("invalid x-api-key {}", s.key),
        );
    }
    let tool = body["tool_choice"]["name"].as_str();
    let (content, stop) = match (tool, prompt.strip_prefix("JSON:")) {
        (Some(name), Some(json)) => {
            let input: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            (
                json!([{"type": "tool_use", "id": format!("toolu_{n}"), "name": name, "input": input}]),
                "tool_use",
            )
        }
        _ => (
            json!([{"type": "text", "text": answer_text(prompt)}]),
            "end_turn",
        ),
    };
    json!({"type": "succeeded", "message": {
        "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": INPUT_TOKENS - CACHED_TOKENS, "cache_read_input_tokens": CACHED_TOKENS,
            "cache_creation_input_tokens": 0, "output_tokens": OUTPUT_TOKENS}}})
}

/// The results of batch `i`: one line per request, in reverse order (results come in any order):
/// those that ran answered, the rest `canceled` (a cancelled batch) or `expired`.
pub(super) fn write_results(s: &mut State, i: usize) {
    let lines = input_lines(s, i);
    let ran = s.batches[i].ran.min(lines.len());
    let cancelled = s.batches[i].status == "cancelling";
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate().rev() {
        let r = if n < ran {
            result(s, &line["body"], &prompt_of(&line["body"]), n)
        } else if cancelled {
            json!({"type": "canceled"})
        } else {
            json!({"type": "expired"})
        };
        out.extend_from_slice(
            json!({"custom_id": line["custom_id"], "result": r})
                .to_string()
                .as_bytes(),
        );
        out.push(b'\n');
    }
    let out = s.output_override.clone().unwrap_or(out);
    s.next += 1;
    let id = format!("file-{:06}", s.next);
    s.files.insert(
        id.clone(),
        FileRec {
            filename: "results.jsonl".into(),
            purpose: "message_batch_results".into(),
            bytes: out,
            created_at: s.clock,
        },
    );
    s.batches[i].output_file_id = Some(id);
}

#[test]
fn rfc3339_times_are_civil_dates() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(rfc3339(1_724_179_044), "2024-08-20T18:37:24.000000Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00.000000Z");
}
