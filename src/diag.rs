//! Diagnostics on stderr: `error:`+`hint:` lines, warnings, DEBUG lines. A failed write to stderr
//! is ignored: there is nowhere else to say it.
#![allow(clippy::print_stderr)]

use std::io::Write;

pub fn debug(message: &str) {
    let _ = writeln!(std::io::stderr(), "DEBUG {message}");
}

pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// `error: ...` then `hint: ...`, as every failure is reported in text.
pub fn error(err: &crate::error::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}

/// A line for a machine that reads stderr, such as a GitHub Actions workflow command.
pub fn raw(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Free-form text for people (summaries, status), on stderr.
pub fn text(message: &str) {
    let _ = write!(std::io::stderr(), "{message}");
}

/// A question for the person at the terminal, on stderr, without a newline, flushed at once.
pub fn prompt(question: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
}
