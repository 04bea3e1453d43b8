//! The cached Qwen OAuth credentials, `~/.qwen/oauth_creds.json` in Qwen Code's format: read them,
//! write them (0600, atomic), and refresh them shortly before expiry under a lock so that parallel
//! runs refresh once.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Endpoints, TokenGrant};
use crate::error::Error;
use crate::fsutil;

/// Refresh when the token expires within this many milliseconds (as Qwen Code does).
pub(crate) const REFRESH_MARGIN_MS: u64 = 30_000;
/// Where Qwen OAuth requests go when the token names no `resource_url` (Qwen Code's default).
pub(crate) const DEFAULT_RESOURCE_URL: &str = "https://dashscope.aliyuncs.com/compatible-mode/v1";
/// How long to wait for another process that is refreshing.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Qwen Code removes its lock file as stale after this long; so do we.
const QWEN_CODE_LOCK_STALE: Duration = Duration::from_secs(10);
/// How long to wait for Qwen Code's lock (it gives up after 10 s itself).
const QWEN_CODE_LOCK_TIMEOUT: Duration = Duration::from_secs(15);

/// `~/.qwen/oauth_creds.json` and the two locks that serialise refreshes.
#[derive(Debug, Clone)]
pub(crate) struct CredsPaths {
    pub(crate) creds: PathBuf,
    /// Ours: an exclusive `File::lock`, released by the system even when a process dies.
    pub(crate) lock: PathBuf,
    /// Qwen Code's: a file created exclusively and removed after the refresh, stale after 10 s.
    /// Taking it too keeps a run from refreshing at the same moment as Qwen Code, which would
    /// spend the refresh token twice.
    pub(crate) qwen_code_lock: PathBuf,
}

impl CredsPaths {
    pub(crate) fn new(home: &Path) -> Self {
        let dir = home.join(".qwen");
        Self {
            creds: dir.join("oauth_creds.json"),
            lock: dir.join("oauth_creds.flock"),
            qwen_code_lock: dir.join("oauth_creds.lock"),
        }
    }
}

/// The file's content. Fields this program does not know (such as `id_token`) are kept.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct OAuthCreds {
    pub(crate) access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(default = "bearer")]
    pub(crate) token_type: String,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiry_date: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource_url: Option<String>,
    #[serde(flatten)]
    pub(crate) other: Map<String, Value>,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl fmt::Debug for OAuthCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthCreds")
            .field("token_type", &self.token_type)
            .field("expiry_date", &self.expiry_date)
            .field("resource_url", &self.resource_url)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether cached credentials can be used as they are, after a refresh, or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    Fresh,
    Refreshable,
    Dead,
}

impl OAuthCreds {
    pub(crate) fn freshness(&self, now_ms: u64) -> Freshness {
        let valid = !self.access_token.trim().is_empty()
            && self
                .expiry_date
                .is_some_and(|e| e > now_ms.saturating_add(REFRESH_MARGIN_MS));
        if valid {
            Freshness::Fresh
        } else if self
            .refresh_token
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty())
        {
            Freshness::Refreshable
        } else {
            Freshness::Dead
        }
    }

    /// New credentials from a grant; a refresh that names no new refresh token or resource URL
    /// keeps the previous ones.
    pub(crate) fn from_grant(grant: TokenGrant, now_ms: u64, previous: Option<&Self>) -> Self {
        Self {
            access_token: grant.access_token,
            refresh_token: grant
                .refresh_token
                .filter(|r| !r.is_empty())
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            token_type: grant.token_type.unwrap_or_else(bearer),
            expiry_date: grant
                .expires_in
                .map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
            resource_url: grant
                .resource_url
                .filter(|r| !r.trim().is_empty())
                .or_else(|| previous.and_then(|p| p.resource_url.clone())),
            other: previous.map(|p| p.other.clone()).unwrap_or_default(),
        }
    }

    /// The OpenAI-compatible base URL requests go to.
    pub(crate) fn api_base_url(&self) -> Result<Url, Error> {
        api_base_url(self.resource_url.as_deref())
    }
}

/// `resource_url` as a base URL, as Qwen Code reads it: `https://` when it has no scheme, and
/// `/v1` appended when it does not end with it. No `resource_url`: the `DashScope` endpoint.
pub(crate) fn api_base_url(resource_url: Option<&str>) -> Result<Url, Error> {
    let raw = resource_url
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_RESOURCE_URL);
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let trimmed = with_scheme.trim_end_matches('/');
    let full = if trimmed.ends_with("/v1") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1")
    };
    crate::client::url::http_url(&full).map_err(|_| {
        Error::auth(
            // The server chose this text: no credentials, no escapes, no workflow commands.
            format!(
                "the cached Qwen OAuth credentials name an unusable resource_url `{}`",
                crate::sanitize::line(&crate::client::url::without_userinfo(raw), None, 200)
            ),
            "log in again with `qwen auth login --method qwen-oauth`",
        )
    })
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time a long run's token refreshes are decided by: the system clock, moved forward by the
/// milliseconds written in the file named by `QWEN_TEST_CLOCK_OFFSET_FILE` (hidden, for tests, so
/// that "the token expired mid-run" is a fact the test sets, not a race with a loaded machine).
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    offset_file: Option<std::path::PathBuf>,
}

impl Clock {
    pub(crate) fn from_env(env: &crate::config::env::EnvSnapshot) -> Self {
        Self {
            offset_file: env
                .get(crate::config::env::QWEN_TEST_CLOCK_OFFSET_FILE)
                .map(std::path::PathBuf::from),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let offset = self
            .offset_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        now_ms().saturating_add(offset)
    }
}

fn unreadable(path: &Path, why: &str) -> Error {
    Error::auth(
        format!(
            "cannot read the cached Qwen OAuth credentials `{}`: {why}",
            path.display()
        ),
        "remove them with `qwen auth logout` and log in again with `qwen auth login --method qwen-oauth`",
    )
}

/// Read the cache; `Ok(None)` when there is none.
pub(crate) fn load(path: &Path) -> Result<Option<OAuthCreds>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(path, &e.to_string())),
    };
    // serde_json's message names a position, never the content.
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| unreadable(path, &e.to_string()))
}

/// Write the cache: atomic, mode 0600.
pub(crate) fn save(path: &Path, creds: &OAuthCreds) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(creds)
        .map_err(|e| Error::Internal(format!("cannot encode the credentials: {e}")))?;
    bytes.push(b'\n');
    fsutil::write_private(path, &bytes).map_err(|e| Error::file("write", path, e))
}

/// Take the exclusive lock on `path` (created 0600 if needed), waiting for another holder.
async fn lock(path: &Path) -> Result<Option<File>, Error> {
    let io = |e: std::io::Error| Error::file("lock", path, e);
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir_all(dir).map_err(io)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(io)?;
    let deadline = tokio::time::Instant::now() + LOCK_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy(format!(
                    "another qwen process held `{}` for more than {} s while refreshing the Qwen OAuth token",
                    path.display(),
                    LOCK_TIMEOUT.as_secs()
                )));
            }
            // A file system without locks: refresh anyway, as a single process would.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                return Ok(None);
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

/// Qwen Code's lock, held: removed on drop if it is still ours.
struct QwenCodeLock {
    path: PathBuf,
    id: String,
}

impl Drop for QwenCodeLock {
    fn drop(&mut self) {
        // Another process may have judged it stale and taken it over: leave that one alone.
        if std::fs::read_to_string(&self.path).is_ok_and(|content| content == self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Take Qwen Code's lock: create the file exclusively with a random id; an existing one older
/// than 10 s is stale and removed, a younger one is waited for.
async fn qwen_code_lock(path: &Path) -> Result<QwenCodeLock, Error> {
    let io = |e: std::io::Error| Error::file("lock", path, e);
    let id = uuid::Uuid::new_v4().to_string();
    let deadline = tokio::time::Instant::now() + QWEN_CODE_LOCK_TIMEOUT;
    loop {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                use std::io::Write as _;
                let lock = QwenCodeLock {
                    path: path.to_owned(),
                    id: id.clone(),
                };
                file.write_all(id.as_bytes()).map_err(io)?;
                return Ok(lock);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|a| a > QWEN_CODE_LOCK_STALE) {
                    let _ = std::fs::remove_file(path);
                    continue;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Busy(format!(
                        "`{}` stayed locked for {} s (another program, such as Qwen Code, is refreshing the token)",
                        path.display(),
                        QWEN_CODE_LOCK_TIMEOUT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(io(e)),
        }
    }
}

fn gone(path: &Path) -> Error {
    Error::auth(
        format!(
            "the cached Qwen OAuth credentials `{}` are gone or can no longer be refreshed",
            path.display()
        ),
        "log in again with `qwen auth login --method qwen-oauth`",
    )
}

/// Credentials good for a request: the cached ones when they are fresh, else refreshed under the
/// locks (ours, then Qwen Code's). After taking them the cache is read again, so that when several
/// runs find the token about to expire at once, only the first one refreshes and the others use
/// its result.
pub(crate) async fn ensure_fresh(
    paths: &CredsPaths,
    http: &reqwest::Client,
    endpoints: &Endpoints,
    clock: &Clock,
) -> Result<OAuthCreds, Error> {
    let cached = load(&paths.creds)?.ok_or_else(|| gone(&paths.creds))?;
    match cached.freshness(clock.now_ms()) {
        Freshness::Fresh => return Ok(cached),
        Freshness::Dead => return Err(gone(&paths.creds)),
        Freshness::Refreshable => {}
    }
    let _guard = lock(&paths.lock).await?;
    let _qwen_code_guard = qwen_code_lock(&paths.qwen_code_lock).await?;
    let current = load(&paths.creds)?.ok_or_else(|| gone(&paths.creds))?;
    let refresh_token = match current.freshness(clock.now_ms()) {
        Freshness::Fresh => return Ok(current),
        Freshness::Dead => return Err(gone(&paths.creds)),
        Freshness::Refreshable => current.refresh_token.clone().unwrap_or_default(),
    };
    let grant = super::refresh(http, endpoints, &refresh_token).await?;
    let renewed = OAuthCreds::from_grant(grant, clock.now_ms(), Some(&current));
    save(&paths.creds, &renewed)?;
    Ok(renewed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(expiry: Option<u64>, refresh: Option<&str>) -> OAuthCreds {
        OAuthCreds {
            access_token: "access".into(),
            refresh_token: refresh.map(str::to_owned),
            token_type: bearer(),
            expiry_date: expiry,
            resource_url: None,
            other: Map::new(),
        }
    }

    #[test]
    fn freshness_uses_a_30_second_margin() {
        let now = 1_000_000;
        let cases = [
            (Some(now + 31_000), None, Freshness::Fresh),
            (Some(now + 29_000), None, Freshness::Dead),
            (Some(now + 29_000), Some("r"), Freshness::Refreshable),
            (Some(now - 1), Some("r"), Freshness::Refreshable),
            (None, Some("r"), Freshness::Refreshable),
            (None, Some(""), Freshness::Dead),
        ];
        for (expiry, refresh, want) in cases {
            assert_eq!(
                creds(expiry, refresh).freshness(now),
                want,
                "{expiry:?} {refresh:?}"
            );
        }
    }

    #[test]
    fn resource_url_becomes_a_v1_base_url() {
        let cases = [
            (Some("portal.qwen.ai"), "https://portal.qwen.ai/v1"),
            (
                Some("https://portal.qwen.ai/v1"),
                "https://portal.qwen.ai/v1",
            ),
            (
                Some("https://portal.qwen.ai/v1/"),
                "https://portal.qwen.ai/v1",
            ),
            (Some("http://127.0.0.1:8080"), "http://127.0.0.1:8080/v1"),
            (Some("  "), DEFAULT_RESOURCE_URL),
            (None, DEFAULT_RESOURCE_URL),
        ];
        for (raw, want) in cases {
            assert_eq!(api_base_url(raw).unwrap().as_str(), want, "{raw:?}");
        }
        assert!(api_base_url(Some("ftp://x")).is_err());
    }

    #[test]
    fn a_refresh_keeps_what_the_server_did_not_resend() {
        let mut previous = creds(Some(1), Some("old-refresh"));
        previous.resource_url = Some("portal.qwen.ai".into());
        previous.other.insert("id_token".into(), Value::from("id"));
        let grant = TokenGrant {
            access_token: "new".into(),
            refresh_token: None,
            token_type: None,
            expires_in: Some(3600),
            resource_url: None,
        };
        let renewed = OAuthCreds::from_grant(grant, 10, Some(&previous));
        assert_eq!(renewed.access_token, "new");
        assert_eq!(renewed.refresh_token.as_deref(), Some("old-refresh"));
        assert_eq!(renewed.expiry_date, Some(3_600_010));
        assert_eq!(renewed.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert_eq!(renewed.token_type, "Bearer");
        let json = serde_json::to_value(&renewed).unwrap();
        assert_eq!(json["id_token"], "id");
        assert!(!format!("{renewed:?}").contains("new"));
    }

    #[tokio::test]
    async fn qwen_code_lock_waits_for_a_live_holder_and_takes_over_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.lock");
        {
            let held = qwen_code_lock(&path).await.unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), held.id);
            // A second taker waits while the first holds it...
            let waiting = tokio::time::timeout(Duration::from_millis(200), qwen_code_lock(&path));
            assert!(waiting.await.is_err());
        }
        // ...and the file is gone once the holder is dropped.
        assert!(!path.exists());
        // A lock left by a process that died long ago is stale.
        std::fs::write(&path, "someone").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let taken = qwen_code_lock(&path).await.unwrap();
        // Someone else's lock (after a takeover) is not removed by our drop.
        std::fs::write(&path, "theirs").unwrap();
        drop(taken);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs");
    }

    #[test]
    fn save_and_load_round_trip_with_mode_0600() {
        let home = tempfile::tempdir().unwrap();
        let paths = CredsPaths::new(home.path());
        assert!(load(&paths.creds).unwrap().is_none());
        let mut c = creds(Some(5), Some("r"));
        c.resource_url = Some("portal.qwen.ai".into());
        save(&paths.creds, &c).unwrap();
        #[cfg(unix)]
        assert_eq!(fsutil::mode(&paths.creds), Some(0o600));
        let back = load(&paths.creds).unwrap().unwrap();
        assert_eq!(back.access_token, "access");
        assert_eq!(back.expiry_date, Some(5));
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&paths.creds).unwrap()).unwrap();
        for field in [
            "access_token",
            "refresh_token",
            "token_type",
            "expiry_date",
            "resource_url",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        std::fs::write(&paths.creds, "{not json").unwrap();
        assert!(load(&paths.creds).is_err());
    }
}
