//! Integration tests: the real `qwen` binary, run hermetically against wiremock servers.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

mod actions_env;
mod batch_support;
mod common;
mod common_oauth;

mod distribution;
mod dotenv;
mod exit_codes;
mod github_actions;
mod jobs;
mod login;
mod oauth;
mod output;
mod precedence;
mod ratelimit;
mod retries;
mod secrets;
mod stdin;
