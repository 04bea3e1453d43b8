//! Edits the text of a `.env` file: set or remove a few variables, keep every other line as it was.

use std::collections::HashSet;
use std::fmt::Write as _;

/// The variable a line assigns (`KEY=...` or `export KEY=...`), if it is an assignment.
fn line_key(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let body = trimmed
        .strip_prefix("export ")
        .map_or(trimmed, str::trim_start);
    let (key, _) = body.split_once('=')?;
    let key = key.trim_end();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    valid.then_some(key)
}

/// The line ending a line carries (`"\r\n"`, `"\n"`, or none for a last line without one).
fn ending(line: &str) -> &str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
}

/// Set each of `vars` in `text`: the first line assigning a variable is replaced, later lines
/// assigning it again are dropped (they would override it), and a variable not present yet is
/// appended. Every other line — comments, blank lines, other variables — is kept byte for byte.
pub(crate) fn set_vars(text: &str, vars: &[(&str, &str)]) -> String {
    let mut written: HashSet<&str> = HashSet::new();
    let mut out = String::with_capacity(text.len() + 128);
    for line in text.split_inclusive('\n') {
        match line_key(line).and_then(|k| vars.iter().find(|(name, _)| *name == k)) {
            Some((name, value)) => {
                if written.insert(name) {
                    let end = match ending(line) {
                        "" => "\n",
                        e => e,
                    };
                    let _ = write!(out, "{name}={}{end}", quote(value));
                }
            }
            None => out.push_str(line),
        }
    }
    for (name, value) in vars {
        if written.insert(name) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            let _ = writeln!(out, "{name}={}", quote(value));
        }
    }
    out
}

/// Remove every line assigning one of `names`; returns the new text and how many lines went.
pub(crate) fn remove_vars(text: &str, names: &[&str]) -> (String, usize) {
    let mut removed = 0;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| {
            let hit = line_key(line).is_some_and(|k| names.contains(&k));
            removed += usize::from(hit);
            !hit
        })
        .collect();
    (kept, removed)
}

/// A value written so that dotenv readers give it back unchanged: bare when it is plain,
/// single-quoted (no expansion) when it can be, double-quoted with escapes otherwise.
pub(crate) fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+,~%".contains(c));
    if plain {
        return value.to_owned();
    }
    if !value.contains(['\'', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(text: &str) -> HashMap<String, String> {
        dotenvy::from_read_iter(text.as_bytes())
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn set_vars_replaces_only_its_keys_and_keeps_the_rest() {
        let before = "# my settings\nFOO=bar\nOPENAI_API_KEY=old\n\nexport OPENAI_MODEL = gpt-3\nOTHER='x y'\nOPENAI_API_KEY=dup\n";
        let after = set_vars(
            before,
            &[
                ("OPENAI_API_KEY", "sk-new"),
                ("OPENAI_BASE_URL", "https://h/v1"),
                ("OPENAI_MODEL", "gpt-4o"),
            ],
        );
        assert_eq!(
            after,
            "# my settings\nFOO=bar\nOPENAI_API_KEY=sk-new\n\nOPENAI_MODEL=gpt-4o\nOTHER='x y'\nOPENAI_BASE_URL=https://h/v1\n"
        );
    }

    #[test]
    fn set_vars_on_empty_and_unterminated_text() {
        let cases = [
            ("", "A=1\n"),
            ("X=2", "X=2\nA=1\n"),
            ("A=0", "A=1\n"),
            ("X=2\r\nA=0\r\n", "X=2\r\nA=1\r\n"),
        ];
        for (before, want) in cases {
            assert_eq!(set_vars(before, &[("A", "1")]), want, "{before:?}");
        }
    }

    #[test]
    fn remove_vars_counts_and_keeps_other_lines() {
        let (text, n) = remove_vars(
            "A=1\nOPENAI_API_KEY=x\n# OPENAI_API_KEY=commented\nexport OPENAI_API_KEY=y\nB=2",
            &["OPENAI_API_KEY"],
        );
        assert_eq!(n, 2);
        assert_eq!(text, "A=1\n# OPENAI_API_KEY=commented\nB=2");
    }

    #[test]
    fn quoted_values_read_back_unchanged() {
        for value in [
            "sk-abc_123.XYZ",
            "https://api.example.com/v1",
            "with space",
            "has#hash",
            "dollar$HOME",
            "it's",
            "both ' and \" and \\ and $X",
            "=starts",
        ] {
            let text = set_vars("", &[("K", value)]);
            assert_eq!(parse(&text)["K"], value, "{text}");
        }
    }
}
