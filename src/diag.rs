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

/// A duration as a message says it: `360s`, `1.5s`, `300ms` (a limit given as `300ms` is not
/// "0s").
pub(crate) fn duration(d: std::time::Duration) -> String {
    if d.as_secs() == 0 && !d.is_zero() {
        format!("{}ms", d.as_millis().max(1))
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations_keep_what_was_given() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_micros(10), "1ms"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(360), "360s"),
        ] {
            assert_eq!(super::duration(d), text, "{d:?}");
        }
    }
}
