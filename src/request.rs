//! The provider parameters a run or a job puts in its request body, with one precedence rule
//! (`compose`) for a single run, a local batch and a provider batch: sampling (`temperature`,
//! `top_p`, `seed`, `stop`), the token limit, `reasoning_effort`, `model`, and the `--extra-body` /
//! `extra_body` object merged at the top level (which may not replace `model`, `messages` or
//! `stream`). Named fields always win over the same key in an extra body: the extra body is for
//! what qwen has no flag for (`DashScope`'s `enable_thinking`, vLLM's `top_k`, `OpenRouter`'s
//! `provider`).

use serde_json::{Map, Value, json};

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

/// `--reasoning-effort`: how long a reasoning model may think (`reasoning_effort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// The provider parameters the command line sets, typed; unset ones are `None` (or empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Params {
    pub(crate) temperature: Option<f64>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) top_p: Option<f64>,
    pub(crate) seed: Option<i64>,
    pub(crate) stop: Vec<String>,
    pub(crate) reasoning_effort: Option<ReasoningEffort>,
}

impl Params {
    /// The body fields these parameters set: only what was given.
    pub(crate) fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        if let Some(t) = self.temperature {
            fields.insert("temperature".into(), json!(t));
        }
        if let Some(n) = self.max_tokens {
            fields.insert("max_tokens".into(), json!(n));
        }
        if let Some(p) = self.top_p {
            fields.insert("top_p".into(), json!(p));
        }
        if let Some(seed) = self.seed {
            fields.insert("seed".into(), json!(seed));
        }
        if !self.stop.is_empty() {
            fields.insert("stop".into(), json!(self.stop));
        }
        if let Some(effort) = self.reasoning_effort {
            fields.insert("reasoning_effort".into(), json!(effort.as_str()));
        }
        fields
    }
}

/// A request's named fields (`model` among them) from every place that can set them, lowest
/// precedence first. A source that does not apply is left empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    /// A job file's `defaults`.
    pub(crate) file_defaults: Map<String, Value>,
    /// A `.prompt.yml` prompt file's `model` and `modelParameters`.
    pub(crate) prompt_file: Map<String, Value>,
    /// The command line (`model` only when `-m`/`--model` gave it).
    pub(crate) flags: Map<String, Value>,
    /// A job's own fields.
    pub(crate) job: Map<String, Value>,
}

/// The extra bodies (`--extra-body`, `extra_body`), lowest precedence first; merged key by key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExtraBodies<'a> {
    pub(crate) file_defaults: &'a Map<String, Value>,
    pub(crate) flags: &'a Map<String, Value>,
    pub(crate) job: &'a Map<String, Value>,
}

/// The one precedence rule of a request body. Named fields: a job's own beat the flags, which
/// beat a prompt file's, which beat a job file's `defaults`; `model` the same, then
/// `configured_model` (environment, `.env`, default). The extra bodies merge key by key in the
/// same order, and every named field wins over an extra body's key. Returns the model and the body.
pub(crate) fn compose(
    configured_model: &str,
    messages: Vec<Value>,
    fields: Fields,
    extra: ExtraBodies<'_>,
) -> Result<(String, Value), String> {
    let mut named = fields.file_defaults;
    named.extend(fields.prompt_file);
    named.extend(fields.flags);
    named.extend(fields.job);
    let model = match named.remove("model") {
        None => configured_model.to_owned(),
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        Some(_) => return Err("`model` must be a non-empty string".to_owned()),
    };
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    for layer in [extra.file_defaults, extra.flags, extra.job] {
        for (k, v) in layer {
            if !RESERVED.contains(&k.as_str()) {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    body.extend(named);
    Ok((model, Value::Object(body)))
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

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Each row: which sources set `temperature` (and `model`), and the value that must win.
    #[test]
    fn the_precedence_of_a_request_field_is_job_flags_prompt_file_defaults() {
        let empty = || Map::new();
        let rows: [(&str, [Option<f64>; 4], f64); 6] = [
            ("defaults only", [Some(0.1), None, None, None], 0.1),
            (
                "prompt file over defaults",
                [Some(0.1), Some(0.2), None, None],
                0.2,
            ),
            (
                "flag over prompt file",
                [Some(0.1), Some(0.2), Some(0.3), None],
                0.3,
            ),
            (
                "job over flag",
                [Some(0.1), Some(0.2), Some(0.3), Some(0.4)],
                0.4,
            ),
            ("job over defaults", [Some(0.1), None, None, Some(0.4)], 0.4),
            ("flag alone", [None, None, Some(0.3), None], 0.3),
        ];
        for (name, layers, want) in rows {
            let layer = |t: Option<f64>| {
                t.map_or_else(empty, |t| {
                    map(json!({"temperature": t, "model": format!("m{t}")}))
                })
            };
            let fields = Fields {
                file_defaults: layer(layers[0]),
                prompt_file: layer(layers[1]),
                flags: layer(layers[2]),
                job: layer(layers[3]),
            };
            let none = Map::new();
            let extra = ExtraBodies {
                file_defaults: &none,
                flags: &none,
                job: &none,
            };
            let (model, body) = compose("configured", vec![], fields, extra).expect(name);
            assert_eq!(body["temperature"], json!(want), "{name}");
            assert_eq!(model, format!("m{want}"), "{name}");
            assert_eq!(body["model"], json!(model), "{name}");
        }
    }

    #[test]
    fn the_configured_model_is_the_last_resort_and_a_bad_model_is_refused() {
        let none = Map::new();
        let extra = ExtraBodies {
            file_defaults: &none,
            flags: &none,
            job: &none,
        };
        let (model, _) = compose("configured", vec![], Fields::default(), extra).expect("ok");
        assert_eq!(model, "configured");
        for bad in [json!(""), json!("  "), json!(3), json!(null)] {
            let fields = Fields {
                job: map(json!({"model": bad})),
                ..Fields::default()
            };
            assert!(compose("c", vec![], fields, extra).is_err(), "{bad}");
        }
    }

    #[test]
    fn extra_bodies_merge_in_order_and_named_fields_win_over_them() {
        let defaults = map(json!({"top_k": 1, "a": "defaults", "temperature": 1.5}));
        let flags = map(json!({"top_k": 2, "b": "flags"}));
        let job = map(json!({"top_k": 3, "model": "sneaky", "messages": [], "stream": false}));
        let extra = ExtraBodies {
            file_defaults: &defaults,
            flags: &flags,
            job: &job,
        };
        let fields = Fields {
            flags: map(json!({"temperature": 0.2})),
            ..Fields::default()
        };
        let messages = vec![json!({"role": "user", "content": "hi"})];
        let (model, body) = compose("m", messages.clone(), fields, extra).expect("ok");
        assert_eq!(model, "m");
        assert_eq!(body["top_k"], json!(3));
        assert_eq!(body["a"], json!("defaults"));
        assert_eq!(body["b"], json!("flags"));
        assert_eq!(body["temperature"], json!(0.2));
        assert_eq!(body["model"], json!("m"));
        assert_eq!(body["messages"], json!(messages));
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn params_set_only_what_was_given() {
        assert!(Params::default().fields().is_empty());
        let p = Params {
            temperature: Some(0.5),
            max_tokens: Some(9),
            top_p: Some(0.9),
            seed: Some(7),
            stop: vec!["END".into()],
            reasoning_effort: Some(ReasoningEffort::Low),
        };
        assert_eq!(
            Value::Object(p.fields()),
            json!({"temperature": 0.5, "max_tokens": 9, "top_p": 0.9, "seed": 7, "stop": ["END"], "reasoning_effort": "low"})
        );
    }
}
