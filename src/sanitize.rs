//! The one door for text a server (or any other outsider) controls: every piece of it passes
//! through here before it is printed or stored. It removes the key, even echoed in part, in
//! another case or JSON-escaped, and neutralises what a terminal or a GitHub Actions runner would
//! execute: control characters (escape sequences), bidirectional overrides, and workflow commands
//! (`::cmd::` at a line start, `##[cmd]` anywhere in a line).
//!
//! Self-contained (it imports nothing from the crate), so that every layer, `diag` included, may
//! use it.

use std::collections::HashSet;
use std::fmt::Write as _;

/// A run of at least this many consecutive characters of the key is removed wherever it appears.
pub(crate) const MIN_KEY_RUN: usize = 12;

/// What a removed piece of key is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Server text for one line: the key removed, every control character (line breaks included)
/// shown as an escape, workflow commands neutralised, and at most `max_chars` characters.
pub(crate) fn line(text: &str, key: Option<&str>, max_chars: usize) -> String {
    // Only what can be shown is looked at (twice that, as a removed key shortens the text): the
    // cost stays small however long the text. A cut through the key leaves less than a run.
    let (text, cut) = match text.char_indices().nth(max_chars.saturating_mul(2)) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    };
    let scrubbed = key.map_or_else(|| text.to_owned(), |k| scrub_key(text, k));
    let mut out = String::with_capacity(scrubbed.len().min(max_chars.saturating_mul(4)));
    let mut shortened = cut;
    for (count, c) in scrubbed.chars().enumerate() {
        if count == max_chars {
            shortened = true;
            break;
        }
        push_visible(&mut out, c, false);
    }
    if shortened {
        out.push('…');
    }
    neutralise_commands(&out)
}

/// Server text of several lines (an answer shown in a step summary): the key removed, line
/// breaks and tabs kept, other control characters shown as escapes, and workflow commands
/// neutralised on every line.
pub(crate) fn block(text: &str, key: Option<&str>) -> String {
    let scrubbed = key.map_or_else(|| text.to_owned(), |k| scrub_key(text, k));
    let mut out = String::with_capacity(scrubbed.len());
    for c in scrubbed.chars() {
        push_visible(&mut out, c, true);
    }
    neutralise_commands(&out)
}

/// A character as it may reach a terminal: printable ones as they are, control characters and
/// bidirectional controls as `\u{..}` (`\n` and `\t` kept when `keep_lines`).
fn push_visible(out: &mut String, c: char, keep_lines: bool) {
    let dangerous =
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !dangerous || (keep_lines && matches!(c, '\n' | '\t')) {
        out.push(c);
    } else if c == '\n' || c == '\r' {
        // One line: a line break becomes a visible mark, never a new line a runner would parse.
        out.push_str(if c == '\n' { "\\n" } else { "\\r" });
    } else {
        let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
    }
}

/// The first `max` characters of `text`, and `…` when there were more.
pub(crate) fn first_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Every line that a GitHub Actions runner would read as a workflow command, made inert: a line
/// whose first non-blank characters are `::` gets a `[!]` in front (the runner only parses
/// commands at a line start), and `##[` (the older syntax, matched anywhere) becomes `#[`+`#[`
/// split by a space. Idempotent, and a no-op on text without such sequences.
pub(crate) fn neutralise_commands(text: &str) -> String {
    if !text.contains("::") && !text.contains("##[") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.trim_start().starts_with("::") {
            out.push_str("[!]");
        }
        out.push_str(&line.replace("##[", "## ["));
    }
    out
}

/// Remove the key from `text`: every run of at least `MIN_KEY_RUN` consecutive characters of it
/// (all of it, for a shorter key), compared without regard to case, in its raw form and in the
/// forms JSON and URLs escape it to. Keys shorter than 4 characters are left alone (they would
/// match ordinary words).
pub(crate) fn scrub_key(text: &str, key: &str) -> String {
    let key_len = key.chars().count();
    if key_len < 4 {
        return text.to_owned();
    }
    let forms = key_forms(key);
    let min = MIN_KEY_RUN.min(key_len);
    if !may_hold(text, &forms, min) {
        return text.to_owned();
    }
    // Every form is matched against the original text, then all matches are removed at once
    // (removing one form first could break a longer match of another).
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut ranges = Vec::new();
    for form in forms {
        ranges.extend(matching_runs(&chars, &form, min));
    }
    if ranges.is_empty() {
        return text.to_owned();
    }
    ranges.sort_unstable();
    let byte = |i: usize| chars.get(i).map_or(text.len(), |(b, _)| *b);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in ranges {
        if end <= at {
            continue;
        }
        if start >= at {
            out.push_str(&text[byte(at)..byte(start)]);
            out.push_str(REDACTED);
        }
        at = end;
    }
    out.push_str(&text[byte(at)..]);
    out
}

/// Whether some `min`-character window of `text` may equal (folded as `matching_runs` folds) a
/// window of one of `forms`: `false` means `scrub_key` has nothing to remove. One pass with a
/// rolling hash, holding `min` characters and no copy of the text (a session scrubs a prompt of
/// megabytes with several secrets: the full search is for the rare text that needs it).
fn may_hold(text: &str, forms: &[String], min: usize) -> bool {
    const BASE: u64 = 0x100_0000_01b3;
    let fold = |c: char| {
        let c = if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            c.to_lowercase().next().unwrap_or(c)
        };
        u64::from(u32::from(c))
    };
    let top = (1..min).fold(1u64, |p, _| p.wrapping_mul(BASE));
    // Windows' hashes: a 64 Ki-bit filter in front of the exact set.
    let (mut filter, mut wanted) = (vec![0u64; 1024], HashSet::new());
    for form in forms {
        let folded: Vec<u64> = form.chars().map(fold).collect();
        for window in folded.windows(min) {
            let hash = window
                .iter()
                .fold(0u64, |h, &c| h.wrapping_mul(BASE).wrapping_add(c));
            filter[(hash >> 58) as usize * 16 + (hash & 15) as usize] |= 1 << ((hash >> 4) & 63);
            wanted.insert(hash);
        }
    }
    let mut ring = [0u64; MIN_KEY_RUN];
    let (mut hash, mut seen) = (0u64, 0usize);
    for c in text.chars() {
        let c = fold(c);
        let slot = seen % min;
        if seen >= min {
            hash = hash.wrapping_sub(ring[slot].wrapping_mul(top));
        }
        hash = hash.wrapping_mul(BASE).wrapping_add(c);
        ring[slot] = c;
        seen += 1;
        if seen >= min
            && filter[(hash >> 58) as usize * 16 + (hash & 15) as usize] & (1 << ((hash >> 4) & 63))
                != 0
            && wanted.contains(&hash)
        {
            return true;
        }
    }
    false
}

/// The key, and the distinct ways JSON and URLs may write it.
fn key_forms(key: &str) -> Vec<String> {
    let mut forms = vec![key.to_owned()];
    let mut push = |form: String| {
        if !forms.contains(&form) {
            forms.push(form);
        }
    };
    // JSON as serde writes it, with `/` escaped too, and with every non-ASCII character as \u.
    let json = serde_json::to_string(key).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    push(json.replace('/', "\\/"));
    let mut ascii = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(ascii, "\\u{unit:04x}");
            }
        }
    }
    push(ascii);
    push(json);
    let percent: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    push(percent);
    forms
}

/// The runs (char ranges `[start, end)`) of at least `min` characters of `chars` that equal,
/// case-insensitively, a run of `form`: the union of the text's `min`-character windows that are
/// also windows of `form` (a run of `min` or more is exactly a chain of such windows). Linear in
/// the text, whatever the key's length (an OAuth token can be long).
fn matching_runs(chars: &[(usize, char)], form: &str, min: usize) -> Vec<(usize, usize)> {
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    let form: Vec<char> = form.chars().map(fold).collect();
    let text: Vec<char> = chars.iter().map(|&(_, c)| fold(c)).collect();
    if min == 0 || form.len() < min || text.len() < min {
        return Vec::new();
    }
    let windows: HashSet<&[char]> = form.windows(min).collect();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, window) in text.windows(min).enumerate() {
        if windows.contains(window) {
            match ranges.last_mut() {
                Some(last) if i <= last.1 => last.1 = i + min,
                _ => ranges.push((i, i + min)),
            }
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-abcdefghijklmnopqrstuvwxyz0123";

    #[test]
    fn the_whole_key_and_any_long_piece_of_it_is_removed() {
        assert_eq!(scrub_key(&format!("bad {KEY}!"), KEY), "bad [REDACTED]!");
        // 28 of 31 characters, upper-cased, cut at both ends.
        let piece = &KEY[2..30];
        assert_eq!(
            scrub_key(&format!("x{}y", piece.to_uppercase()), KEY),
            "x[REDACTED]y"
        );
        // 12 characters are a piece; 11 are not.
        assert_eq!(scrub_key(&KEY[5..17], KEY), REDACTED);
        assert_eq!(scrub_key(&KEY[5..16], KEY), &KEY[5..16]);
        // Two pieces with text between them.
        let two = format!("{} and {}", &KEY[..14], &KEY[15..]);
        assert_eq!(scrub_key(&two, KEY), "[REDACTED] and [REDACTED]");
    }

    #[test]
    fn the_quick_check_never_misses_what_the_full_search_finds() {
        let forms = key_forms(KEY);
        let kelvin = KEY[3..20].replace('k', "\u{212a}");
        for (text, holds) in [
            (format!("word {} word", &KEY[4..16]), true),
            (KEY[10..22].to_uppercase(), true),
            (format!("é{kelvin}é"), true),
            (KEY[5..16].to_owned(), false),
            ("an answer with no key in it at all".repeat(50), false),
            (String::new(), false),
        ] {
            assert_eq!(may_hold(&text, &forms, MIN_KEY_RUN), holds, "{text}");
            assert_eq!(scrub_key(&text, KEY) != text, holds, "{text}");
        }
    }

    #[test]
    fn json_and_url_escaped_forms_are_removed() {
        let key = "sk-a/b\"c\\d-é-0123456789";
        let json = serde_json::to_string(key).unwrap();
        assert_eq!(scrub_key(&json, key), "\"[REDACTED]\"");
        assert_eq!(
            scrub_key("sk-a\\/b\\\"c\\\\d-\\u00e9-0123456789", key),
            REDACTED
        );
        assert_eq!(
            scrub_key("q=sk-a%2Fb%22c%5Cd-%C3%A9-0123456789", key),
            "q=[REDACTED]"
        );
    }

    #[test]
    fn a_long_key_in_a_large_text_is_found_quickly() {
        let key: String = (0u8..=255)
            .cycle()
            .take(2000)
            .map(|i| char::from(b'a' + (i % 26) * 7 % 26))
            .collect();
        let mut text = "x".repeat(64 * 1024);
        text.push_str(&key[500..520]);
        let clean = scrub_key(&text, &key);
        assert!(clean.ends_with(REDACTED), "{}", &clean[clean.len() - 40..]);
    }

    #[test]
    fn short_keys_are_removed_whole_and_tiny_keys_are_left() {
        assert_eq!(
            scrub_key("my key is abcdEFGH.", "ABCDefgh"),
            "my key is [REDACTED]."
        );
        assert_eq!(scrub_key("abc", "abc"), "abc");
    }

    #[test]
    fn a_line_has_no_line_breaks_escapes_or_commands() {
        let hostile = "oops\n::warning::pwned\r\n\u{1b}[31mred\u{202e}x ##[error]y";
        let clean = line(hostile, None, 500);
        assert_eq!(
            clean,
            "oops\\n::warning::pwned\\r\\n\\u{1b}[31mred\\u{202e}x ## [error]y"
        );
        assert_eq!(line("  ::add-mask::x", None, 500), "[!]  ::add-mask::x");
        assert_eq!(line("abcdef", None, 3), "abc…");
    }

    #[test]
    fn a_block_keeps_its_lines_and_neutralises_each() {
        assert_eq!(
            block("a\n\t::set-output name=x::1\nb\u{7}", None),
            "a\n[!]\t::set-output name=x::1\nb\\u{7}"
        );
        assert_eq!(neutralise_commands("a::b"), "a::b");
        let once = neutralise_commands("::x::\n##[y]");
        assert_eq!(neutralise_commands(&once), once);
    }
}
