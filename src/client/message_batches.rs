//! Anthropic's Message Batches, over the Batch API client's transport (its key header, retry rule
//! and sanitiser), as Anthropic's API reference defines them: "Create a Message Batch"
//! (`POST /v1/messages/batches`, `{"requests": [{"custom_id", "params"}]}`, at most 100,000
//! requests, `custom_id` matching `^[a-zA-Z0-9_-]{1,64}$`,
//! <https://docs.anthropic.com/en/api/creating-message-batches>), "Retrieve a Message Batch"
//! (`GET /v1/messages/batches/{id}`: `processing_status` `in_progress` / `canceling` / `ended`,
//! `request_counts` `{processing, succeeded, errored, canceled, expired}`, RFC 3339 times,
//! `results_url` once ended), "Cancel a Message Batch" (`POST …/{id}/cancel`), "Delete a Message
//! Batch" (`DELETE …/{id}`), and "Retrieve Message Batch results" (JSON Lines from `results_url`,
//! one `{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" | "expired"}}` per
//! request, in any order). "Batch limitations" in the Message Batches guide
//! (<https://docs.anthropic.com/en/docs/build-with-claude/batch-processing>): 100,000 requests or
//! 256 MB per batch, whichever comes first. A batch carries no metadata.

use std::path::Path;
use std::time::UNIX_EPOCH;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::ApiError;
use super::batch_api::{Batch, BatchApi};

/// The most requests Anthropic takes in one batch.
pub(crate) const MAX_REQUESTS: u64 = 100_000;
/// The largest create body Anthropic takes (256 MB), less the envelope qwen wraps around the
/// part file.
pub(crate) const MAX_BYTES: u64 = 256_000_000 - (HEAD.len() + TAIL.len()) as u64;
/// The create body around a part file's requests (which are separated by commas).
const HEAD: &str = "{\"requests\":[";
const TAIL: &str = "]}";

/// Whether `id` can be a request's `custom_id` (`^[a-zA-Z0-9_-]{1,64}$`).
pub(crate) fn is_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A `message_batch` object in the fields of an `OpenAI` batch object: its `processing_status` as
/// a status (`in_progress`; `canceling` → `cancelling`; `ended` → `cancelled` when a cancel was
/// initiated, else `completed`), its counts as `total` / `completed` (succeeded) / `failed`
/// (errored, canceled, expired), `created_at` in seconds, and `results_url`.
pub(crate) fn as_batch(v: &Value) -> Result<Value, String> {
    if v.get("type").and_then(Value::as_str) != Some("message_batch") {
        return Err("the answer is not a message_batch object".to_owned());
    }
    let counts = v.get("request_counts").unwrap_or(&Value::Null);
    let n = |k: &str| counts.get(k).and_then(Value::as_u64).unwrap_or(0);
    let total = ["processing", "succeeded", "errored", "canceled", "expired"]
        .iter()
        .map(|k| n(k))
        .fold(0u64, u64::saturating_add);
    let failed = n("errored")
        .saturating_add(n("canceled"))
        .saturating_add(n("expired"));
    let cancelled = v.get("cancel_initiated_at").is_some_and(|c| !c.is_null());
    let status = match v.get("processing_status").and_then(Value::as_str) {
        Some("canceling") => "cancelling",
        Some("ended") if cancelled => "cancelled",
        Some("ended") => "completed",
        // Anything else is checked as a word by the client, like an `OpenAI` status.
        Some(other) => other,
        None => return Err("the message_batch has no processing_status".to_owned()),
    };
    let created = v
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(super::wire::anthropic::rfc3339)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    Ok(json!({
        "id": v.get("id"),
        "status": status,
        "request_counts": {"total": total, "completed": n("succeeded"), "failed": failed},
        "created_at": created,
        "results_url": v.get("results_url").filter(|u| u.is_string()),
    }))
}

impl BatchApi {
    /// `POST /v1/messages/batches`, the body streamed from `file` (a part file: the requests
    /// separated by commas) inside `{"requests":[…]}`. Not retried: a create whose answer is
    /// lost cannot be found again (a batch carries no metadata), so the caller says so.
    pub(crate) async fn create_message_batch(
        &self,
        file: std::fs::File,
        path: &Path,
    ) -> Result<Batch, ApiError> {
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::from_std(file);
        let size = file
            .metadata()
            .await
            .map_err(|e| ApiError::Network(format!("cannot read `{}`: {e}", path.display())))?
            .len();
        let length = (HEAD.len() + TAIL.len()) as u64 + size;
        let reader = std::io::Cursor::new(HEAD.as_bytes())
            .chain(file)
            .chain(std::io::Cursor::new(TAIL.as_bytes()));
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            reader,
            64 * 1024,
        ));
        let response = self
            .request(Method::POST, self.url("v1/messages/batches"))
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, length)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let bytes = self.answer_bytes(response).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::InvalidResponse(self.scrubbed(&format!(
                "the Message Batches API answered with invalid JSON ({e})"
            )))
        })?;
        self.parse_batch(value)
    }

    /// The results of an ended batch from its `results_url` into `dest` (at most `max` bytes),
    /// as [`BatchApi::download`] does a file. The URL must be on the base URL's origin: the key
    /// is never sent to a host the server names.
    pub(crate) async fn download_results(
        &self,
        batch: &Batch,
        dest: &Path,
        max: u64,
    ) -> Result<u64, ApiError> {
        let Some(text) = &batch.results_url else {
            return Err(ApiError::InvalidResponse(format!(
                "the ended batch `{}` has no results_url",
                batch.id
            )));
        };
        let url = Url::parse(text)
            .ok()
            .filter(|u| u.origin() == self.base.origin());
        let Some(url) = url else {
            return Err(ApiError::InvalidResponse(format!(
                "the results_url of batch `{}` is not on the base URL's host; the key is not sent there",
                batch.id
            )));
        };
        let done = self
            .retried(|| self.download_once(&url, &batch.id, dest, max))
            .await;
        if done.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        done
    }

    /// `DELETE /v1/messages/batches/{id}` (an ended batch); one already gone counts as deleted.
    pub(crate) async fn delete_message_batch(&self, id: &str) -> Result<(), ApiError> {
        let url = self.url_of("v1/messages/batches", id, None)?;
        match self.json_idempotent(Method::DELETE, url, None).await {
            Ok(_) | Err(ApiError::Http { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_batches_read_as_batch_objects() {
        let batch = |status: &str, cancel: Value| {
            json!({"id": "msgbatch_1", "type": "message_batch", "processing_status": status,
                "request_counts": {"processing": 1, "succeeded": 5, "errored": 1, "canceled": 2, "expired": 1},
                "created_at": "2024-08-20T18:37:24.100435Z", "cancel_initiated_at": cancel,
                "results_url": null})
        };
        let cases = [
            ("in_progress", Value::Null, "in_progress"),
            ("canceling", json!("2024-08-20T18:40:00Z"), "cancelling"),
            ("ended", json!("2024-08-20T18:40:00Z"), "cancelled"),
            ("ended", Value::Null, "completed"),
        ];
        for (status, cancel, want) in cases {
            let v = as_batch(&batch(status, cancel)).unwrap();
            assert_eq!(v["status"], want, "{status}");
            assert_eq!(
                v["request_counts"],
                json!({"total": 10, "completed": 5, "failed": 4})
            );
            assert_eq!(v["created_at"], 1_724_179_044);
            assert!(v["results_url"].is_null());
        }
        assert!(as_batch(&json!({"id": "b", "type": "message"})).is_err());
    }

    #[test]
    fn custom_ids_follow_anthropics_pattern() {
        for good in ["a", "job-1", "Q_2", &"x".repeat(64)] {
            assert!(is_custom_id(good), "{good}");
        }
        for bad in ["", "a.b", "a b", "ü", "a/b", &"x".repeat(65)] {
            assert!(!is_custom_id(bad), "{bad}");
        }
    }
}
