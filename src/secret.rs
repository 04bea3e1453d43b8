//! Secrets: how a key is shown (redacted) and how it is removed from text that came from elsewhere.

use secrecy::{ExposeSecret, SecretString};

/// A few characters at each end at most; short keys are hidden entirely.
pub(crate) fn redact(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}…{tail}")
}

/// Remove the key from a text that came from elsewhere (a server's error body): every run of 12 or
/// more of its characters, in any case, raw or escaped (`crate::sanitize::scrub_key`).
pub(crate) fn scrub(text: &str, secret: &SecretString) -> String {
    crate::sanitize::scrub_key(text, secret.expose_secret())
}

/// Every secret a run knows (its key, its `-H` values, the credentials of its environment), for
/// text qwen stores where a key must never be: a session file. Values shorter than 4 characters
/// are left out (`sanitize::scrub_key` would match ordinary words).
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets(Vec<SecretString>);

impl Secrets {
    pub(crate) fn new(values: impl IntoIterator<Item = SecretString>) -> Self {
        let mut kept: Vec<SecretString> = Vec::new();
        for value in values {
            let text = value.expose_secret();
            if text.chars().count() >= 4 && !kept.iter().any(|k| k.expose_secret() == text) {
                kept.push(value);
            }
        }
        Self(kept)
    }

    /// `text` with every secret removed as `scrub` removes the key (any run of 12 or more of its
    /// characters, in any case, raw or escaped), each replaced by `[REDACTED]`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_owned(), |text, secret| scrub(&text, secret))
    }
}

/// Whether an environment variable looks like it holds a credential: a name that says so
/// (`KEY`, `TOKEN`, `SECRET`, `PASSWORD`, `PASSWD`, `CREDENTIAL`, in any case) and a value of
/// at least 16 characters without blanks (a path or a word is not a key; `QWEN_AUTH_TYPE=openai`
/// must not blank the word "openai").
pub(crate) fn looks_like_credential(name: &str, value: &str) -> bool {
    const PARTS: [&str; 6] = ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"];
    let upper = name.to_ascii_uppercase();
    PARTS.iter().any(|p| upper.contains(p))
        && value.chars().count() >= 16
        && !value.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_shows_little() {
        assert_eq!(redact(&SecretString::from("short")), "****");
        let r = redact(&SecretString::from("sk-abcdefghijklmnopXY"));
        assert_eq!(r, "sk-…XY");
    }

    #[test]
    fn scrub_removes_the_key() {
        let key = SecretString::from("sk-secret-123");
        assert_eq!(scrub("bad key sk-secret-123!", &key), "bad key [REDACTED]!");
    }

    #[test]
    fn secrets_scrub_every_value_and_skip_short_ones() {
        let secrets = Secrets::new(
            [
                "sk-secret-123456",
                "hdr-value-abcdef",
                "ab",
                "sk-secret-123456",
            ]
            .map(SecretString::from),
        );
        assert_eq!(secrets.0.len(), 2);
        assert_eq!(
            secrets.scrub("k=sk-secret-123456 h=HDR-VALUE-ABCDEF ab"),
            "k=[REDACTED] h=[REDACTED] ab"
        );
    }

    #[test]
    fn credential_variables_are_told_from_others() {
        let long = "ghp_0123456789abcdefghij";
        for name in [
            "GITHUB_TOKEN",
            "MY_API_KEY",
            "db_password",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(looks_like_credential(name, long), "{name}");
        }
        assert!(!looks_like_credential("QWEN_AUTH_TYPE", long));
        assert!(!looks_like_credential("GITHUB_TOKEN", "short"));
        assert!(!looks_like_credential(
            "KEY_NOTE",
            "a value with spaces in it"
        ));
    }
}
