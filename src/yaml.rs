//! YAML from a repository (job files, `.prompt.yml` prompt files): its nesting is bounded before
//! the parser sees it, and a parse error never quotes the text.
//!
//! The parser's cost grows with the nesting depth of flow collections (`[[[[…`: every token checks
//! every open level), so 200 KB of brackets took 42 s of CPU. [`check_depth`] is a single pass that
//! follows YAML's quoting, comments and block scalars well enough to find the flow collections, and
//! refuses more than [`MAX_DEPTH`] levels before anything is parsed.

use serde::de::DeserializeOwned;

/// The deepest nesting of collections accepted (serde's own limit for building values is 128).
pub(crate) const MAX_DEPTH: usize = 64;

/// Parse `text` (already size-capped by its reader) after [`check_depth`]. The error names the
/// line and column, never the content.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    check_depth(text, MAX_DEPTH)?;
    serde_yaml::from_str(text).map_err(|e| describe(&e))
}

/// A parse error without the text it is about: serde quotes a scalar that has the wrong type
/// whole (`invalid type: string "<the whole file>"`), which for a link to a secret file is the secret.
pub(crate) fn describe(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match (text.find('"'), text.rfind('"')) {
        (Some(first), Some(last)) if last > first => {
            format!("{}…{}", &text[..first], &text[last + 1..])
        }
        _ => text,
    }
}

/// Refuse `text` when its collections nest more than `max` levels deep, before it is parsed.
/// Flow collections (`[`, `{`) are counted where YAML reads them as such: not inside quoted
/// scalars, comments or block scalars (`|`, `>`); block collections cost the parser nothing
/// comparable (each level needs a deeper indentation, so their depth is bounded by the size).
pub(crate) fn check_depth(text: &str, max: usize) -> Result<(), String> {
    let mut scan = Scan::default();
    for (number, line) in text.lines().enumerate() {
        scan.line(line);
        if scan.deepest > max {
            return Err(format!(
                "collections nest more than {max} levels deep (line {}): refused before parsing",
                number + 1
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    /// Open flow collections.
    depth: usize,
    deepest: usize,
    /// Inside a quoted scalar that spans lines: its quote.
    quote: Option<char>,
    /// Inside a block scalar: the indentation of its parent node, and of its content once known.
    block: Option<(usize, Option<usize>)>,
    /// Whether the next character starts a token (where a quote or a bracket means something).
    /// Carried from line to line inside a flow collection.
    token_start: bool,
}

impl Scan {
    /// Whether a line with this indentation is the content of the block scalar being read (the
    /// first non-blank line fixes the content's indentation; a less indented line ends it).
    fn in_block(&mut self, indent: usize, blank: bool) -> bool {
        let Some((parent, content)) = self.block else {
            return false;
        };
        match content {
            _ if blank => true,
            Some(m) if indent >= m => true,
            None if indent > parent => {
                self.block = Some((parent, Some(indent)));
                true
            }
            _ => {
                self.block = None;
                false
            }
        }
    }

    /// Inside a quoted scalar: how many characters `c` (followed by `next`) takes, and whether it
    /// closes the scalar.
    fn quoted(&mut self, q: char, c: char, next: Option<char>) -> (usize, bool) {
        if q == '"' && c == '\\' {
            return (2, false);
        }
        if c != q {
            return (1, false);
        }
        if q == '\'' && next == Some('\'') {
            return (2, false);
        }
        self.quote = None;
        (1, true)
    }

    /// Where a line's structure starts: its indentation, or `None` when the line is the content
    /// of a block scalar (nothing in it is structure).
    fn line_start(&mut self, line: &str) -> Option<usize> {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let blank = line.trim().is_empty();
        if self.in_block(indent, blank) {
            return None;
        }
        // A line at the left margin ends a quoted scalar of a nested node (its continuation lines
        // are indented): scanning it as structure can only count more levels, never fewer.
        if self.quote.is_some() && indent == 0 && !blank && self.depth == 0 {
            self.quote = None;
        }
        if self.depth == 0 {
            self.token_start = true;
        }
        Some(indent)
    }

    fn line(&mut self, line: &str) {
        let Some(indent) = self.line_start(line) else {
            return;
        };
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut token_start = self.token_start;
        // A quote that opens a block-context line is a quoted key (one line) or the continuation of
        // a plain scalar: not carried to the next line, so that it cannot hide what follows.
        let mut quote_opens_line = false;
        // The column of the node the line is about: a block scalar's content is indented past it.
        let mut node_col = indent;
        let mut i = 0;
        while i < chars.len() {
            let (col, c) = chars[i];
            let next = chars.get(i + 1).map(|&(_, n)| n);
            if let Some(q) = self.quote {
                let (taken, closed) = self.quoted(q, c, next);
                token_start &= !closed;
                i += taken;
                continue;
            }
            let blank_after = next.is_none_or(char::is_whitespace);
            match c {
                ' ' | '\t' => {}
                '#' if i == 0 || chars[i - 1].1.is_whitespace() => break,
                '"' | '\'' if token_start => {
                    self.quote = Some(c);
                    quote_opens_line = self.depth == 0 && col == indent;
                }
                '[' | '{' if token_start || self.depth > 0 => {
                    self.depth += 1;
                    self.deepest = self.deepest.max(self.depth);
                    token_start = true;
                    i += 1;
                    continue;
                }
                ']' | '}' if self.depth > 0 => {
                    self.depth -= 1;
                    token_start = false;
                }
                ',' if self.depth > 0 => {
                    token_start = true;
                    i += 1;
                    continue;
                }
                '-' | '?' if token_start && blank_after && self.depth == 0 => {
                    node_col = chars
                        .get(i + 1..)
                        .and_then(|rest| rest.iter().find(|(_, ch)| !ch.is_whitespace()))
                        .map_or(col + 1, |&(c2, _)| c2);
                    token_start = true;
                    i += 1;
                    continue;
                }
                ':' if blank_after || self.depth > 0 => {
                    token_start = true;
                    i += 1;
                    continue;
                }
                '|' | '>' if token_start && self.depth == 0 => {
                    self.block = Some(block_scalar(&chars, i, node_col));
                    return;
                }
                // An anchor, a tag or an alias: the token after it still starts a node.
                '&' | '!' | '*' if token_start => {
                    while i < chars.len() && !chars[i].1.is_whitespace() {
                        i += 1;
                    }
                    continue;
                }
                _ => token_start = false,
            }
            i += 1;
        }
        if quote_opens_line {
            self.quote = None;
        }
        self.token_start = token_start;
    }
}

/// A block scalar whose indicator is `chars[at]`: the indentation of its parent node (the key's
/// column, or the `-` of a sequence entry), and of its content when an indicator digit gives it.
fn block_scalar(chars: &[(usize, char)], at: usize, node_col: usize) -> (usize, Option<usize>) {
    let explicit = chars[at + 1..]
        .iter()
        .take_while(|(_, ch)| !ch.is_whitespace())
        .find_map(|(_, ch)| ch.to_digit(10));
    let parent = match chars[..at].iter().rev().find(|(_, ch)| !ch.is_whitespace()) {
        Some(&(dash, '-')) => dash,
        _ => node_col,
    };
    (parent, explicit.map(|d| parent + d as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_wherever_it_hides() {
        let deep = |open: &str| open.repeat(MAX_DEPTH + 1);
        let cases = [
            deep("["),
            deep("{a: "),
            format!("jobs:\n  - prompt: {}\n", deep("[")),
            format!("a: |\n  text\nb: {}\n", deep("[")),
            format!("- a: |\n    x: \"\n  b: {}\n", deep("[")),
            format!("a: \"x\"\nb: {}\n", deep("[\"]\", ")),
            format!("a: &x {}\n", deep("[ &y ")),
            format!("a: 'it''s'\nb: {}\n", deep("[")),
            format!("a: \"open\ncontinued\"\nb: {}\n", deep("[")),
            format!("[[[a\n\"]]]\n{}\n", deep("[")),
            format!("x:\n  a: plain\n    \"cont\n  b: {}\n", deep("[")),
            format!("- |\n  text\n- {}\n", deep("[")),
        ];
        for text in &cases {
            let err = check_depth(text, MAX_DEPTH).expect_err(text);
            assert!(err.contains("nest more than"), "{err}");
        }
    }

    #[test]
    fn brackets_in_text_are_not_nesting() {
        let many = "[".repeat(500);
        let cases = [
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\n"),
            format!("a: |\n  {many}\n  more {many}\nb: [1, [2]]\n"),
            format!("- content: >-\n    {many}\n- x\n"),
            format!("a: text {many}\n"),
            format!("a: x # {many}\n"),
            format!(
                "messages:\n  - role: user\n    content: |\n      {many}\n      \"\n  - role: user\n    content: ok\n"
            ),
            "{\"a\": [[[[1]]]], \"b\": {\"c\": {\"d\": [\"[[[[\"]}}}\n".to_owned(),
        ];
        for text in &cases {
            assert_eq!(check_depth(text, MAX_DEPTH), Ok(()), "{text}");
            assert!(
                serde_yaml::from_str::<serde_yaml::Value>(text).is_ok(),
                "valid YAML: {text}"
            );
        }
    }

    /// A random flow document: nested sequences and maps, scalars quoted with `"` or `'` that hold
    /// brackets, quotes and `#`, plain scalars, anchors, comments and line breaks between tokens.
    fn random_flow(rng: &mut fastrand::Rng, depth: usize, out: &mut String) {
        let gap = |rng: &mut fastrand::Rng, out: &mut String| match rng.u8(0..6) {
            0 => out.push_str(" # a ] } [ comment\n"),
            1 => out.push('\n'),
            _ => out.push(' '),
        };
        let scalar = |rng: &mut fastrand::Rng, out: &mut String| {
            let text: String = (0..rng.usize(0..6))
                .map(|_| {
                    ['[', ']', '{', '}', '#', ',', ':', 'x', ' ', '\\', '"', '\''][rng.usize(0..12)]
                })
                .collect();
            match rng.u8(0..3) {
                0 => {
                    out.push('"');
                    out.push_str(&text.replace('\\', "\\\\").replace('"', "\\\""));
                    out.push('"');
                }
                1 => {
                    out.push('\'');
                    out.push_str(&text.replace('\'', "''"));
                    out.push('\'');
                }
                _ => out.push_str("plain"),
            }
        };
        if rng.u8(0..3) == 0 {
            out.push_str("&a ");
        }
        if depth == 0 || rng.u8(0..4) == 0 {
            scalar(rng, out);
            return;
        }
        let map = rng.bool();
        out.push(if map { '{' } else { '[' });
        for i in 0..rng.usize(0..4) {
            if i > 0 {
                out.push(',');
            }
            gap(rng, out);
            if map {
                scalar(rng, out);
                out.push_str(": ");
            }
            random_flow(rng, depth - 1, out);
            gap(rng, out);
        }
        out.push(if map { '}' } else { ']' });
    }

    fn value_depth(v: &serde_yaml::Value) -> usize {
        match v {
            serde_yaml::Value::Sequence(items) => {
                1 + items.iter().map(value_depth).max().unwrap_or(0)
            }
            serde_yaml::Value::Mapping(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| value_depth(k).max(value_depth(v)))
                    .max()
                    .unwrap_or(0)
            }
            serde_yaml::Value::Tagged(t) => value_depth(&t.value),
            _ => 0,
        }
    }

    #[test]
    fn the_scan_never_counts_fewer_levels_than_the_parser_builds() {
        let mut rng = fastrand::Rng::with_seed(19);
        let mut parsed = 0;
        for _ in 0..2000 {
            // Text before the flow value that must not hide it: a block scalar, a quoted
            // scalar over two lines, a comment, each holding brackets and quotes.
            let junk = [
                "a: |\n  x: \"[[ '\n  ]] {\n",
                "a: \"[[ '\n  {{ \"\n",
                "# [[[ \"\n",
                "",
            ];
            let mut doc = junk[rng.usize(0..junk.len())].to_owned();
            doc.push_str("key: ");
            random_flow(&mut rng, 6, &mut doc);
            doc.push('\n');
            let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&doc) else {
                continue;
            };
            parsed += 1;
            let mut scan = Scan::default();
            for line in doc.lines() {
                scan.line(line);
            }
            // `key:` is one block level the scan does not count.
            assert!(scan.deepest + 1 >= value_depth(&value), "{doc}");
        }
        assert!(parsed > 500, "only {parsed} documents parsed");
    }

    #[test]
    fn a_refused_nesting_costs_no_parsing_time() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let err = from_str::<serde_yaml::Value>(&text).expect_err("refused");
        assert!(err.contains("nest more than"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn errors_never_quote_the_text() {
        let secret = "OPENAI_API_KEY=sk-secret-value";
        for text in [
            secret.to_owned(),
            format!("messages: \"{secret}\"\n"),
            format!("- \"{secret}\"\n"),
        ] {
            #[derive(serde::Deserialize, Debug)]
            #[allow(dead_code, reason = "only the error matters")]
            struct Doc {
                messages: Vec<String>,
            }
            let err = from_str::<Doc>(&text).expect_err(&text);
            assert!(!err.contains("sk-secret"), "{err}");
        }
    }
}
