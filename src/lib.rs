//! Library behind the `qwen` and `qwen-code` binaries: a headless runner for OpenAI-compatible chat
//! APIs. `ARCHITECTURE.md` at the repository root maps the modules.

mod app;
mod ask;
mod auth;
mod budget;
mod cli;
mod client;
mod commands;
mod config;
mod context;
mod cost;
mod diag;
mod error;
mod exit;
mod fallback;
mod fsutil;
mod gitignore;
mod idset;
mod job;
mod otel;
mod output;
mod paths;
mod progress;
mod prompt;
mod prompt_file;
mod references;
mod request;
mod result_file;
mod sanitize;
mod schema;
mod secret;
mod sessions;
mod settings;
mod signals;
mod stream_input;
mod yaml;

use std::process::ExitCode;

/// The whole program, given the name it was called by (`qwen` or `qwen-code`).
pub fn main_entry(bin_name: &'static str) -> ExitCode {
    let ctx = context::Context::from_process();
    app::main(bin_name, std::env::args_os().collect(), &ctx).into()
}

/// The PKCE S256 challenge (RFC 7636), exposed for the OAuth tests' fake server.
#[doc(hidden)]
pub use auth::oauth::s256_challenge;
