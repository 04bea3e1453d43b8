//! One prompt's whole exchange as the commands make it: the request to the first model with
//! capacity (`--fallback-model`), and with `--json-schema` the conversation that ends in a
//! validated JSON value (degrading `response_format`, repair turns). Used by the single run and by
//! every job of a batch; knows nothing about output formats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::client::{ApiError, ChatClient, Completion, Failure, Usage};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::fallback;
use crate::schema::{self, FormatMode, OutputSchema, SharedMode};

/// What to ask and how.
pub struct Request<'a> {
    /// The chat body; its `model` is replaced by the model each attempt goes to.
    pub body: Value,
    /// The models in order (the first is the primary).
    pub models: Vec<String>,
    pub schema: Option<Arc<OutputSchema>>,
    /// Repair turns after the first answer (`--schema-retries`).
    pub schema_retries: u32,
    /// The run's `response_format` degradation, shared by all its requests.
    pub mode: &'a SharedMode,
}

/// A finished answer. `completion.text` is the final text (with a schema: the validated value,
/// compact); its usage, attempts and API time add up every request made for it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub completion: Completion,
    pub structured: Option<Value>,
    /// The model that answered.
    pub model: String,
    /// The models tried before it, in order.
    pub fallback_from: Vec<String>,
    /// With a schema: how it was asked for in the end.
    pub response_format: Option<FormatMode>,
    /// Answers received (1, plus the repair turns).
    pub turns: u32,
}

/// Why no acceptable answer came.
#[derive(Debug, Clone)]
pub enum AskError {
    Api(ApiError),
    /// Every answer failed the schema, after the repair turns.
    Schema {
        errors: Vec<String>,
        last_answer: String,
    },
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(e) => e.fmt(f),
            Self::Schema { errors, .. } => write!(
                f,
                "the answer does not match the JSON schema: {}",
                schema::summarize_errors(errors)
            ),
        }
    }
}

impl AskError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api(e) => e.kind(),
            Self::Schema { .. } => "schema_validation",
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Api(e) => e.exit_status(),
            Self::Schema { .. } => ExitStatus::DataErr,
        }
    }

    /// The HTTP status behind the failure, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(e) => e.status(),
            Self::Schema { .. } => None,
        }
    }

    /// Fields added to the result's `error` object (`last_answer`).
    pub fn error_fields(&self) -> Map<String, Value> {
        let mut map = Map::new();
        if let Self::Schema { last_answer, .. } = self {
            map.insert("last_answer".into(), json!(last_answer));
        }
        map
    }

    pub fn into_error(self) -> Error {
        match self {
            Self::Api(e) => Error::Api(e),
            Self::Schema { errors, .. } => Error::SchemaValidation {
                summary: schema::summarize_errors(&errors),
            },
        }
    }
}

/// A failure with what was spent on it.
#[derive(Debug, Clone)]
pub struct AskFailure {
    pub error: AskError,
    pub attempts: u32,
    pub api_duration: Duration,
    /// The model of the last request.
    pub model: String,
    pub fallback_from: Vec<String>,
    /// Tokens the server reported for the answers that were refused.
    pub usage: Option<Usage>,
    /// Answers received (refused by the schema).
    pub turns: u32,
}

impl AskFailure {
    /// A failure that never reached a server (an invalid job).
    pub fn without_request(error: ApiError, model: &str) -> Self {
        Self {
            error: AskError::Api(error),
            attempts: 0,
            api_duration: Duration::ZERO,
            model: model.to_owned(),
            fallback_from: Vec::new(),
            usage: None,
            turns: 0,
        }
    }
}

/// Fields the result message of an answer carries besides the usual ones.
pub fn answer_fields(answer: &Answer) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("model".into(), json!(answer.model));
    if let Some(value) = &answer.structured {
        map.insert("structured_result".into(), value.clone());
    }
    if !answer.fallback_from.is_empty() {
        map.insert("fallback_from".into(), json!(answer.fallback_from));
    }
    if let Some(mode) = answer.response_format {
        map.insert("response_format".into(), json!(mode.as_str()));
    }
    if answer.turns > 1 {
        map.insert("num_turns".into(), json!(answer.turns));
    }
    map
}

/// Fields the result message of a failure carries besides the usual ones.
pub fn failure_fields(failure: &AskFailure) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("model".into(), json!(failure.model));
    if !failure.fallback_from.is_empty() {
        map.insert("fallback_from".into(), json!(failure.fallback_from));
    }
    if failure.turns > 0 {
        map.insert("num_turns".into(), json!(failure.turns));
        map.insert("usage".into(), crate::output::usage_json(failure.usage));
    }
    map
}

fn add_usage(total: &mut Option<Usage>, more: Option<Usage>) {
    if let Some(u) = more {
        let t = total.get_or_insert_with(Usage::default);
        t.input_tokens += u.input_tokens;
        t.output_tokens += u.output_tokens;
        t.total_tokens += u.total_tokens;
    }
}

type OnDelta<'d> = dyn FnMut(&str) -> std::io::Result<()> + Send + 'd;

/// Sends requests down the model list: a capacity failure moves this and every later request of
/// the exchange to the next model.
struct Models<'a> {
    client: &'a ChatClient,
    list: &'a [String],
    current: usize,
    attempts: u32,
    started: Instant,
}

impl Models<'_> {
    fn model(&self) -> &str {
        &self.list[self.current]
    }

    fn tried(&self) -> Vec<String> {
        self.list[..self.current].to_vec()
    }

    async fn send(
        &mut self,
        body: &Value,
        on_delta: &mut OnDelta<'_>,
        deltas_are_final: bool,
    ) -> Result<Completion, ApiError> {
        loop {
            let mut body = body.clone();
            body["model"] = json!(self.model());
            let mut emitted = false;
            let result = {
                let mut tracked = |text: &str| {
                    emitted = true;
                    on_delta(text)
                };
                self.client
                    .send(&body, &mut tracked, deltas_are_final)
                    .await
            };
            match result {
                Ok(c) => {
                    self.attempts += c.attempts;
                    return Ok(c);
                }
                Err(Failure {
                    error, attempts, ..
                }) => {
                    self.attempts += attempts;
                    let shown = deltas_are_final && emitted;
                    if !shown && fallback::is_capacity(&error) && self.current + 1 < self.list.len()
                    {
                        crate::output::diag::warn(&format!(
                            "warning: `{}` has no capacity ({error}); trying `{}`",
                            self.model(),
                            self.list[self.current + 1]
                        ));
                        self.current += 1;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }
}

/// Ask, falling back and (with a schema) validating. `on_delta` sees the text as it arrives only
/// without a schema: an answer that may still be refused is never shown.
pub async fn ask(
    client: &ChatClient,
    request: &Request<'_>,
    on_delta: &mut OnDelta<'_>,
    deltas_are_final: bool,
) -> Result<Answer, AskFailure> {
    let mut models = Models {
        client,
        list: &request.models,
        current: 0,
        attempts: 0,
        started: Instant::now(),
    };
    let mut usage = None;
    let mut turns = 0;
    let outcome = match &request.schema {
        None => models
            .send(&request.body, on_delta, deltas_are_final)
            .await
            .map(|c| {
                turns = 1;
                (c, None, None)
            })
            .map_err(AskError::Api),
        Some(schema) => structured(&mut models, request, schema, &mut usage, &mut turns).await,
    };
    let api_duration = models.started.elapsed();
    match outcome {
        Ok((mut completion, structured, mode)) => {
            if request.schema.is_some() {
                completion.usage = usage;
            }
            completion.attempts = models.attempts;
            completion.api_duration = api_duration;
            Ok(Answer {
                completion,
                structured,
                model: models.model().to_owned(),
                fallback_from: models.tried(),
                response_format: mode,
                turns,
            })
        }
        Err(error) => Err(AskFailure {
            error,
            attempts: models.attempts,
            api_duration,
            model: models.model().to_owned(),
            fallback_from: models.tried(),
            usage,
            turns,
        }),
    }
}

type Structured = (Completion, Option<Value>, Option<FormatMode>);

/// The schema conversation: ask in the run's current mode (degrading on a refusal), validate,
/// and on a wrong answer send it back with the errors, up to `schema_retries` times.
async fn structured(
    models: &mut Models<'_>,
    request: &Request<'_>,
    schema: &OutputSchema,
    usage: &mut Option<Usage>,
    turns: &mut u32,
) -> Result<Structured, AskError> {
    let mut ignore = |_: &str| Ok(());
    let mut conversation = request.body.clone();
    let mut repairs = 0;
    loop {
        let mode = request.mode.get();
        let mut body = conversation.clone();
        schema.apply(&mut body, mode);
        let completion = match models.send(&body, &mut ignore, false).await {
            Ok(c) => c,
            Err(e) if schema::refuses_response_format(&e) => {
                let Some(weaker) = mode.degrade() else {
                    return Err(AskError::Api(e));
                };
                crate::output::diag::warn(&format!(
                    "warning: the server refused `response_format` {} ({e}); asking with {} from now on",
                    mode.as_str(),
                    match weaker {
                        FormatMode::JsonObject =>
                            "`json_object` and the schema in the system message",
                        _ => "the schema in the system message only",
                    }
                ));
                request.mode.degrade_to(weaker);
                continue;
            }
            Err(e) => return Err(AskError::Api(e)),
        };
        add_usage(usage, completion.usage);
        *turns += 1;
        match schema.check(&completion.text) {
            Ok(value) => {
                let text = value.to_string();
                return Ok((Completion { text, ..completion }, Some(value), Some(mode)));
            }
            Err(errors) if repairs >= request.schema_retries => {
                return Err(AskError::Schema {
                    errors,
                    last_answer: completion.text,
                });
            }
            Err(errors) => {
                repairs += 1;
                if let Some(Value::Array(messages)) = conversation.get_mut("messages") {
                    messages.push(json!({"role": "assistant", "content": completion.text}));
                    messages.push(json!({"role": "user", "content": schema::repair_turn(&errors)}));
                }
            }
        }
    }
}
