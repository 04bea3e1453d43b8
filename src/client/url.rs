//! URL helpers for the API and OAuth endpoints: what counts as an http(s) URL, joining a path to
//! a base URL, and which hosts are loopback.

use reqwest::Url;

/// An absolute http(s) URL with a host, or why it is not one.
pub(crate) fn http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // It would be printed, logged and sent as a second (Basic) `Authorization` header.
        return Err("it must not carry a user name or password (`user:password@`)".to_owned());
    }
    Ok(url)
}

/// A URL as it may be shown in a message: whatever stands before an `@` in its authority
/// (a user name, a password) replaced by `***`. Works on text that does not parse, too.
pub(crate) fn without_userinfo(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***@{}", &raw[..start], &raw[start + at + 1..]),
        None => raw.to_owned(),
    }
}

/// `{base}/chat/completions` (or any other path) without a doubled slash.
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

/// Loopback hosts: `localhost`, 127.0.0.0/8, `::1`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        // Only the literal name: `*.localhost` goes through the system resolver like any name.
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_refused_and_never_shown() {
        assert!(http_url("https://user:pw@h/v1").is_err());
        assert!(http_url("https://user@h/v1").is_err());
        assert!(http_url("https://:pw@h/v1").is_err());
        assert!(http_url("https://h/v1?a=b@c").is_ok());
        assert_eq!(without_userinfo("https://u:p@h/v1"), "https://***@h/v1");
        assert_eq!(without_userinfo("u:p@h:x/v1@y"), "***@h:x/v1@y");
        assert_eq!(without_userinfo("https://h/v1?a=@b"), "https://h/v1?a=@b");
    }

    #[test]
    fn endpoint_never_doubles_slashes() {
        for base in ["https://h/v1", "https://h/v1/", "https://h/v1//"] {
            let url = Url::parse(base).unwrap();
            assert_eq!(
                endpoint(&url, "/chat/completions").as_str(),
                "https://h/v1/chat/completions"
            );
        }
        let root = Url::parse("http://h:1").unwrap();
        assert_eq!(
            endpoint(&root, "chat/completions").as_str(),
            "http://h:1/chat/completions"
        );
    }
}
