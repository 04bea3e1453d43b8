//! Job files (YAML, JSON, JSON Lines, `OpenAI` Batch input): reading, validating, and turning each job into a request body.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::client::params::{ExtraHeader, merge_headers};
use crate::error::Error;
use crate::paths::{JobPaths, PathRules};
use crate::prompt_file::{self, ResponseFormat, VarValue};
use crate::request;
use crate::schema::OutputSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobFormat {
    Yaml,
    Json,
    Jsonl,
}

/// Values that apply to every job unless the job says otherwise. Explicit flags (`fields`,
/// `system`) beat a file's `defaults`; `model` is the configured fallback below both.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobDefaults {
    /// The configured model (flag, environment, `.env` or default).
    pub(crate) model: String,
    /// `--system-prompt`, `--temperature`, `--max-tokens` from the command line.
    pub(crate) system: Option<String>,
    pub(crate) fields: Map<String, Value>,
    /// The largest prompt file accepted.
    pub(crate) max_input_bytes: u64,
    /// `--json-schema` (beats the file's `defaults.json_schema`, loses to a job's own).
    pub(crate) schema: Option<Arc<OutputSchema>>,
    /// `--fallback-model` (beats the file's `defaults.fallback_models`, loses to a job's own).
    pub(crate) fallback_models: Vec<String>,
    /// `--extra-body` (key by key: beats the file's `defaults.extra_body`, loses to a job's own).
    pub(crate) extra_body: Map<String, Value>,
    /// `-H/--header` (by name: beats the file's `defaults.headers`, loses to a job's own).
    pub(crate) headers: Vec<ExtraHeader>,
}

/// The request-shaping flags of a command line, as a batch applies them to every job.
pub(crate) struct Flags<'a> {
    /// The configured model, and whether it came from `-m`/`--model` (then it beats a file's
    /// `defaults`).
    pub(crate) model: &'a str,
    pub(crate) model_from_flag: bool,
    /// Request fields the flags set (`temperature`, `max_tokens`, `top_p`, ...).
    pub(crate) fields: Map<String, Value>,
    pub(crate) system: Option<&'a str>,
    pub(crate) max_input_bytes: u64,
}

impl JobDefaults {
    /// Flags beat a job file's `defaults`; a job's own fields beat both. The same rule for a
    /// local batch and a provider batch.
    pub(crate) fn from_flags(flags: Flags<'_>) -> Self {
        let mut fields = Map::new();
        if flags.model_from_flag {
            fields.insert("model".into(), json!(flags.model));
        }
        fields.extend(flags.fields);
        Self {
            model: flags.model.to_owned(),
            system: flags.system.map(str::to_owned),
            fields,
            max_input_bytes: flags.max_input_bytes,
            schema: None,
            fallback_models: Vec::new(),
            extra_body: Map::new(),
            headers: Vec::new(),
        }
    }
}

/// A job ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) index: usize,
    pub(crate) model: String,
    pub(crate) body: Value,
    /// The schema its answer must match, if any.
    pub(crate) schema: Option<Arc<OutputSchema>>,
    /// Models to try when `model` has no capacity.
    pub(crate) fallback_models: Vec<String>,
    /// Headers of this job's request (the flags' and the file's, merged).
    pub(crate) headers: Vec<ExtraHeader>,
    /// `max_tokens` in `body` is qwen's own limit (false for a Batch API body, sent as written).
    pub(crate) own_token_limit: bool,
}

/// Where in the file a job stands, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Position {
    Line(usize),
    Index(usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Index(i) => write!(f, "job {i}"),
        }
    }
}

/// One job as read from the file, before it is checked.
#[derive(Debug)]
pub(crate) struct RawJob {
    pub(crate) index: usize,
    pub(crate) position: Position,
    pub(crate) value: Result<Value, String>,
}

/// An opened job file. Standard input is spooled to a temporary file so that it can be read twice
/// (once to validate everything, once to run) without being held in memory.
pub(crate) struct JobFile {
    pub(crate) name: String,
    pub(crate) format: JobFormat,
    path: PathBuf,
    /// Where the paths the file names may lead (the one door: [`JobPaths`]).
    paths: JobPaths,
    file_defaults: Map<String, Value>,
    /// The file's `defaults.json_schema`, checked once when the file is opened.
    default_schema: Option<Arc<OutputSchema>>,
    /// The file's `defaults.fallback_models`.
    default_fallbacks: Option<Vec<String>>,
    /// The file's `defaults.extra_body` and `defaults.headers`, parsed once; each job merges
    /// its own over them.
    default_extra_body: Map<String, Value>,
    default_headers: Vec<ExtraHeader>,
    /// The prompt-file warnings printed already (each once per job file).
    warned: std::sync::Mutex<std::collections::HashSet<String>>,
    _spool: Option<tempfile::TempPath>,
}

/// A summary of the validation pass.
#[derive(Debug, Default)]
pub(crate) struct Validation {
    /// Jobs in the file.
    pub(crate) total: usize,
    /// Jobs the `in_scope` test kept (the shard).
    pub(crate) in_scope: u64,
    /// Of those, the jobs the `pending` test kept (not already done).
    pub(crate) pending: u64,
    /// The values of the credential-looking headers the job file adds (not the `-H` flags'):
    /// masked and scrubbed like the key.
    pub(crate) secret_headers: std::collections::BTreeSet<String>,
}

const MAX_REPORTED_ERRORS: usize = 20;

/// At most this many distinct prompt-file warnings are printed for one job file.
const MAX_WARNINGS: usize = 50;

/// The largest JSON job document read whole, and the longest JSON Lines line (a JSON Lines file is
/// streamed, whatever its size).
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The largest YAML job document: parsed whole into a tree that costs about 60 times its size (250
/// for nested collections), so a YAML file is for what people write by hand.
pub(crate) const MAX_YAML_BYTES: u64 = 8 * 1024 * 1024;

/// Keys that name or make up one job, and so have no meaning in a file's `defaults`.
const PER_JOB_ONLY: [&str; 7] = [
    "id",
    "custom_id",
    "prompt",
    "prompt_file",
    "vars",
    "messages",
    "body",
];

impl JobFile {
    /// Open `spec` (`-`: standard input). `rules`: where the paths the file names may lead (see
    /// [`PathRules`]: inside the file's directory unless `--allow-outside-paths`, never an output).
    /// `spooled`: standard input already copied by [`spool_stdin`] (for `-`).
    pub(crate) fn open(
        spec: &str,
        cwd: &Path,
        rules: PathRules,
        spooled: Option<tempfile::TempPath>,
    ) -> Result<Self, Error> {
        if spec == "-" {
            let path = match spooled {
                Some(path) => path,
                None => spool_stdin()?,
            };
            let bare = Self::bare("<stdin>", JobFormat::Jsonl, path.to_path_buf(), cwd, rules);
            return Ok(Self {
                _spool: Some(path),
                ..bare
            });
        }
        // The user named the file; a link in the workspace may not lead it out (the one door for
        // the command line's files).
        crate::paths::Workspace::new(cwd, rules.allow_outside)
            .follow(spec)
            .map_err(|e| Error::input(format!("--jobs: {e}"), "nothing was sent"))?;
        let path = cwd.join(spec);
        let format = checked_format(spec, &path)?;
        let base_dir = path.parent().map_or_else(|| cwd.to_owned(), Path::to_owned);
        let mut file = Self::bare(spec, format, path, &base_dir, rules);
        if format != JobFormat::Jsonl
            && let Value::Object(d) = file.document()?.0
        {
            if let Some(key) = d.keys().find(|k| PER_JOB_ONLY.contains(&k.as_str())) {
                return Err(Error::input(
                    format!("{spec}: `defaults` cannot hold `{key}`: it belongs to each job"),
                    "move it into the jobs; nothing was sent",
                ));
            }
            file.file_defaults = d;
            file.take_structured_defaults()?;
        }
        Ok(file)
    }

    /// A job file with no `defaults` read yet.
    fn bare(name: &str, format: JobFormat, path: PathBuf, dir: &Path, rules: PathRules) -> Self {
        Self {
            name: name.to_owned(),
            format,
            path,
            paths: JobPaths::new(dir.to_owned(), rules),
            file_defaults: Map::new(),
            default_schema: None,
            default_fallbacks: None,
            default_extra_body: Map::new(),
            default_headers: Vec::new(),
            warned: std::sync::Mutex::default(),
            _spool: None,
        }
    }

    /// Move `json_schema`, `fallback_models`, `extra_body` and `headers` out of the file's
    /// `defaults` (they are not request fields) and parse them now: a bad one is an input error
    /// before anything is sent.
    fn take_structured_defaults(&mut self) -> Result<(), Error> {
        let bad = |what: &str, why: String| {
            Error::input(
                format!("{}: `defaults.{what}`: {why}", self.name),
                "fix the file; nothing was sent",
            )
        };
        if let Some(value) = self.file_defaults.remove("json_schema") {
            let schema = job_schema(&value, &self.paths).map_err(|e| bad("json_schema", e))?;
            self.default_schema = Some(schema);
        }
        if let Some(value) = self.file_defaults.remove("extra_body") {
            self.default_extra_body = extra_body_of(&value).map_err(|e| bad("extra_body", e))?;
        }
        if let Some(value) = self.file_defaults.remove("headers") {
            self.default_headers = headers_of(&value).map_err(|e| bad("headers", e))?;
        }
        if let Some(value) = self.file_defaults.remove("fallback_models") {
            self.default_fallbacks =
                Some(fallback_list(&value).map_err(|e| bad("fallback_models", e))?);
        }
        Ok(())
    }

    /// The schema and fallback models of a job that names none: the flag's, else the file's defaults.
    fn structured_defaults(
        &self,
        defaults: &JobDefaults,
    ) -> (Option<Arc<OutputSchema>>, Vec<String>) {
        let schema = defaults.schema.clone().or(self.default_schema.clone());
        let fallbacks = if defaults.fallback_models.is_empty() {
            self.default_fallbacks.clone().unwrap_or_default()
        } else {
            defaults.fallback_models.clone()
        };
        (schema, fallbacks)
    }

    /// A YAML or JSON document: (defaults, jobs).
    fn document(&self) -> Result<(Value, Vec<Value>), Error> {
        let text = crate::paths::read_regular(
            &self.path,
            "job file",
            &self.name,
            if self.format == JobFormat::Yaml {
                MAX_YAML_BYTES
            } else {
                MAX_DOCUMENT_BYTES
            },
        )
        .map_err(|e| {
            Error::input(
                e,
                "a YAML or JSON job file is read whole: for more jobs, use JSON Lines (streamed)",
            )
        })?;
        // A UTF-8 byte order mark (Windows editors write one) is not part of the document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let doc: Value = match self.format {
            JobFormat::Yaml => {
                let yaml: serde_yaml::Value = crate::yaml::from_str(text).map_err(|e| {
                    Error::input(
                        format!("{}: invalid YAML: {e}", self.name),
                        "fix the file; nothing was sent",
                    )
                })?;
                // JSON has no NaN or infinity: converted, they would be sent as `null`.
                if has_non_finite(&yaml) {
                    return Err(Error::input(
                        format!("{}: a number is NaN or infinite (.nan, .inf)", self.name),
                        "use a finite number; nothing was sent",
                    ));
                }
                serde_json::to_value(yaml)
                    .map_err(|e| Error::input(format!("{}: invalid YAML: {e}", self.name), ""))?
            }
            _ => serde_json::from_str(text).map_err(|e| {
                Error::input(
                    format!("{}:{}: invalid JSON: {e}", self.name, e.line()),
                    "fix the file; nothing was sent",
                )
            })?,
        };
        let mut doc = doc;
        if self.format == JobFormat::Json {
            exact_document_ids(&mut doc, text);
        }
        match doc {
            Value::Array(jobs) => Ok((Value::Null, jobs)),
            Value::Object(mut map) => {
                let Some(Value::Array(jobs)) = map.remove("jobs") else {
                    return Err(Error::input(
                        format!(
                            "{}: expected a list of jobs or an object with a `jobs` list",
                            self.name
                        ),
                        "see fixtures/ for examples; nothing was sent",
                    ));
                };
                let defaults = map.remove("defaults").unwrap_or(Value::Null);
                if !(defaults.is_object() || defaults.is_null()) {
                    return Err(Error::input(
                        format!("{}: `defaults` must be a mapping", self.name),
                        "",
                    ));
                }
                Ok((defaults, jobs))
            }
            _ => Err(Error::input(
                format!(
                    "{}: expected a list of jobs or an object with a `jobs` list",
                    self.name
                ),
                "see fixtures/ for examples; nothing was sent",
            )),
        }
    }

    /// Every job in file order. JSON Lines are streamed; YAML and JSON documents are parsed whole.
    pub(crate) fn jobs(&self) -> Result<Box<dyn Iterator<Item = RawJob> + Send>, Error> {
        if self.format == JobFormat::Jsonl {
            let file = File::open(&self.path)
                .map_err(|e| Error::input(format!("cannot read `{}`: {e}", self.name), ""))?;
            Ok(Box::new(JsonLines {
                reader: BufReader::with_capacity(64 * 1024, file),
                line: 0,
                index: 0,
                buf: String::new(),
            }))
        } else {
            let (_, jobs) = self.document()?;
            Ok(Box::new(jobs.into_iter().enumerate().map(
                |(index, value)| RawJob {
                    index,
                    position: Position::Index(index),
                    value: Ok(value),
                },
            )))
        }
    }

    /// Check every job before anything is sent: syntax, prompt or messages, `prompt_file`, duplicate ids.
    /// `in_scope(index)` and `pending(id)` count the jobs this run is for.
    pub(crate) fn validate(
        &self,
        defaults: &JobDefaults,
        in_scope: impl Fn(usize) -> bool,
        pending: impl Fn(&str) -> bool,
    ) -> Result<Validation, Error> {
        let mut ids = crate::idset::IdSet::new();
        let mut errors = Vec::new();
        let mut counts = Validation::default();
        for raw in self.jobs()? {
            counts.total += 1;
            match self.build(raw.value, raw.index, defaults) {
                Ok(job) => {
                    // The flags' own `-H` values are masked and scrubbed already (`load_config`,
                    // `ChatClient::new`): only what the file adds is collected.
                    counts.secret_headers.extend(
                        job.headers
                            .iter()
                            .filter(|h| {
                                h.is_secret()
                                    && !defaults.headers.iter().any(|d| d.value == h.value)
                            })
                            .map(|h| h.value.clone()),
                    );
                    if in_scope(job.index) {
                        counts.in_scope += 1;
                        counts.pending += u64::from(pending(&job.id));
                    }
                    if !ids.insert(&job.id) {
                        errors.push(format!(
                            "{}: {}: duplicate id `{}`",
                            self.name, raw.position, job.id
                        ));
                    }
                }
                Err(reason) => errors.push(format!("{}: {}: {reason}", self.name, raw.position)),
            }
            if errors.len() > MAX_REPORTED_ERRORS {
                break;
            }
        }
        if errors.is_empty() {
            return Ok(counts);
        }
        let mut message = format!(
            "the job file is invalid; nothing was sent:\n  {}",
            errors[..errors.len().min(MAX_REPORTED_ERRORS)].join("\n  ")
        );
        if errors.len() > MAX_REPORTED_ERRORS {
            message.push_str("\n  … (more errors not shown)");
        }
        Err(Error::input(message, "fix the lines above and run again"))
    }

    /// Turn one job into a request body (reading its `prompt_file`, if any).
    pub(crate) fn build(
        &self,
        value: Result<Value, String>,
        index: usize,
        defaults: &JobDefaults,
    ) -> Result<Job, String> {
        let Value::Object(job) = value? else {
            return Err("a job must be an object".to_owned());
        };
        let (schema_default, fallback_default) = self.structured_defaults(defaults);
        if let (Some(custom_id), Some(body)) = (job.get("custom_id"), job.get("body")) {
            return batch_api_job(&job, custom_id, body, index, defaults).map(|j| Job {
                schema: schema_default,
                fallback_models: fallback_default,
                headers: defaults.headers.clone(),
                ..j
            });
        }
        let mut job = job;
        let (job_extra_body, headers) = self.extra_body_and_headers(&mut job, defaults)?;
        let vars = match job.remove("vars") {
            None => Vec::new(),
            Some(v) => self.vars_of(&v)?,
        };
        let mut schema = schema_default;
        let mut fallback_models = fallback_default;
        // The sources of the request's fields, for `request::compose`'s one precedence rule.
        let mut fields = request::Fields {
            file_defaults: self.file_defaults.clone(),
            flags: defaults.fields.clone(),
            ..request::Fields::default()
        };
        let file_system = fields.file_defaults.remove("system");
        let from_prompt_file =
            self.job_prompt_file(&job, &vars, defaults, &mut fields.prompt_file, &mut schema)?;
        let mut system = defaults.system.clone().or(match file_system {
            Some(Value::String(s)) => Some(s),
            _ => None,
        });
        let spec = JobSpec::read(job)?;
        fields.job = spec.rest;
        if spec.system.is_some() {
            system = spec.system;
        }
        let prompt = match spec.prompt_file {
            Some(rel) if from_prompt_file.is_none() => {
                Some(self.prompt_file(&rel, defaults.max_input_bytes)?)
            }
            _ => spec.prompt,
        };
        if let Some(value) = spec.json_schema {
            schema =
                Some(job_schema(&value, &self.paths).map_err(|e| format!("`json_schema`: {e}"))?);
        }
        if let Some(value) = spec.fallback_models {
            fallback_models =
                fallback_list(&value).map_err(|e| format!("`fallback_models`: {e}"))?;
        }
        let id = spec.id;
        let messages = spec.messages;
        let list = message_list(prompt, messages, system, from_prompt_file.as_ref())?;
        let extra = request::ExtraBodies {
            file_defaults: &self.default_extra_body,
            flags: &defaults.extra_body,
            job: &job_extra_body,
        };
        let (model, body) = request::compose(&defaults.model, list, fields, extra)?;
        Ok(Job {
            id: id.unwrap_or_else(|| default_id(index)),
            index,
            model,
            body,
            schema,
            fallback_models,
            headers,
            own_token_limit: true,
        })
    }

    /// A job's own `extra_body` (taken out of `job`; `request::compose` merges it over the flags'
    /// and the file's `defaults`), and its `headers` merged by name over the file's `defaults`
    /// and the flags'.
    fn extra_body_and_headers(
        &self,
        job: &mut Map<String, Value>,
        defaults: &JobDefaults,
    ) -> Result<(Map<String, Value>, Vec<ExtraHeader>), String> {
        let extra_body = match job.remove("extra_body") {
            Some(v) => extra_body_of(&v).map_err(|e| format!("`extra_body`: {e}"))?,
            None => Map::new(),
        };
        let mut headers = merge_headers(&self.default_headers, &defaults.headers);
        if let Some(v) = job.remove("headers") {
            headers = merge_headers(
                &headers,
                &headers_of(&v).map_err(|e| format!("`headers`: {e}"))?,
            );
        }
        Ok((extra_body, headers))
    }

    /// A job's `.prompt.yml` `prompt_file`, if it names one: its model and parameters go into
    /// `fields` (the prompt-file source of `request::compose`), its `jsonSchema` into `schema`
    /// unless `--json-schema` was given.
    fn job_prompt_file(
        &self,
        job: &Map<String, Value>,
        vars: &[(String, VarValue)],
        defaults: &JobDefaults,
        fields: &mut Map<String, Value>,
        schema: &mut Option<Arc<OutputSchema>>,
    ) -> Result<Option<prompt_file::PromptFile>, String> {
        let Some(Value::String(rel)) = job.get("prompt_file") else {
            if vars.is_empty() {
                return Ok(None);
            }
            return Err(
                "`vars` fill a `.prompt.yml` prompt file's placeholders: give `prompt_file: NAME.prompt.yml`"
                    .to_owned(),
            );
        };
        if !prompt_file::is_prompt_file(Path::new(rel)) {
            if vars.is_empty() {
                return Ok(None);
            }
            return Err(format!(
                "`vars` fill a `.prompt.yml` prompt file's placeholders; `{rel}` is read as plain text"
            ));
        }
        let file = self.prompt_file_yml(rel, vars, defaults.max_input_bytes)?;
        fields.extend(request::prompt_file_fields(&file.parameters));
        if let Some(model) = &file.model {
            fields.insert("model".into(), json!(model));
        }
        if let ResponseFormat::JsonSchema(spec) = &file.response_format
            && defaults.schema.is_none()
        {
            *schema =
                Some(Arc::new(spec.compile().map_err(|e| {
                    format!("prompt_file `{rel}`: `jsonSchema`: {e}")
                })?));
        }
        Ok(Some(file))
    }

    /// A job's `vars`: a map of names to text, or to `@path` (a file inside the job file's tree).
    fn vars_of(&self, value: &Value) -> Result<Vec<(String, VarValue)>, String> {
        let Value::Object(map) = value else {
            return Err("`vars` must be a map of names to values".to_owned());
        };
        map.iter()
            .map(|(name, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(format!("`vars.{name}` must be text")),
                };
                let (name, value) = prompt_file::parse_var(&format!("{name}={text}"))
                    .map_err(|e| format!("`vars`: {}", e.message))?;
                if let VarValue::File(path) = &value {
                    let rel = path.to_string_lossy();
                    self.paths
                        .resolve(&rel)
                        .map_err(|e| format!("`vars.{name}`: {e}"))?;
                }
                Ok((name, value))
            })
            .collect()
    }

    /// A `.prompt.yml` `prompt_file`, confined to the job file's tree, its `@path` variables too.
    fn prompt_file_yml(
        &self,
        rel: &str,
        vars: &[(String, VarValue)],
        max: u64,
    ) -> Result<prompt_file::PromptFile, String> {
        // The file and its variables' `@path`s go through the same door as every other path of a
        // job file.
        let rendered = prompt_file::load(rel, vars, max, |what, path, cap| {
            let what = if what == "prompt file" {
                "prompt_file".to_owned()
            } else {
                format!("`vars`: {what}")
            };
            self.paths.read(&what, path, cap)
        })
        .map_err(|e| e.message)?;
        // Once per warning for the whole file (every job and both passes would repeat it).
        if let Ok(mut warned) = self.warned.lock() {
            for warning in rendered.warnings {
                if warned.len() < MAX_WARNINGS && warned.insert(warning.clone()) {
                    crate::diag::warn(&format!("warning: job file: {warning}"));
                    if warned.len() == MAX_WARNINGS {
                        crate::diag::warn(&format!(
                            "warning: job file: {MAX_WARNINGS} prompt-file warnings shown; the others are not"
                        ));
                    }
                }
            }
        }
        Ok(rendered.prompt)
    }

    fn prompt_file(&self, rel: &str, max: u64) -> Result<String, String> {
        let text = self.paths.read("prompt_file", rel, max)?;
        if text.trim().is_empty() {
            return Err(format!("prompt_file `{rel}` is empty"));
        }
        Ok(text)
    }
}

/// A job's known fields, typed and checked, and the rest (request fields for `request::compose`).
#[derive(Debug, Default)]
struct JobSpec {
    id: Option<String>,
    prompt: Option<String>,
    prompt_file: Option<String>,
    messages: Option<Vec<Value>>,
    system: Option<String>,
    json_schema: Option<Value>,
    fallback_models: Option<Value>,
    rest: Map<String, Value>,
}

impl JobSpec {
    fn read(job: Map<String, Value>) -> Result<Self, String> {
        let mut spec = Self::default();
        for (key, value) in job {
            match key.as_str() {
                // `custom_id` (the Batch API's name) is an alias; `id` wins when both are given.
                "id" | "custom_id" => {
                    let given = id_text(&key, &value)?;
                    if key == "id" || spec.id.is_none() {
                        spec.id = Some(given);
                    }
                }
                "prompt" => match value {
                    Value::String(s) if !s.trim().is_empty() => spec.prompt = Some(s),
                    _ => return Err("`prompt` must be a non-empty string".to_owned()),
                },
                "prompt_file" => {
                    let Value::String(rel) = value else {
                        return Err("`prompt_file` must be a path".to_owned());
                    };
                    spec.prompt_file = Some(rel);
                }
                "messages" => match value {
                    Value::Array(list) if !list.is_empty() => spec.messages = Some(list),
                    _ => return Err("`messages` must be a non-empty list".to_owned()),
                },
                "system" => match value {
                    Value::String(s) => spec.system = Some(s),
                    _ => return Err("`system` must be a string".to_owned()),
                },
                "json_schema" => spec.json_schema = Some(value),
                "fallback_models" => spec.fallback_models = Some(value),
                _ => {
                    spec.rest.insert(key, value);
                }
            }
        }
        Ok(spec)
    }
}

/// The format a job file's name gives, once it is known to be a regular file (exit 42 otherwise:
/// a directory, a FIFO or a device is never read).
fn checked_format(spec: &str, path: &Path) -> Result<JobFormat, Error> {
    let format = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yaml" | "yml") => JobFormat::Yaml,
        Some("json") => JobFormat::Json,
        Some("jsonl" | "ndjson") => JobFormat::Jsonl,
        _ => {
            return Err(Error::input(
                format!("`{spec}`: unknown job file type"),
                "name the file .yaml, .yml, .json or .jsonl, or pipe JSON Lines with `--jobs -`",
            ));
        }
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(Error::input(
                format!(
                    "job file `{spec}` is not a regular file (a directory, a FIFO or a device is never read)"
                ),
                "give a file; JSON Lines can be piped with `--jobs -`",
            ));
        }
        Err(_) => {
            return Err(Error::input(
                format!("job file `{spec}` not found"),
                "check the path given to --jobs",
            ));
        }
    }
    Ok(format)
}

/// Copy standard input (a `--jobs -` list) to a temporary file, so that it can be read twice.
pub(crate) fn spool_stdin() -> Result<tempfile::TempPath, Error> {
    let mut spool = tempfile::NamedTempFile::new()
        .map_err(|e| Error::input(format!("cannot spool standard input: {e}"), ""))?;
    std::io::copy(&mut std::io::stdin().lock(), &mut spool).map_err(|e| {
        Error::input(
            format!("cannot read the job list from standard input: {e}"),
            "",
        )
    })?;
    Ok(spool.into_temp_path())
}

/// A `json_schema` value of a job or of `defaults`, loaded (a path goes through `paths`) and checked.
fn job_schema(value: &Value, paths: &JobPaths) -> Result<Arc<OutputSchema>, String> {
    let schema = crate::schema::load_job_value(value, paths)?;
    OutputSchema::compile(schema).map(Arc::new)
}

/// A job's messages: from its `.prompt.yml` prompt file, its `prompt` (or plain `prompt_file`),
/// or its `messages`; the `system` message first.
fn message_list(
    prompt: Option<String>,
    messages: Option<Vec<Value>>,
    system: Option<String>,
    prompt_file: Option<&prompt_file::PromptFile>,
) -> Result<Vec<Value>, String> {
    if let Some(file) = prompt_file {
        if prompt.is_some() || messages.is_some() {
            return Err(
                "a job with a `.prompt.yml` `prompt_file` takes its messages from it: give no `prompt` or `messages`"
                    .to_owned(),
            );
        }
        return Ok(request::prompt_file_messages(file, system.as_deref()));
    }
    let mut list = match (prompt, messages) {
        (Some(_), Some(_)) => {
            return Err(
                "a job has either `prompt` (or `prompt_file`) or `messages`, not both".to_owned(),
            );
        }
        (None, None) => return Err("the job has neither `prompt` nor `messages`".to_owned()),
        (Some(p), None) => vec![json!({"role": "user", "content": p})],
        (None, Some(m)) => m,
    };
    if let Some(system) = system {
        list.insert(0, json!({"role": "system", "content": system}));
    }
    Ok(list)
}

/// An `extra_body` value: a JSON object that leaves `model`, `messages` and `stream` alone.
fn extra_body_of(value: &Value) -> Result<Map<String, Value>, String> {
    request::check_extra_body(value.clone())
}

/// A `headers` value: a map of header names to text values, each checked like `-H`.
fn headers_of(value: &Value) -> Result<Vec<ExtraHeader>, String> {
    let Value::Object(map) = value else {
        return Err("must be a map of header names to values".to_owned());
    };
    map.iter()
        .map(|(name, v)| match v {
            Value::String(s) => ExtraHeader::new(name, s),
            Value::Number(n) => ExtraHeader::new(name, &n.to_string()),
            _ => Err(format!("the value of `{name}` must be text")),
        })
        .collect()
}

/// A `fallback_models` value: a list of at most 3 model names.
fn fallback_list(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err("must be a list of model names".to_owned());
    };
    let models = items
        .iter()
        .map(|m| m.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or("must be a list of model names")?;
    crate::fallback::check_list(&models)?;
    Ok(models)
}

/// The id of a job without one: stable from its position, so `--resume` finds it again.
pub(crate) fn default_id(index: usize) -> String {
    format!("job-{index}")
}

/// The id a raw job declares (`id` or `custom_id`), or its default; for lines that fail to build.
/// The same rules as `build`: a Batch API line (`custom_id` with `body`) is named by `custom_id`,
/// any other job by `id`, then `custom_id`.
pub(crate) fn declared_id(value: &Result<Value, String>, index: usize) -> String {
    let declared = value.as_ref().ok().and_then(|v| {
        if v.get("body").is_some() {
            v.get("custom_id")
        } else {
            v.get("id").or_else(|| v.get("custom_id"))
        }
    });
    match declared {
        Some(v) => id_text("id", v).unwrap_or_else(|_| default_id(index)),
        None => default_id(index),
    }
}

/// A job's id as text. A number is kept as the exact text written in the file (JSON and JSON
/// Lines: see [`exact_ids`], so `1.0` and `1` stay two ids); a YAML number, whose text the parser
/// does not keep, must be a whole number (else: quote it). Empty ids are refused.
fn id_text(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Value::Number(n) => Err(format!(
            "`{key}` {n} is not a whole number: quote it so that it is kept exactly"
        )),
        _ => Err(format!("`{key}` must be a non-empty string or a number")),
    }
}

/// Whether a YAML value holds a NaN or infinite number anywhere.
fn has_non_finite(value: &serde_yaml::Value) -> bool {
    match value {
        serde_yaml::Value::Number(n) => n.as_f64().is_some_and(|f| !f.is_finite()),
        serde_yaml::Value::Sequence(items) => items.iter().any(has_non_finite),
        serde_yaml::Value::Mapping(map) => map
            .iter()
            .any(|(k, v)| has_non_finite(k) || has_non_finite(v)),
        serde_yaml::Value::Tagged(tagged) => has_non_finite(&tagged.value),
        _ => false,
    }
}

/// `id` and `custom_id` as written in one JSON job: their raw text, for numbers.
#[derive(serde::Deserialize)]
struct RawIds<'a> {
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    custom_id: Option<&'a serde_json::value::RawValue>,
}

/// Replace a numeric `id`/`custom_id` of `job` by the exact text of the number in `raw` (the
/// job's JSON text): a parsed number loses it (`1e2` and `100.0`, digits past 2^64).
fn exact_ids(job: &mut Value, raw: &str) {
    let Value::Object(map) = job else { return };
    if !["id", "custom_id"]
        .iter()
        .any(|k| map.get(*k).is_some_and(Value::is_number))
    {
        return;
    }
    let Ok(ids) = serde_json::from_str::<RawIds<'_>>(raw) else {
        return;
    };
    for (key, text) in [("id", ids.id), ("custom_id", ids.custom_id)] {
        if let (Some(text), Some(value)) = (text, map.get_mut(key))
            && value.is_number()
        {
            *value = Value::String(text.get().to_owned());
        }
    }
}

/// [`exact_ids`] for every job of a JSON document (a list, or an object with `jobs`).
fn exact_document_ids(doc: &mut Value, text: &str) {
    #[derive(serde::Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        jobs: Vec<&'a serde_json::value::RawValue>,
    }
    let raws: Vec<&serde_json::value::RawValue> = if doc.is_array() {
        serde_json::from_str(text).unwrap_or_default()
    } else {
        serde_json::from_str::<Doc<'_>>(text)
            .map(|d| d.jobs)
            .unwrap_or_default()
    };
    let jobs = match doc {
        Value::Array(jobs) => jobs,
        Value::Object(map) => match map.get_mut("jobs") {
            Some(Value::Array(jobs)) => jobs,
            _ => return,
        },
        _ => return,
    };
    if raws.len() == jobs.len() {
        for (job, raw) in jobs.iter_mut().zip(raws) {
            exact_ids(job, raw.get());
        }
    }
}

/// An `OpenAI` Batch API input line: `custom_id` is the id, `body` is sent as it is.
fn batch_api_job(
    job: &Map<String, Value>,
    custom_id: &Value,
    body: &Value,
    index: usize,
    defaults: &JobDefaults,
) -> Result<Job, String> {
    let id = match custom_id {
        Value::String(s) if !s.trim().is_empty() => s,
        _ => return Err("`custom_id` must be a non-empty string".to_owned()),
    };
    if let Some(url) = job.get("url").and_then(Value::as_str)
        && !url.trim_end_matches('/').ends_with("/chat/completions")
    {
        return Err(format!(
            "`url` `{url}` is not supported: only /v1/chat/completions"
        ));
    }
    if let Some(method) = job.get("method").and_then(Value::as_str)
        && !method.eq_ignore_ascii_case("POST")
    {
        return Err(format!("`method` `{method}` is not supported: only POST"));
    }
    let Value::Object(map) = body else {
        return Err("`body` must be an object".to_owned());
    };
    if map
        .get("messages")
        .is_none_or(|m| m.as_array().is_none_or(std::vec::Vec::is_empty))
    {
        return Err("`body.messages` must be a non-empty list".to_owned());
    }
    let mut body = map.clone();
    let model = if let Some(m) = body.get("model").and_then(Value::as_str) {
        m.to_owned()
    } else {
        body.insert("model".into(), Value::String(defaults.model.clone()));
        defaults.model.clone()
    };
    Ok(Job {
        id: id.clone(),
        index,
        model,
        body: Value::Object(body),
        schema: None,
        fallback_models: Vec::new(),
        headers: Vec::new(),
        own_token_limit: false,
    })
}

struct JsonLines {
    reader: BufReader<File>,
    line: usize,
    index: usize,
    buf: String,
}

impl Iterator for JsonLines {
    type Item = RawJob;

    fn next(&mut self) -> Option<RawJob> {
        loop {
            self.buf.clear();
            self.line += 1;
            // One line is bounded like a whole document: a line of gigabytes is an error, not
            // an allocation.
            match (&mut self.reader)
                .take(MAX_DOCUMENT_BYTES + 1)
                .read_line(&mut self.buf)
            {
                Ok(0) => return None,
                Ok(n) if n as u64 > MAX_DOCUMENT_BYTES => {
                    self.buf = String::new();
                    let _ = self.reader.skip_until(b'\n');
                    let index = self.index;
                    self.index += 1;
                    return Some(RawJob {
                        index,
                        position: Position::Line(self.line),
                        value: Err(format!(
                            "the line is longer than {MAX_DOCUMENT_BYTES} bytes"
                        )),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let index = self.index;
                    self.index += 1;
                    return Some(RawJob {
                        index,
                        position: Position::Line(self.line),
                        value: Err(format!("cannot read the line: {e}")),
                    });
                }
            }
            // A UTF-8 byte order mark at the start of the file is not part of the first line.
            let text = if self.line == 1 {
                self.buf.strip_prefix('\u{feff}').unwrap_or(&self.buf)
            } else {
                &self.buf
            };
            if text.trim().is_empty() {
                continue;
            }
            let index = self.index;
            self.index += 1;
            let value = serde_json::from_str::<Value>(text)
                .map(|mut v| {
                    exact_ids(&mut v, text);
                    v
                })
                .map_err(|e| format!("not valid JSON: {e}"));
            return Some(RawJob {
                index,
                position: Position::Line(self.line),
                value,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job file written into a fresh directory, and every job of it built with `defaults`.
    fn built(name: &str, text: &str, defaults: &JobDefaults) -> Vec<Result<Job, String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(name), text).expect("write");
        std::fs::write(
            dir.path().join("p.prompt.yml"),
            "model: from-prompt-file\nmodelParameters:\n  temperature: 0.2\n  topP: 0.8\nmessages:\n  - role: system\n    content: file system\n  - role: user\n    content: Say {{x}}\n",
        )
        .expect("write prompt file");
        let file = JobFile::open(name, dir.path(), PathRules::default(), None).expect("opens");
        let jobs: Vec<RawJob> = file.jobs().expect("jobs").collect();
        jobs.into_iter()
            .map(|raw| file.build(raw.value, raw.index, defaults))
            .collect()
    }

    fn flags(model_from_flag: bool, fields: Value, system: Option<&str>) -> JobDefaults {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object")
        };
        JobDefaults::from_flags(Flags {
            model: "configured",
            model_from_flag,
            fields,
            system,
            max_input_bytes: 1 << 20,
        })
    }

    #[test]
    fn a_job_beats_the_flags_which_beat_the_files_defaults() {
        let text = "\
defaults:
  temperature: 0.1
  top_p: 0.1
  seed: 1
  model: from-defaults
  system: defaults system
jobs:
  - id: plain
    prompt: hi
  - id: own
    prompt: hi
    temperature: 0.9
    model: from-job
    system: job system
";
        let jobs = built("j.yaml", text, &flags(false, json!({"top_p": 0.5}), None));
        let plain = jobs[0].as_ref().expect("builds");
        assert_eq!(plain.model, "from-defaults");
        assert_eq!(plain.body["temperature"], json!(0.1));
        assert_eq!(plain.body["top_p"], json!(0.5), "a flag beats defaults");
        assert_eq!(plain.body["seed"], json!(1));
        assert_eq!(
            plain.body["messages"][0]["content"],
            json!("defaults system")
        );
        let own = jobs[1].as_ref().expect("builds");
        assert_eq!((own.id.as_str(), own.model.as_str()), ("own", "from-job"));
        assert_eq!(own.body["temperature"], json!(0.9));
        assert_eq!(own.body["messages"][0]["content"], json!("job system"));

        // A -m flag beats the file's defaults, not a job's own model; --system-prompt beats
        // the defaults' system, not a job's.
        let jobs = built("j.yaml", text, &flags(true, json!({}), Some("flag system")));
        let plain = jobs[0].as_ref().expect("builds");
        assert_eq!(plain.model, "configured");
        assert_eq!(plain.body["messages"][0]["content"], json!("flag system"));
        assert_eq!(jobs[1].as_ref().expect("builds").model, "from-job");
    }

    #[test]
    fn a_prompt_file_sits_between_the_defaults_and_the_flags() {
        let text = "\
defaults:
  temperature: 0.1
  top_p: 0.1
jobs:
  - id: a
    prompt_file: p.prompt.yml
    vars: {x: yes}
";
        let jobs = built("j.yaml", text, &flags(false, json!({"top_p": 0.5}), None));
        let job = jobs[0].as_ref().expect("builds");
        assert_eq!(job.model, "from-prompt-file");
        assert_eq!(
            job.body["temperature"],
            json!(0.2),
            "the prompt file beats defaults"
        );
        assert_eq!(
            job.body["top_p"],
            json!(0.5),
            "a flag beats the prompt file"
        );
        assert_eq!(job.body["messages"][1]["content"], json!("Say yes"));
    }

    #[test]
    fn extra_bodies_and_headers_merge_key_by_key() {
        let text = "\
defaults:
  extra_body: {a: defaults, b: defaults, c: defaults}
  headers: {X-One: defaults, X-Two: defaults}
jobs:
  - id: a
    prompt: hi
    extra_body: {c: job}
    headers: {X-Two: job}
";
        let mut defaults = flags(false, json!({}), None);
        defaults.extra_body = Map::from_iter([("b".to_owned(), json!("flags"))]);
        defaults.headers = vec![ExtraHeader::parse("X-One: flags").expect("header")];
        let jobs = built("j.yaml", text, &defaults);
        let job = jobs[0].as_ref().expect("builds");
        assert_eq!(
            [&job.body["a"], &job.body["b"], &job.body["c"]],
            [&json!("defaults"), &json!("flags"), &json!("job")]
        );
        let headers: Vec<(&str, &str)> = job
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(headers, [("X-One", "flags"), ("X-Two", "job")]);
    }

    #[test]
    fn ids_and_bad_fields() {
        let text = r#"{"custom_id": "c", "prompt": "hi"}
{"id": "i", "custom_id": "c2", "prompt": "hi"}
{"prompt": "hi"}
{"prompt": ""}
{"messages": []}
{"prompt": "hi", "system": 3}
{"prompt": "hi", "model": ""}
["not an object"]
"#;
        let jobs = built("j.jsonl", text, &flags(false, json!({}), None));
        let ids: Vec<String> = jobs[..3]
            .iter()
            .map(|j| j.as_ref().expect("builds").id.clone())
            .collect();
        assert_eq!(ids, ["c".to_owned(), "i".to_owned(), default_id(2)]);
        let errors: Vec<String> = jobs[3..]
            .iter()
            .map(|j| j.as_ref().expect_err("refused").clone())
            .collect();
        assert_eq!(
            errors,
            [
                "`prompt` must be a non-empty string",
                "`messages` must be a non-empty list",
                "`system` must be a string",
                "`model` must be a non-empty string",
                "a job must be an object",
            ]
        );
    }

    #[test]
    fn a_batch_api_line_is_sent_as_written() {
        let text = r#"{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "hi"}], "temperature": 2, "max_tokens": 5}}
"#;
        let jobs = built(
            "j.jsonl",
            text,
            &flags(true, json!({"temperature": 0.1}), None),
        );
        let job = jobs[0].as_ref().expect("builds");
        assert_eq!(job.id, "x");
        assert_eq!(
            job.body["temperature"],
            json!(2),
            "flags do not rewrite a Batch API body"
        );
        assert_eq!(job.body["model"], json!("configured"));
        assert!(!job.own_token_limit);
    }
}
