//! Qwen Code's own expectations of its headless JSON, transcribed: `integration-tests/cli/json-output.test.ts`
//! and what its non-interactive output adapters (`packages/cli/src/nonInteractive/io/
//! BaseJsonOutputAdapter.ts`, `JsonOutputAdapter.ts`, `StreamJsonOutputAdapter.ts`) and their tests
//! pin down, as Qwen Code 0.24.4 (npm `@qwen-code/qwen-code`) writes them. Sources: QwenLM/qwen-code
//! at the stored commits 3af26895 (json-output.test.ts) and 0816e573 (BaseJsonOutputAdapter.ts);
//! the 0.24.4 tag itself could not be fetched (the repository is over the mirror's size limit),
//! so each shape below was also checked against the installed 0.24.4 by scripts/qwen-code-oracle.sh.
//!
//! Not transcribed, because qwen has no such thing: the adapters' tool-use, tool-result, citation,
//! user-message and subagent cases (qwen runs no tools and sends no follow-up turns of its own);
//! "text mode writes the error to stderr" holds with qwen's `error:`/`hint:` lines instead of
//! the bare message (`output::` tests).
//!
//! Not transcribed, on purpose: json-output.test.ts's "JSON error for enforced auth mismatch"
//! (`security.auth.enforcedType` is not a qwen setting; qwen's auth failures are covered by
//! `output::an_auth_error_is_a_valid_json_document`), and Qwen Code's `[API Error: …]` assistant
//! message on a failed request (qwen writes no assistant message that carries an error as if it
//! were an answer: README's migration table).

use serde_json::{Value, json};

use crate::common::{Sse, TestEnv, error_response, run, server_answering, server_with};

fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

/// json-output.test.ts, "should return a valid JSON array with result message containing response
/// and stats".
#[tokio::test]
async fn json_output_is_an_array_whose_result_has_the_answer_and_stats() {
    let env = TestEnv::new();
    let server = server_answering(&["Paris"]).await;
    let r = run(env.cmd_for(&server).args([
        "--output-format",
        "json",
        "What is the capital of France?",
    ]));
    r.code(0).stderr_empty();
    let parsed = r.json();
    assert!(!parsed.is_empty());
    let result = of_type(&parsed, "result")[0];
    assert_eq!(result["is_error"], false);
    assert!(
        result["result"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("paris"))
    );
    assert!(result["stats"].is_object(), "{result}");
    // The stats' shape (Qwen Code's SessionMetrics), with qwen's one model and no tools.
    let name = result["model"].as_str().unwrap_or("?");
    let model = &result["stats"]["models"][name];
    assert_eq!(model["api"]["totalRequests"], 1);
    assert_eq!(model["api"]["totalErrors"], 0);
    assert_eq!(
        model["tokens"],
        json!({"prompt": 12, "candidates": 2, "total": 14, "cached": 0, "thoughts": 0})
    );
    assert_eq!(model["bySource"]["main"]["tokens"], model["tokens"]);
    assert_eq!(result["stats"]["tools"]["totalCalls"], 0);
    assert_eq!(result["stats"]["files"]["totalLinesAdded"], 0);
    assert_eq!(result["stats"]["skills"]["totalCalls"], 0);
}

/// json-output.test.ts, "should return line-delimited JSON messages for stream-json output format".
#[tokio::test]
async fn stream_json_is_lines_of_system_assistant_and_a_last_result() {
    let env = TestEnv::new();
    let server = server_answering(&["Paris"]).await;
    let r = run(env.cmd_for(&server).args([
        "--output-format",
        "stream-json",
        "What is the capital of France?",
    ]));
    r.code(0).stderr_empty();
    let messages = r.json_lines();
    assert!(messages.len() >= 3);
    let system = of_type(&messages, "system")[0];
    assert!(system.get("subtype").is_some() && system.get("session_id").is_some());
    let assistant = of_type(&messages, "assistant")[0];
    assert!(assistant.get("message").is_some() && assistant.get("session_id").is_some());
    let last = &messages[messages.len() - 1];
    assert_eq!(last["type"], "result");
    assert_eq!(last["is_error"], false);
    assert!(
        last["result"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("paris"))
    );
    // JsonOutputAdapter only: stream-json results carry no stats.
    assert!(last.get("stats").is_none(), "{last}");
}

/// json-output.test.ts, "should include stream events when using stream-json with
/// include-partial-messages"; the order is `StreamJsonOutputAdapter`'s (one `message_start`, the
/// assistant message after its `content_block_stop` and before `message_stop`).
#[tokio::test]
async fn partial_messages_have_every_event_kind_and_the_assistant_before_message_stop() {
    let env = TestEnv::new();
    let server = server_answering(&["Par", "is"]).await;
    let r = run(env.cmd_for(&server).args([
        "--output-format",
        "stream-json",
        "--include-partial-messages",
        "What is the capital of France?",
    ]));
    r.code(0).stderr_empty();
    let messages = r.json_lines();
    assert!(messages.len() > 3);
    let events = of_type(&messages, "stream_event");
    assert!(!events.is_empty());
    for key in ["event", "session_id", "uuid"] {
        assert!(events[0].get(key).is_some(), "{key}: {}", events[0]);
    }
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| match m["type"].as_str() {
            Some("stream_event") => m["event"]["type"].as_str().unwrap_or("?"),
            other => other.unwrap_or("?"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "system",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "assistant",
            "message_stop",
            "result"
        ]
    );
    // message_start carries the id of the assistant message it becomes.
    let start = &messages[1]["event"]["message"];
    assert_eq!(start["id"], messages[6]["message"]["id"]);
    assert_eq!(start["content"], json!([]));
    assert!(
        messages[8]["result"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("paris"))
    );
}

/// BaseJsonOutputAdapter.buildMessage: `uuid` is `message.id`, `stop_reason` is null unless the
/// message holds only `tool_use` blocks; `createUsage`: `cache_read_input_tokens` from the provider's
/// cached count (the `OpenAI` converter maps `prompt_tokens_details.cached_tokens` to it), in the
/// message and the result. The init message's `uuid` is the session id, with `slash_commands`
/// and `agents`.
#[tokio::test]
async fn cached_tokens_ids_stop_reason_and_init_fields_are_qwen_code_s() {
    let env = TestEnv::new();
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                       "prompt_tokens_details": {"cached_tokens": 10}});
    let body = Sse::new().text("Hello world").finish("stop").body()
        + &format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})
        );
    let server = server_with(Sse::new().raw(&body).respond(), 1).await;
    let r = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    let init = &messages[0];
    assert_eq!(init["uuid"], init["session_id"]);
    assert_eq!(init["slash_commands"], json!([]));
    assert_eq!(init["agents"], json!([]));
    let assistant = &messages[1];
    assert_eq!(assistant["uuid"], assistant["message"]["id"]);
    assert_eq!(assistant["message"]["stop_reason"], Value::Null);
    let counted = json!({"input_tokens": 12, "output_tokens": 2, "cache_read_input_tokens": 10, "total_tokens": 14});
    assert_eq!(assistant["message"]["usage"], counted);
    assert_eq!(messages[2]["usage"], counted);
    let name = messages[2]["model"].as_str().unwrap_or("?");
    assert_eq!(messages[2]["stats"]["models"][name]["tokens"]["cached"], 10);
}

/// qwen's own addition: cache writes, where the provider reports them (`OpenRouter`'s
/// `prompt_tokens_details.cache_write_tokens`), as `cache_creation_input_tokens`.
#[tokio::test]
async fn cache_writes_are_reported_where_the_provider_sends_them() {
    let env = TestEnv::new();
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                       "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4}});
    let body = json!({"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                      "usage": usage});
    let server = server_with(wiremock::ResponseTemplate::new(200).set_body_json(body), 1).await;
    let r = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    r.code(0).stderr_empty();
    let result = r.result();
    assert_eq!(result["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(result["usage"]["cache_creation_input_tokens"], 4);
}

/// `BaseJsonOutputAdapter`: one content-block type per assistant message, so the reasoning is a
/// message of its own, `{"type":"thinking","thinking":…,"signature":""}` with `createUsage()`'s
/// zero counts, before the text's message (which has the exchange's usage).
#[tokio::test]
async fn thinking_is_its_own_message_with_a_signature_and_zero_usage() {
    let env = TestEnv::new();
    let sse = Sse::new()
        .chunk(&json!({"reasoning_content": "Let me think."}), None)
        .text("Hello")
        .finish("stop")
        .usage(12, 2)
        .done();
    let server = server_with(sse.respond(), 1).await;
    let r = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    let assistants = of_type(&messages, "assistant");
    assert_eq!(assistants.len(), 2);
    assert_eq!(
        assistants[0]["message"]["content"],
        json!([{"type": "thinking", "thinking": "Let me think.", "signature": ""}])
    );
    assert_eq!(
        assistants[0]["message"]["usage"],
        json!({"input_tokens": 0, "output_tokens": 0})
    );
    assert_eq!(assistants[0]["message"]["stop_reason"], Value::Null);
    assert_eq!(assistants[1]["message"]["content"][0]["text"], "Hello");
    assert_eq!(assistants[1]["message"]["usage"]["input_tokens"], 12);
}

/// `StreamJsonOutputAdapter` with partial messages and reasoning: one `message_start` (the thinking
/// message's id), the thinking block and its assistant message, the text block (index 0 again)
/// and its assistant message, then `message_stop`.
#[tokio::test]
async fn partial_thinking_then_text_is_one_streamed_message_with_two_assistant_messages() {
    let env = TestEnv::new();
    let sse = Sse::new()
        .chunk(&json!({"reasoning_content": "Hm."}), None)
        .text("Hi")
        .finish("stop")
        .usage(12, 2)
        .done();
    let server = server_with(sse.respond(), 1).await;
    let r =
        run(env
            .cmd_for(&server)
            .args(["-o", "stream-json", "--include-partial-messages", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json_lines();
    let kinds: Vec<String> = messages
        .iter()
        .map(|m| match m["type"].as_str() {
            Some("stream_event") => {
                let e = &m["event"];
                match e["type"].as_str() {
                    Some("content_block_start") => format!(
                        "start:{}",
                        e["content_block"]["type"].as_str().unwrap_or("?")
                    ),
                    other => other.unwrap_or("?").to_owned(),
                }
            }
            Some("assistant") => format!(
                "assistant:{}",
                m["message"]["content"][0]["type"].as_str().unwrap_or("?")
            ),
            other => other.unwrap_or("?").to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "system",
            "message_start",
            "start:thinking",
            "content_block_delta",
            "content_block_stop",
            "assistant:thinking",
            "start:text",
            "content_block_delta",
            "content_block_stop",
            "assistant:text",
            "message_stop",
            "result"
        ]
    );
    assert_eq!(
        messages[1]["event"]["message"]["id"],
        messages[5]["message"]["id"]
    );
    assert_eq!(
        messages[2]["event"]["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
}

/// A failed request: Qwen Code writes `[system, assistant("[API Error: 401 …]"), result]`; qwen
/// writes `[system, result]` (deliberate: no error dressed as an answer), the result being Qwen
/// Code's `error_during_execution` with `is_error: true`, no `result` and an `error.message`, and
/// no stats (`JsonOutputAdapter` writes them on success only).
#[tokio::test]
async fn an_api_error_is_a_result_and_never_an_assistant_answer() {
    let env = TestEnv::new();
    let server = server_with(error_response(401, "Incorrect API key provided"), 1).await;
    let r = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    r.code(41).stderr_has("error: API error: HTTP 401");
    let messages = r.json();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds, ["system", "result"]);
    let result = &messages[1];
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert!(result.get("result").is_none());
    assert!(result.get("stats").is_none());
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Incorrect API key provided"))
    );
}

/// `JsonOutputAdapter.test.ts` and `StreamJsonOutputAdapter.test.ts`, "should append text content
/// from Content events" and "should build and emit a complete assistant message": the pieces are
/// one text block, in a message with a uuid, the session id, a null `parent_tool_use_id`, the
/// assistant role and the model.
#[tokio::test]
async fn text_pieces_are_one_block_in_a_complete_assistant_message() {
    let env = TestEnv::new();
    let server = server_answering(&["Hello", " World"]).await;
    let r = run(env
        .cmd_for(&server)
        .args(["-o", "json", "-m", "test-model", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    let assistant = of_type(&messages, "assistant")[0];
    assert_eq!(
        assistant["message"]["content"],
        json!([{"type": "text", "text": "Hello World"}])
    );
    assert!(assistant["uuid"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(assistant["session_id"], messages[0]["session_id"]);
    assert_eq!(assistant["parent_tool_use_id"], Value::Null);
    assert_eq!(assistant["message"]["role"], "assistant");
    assert_eq!(assistant["message"]["model"], "test-model");
    assert_eq!(assistant["message"]["type"], "message");
}

/// `StreamJsonOutputAdapter.test.ts`, "with partial messages disabled": no stream events, and the
/// final assistant message still written.
#[tokio::test]
async fn stream_json_without_partial_messages_has_no_stream_events() {
    let env = TestEnv::new();
    let server = server_answering(&["Te", "xt"]).await;
    let r = run(env.cmd_for(&server).args(["-o", "stream-json", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json_lines();
    assert!(
        of_type(&messages, "stream_event").is_empty(),
        "{messages:?}"
    );
    assert_eq!(of_type(&messages, "assistant").len(), 1);
}

/// `StreamJsonOutputAdapter.test.ts`, "should preserve whitespace when streaming multiple thinking
/// fragments (issue #1356)": the reasoning is the fragments joined as they came.
#[tokio::test]
async fn thinking_fragments_keep_their_whitespace() {
    let env = TestEnv::new();
    let sse = [
        "The user just",
        " said \"Hello\"",
        ". This is a simple greeting",
    ]
    .iter()
    .fold(Sse::new(), |sse, piece| {
        sse.chunk(&json!({"reasoning_content": piece}), None)
    })
    .text("Hi")
    .finish("stop")
    .usage(12, 2)
    .done();
    let server = server_with(sse.respond(), 1).await;
    let r = run(env.cmd_for(&server).args(["-o", "json", "hi"]));
    r.code(0).stderr_empty();
    let messages = r.json();
    assert_eq!(
        of_type(&messages, "assistant")[0]["message"]["content"][0]["thinking"],
        "The user just said \"Hello\". This is a simple greeting"
    );
}

/// `JsonOutputAdapter.test.ts`, "should emit structured output as raw JSON in text mode": with a
/// schema, text mode's stdout is the compact value and a newline. (Its "should include
/// `structured_output` in JSON result" is a later Qwen Code's field name; 0.24.4 writes
/// `structured_result`, which the oracle's `schema` exchange compares.)
#[tokio::test]
async fn a_schema_answer_in_text_mode_is_the_compact_value_and_a_newline() {
    let env = TestEnv::new();
    let server = server_answering(&["{ \"summary\": \"done\",", " \"count\": 2 }"]).await;
    let r = run(env
        .cmd_for(&server)
        .args(["--json-schema", r#"{"type":"object"}"#, "hi"]));
    r.code(0)
        .stdout_is("{\"summary\":\"done\",\"count\":2}\n")
        .stderr_empty();
    let r = run(env.cmd_for(&server).args([
        "-o",
        "json",
        "--json-schema",
        r#"{"type":"object"}"#,
        "hi",
    ]));
    r.code(0);
    let result = r.result();
    assert_eq!(result["result"], "{\"summary\":\"done\",\"count\":2}");
    assert_eq!(
        result["structured_result"],
        json!({"summary": "done", "count": 2})
    );
}

/// README's "Coming from Qwen Code's `-o json`" table: each row's backticked field names and its
/// `qwen` column.
fn migration_rows() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("### Coming from Qwen Code's `-o json`")
        .nth(1)
        .expect("README.md has the Qwen Code migration table");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let fields = cells[0]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            (fields, cells[1].to_owned())
        })
        .collect()
}

/// The field paths of messages as the migration table names them: `<type>.<path>`, arrays of
/// objects as `[]`, any `usage` object's fields as `usage.<name>` (the message's and the
/// result's are one row), `result.stats` one level deep.
fn field_paths(messages: &[Value], out: &mut std::collections::BTreeSet<String>) {
    fn walk(path: &str, value: &Value, out: &mut std::collections::BTreeSet<String>) {
        if path == "result.stats" {
            if let Some(stats) = value.as_object() {
                out.extend(stats.keys().map(|k| format!("result.stats.{k}")));
            }
        } else if path == "result.structured_result" {
            // The model's value: its fields are the user's, not ours.
            out.insert(path.to_owned());
        } else if let Some(map) = value.as_object() {
            for (key, v) in map {
                let child = if key == "usage" {
                    "usage".to_owned()
                } else {
                    format!("{path}.{key}")
                };
                walk(&child, v, out);
            }
        } else if let Some(items) = value.as_array().filter(|a| a.iter().any(Value::is_object)) {
            for item in items {
                walk(&format!("{path}[]"), item, out);
            }
        } else {
            out.insert(path.to_owned());
        }
    }
    for message in messages {
        walk(message["type"].as_str().unwrap_or("?"), message, out);
    }
}

/// The migration table is true: every field qwen writes (a success with reasoning and cached
/// tokens in `-o json`, partial messages, a schema answer, an API error) has a row, no row marked
/// `not supported` is written, every `same` field is written, and every deliberate difference the
/// oracle allows (fixtures/qwen-code-oracle/differences.json) is named in the table.
#[tokio::test]
async fn the_readme_migration_table_is_the_fields_qwen_writes() {
    let rows = migration_rows();
    assert!(rows.len() >= 30, "{rows:?}");
    let mut written = std::collections::BTreeSet::new();

    let env = TestEnv::new();
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                       "prompt_tokens_details": {"cached_tokens": 10}});
    let reasoning = Sse::new()
        .chunk(&json!({"reasoning_content": "Hm."}), None)
        .text("{\"a\":1}")
        .finish("stop");
    let body = reasoning.body()
        + &format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})
        );
    let server = server_with(Sse::new().raw(&body).respond(), 3).await;
    for args in [
        &["-o", "json", "hi"][..],
        &["-o", "stream-json", "--include-partial-messages", "hi"],
        &["-o", "json", "--json-schema", r#"{"type":"object"}"#, "hi"],
    ] {
        let r = run(env.cmd_for(&server).args(args));
        r.code(0);
        let messages = if args[1] == "json" {
            r.json()
        } else {
            r.json_lines()
        };
        field_paths(&messages, &mut written);
    }
    let failing = server_with(error_response(401, "no"), 1).await;
    let r = run(env.cmd_for(&failing).args(["-o", "json", "hi"]));
    r.code(41);
    field_paths(&r.json(), &mut written);

    let documented: std::collections::BTreeMap<&str, &str> = rows
        .iter()
        .flat_map(|(fields, status)| fields.iter().map(move |f| (f.as_str(), status.as_str())))
        .collect();
    for path in &written {
        let status = documented.get(path.as_str());
        assert!(status.is_some(), "README's Qwen Code table lacks `{path}`");
        assert_ne!(
            status,
            Some(&"not supported"),
            "`{path}` is written but the table says not supported"
        );
    }
    for (field, status) in &documented {
        if *status == "same" {
            assert!(
                written.contains(*field),
                "the table says `{field}` is the same, but qwen never wrote it"
            );
        }
        assert!(
            ["same", "different on purpose", "not supported", "qwen only"].contains(status),
            "`{field}`: unknown status `{status}`"
        );
    }

    let differences: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/qwen-code-oracle/differences.json"
        ))
        .expect("differences.json"),
    )
    .expect("differences.json is JSON");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for rule in differences["differences"].as_array().expect("a list") {
        let id = rule["id"].as_str().expect("an id");
        assert!(
            rule["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{id} has no reason"
        );
        assert!(
            readme.contains(&format!("[`{id}`]")),
            "README's Qwen Code table does not name `{id}`"
        );
    }
}
