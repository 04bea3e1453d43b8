//! Decides whether a run can authenticate, and refuses what would leak a key or wait on a person.

pub(crate) mod oauth;
pub(crate) mod session;

use std::fmt::Write as _;
use std::path::Path;

use reqwest::Url;
use secrecy::SecretString;

use oauth::creds::{CredsPaths, Freshness, OAuthCreds};

use crate::client::url::is_loopback;
use crate::client::wire::{KeyHeader, Wire};
use crate::config::env::EnvSnapshot;
use crate::config::{AuthType, ResolvedConfig, Source};
use crate::error::Error;

/// What a request needs: the key (still secret) and where it may be sent.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) api_key: SecretString,
    pub(crate) base_url: Url,
    /// The protocol the auth type speaks, and how the key travels.
    pub(crate) wire: Wire,
    pub(crate) key_header: KeyHeader,
}

/// The wire protocol of an auth type, and the header its key goes in: `Authorization: Bearer`
/// for `OpenAI`'s APIs and Qwen OAuth; `x-api-key` for Anthropic (a bearer token for
/// `ANTHROPIC_AUTH_TOKEN`, as Anthropic's SDK sends `authToken`); `x-goog-api-key` for Gemini
/// and Vertex AI express mode.
pub(crate) fn wire_of(auth_type: AuthType, key_var: Option<&str>) -> (Wire, KeyHeader) {
    match auth_type {
        AuthType::Openai | AuthType::QwenOauth => (Wire::Chat, KeyHeader::Bearer),
        AuthType::OpenaiResponses => (Wire::Responses, KeyHeader::Bearer),
        AuthType::Anthropic if key_var == Some(crate::config::env::ANTHROPIC_AUTH_TOKEN) => {
            (Wire::Anthropic, KeyHeader::Bearer)
        }
        AuthType::Anthropic => (Wire::Anthropic, KeyHeader::XApiKey),
        AuthType::Gemini => (Wire::Gemini, KeyHeader::GoogApiKey),
        AuthType::VertexAi => (Wire::Vertex, KeyHeader::GoogApiKey),
    }
}

/// How a run will authenticate, decided without any network traffic.
#[derive(Debug, Clone)]
pub(crate) enum AuthPlan {
    /// An API key and the base URL it may go to.
    ApiKey(Credentials),
    /// Cached Qwen OAuth credentials that are fresh or refreshable; `oauth::creds::ensure_fresh`
    /// turns them into a token (refreshing it first when it is about to expire).
    QwenOauth(CredsPaths),
}

pub(crate) const KEY_ADVICE: &str = "set OPENAI_API_KEY (and optionally OPENAI_BASE_URL, OPENAI_MODEL) in the environment or in `.qwen/.env`, or pass --openai-api-key";

/// Check that the resolved configuration can authenticate a request, without any network traffic
/// (the Qwen OAuth cache in `home` is read, never refreshed here).
pub(crate) fn credentials(config: &ResolvedConfig, home: Option<&Path>) -> Result<AuthPlan, Error> {
    if config.auth_type.value == AuthType::QwenOauth {
        return oauth_plan(config, home);
    }
    let Some(key) = &config.api_key else {
        return Err(missing_key(config));
    };
    check_base_url_trust(config, &key.source)?;
    let (wire, key_header) = wire_of(config.auth_type.value, config.key_var);
    Ok(AuthPlan::ApiKey(Credentials {
        api_key: key.value.clone(),
        base_url: config.base_url.value.clone(),
        wire,
        key_header,
    }))
}

/// A token from fresh OAuth credentials, and where it goes.
pub(crate) fn oauth_credentials(creds: &OAuthCreds) -> Result<Credentials, Error> {
    Ok(Credentials {
        api_key: SecretString::from(creds.access_token.clone()),
        base_url: creds.api_base_url()?,
        wire: Wire::Chat,
        key_header: KeyHeader::Bearer,
    })
}

fn oauth_plan(config: &ResolvedConfig, home: Option<&Path>) -> Result<AuthPlan, Error> {
    let Some(home) = home else {
        return Err(no_oauth_creds(
            config,
            "no cached credentials (HOME is not set)",
        ));
    };
    let paths = CredsPaths::new(home);
    let reason = match oauth::creds::load(&paths.creds) {
        Ok(Some(creds)) => match creds.freshness(oauth::creds::now_ms()) {
            Freshness::Fresh | Freshness::Refreshable => return Ok(AuthPlan::QwenOauth(paths)),
            Freshness::Dead => format!(
                "the cached credentials in `{}` have expired and cannot be refreshed",
                paths.creds.display()
            ),
        },
        Ok(None) => format!("no cached credentials at `{}`", paths.creds.display()),
        Err(e) if config.interactive => return Err(e),
        Err(e) => e.to_string(),
    };
    Err(no_oauth_creds(config, &reason))
}

fn no_oauth_creds(config: &ResolvedConfig, reason: &str) -> Error {
    let chosen = format!("Qwen OAuth ({})", config.auth_type.source);
    if config.interactive {
        return Error::auth(
            format!("{chosen}: {reason}"),
            format!(
                "log in with `qwen auth login --method qwen-oauth`, or use an API key: {KEY_ADVICE}"
            ),
        );
    }
    let hint = match &config.api_key {
        Some(key) => format!(
            "an API key is configured ({}): pass --auth-type openai, or run `qwen auth use openai`; otherwise {KEY_ADVICE}",
            key.source
        ),
        None => KEY_ADVICE.to_owned(),
    };
    Error::auth(
        format!(
            "Qwen OAuth needs a browser login, which cannot be completed in a non-interactive session: {reason} (qwen-oauth chosen by {})",
            config.auth_type.source
        ),
        hint,
    )
}

/// What to set for an auth type's key.
fn key_advice(auth_type: AuthType) -> String {
    let Some(vars) = auth_type.vars().filter(|_| auth_type != AuthType::Openai) else {
        return KEY_ADVICE.to_owned();
    };
    format!(
        "set {} (and optionally {}, {}) in the environment or in `.qwen/.env`, or pass --openai-api-key",
        vars.keys.join(" or "),
        vars.base_url,
        vars.model
    )
}

fn missing_key(config: &ResolvedConfig) -> Error {
    let auth_type = config.auth_type.value;
    let names = auth_type
        .vars()
        .map_or_else(|| "OPENAI_API_KEY".to_owned(), |v| v.keys.join(" or "));
    let verb = if names.contains(" or ") { "are" } else { "is" };
    let mut message = format!("no API key: {names} {verb} not set");
    if auth_type != AuthType::Openai {
        let _ = write!(message, " (auth type {})", auth_type.as_str());
    }
    if auth_type == AuthType::VertexAi {
        message.push_str(
            " (qwen speaks to Vertex AI in express mode only, with an API key: GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION with application-default credentials are not supported)",
        );
    }
    for source in &config.empty_key_sources {
        let _ = write!(message, "; {source} is set but empty");
    }
    message.push_str("\n  searched for a .env file at:");
    for path in &config.dotenv.probed {
        let _ = write!(message, "\n    {}", path.display());
    }
    if let Some(file) = &config.dotenv.found {
        let _ = write!(
            message,
            "\n  used {} (it has no {names})",
            file.path.display()
        );
    }
    let advice = key_advice(auth_type);
    let hint = if config.interactive && auth_type == AuthType::Openai {
        format!("{advice}; or run `qwen auth login`")
    } else {
        advice
    };
    Error::auth(message, hint)
}

/// A repository's `.env` must not be able to send a key from elsewhere to the repository's own server.
fn check_base_url_trust(config: &ResolvedConfig, key_source: &Source) -> Result<(), Error> {
    let base = &config.base_url;
    if !base.source.is_project_dotenv()
        || key_source == &base.source
        || config.trust_project_env
        || is_loopback(&base.value)
    {
        return Ok(());
    }
    Err(Error::config(
        format!(
            "refusing to send the API key from {key_source} to `{}`, a base URL that comes from the project file {}",
            base.value,
            match &base.source {
                Source::DotEnv { path, .. } => path.display().to_string(),
                other => other.to_string(),
            }
        ),
        format!(
            "a repository must not redirect your key; pass --openai-base-url (or set {}) yourself, or set QWEN_TRUST_PROJECT_ENV=1 if you trust this project",
            config
                .auth_type
                .value
                .vars()
                .map_or(crate::config::env::OPENAI_BASE_URL, |v| v.base_url)
        ),
    ))
}

/// A warning to print before a key goes over plain http to a host that is not loopback. Loopback
/// requests never go through a proxy (the client sees to it); any other plain-http request goes
/// through the proxy the environment names, which is said too (without its credentials).
pub(crate) fn plaintext_warning(base_url: &Url) -> Option<String> {
    plaintext_warning_via(base_url, None)
}

/// `plaintext_warning`, naming the proxy a plain-http request would go through: `--proxy`
/// (`flag`), else the one from `env`, unless `NO_PROXY` names the host.
pub(crate) fn plaintext_warning_in(
    base_url: &Url,
    env: &EnvSnapshot,
    flag: Option<&Url>,
) -> Option<String> {
    plaintext_warning_via(base_url, http_proxy(base_url, env, flag).as_deref())
}

fn plaintext_warning_via(base_url: &Url, proxy: Option<&str>) -> Option<String> {
    (base_url.scheme() == "http" && !is_loopback(base_url)).then(|| {
        let via = proxy.map_or_else(String::new, |p| {
            format!(
                " through the proxy `{}`",
                crate::client::url::without_userinfo(p)
            )
        });
        format!(
            "warning: the API key will be sent over plain http to `{}`{via}; use https",
            base_url.host_str().unwrap_or_default()
        )
    })
}

/// The proxy a plain-http request to `url` goes through, as reqwest reads the environment:
/// `http_proxy`/`HTTP_PROXY`, else `all_proxy`/`ALL_PROXY`, unless `NO_PROXY` names the host.
fn http_proxy(url: &Url, env: &EnvSnapshot, flag: Option<&Url>) -> Option<String> {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| env.get(n).filter(|v| !v.trim().is_empty()))
            .map(str::to_owned)
    };
    let proxy = match flag {
        Some(flag) => flag.to_string(),
        None => get(&["http_proxy", "HTTP_PROXY"]).or_else(|| get(&["all_proxy", "ALL_PROXY"]))?,
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let excluded = get(&["no_proxy", "NO_PROXY"]).is_some_and(|list| {
        list.split(',').map(str::trim).any(|entry| {
            let entry = entry.trim_start_matches('.').to_ascii_lowercase();
            entry == "*"
                || (!entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))))
        })
    });
    (!excluded).then_some(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_warning_names_the_proxy_unless_no_proxy_excludes_the_host() {
        let url = Url::parse("http://api.example.com/v1").unwrap();
        let env = |pairs: &[(&str, &str)]| EnvSnapshot::from_pairs(pairs.iter().copied());
        let proxied = env(&[("HTTP_PROXY", "http://u:p@proxy:3128")]);
        let w = plaintext_warning_in(&url, &proxied, None).unwrap();
        assert!(
            w.contains("through the proxy `http://***@proxy:3128`"),
            "{w}"
        );
        for no_proxy in [
            "example.com",
            ".example.com",
            "api.example.com",
            "*",
            "x, example.com",
        ] {
            let e = env(&[("HTTP_PROXY", "http://proxy:3128"), ("NO_PROXY", no_proxy)]);
            let w = plaintext_warning_in(&url, &e, None).unwrap();
            assert!(!w.contains("proxy"), "{no_proxy}: {w}");
        }
        let e = env(&[("ALL_PROXY", "http://proxy:1"), ("NO_PROXY", "ample.com")]);
        assert!(
            plaintext_warning_in(&url, &e, None)
                .unwrap()
                .contains("proxy:1")
        );
        let local = Url::parse("http://127.0.0.1:9/v1").unwrap();
        assert!(plaintext_warning_in(&local, &proxied, None).is_none());
    }

    #[test]
    fn plaintext_warning_only_for_remote_http() {
        let w = |u: &str| plaintext_warning(&Url::parse(u).unwrap()).is_some();
        assert!(w("http://example.com/v1"));
        assert!(!w("http://127.0.0.1:9/v1"));
        assert!(!w("http://localhost:9/v1"));
        assert!(!w("http://[::1]:9/v1"));
        assert!(!w("https://example.com/v1"));
    }
}
