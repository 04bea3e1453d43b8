//! `qwen auth status`: a printout of the resolved configuration and whether a run could authenticate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use secrecy::SecretString;

use crate::auth;
use crate::auth::oauth::creds::{self, CredsPaths, Freshness, OAuthCreds};
use crate::commands::{DotEnvExposure, load_config_and_exposure};
use crate::config::settings::{self, Selection};
use crate::config::{AuthType, ResolvedConfig, Source};
use crate::context::Context;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::schema::{
    ApiKeyStatus, AuthStatus, AuthStatusFailed, DotEnvStatus, ErrorInfo, GitExposure, HeaderStatus,
    OAuthStatus, ProtocolStatus, SettingsStatus, SourceJson, SourcedJson,
};
use crate::output::write_stdout;
use crate::settings::Connection;

/// What `~/.qwen` says about Qwen OAuth and the selected method, read without any network traffic.
struct OAuthView {
    path: Option<PathBuf>,
    creds: Result<Option<OAuthCreds>, String>,
    selection: Selection,
    settings_path: Option<PathBuf>,
    now_ms: u64,
}

impl OAuthView {
    fn read(home: Option<&Path>) -> Self {
        let path = home.map(|h| CredsPaths::new(h).creds);
        let creds = path
            .as_deref()
            .map_or(Ok(None), |p| creds::load(p).map_err(|e| e.to_string()));
        let (selection, settings_path) = match settings::load_selection(home) {
            Ok((s, p)) => (s, home.map(|_| p)),
            Err(_) => (Selection::None, home.map(settings::path)),
        };
        Self {
            path,
            creds,
            selection,
            settings_path,
            now_ms: creds::now_ms(),
        }
    }

    fn cached(&self) -> Option<&OAuthCreds> {
        self.creds.as_ref().ok().and_then(Option::as_ref)
    }

    fn freshness_word(&self) -> Option<&'static str> {
        self.cached().map(|c| match c.freshness(self.now_ms) {
            Freshness::Fresh => "fresh",
            Freshness::Refreshable => "refreshable",
            Freshness::Dead => "expired",
        })
    }

    fn status(&self) -> OAuthStatus<'_> {
        let c = self.cached();
        OAuthStatus {
            creds_path: self.path.as_deref(),
            cached: c.is_some(),
            error: self.creds.as_ref().err().map(String::as_str),
            state: self.freshness_word(),
            expiry_date: c.and_then(|c| c.expiry_date),
            expires: c.and_then(|c| c.expiry_date).map(http_date),
            token_type: c.map(|c| c.token_type.as_str()),
            access_token: c
                .map(|c| crate::secret::redact(&SecretString::from(c.access_token.clone()))),
            has_refresh_token: c.is_some_and(|c| c.refresh_token.is_some()),
            resource_url: c.and_then(|c| c.resource_url.as_deref()),
            base_url: c.and_then(|c| c.api_base_url().ok()).map(|u| u.to_string()),
        }
    }

    fn settings(&self) -> SettingsStatus<'_> {
        SettingsStatus {
            path: self.settings_path.as_deref(),
            selected_type: match &self.selection {
                Selection::Known(t) => Some(t.as_str()),
                Selection::Unknown(raw) => Some(raw.as_str()),
                Selection::None => None,
            },
            understood: !matches!(self.selection, Selection::Unknown(_)),
        }
    }
}

fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

/// `in 59 min`, `3 h ago`.
fn relative(target_ms: u64, now_ms: u64) -> String {
    let (diff, future) = if target_ms >= now_ms {
        (target_ms - now_ms, true)
    } else {
        (now_ms - target_ms, false)
    };
    let minutes = diff / 60_000;
    let amount = match minutes {
        0 => format!("{} s", diff / 1000),
        1..=119 => format!("{minutes} min"),
        120..=2879 => format!("{} h", minutes / 60),
        _ => format!("{} days", minutes / 1440),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `qwen auth status [--json]`: what a run would use, and where each value came from.
pub(crate) fn command(
    args: &Connection,
    as_json: bool,
    ctx: &Context,
) -> Result<ExitStatus, Error> {
    let (config, exposure) = match load_config_and_exposure(args, ctx) {
        Ok(loaded) => loaded,
        Err(e) => {
            if as_json {
                let doc = AuthStatusFailed {
                    ready: false,
                    error: error_info(&e),
                };
                let _ = write_stdout(json_line(&doc)?.as_bytes());
            }
            return Err(e);
        }
    };
    let home = ctx.env.home();
    let view = OAuthView::read(home.as_deref());
    let check = auth::credentials(&config, home.as_deref());
    let text = if as_json {
        let headers = &args.headers;
        let doc = status_json(&config, &view, headers, exposure.as_ref(), &check);
        json_line(&doc)?
    } else {
        let mut text = status_text(&config, &view, exposure.as_ref());
        for h in &args.headers {
            let _ = writeln!(
                text,
                "header:      {}: {} (--header)",
                h.name,
                redacted_header(&h.value)
            );
        }
        let _ = match &check {
            Ok(_) => writeln!(text, "ready:       yes"),
            Err(e) => writeln!(
                text,
                "ready:       no: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        };
        text
    };
    crate::output::quiet_if_closed(write_stdout(text.as_bytes()))?;
    match check {
        Ok(_) => Ok(ExitStatus::Success),
        // The JSON document already says why.
        Err(e) if as_json => Ok(e.exit_status()),
        Err(e) => Err(e),
    }
}

/// A `-H` value as status shows it: redacted like the key, whatever its name.
fn redacted_header(value: &str) -> String {
    crate::secret::redact(&SecretString::from(value.to_owned()))
}

fn status_json<'a>(
    config: &'a ResolvedConfig,
    view: &'a OAuthView,
    headers: &'a [crate::client::params::ExtraHeader],
    exposure: Option<&'a DotEnvExposure>,
    check: &Result<auth::AuthPlan, Error>,
) -> AuthStatus<'a> {
    let sourced = |value: &'a str, source: &'a Source| SourcedJson {
        value,
        source: source.into(),
    };
    AuthStatus {
        auth_type: sourced(config.auth_type.value.as_str(), &config.auth_type.source),
        api_key: ApiKeyStatus {
            value: config
                .api_key
                .as_ref()
                .map(|k| crate::secret::redact(&k.value)),
            source: config.api_key.as_ref().map(|k| (&k.source).into()),
            set_but_empty: config.empty_key_sources.iter().map(Into::into).collect(),
        },
        base_url: sourced(config.base_url.value.as_str(), &config.base_url.source),
        model: sourced(&config.model.value, &config.model.source),
        protocol: protocol_status(config),
        dotenv: DotEnvStatus {
            used: config.dotenv.found.as_ref().map(|f| f.path.as_path()),
            probed: &config.dotenv.probed,
            git: exposure.map(|(_, e)| GitExposure {
                exposure: e.as_str(),
                path: e.relative(),
            }),
        },
        interactive: config.interactive,
        debug: config.debug.is_some(),
        oauth: view.status(),
        settings: view.settings(),
        headers: headers
            .iter()
            .map(|h| HeaderStatus {
                name: &h.name,
                value: redacted_header(&h.value),
                source: SourceJson::Flag { name: "--header" },
            })
            .collect(),
        ready: check.is_ok(),
        error: check.as_ref().err().map(error_info),
    }
}

/// The protocol of the configured auth type, as a run would speak it.
fn protocol_status(config: &ResolvedConfig) -> ProtocolStatus {
    let (wire, key_header) = auth::wire_of(config.auth_type.value, config.key_var);
    ProtocolStatus {
        name: wire.name(),
        endpoint: (config.auth_type.value != AuthType::QwenOauth).then(|| {
            wire.url(&config.base_url.value, &config.model.value)
                .to_string()
        }),
        key_header: key_header.name(),
    }
}

fn error_info(e: &Error) -> ErrorInfo {
    ErrorInfo {
        kind: e.kind().to_owned(),
        message: e.to_string(),
        last_answer: None,
    }
}

/// One JSON document and a newline.
fn json_line(doc: &impl serde::Serialize) -> Result<String, Error> {
    let mut line = serde_json::to_string(doc).map_err(|e| Error::Internal(e.to_string()))?;
    line.push('\n');
    Ok(line)
}

/// The `.env` file in use, how git would publish it, and where qwen looked.
fn dotenv_text(t: &mut String, config: &ResolvedConfig, exposure: Option<&DotEnvExposure>) {
    let _ = match &config.dotenv.found {
        Some(f) => writeln!(t, ".env file:   {}", f.path.display()),
        None => writeln!(t, ".env file:   (none found)"),
    };
    if let Some((_, exposure)) = exposure {
        let _ = match exposure {
            crate::gitignore::Exposure::Tracked { relative } => writeln!(
                t,
                "             UNSAFE: it holds a secret and git tracks it (git rm --cached {relative}; add it to .gitignore)"
            ),
            crate::gitignore::Exposure::NotIgnored { relative } => writeln!(
                t,
                "             UNSAFE: it holds a secret and git does not ignore it (add `{relative}` to .gitignore)"
            ),
        };
    }
    for (i, path) in config.dotenv.probed.iter().enumerate() {
        let label = if i == 0 { "searched:" } else { "" };
        let _ = writeln!(t, "{label:<13}{}", path.display());
    }
}

fn status_text(
    config: &ResolvedConfig,
    view: &OAuthView,
    exposure: Option<&DotEnvExposure>,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "auth method: {} ({})",
        config.auth_type.value.as_str(),
        config.auth_type.source
    );
    if let (Selection::Unknown(raw), Some(path)) = (&view.selection, &view.settings_path) {
        let _ = writeln!(
            t,
            "             {} selects `{raw}`, which qwen does not implement: ignored",
            path.display()
        );
    }
    let unused = if config.auth_type.value == AuthType::QwenOauth {
        "; not used with qwen-oauth"
    } else {
        ""
    };
    let _ = match &config.api_key {
        Some(key) => writeln!(
            t,
            "api key:     {} ({}{unused})",
            crate::secret::redact(&key.value),
            key.source
        ),
        None => writeln!(t, "api key:     (none)"),
    };
    for source in &config.empty_key_sources {
        let _ = writeln!(t, "             {source} is set but empty");
    }
    let oauth = config.auth_type.value == AuthType::QwenOauth;
    if oauth {
        let _ = match view.cached().map(OAuthCreds::api_base_url) {
            Some(Ok(url)) => writeln!(
                t,
                "base url:    {url} (resource_url of the Qwen OAuth credentials)"
            ),
            _ => writeln!(
                t,
                "base url:    (from the Qwen OAuth credentials, none cached)"
            ),
        };
    } else {
        let _ = writeln!(
            t,
            "base url:    {} ({})",
            config.base_url.value, config.base_url.source
        );
    }
    let _ = writeln!(
        t,
        "model:       {} ({})",
        config.model.value, config.model.source
    );
    let protocol = protocol_status(config);
    let _ = writeln!(
        t,
        "protocol:    {} (POST {}, the key in {})",
        protocol.name,
        protocol
            .endpoint
            .as_deref()
            .unwrap_or("{resource_url}/chat/completions"),
        protocol.key_header
    );
    dotenv_text(&mut t, config, exposure);
    if oauth || view.cached().is_some() || view.creds.is_err() {
        oauth_text(&mut t, view);
    }
    let _ = writeln!(
        t,
        "interactive: {}",
        if config.interactive { "yes" } else { "no" }
    );
    t
}

fn oauth_text(t: &mut String, view: &OAuthView) {
    let path = view.path.as_ref().map_or_else(
        || "(HOME is not set)".to_owned(),
        |p| p.display().to_string(),
    );
    let c = match &view.creds {
        Ok(Some(c)) => c,
        Ok(None) => {
            let _ = writeln!(t, "oauth creds: {path} (not cached)");
            return;
        }
        Err(e) => {
            let _ = writeln!(t, "oauth creds: {path} (unreadable: {e})");
            return;
        }
    };
    let _ = writeln!(t, "oauth creds: {path} (cached)");
    let token = crate::secret::redact(&SecretString::from(c.access_token.clone()));
    let expiry = c.expiry_date.map_or_else(
        || "no expiry date".to_owned(),
        |ms| format!("expires {} ({})", http_date(ms), relative(ms, view.now_ms)),
    );
    let state = match c.freshness(view.now_ms) {
        Freshness::Fresh => "",
        Freshness::Refreshable => "; will be refreshed on the next run",
        Freshness::Dead => "; cannot be refreshed: log in again",
    };
    let _ = writeln!(
        t,
        "oauth token: {token} ({}), {expiry}{state}",
        c.token_type
    );
    let _ = writeln!(
        t,
        "resource:    {}",
        c.resource_url
            .as_deref()
            .unwrap_or("(none: Qwen Code's default endpoint)")
    );
}
