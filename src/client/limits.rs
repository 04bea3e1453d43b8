//! How much of a response is read: a server can send any number of bytes, and none of them may
//! end the process with an allocation failure. The answer text is capped by
//! `--max-response-bytes`, one event (or a whole JSON body) by a little more than that, and an
//! error body by `MAX_ERROR_BODY_BYTES`.

/// `--max-response-bytes` by default: 64 MiB of answer text.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Only this much of an error body is read; its message is shortened further.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The longest single SSE line or event, or whole JSON body, for an answer limit: the answer
/// JSON-escaped (at most twice as long for ordinary text) plus room for the envelope.
pub(crate) fn event_limit(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(64 * 1024)
}

/// Read a body up to `cap` bytes. `true` when the whole body fit; `false` when it was longer
/// (the rest is never read: the connection is dropped with the response).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}
