//! `--openai-logging`: each attempt of a chat request written to a JSON file of its own, in Qwen
//! Code's format (packages/core/src/utils/openaiLogger.ts, `OpenAILogger.logInteraction`): named
//! `openai-<ISO time, colons as dashes>-<8 hex>.json`, holding `timestamp`, `request` (the body
//! sent), `response` (the answer as one `chat.completion` object, as Qwen Code logs a streamed
//! answer consolidated: loggingContentGenerator.ts `consolidateLlmResponsesForLogging`) or `null`,
//! and `error` (`{message}`) or `null`; qwen adds `status`, the HTTP status when the server
//! answered. Headers are never logged; the key and credential header values are removed from the
//! whole text. Each part is bounded, so one file is bounded too.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::{ApiError, ChatClient, Completion};
use crate::diag;

/// The most bytes of a request or response body kept in a log file; a longer one is kept as the
/// start of its text, marked as cut.
pub(crate) const MAX_LOGGED_PART_BYTES: usize = 1024 * 1024;

impl ChatClient {
    /// Log one attempt to `--openai-logging`'s directory, if it is set. A file that cannot be
    /// written is one warning per run, never the request's failure (Qwen Code's
    /// `safelyLogOpenAIInteraction` likewise only warns).
    pub(super) fn log_exchange(
        &self,
        body: &Value,
        status: Option<u16>,
        result: &Result<Completion, ApiError>,
    ) {
        let Some(dir) = &self.settings.exchange_log else {
            return;
        };
        let now = SystemTime::now();
        let document = json!({
            "timestamp": iso8601(now),
            "request": bounded(body),
            "status": status,
            "response": result.as_ref().ok().map(|c| bounded(&chat_completion(c))),
            "error": result.as_ref().err().map(|e| json!({"message": e.to_string()})),
        });
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        let clean = self.without_secrets(&text);
        if let Err(e) = write_log(dir, now, &clean)
            && self.first_notice("openai-logging")
        {
            diag::warn(&format!(
                "warning: --openai-logging: cannot write to `{}` ({e}); the exchanges of this run are not logged",
                dir.display()
            ));
        }
    }
}

/// The file of one exchange: `openai-<time>-<id>.json`, private (0600), never replacing another.
fn write_log(dir: &Path, now: SystemTime, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let stamp = iso8601(now).replace(':', "-");
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(format!("openai-{stamp}-{id}.json")))?;
    file.write_all(text.as_bytes())
}

/// A completion as the `chat.completion` object a non-streamed answer would have been.
fn chat_completion(c: &Completion) -> Value {
    let mut message = json!({"role": "assistant", "content": c.text});
    if !c.reasoning.is_empty() {
        message["reasoning_content"] = json!(c.reasoning);
    }
    json!({
        "id": c.response_id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.server_model,
        "choices": [{"index": 0, "message": message, "finish_reason": c.finish_reason}],
        "usage": c.usage.map(|u| json!({
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
        })),
    })
}

/// `value`, or when its JSON text is longer than [`MAX_LOGGED_PART_BYTES`], the start of that
/// text with how long it was.
fn bounded(value: &Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_LOGGED_PART_BYTES {
        return value.clone();
    }
    json!({
        "truncated": true,
        "bytes": text.len(),
        "start": crate::sanitize::prefix_bytes(&text, MAX_LOGGED_PART_BYTES),
    })
}

/// `2026-01-02T03:04:05.678Z` (UTC, milliseconds), as JavaScript's `toISOString`.
fn iso8601(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_written_as_javascript_writes_them() {
        let at = |secs: u64, ms: u64| {
            iso8601(SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_767_323_045, 678), "2026-01-02T03:04:05.678Z");
    }

    #[test]
    fn a_long_part_is_cut_and_says_so() {
        let long = json!("x".repeat(MAX_LOGGED_PART_BYTES + 10));
        let cut = bounded(&long);
        assert_eq!(cut["truncated"], true);
        assert_eq!(cut["bytes"], MAX_LOGGED_PART_BYTES + 12);
        assert_eq!(
            cut["start"].as_str().map(str::len),
            Some(MAX_LOGGED_PART_BYTES)
        );
        assert_eq!(bounded(&json!({"a": 1})), json!({"a": 1}));
    }
}
