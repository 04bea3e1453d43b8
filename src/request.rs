//! The provider parameters a run or a job puts in its request body, with one precedence rule:
//! sampling (`temperature`, `top_p`, `seed`, `stop`), the token limit, `reasoning_effort`, and the
//! `--extra-body` / `extra_body` object merged at the top level (which may not replace `model`,
//! `messages` or `stream`). Named fields always win over the same key in an extra body: the extra
//! body is for what qwen has no flag for (`DashScope`'s `enable_thinking`, vLLM's `top_k`,
//! `OpenRouter`'s `provider`).

use serde_json::{Map, Value, json};

use crate::cli::RunArgs;
use crate::prompt_file::{ModelParameters, PromptFile, Role};

/// Keys an extra body may not set: they are the request itself.
const RESERVED: [&str; 3] = ["model", "messages", "stream"];

/// The largest `--extra-body @file` read.
const MAX_EXTRA_BODY_BYTES: u64 = 1024 * 1024;

/// An extra body's keys, checked: an object that does not try to replace the request itself.
pub(crate) fn check_extra_body(value: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(map) = value else {
        return Err("must be a JSON object".to_owned());
    };
    if let Some(key) = map.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(format!(
            "cannot set `{key}`: qwen builds `model`, `messages` and `stream` itself"
        ));
    }
    Ok(map)
}

/// `--extra-body`: inline JSON, or `@path` (relative to the working directory, through the command
/// line's door for files, at most 1 MiB).
pub(crate) fn load_extra_body(
    arg: &str,
    door: &crate::paths::Workspace,
) -> Result<Map<String, Value>, String> {
    let value = if let Some(rel) = arg.strip_prefix('@') {
        let text = door.read("file", rel, MAX_EXTRA_BODY_BYTES)?;
        serde_json::from_str(&text).map_err(|e| format!("`{rel}` is not JSON: {e}"))?
    } else {
        serde_json::from_str(arg).map_err(|e| {
            format!("the value is not JSON ({e}); give an object inline or as @file.json")
        })?
    };
    check_extra_body(value)
}

/// The body fields the command line sets: only what was given.
pub(crate) fn flag_fields(args: &RunArgs) -> Map<String, Value> {
    let mut fields = Map::new();
    if let Some(t) = args.temperature {
        fields.insert("temperature".into(), json!(t));
    }
    if let Some(n) = args.max_tokens {
        fields.insert("max_tokens".into(), json!(n));
    }
    if let Some(p) = args.top_p {
        fields.insert("top_p".into(), json!(p));
    }
    if let Some(seed) = args.seed {
        fields.insert("seed".into(), json!(seed));
    }
    if !args.stop.is_empty() {
        fields.insert("stop".into(), json!(args.stop));
    }
    if let Some(effort) = args.reasoning_effort {
        fields.insert("reasoning_effort".into(), json!(effort.as_str()));
    }
    fields
}

/// A prompt file's `modelParameters` as body fields (`maxTokens`/`maxCompletionTokens` become
/// qwen's own token limit, named for the host by the client).
pub(crate) fn prompt_file_fields(params: &ModelParameters) -> Map<String, Value> {
    let mut fields = Map::new();
    if let Some(n) = params.max_tokens {
        fields.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = params.temperature {
        fields.insert("temperature".into(), json!(t));
    }
    if let Some(p) = params.top_p {
        fields.insert("top_p".into(), json!(p));
    }
    fields
}

/// A prompt file's messages as chat messages. A `system` given elsewhere (a flag, a job) wins:
/// it replaces the file's system messages.
pub(crate) fn prompt_file_messages(prompt: &PromptFile, system: Option<&str>) -> Vec<Value> {
    let mut messages: Vec<Value> = system
        .map(|s| json!({"role": "system", "content": s}))
        .into_iter()
        .collect();
    messages.extend(
        prompt
            .messages
            .iter()
            .filter(|m| system.is_none() || m.role != Role::System)
            .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
    );
    messages
}

/// The request body: `model`, `messages`, the extra body, then the named fields over it.
pub(crate) fn body(
    model: &str,
    messages: Vec<Value>,
    extra: &Map<String, Value>,
    fields: Map<String, Value>,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    for (k, v) in extra {
        if !RESERVED.contains(&k.as_str()) {
            body.insert(k.clone(), v.clone());
        }
    }
    body.extend(fields);
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_body_is_an_object_that_leaves_the_request_alone() {
        assert!(check_extra_body(json!({"enable_thinking": true, "top_k": 20})).is_ok());
        for bad in [
            json!({"model": "x"}),
            json!({"messages": []}),
            json!({"stream": false}),
            json!([1]),
            json!("x"),
        ] {
            assert!(check_extra_body(bad.clone()).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("x.json"),
            r#"{"provider": {"order": ["a"]}}"#,
        )
        .expect("write");
        let door = crate::paths::Workspace::new(dir.path(), false);
        let loaded = load_extra_body("@x.json", &door).expect("loads");
        assert_eq!(loaded["provider"], json!({"order": ["a"]}));
        assert!(load_extra_body("{not json", &door).is_err());
        assert!(load_extra_body("@missing.json", &door).is_err());
    }

    #[test]
    fn named_fields_win_over_the_extra_body() {
        let extra = check_extra_body(json!({"temperature": 1.5, "top_k": 20})).expect("ok");
        let mut fields = Map::new();
        fields.insert("temperature".into(), json!(0.2));
        let body = body(
            "m",
            vec![json!({"role": "user", "content": "hi"})],
            &extra,
            fields,
        );
        assert_eq!(body["temperature"], json!(0.2));
        assert_eq!(body["top_k"], json!(20));
        assert_eq!(body["model"], json!("m"));
    }
}
