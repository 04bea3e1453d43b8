//! The public JSON shapes, one typed struct each: what `-o json`/`stream-json` write (Qwen Code's
//! `system`/`assistant`/`result`/`stream_event` messages), a batch's result lines, `OpenAI`
//! Batch API output lines, and `auth status --json`. Field order is the order written; users' `jq` scripts depend on the
//! names, so a change here is a change of the public contract. Resume reads lines back with the
//! same types.

use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::path::{Path, PathBuf};

use crate::client::Usage;
use crate::config::Source;
use crate::cost::CostSource;

/// `usage` as results show it: numbers, or nulls when the server sent none. The field order is
/// Qwen Code 0.24.4's (`BaseJsonOutputAdapter.createUsage`: `input_tokens`, `output_tokens`,
/// `cache_read_input_tokens`, `total_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the names of the public JSON fields"
)]
pub(crate) struct UsageJson {
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    /// Of `input_tokens`, those read from the prompt cache (`prompt_tokens_details.cached_tokens`):
    /// `0` when the server reports usage but nothing cached, as Qwen Code writes it.
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
    pub(crate) total_tokens: Option<u64>,
    /// Input tokens written to the prompt cache, when the provider reports them (qwen's own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_creation_input_tokens: Option<u64>,
    /// Of `output_tokens`, those spent reasoning, when the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_tokens: Option<u64>,
}

impl From<Option<Usage>> for UsageJson {
    fn from(usage: Option<Usage>) -> Self {
        usage.map_or_else(Self::default, |u| Self {
            input_tokens: Some(u.input_tokens),
            output_tokens: Some(u.output_tokens),
            cache_read_input_tokens: Some(u64::from(u.cache_read_input_tokens)),
            total_tokens: Some(u.total_tokens),
            cache_creation_input_tokens: (u.cache_creation_input_tokens > 0)
                .then_some(u64::from(u.cache_creation_input_tokens)),
            reasoning_tokens: u.reasoning_tokens,
        })
    }
}

/// `usage` of an assistant message: the exchange's counts on the answer, and Qwen Code's
/// `{"input_tokens":0,"output_tokens":0}` on a thinking message (its `createUsage()` without
/// metadata: the counts belong to the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum MessageUsage {
    Counted(UsageJson),
    Zero {
        input_tokens: u64,
        output_tokens: u64,
    },
}

impl MessageUsage {
    pub(crate) const ZERO: Self = Self::Zero {
        input_tokens: 0,
        output_tokens: 0,
    };
}

/// `stats` of a `-o json` result: Qwen Code's session metrics (`SessionMetrics` of its
/// `uiTelemetry`), as far as qwen has them: one model's requests, errors, latency and tokens,
/// and zero tool, file and skill counts (qwen runs no tools). Qwen Code's `generation` (time to
/// first token) is not written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Stats {
    pub(crate) models: std::collections::BTreeMap<String, ModelStats>,
    pub(crate) tools: ToolStats,
    pub(crate) files: FileStats,
    pub(crate) skills: SkillStats,
}

/// One model's line of `stats.models`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ModelStats {
    pub(crate) api: ApiStats,
    pub(crate) tokens: TokenStats,
    /// Qwen Code splits the counts by who asked (`main`, its background agents); qwen's are all `main`.
    #[serde(rename = "bySource")]
    pub(crate) by_source: std::collections::BTreeMap<String, SourceStats>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SourceStats {
    pub(crate) api: ApiStats,
    pub(crate) tokens: TokenStats,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    clippy::struct_field_names,
    reason = "the names of the public JSON fields"
)]
pub(crate) struct ApiStats {
    pub(crate) total_requests: u64,
    pub(crate) total_errors: u64,
    pub(crate) total_latency_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct TokenStats {
    pub(crate) prompt: u64,
    pub(crate) candidates: u64,
    pub(crate) total: u64,
    pub(crate) cached: u64,
    pub(crate) thoughts: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolStats {
    pub(crate) total_calls: u64,
    pub(crate) total_success: u64,
    pub(crate) total_fail: u64,
    pub(crate) total_duration_ms: u64,
    pub(crate) total_decisions: Decisions,
    pub(crate) by_name: std::collections::BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Decisions {
    pub(crate) accept: u64,
    pub(crate) reject: u64,
    pub(crate) modify: u64,
    pub(crate) auto_accept: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileStats {
    pub(crate) total_lines_added: u64,
    pub(crate) total_lines_removed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SkillStats {
    pub(crate) total_calls: u64,
    pub(crate) total_success: u64,
    pub(crate) total_fail: u64,
    pub(crate) by_name: std::collections::BTreeMap<String, Value>,
}

impl Stats {
    /// One model's requests (`attempts`, of which all but a success's last failed), API time and tokens.
    pub(crate) fn of(
        model: &str,
        attempts: u32,
        succeeded: bool,
        api_ms: u64,
        usage: &UsageJson,
    ) -> Self {
        let api = ApiStats {
            total_requests: u64::from(attempts),
            total_errors: u64::from(attempts.saturating_sub(u32::from(succeeded))),
            total_latency_ms: api_ms,
        };
        let tokens = TokenStats {
            prompt: usage.input_tokens.unwrap_or(0),
            candidates: usage.output_tokens.unwrap_or(0),
            total: usage.total_tokens.unwrap_or(0),
            cached: usage.cache_read_input_tokens.unwrap_or(0),
            thoughts: usage.reasoning_tokens.unwrap_or(0),
        };
        let main = SourceStats { api, tokens };
        let mut models = std::collections::BTreeMap::new();
        if attempts > 0 {
            models.insert(
                model.to_owned(),
                ModelStats {
                    api,
                    tokens,
                    by_source: std::collections::BTreeMap::from([("main".to_owned(), main)]),
                },
            );
        }
        Self {
            models,
            ..Self::default()
        }
    }
}

/// `{"type":"system","subtype":"api_retry",...}`: qwen waits before trying again. The shape of
/// Claude Code's stream-json retry notice (its Agent SDK's `SDKAPIRetryMessage`: `attempt`,
/// `max_retries`, `retry_delay_ms`, `error_status`, `error`), with why qwen waits (`reason`:
/// `server_hint`, `backoff`, `rate_limit_pause`, `fallback`), the model, and the next model of a
/// fallback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiRetryMessage {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) subtype: String,
    pub(crate) uuid: String,
    pub(crate) session_id: String,
    /// The attempt that failed (1-based).
    pub(crate) attempt: u32,
    pub(crate) max_retries: u32,
    pub(crate) retry_delay_ms: u64,
    /// The HTTP status, `null` without one (a network failure, a cut stream).
    pub(crate) error_status: Option<u16>,
    /// The failure's `error.type`.
    pub(crate) error: String,
    pub(crate) reason: String,
    pub(crate) model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fallback_model: Option<String>,
}

/// `{"type":"system","subtype":"init",...}`: the first message of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitMessage {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) subtype: String,
    pub(crate) uuid: String,
    pub(crate) session_id: String,
    pub(crate) cwd: String,
    pub(crate) tools: Vec<Value>,
    pub(crate) mcp_servers: Vec<Value>,
    pub(crate) model: String,
    pub(crate) permission_mode: String,
    /// Qwen Code lists its slash commands and subagents here; qwen has none (always `[]`).
    #[serde(default)]
    pub(crate) slash_commands: Vec<Value>,
    pub(crate) qwen_code_version: String,
    #[serde(default)]
    pub(crate) agents: Vec<Value>,
}

/// `{"type":"system","subtype":"session_start",...}`: the first line of `--json-file`/`--json-fd`,
/// as Qwen Code 0.24.4's `DualOutputBridge` writes it (packages/cli/src/dualOutput/DualOutputBridge.ts:
/// `emitSystemMessage("session_start", {session_id, cwd, protocol_version: 2, version,
/// supported_events})`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SessionStartMessage {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) subtype: &'static str,
    pub(crate) uuid: String,
    pub(crate) session_id: String,
    pub(crate) parent_tool_use_id: Option<String>,
    pub(crate) data: SessionStartData,
}

/// What a `session_start` line says.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SessionStartData {
    pub(crate) session_id: String,
    pub(crate) cwd: String,
    pub(crate) protocol_version: u32,
    pub(crate) version: &'static str,
    pub(crate) supported_events: [&'static str; 4],
}

/// One block of an assistant message's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ContentBlock {
    Text {
        text: String,
    },
    /// The model's reasoning, in an assistant message of its own before the text (as Qwen Code
    /// writes one content-block type per assistant message).
    Thinking {
        thinking: String,
        /// Always `""`: Qwen Code writes the field (Anthropic's shape); OpenAI-compatible
        /// servers send no signature.
        #[serde(default)]
        signature: String,
    },
}

/// The `message` inside an assistant message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AssistantBody {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) role: String,
    pub(crate) model: String,
    pub(crate) content: Vec<ContentBlock>,
    /// `null` for text and thinking blocks, as Qwen Code writes it (`"tool_use"` only for tool
    /// blocks, which qwen never writes); the server's `finish_reason` is the result's.
    pub(crate) stop_reason: Option<String>,
    pub(crate) usage: MessageUsage,
}

/// `{"type":"assistant",...}`: the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AssistantMessage {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) uuid: String,
    pub(crate) session_id: String,
    pub(crate) parent_tool_use_id: Option<String>,
    pub(crate) message: AssistantBody,
}

/// `error` of a failed result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorInfo {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) message: String,
    /// `schema_validation`: the last raw answer, which did not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_answer: Option<String>,
}

/// `{"type":"result",...}`: how the run ended. A success has `result` and no `error`; a failure
/// the other way round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResultMessage {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) subtype: String,
    pub(crate) uuid: String,
    pub(crate) session_id: String,
    pub(crate) is_error: bool,
    pub(crate) duration_ms: u64,
    pub(crate) duration_api_ms: u64,
    pub(crate) num_turns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<String>,
    pub(crate) usage: UsageJson,
    pub(crate) permission_denials: Vec<Value>,
    /// `-o json` only, as in Qwen Code: the run's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<Stats>,
    pub(crate) model: String,
    pub(crate) attempts: u32,
    /// Milliseconds slept before retries (backoff and `Retry-After`), beside `attempts`: what the
    /// retry budget cost. Absent from lines written before it existed.
    #[serde(default)]
    pub(crate) retry_wait_ms: u64,
    /// The server's `finish_reason` for the answer (`stop`, `length`), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) finish_reason: Option<String>,
    /// What the run (or the job) cost in US dollars; `null` when unknown, never `0` for that.
    #[serde(default)]
    pub(crate) total_cost_usd: Option<f64>,
    /// Where `total_cost_usd` came from: `provider` (the server's own figure) or `price_table`
    /// (`--prices`); `null` when the cost is unknown.
    #[serde(default)]
    pub(crate) cost_source: Option<CostSource>,
    /// `--json-schema`: the validated value (`result` holds its JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) structured_result: Option<Value>,
    /// `--fallback-model`: the models tried before the one that answered (`model`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) fallback_from: Vec<String>,
    /// `--json-schema`: how the schema was asked for in the end (`json_schema`, `json_object`,
    /// `none`), when the server refused the better ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response_format: Option<String>,
    /// What qwen changed in the request because the server refused part of it
    /// (`max_completion_tokens instead of max_tokens`, `temperature removed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) adjusted: Vec<String>,
    /// Batch lines: the model's reasoning before its answer, when it streamed any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<ErrorInfo>,
}

/// One line of a batch's results: the job's id and position, then its result message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BatchLine {
    pub(crate) id: String,
    pub(crate) index: usize,
    #[serde(flatten)]
    pub(crate) result: ResultMessage,
}

/// A job that failed, as the summary lists it (written as `[id, type, message]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobFailure {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) message: String,
}

impl Serialize for JobFailure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(3)?;
        t.serialize_element(&self.id)?;
        t.serialize_element(&self.kind)?;
        t.serialize_element(&self.message)?;
        t.end()
    }
}

/// `{"type":"stream_event",...}` with `--include-partial-messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamEventMessage {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) uuid: String,
    pub(crate) session_id: String,
    pub(crate) parent_tool_use_id: Option<String>,
    pub(crate) event: StreamEvent,
}

/// The events of a streamed assistant message, as Anthropic-style deltas.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEvent {
    MessageStart {
        message: StreamMessageStart,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: Delta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageStop,
}

/// `message` of a `message_start` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamMessageStart {
    pub(crate) id: String,
    pub(crate) role: String,
    pub(crate) model: String,
    pub(crate) content: Vec<ContentBlock>,
}

/// A piece of a content block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Delta {
    TextDelta { text: String },
    ThinkingDelta { thinking: String },
}

/// One line of `-o openai-batch` output, as the `OpenAI` Batch API writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenAiBatchLine {
    pub(crate) id: String,
    pub(crate) custom_id: String,
    pub(crate) response: Option<OpenAiBatchResponse>,
    pub(crate) error: Option<OpenAiBatchError>,
}

/// `response` of an `OpenAI` batch line: the status and the body the API answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenAiBatchResponse {
    pub(crate) status_code: u16,
    pub(crate) request_id: Option<String>,
    pub(crate) body: Value,
}

/// `error` of an `OpenAI` batch line: a request that got no HTTP answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenAiBatchError {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// `qwen batch status NAME --json`, and each element of `qwen batch list --json`: a provider
/// batch as its ledger records it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProviderBatchStatus<'a> {
    pub(crate) name: &'a str,
    /// The parts' status when they agree, else `ended` or `in_progress`.
    pub(crate) status: String,
    pub(crate) jobs: u64,
    pub(crate) created_at: u64,
    pub(crate) job_file: &'a str,
    pub(crate) parts: Vec<ProviderBatchPart<'a>>,
}

/// One part (one input file and its batch at the provider) of [`ProviderBatchStatus`].
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProviderBatchPart<'a> {
    pub(crate) part: usize,
    pub(crate) batch_id: Option<&'a str>,
    pub(crate) model: &'a str,
    pub(crate) requests: u64,
    pub(crate) status: Option<&'a str>,
    pub(crate) request_counts: Option<crate::client::batch_api::RequestCounts>,
    /// Whether its output or error file was downloaded.
    pub(crate) downloaded: bool,
}

/// What `--resume` reads back from a line of either format: only the fields that say which job
/// it is and whether it succeeded, so that lines from older versions still count.
/// Where a configuration value came from, as `auth status --json` says it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum SourceJson<'a> {
    Flag { name: &'a str },
    Env { name: &'a str },
    Dotenv { path: &'a Path },
    Setting { path: &'a Path },
    Default,
}

impl<'a> From<&'a Source> for SourceJson<'a> {
    fn from(source: &'a Source) -> Self {
        match source {
            Source::Flag(name) => Self::Flag { name },
            Source::Env(name) => Self::Env { name },
            Source::DotEnv { path, .. } => Self::Dotenv { path },
            Source::Setting(path) => Self::Setting { path },
            Source::Default => Self::Default,
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Serialize)]
pub(crate) struct SourcedJson<'a> {
    pub(crate) value: &'a str,
    pub(crate) source: SourceJson<'a>,
}

/// `qwen auth status --json`: what a run would use, where each value came from, and whether it
/// could authenticate. Secrets appear only redacted.
#[derive(Debug, Serialize)]
pub(crate) struct AuthStatus<'a> {
    pub(crate) auth_type: SourcedJson<'a>,
    pub(crate) api_key: ApiKeyStatus<'a>,
    pub(crate) base_url: SourcedJson<'a>,
    pub(crate) model: SourcedJson<'a>,
    /// The wire protocol the auth type speaks, where its requests go and the key's header.
    pub(crate) protocol: ProtocolStatus,
    pub(crate) dotenv: DotEnvStatus<'a>,
    pub(crate) interactive: bool,
    pub(crate) debug: bool,
    pub(crate) oauth: OAuthStatus<'a>,
    pub(crate) settings: SettingsStatus<'a>,
    /// `-H` headers, when any were given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) headers: Vec<HeaderStatus<'a>>,
    pub(crate) ready: bool,
    pub(crate) error: Option<ErrorInfo>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProtocolStatus {
    /// `chat-completions`, `responses`, `anthropic-messages`, `gemini`, `vertex-ai`.
    pub(crate) name: &'static str,
    /// The URL a request for the configured model is sent to (`None` for Qwen OAuth, whose base
    /// URL comes with its credentials).
    pub(crate) endpoint: Option<String>,
    /// The header the key travels in (`authorization` carries `Bearer KEY`).
    pub(crate) key_header: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ApiKeyStatus<'a> {
    /// Redacted.
    pub(crate) value: Option<String>,
    pub(crate) source: Option<SourceJson<'a>>,
    /// The places that set the key to an empty value (and so were skipped).
    pub(crate) set_but_empty: Vec<SourceJson<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DotEnvStatus<'a> {
    pub(crate) used: Option<&'a Path>,
    pub(crate) probed: &'a [PathBuf],
    /// Whether git would publish the `.env` in use.
    pub(crate) git: Option<GitExposure<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GitExposure<'a> {
    pub(crate) exposure: &'a str,
    pub(crate) path: &'a str,
}

/// What `~/.qwen/oauth_creds.json` holds, read without any network traffic.
#[derive(Debug, Serialize)]
pub(crate) struct OAuthStatus<'a> {
    pub(crate) creds_path: Option<&'a Path>,
    pub(crate) cached: bool,
    pub(crate) error: Option<&'a str>,
    /// `fresh`, `refreshable` or `expired`.
    pub(crate) state: Option<&'a str>,
    pub(crate) expiry_date: Option<u64>,
    pub(crate) expires: Option<String>,
    pub(crate) token_type: Option<&'a str>,
    /// Redacted.
    pub(crate) access_token: Option<String>,
    pub(crate) has_refresh_token: bool,
    pub(crate) resource_url: Option<&'a str>,
    pub(crate) base_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SettingsStatus<'a> {
    pub(crate) path: Option<&'a Path>,
    pub(crate) selected_type: Option<&'a str>,
    /// False when the settings select a method qwen does not implement.
    pub(crate) understood: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeaderStatus<'a> {
    pub(crate) name: &'a str,
    /// Redacted like the key, whatever the header's name.
    pub(crate) value: String,
    pub(crate) source: SourceJson<'a>,
}

/// `auth status --json` when the configuration could not even be read.
#[derive(Debug, Serialize)]
pub(crate) struct AuthStatusFailed {
    pub(crate) ready: bool,
    pub(crate) error: ErrorInfo,
}

#[derive(Debug, Deserialize)]
struct ReadBack {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    is_error: Option<bool>,
    custom_id: Option<String>,
    response: Option<ReadBackResponse>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ReadBackResponse {
    status_code: Option<u16>,
}

/// A line read back from a results file: the id of a job that succeeded, in either format.
pub(crate) fn successful_id(line: &[u8]) -> Option<String> {
    let line: ReadBack = serde_json::from_slice(line).ok()?;
    if let Some(custom_id) = line.custom_id {
        let ok = line.response.and_then(|r| r.status_code) == Some(200)
            && line.error.is_none_or(|e| e.is_null());
        return ok.then_some(custom_id);
    }
    let ok = line.kind.as_deref() == Some("result") && line.is_error == Some(false);
    ok.then_some(line.id?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_result_has_no_result_field_and_a_success_no_error() {
        let mut m = ResultMessage {
            kind: "result".into(),
            subtype: "success".into(),
            uuid: "u".into(),
            session_id: "s".into(),
            is_error: false,
            duration_ms: 1,
            duration_api_ms: 1,
            num_turns: 1,
            result: Some("hi".into()),
            usage: UsageJson::default(),
            permission_denials: vec![],
            stats: None,
            model: "m".into(),
            attempts: 1,
            retry_wait_ms: 0,
            finish_reason: None,
            total_cost_usd: None,
            cost_source: None,
            structured_result: None,
            fallback_from: Vec::new(),
            response_format: None,
            adjusted: Vec::new(),
            reasoning: None,
            error: None,
        };
        let ok = serde_json::to_string(&m).unwrap();
        assert_eq!(
            ok,
            r#"{"type":"result","subtype":"success","uuid":"u","session_id":"s","is_error":false,"duration_ms":1,"duration_api_ms":1,"num_turns":1,"result":"hi","usage":{"input_tokens":null,"output_tokens":null,"cache_read_input_tokens":null,"total_tokens":null},"permission_denials":[],"model":"m","attempts":1,"retry_wait_ms":0,"total_cost_usd":null,"cost_source":null}"#
        );
        m.result = None;
        m.is_error = true;
        m.error = Some(ErrorInfo {
            kind: "api_error".into(),
            message: "x".into(),
            last_answer: None,
        });
        let failed = serde_json::to_value(&m).unwrap();
        assert!(failed.get("result").is_none());
        assert_eq!(failed["error"]["type"], "api_error");
    }

    #[test]
    fn successful_ids_are_read_from_both_formats_and_damage_is_not_success() {
        let qwen = br#"{"id":"a","index":0,"type":"result","subtype":"success","uuid":"u","session_id":"s","is_error":false,"duration_ms":1,"duration_api_ms":1,"num_turns":1,"result":"hi","usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2},"permission_denials":[],"model":"m","attempts":1}"#;
        assert_eq!(successful_id(qwen).as_deref(), Some("a"));
        let openai = br#"{"id":"b1","custom_id":"b","response":{"status_code":200,"request_id":null,"body":{}},"error":null}"#;
        assert_eq!(successful_id(openai).as_deref(), Some("b"));
        let failed =
            br#"{"id":"c1","custom_id":"c","response":null,"error":{"code":"x","message":"y"}}"#;
        assert_eq!(successful_id(failed), None);
        assert_eq!(successful_id(&qwen[..qwen.len() - 3]), None);
    }

    #[test]
    fn failures_are_written_as_triples() {
        let f = JobFailure {
            id: "a".into(),
            kind: "api_error".into(),
            message: "m".into(),
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"["a","api_error","m"]"#
        );
    }
}
