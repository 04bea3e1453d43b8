//! Edits the text of a `.env` file: set or remove a few variables, keep every other line as it was.
//!
//! Which lines hold which variable is decided by the same reader as everything else
//! (`dotenv_parse`, what npm dotenv sees), so a multi-line quoted value is replaced or removed
//! whole, and a line that only looks like an assignment (inside such a value) is left alone.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::dotenv_parse::{EntryLines, entry_lines, is_js_space};

/// The file's lines, each with its ending, split where dotenv splits them (`\r\n`, `\r`, `\n`).
fn lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' | b'\n' => Some(i + 1),
            _ => None,
        };
        match end {
            Some(end) => {
                out.push(&text[start..end]);
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The line ending a line carries (`"\r\n"`, `"\n"`, `"\r"`, or none for a last line without one).
fn ending(line: &str) -> &str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else if line.ends_with('\r') {
        "\r"
    } else {
        ""
    }
}

/// A value that no dotenv quoting can give back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the value for `{name}` cannot be written to a .env file (it holds every kind of quote, or a line break together with a literal `\\n`)"
)]
pub(crate) struct Unwritable {
    pub(crate) name: String,
}

/// What to do with one line of the old text.
enum Action<'a> {
    Keep,
    Drop,
    /// Write `name=value` with the ending of line `last` (the entry's last line).
    Replace {
        name: &'a str,
        last: usize,
    },
}

/// Set each of `vars` in `text`: the first entry assigning a variable is replaced (all its lines),
/// later entries assigning it again are dropped (they would override it), and a variable not
/// present yet is appended. Every other line — comments, blank lines, other variables — is kept
/// byte for byte.
pub(crate) fn set_vars(text: &str, vars: &[(&str, &str)]) -> Result<String, Unwritable> {
    let quoted: HashMap<&str, String> = vars
        .iter()
        .map(|&(name, value)| {
            quote(value).map(|q| (name, q)).ok_or_else(|| Unwritable {
                name: name.to_owned(),
            })
        })
        .collect::<Result<_, _>>()?;
    let old = lines(text);
    let mut actions: Vec<Action> = old.iter().map(|_| Action::Keep).collect();
    let mut written: HashSet<&str> = HashSet::new();
    for entry in entry_lines(text) {
        let Some((&name, _)) = quoted.get_key_value(entry.key.as_str()) else {
            continue;
        };
        drop_lines(&mut actions, &entry);
        if written.insert(name) {
            actions[entry.first] = Action::Replace {
                name,
                last: entry.last,
            };
        }
    }
    let mut out = String::with_capacity(text.len() + 128);
    for (line, action) in old.iter().zip(&actions) {
        match action {
            Action::Keep => out.push_str(line),
            Action::Drop => {}
            Action::Replace { name, last } => {
                let end = match old.get(*last).map_or("", |l| ending(l)) {
                    "" => "\n",
                    e => e,
                };
                let _ = write!(out, "{name}={}{end}", quoted[name]);
            }
        }
    }
    for (name, _) in vars {
        if written.insert(name) {
            if !out.is_empty() && !out.ends_with(['\n', '\r']) {
                out.push('\n');
            }
            let _ = writeln!(out, "{name}={}", quoted[name]);
        }
    }
    Ok(out)
}

fn drop_lines(actions: &mut [Action], entry: &EntryLines) {
    let last = entry.last.min(actions.len().saturating_sub(1));
    for action in actions.iter_mut().take(last + 1).skip(entry.first) {
        *action = Action::Drop;
    }
}

/// Remove every entry assigning one of `names` (all its lines); returns the new text and how
/// many entries went.
pub(crate) fn remove_vars(text: &str, names: &[&str]) -> (String, usize) {
    let old = lines(text);
    let mut actions: Vec<Action> = old.iter().map(|_| Action::Keep).collect();
    let mut removed = 0;
    for entry in entry_lines(text) {
        if names.contains(&entry.key.as_str()) {
            drop_lines(&mut actions, &entry);
            removed += 1;
        }
    }
    let kept = old
        .iter()
        .zip(&actions)
        .filter(|(_, a)| matches!(a, Action::Keep))
        .map(|(line, _)| *line)
        .collect();
    (kept, removed)
}

/// A value written so that npm dotenv (and `dotenv_parse`) give it back unchanged, and other
/// dotenv readers too where possible: bare when it is plain; else single quotes, backticks or
/// double quotes, the first that holds it, else bare if dotenv keeps it whole (dotenv has no escapes except `\n`/`\r` inside double
/// quotes, and a backslash before the closing quote escapes it). `None` when none can.
pub(crate) fn quote(value: &str) -> Option<String> {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+,~%".contains(c));
    if plain {
        return Some(value.to_owned());
    }
    let breaks = value.contains(['\n', '\r', '\u{2028}', '\u{2029}']);
    let ends_escaping = value.ends_with('\\');
    for q in ['\'', '`'] {
        if !breaks && !ends_escaping && !value.contains(q) {
            return Some(format!("{q}{value}{q}"));
        }
    }
    let literal_escape = value.contains("\\n") || value.contains("\\r");
    if !(ends_escaping || literal_escape || value.contains(['"', '\u{2028}', '\u{2029}'])) {
        return Some(format!(
            "\"{}\"",
            value.replace('\n', "\\n").replace('\r', "\\r")
        ));
    }
    // Unquoted, dotenv keeps everything up to a `#` or the line's end, then trims.
    let bare = !breaks
        && !value.contains('#')
        && !value.starts_with(['\'', '"', '`'])
        && value.trim_matches(is_js_space) == value;
    bare.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(text: &str) -> HashMap<String, String> {
        crate::config::dotenv_parse::parse(text).vars
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
        )
        .unwrap();
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
            ("X=2\rA=0\rY=3", "X=2\rA=1\rY=3"),
            ("X=2\r", "X=2\rA=1\n"),
        ];
        for (before, want) in cases {
            assert_eq!(set_vars(before, &[("A", "1")]).unwrap(), want, "{before:?}");
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
            "",
            "  padded  ",
            "line1\nline2\r\n",
            "C:\\dir\\",
            "has 'all' \"three\" `quotes`",
            "ends in a backslash \\",
            "${OPENAI_API_KEY}",
            "tab\there",
            "日本語 🎉",
        ] {
            let text = set_vars("OTHER='x'\n", &[("K", value)]).unwrap();
            let vars = parse(&text);
            assert_eq!(vars["K"], value, "{text}");
            assert_eq!(vars["OTHER"], "x", "{text}");
        }
    }

    #[test]
    fn values_no_quoting_holds_are_refused() {
        for value in [
            "'\"` and # together",
            " ends in a backslash \\",
            "a literal \\n and a\nbreak",
            "'starts with a quote' and \"has\" `all` three",
        ] {
            let err = set_vars("", &[("K", value)]).unwrap_err();
            assert_eq!(err.name, "K");
        }
    }

    #[test]
    fn a_multi_line_value_is_replaced_or_removed_whole() {
        let before = "A=1\nOPENAI_API_KEY=\"old\nOPENAI_BASE_URL=http://evil\n\"\nB=2\n";
        assert_eq!(
            set_vars(before, &[("OPENAI_API_KEY", "sk-new")]).unwrap(),
            "A=1\nOPENAI_API_KEY=sk-new\nB=2\n"
        );
        assert_eq!(
            remove_vars(before, &["OPENAI_API_KEY"]),
            ("A=1\nB=2\n".to_owned(), 1)
        );
    }

    #[test]
    fn an_assignment_inside_another_value_is_not_touched() {
        let before = "NOTE=\"example:\nOPENAI_API_KEY=inside\n\"\n";
        let after = set_vars(before, &[("OPENAI_API_KEY", "sk-new")]).unwrap();
        assert_eq!(after, format!("{before}OPENAI_API_KEY=sk-new\n"));
        assert_eq!(parse(&after)["NOTE"], "example:\nOPENAI_API_KEY=inside\n");
        assert_eq!(
            remove_vars(before, &["OPENAI_API_KEY"]),
            (before.to_owned(), 0)
        );
    }

    /// Values as `qwen auth login` would write them; `corpus/written-by-set-vars.env` is this
    /// output, so the oracle (`expected.json`) shows npm dotenv reads each one back unchanged.
    const WRITTEN: &[(&str, &str)] = &[
        ("PLAIN", "sk-abc_123.XYZ"),
        ("URL", "https://api.example.com/v1?a=b&c=d"),
        ("EMPTY", ""),
        ("SPACES", "  padded value  "),
        ("HASH", "has # hash"),
        ("DOLLAR", "sk-ab$cd${OPENAI_API_KEY}"),
        ("APOSTROPHE", "it's"),
        ("TWO_QUOTES", "it's `code`"),
        ("THREE_QUOTES", "has 'all' \"three\" `quotes`"),
        ("BACKSLASH_END", "C:\\dir\\"),
        ("NEWLINES", "line1\nline2\r\nline3"),
        ("UNICODE", "日本語 🎉 é"),
        ("TAB", "a\tb"),
    ];

    #[test]
    fn written_values_are_what_npm_dotenv_reads_back() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dotenv");
        let name = "written-by-set-vars.env";
        let text = set_vars("", WRITTEN).unwrap();
        let file = std::fs::read_to_string(root.join("corpus").join(name)).unwrap();
        assert_eq!(
            text, file,
            "regenerate the corpus file and run scripts/dotenv-oracle.sh"
        );
        let expected: HashMap<String, HashMap<String, String>> =
            serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap())
                .unwrap();
        let want: HashMap<String, String> = WRITTEN
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(expected[name], want);
    }
}
