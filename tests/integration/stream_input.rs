//! `--input-format stream-json`: the Qwen Code SDK's protocol over one process: initialize,
//! user messages as turns that keep the conversation, `set_model`, an unsupported control request
//! answered with an error, and a failing server as an error result.

use serde_json::Value;

use crate::common::{
    TestEnv, chat, error_response, request_bodies, run, server_answering, user_message,
};

const ARGS: [&str; 5] = [
    "--input-format",
    "stream-json",
    "-o",
    "stream-json",
    "--channel=SDK",
];

fn lines(values: &[Value]) -> String {
    values.iter().map(|v| v.to_string() + "\n").collect()
}

fn user(text: &str) -> Value {
    serde_json::json!({"type": "user", "session_id": "s", "message": {"role": "user", "content": text}, "parent_tool_use_id": null})
}

fn control(id: &str, request: &Value) -> Value {
    serde_json::json!({"type": "control_request", "request_id": id, "request": request})
}

#[tokio::test]
async fn two_turns_over_one_process_keep_the_conversation() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    let input = lines(&[
        control(
            "1",
            &serde_json::json!({"subtype": "initialize", "hooks": null}),
        ),
        user("first"),
        control(
            "2",
            &serde_json::json!({"subtype": "set_model", "model": "m2"}),
        ),
        control(
            "3",
            &serde_json::json!({"subtype": "mcp_message", "server_name": "x"}),
        ),
        user("second"),
    ]);
    let id = "0d2c0e1a-8f7e-4c1b-9d2e-3b4a5c6d7e8f";
    let out = run(env
        .cmd_for(&server)
        .args(ARGS)
        .args(["--session-id", id])
        .write_stdin(input));
    out.code(0);
    let messages = out.json_lines();
    // Control requests are answered as they come, during a turn too: only the turns' own
    // messages keep their order.
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default())
        .filter(|t| *t != "control_response")
        .collect();
    assert_eq!(
        kinds,
        [
            "system",
            "assistant",
            "result",
            "system",
            "assistant",
            "result"
        ],
        "{messages:#?}"
    );
    assert_eq!(
        messages[0]["type"], "control_response",
        "initialize is answered first"
    );
    let response = |id: &str| {
        messages
            .iter()
            .find(|m| m["response"]["request_id"] == id)
            .map(|m| m["response"].clone())
            .unwrap_or_default()
    };
    assert_eq!(response("1")["subtype"], "success");
    assert_eq!(response("1")["response"]["session_id"], id);
    assert_eq!(response("2")["subtype"], "success");
    assert_eq!(response("3")["subtype"], "error");
    assert!(
        response("3")["error"]
            .as_str()
            .unwrap_or_default()
            .contains("mcp_message")
    );
    assert!(
        messages
            .iter()
            .filter(|m| m["type"] == "result")
            .all(|m| m["result"] == "ok")
    );
    assert!(
        messages
            .iter()
            .filter(|m| m["type"] != "control_response")
            .all(|m| m["session_id"] == id)
    );
    let bodies = request_bodies(&server).await;
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["model"], "m2");
    assert_eq!(
        bodies[1]["messages"],
        serde_json::json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"}
        ])
    );
    assert_eq!(user_message(&bodies[0]), "first");
    // The conversation was recorded under the SDK's session id.
    run(env.cmd_for(&server).args(["-r", id, "third"])).code(0);
    assert_eq!(
        request_bodies(&server).await[2]["messages"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
}

#[tokio::test]
async fn a_failing_server_is_an_error_result_and_the_process_ends_cleanly() {
    let env = TestEnv::new();
    let server = wiremock::MockServer::start().await;
    chat()
        .respond_with(error_response(401, "bad key"))
        .mount(&server)
        .await;
    let out = run(env
        .cmd_for(&server)
        .args(ARGS)
        .write_stdin(lines(&[user("hi")])));
    out.code(0);
    let result = out.json_lines().pop().expect("a result");
    assert_eq!(result["type"], "result");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["subtype"], "error_during_execution");
}

#[test]
fn stream_json_input_needs_stream_json_output() {
    let env = TestEnv::new();
    run(env
        .cmd_with("http://127.0.0.1:9/v1", "sk-test")
        .args(["--input-format", "stream-json"]))
    .code(2)
    .stderr_has("add -o stream-json");
}
