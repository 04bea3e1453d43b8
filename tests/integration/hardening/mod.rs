//! Issue 9: a hostile repository or disk gets a clear error, nothing leaks, nothing is destroyed.
//! Job-file paths, outputs that would destroy inputs, write errors, signals while reading input,
//! durations, small parsing traps, and the `.env` that git would publish.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use wiremock::MockServer;

mod limits_and_traps;
mod paths_and_outputs;
mod security_notes;

async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .map_or(0, |requests| requests.len())
}
