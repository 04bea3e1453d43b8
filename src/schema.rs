//! `--json-schema`: loading and checking the schema, the `response_format` that asks for it, and
//! the local validation (with repair turns) that makes an answer trustworthy whatever the server did.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::{Value, json};

use crate::client::ApiError;
use crate::paths::{JobPaths, Workspace};

/// The largest schema file read (`@path` or a job's `json_schema` path).
pub(crate) const MAX_SCHEMA_BYTES: u64 = 4 * 1024 * 1024;

/// At most this many validation errors are listed in a repair turn or an error message.
pub(crate) const MAX_REPORTED_ERRORS: usize = 20;

/// The longest piece of an answer quoted in one validation error.
const MAX_QUOTED_CHARS: usize = 200;

/// How the schema is asked of the server. A server that refuses one way gets the next, and the run
/// remembers it ([`SharedMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatMode {
    /// `response_format: {"type": "json_schema", ...}` (`OpenAI` Structured Outputs).
    JsonSchema,
    /// `response_format: {"type": "json_object"}` (JSON mode), the schema in the system message.
    JsonObject,
    /// No `response_format`; the schema in the system message.
    Prompt,
}

impl FormatMode {
    /// The name recorded in results (`response_format`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::JsonObject => "json_object",
            Self::Prompt => "none",
        }
    }

    /// The next, weaker way, if there is one.
    pub(crate) fn degrade(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Prompt),
            Self::Prompt => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::JsonSchema => 0,
            Self::JsonObject => 1,
            Self::Prompt => 2,
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            0 => Self::JsonSchema,
            1 => Self::JsonObject,
            _ => Self::Prompt,
        }
    }
}

/// The format mode of a whole run, shared by every job of a batch: once a server refused
/// `json_schema`, no later request asks for it again. It only ever gets weaker.
#[derive(Debug, Default)]
pub(crate) struct SharedMode(AtomicU8);

impl SharedMode {
    pub(crate) fn get(&self) -> FormatMode {
        FormatMode::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Record that `mode` is what works now (never strengthens an earlier degradation).
    pub(crate) fn degrade_to(&self, mode: FormatMode) {
        self.0.fetch_max(mode.to_u8(), Ordering::Relaxed);
    }
}

/// Whether a failed request is a server refusing `response_format` (or its `json_schema` /
/// `json_object` type), which is answered by degrading rather than failing. `OpenAI` answers
/// 400 `{"error": {"message": "Invalid parameter: 'response_format' of type 'json_schema' is not
/// supported with this model. ...", "type": "invalid_request_error", "param": "response_format"}}`
/// (the same text for `json_object` on older models; Azure `OpenAI` likewise); servers without
/// the feature name the field in their 400 in the same way (e.g. "Unsupported parameter:
/// `'response_format'`"). Only a 400 counts: a 422 or 5xx is not a refusal of the feature.
pub(crate) fn refuses_response_format(error: &ApiError) -> bool {
    match error {
        ApiError::Http {
            status: 400,
            message,
            ..
        } => {
            let m = message.to_ascii_lowercase();
            m.contains("response_format") || m.contains("json_schema")
        }
        _ => false,
    }
}

/// A schema that passed every check: valid against its draft's meta-schema, references resolved
/// without any I/O, and compiled for validating answers.
pub(crate) struct OutputSchema {
    schema: Value,
    validator: Validator,
    strict: bool,
    name: String,
    /// A prompt file's `jsonSchema` object (`{name, strict, schema}`), sent as written in the
    /// `json_schema` mode (as `actions/ai-inference` v2 sends it), instead of qwen's own.
    written: Option<Value>,
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSchema")
            .field("name", &self.name)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

/// Refuses every external reference. A schema comes from a repository (untrusted): a `$ref` to an
/// `http(s)://` URL would make qwen fetch it (a request forgery from inside CI, or a leak of
/// what the network can reach), a `file://` one would read local files. The crate is built
/// without its `resolve-http`/`resolve-file` features too; this retriever makes the rule explicit
/// whatever features another crate turns on.
struct NoRetrieval;

impl Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!(
            "`{}`: external references are not followed (a schema must be self-contained; use `$defs`)",
            uri.as_str()
        )
        .into())
    }
}

impl OutputSchema {
    /// Check `schema` and compile it. The error says what is wrong, for an exit 2 / 42 message.
    pub(crate) fn compile(schema: Value) -> Result<Self, String> {
        if !(schema.is_object() || schema.is_boolean()) {
            return Err("a JSON Schema is an object (or `true`/`false`)".to_owned());
        }
        let draft = match schema.get("$schema") {
            None => Draft::Draft202012,
            Some(Value::String(_)) => match Draft::default().detect(&schema) {
                d @ (Draft::Draft202012 | Draft::Draft7) => d,
                _ => {
                    return Err(format!(
                        "`$schema` {} is not supported: use draft 2020-12 (`https://json-schema.org/draft/2020-12/schema`) or draft-07",
                        schema["$schema"]
                    ));
                }
            },
            Some(other) => return Err(format!("`$schema` must be a URI string, not {other}")),
        };
        // Meta-validation of the bundled drafts needs no retrieval.
        let meta = match draft {
            Draft::Draft7 => jsonschema::draft7::meta::validate(&schema),
            _ => jsonschema::draft202012::meta::validate(&schema),
        };
        if let Err(e) = meta {
            return Err(format!(
                "not a valid JSON Schema: {} (at `{}`)",
                shorten(&e.to_string()),
                pointer_or_root(e.instance_path().as_str())
            ));
        }
        let validator = jsonschema::options()
            .with_draft(draft)
            .with_retriever(NoRetrieval)
            .build(&schema)
            .map_err(|e| format!("cannot use the schema: {}", shorten(&e.to_string())))?;
        let strict = satisfies_strict_rules(&schema);
        let name = schema_name(&schema);
        Ok(Self {
            schema,
            validator,
            strict,
            name,
            written: None,
        })
    }

    /// Send `spec` (a prompt file's whole `jsonSchema` object, whose `schema` this is) as the
    /// `json_schema` of the request, as written: its `name`, its `strict` (or none).
    pub(crate) fn with_written_spec(mut self, spec: Value) -> Self {
        self.written = Some(spec);
        self
    }

    pub(crate) fn schema(&self) -> &Value {
        &self.schema
    }

    /// The `response_format` of a request in `mode` (`None`: the field is left out).
    ///
    /// `OpenAI`'s Chat Completions shape: `{"type": "json_schema", "json_schema": {"name":
    /// "<a-zA-Z0-9_->{1,64}", "schema": {...}, "strict": bool}}`; `DashScope`'s compatible mode and
    /// vLLM take the same object.
    pub(crate) fn response_format(&self, mode: FormatMode) -> Option<Value> {
        match mode {
            FormatMode::JsonSchema => Some(match &self.written {
                Some(spec) => json!({"type": "json_schema", "json_schema": spec}),
                None => json!({
                    "type": "json_schema",
                    "json_schema": {"name": self.name, "schema": self.schema, "strict": self.strict},
                }),
            }),
            FormatMode::JsonObject => Some(json!({"type": "json_object"})),
            FormatMode::Prompt => None,
        }
    }

    /// The system-message text that tells the model the schema when the request cannot carry it.
    /// It names JSON, which `OpenAI` and `DashScope` require of a `json_object` request.
    pub(crate) fn instruction(&self) -> String {
        format!(
            "Answer with one JSON value that matches this JSON Schema, and nothing else (no prose, no Markdown):\n{}",
            self.schema
        )
    }

    /// Put `mode` into a request body: its `response_format`, and for the weaker modes the schema
    /// in the system message (appended to an existing one, or a new first message).
    pub(crate) fn apply(&self, body: &mut Value, mode: FormatMode) {
        let Some(map) = body.as_object_mut() else {
            return;
        };
        match self.response_format(mode) {
            Some(rf) => {
                map.insert("response_format".into(), rf);
            }
            None => {
                map.remove("response_format");
            }
        }
        if mode == FormatMode::JsonSchema {
            return;
        }
        let instruction = self.instruction();
        let Some(Value::Array(messages)) = map.get_mut("messages") else {
            return;
        };
        let first_is_system = messages
            .first()
            .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("system"));
        if first_is_system && let Some(Value::String(content)) = messages[0].get_mut("content") {
            content.push_str("\n\n");
            content.push_str(&instruction);
        } else {
            messages.insert(0, json!({"role": "system", "content": instruction}));
        }
    }

    /// Check an answer: strip a Markdown fence, parse, validate. `Err` holds the problems (at most
    /// [`MAX_REPORTED_ERRORS`]), each with the JSON pointer of the place it concerns.
    pub(crate) fn check(&self, answer: &str) -> Result<Value, Vec<String>> {
        let text = strip_fence(answer);
        let value: Value = serde_json::from_str(text).map_err(|e| {
            vec![format!(
                "the answer is not valid JSON ({e}); send only the JSON value"
            )]
        })?;
        let errors: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(MAX_REPORTED_ERRORS)
            .map(|e| {
                format!(
                    "at `{}`: {}",
                    pointer_or_root(e.instance_path().as_str()),
                    shorten(&e.to_string())
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(errors)
        }
    }
}

/// The user turn that asks for a corrected answer, after the wrong one as the assistant turn.
pub(crate) fn repair_turn(errors: &[String]) -> String {
    let listed: Vec<&str> = errors
        .iter()
        .take(MAX_REPORTED_ERRORS)
        .map(String::as_str)
        .collect();
    format!(
        "Your answer does not match the required JSON Schema:\n- {}\nAnswer again with only the corrected JSON value.",
        listed.join("\n- ")
    )
}

/// The validation errors as one line for an error message (shortened).
pub(crate) fn summarize_errors(errors: &[String]) -> String {
    let mut text = errors
        .iter()
        .take(5)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > 5 {
        let _ = write!(text, "; … ({} more)", errors.len() - 5);
    }
    crate::sanitize::first_chars(&text, 1000)
}

/// The text inside a Markdown code fence (```` ```json ... ``` ````, `~~~`), or the text itself.
pub(crate) fn strip_fence(answer: &str) -> &str {
    let text = answer.trim();
    for fence in ["```", "~~~"] {
        if let Some(rest) = text.strip_prefix(fence)
            && let Some(inner) = rest.strip_suffix(fence)
            && let Some((info, body)) = inner.split_once('\n')
            && !info.contains(fence)
            && info
                .trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return body.trim();
        }
    }
    text
}

/// `OpenAI`'s strict-mode rules (Structured Outputs guide, "Supported schemas"): the root is an
/// object (not `anyOf`), every object sets `additionalProperties: false` and lists all of its
/// `properties` in `required`. A schema that breaks them is sent with `strict: false`, which
/// `OpenAI` accepts, instead of earning a 400.
pub(crate) fn satisfies_strict_rules(schema: &Value) -> bool {
    let root_is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    root_is_object && schema.get("anyOf").is_none() && objects_are_closed(schema)
}

fn is_object_schema(s: &Value) -> bool {
    match s.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => s.get("properties").is_some(),
    }
}

fn objects_are_closed(s: &Value) -> bool {
    let Value::Object(map) = s else {
        return true;
    };
    if is_object_schema(s) {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return false;
        }
        let properties = map.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if properties.is_some_and(|p| p.keys().any(|k| !required.contains(&k.as_str()))) {
            return false;
        }
    }
    // Every place a subschema can sit.
    for key in [
        "properties",
        "$defs",
        "definitions",
        "patternProperties",
        "dependentSchemas",
    ] {
        if let Some(Value::Object(subs)) = map.get(key)
            && !subs.values().all(objects_are_closed)
        {
            return false;
        }
    }
    for key in ["anyOf", "allOf", "oneOf", "prefixItems"] {
        if let Some(Value::Array(subs)) = map.get(key)
            && !subs.iter().all(objects_are_closed)
        {
            return false;
        }
    }
    for key in [
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "additionalItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
    ] {
        match map.get(key) {
            Some(sub @ Value::Object(_)) if !objects_are_closed(sub) => return false,
            Some(Value::Array(subs)) if !subs.iter().all(objects_are_closed) => return false,
            _ => {}
        }
    }
    true
}

/// The `json_schema.name` `OpenAI` requires (`^[a-zA-Z0-9_-]{1,64}$`): the schema's `title`, made
/// to fit, else `response`.
fn schema_name(schema: &Value) -> String {
    let name: String = schema
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.trim_matches('_').is_empty() {
        "response".to_owned()
    } else {
        name
    }
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

fn shorten(text: &str) -> String {
    crate::sanitize::first_chars(text, MAX_QUOTED_CHARS)
}

/// The `--json-schema` value: inline JSON, or `@path` (relative to the working directory, through
/// the command line's door: a regular file, no link out of the workspace), read with the 4 MiB cap.
pub(crate) fn load_arg(arg: &str, door: &Workspace) -> Result<Value, String> {
    if let Some(path) = arg.strip_prefix('@') {
        let text = door.read("file", path, MAX_SCHEMA_BYTES)?;
        return serde_json::from_str(&text).map_err(|e| format!("`{path}` is not JSON: {e}"));
    }
    serde_json::from_str(arg).map_err(|e| {
        format!("the value is not JSON ({e}); give the schema inline or as @path/to/schema.json")
    })
}

/// A job's `json_schema`: an inline object, or a path relative to the job file's directory,
/// resolved by the one door for job-file paths ([`JobPaths`]: inside the tree unless
/// `--allow-outside-paths`), read with the 4 MiB cap.
pub(crate) fn load_job_value(value: &Value, paths: &JobPaths) -> Result<Value, String> {
    match value {
        Value::String(rel) => {
            let text = paths.read("json_schema", rel, MAX_SCHEMA_BYTES)?;
            serde_json::from_str(&text).map_err(|e| format!("`{rel}` is not JSON: {e}"))
        }
        Value::Object(_) | Value::Bool(_) => Ok(value.clone()),
        _ => Err("must be a schema object or a path to one".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_schema() -> Value {
        json!({
            "type": "object",
            "properties": {"label": {"enum": ["bug", "feature"]}},
            "required": ["label"],
            "additionalProperties": false
        })
    }

    #[test]
    fn a_valid_schema_compiles_and_invalid_ones_are_refused() {
        assert!(OutputSchema::compile(label_schema()).is_ok());
        assert!(OutputSchema::compile(json!(true)).is_ok());
        let draft7 =
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"});
        assert!(OutputSchema::compile(draft7).is_ok());
        for bad in [
            json!({"type": "invalid_type"}),
            json!({"type": "object", "required": "label"}),
            json!({"minLength": -1}),
            json!("string"),
            json!({"$schema": "http://json-schema.org/draft-04/schema#"}),
            json!({"$schema": 7}),
        ] {
            assert!(OutputSchema::compile(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_refs_are_refused_without_any_retrieval() {
        // A listener that would see a connection if the crate tried to fetch the reference.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        for reference in [
            format!("http://127.0.0.1:{port}/schema.json"),
            format!("https://127.0.0.1:{port}/schema.json"),
            "file:///etc/passwd".to_owned(),
        ] {
            let schema = json!({"$ref": reference});
            let err = OutputSchema::compile(schema).unwrap_err();
            assert!(err.contains("external references"), "{err}");
        }
        assert!(listener.accept().is_err(), "a connection was attempted");
        // A local reference works.
        let local = json!({"$defs": {"l": {"type": "string"}}, "$ref": "#/$defs/l"});
        let s = OutputSchema::compile(local).unwrap();
        assert!(s.check("\"x\"").is_ok());
    }

    #[test]
    fn strict_rules() {
        assert!(satisfies_strict_rules(&label_schema()));
        let open =
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert!(!satisfies_strict_rules(&open));
        let optional = json!({"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a"], "additionalProperties": false});
        assert!(!satisfies_strict_rules(&optional));
        let nested_open = json!({
            "type": "object", "additionalProperties": false, "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"x": {}}, "required": ["x"]}}}
        });
        assert!(!satisfies_strict_rules(&nested_open));
        let nested_closed = json!({
            "type": "object", "additionalProperties": false, "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"x": {}}, "required": ["x"], "additionalProperties": false}}}
        });
        assert!(satisfies_strict_rules(&nested_closed));
        assert!(!satisfies_strict_rules(&json!({"type": "string"})));
        assert!(!satisfies_strict_rules(&json!({"anyOf": [label_schema()]})));
        let defs_open = json!({
            "type": "object", "additionalProperties": false, "required": [], "properties": {},
            "$defs": {"d": {"type": "object"}}
        });
        assert!(!satisfies_strict_rules(&defs_open));
    }

    #[test]
    fn response_format_per_mode() {
        let s = OutputSchema::compile(json!({"title": "Code review!", "type": "object", "properties": {}, "required": [], "additionalProperties": false})).unwrap();
        let rf = s.response_format(FormatMode::JsonSchema).unwrap();
        assert_eq!(rf["type"], "json_schema");
        assert_eq!(rf["json_schema"]["name"], "Code_review_");
        assert_eq!(rf["json_schema"]["strict"], true);
        assert_eq!(rf["json_schema"]["schema"], *s.schema());
        assert_eq!(
            s.response_format(FormatMode::JsonObject),
            Some(json!({"type": "json_object"}))
        );
        assert_eq!(s.response_format(FormatMode::Prompt), None);
        let loose = OutputSchema::compile(json!({"type": "array"})).unwrap();
        assert_eq!(
            loose.response_format(FormatMode::JsonSchema).unwrap()["json_schema"]["strict"],
            false
        );
        assert_eq!(
            loose.response_format(FormatMode::JsonSchema).unwrap()["json_schema"]["name"],
            "response"
        );
    }

    #[test]
    fn apply_puts_the_schema_in_the_system_message_when_degraded() {
        let s = OutputSchema::compile(label_schema()).unwrap();
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let mut strict = base.clone();
        s.apply(&mut strict, FormatMode::JsonSchema);
        assert_eq!(strict["messages"].as_array().unwrap().len(), 1);
        assert_eq!(strict["response_format"]["type"], "json_schema");

        let mut none = strict.clone();
        s.apply(&mut none, FormatMode::Prompt);
        assert!(none.get("response_format").is_none());
        assert_eq!(none["messages"][0]["role"], "system");
        assert!(
            none["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("\"label\"")
        );

        let mut with_system = json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
        s.apply(&mut with_system, FormatMode::JsonObject);
        assert_eq!(with_system["messages"].as_array().unwrap().len(), 2);
        let system = with_system["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("Be brief.\n\n") && system.contains("JSON"));
        assert_eq!(
            with_system["response_format"],
            json!({"type": "json_object"})
        );
    }

    #[test]
    fn fences_are_stripped() {
        let cases = [
            ("{\"a\":1}", "{\"a\":1}"),
            ("```json\n{\"a\":1}\n```", "{\"a\":1}"),
            ("  ```\n{\"a\":1}\n```\n", "{\"a\":1}"),
            ("~~~json\n[1]\n~~~", "[1]"),
            ("```json {\"a\":1}```", "```json {\"a\":1}```"),
            ("text ```json\n1\n```", "text ```json\n1\n```"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_fence(input), want, "{input:?}");
        }
    }

    #[test]
    fn check_reports_pointers_and_caps_the_list() {
        let s = OutputSchema::compile(label_schema()).unwrap();
        assert_eq!(
            s.check("```json\n{\"label\":\"bug\"}\n```"),
            Ok(json!({"label": "bug"}))
        );
        let errors = s.check("{\"label\":\"question\"}").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("at `/label`:"), "{errors:?}");
        let errors = s.check("{}").unwrap_err();
        assert!(errors[0].starts_with("at `/`:"), "{errors:?}");
        let errors = s.check("Sure! Here it is").unwrap_err();
        assert!(errors[0].contains("not valid JSON"), "{errors:?}");

        let many =
            OutputSchema::compile(json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let answer = serde_json::to_string(&(0..50).collect::<Vec<_>>()).unwrap();
        let errors = many.check(&answer).unwrap_err();
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
        assert!(errors[3].starts_with("at `/3`:"), "{errors:?}");
        let turn = repair_turn(&errors);
        assert!(turn.contains("at `/19`") && !turn.contains("at `/20`"));
    }

    #[test]
    fn refusals_of_response_format_are_recognised() {
        let http = |status, message: &str| ApiError::Http {
            status,
            message: message.to_owned(),
            retry_after: None,
            code: None,
        };
        assert!(refuses_response_format(&http(
            400,
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
        )));
        assert!(refuses_response_format(&http(
            400,
            "Unsupported parameter: 'response_format'"
        )));
        assert!(!refuses_response_format(&http(
            400,
            "max_tokens is too large"
        )));
        assert!(!refuses_response_format(&http(
            500,
            "response_format crashed us"
        )));
        assert!(!refuses_response_format(&http(401, "bad key")));
    }

    #[test]
    fn shared_mode_only_degrades() {
        let mode = SharedMode::default();
        assert_eq!(mode.get(), FormatMode::JsonSchema);
        mode.degrade_to(FormatMode::Prompt);
        mode.degrade_to(FormatMode::JsonObject);
        assert_eq!(mode.get(), FormatMode::Prompt);
        assert_eq!(
            FormatMode::JsonSchema.degrade(),
            Some(FormatMode::JsonObject)
        );
        assert_eq!(FormatMode::Prompt.degrade(), None);
    }

    #[test]
    fn job_schema_paths_stay_inside_the_job_directory() {
        let dir = tempfile::tempdir().unwrap();
        let dir_jobs = dir.path().join("jobs");
        let jobs = JobPaths::new(dir_jobs.clone(), crate::paths::PathRules::default());
        std::fs::create_dir_all(dir_jobs.join("schemas")).unwrap();
        std::fs::write(dir_jobs.join("schemas/a.json"), r#"{"type":"string"}"#).unwrap();
        std::fs::write(dir.path().join("outside.json"), r#"{"type":"string"}"#).unwrap();
        assert_eq!(
            load_job_value(&json!("schemas/a.json"), &jobs),
            Ok(json!({"type": "string"}))
        );
        assert_eq!(
            load_job_value(&json!({"type": "number"}), &jobs),
            Ok(json!({"type": "number"}))
        );
        for bad in ["../outside.json", "/etc/passwd", "missing.json"] {
            assert!(load_job_value(&json!(bad), &jobs).is_err(), "{bad}");
        }
        assert!(load_job_value(&json!(3), &jobs).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("outside.json"), dir_jobs.join("link.json"))
                .unwrap();
            let err = load_job_value(&json!("link.json"), &jobs).unwrap_err();
            assert!(err.contains("outside"), "{err}");
        }
    }

    #[test]
    fn schema_files_are_capped_and_pass_the_command_lines_door() {
        let dir = tempfile::tempdir().unwrap();
        let door = Workspace::new(dir.path(), false);
        let big = dir.path().join("big.json");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_SCHEMA_BYTES + 1).unwrap();
        let err = load_arg("@big.json", &door).unwrap_err();
        assert!(err.contains("larger than 4194304 bytes"), "{err}");
        std::fs::write(dir.path().join("s.json"), r#"{"type":"object"}"#).unwrap();
        assert_eq!(load_arg("@s.json", &door), Ok(json!({"type": "object"})));
        assert!(load_arg("{not json", &door).is_err());
        assert!(load_arg("@missing.json", &door).is_err());
        // A committed link out of the workspace, and a FIFO (which would block the open forever).
        std::os::unix::fs::symlink("/proc/self/environ", dir.path().join("env.json")).unwrap();
        let err = load_arg("@env.json", &door).unwrap_err();
        assert!(err.contains("leads out of the workspace"), "{err}");
        let fifo = dir.path().join("fifo.json");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = load_arg("@fifo.json", &door).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
