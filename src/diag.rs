//! Diagnostics on stderr: `error:`+`hint:` lines, warnings, DEBUG lines. A failed write to stderr
//! is ignored: there is nowhere else to say it. Every line except `raw` ones (our own workflow
//! commands) passes through `sanitize::neutralise_commands`: a message that carries server text
//! can never start a line a GitHub Actions runner would execute.
#![allow(
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "the one writer of stderr"
)]

use std::io::Write;

use crate::sanitize::neutralise_commands;

pub(crate) fn debug(message: &str) {
    let _ = writeln!(std::io::stderr(), "DEBUG {}", neutralise_commands(message));
}

pub(crate) fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "{}", neutralise_commands(message));
}

/// `error: ...` then `hint: ...`, as every failure is reported in text.
pub(crate) fn error(message: &str, hint: Option<&str>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", neutralise_commands(message));
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "hint: {}", neutralise_commands(hint));
    }
}

/// A line for a machine that reads stderr, such as a GitHub Actions workflow command.
pub(crate) fn raw(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Free-form text for people (summaries, status), on stderr.
pub(crate) fn text(message: &str) {
    let _ = write!(std::io::stderr(), "{}", neutralise_commands(message));
}

/// A question for the person at the terminal, on stderr, without a newline, flushed at once.
pub(crate) fn prompt(question: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
}
