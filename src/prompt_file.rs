//! `.prompt.yml` prompt files, the format GitHub uses for stored prompts: read one (bounded), check it,
//! and fill its `{{name}}` placeholders from `--var name=value|name=@path`, into a typed [`PromptFile`].
//!
//! The format, as GitHub documents it ("Storing prompts in GitHub repositories",
//! <https://docs.github.com/github-models/use-github-models/storing-prompts-in-github-repositories>)
//! and as `actions/ai-inference` v2 read it (`src/prompt.ts`): a YAML file whose name ends in
//! `.prompt.yml` or `.prompt.yaml`, holding `messages` (`role` system/user/assistant and `content`),
//! optionally `name`, `description`, `model`, `modelParameters` (`maxTokens`, `maxCompletionTokens`,
//! `temperature`, `topP`) and `responseFormat: text|json_schema` with `jsonSchema`, a JSON string of
//! `{name, strict, schema}`. `testData` and `evaluators` (used by `gh models eval`) are ignored.
//! Placeholders are `{{name}}` with a name of letters, digits, `_`, `.` and `-` (v2's
//! `/\{\{([\w.-]+)\}\}/`), replaced in one pass (a value's own `{{...}}` is left alone); one with no
//! value is left as is and reported as a warning, as v2 did.
//!
//! This module does no I/O of its own: the prompt file and every variable's `@path` are read through
//! the reader the caller passes (its door for files, [`crate::paths`]), so the caller decides where
//! such paths may point.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

/// The largest prompt file read, in bytes (a prompt file is a template, not the data it is filled with).
pub(crate) const MAX_PROMPT_FILE_BYTES: u64 = 1024 * 1024;

/// A prompt file that cannot be used: exit 42 (input), with a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct PromptFileError {
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl PromptFileError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl From<PromptFileError> for crate::error::Error {
    fn from(e: PromptFileError) -> Self {
        crate::error::Error::input(e.message, e.hint)
    }
}

const FORMAT_HINT: &str = "a prompt file holds `messages:` (a list of `role:` system/user/assistant and `content:`), and optionally `model:`, `modelParameters:` and `responseFormat:`";

/// The one rule everywhere (CLI `--prompt-file`, a job's `prompt_file`, the action's `prompt-file`): a
/// file whose name ends in `.prompt.yml` or `.prompt.yaml` is a prompt file; any other file is text.
pub(crate) fn is_prompt_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".prompt.yml") || n.ends_with(".prompt.yaml"))
}

/// A message's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) role: Role,
    pub(crate) content: String,
}

/// `modelParameters`. Command-line flags win over these (the caller applies that rule).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ModelParameters {
    /// `maxTokens` or `maxCompletionTokens` (one meaning: qwen picks the wire parameter itself).
    pub(crate) max_tokens: Option<u32>,
    pub(crate) temperature: Option<f64>,
    pub(crate) top_p: Option<f64>,
}

/// `responseFormat: json_schema` with its `jsonSchema`; behaves as `--json-schema`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonSchema {
    pub(crate) name: String,
    pub(crate) strict: Option<bool>,
    pub(crate) schema: Json,
    /// The whole `jsonSchema` object as written: what the request carries.
    pub(crate) spec: Json,
}

impl JsonSchema {
    /// The schema checked and compiled, to be sent as written (its `name`, its `strict`), as
    /// `actions/ai-inference` v2 sends `JSON.parse(jsonSchema)`.
    pub(crate) fn compile(&self) -> Result<crate::schema::OutputSchema, String> {
        crate::schema::OutputSchema::compile(self.schema.clone())
            .map(|s| s.with_written_spec(self.spec.clone()))
    }

    /// The chat API's `response_format` value, as the file asks for it (qwen sends its own, from
    /// the schema, through `--json-schema`'s path; this shows what the file means).
    #[cfg(test)]
    pub(crate) fn response_format(&self) -> Json {
        let mut spec = serde_json::Map::new();
        spec.insert("name".into(), Json::String(self.name.clone()));
        if let Some(strict) = self.strict {
            spec.insert("strict".into(), Json::Bool(strict));
        }
        spec.insert("schema".into(), self.schema.clone());
        serde_json::json!({"type": "json_schema", "json_schema": spec})
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResponseFormat {
    Text,
    JsonSchema(JsonSchema),
}

/// A checked prompt file, placeholders filled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptFile {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) messages: Vec<Message>,
    pub(crate) parameters: ModelParameters,
    pub(crate) response_format: ResponseFormat,
}

/// A variable's value as given: text, or `@path` (read through the caller's resolver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VarValue {
    Text(String),
    File(PathBuf),
}

/// The result of [`load`] / [`render`]: the prompt, and the warnings to print on stderr.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    pub(crate) prompt: PromptFile,
    pub(crate) warnings: Vec<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `name=value` or `name=@path`, as `--var` takes it.
pub(crate) fn parse_var(spec: &str) -> Result<(String, VarValue), PromptFileError> {
    let hint = "write `--var name=value`, or `--var name=@path` to use a file's content";
    let Some((name, value)) = spec.split_once('=') else {
        return Err(PromptFileError::new(
            format!("`--var {spec}` has no `=`"),
            hint,
        ));
    };
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(PromptFileError::new(
            format!("`{name}` is not a variable name (letters, digits, `_`, `.`, `-`)"),
            hint,
        ));
    }
    let value = match value.strip_prefix('@') {
        Some(path) if !path.is_empty() => VarValue::File(PathBuf::from(path)),
        Some(_) => {
            return Err(PromptFileError::new(
                format!("`--var {name}=@` names no file"),
                hint,
            ));
        }
        None => VarValue::Text(value.to_owned()),
    };
    Ok((name.to_owned(), value))
}

/// Fill `{{name}}` placeholders in one pass; names with no value are left as is and collected.
/// `budget` is how many bytes the text may still grow to: `None` when it would grow past it (the
/// text is never built past the limit, whatever the number of placeholders).
pub(crate) fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    missing: &mut BTreeSet<String>,
    budget: &mut u64,
) -> Option<String> {
    let mut out = String::with_capacity(
        text.len()
            .min(usize::try_from(*budget).unwrap_or(usize::MAX)),
    );
    let mut push = |out: &mut String, piece: &str| -> Option<()> {
        *budget = budget.checked_sub(piece.len() as u64)?;
        out.push_str(piece);
        Some(())
    };
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !is_name_char(c))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if name_len > 0 && after[name_len..].starts_with("}}") {
            push(&mut out, &rest[..start])?;
            if let Some(value) = vars.get(name) {
                push(&mut out, value)?;
            } else {
                if missing.len() < MAX_MISSING_NAMES {
                    missing.insert(name.to_owned());
                }
                push(&mut out, &rest[start..start + 2 + name_len + 2])?;
            }
            rest = &after[name_len + 2..];
        } else {
            // Not a placeholder here: keep one `{` and look again from the next character.
            push(&mut out, &rest[..=start])?;
            rest = &rest[start + 1..];
        }
    }
    push(&mut out, rest)?;
    Some(out)
}

/// At most this many names without a value are collected from one prompt file, and warned about.
const MAX_MISSING_NAMES: usize = 10;

/// What reading a prompt file or a variable's file gives: its text, or why not (the caller's door,
/// [`crate::paths`], decides where paths may lead and says why it refuses).
pub(crate) type ReadResult = Result<String, String>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    name: Option<String>,
    description: Option<String>,
    model: Option<String>,
    messages: Option<Vec<RawMessage>>,
    model_parameters: Option<RawParameters>,
    response_format: Option<String>,
    json_schema: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawMessage {
    role: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParameters {
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
}

fn bad(origin: &str, what: impl std::fmt::Display) -> PromptFileError {
    PromptFileError::new(format!("prompt file `{origin}`: {what}"), FORMAT_HINT)
}

fn token_limit(origin: &str, field: &str, n: Option<u64>) -> Result<Option<u32>, PromptFileError> {
    match n {
        None => Ok(None),
        Some(n) => match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(bad(origin, format!("`{field}: {n}` is out of range"))),
        },
    }
}

fn finite(origin: &str, field: &str, x: Option<f64>) -> Result<Option<f64>, PromptFileError> {
    match x {
        Some(x) if !x.is_finite() => Err(bad(origin, format!("`{field}` is not a finite number"))),
        _ => Ok(x),
    }
}

fn json_schema(origin: &str, raw: serde_yaml::Value) -> Result<JsonSchema, PromptFileError> {
    // GitHub's files hold a JSON string; a YAML map with the same fields is taken too.
    let spec: Json = match raw {
        serde_yaml::Value::String(text) => serde_json::from_str(&text)
            .map_err(|e| bad(origin, format!("`jsonSchema` is not valid JSON: {e}")))?,
        other => serde_json::to_value(other)
            .map_err(|e| bad(origin, format!("`jsonSchema` cannot be read: {e}")))?,
    };
    let name = spec
        .get("name")
        .and_then(Json::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad(origin, "`jsonSchema` needs a `name` (a string)"))?;
    let strict = match spec.get("strict") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(_) => return Err(bad(origin, "`jsonSchema.strict` must be true or false")),
    };
    let schema = spec
        .get("schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| bad(origin, "`jsonSchema` needs a `schema` (a JSON object)"))?;
    Ok(JsonSchema {
        name: name.to_owned(),
        strict,
        schema: schema.clone(),
        spec: spec.clone(),
    })
}

/// Check a prompt file's text, placeholders not yet filled, with the warnings about what it asks
/// for that is ignored. `origin` names it in messages.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Rendered, PromptFileError> {
    // The text is never quoted back: a link can make any file the prompt file.
    let value: serde_yaml::Value =
        crate::yaml::from_str(text).map_err(|e| bad(origin, format!("not valid YAML: {e}")))?;
    if !(value.is_mapping() || value.is_null()) {
        return Err(bad(origin, "not a YAML map (its content is not shown)"));
    }
    // Read again into the typed form (from the text: a plain `content: 12345` is text).
    let raw: RawFile =
        serde_yaml::from_str(text).map_err(|e| bad(origin, crate::yaml::describe(&e)))?;
    let raw_messages = raw
        .messages
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad(origin, "no `messages`"))?;
    let mut messages = Vec::with_capacity(raw_messages.len());
    for (i, m) in raw_messages.into_iter().enumerate() {
        let n = i + 1;
        let role = match m.role.as_deref() {
            Some("system") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(other) => {
                return Err(bad(
                    origin,
                    format!("message {n} has the role `{other}` (system, user or assistant)"),
                ));
            }
            None => return Err(bad(origin, format!("message {n} has no `role`"))),
        };
        let content = m
            .content
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad(origin, format!("message {n} has no `content`")))?;
        messages.push(Message { role, content });
    }
    let mut warnings = Vec::new();
    let parameters = match raw.model_parameters {
        None => ModelParameters::default(),
        Some(p) => ModelParameters {
            max_tokens: max_tokens(origin, &p, &mut warnings)?,
            temperature: finite(origin, "temperature", p.temperature)?,
            top_p: finite(origin, "topP", p.top_p)?,
        },
    };
    let response_format = response_format(
        origin,
        raw.response_format.as_deref(),
        raw.json_schema,
        &mut warnings,
    )?;
    let prompt = PromptFile {
        name: raw.name,
        description: raw.description,
        model: raw.model.filter(|m| !m.is_empty()),
        messages,
        parameters,
        response_format,
    };
    Ok(Rendered { prompt, warnings })
}

/// The answer's length limit: `maxCompletionTokens` when given, else `maxTokens` (one meaning:
/// qwen picks the wire parameter itself). Both given and different: `maxCompletionTokens` wins
/// with a warning, as in `actions/ai-inference` v2 (`src/main.ts`: `maxTokens` is read only when
/// `maxCompletionTokens` is absent).
fn max_tokens(
    origin: &str,
    p: &RawParameters,
    warnings: &mut Vec<String>,
) -> Result<Option<u32>, PromptFileError> {
    let max = token_limit(origin, "maxTokens", p.max_tokens)?;
    let max_completion = token_limit(origin, "maxCompletionTokens", p.max_completion_tokens)?;
    if let (Some(a), Some(b)) = (max, max_completion)
        && a != b
    {
        warnings.push(format!(
            "prompt file `{origin}`: `maxTokens: {a}` is ignored: `maxCompletionTokens: {b}` is the limit sent (as actions/ai-inference v2 does); give one of the two"
        ));
    }
    Ok(max_completion.or(max))
}

/// `responseFormat` with its `jsonSchema`, read as `actions/ai-inference` v2 reads them
/// (`src/helpers.ts` `buildResponseFormat`: a schema is sent only for `json_schema` with a
/// `jsonSchema`): `json_schema` without a schema, or a schema without `json_schema`, asks for no
/// schema, with a warning saying which line is ignored.
fn response_format(
    origin: &str,
    format: Option<&str>,
    schema: Option<serde_yaml::Value>,
    warnings: &mut Vec<String>,
) -> Result<ResponseFormat, PromptFileError> {
    match (format, schema) {
        (None | Some("text"), None) => Ok(ResponseFormat::Text),
        (None | Some("text"), Some(_)) => {
            warnings.push(format!(
                "prompt file `{origin}`: `jsonSchema` is ignored: `responseFormat` is not `json_schema` (as actions/ai-inference v2 does); the answer is free text"
            ));
            Ok(ResponseFormat::Text)
        }
        (Some("json_schema"), None) => {
            warnings.push(format!(
                "prompt file `{origin}`: `responseFormat: json_schema` has no `jsonSchema`: no schema is asked for (as actions/ai-inference v2 does); the answer is free text"
            ));
            Ok(ResponseFormat::Text)
        }
        (Some("json_schema"), Some(raw)) => {
            Ok(ResponseFormat::JsonSchema(json_schema(origin, raw)?))
        }
        (Some(other), _) => Err(bad(
            origin,
            format!("`responseFormat: {other}` is not `text` or `json_schema`"),
        )),
    }
}

/// Fill a parsed prompt file's placeholders. Every `@path` value is read through `resolve` (which
/// decides where paths may point and how much it reads); a name given twice is refused. The filled
/// messages together may hold at most `max_bytes` (`--max-input-bytes`): checked as they are
/// filled, so 200,000 placeholders of a 1 MiB value stop at the limit instead of allocating 200 GB.
pub(crate) fn render(
    mut prompt: PromptFile,
    origin: &str,
    vars: &[(String, VarValue)],
    max_bytes: u64,
    mut resolve: impl FnMut(&str, &Path) -> Result<String, PromptFileError>,
) -> Result<Rendered, PromptFileError> {
    let mut values = BTreeMap::new();
    for (name, value) in vars {
        let text = match value {
            VarValue::Text(t) => t.clone(),
            VarValue::File(path) => resolve(name, path)?,
        };
        if values.insert(name.clone(), text).is_some() {
            return Err(PromptFileError::new(
                format!("the variable `{name}` is given twice"),
                "give each `--var` name once",
            ));
        }
    }
    let mut missing = BTreeSet::new();
    let mut budget = max_bytes;
    for m in &mut prompt.messages {
        m.content = substitute(&m.content, &values, &mut missing, &mut budget).ok_or_else(|| {
            PromptFileError::new(
                format!(
                    "prompt file `{origin}`: filled with its variables, the prompt is larger than the limit of {max_bytes} bytes; it was not sent"
                ),
                "raise the limit with --max-input-bytes, or send less (nothing is ever cut silently)",
            )
        })?;
    }
    let mut warnings: Vec<String> = missing
        .iter()
        .map(|name| {
            format!("prompt file `{origin}`: no value for `{{{{{name}}}}}`: left as is (give it with `--var {name}=...`)")
        })
        .collect();
    if missing.len() >= MAX_MISSING_NAMES {
        warnings.push(format!(
            "prompt file `{origin}`: more placeholders may have no value: only the first {MAX_MISSING_NAMES} are named"
        ));
    }
    Ok(Rendered { prompt, warnings })
}

/// Read (at most [`MAX_PROMPT_FILE_BYTES`]), check and fill a prompt file. `path` is as the user
/// (or the job file) wrote it; `read` reads it and every `@path` variable (the caller's door:
/// [`crate::paths`]), with `what` naming the input; a variable's file and the filled prompt may
/// hold at most `max_bytes` (`--max-input-bytes`).
pub(crate) fn load(
    path: &str,
    vars: &[(String, VarValue)],
    max_bytes: u64,
    mut read: impl FnMut(&str, &str, u64) -> ReadResult,
) -> Result<Rendered, PromptFileError> {
    let text = read("prompt file", path, MAX_PROMPT_FILE_BYTES).map_err(|message| {
        let hint = if message.contains("larger than") {
            "a prompt file is a template: pass large inputs as variables (`--var name=@file`)"
        } else {
            crate::paths::read_hint(&message)
        };
        PromptFileError::new(message, hint)
    })?;
    let parsed = parse(&text, path)?;
    let mut rendered = render(parsed.prompt, path, vars, max_bytes, |name, file| {
        read(
            &format!("the file of `{name}`"),
            &file.to_string_lossy(),
            max_bytes,
        )
        .map_err(|message| {
            let hint = crate::paths::read_hint(&message);
            PromptFileError::new(message, hint)
        })
    })?;
    rendered.warnings.splice(0..0, parsed.warnings);
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads through the door used for command-line files, with the workspace at `/`.
    fn disk(what: &str, path: &str, max: u64) -> ReadResult {
        crate::paths::read_regular(Path::new(path), what, path, max)
    }

    #[test]
    fn the_triage_example_prompt_file_loads_fills_its_variables_and_asks_for_a_schema() {
        // The prompt file itself is valid, fills both variables and asks for the JSON schema.
        let rendered = load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/github-actions/prompts/triage.prompt.yml")
                .to_string_lossy(),
            &[
                ("title".into(), VarValue::Text("App crashes".into())),
                ("body".into(), VarValue::Text("on start".into())),
            ],
            1 << 20,
            disk,
        )
        .expect("the example prompt file loads");
        assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
        assert!(
            rendered.prompt.messages[1]
                .content
                .contains("Title: App crashes")
        );
        let ResponseFormat::JsonSchema(schema) = rendered.prompt.response_format else {
            panic!("the triage prompt asks for a JSON schema");
        };
        assert_eq!(
            schema.schema["properties"]["kind"]["enum"],
            json!(["bug", "feature", "question"])
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn prompt_file_names_end_in_prompt_yml_or_prompt_yaml() {
        let cases = [
            ("review.prompt.yml", true),
            ("dir/review.prompt.yaml", true),
            (".prompt.yml", true),
            ("review.yml", false),
            ("review.prompt.yml.txt", false),
            ("prompt.yml", false),
            ("review.PROMPT.YML", false),
            ("review.prompt.yml/", true),
            ("diff.txt", false),
        ];
        for (path, want) in cases {
            assert_eq!(is_prompt_file(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn substitution_fills_known_names_once_and_reports_the_rest() {
        let v = vars(&[("a", "1"), ("b.c", "X"), ("d-e_f", "y"), ("loop", "{{a}}")]);
        let cases: [(&str, &str, &[&str]); 11] = [
            ("plain", "plain", &[]),
            ("{{a}}", "1", &[]),
            ("x{{a}}y{{a}}", "x1y1", &[]),
            ("{{b.c}} {{d-e_f}}", "X y", &[]),
            ("{{ a }}", "{{ a }}", &[]),
            ("{{missing}}", "{{missing}}", &["missing"]),
            ("{{{a}}}", "{1}", &[]),
            ("{{a}", "{{a}", &[]),
            ("{{}}", "{{}}", &[]),
            ("{{loop}}", "{{a}}", &[]),
            ("é{{a}}ü{{x}}", "é1ü{{x}}", &["x"]),
        ];
        for (text, want, want_missing) in cases {
            let mut missing = BTreeSet::new();
            let got = substitute(text, &v, &mut missing, &mut 1000).expect("within the budget");
            assert_eq!(got, want, "{text}");
            let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
            assert_eq!(missing, want_missing, "{text}");
        }
    }

    #[test]
    fn var_specs_are_text_or_at_path() {
        let ok = [
            ("a=b", "a", VarValue::Text("b".into())),
            ("a=", "a", VarValue::Text(String::new())),
            ("a=b=c", "a", VarValue::Text("b=c".into())),
            ("diff=@pr.diff", "diff", VarValue::File("pr.diff".into())),
            ("x.y-z_1=@@", "x.y-z_1", VarValue::File("@".into())),
        ];
        for (spec, name, value) in ok {
            assert_eq!(parse_var(spec), Ok((name.to_owned(), value)), "{spec}");
        }
        for spec in ["novalue", "=x", "a b=c", "a=@", "{{a}}=1"] {
            assert!(parse_var(spec).is_err(), "{spec}");
        }
    }

    const FULL: &str = r#"
name: Triage
description: Labels an issue
model: openai/gpt-4o-mini
modelParameters:
  maxTokens: 300
  temperature: 0.2
  topP: 0.9
messages:
  - role: system
    content: You label issues.
  - role: user
    content: |
      Title: {{title}}
      Body: {{body}}
responseFormat: json_schema
jsonSchema: |-
  {"name": "triage", "strict": true,
   "schema": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}}
testData:
  - title: x
evaluators:
  - name: any
"#;

    #[test]
    fn a_full_prompt_file_parses_into_the_typed_struct() {
        let p = parse(FULL, "t.prompt.yml").expect("parses").prompt;
        assert_eq!(p.name.as_deref(), Some("Triage"));
        assert_eq!(p.model.as_deref(), Some("openai/gpt-4o-mini"));
        assert_eq!(
            p.parameters,
            ModelParameters {
                max_tokens: Some(300),
                temperature: Some(0.2),
                top_p: Some(0.9)
            }
        );
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[0].role, Role::System);
        assert_eq!(p.messages[1].content, "Title: {{title}}\nBody: {{body}}\n");
        let ResponseFormat::JsonSchema(schema) = &p.response_format else {
            panic!("json_schema expected");
        };
        assert_eq!(
            schema.response_format(),
            serde_json::json!({"type": "json_schema", "json_schema": {"name": "triage", "strict": true,
                "schema": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}}})
        );
    }

    #[test]
    fn parse_accepts_the_documented_variants() {
        let msgs = "messages:\n  - role: user\n    content: hi\n";
        let cases: [(String, ModelParameters, bool); 5] = [
            (msgs.to_owned(), ModelParameters::default(), false),
            (
                format!("{msgs}modelParameters:\n  maxCompletionTokens: 50\n"),
                ModelParameters {
                    max_tokens: Some(50),
                    ..Default::default()
                },
                false,
            ),
            (
                format!("{msgs}modelParameters:\n  maxTokens: 50\n  maxCompletionTokens: 50\n"),
                ModelParameters {
                    max_tokens: Some(50),
                    ..Default::default()
                },
                false,
            ),
            (
                format!("{msgs}responseFormat: text\n"),
                ModelParameters::default(),
                false,
            ),
            (
                format!(
                    "{msgs}responseFormat: json_schema\njsonSchema:\n  name: n\n  schema: {{type: object}}\n"
                ),
                ModelParameters::default(),
                true,
            ),
        ];
        for (text, params, is_schema) in cases {
            let p = parse(&text, "t")
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .prompt;
            assert_eq!(p.parameters, params, "{text}");
            assert_eq!(
                matches!(p.response_format, ResponseFormat::JsonSchema(_)),
                is_schema,
                "{text}"
            );
        }
    }

    /// What `actions/ai-inference` v2 accepts is accepted, doing what v2 does, with a warning
    /// naming the line that is ignored (v2 `src/main.ts` token limits, `src/helpers.ts`
    /// `buildResponseFormat`).
    #[test]
    fn parse_accepts_what_ai_inference_v2_accepts_with_a_warning() {
        let user = "messages:\n  - role: user\n    content: hi\n";
        let schema = "jsonSchema: '{\"name\": \"n\", \"schema\": {\"type\": \"object\"}}'\n";
        let cases: [(String, Option<u32>, bool, &str); 5] = [
            (
                "modelParameters:\n  maxTokens: 1\n  maxCompletionTokens: 2\n".to_owned(),
                Some(2),
                false,
                "`maxTokens: 1` is ignored: `maxCompletionTokens: 2`",
            ),
            (
                "responseFormat: json_schema\n".to_owned(),
                None,
                false,
                "has no `jsonSchema`",
            ),
            (schema.to_owned(), None, false, "`jsonSchema` is ignored"),
            (
                format!("responseFormat: text\n{schema}"),
                None,
                false,
                "`jsonSchema` is ignored",
            ),
            // v2 never parses a schema it does not send: not even one that is not JSON.
            (
                "responseFormat: text\njsonSchema: '{'\n".to_owned(),
                None,
                false,
                "`jsonSchema` is ignored",
            ),
        ];
        for (extra, max, is_schema, warning) in cases {
            let text = format!("{user}{extra}");
            let parsed = parse(&text, "t").unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.prompt.parameters.max_tokens, max, "{text}");
            assert_eq!(
                matches!(parsed.prompt.response_format, ResponseFormat::JsonSchema(_)),
                is_schema,
                "{text}"
            );
            assert_eq!(parsed.warnings.len(), 1, "{text}: {:?}", parsed.warnings);
            assert!(
                parsed.warnings[0].contains(warning),
                "{:?}",
                parsed.warnings
            );
            assert!(
                parsed.warnings[0].starts_with("prompt file `t`: "),
                "{:?}",
                parsed.warnings
            );
        }
        // The same limit twice, or a schema that is sent, warns about nothing.
        for extra in [
            "modelParameters:\n  maxTokens: 5\n  maxCompletionTokens: 5\n".to_owned(),
            format!("responseFormat: json_schema\n{schema}"),
        ] {
            let text = format!("{user}{extra}");
            assert_eq!(
                parse(&text, "t").expect("parses").warnings,
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn parse_refuses_what_cannot_be_sent_with_a_message_naming_it() {
        let user = "messages:\n  - role: user\n    content: hi\n";
        let cases = [
            ("", "no `messages`"),
            ("messages: []\n", "no `messages`"),
            ("model: x\n", "no `messages`"),
            (
                "messages:\n  - role: tool\n    content: x\n",
                "the role `tool`",
            ),
            ("messages:\n  - content: x\n", "has no `role`"),
            ("messages:\n  - role: user\n", "has no `content`"),
            (
                "messages:\n  - role: user\n    content: ''\n",
                "has no `content`",
            ),
            ("messages: [", "prompt file `t`"),
            ("- a\n- b\n", "prompt file `t`"),
        ];
        let with_user = [
            ("modelParameters:\n  maxTokens: 0\n", "out of range"),
            (
                "modelParameters:\n  maxTokens: 99999999999\n",
                "out of range",
            ),
            (
                "modelParameters:\n  temperature: .nan\n",
                "not a finite number",
            ),
            ("modelParameters:\n  topP: .inf\n", "not a finite number"),
            ("modelParameters:\n  temperature: hot\n", "prompt file `t`"),
            ("responseFormat: xml\n", "`responseFormat: xml`"),
            (
                "responseFormat: json_schema\njsonSchema: '{'\n",
                "not valid JSON",
            ),
            (
                "responseFormat: json_schema\njsonSchema: '{\"schema\": {}}'\n",
                "needs a `name`",
            ),
            (
                "responseFormat: json_schema\njsonSchema: '{\"name\": \"n\"}'\n",
                "needs a `schema`",
            ),
            (
                "responseFormat: json_schema\njsonSchema: '{\"name\": \"n\", \"strict\": 1, \"schema\": {}}'\n",
                "strict",
            ),
        ];
        let all = cases
            .iter()
            .map(|(t, w)| ((*t).to_owned(), *w))
            .chain(with_user.iter().map(|(t, w)| (format!("{user}{t}"), *w)));
        for (text, want) in all {
            let err = parse(&text, "t").expect_err(&text);
            assert!(err.message.contains(want), "{text:?}: {}", err.message);
            assert!(
                err.message.starts_with("prompt file `t`"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn render_reads_at_paths_through_the_resolver_and_warns_for_missing_names() {
        let p = parse(FULL, "t.prompt.yml").expect("parses").prompt;
        let given = [
            ("title".to_owned(), VarValue::Text("Crash {{body}}".into())),
            ("extra".to_owned(), VarValue::File("notes.txt".into())),
        ];
        let mut asked = Vec::new();
        let r = render(p, "t.prompt.yml", &given, 1000, |_, path| {
            asked.push(path.to_owned());
            Ok("from file".into())
        })
        .expect("renders");
        assert_eq!(asked, [PathBuf::from("notes.txt")]);
        assert_eq!(
            r.prompt.messages[1].content,
            "Title: Crash {{body}}\nBody: {{body}}\n"
        );
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].contains("no value for `{{body}}`"),
            "{}",
            r.warnings[0]
        );
        assert_eq!(r.prompt.messages[0].content, "You label issues.");
    }

    #[test]
    fn render_passes_on_the_resolvers_refusal_and_refuses_a_name_given_twice() {
        let p = parse(FULL, "t").expect("parses").prompt;
        let outside = [("body".to_owned(), VarValue::File("../../etc/passwd".into()))];
        let err = render(p.clone(), "t", &outside, 1000, |_, _| {
            Err(PromptFileError::new(
                "`../../etc/passwd` is outside the project",
                "",
            ))
        })
        .expect_err("refused");
        assert!(err.message.contains("outside"), "{}", err.message);

        let twice = [
            ("body".to_owned(), VarValue::Text("a".into())),
            ("body".to_owned(), VarValue::Text("b".into())),
        ];
        let err = render(p, "t", &twice, 1000, |_, _| Ok(String::new())).expect_err("twice");
        assert!(err.message.contains("given twice"), "{}", err.message);
    }

    #[test]
    fn load_caps_the_file_size_and_reads_a_file_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.prompt.yml");
        let mut text = String::from("messages:\n  - role: user\n    content: |\n");
        while text.len() as u64 <= MAX_PROMPT_FILE_BYTES {
            text.push_str("      filler filler filler filler filler filler filler filler\n");
        }
        std::fs::write(&big, &text).expect("write");
        let err = load(&big.to_string_lossy(), &[], 1 << 30, disk).expect_err("too big");
        assert!(err.message.contains("larger than"), "{}", err.message);
        assert!(err.hint.contains("--var name=@file"), "{}", err.hint);

        let ok = dir.path().join("ok.prompt.yml");
        std::fs::write(&ok, "messages:\n  - role: user\n    content: Hi {{who}}\n").expect("write");
        let r = load(
            &ok.to_string_lossy(),
            &[("who".into(), VarValue::Text("there".into()))],
            100,
            disk,
        )
        .expect("loads");
        assert_eq!(r.prompt.messages[0].content, "Hi there");
        assert!(r.warnings.is_empty());

        let err = load(
            &dir.path().join("none.prompt.yml").to_string_lossy(),
            &[],
            100,
            disk,
        )
        .expect_err("missing");
        assert!(err.message.starts_with("prompt file `"), "{}", err.message);

        // An oversize variable file is a limit to raise, not a template to split.
        let data = dir.path().join("data.txt");
        std::fs::write(&data, "x".repeat(200)).expect("write");
        let err = load(
            &ok.to_string_lossy(),
            &[("who".into(), VarValue::File(data))],
            100,
            disk,
        )
        .expect_err("too big");
        assert!(
            err.message.contains("larger than 100 bytes"),
            "{}",
            err.message
        );
        assert!(err.hint.contains("--max-input-bytes"), "{}", err.hint);
        assert!(!err.hint.contains("--var name=@file"), "{}", err.hint);
    }

    #[test]
    fn the_filled_prompt_is_bounded_as_it_is_filled() {
        let many = "{{d}}".repeat(200_000);
        let p = parse(
            &format!("messages:\n  - role: user\n    content: \"{many}\"\n"),
            "t",
        )
        .expect("parses")
        .prompt;
        let value = "v".repeat(1024 * 1024);
        let started = std::time::Instant::now();
        let err = render(
            p.clone(),
            "t",
            &[("d".into(), VarValue::Text(value))],
            8 * 1024 * 1024,
            |_, _| Ok(String::new()),
        )
        .expect_err("over the limit");
        assert!(
            err.message
                .contains("larger than the limit of 8388608 bytes"),
            "{}",
            err.message
        );
        assert!(err.hint.contains("--max-input-bytes"), "{}", err.hint);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The limit counts the whole prompt, every message.
        let two = parse(
            "messages:\n  - role: system\n    content: 12345\n  - role: user\n    content: '{{a}}'\n",
            "t",
        )
        .expect("parses").prompt;
        let fill = |n: u64| {
            render(
                two.clone(),
                "t",
                &[("a".into(), VarValue::Text("abcde".into()))],
                n,
                |_, _| Ok(String::new()),
            )
        };
        assert!(fill(10).is_ok());
        assert!(fill(9).is_err());
    }

    #[test]
    fn missing_names_are_warned_once_each_and_capped() {
        use std::fmt::Write as _;
        let text = (0..50_000).fold(String::new(), |mut text, i| {
            let _ = write!(text, "{{{{n{i}}}}} {{{{n{i}}}}} ");
            text
        });
        let p = parse(
            &format!("messages:\n  - role: user\n    content: \"{text}\"\n"),
            "t",
        )
        .expect("parses")
        .prompt;
        let r = render(p, "t", &[], 1 << 30, |_, _| Ok(String::new())).expect("renders");
        assert_eq!(r.warnings.len(), MAX_MISSING_NAMES + 1, "{:?}", r.warnings);
        assert!(r.warnings[MAX_MISSING_NAMES].contains("only the first 10"));
    }

    #[test]
    fn a_file_that_is_not_a_map_is_never_quoted() {
        let secret = "OPENAI_API_KEY=sk-live-0123456789";
        for text in [
            secret.to_owned(),
            format!("\"{secret}\"\n"),
            format!("messages: \"{secret}\"\n"),
            format!("messages:\n  - role: user\n    content: [\"{secret}\"]\n"),
            format!("{secret}: [\n"),
            format!("- {secret}\n"),
        ] {
            let err = parse(&text, "t").expect_err(&text);
            assert!(!err.message.contains("sk-live"), "{}", err.message);
            assert!(
                err.message.starts_with("prompt file `t`"),
                "{}",
                err.message
            );
        }
    }
}
