//! One prompt's whole exchange as the commands make it: the request to the first model with
//! capacity (`--fallback-model`), and with `--json-schema` the conversation that ends in a
//! validated JSON value (degrading `response_format`, repair turns). Used by the single run and by
//! every job of a batch; knows nothing about output formats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::params::ExtraHeader;
use crate::client::{
    ApiError, ChatClient, Completion, Failure, OnPiece, Outgoing, Piece, RequestTrace, RetryEvent,
    Usage, WaitReason,
};
use crate::cost::{Cost, PriceTable};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::fallback;
use crate::output::Extras;
use crate::schema::{self, FormatMode, OutputSchema, SharedMode};

/// What to ask and how.
pub(crate) struct Request<'a> {
    /// The chat body; its `model` is replaced by the model each attempt goes to.
    pub(crate) body: Value,
    /// The models in order (the first is the primary).
    pub(crate) models: Vec<String>,
    pub(crate) schema: Option<Arc<OutputSchema>>,
    /// Repair turns after the first answer (`--schema-retries`).
    pub(crate) schema_retries: u32,
    /// The run's `response_format` degradation, shared by all its requests.
    pub(crate) mode: &'a SharedMode,
    /// Headers of this request only (a job's `headers`).
    pub(crate) headers: Vec<ExtraHeader>,
    /// `max_tokens` in `body` is qwen's own limit: the client names it as the host expects.
    pub(crate) own_token_limit: bool,
    /// `--prices`: what an answer costs when the provider does not say.
    pub(crate) prices: Option<&'a PriceTable>,
    /// The trace the exchange's requests belong to (see `otel`).
    pub(crate) trace: Option<RequestTrace>,
}

/// A finished answer. `completion.text` is the final text (with a schema: the validated value,
/// compact); its usage, attempts and API time add up every request made for it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) completion: Completion,
    pub(crate) structured: Option<Value>,
    /// The model that answered.
    pub(crate) model: String,
    /// The models tried before it, in order.
    pub(crate) fallback_from: Vec<String>,
    /// With a schema: how it was asked for in the end.
    pub(crate) response_format: Option<FormatMode>,
    /// Answers received (1, plus the repair turns).
    pub(crate) turns: u32,
    /// What every answer received for it cost, when known.
    pub(crate) cost: Cost,
}

/// Why no acceptable answer came.
#[derive(Debug, Clone)]
pub(crate) enum AskError {
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
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Api(e) => e.kind(),
            Self::Schema { .. } => "schema_validation",
        }
    }

    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Api(e) => e.exit_status(),
            Self::Schema { .. } => ExitStatus::DataErr,
        }
    }

    /// The HTTP status behind the failure, when there was one.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Api(e) => e.status(),
            Self::Schema { .. } => None,
        }
    }

    pub(crate) fn into_error(self) -> Error {
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
pub(crate) struct AskFailure {
    pub(crate) error: AskError,
    pub(crate) attempts: u32,
    pub(crate) api_duration: Duration,
    /// The model of the last request.
    pub(crate) model: String,
    pub(crate) fallback_from: Vec<String>,
    /// Tokens the server reported for the answers that were refused.
    pub(crate) usage: Option<Usage>,
    /// Answers received (refused by the schema).
    pub(crate) turns: u32,
    /// What was changed in the requests because a server refused part of them.
    pub(crate) adjusted: Vec<String>,
    /// Time slept before retries, over every request made.
    pub(crate) retry_wait: Duration,
    /// What the answers refused on the way cost, when known.
    pub(crate) cost: Cost,
}

impl AskFailure {
    /// A failure that never reached a server (an invalid job).
    pub(crate) fn without_request(error: ApiError, model: &str) -> Self {
        Self {
            error: AskError::Api(error),
            attempts: 0,
            api_duration: Duration::ZERO,
            model: model.to_owned(),
            fallback_from: Vec::new(),
            usage: None,
            turns: 0,
            adjusted: Vec::new(),
            retry_wait: Duration::ZERO,
            cost: Cost::default(),
        }
    }
}

/// What the result of an answer says beyond the answer itself.
pub(crate) fn answer_extras(answer: &Answer) -> Extras {
    Extras {
        model: Some(answer.model.clone()),
        structured_result: answer.structured.clone(),
        fallback_from: answer.fallback_from.clone(),
        response_format: answer.response_format.map(|m| m.as_str().to_owned()),
        num_turns: (answer.turns > 1).then_some(answer.turns),
        usage: None,
        last_answer: None,
        adjusted: answer.completion.adjusted.clone(),
        retry_wait_ms: millis(answer.completion.retry_wait),
        cost: answer.cost,
    }
}

/// What the result of a failure says beyond the error: the model of the last request, the
/// models tried before it, what the refused answers cost, and the last of them.
pub(crate) fn failure_extras(failure: &AskFailure) -> Extras {
    Extras {
        model: Some(failure.model.clone()),
        structured_result: None,
        fallback_from: failure.fallback_from.clone(),
        response_format: None,
        num_turns: (failure.turns > 0).then_some(failure.turns),
        usage: (failure.turns > 0 || failure.usage.is_some()).then(|| failure.usage.into()),
        last_answer: match &failure.error {
            AskError::Schema { last_answer, .. } => Some(last_answer.clone()),
            AskError::Api(_) => None,
        },
        adjusted: failure.adjusted.clone(),
        retry_wait_ms: millis(failure.retry_wait),
        cost: failure.cost,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn add_usage(total: &mut Option<Usage>, more: Option<Usage>) {
    if let Some(u) = more {
        let t = total.get_or_insert_with(Usage::default);
        // A server's numbers: summed without wrapping (or a debug build's panic).
        t.input_tokens = t.input_tokens.saturating_add(u.input_tokens);
        t.output_tokens = t.output_tokens.saturating_add(u.output_tokens);
        t.total_tokens = t.total_tokens.saturating_add(u.total_tokens);
        if let Some(r) = u.reasoning_tokens {
            let sum = t.reasoning_tokens.get_or_insert(0);
            *sum = sum.saturating_add(r);
        }
        t.cache_read_input_tokens = t
            .cache_read_input_tokens
            .saturating_add(u.cache_read_input_tokens);
        t.cache_creation_input_tokens = t
            .cache_creation_input_tokens
            .saturating_add(u.cache_creation_input_tokens);
    }
}

/// The provider's figures for every answer of an exchange: their sum when it gave one for each
/// answer that reported usage, else unknown (a sum of some would pass for the whole).
#[derive(Debug, Clone, Copy, Default)]
struct ProviderCost {
    sum: f64,
    known: bool,
    missing: bool,
}

impl ProviderCost {
    fn add(&mut self, cost: Option<f64>, usage: Option<Usage>) {
        match cost {
            Some(c) => {
                self.sum += c;
                self.known = true;
            }
            None if usage.is_some() => self.missing = true,
            None => {}
        }
    }

    fn total(self) -> Option<f64> {
        (self.known && !self.missing).then_some(self.sum)
    }
}

/// Sends requests down the model list: a capacity failure moves this and every later request of
/// the exchange to the next model.
struct Models<'a> {
    client: &'a ChatClient,
    list: &'a [String],
    headers: &'a [ExtraHeader],
    own_token_limit: bool,
    current: usize,
    attempts: u32,
    /// Time slept before retries, over every request.
    retry_wait: Duration,
    started: Instant,
    /// Every adjustment made to the exchange's requests, in order, once each.
    adjusted: Vec<String>,
    trace: Option<RequestTrace>,
}

impl Models<'_> {
    fn model(&self) -> &str {
        &self.list[self.current]
    }

    fn note_adjusted(&mut self, adjusted: &[String]) {
        for a in adjusted {
            if !self.adjusted.contains(a) {
                self.adjusted.push(a.clone());
            }
        }
    }

    fn tried(&self) -> Vec<String> {
        self.list[..self.current].to_vec()
    }

    async fn send(
        &mut self,
        body: &Value,
        on_delta: &mut OnPiece<'_>,
        deltas_are_final: bool,
    ) -> Result<Completion, ApiError> {
        loop {
            let mut body = body.clone();
            body["model"] = json!(self.model());
            let mut emitted = false;
            let result = {
                let mut tracked = |piece: Piece<'_>| {
                    emitted |= matches!(piece, Piece::Text(_));
                    on_delta(piece)
                };
                let outgoing = Outgoing {
                    body: &body,
                    headers: self.headers,
                    own_token_limit: self.own_token_limit,
                    trace: self.trace,
                };
                self.client
                    .send(outgoing, &mut tracked, deltas_are_final)
                    .await
            };
            match result {
                Ok(c) => {
                    self.attempts += c.attempts;
                    self.retry_wait += c.retry_wait;
                    self.note_adjusted(&c.adjusted);
                    return Ok(c);
                }
                Err(Failure {
                    error,
                    attempts,
                    adjusted,
                    retry_wait,
                }) => {
                    self.attempts += attempts;
                    self.retry_wait += retry_wait;
                    self.note_adjusted(&adjusted);
                    let shown = deltas_are_final && emitted;
                    if !shown && fallback::is_capacity(&error) && self.current + 1 < self.list.len()
                    {
                        let next = &self.list[self.current + 1];
                        self.client.retry_event(RetryEvent {
                            attempt: attempts,
                            max_retries: self.client.retry_policy().retries,
                            status: error.status(),
                            error: error.kind(),
                            wait: Duration::ZERO,
                            reason: WaitReason::Fallback,
                            model: self.model().to_owned(),
                            fallback_model: Some(next.clone()),
                        });
                        // A batch's pacer that gave up on a model refuses all its jobs: say so once.
                        if !matches!(error, ApiError::RateLimitWait { .. }) {
                            crate::diag::warn(&format!(
                                "warning: `{}` has no capacity ({error}); trying `{next}`",
                                self.model()
                            ));
                        } else if self
                            .client
                            .first_notice(&format!("gave up on {}", self.model()))
                        {
                            crate::diag::warn(&format!(
                                "warning: `{}` has no capacity ({error}); its jobs go to `{next}` from now on",
                                self.model()
                            ));
                        }
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
pub(crate) async fn ask(
    client: &ChatClient,
    request: &Request<'_>,
    on_delta: &mut OnPiece<'_>,
    deltas_are_final: bool,
) -> Result<Answer, AskFailure> {
    let mut models = Models {
        client,
        list: &request.models,
        headers: &request.headers,
        own_token_limit: request.own_token_limit,
        current: 0,
        attempts: 0,
        retry_wait: Duration::ZERO,
        started: Instant::now(),
        adjusted: Vec::new(),
        trace: request.trace,
    };
    let mut usage = None;
    let mut turns = 0;
    let mut provider = ProviderCost::default();
    let outcome = match &request.schema {
        None => models
            .send(&request.body, on_delta, deltas_are_final)
            .await
            .map(|c| {
                turns = 1;
                provider.add(c.provider_cost, c.usage);
                (c, None, None)
            })
            .map_err(AskError::Api),
        Some(schema) => {
            let mut spent = Spent {
                usage: &mut usage,
                turns: &mut turns,
                provider: &mut provider,
            };
            structured(&mut models, request, schema, &mut spent).await
        }
    };
    let price =
        |provider: ProviderCost, usage: Option<Usage>, server_model: Option<&str>, model: &str| {
            let mut names = vec![model];
            names.extend(server_model);
            Cost::of(provider.total(), usage, &names, request.prices)
        };
    let api_duration = models.started.elapsed();
    match outcome {
        Ok((mut completion, structured, mode)) => {
            if request.schema.is_some() {
                completion.usage = usage;
            }
            completion.attempts = models.attempts;
            completion.retry_wait = models.retry_wait;
            completion.api_duration = api_duration;
            completion.adjusted.clone_from(&models.adjusted);
            let cost = price(
                provider,
                completion.usage,
                completion.server_model.as_deref(),
                models.model(),
            );
            Ok(Answer {
                cost,
                completion,
                structured,
                model: models.model().to_owned(),
                fallback_from: models.tried(),
                response_format: mode,
                turns,
            })
        }
        Err(error) => {
            // An empty answer still cost what the server reported.
            if let AskError::Api(api) = &error {
                add_usage(&mut usage, api.usage());
                provider.add(None, api.usage());
            }
            let cost = price(provider, usage, None, models.model());
            Err(AskFailure {
                cost,
                error,
                attempts: models.attempts,
                api_duration,
                model: models.model().to_owned(),
                fallback_from: models.tried(),
                usage,
                turns,
                adjusted: models.adjusted,
                retry_wait: models.retry_wait,
            })
        }
    }
}

type Structured = (Completion, Option<Value>, Option<FormatMode>);

/// What the answers of a schema conversation used, added up as they come.
struct Spent<'s> {
    usage: &'s mut Option<Usage>,
    turns: &'s mut u32,
    provider: &'s mut ProviderCost,
}

/// The schema conversation: ask in the run's current mode (degrading on a refusal), validate,
/// and on a wrong answer send it back with the errors, up to `schema_retries` times.
async fn structured(
    models: &mut Models<'_>,
    request: &Request<'_>,
    schema: &OutputSchema,
    spent: &mut Spent<'_>,
) -> Result<Structured, AskError> {
    let mut ignore = |_: Piece<'_>| Ok(());
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
                crate::diag::warn(&format!(
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
        add_usage(spent.usage, completion.usage);
        spent
            .provider
            .add(completion.provider_cost, completion.usage);
        *spent.turns += 1;
        match schema.check(&completion.text) {
            Ok(value) => {
                let text = value.to_string();
                return Ok((Completion { text, ..completion }, Some(value), Some(mode)));
            }
            Err(errors) if repairs >= request.schema_retries => {
                // The errors quote the answer: server text, shown on stderr and in summaries.
                return Err(AskError::Schema {
                    errors: errors.iter().map(|e| models.client.scrubbed(e)).collect(),
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
