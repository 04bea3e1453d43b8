//! Diagnostics on stderr: `error:`+`hint:` lines, warnings, DEBUG lines. A failed write to stderr
//! is ignored: there is nowhere else to say it.
#![allow(
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "the one writer of stderr"
)]

use std::io::Write;

pub(crate) fn debug(message: &str) {
    let _ = writeln!(std::io::stderr(), "DEBUG {message}");
}

pub(crate) fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// `error: ...` then `hint: ...`, as every failure is reported in text.
pub(crate) fn error(message: &str, hint: Option<&str>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {message}");
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}

/// A line for a machine that reads stderr, such as a GitHub Actions workflow command.
pub(crate) fn raw(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Free-form text for people (summaries, status), on stderr.
pub(crate) fn text(message: &str) {
    let _ = write!(std::io::stderr(), "{message}");
}

/// A question for the person at the terminal, on stderr, without a newline, flushed at once.
pub(crate) fn prompt(question: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
}
