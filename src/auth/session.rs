//! A connected session, shared by a single run and a batch: credentials turned into a token,
//! the plain-http warning, the HTTP client and its rate limit, and for Qwen OAuth what it takes
//! to keep the token fresh during a long run.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::oauth::creds::{self, CredsPaths, REFRESH_MARGIN_MS};
use super::oauth::{self, Endpoints};
use super::{AuthPlan, Credentials, oauth_credentials, plaintext_warning_in};
use crate::client::batch_api::{BatchApi, BatchKind};
use crate::client::wire::Wire;
use crate::client::{ChatClient, ClientSettings, RateLimiter, Transport};
use crate::config::env::EnvSnapshot;
use crate::diag;
use crate::error::Error;
use crate::output::github;

/// Qwen OAuth requests are capped client-side at the free tier's rate.
pub(crate) const QWEN_OAUTH_REQUESTS_PER_MINUTE: u32 = 60;

/// What a command sends requests with.
pub(crate) struct Session {
    pub(crate) client: ChatClient,
    /// The key (or OAuth token) the client was built with: what a session file must never hold.
    pub(crate) key: secrecy::SecretString,
    /// Set for Qwen OAuth: refreshes the token of `client` when it is about to expire.
    pub(crate) oauth: Option<OauthSession>,
}

/// Keeps a Qwen OAuth token fresh for a client that outlives it (a long batch).
pub(crate) struct OauthSession {
    paths: CredsPaths,
    http: reqwest::Client,
    endpoints: Endpoints,
    expiry_ms: Option<u64>,
    mask: bool,
    clock: creds::Clock,
}

impl OauthSession {
    /// Refresh the token (under the shared lock) when it expires within the margin, and hand the
    /// new one to `client` and all its clones.
    pub(crate) async fn keep_fresh(&mut self, client: &ChatClient) -> Result<(), Error> {
        let due = self
            .expiry_ms
            .is_some_and(|e| self.clock.now_ms().saturating_add(REFRESH_MARGIN_MS) >= e);
        if !due {
            return Ok(());
        }
        let fresh =
            creds::ensure_fresh(&self.paths, &self.http, &self.endpoints, &self.clock).await?;
        let credentials = oauth_credentials(&fresh)?;
        if self.mask {
            diag::raw(&github::mask_command(credentials.api_key.expose_secret()));
        }
        client.set_key(credentials.api_key).map_err(Error::Api)?;
        self.expiry_ms = fresh.expiry_date;
        Ok(())
    }
}

/// The client-side rate limit: `--rpm`, and for Qwen OAuth never above the free tier's rate.
pub(crate) fn rate_limit(rpm: Option<u32>, oauth: bool) -> Option<Arc<RateLimiter>> {
    let cap = if oauth {
        Some(rpm.map_or(QWEN_OAUTH_REQUESTS_PER_MINUTE, |r| {
            r.min(QWEN_OAUTH_REQUESTS_PER_MINUTE)
        }))
    } else {
        rpm
    };
    cap.map(|per_minute| Arc::new(RateLimiter::per_minute(per_minute)))
}

/// Turn an auth plan into a client: an API key as it is; Qwen OAuth credentials refreshed if
/// needed (under a lock). Warns before a key goes over plain http to a remote host.
pub(crate) fn connect(
    plan: AuthPlan,
    settings: ClientSettings,
    rpm: Option<u32>,
    env: &EnvSnapshot,
    runtime: &tokio::runtime::Runtime,
) -> Result<Session, Error> {
    let debug = settings.debug;
    let (credentials, oauth) = match plan {
        AuthPlan::ApiKey(credentials) => (credentials, None),
        AuthPlan::QwenOauth(paths) => {
            let (credentials, session) = oauth_session(paths, env, debug, runtime)?;
            (credentials, Some(session))
        }
    };
    insecure_check(&credentials.base_url, &settings.transport)?;
    let proxy = settings.transport.proxy.as_ref();
    if let Some(warning) = plaintext_warning_in(&credentials.base_url, env, proxy) {
        diag::warn(&warning);
    }
    let key = credentials.api_key.clone();
    let client = ChatClient::new(&credentials.base_url, credentials.api_key, settings)
        .and_then(|c| c.with_wire(credentials.wire, credentials.key_header))
        .map_err(Error::Api)?
        .with_rate_limit(rate_limit(rpm, oauth.is_some()));
    Ok(Session { client, key, oauth })
}

fn oauth_session(
    paths: CredsPaths,
    env: &EnvSnapshot,
    debug: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Credentials, OauthSession), Error> {
    let endpoints = Endpoints::from_env(env)?;
    let http = oauth::http_client(&endpoints)?;
    let clock = creds::Clock::from_env(env);
    let fresh = runtime.block_on(creds::ensure_fresh(&paths, &http, &endpoints, &clock))?;
    let credentials = oauth_credentials(&fresh)?;
    let mask = github::is_github_actions(env);
    if mask {
        diag::raw(&github::mask_command(credentials.api_key.expose_secret()));
    }
    if debug {
        diag::debug(&format!(
            "qwen-oauth: token from {}, requests go to {}",
            paths.creds.display(),
            credentials.base_url
        ));
    }
    let session = OauthSession {
        paths,
        http,
        endpoints,
        expiry_ms: fresh.expiry_date,
        mask,
        clock,
    };
    Ok((credentials, session))
}

/// `--insecure` (or `QWEN_TLS_INSECURE`): a loud warning on every run. With the key going over
/// plain http to a host that is not loopback it is refused: nothing at all would protect the key,
/// and the user who asked for `--insecure` meant a TLS server.
fn insecure_check(base_url: &url::Url, transport: &Transport) -> Result<(), Error> {
    if !transport.insecure {
        return Ok(());
    }
    let host = base_url.host_str().unwrap_or_default();
    if base_url.scheme() == "http" && !crate::client::url::is_loopback(base_url) {
        return Err(Error::usage(
            format!(
                "--insecure (or QWEN_TLS_INSECURE) with the API key going over plain http to `{host}`"
            ),
            Some("use an https base URL, or drop --insecure and QWEN_TLS_INSECURE"),
        ));
    }
    diag::warn(&format!(
        "warning: --insecure (or QWEN_TLS_INSECURE): the certificate of `{host}` is not verified; anyone on the path can read the API key and the answers"
    ));
    Ok(())
}

/// The provider's Batch API client for an auth plan: the same credentials, warning and transport
/// settings as a chat session, speaking the Batch API of the auth type's protocol (`OpenAI`'s with
/// chat or Responses lines, Anthropic's Message Batches). Qwen OAuth is refused (the Batch API
/// needs a key), and so are Gemini and Vertex AI (exit 2): their batch mode is another shape.
pub(crate) fn batch_api(
    plan: AuthPlan,
    settings: &ClientSettings,
) -> Result<(BatchApi, url::Url), Error> {
    let AuthPlan::ApiKey(credentials) = plan else {
        return Err(Error::auth(
            "the provider's Batch API needs an API key; Qwen OAuth cannot submit batches",
            "set OPENAI_API_KEY (and OPENAI_BASE_URL) and pass --auth-type openai, or run the jobs locally with `qwen --jobs FILE`",
        ));
    };
    insecure_check(&credentials.base_url, &settings.transport)?;
    let kind = match credentials.wire {
        Wire::Chat => BatchKind::OpenaiChat,
        Wire::Responses => BatchKind::OpenaiResponses,
        Wire::Anthropic => BatchKind::Anthropic,
        // Gemini's Batch API ("Batch API", <https://ai.google.dev/api/batch-api>) is another shape:
        // `POST models/{model}:batchGenerateContent` with one model per batch, requests inline
        // or in a file of the Files API, answered by a long-running Operation whose output holds
        // `GenerateContentResponse`s; Vertex AI's batch prediction needs a Cloud Storage or
        // BigQuery source, which an API key alone cannot reach.
        Wire::Gemini | Wire::Vertex => {
            return Err(Error::usage(
                format!(
                    "`qwen batch` speaks OpenAI's Batch API and Anthropic's Message Batches, not the batch mode of --auth-type {}: it takes `batchGenerateContent` requests for one model and answers with a long-running operation (Vertex AI's needs a Cloud Storage or BigQuery source)",
                    credentials.wire.name()
                ),
                Some(
                    "run the jobs locally with `qwen --jobs FILE`, which works with every auth type",
                ),
            ));
        }
    };
    if let Some(warning) = super::plaintext_warning(&credentials.base_url) {
        diag::warn(&warning);
    }
    let api = BatchApi::new(
        &credentials.base_url,
        credentials.api_key,
        settings,
        kind,
        credentials.key_header,
    )
    .map_err(Error::Api)?;
    Ok((api, credentials.base_url))
}
