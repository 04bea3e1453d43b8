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
}
