//! Glob patterns, the one matcher behind `@src/**/*.rs` references and `.qwenignore` rules:
//! `*` (any run of characters within a path segment), `?` (one character), `[abc]`, `[a-z]`,
//! `[!x]`/`[^x]` (a class), `\x` (a literal), and a whole segment `**` (any number of segments).
//!
//! Matching never backtracks more than once per star (the two-pointer wildcard algorithm, at
//! the character level within a segment and again at the segment level for `**`), so a hostile
//! pattern from a repository's ignore file costs at most `pattern × path` steps, never more.

use std::path::{Path, PathBuf};

use super::ignore::Ignorer;

/// One token of a path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters (none included).
    Star,
    /// `?`: exactly one character.
    One,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// One path segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`: any number of segments, none included.
    AnyDirs,
    Part(Vec<Tok>),
}

/// A compiled pattern, matched against a path split at `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob {
    segments: Vec<Seg>,
    ignore_case: bool,
}

/// Whether `text` would be read as a pattern rather than a plain name (an unescaped `*`, `?` or
/// `[`).
pub(super) fn is_glob(text: &str) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

impl Glob {
    /// `pattern`'s segments (split at `/`, empty segments dropped), compared without regard to
    /// case when `ignore_case` (as npm `ignore`, which Qwen Code reads `.qwenignore` with, does).
    pub(super) fn new(pattern: &str, ignore_case: bool) -> Self {
        let segments = pattern
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s == "**" {
                    Seg::AnyDirs
                } else {
                    Seg::Part(tokens(s))
                }
            })
            .collect();
        Self {
            segments,
            ignore_case,
        }
    }

    /// Whether the path (its segments, in order) matches the whole pattern.
    pub(super) fn matches(&self, path: &[&str]) -> bool {
        let (pat, mut p, mut s) = (&self.segments, 0, 0);
        // The last `**` seen, and the path segment it was tried at.
        let mut back: Option<(usize, usize)> = None;
        while s < path.len() {
            match pat.get(p) {
                Some(Seg::AnyDirs) => {
                    back = Some((p, s));
                    p += 1;
                }
                Some(Seg::Part(toks)) if self.segment(toks, path[s]) => {
                    p += 1;
                    s += 1;
                }
                _ => match back {
                    Some((bp, bs)) => {
                        back = Some((bp, bs + 1));
                        p = bp + 1;
                        s = bs + 1;
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|seg| *seg == Seg::AnyDirs)
    }

    /// One segment against its tokens (the same algorithm, one level down).
    fn segment(&self, toks: &[Tok], name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        let (mut t, mut c) = (0, 0);
        let mut back: Option<(usize, usize)> = None;
        while c < chars.len() {
            match toks.get(t) {
                Some(Tok::Star) => {
                    back = Some((t, c));
                    t += 1;
                }
                Some(tok) if self.one(tok, chars[c]) => {
                    t += 1;
                    c += 1;
                }
                _ => match back {
                    Some((bt, bc)) => {
                        back = Some((bt, bc + 1));
                        t = bt + 1;
                        c = bc + 1;
                    }
                    None => return false,
                },
            }
        }
        toks[t..].iter().all(|tok| *tok == Tok::Star)
    }

    fn one(&self, tok: &Tok, c: char) -> bool {
        let fold = |c: char| {
            if self.ignore_case {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                c
            }
        };
        match tok {
            Tok::Lit(l) => fold(*l) == fold(c),
            Tok::One => true,
            Tok::Star => false,
            Tok::Class { negated, ranges } => {
                let c = fold(c);
                let inside = ranges
                    .iter()
                    .any(|&(lo, hi)| (fold(lo)..=fold(hi)).contains(&c) || (lo..=hi).contains(&c));
                inside != *negated
            }
        }
    }
}

/// The regular files under `dir` whose path below it matches `pattern`, `/`-joined and sorted
/// by bytes. Breadth first, one question to the ignore rules per level; links, FIFOs, devices,
/// names that are not UTF-8 and `.git` are passed over, excluded directories are not entered, and
/// no directory deeper than the pattern can reach is read. More than `max_files` matches, or
/// more than `max_seen` entries looked at, is an error.
pub(super) fn search(
    dir: &Path,
    pattern: &Glob,
    ignorer: &Ignorer,
    max_files: usize,
    max_seen: usize,
) -> Result<Vec<String>, String> {
    let deepest = if pattern.segments.contains(&Seg::AnyDirs) {
        usize::MAX
    } else {
        pattern.segments.len()
    };
    let mut level: Vec<(PathBuf, Vec<String>)> = vec![(dir.to_path_buf(), Vec::new())];
    let (mut found, mut seen) = (Vec::new(), 0);
    while !level.is_empty() {
        let mut asked: Vec<(PathBuf, bool)> = Vec::new();
        let mut names: Vec<Vec<String>> = Vec::new();
        for (path, segments) in &level {
            let Ok(read) = std::fs::read_dir(path) else {
                continue;
            };
            for entry in read.flatten() {
                seen += 1;
                if seen > max_seen {
                    return Err(format!(
                        "the search looked at more than {max_seen} entries; name a narrower directory"
                    ));
                }
                let (Ok(kind), Ok(name)) = (entry.file_type(), entry.file_name().into_string())
                else {
                    continue;
                };
                if !(kind.is_file() || kind.is_dir()) || (kind.is_dir() && name == ".git") {
                    continue;
                }
                asked.push((entry.path(), kind.is_dir()));
                names.push([segments.clone(), vec![name]].concat());
            }
        }
        let verdicts = ignorer.check(&asked);
        let mut next = Vec::new();
        for (((path, is_dir), segments), why) in asked.into_iter().zip(names).zip(verdicts) {
            if why.is_some() {
                continue;
            }
            if is_dir {
                if segments.len() < deepest {
                    next.push((path, segments));
                }
                continue;
            }
            let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
            if pattern.matches(&parts) {
                found.push(segments.join("/"));
                if found.len() > max_files {
                    return Err(format!(
                        "it matches more than {max_files} files; narrow the pattern"
                    ));
                }
            }
        }
        level = next;
    }
    found.sort();
    Ok(found)
}

/// The tokens of one segment. A `[` without its `]` is a literal, as in git.
fn tokens(segment: &str) -> Vec<Tok> {
    let chars: Vec<char> = segment.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push(Tok::Lit(chars[i + 1]));
                i += 2;
                continue;
            }
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::One),
            '[' => {
                if let Some((class, next)) = class(&chars, i) {
                    out.push(class);
                    i = next;
                    continue;
                }
                out.push(Tok::Lit('['));
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    out
}

/// The class that starts at `chars[start]` (`[`), and the index after its `]`.
fn class(chars: &[char], start: usize) -> Option<(Tok, usize)> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let first = i;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && i > first {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        let c = if c == '\\' && i + 1 < chars.len() {
            i += 1;
            chars[i]
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').collect();
        Glob::new(pattern, false).matches(&segs)
    }

    #[test]
    fn matches_like_a_shell_with_globstar() {
        let yes = [
            ("*.rs", "main.rs"),
            ("src/*.rs", "src/main.rs"),
            ("src/**/*.rs", "src/main.rs"),
            ("src/**/*.rs", "src/a/b/c.rs"),
            ("**", "a/b"),
            ("**/x", "x"),
            ("a/**", "a/b/c"),
            ("?.txt", "a.txt"),
            ("[ab].txt", "b.txt"),
            ("[a-c]x", "bx"),
            ("[!a]x", "bx"),
            ("\\*.txt", "*.txt"),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab"),
            ("a*", "a"),
        ];
        for (p, path) in yes {
            assert!(m(p, path), "{p} {path}");
        }
        let no = [
            ("*.rs", "src/main.rs"),
            ("src/*.rs", "src/a/main.rs"),
            ("src/**/*.rs", "lib/main.rs"),
            ("?.txt", "ab.txt"),
            ("[ab].txt", "c.txt"),
            ("[!a]x", "ax"),
            ("\\*.txt", "a.txt"),
            ("*a*a*a*b", &"a".repeat(200)),
            ("a/**/b", "a/c"),
        ];
        for (p, path) in no {
            assert!(!m(p, path), "{p} {path}");
        }
        assert!(Glob::new("README.*", true).matches(&["readme.MD"]));
        assert!(!Glob::new("README.*", false).matches(&["readme.MD"]));
    }

    #[test]
    fn tells_a_pattern_from_a_name() {
        for glob in ["*.rs", "src/**", "a?", "[ab]"] {
            assert!(is_glob(glob), "{glob}");
        }
        for name in ["README.md", "src/", "a\\*b", ""] {
            assert!(!is_glob(name), "{name}");
        }
    }
}
