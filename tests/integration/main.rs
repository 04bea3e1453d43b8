//! Integration tests: the real `qwen` binary, run hermetically against wiremock servers.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

mod action_install;
mod actions_env;
mod ai_inference_v2;
mod ai_inference_v2_headers;
mod architecture;
mod bare;
mod batch_api;
mod batch_api_emulator;
mod batch_api_kinds;
mod batch_support;
mod common;
mod common_oauth;
mod completeness;
mod cost;

mod distribution;
mod docs;
mod doors;
mod dotenv;
mod dotenv_compat;
mod exit_codes;
mod github_actions;
mod hardening;
mod hermetic_flags;
mod hostile_server;
mod jobs;
mod login;
mod oauth;
mod one_door;
mod otel;
mod output;
mod precedence;
mod protocols;
mod providers;
mod qwen_code_compat;
mod qwen_code_flags;
mod ratelimit;
mod references;
mod retries;
mod retry_events;
mod schema;
mod secrets;
mod sessions;
mod stdin;
mod stream_input;
mod usage;
