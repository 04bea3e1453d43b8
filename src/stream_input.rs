//! `--input-format stream-json`: the JSON Lines the Qwen Code SDK (`@qwen-code/sdk`) writes on
//! our stdin, read into typed values, and the control responses written back. The protocol is
//! Qwen Code's (`packages/cli/src/nonInteractive/types.ts`, `control/controllers/
//! systemController.ts`; the SDK's `src/query/Query.ts` and `src/transport/ProcessTransport.ts`):
//!
//! - `{"type":"user","session_id":…,"message":{"role":"user","content":TEXT|BLOCKS},"parent_tool_use_id":null}`
//! - `{"type":"control_request","request_id":ID,"request":{"subtype":"initialize"|"interrupt"|"set_model"|…}}`
//! - answered with `{"type":"control_response","response":{"subtype":"success","request_id":ID,"response":{…}}}`
//!   or `{"type":"control_response","response":{"subtype":"error","request_id":ID,"error":MESSAGE}}`.
//!
//! Every line is untrusted: one JSON value, at most `--max-input-bytes`; anything else is a
//! `Bad` line the caller reports and skips.

use serde_json::{Value, json};

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// A user message: its text (text blocks joined with newlines).
    User(String),
    Control {
        request_id: String,
        request: Control,
    },
    /// The SDK's answer to a request of ours, a cancel, or a keep-alive: nothing to do.
    Ignored,
    /// Not a message qwen can take, and why.
    Bad(String),
}

/// The control requests qwen serves; any other is answered with an error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    Initialize,
    Interrupt,
    SetModel(String),
    Unsupported(String),
}

/// Read one line.
pub(crate) fn parse(line: &str) -> Incoming {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Incoming::Bad(format!("not JSON: {e}")),
    };
    match value.get("type").and_then(Value::as_str) {
        Some("user") => match user_text(&value["message"]["content"]) {
            Ok(text) => Incoming::User(text),
            Err(why) => Incoming::Bad(why),
        },
        Some("control_request") => {
            let Some(request_id) = value.get("request_id").and_then(Value::as_str) else {
                return Incoming::Bad("a control_request without a string `request_id`".into());
            };
            let request = &value["request"];
            let subtype = request["subtype"].as_str().unwrap_or_default();
            let request = match subtype {
                "initialize" => Control::Initialize,
                "interrupt" => Control::Interrupt,
                "set_model" => match request["model"].as_str().map(str::trim) {
                    Some(model) if !model.is_empty() => Control::SetModel(model.to_owned()),
                    _ => Control::Unsupported("set_model without a model".into()),
                },
                other => Control::Unsupported(other.to_owned()),
            };
            Incoming::Control {
                request_id: request_id.to_owned(),
                request,
            }
        }
        Some("control_response" | "control_cancel_request" | "keep_alive") => Incoming::Ignored,
        Some(other) => Incoming::Bad(format!("unknown message type `{}`", other.escape_debug())),
        None => Incoming::Bad("a line without a `type`".into()),
    }
}

/// A user message's text: a string, or text blocks (any other block is refused: qwen sends text).
fn user_text(content: &Value) -> Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match (b["type"].as_str(), b["text"].as_str()) {
                (Some("text"), Some(text)) => Ok(text),
                (kind, _) => Err(format!(
                    "a user message block of type `{}`: qwen sends text only",
                    kind.unwrap_or("?").escape_debug()
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        _ => Err("a user message without `message.content`".into()),
    }
}

/// A success response to `request_id`.
pub(crate) fn success(request_id: &str, response: &Value) -> Value {
    json!({"type": "control_response",
           "response": {"subtype": "success", "request_id": request_id, "response": response}})
}

/// An error response to `request_id`.
pub(crate) fn error(request_id: &str, message: &str) -> Value {
    json!({"type": "control_response",
           "response": {"subtype": "error", "request_id": request_id, "error": message}})
}

/// What qwen can do, as the `initialize` response says it (Qwen Code's capability names).
pub(crate) fn capabilities() -> Value {
    json!({
        "can_handle_can_use_tool": false,
        "can_handle_hook_callback": false,
        "can_set_permission_mode": false,
        "can_set_model": true,
        "can_handle_mcp_message": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sdk_lines() {
        let cases = [
            (
                r#"{"type":"user","session_id":"s","message":{"role":"user","content":"hi"},"parent_tool_use_id":null}"#,
                Incoming::User("hi".into()),
            ),
            (
                r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}"#,
                Incoming::User("a\nb".into()),
            ),
            (
                r#"{"type":"control_request","request_id":"1","request":{"subtype":"initialize","hooks":null}}"#,
                Incoming::Control {
                    request_id: "1".into(),
                    request: Control::Initialize,
                },
            ),
            (
                r#"{"type":"control_request","request_id":"2","request":{"subtype":"set_model","model":"m2"}}"#,
                Incoming::Control {
                    request_id: "2".into(),
                    request: Control::SetModel("m2".into()),
                },
            ),
            (
                r#"{"type":"control_request","request_id":"3","request":{"subtype":"mcp_message"}}"#,
                Incoming::Control {
                    request_id: "3".into(),
                    request: Control::Unsupported("mcp_message".into()),
                },
            ),
            (
                r#"{"type":"control_response","response":{}}"#,
                Incoming::Ignored,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), want, "{line}");
        }
        for bad in [
            "not json",
            "{}",
            r#"{"type":"user","message":{"content":[{"type":"image"}]}}"#,
            r#"{"type":"control_request","request":{"subtype":"interrupt"}}"#,
            r#"{"type":"other"}"#,
        ] {
            assert!(matches!(parse(bad), Incoming::Bad(_)), "{bad}");
        }
        // A reason quotes what the line said, escaped: stdin's control characters never reach
        // stderr raw.
        for hostile in [
            r#"{"type":"x\u001b]0;title\u0007"}"#,
            r#"{"type":"user","message":{"content":[{"type":"\u001b[2J"}]}}"#,
        ] {
            let Incoming::Bad(why) = parse(hostile) else {
                panic!("{hostile} is a bad line");
            };
            assert!(!why.contains('\u{1b}'), "{why:?}");
            assert!(why.contains("\\u{1b}"), "{why:?}");
        }
    }
}
