//! Library behind the `qwen` and `qwen-code` binaries: a headless runner for OpenAI-compatible chat APIs.

pub mod app;
pub mod auth;
pub mod auth_commands;
pub mod batch;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod exit;
pub mod fsutil;
pub mod generate;
pub mod gha;
pub mod gitignore;
pub mod job;
pub mod login;
pub mod oauth;
pub mod output;
pub mod progress;
pub mod prompt;
pub mod provider_batch;
pub mod run;
pub mod settings;
pub mod signals;
pub mod status;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// The whole program, given the name it was called by (`qwen` or `qwen-code`).
pub fn main_entry(bin_name: &'static str) -> ExitCode {
    let matches = cli::Cli::command()
        .name(bin_name)
        .bin_name(bin_name)
        .try_get_matches();
    let cli = match matches.and_then(|m| cli::Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::ExitStatus::Usage.into()
            } else {
                exit::ExitStatus::Success.into()
            };
        }
    };
    let ctx = app::Context::from_process();
    app::run(cli, &ctx).into()
}
