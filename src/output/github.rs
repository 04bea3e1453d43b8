//! GitHub Actions integration: workflow commands (`::add-mask::`, `::error::`, `::warning::`) and the Markdown
//! written to `$GITHUB_STEP_SUMMARY`, as pure functions, plus the one file append and `warn`.
//!
//! The commands are meant for **stderr**: the runner parses both streams, and stdout stays data.
//! Escaping follows the Actions toolkit (`@actions/core`): a command's data escapes `%`, `\r`, `\n`;
//! a property value also escapes `:` and `,`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::schema::JobFailure;
use crate::client::Usage;
use crate::config::env::{EnvSnapshot, GITHUB_ACTIONS, GITHUB_STEP_SUMMARY};
use crate::cost::{Cost, CostSource, CostTotal};
use crate::sanitize::{first_chars, prefix_bytes};

/// At most this many failed jobs are listed in a batch summary; the rest are counted.
pub(crate) const MAX_FAILURE_ROWS: usize = 50;

/// A single run's answer is cut to this many bytes in the summary (GitHub refuses a step summary
/// over 1 MiB); the whole answer is still on stdout.
pub(crate) const MAX_SUMMARY_ANSWER_BYTES: usize = 64 * 1024;

/// A failure message in the batch failures table is cut to this many characters.
const MAX_CELL_CHARS: usize = 300;

/// Whether we run inside a GitHub Actions job (`GITHUB_ACTIONS=true`, as the runner sets it).
pub(crate) fn is_github_actions(env: &EnvSnapshot) -> bool {
    env.get(GITHUB_ACTIONS) == Some("true")
}

/// A warning on stderr, `warning: MESSAGE`; inside GitHub Actions also as a `::warning::`
/// annotation, so that it shows on the run's summary page, as `actions/ai-inference`'s
/// `core.warning` did.
pub(crate) fn warn(env: &EnvSnapshot, message: &str) {
    crate::diag::warn(&format!("warning: {message}"));
    if is_github_actions(env) {
        crate::diag::raw(&warning_command(Some("qwen"), message));
    }
}

/// Where the step summary goes: `$GITHUB_STEP_SUMMARY`, only inside GitHub Actions.
pub(crate) fn step_summary_path(env: &EnvSnapshot) -> Option<PathBuf> {
    if is_github_actions(env) {
        env.get(GITHUB_STEP_SUMMARY).map(PathBuf::from)
    } else {
        None
    }
}

/// A workflow command's message (data part).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (`title=...`).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::add-mask::<secret>`: the runner replaces the value with `***` in every later log line.
/// The runner matches masks line by line, so a secret is expected to be one line (API keys are).
pub(crate) fn mask_command(secret: &str) -> String {
    format!("::add-mask::{}", escape_data(secret))
}

/// `::error title=<title>::<message>`: an error annotation on the run's summary page.
pub(crate) fn error_command(title: Option<&str>, message: &str) -> String {
    annotation("error", title, message)
}

/// `::warning title=<title>::<message>`: a warning annotation on the run's summary page.
pub(crate) fn warning_command(title: Option<&str>, message: &str) -> String {
    annotation("warning", title, message)
}

fn annotation(kind: &str, title: Option<&str>, message: &str) -> String {
    match title.filter(|t| !t.is_empty()) {
        Some(title) => format!(
            "::{kind} title={}::{}",
            escape_property(title),
            escape_data(message)
        ),
        None => format!("::{kind}::{}", escape_data(message)),
    }
}

/// `435 ms`, `12.34 s`, `2 min 05 s`.
fn human_duration(ms: u128) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{:02} s", ms / 1000, (ms % 1000) / 10)
    } else {
        let secs = ms / 1000;
        format!("{} min {:02} s", secs / 60, secs % 60)
    }
}

/// Text for one Markdown table cell: no line breaks, no pipes, no HTML.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with `…` when something was cut.
/// A code fence longer than any run of backticks in `text` (at least three).
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// The Markdown summary of one run: model, tokens, duration and status in a table, then the
/// answer (or the error) folded in `<details>`.
pub(crate) fn single_run_summary(
    model: &str,
    usage: Option<Usage>,
    cost: Cost,
    duration_ms: u128,
    outcome: Result<&str, &str>,
) -> String {
    single_run_summary_with(model, usage, cost, duration_ms, outcome, &str::to_owned)
}

/// `$0.001234 (provider)`, or `unknown`: never `$0` for a cost nobody reported.
pub(crate) fn cost_text(usd: Option<f64>, source: Option<CostSource>) -> String {
    match (usd, source) {
        (Some(usd), Some(source)) => {
            let from = match source {
                CostSource::Provider => "reported by the provider",
                CostSource::PriceTable => "from --prices",
                CostSource::Mixed => "provider and --prices",
            };
            format!("${usd:.6} ({from})")
        }
        _ => "unknown".to_owned(),
    }
}

/// `single_run_summary`, with `clean` applied to the part of the answer or error that is shown
/// (the sanitiser, for server text: only the shown part, so that a huge answer costs nothing).
pub(crate) fn single_run_summary_with(
    model: &str,
    usage: Option<Usage>,
    cost: Cost,
    duration_ms: u128,
    outcome: Result<&str, &str>,
    clean: &dyn Fn(&str) -> String,
) -> String {
    let (status, label, body) = match outcome {
        Ok(answer) => ("success", "Answer", answer),
        Err(error) => ("failed", "Error", error),
    };
    let tokens = usage.map_or_else(
        || "unknown".to_owned(),
        |u| {
            format!(
                "{} in / {} out / {} total",
                u.input_tokens, u.output_tokens, u.total_tokens
            )
        },
    );
    let mut md = String::new();
    let _ = writeln!(md, "### qwen: {status}\n");
    md.push_str("| | |\n|---|---|\n");
    let _ = writeln!(md, "| model | {} |", cell(model));
    let _ = writeln!(md, "| tokens | {tokens} |");
    let _ = writeln!(md, "| cost | {} |", cost_text(cost.usd, cost.source));
    let _ = writeln!(md, "| duration | {} |", human_duration(duration_ms));
    let _ = writeln!(md, "| status | {status} |\n");

    let shown = prefix_bytes(body, MAX_SUMMARY_ANSWER_BYTES);
    let cleaned = clean(shown);
    let fence = fence_for(&cleaned);
    let _ = writeln!(md, "<details><summary>{label}</summary>\n");
    let _ = writeln!(md, "{fence}text");
    md.push_str(&cleaned);
    if !cleaned.is_empty() && !cleaned.ends_with('\n') {
        md.push('\n');
    }
    let _ = writeln!(md, "{fence}\n");
    if shown.len() < body.len() {
        let _ = writeln!(
            md,
            "_Cut here: {} more bytes. The whole text is in the step's output._\n",
            body.len() - shown.len()
        );
    }
    md.push_str("</details>\n");
    md
}

/// What a batch summary shows; the batch runner fills it from its own counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSummaryView<'a> {
    pub(crate) jobs: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) wall_ms: u128,
    pub(crate) requests_per_sec: f64,
    /// 429s received for rate (the batch was held back, no job was lost to them).
    pub(crate) rate_limited: u64,
    /// `(job id, error type, message)` for each failed job, in any order.
    pub(crate) failures: &'a [JobFailure],
    /// What the jobs cost.
    pub(crate) cost: CostTotal,
    /// Time spent waiting on rate limits (paused by the server's 429s).
    pub(crate) rate_limit_wait_ms: u64,
}

/// The Markdown summary of a batch: counts, throughput, and a table of failures (capped).
pub(crate) fn batch_summary(view: &BatchSummaryView) -> String {
    let mut md = String::new();
    let status = if view.failed == 0 {
        "success"
    } else {
        "failures"
    };
    let _ = writeln!(
        md,
        "### qwen batch: {status}, {} of {} jobs succeeded\n",
        view.succeeded, view.jobs
    );
    md.push_str("| jobs | succeeded | failed | retried | input tokens | output tokens | wall time | requests/s | rate limited (429) |\n");
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
        view.jobs,
        view.succeeded,
        view.failed,
        view.retried,
        view.input_tokens,
        view.output_tokens,
        human_duration(view.wall_ms),
        view.requests_per_sec,
        view.rate_limited
    );
    let mut cost = cost_text(view.cost.usd, view.cost.source);
    if view.cost.unknown > 0 && view.cost.usd.is_some() {
        let _ = write!(
            cost,
            ", not counting {} jobs of unknown cost",
            view.cost.unknown
        );
    }
    let _ = writeln!(md, "\nCost: {cost}.");
    if view.rate_limit_wait_ms > 0 {
        let _ = writeln!(
            md,
            "Waited {} on rate limits.",
            human_duration(u128::from(view.rate_limit_wait_ms))
        );
    }
    if view.failures.is_empty() {
        return md;
    }
    md.push_str("\n#### Failed jobs\n\n| job | error | message |\n|---|---|---|\n");
    for failure in view.failures.iter().take(MAX_FAILURE_ROWS) {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            cell(&failure.id),
            cell(&failure.kind),
            cell(&first_chars(&failure.message, MAX_CELL_CHARS))
        );
    }
    let more = view.failures.len().saturating_sub(MAX_FAILURE_ROWS);
    if more > 0 {
        let _ = writeln!(
            md,
            "\n… and {more} more (every failed job has a line in the results file)."
        );
    }
    md
}

/// Append Markdown to the step summary file, creating it if missing, ending with a newline.
pub(crate) fn append_summary(path: &Path, markdown: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::with_capacity(markdown.len() + 1);
    text.push_str(markdown);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn github_actions_is_detected_only_from_true() {
        let cases = [
            (vec![], false),
            (vec![("GITHUB_ACTIONS", "true")], true),
            (vec![("GITHUB_ACTIONS", "")], false),
            (vec![("GITHUB_ACTIONS", "false")], false),
            (vec![("GITHUB_ACTIONS", "1")], false),
            (vec![("CI", "true")], false),
        ];
        for (pairs, want) in cases {
            assert_eq!(is_github_actions(&env(&pairs)), want, "{pairs:?}");
        }
    }

    #[test]
    fn step_summary_path_needs_github_actions() {
        let inside = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", "/tmp/summary.md"),
        ]);
        assert_eq!(
            step_summary_path(&inside),
            Some(PathBuf::from("/tmp/summary.md"))
        );
        let outside = env(&[("GITHUB_STEP_SUMMARY", "/tmp/summary.md")]);
        assert_eq!(step_summary_path(&outside), None);
        let unset = env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", "")]);
        assert_eq!(step_summary_path(&unset), None);
    }

    #[test]
    fn mask_command_escapes_data() {
        let cases = [
            ("sk-abc123", "::add-mask::sk-abc123"),
            ("50%off", "::add-mask::50%25off"),
            ("a\r\nb", "::add-mask::a%0D%0Ab"),
            ("key:with,colon", "::add-mask::key:with,colon"),
            ("%0A", "::add-mask::%250A"),
        ];
        for (secret, want) in cases {
            assert_eq!(mask_command(secret), want, "{secret:?}");
        }
    }

    #[test]
    fn error_command_escapes_title_and_message() {
        let cases = [
            (None, "boom", "::error::boom"),
            (Some(""), "boom", "::error::boom"),
            (
                Some("qwen: job a, rate_limit"),
                "429: slow down",
                "::error title=qwen%3A job a%2C rate_limit::429: slow down",
            ),
            (
                Some("100%"),
                "line 1\nline 2\r\n50% done",
                "::error title=100%25::line 1%0Aline 2%0D%0A50%25 done",
            ),
            (Some("a\nb"), "m", "::error title=a%0Ab::m"),
        ];
        for (title, message, want) in cases {
            assert_eq!(error_command(title, message), want, "{title:?} {message:?}");
            let warning = want.replacen("::error", "::warning", 1);
            assert_eq!(warning_command(title, message), warning, "{title:?}");
        }
    }

    #[test]
    fn commands_are_one_line() {
        let nasty = "a\nb\rc%d::e,f";
        assert!(!mask_command(nasty).contains(['\n', '\r']));
        assert!(!error_command(Some(nasty), nasty).contains(['\n', '\r']));
    }

    #[test]
    fn durations_read_well() {
        let cases = [
            (0, "0 ms"),
            (435, "435 ms"),
            (1000, "1.00 s"),
            (12_345, "12.34 s"),
            (59_999, "59.99 s"),
            (60_000, "1 min 00 s"),
            (125_000, "2 min 05 s"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(ms), want);
        }
    }

    #[test]
    fn fences_outgrow_backtick_runs() {
        let cases = [
            ("plain", "```"),
            ("a `b` c", "```"),
            ("```rust\nfn x(){}\n```", "````"),
            ("``````", "```````"),
            ("", "```"),
        ];
        for (text, want) in cases {
            assert_eq!(fence_for(text), want, "{text:?}");
        }
    }

    #[test]
    fn cells_have_no_pipes_newlines_or_html() {
        assert_eq!(cell("a|b"), "a&#124;b");
        assert_eq!(cell("l1\nl2\r\nl3\rl4"), "l1<br>l2<br>l3<br>l4");
        assert_eq!(cell("<details> & co"), "&lt;details&gt; &amp; co");
        assert_eq!(cell("plain text: ok"), "plain text: ok");
    }

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(first_chars("héllo", 10), "héllo");
        assert_eq!(first_chars("héllo", 2), "hé…");
        assert_eq!(prefix_bytes("héllo", 2), "h");
        assert_eq!(prefix_bytes("héllo", 3), "hé");
        assert_eq!(prefix_bytes("abc", 10), "abc");
    }

    #[test]
    fn single_run_success_summary() {
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 2,
            total_tokens: 14,
            reasoning_tokens: None,
            ..Usage::default()
        };
        let md = single_run_summary(
            "gpt-4o",
            Some(usage),
            Cost::known(0.0125, CostSource::Provider),
            435,
            Ok("Hello world"),
        );
        assert!(
            md.contains("| cost | $0.012500 (reported by the provider) |"),
            "{md}"
        );
        assert!(md.starts_with("### qwen: success\n"), "{md}");
        assert!(md.contains("| model | gpt-4o |"), "{md}");
        assert!(md.contains("| tokens | 12 in / 2 out / 14 total |"), "{md}");
        assert!(md.contains("| duration | 435 ms |"), "{md}");
        assert!(md.contains("| status | success |"), "{md}");
        assert!(
            md.contains("<details><summary>Answer</summary>\n\n```text\nHello world\n```\n"),
            "{md}"
        );
        assert!(md.ends_with("</details>\n"), "{md}");
    }

    #[test]
    fn single_run_failure_summary_shows_the_error_and_unknown_tokens() {
        let md = single_run_summary(
            "m|x",
            None,
            Cost::default(),
            2500,
            Err("HTTP 429: slow down"),
        );
        assert!(md.starts_with("### qwen: failed\n"), "{md}");
        assert!(md.contains("| model | m&#124;x |"), "{md}");
        assert!(md.contains("| tokens | unknown |"), "{md}");
        assert!(md.contains("| duration | 2.50 s |"), "{md}");
        assert!(md.contains("<summary>Error</summary>"), "{md}");
        assert!(md.contains("HTTP 429: slow down"), "{md}");
    }

    #[test]
    fn single_run_answer_with_fences_stays_inside_its_block() {
        let answer = "Here:\n```rust\nfn main() {}\n```\nDone.";
        let md = single_run_summary("m", None, Cost::default(), 1, Ok(answer));
        assert!(md.contains(&format!("````text\n{answer}\n````\n")), "{md}");
    }

    #[test]
    fn single_run_long_answer_is_cut_for_the_summary() {
        let answer = "é".repeat(MAX_SUMMARY_ANSWER_BYTES); // two bytes each
        let md = single_run_summary("m", None, Cost::default(), 1, Ok(&answer));
        assert!(md.len() < MAX_SUMMARY_ANSWER_BYTES + 1024, "{}", md.len());
        assert!(md.contains(&format!("Cut here: {MAX_SUMMARY_ANSWER_BYTES} more bytes")));
    }

    fn failures(n: usize) -> Vec<JobFailure> {
        (0..n)
            .map(|i| JobFailure {
                id: format!("job-{i}"),
                kind: "api_error".to_owned(),
                message: format!("HTTP 400 | bad\nrequest {i}"),
            })
            .collect()
    }

    fn view(failures: &[JobFailure]) -> BatchSummaryView<'_> {
        BatchSummaryView {
            jobs: 100,
            succeeded: 100 - failures.len() as u64,
            failed: failures.len() as u64,
            retried: 7,
            input_tokens: 1234,
            output_tokens: 567,
            wall_ms: 12_345,
            requests_per_sec: 8.1234,
            rate_limited: 3,
            failures,
            cost: CostTotal::default(),
            rate_limit_wait_ms: 0,
        }
    }

    #[test]
    fn batch_summary_without_failures_has_counts_and_throughput() {
        let md = batch_summary(&view(&[]));
        assert!(
            md.starts_with("### qwen batch: success, 100 of 100 jobs succeeded\n"),
            "{md}"
        );
        assert!(
            md.contains("| 100 | 100 | 0 | 7 | 1234 | 567 | 12.34 s | 8.1 | 3 |"),
            "{md}"
        );
        assert!(!md.contains("Failed jobs"), "{md}");
    }

    #[test]
    fn batch_summary_lists_failures_with_escaped_cells() {
        let f = failures(3);
        let md = batch_summary(&view(&f));
        assert!(md.contains("failures, 97 of 100 jobs succeeded"), "{md}");
        assert!(md.contains("| job | error | message |"), "{md}");
        assert!(
            md.contains("| job-2 | api_error | HTTP 400 &#124; bad<br>request 2 |"),
            "{md}"
        );
        assert!(!md.contains("more"), "{md}");
    }

    #[test]
    fn batch_summary_caps_the_failures_table() {
        let f = failures(MAX_FAILURE_ROWS + 7);
        let md = batch_summary(&view(&f));
        let rows = md.lines().filter(|l| l.starts_with("| job-")).count();
        assert_eq!(rows, MAX_FAILURE_ROWS);
        assert!(md.contains("… and 7 more"), "{md}");
    }

    #[test]
    fn batch_summary_cuts_long_messages() {
        let f = vec![JobFailure {
            id: "a".to_owned(),
            kind: "e".to_owned(),
            message: "x".repeat(5000),
        }];
        let md = batch_summary(&view(&f));
        let row = md
            .lines()
            .find(|l| l.starts_with("| a |"))
            .unwrap_or_default();
        assert!(row.len() < 400, "{}", row.len());
        assert!(row.contains('…'));
    }

    #[test]
    fn append_summary_creates_then_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        append_summary(&path, "# one").unwrap();
        append_summary(&path, "# two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# one\n# two\n");
    }

    #[test]
    fn append_summary_reports_an_unwritable_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("summary.md");
        assert!(append_summary(&path, "x").is_err());
    }
}
