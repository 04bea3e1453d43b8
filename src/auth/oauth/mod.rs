//! Qwen OAuth as Qwen Code speaks it: the device authorization grant (RFC 8628) with PKCE (RFC 7636,
//! S256), and the refresh grant. Knows nothing about terminals: the dialogue lives in `login`.

pub(crate) mod creds;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::ApiError;
use crate::client::url::endpoint;
use crate::config::env::{self, EnvSnapshot};
use crate::error::Error;

pub(crate) const DEFAULT_OAUTH_BASE_URL: &str = "https://chat.qwen.ai";
/// Qwen Code's public client id.
pub(crate) const CLIENT_ID: &str = "f0304373b74a44d2b584a3fb70ca9e56";
pub(crate) const SCOPE: &str = "openid profile email model.completion";
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.2: the polling interval when the server names none, in seconds.
const DEFAULT_INTERVAL: u32 = 5;
/// RFC 8628 §3.5: what `slow_down` adds to the interval, in seconds.
const SLOW_DOWN_STEP: u32 = 5;
/// How long a device code lives when the server does not say, in seconds.
const DEFAULT_EXPIRES_IN: u32 = 600;
/// Network failures in a row while polling before the login gives up.
const MAX_POLL_FAILURES: u32 = 5;

const API_KEY_ADVICE: &str = "use the API-key method instead: `qwen auth login --method openai`, or set OPENAI_API_KEY (and OPENAI_BASE_URL, OPENAI_MODEL); for Qwen models, a DashScope / Model Studio key works with OPENAI_BASE_URL=https://dashscope.aliyuncs.com/compatible-mode/v1";

/// The OAuth server's endpoints: `QWEN_OAUTH_BASE_URL` or `https://chat.qwen.ai`.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) base: Url,
    pub(crate) device_code: Url,
    pub(crate) token: Url,
}

impl Endpoints {
    pub(crate) fn new(base: Url) -> Self {
        Self {
            device_code: endpoint(&base, "api/v1/oauth2/device/code"),
            token: endpoint(&base, "api/v1/oauth2/token"),
            base,
        }
    }

    pub(crate) fn from_env(env: &EnvSnapshot) -> Result<Self, Error> {
        let raw = env
            .get(env::QWEN_OAUTH_BASE_URL)
            .unwrap_or(DEFAULT_OAUTH_BASE_URL);
        let base = crate::client::url::http_url(raw).map_err(|_| {
            Error::config(
                format!(
                    "invalid {} `{}`",
                    env::QWEN_OAUTH_BASE_URL,
                    crate::client::url::without_userinfo(raw)
                ),
                "give an absolute http(s) URL such as `https://chat.qwen.ai`, or unset it",
            )
        })?;
        Ok(Self::new(base))
    }

    fn host(&self) -> String {
        self.base.host_str().unwrap_or_default().to_owned()
    }
}

/// One second of the polling schedule: a real second, unless `QWEN_OAUTH_POLL_UNIT_MS` (tests) says otherwise.
pub(crate) fn poll_unit(env: &EnvSnapshot) -> Duration {
    env.get(env::QWEN_OAUTH_POLL_UNIT_MS)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// A PKCE pair. The verifier is 32 bytes from the operating system's random source (`getrandom`),
/// base64url-encoded without padding: 43 characters, as RFC 7636 §4.1 recommends.
pub(crate) struct Pkce {
    verifier: SecretString,
    pub(crate) challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Internal(format!("no random source for the PKCE verifier: {e}")))?;
        Ok(Self::from_verifier(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub(crate) fn from_verifier(verifier: String) -> Self {
        let challenge = s256_challenge(&verifier);
        Self {
            verifier: SecretString::from(verifier),
            challenge,
        }
    }

    pub(crate) fn verifier(&self) -> &str {
        self.verifier.expose_secret()
    }
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2, method S256).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Clone, Deserialize)]
pub(crate) struct DeviceAuthorization {
    device_code: String,
    pub(crate) user_code: String,
    #[serde(default)]
    pub(crate) verification_uri: Option<String>,
    #[serde(default)]
    pub(crate) verification_uri_complete: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u32>,
    #[serde(default)]
    pub(crate) interval: Option<u32>,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// The page to show: the one with the code filled in when the server gave it.
    pub(crate) fn page(&self) -> &str {
        fn nonempty(s: Option<&String>) -> Option<&str> {
            s.map(String::as_str).filter(|s| !s.trim().is_empty())
        }
        nonempty(self.verification_uri_complete.as_ref())
            .or_else(|| nonempty(self.verification_uri.as_ref()))
            .unwrap_or_default()
    }

    /// The page as a URL a browser may be pointed at: http(s) only.
    pub(crate) fn browser_url(&self) -> Option<Url> {
        Url::parse(self.page())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
    }

    pub(crate) fn expires_in(&self) -> u32 {
        self.expires_in.unwrap_or(DEFAULT_EXPIRES_IN)
    }
}

/// Tokens from a successful grant. Never printed: `Debug` hides them.
#[derive(Clone, Deserialize)]
pub(crate) struct TokenGrant {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) resource_url: Option<String>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("resource_url", &self.resource_url)
            .finish_non_exhaustive()
    }
}

/// What one answer of the OAuth server means.
#[derive(Debug)]
pub(crate) enum Reply {
    Token(TokenGrant),
    Pending,
    SlowDown,
    Denied(String),
    Expired(String),
    /// The server says this login is no longer offered (404/410, or says so in words).
    Discontinued(String),
    /// 5xx: worth another poll.
    Transient(String),
    Failed(String),
}

/// `error: error_description`, or a short piece of the body.
fn describe(status: u16, json: Option<&Value>, body: &str) -> String {
    let field = |k: &str| json.and_then(|v| v.get(k)).and_then(Value::as_str);
    match (
        field("error"),
        field("error_description").or(field("message")),
    ) {
        (Some(e), Some(d)) => format!("HTTP {status}: {e}: {d}"),
        (Some(e), None) => format!("HTTP {status}: {e}"),
        (None, Some(d)) => format!("HTTP {status}: {d}"),
        (None, None) => {
            let short: String = body.trim().chars().take(200).collect();
            if short.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {short}")
            }
        }
    }
}

fn says_discontinued(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    [
        "discontinued",
        "no longer offered",
        "no longer available",
        "no longer supported",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// Classify an answer of the token endpoint (device polling or refresh).
pub(crate) fn classify_token_reply(status: u16, body: &str) -> Reply {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let ok = (200..300).contains(&status);
    if ok
        && let Some(grant) = json
            .as_ref()
            .and_then(|v| serde_json::from_value::<TokenGrant>(v.clone()).ok())
            .filter(|g| !g.access_token.trim().is_empty())
    {
        return Reply::Token(grant);
    }
    let text = describe(status, json.as_ref(), body);
    if !ok && says_discontinued(body) {
        return Reply::Discontinued(text);
    }
    let error = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str);
    match error {
        Some("authorization_pending") => return Reply::Pending,
        Some("slow_down") => return Reply::SlowDown,
        Some("access_denied") => return Reply::Denied(text),
        Some("expired_token") => return Reply::Expired(text),
        _ => {}
    }
    // Qwen Code also understands `{"status": "pending", "slowDown": true}`.
    if json
        .as_ref()
        .and_then(|v| v.get("status"))
        .and_then(Value::as_str)
        == Some("pending")
    {
        let slow = json
            .as_ref()
            .and_then(|v| v.get("slowDown"))
            .and_then(Value::as_bool)
            == Some(true);
        return if slow {
            Reply::SlowDown
        } else {
            Reply::Pending
        };
    }
    match status {
        404 | 410 => Reply::Discontinued(text),
        s if s >= 500 || s == 429 => Reply::Transient(text),
        _ => Reply::Failed(text),
    }
}

/// The polling schedule of RFC 8628 §3.4–3.5, in units of `unit` (one second outside tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// The wait before the next poll, in seconds of the schedule.
    pub(crate) interval: u32,
}

impl Schedule {
    pub(crate) fn new(server_interval: Option<u32>) -> Self {
        Self {
            interval: server_interval.unwrap_or(DEFAULT_INTERVAL),
        }
    }

    /// `slow_down`: the interval grows by 5 seconds for this and every later poll.
    #[must_use]
    pub(crate) fn slowed_down(self) -> Self {
        Self {
            interval: self.interval.saturating_add(SLOW_DOWN_STEP),
        }
    }
}

/// The HTTP client for the OAuth server: short timeouts, no retries of its own, no proxy for a
/// loopback server.
pub(crate) fn http_client(endpoints: &Endpoints) -> Result<reqwest::Client, Error> {
    crate::client::one_off_http_client(&endpoints.base).map_err(Error::Api)
}

/// POST a form and return the status and the body text.
async fn post_form(
    http: &reqwest::Client,
    url: &Url,
    pairs: &[(&str, &str)],
) -> Result<(u16, String), ApiError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let network = |e: reqwest::Error| crate::client::transport_error(&e);
    let response = http
        .post(url.clone())
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .body(body)
        .send()
        .await
        .map_err(network)?;
    let status = response.status().as_u16();
    // A token answer is a small JSON object: read no more than an error body's cap.
    let (bytes, _) = crate::client::read_capped(response, crate::client::MAX_ERROR_BODY_BYTES)
        .await
        .map_err(network)?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn discontinued(endpoints: &Endpoints, detail: &str) -> Error {
    Error::auth(
        format!(
            "Qwen OAuth login is no longer offered by `{}` ({detail})",
            endpoints.host()
        ),
        API_KEY_ADVICE,
    )
}

fn login_failed(message: String) -> Error {
    Error::auth(
        message,
        format!("run `qwen auth login` again, or {API_KEY_ADVICE}"),
    )
}

/// Step 1: ask for a device code (RFC 8628 §3.1) with the PKCE challenge.
pub(crate) async fn request_device_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    pkce: &Pkce,
) -> Result<DeviceAuthorization, Error> {
    let (status, body) = post_form(
        http,
        &endpoints.device_code,
        &[
            ("client_id", CLIENT_ID),
            ("scope", SCOPE),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await?;
    let json: Option<Value> = serde_json::from_str(&body).ok();
    if (200..300).contains(&status)
        && let Some(device) = json
            .as_ref()
            .and_then(|v| serde_json::from_value::<DeviceAuthorization>(v.clone()).ok())
    {
        if device.page().is_empty() {
            return Err(login_failed(
                "the Qwen OAuth server sent no verification URL".into(),
            ));
        }
        return Ok(device);
    }
    let text = describe(status, json.as_ref(), &body);
    if matches!(status, 404 | 410) || (!(200..300).contains(&status) && says_discontinued(&body)) {
        return Err(discontinued(endpoints, &text));
    }
    if status >= 500 {
        return Err(Error::Api(ApiError::Http {
            status,
            message: format!("the Qwen OAuth server failed: {text}"),
            retry_after: None,
            code: None,
        }));
    }
    Err(login_failed(format!(
        "the Qwen OAuth server refused the device code request ({text})"
    )))
}

/// What the poller reports while it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollEvent {
    Pending,
    SlowedDown { interval: u32 },
    Retrying,
}

/// Step 2: poll the token endpoint until the user approves, refuses, or the code expires.
pub(crate) async fn wait_for_token(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    device: &DeviceAuthorization,
    pkce: &Pkce,
    unit: Duration,
    on_event: &mut dyn FnMut(PollEvent),
) -> Result<TokenGrant, Error> {
    let started = tokio::time::Instant::now();
    let deadline = started + unit * device.expires_in();
    let mut schedule = Schedule::new(device.interval);
    let mut failures = 0;
    loop {
        let next = tokio::time::Instant::now() + unit * schedule.interval;
        if next >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(expired(device));
        }
        tokio::time::sleep_until(next).await;
        let reply = match post_form(
            http,
            &endpoints.token,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", CLIENT_ID),
                ("device_code", &device.device_code),
                ("code_verifier", pkce.verifier()),
            ],
        )
        .await
        {
            Ok((status, body)) => classify_token_reply(status, &body),
            Err(e) => Reply::Transient(e.to_string()),
        };
        match reply {
            Reply::Token(grant) => return Ok(grant),
            Reply::Pending => {
                failures = 0;
                on_event(PollEvent::Pending);
            }
            Reply::SlowDown => {
                failures = 0;
                schedule = schedule.slowed_down();
                on_event(PollEvent::SlowedDown {
                    interval: schedule.interval,
                });
            }
            Reply::Transient(text) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    return Err(Error::Api(ApiError::Network(format!(
                        "the Qwen OAuth server kept failing while waiting for the login: {text}"
                    ))));
                }
                on_event(PollEvent::Retrying);
            }
            Reply::Denied(text) => {
                return Err(login_failed(format!(
                    "the Qwen OAuth login was denied ({text})"
                )));
            }
            Reply::Expired(_) => return Err(expired(device)),
            Reply::Discontinued(text) => return Err(discontinued(endpoints, &text)),
            Reply::Failed(text) => {
                return Err(login_failed(format!(
                    "the Qwen OAuth login failed ({text})"
                )));
            }
        }
    }
}

fn expired(device: &DeviceAuthorization) -> Error {
    login_failed(format!(
        "the Qwen OAuth login expired before it was approved (the code {} was valid for {} s)",
        printable(&device.user_code),
        device.expires_in()
    ))
}

/// Exchange a refresh token for new tokens.
pub(crate) async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    refresh_token: &str,
) -> Result<TokenGrant, Error> {
    let (status, body) = post_form(
        http,
        &endpoints.token,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
        ],
    )
    .await?;
    let secret = SecretString::from(refresh_token.to_owned());
    match classify_token_reply(status, &body) {
        Reply::Token(grant) => Ok(grant),
        Reply::Discontinued(text) => Err(discontinued(
            endpoints,
            &crate::sanitize::line(&text, Some(secret.expose_secret()), 1000),
        )),
        Reply::Transient(text) => Err(Error::Api(ApiError::Http {
            status,
            message: format!(
                "refreshing the Qwen OAuth token failed: {}",
                crate::sanitize::line(&text, Some(secret.expose_secret()), 1000)
            ),
            retry_after: None,
            code: None,
        })),
        other => {
            let text = match other {
                Reply::Denied(t) | Reply::Expired(t) | Reply::Failed(t) => t,
                _ => format!("HTTP {status}"),
            };
            Err(Error::auth(
                format!(
                    "the cached Qwen OAuth credentials could not be refreshed ({})",
                    crate::sanitize::line(&text, Some(secret.expose_secret()), 1000)
                ),
                format!(
                    "log in again in a terminal with `qwen auth login --method qwen-oauth`, or {API_KEY_ADVICE}"
                ),
            ))
        }
    }
}

/// A code or an address from a server, made safe for a terminal and a GitHub Actions log: control
/// characters (escape sequences, line breaks) removed, so that it can still be copied, and
/// workflow commands made inert (`sanitize::neutralise_commands`).
pub(crate) fn printable(text: &str) -> String {
    let visible: String = text.chars().filter(|c| !c.is_control()).collect();
    crate::sanitize::neutralise_commands(&visible)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B. (The challenge there is 43 characters, as every unpadded base64url
    /// SHA-256 is; python's hashlib gives the same.)
    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifiers_are_43_url_safe_chars_and_differ() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        assert_eq!(a.verifier().len(), 43);
        assert!(
            a.verifier()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a.verifier(), b.verifier());
        assert_eq!(a.challenge, s256_challenge(a.verifier()));
        assert!(!format!("{a:?}").contains(a.verifier()));
    }

    #[test]
    fn token_replies_are_classified() {
        let cases: &[(u16, &str, &str)] = &[
            (200, r#"{"access_token":"a","expires_in":60}"#, "token"),
            (200, r#"{"access_token":""}"#, "failed"),
            (400, r#"{"error":"authorization_pending"}"#, "pending"),
            (429, r#"{"error":"slow_down"}"#, "slow"),
            (400, r#"{"error":"slow_down"}"#, "slow"),
            (200, r#"{"status":"pending"}"#, "pending"),
            (200, r#"{"status":"pending","slowDown":true}"#, "slow"),
            (400, r#"{"error":"access_denied"}"#, "denied"),
            (400, r#"{"error":"expired_token"}"#, "expired"),
            (400, r#"{"error":"invalid_grant"}"#, "failed"),
            (404, "not found", "discontinued"),
            (410, "", "discontinued"),
            (
                400,
                r#"{"error":"invalid_client","error_description":"Qwen OAuth free tier has been discontinued"}"#,
                "discontinued",
            ),
            (503, "busy", "transient"),
            (429, "", "transient"),
        ];
        for (status, body, want) in cases {
            let got = match classify_token_reply(*status, body) {
                Reply::Token(_) => "token",
                Reply::Pending => "pending",
                Reply::SlowDown => "slow",
                Reply::Denied(_) => "denied",
                Reply::Expired(_) => "expired",
                Reply::Discontinued(_) => "discontinued",
                Reply::Transient(_) => "transient",
                Reply::Failed(_) => "failed",
            };
            assert_eq!(got, *want, "{status} {body}");
        }
    }

    #[test]
    fn schedule_follows_rfc_8628() {
        assert_eq!(Schedule::new(None).interval, 5);
        assert_eq!(Schedule::new(Some(2)).interval, 2);
        assert_eq!(Schedule::new(Some(2)).slowed_down().interval, 7);
        assert_eq!(
            Schedule::new(Some(0)).slowed_down().slowed_down().interval,
            10
        );
    }

    #[test]
    fn device_page_prefers_the_complete_uri_and_only_http_opens() {
        let device = |complete: Option<&str>, plain: Option<&str>| DeviceAuthorization {
            device_code: "d".into(),
            user_code: "U".into(),
            verification_uri: plain.map(str::to_owned),
            verification_uri_complete: complete.map(str::to_owned),
            expires_in: None,
            interval: None,
        };
        let d = device(Some("https://x/a?c=U"), Some("https://x/a"));
        assert_eq!(d.page(), "https://x/a?c=U");
        assert!(d.browser_url().is_some());
        assert_eq!(device(Some(""), Some("https://x/a")).page(), "https://x/a");
        assert!(
            device(Some("file:///etc/passwd"), None)
                .browser_url()
                .is_none()
        );
        assert!(
            device(Some("javascript:alert(1)"), None)
                .browser_url()
                .is_none()
        );
    }

    #[test]
    fn endpoints_from_env() {
        let e = Endpoints::from_env(&EnvSnapshot::default()).unwrap();
        assert_eq!(
            e.device_code.as_str(),
            "https://chat.qwen.ai/api/v1/oauth2/device/code"
        );
        assert_eq!(e.token.as_str(), "https://chat.qwen.ai/api/v1/oauth2/token");
        let env = EnvSnapshot::from_pairs([("QWEN_OAUTH_BASE_URL", "http://127.0.0.1:9/")]);
        let e = Endpoints::from_env(&env).unwrap();
        assert_eq!(e.token.as_str(), "http://127.0.0.1:9/api/v1/oauth2/token");
        let bad = EnvSnapshot::from_pairs([("QWEN_OAUTH_BASE_URL", "chat.qwen.ai")]);
        assert!(Endpoints::from_env(&bad).is_err());
    }

    #[test]
    fn printable_drops_escape_sequences() {
        assert_eq!(printable("AB\x1b[31mCD\x07"), "AB[31mCD");
    }
}
