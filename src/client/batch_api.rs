//! The provider's Files and Batches endpoints (the `OpenAI` Batch API, spoken by `OpenAI`, Azure
//! `OpenAI` v1, `DashScope` and others): upload, create, retrieve, list, cancel, download, delete;
//! and, through the same transport, Anthropic's Message Batches (`message_batches`).
//! Over the chat client's transport (`http_builder`: no redirects, no proxy for loopback), its
//! `Bearer` and its retry rule. Knows nothing about jobs or ledgers; every text a server sends
//! goes through `scrubbed`, and every id it sends or is given passes `check_id`.

use std::path::Path;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::{ApiError, Bearer, transport_error};
use super::{Decision, MAX_ERROR_BODY_BYTES, RetryPolicy, error_message, read_capped};

/// The largest JSON answer read from the API (a batch, a list page, a file object).
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// The longest file or batch id accepted (`OpenAI`'s are about 30 characters).
const MAX_ID_CHARS: usize = 128;

/// A file or batch id, from a provider or a ledger, is used only when it is one URL path segment
/// by construction: ASCII letters, digits, `_` and `-`, at most 128 (`file-abc`, `batch_abc`). So
/// `../models/ft:x` can never become `DELETE /v1/models/ft:x`. The reason names no value raw.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        // The value is not quoted: it may hold the key, escape sequences or workflow commands.
        Err(format!(
            "is not an id qwen uses (ASCII letters, digits, `_` and `-`, at most {MAX_ID_CHARS})"
        ))
    }
}

/// A batch status is a word (`in_progress`): a status holding anything else is refused, so it is
/// never printed or stored.
pub(crate) fn check_status(status: &str) -> Result<(), String> {
    let ok = !status.is_empty()
        && status.len() <= 40
        && status
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("is not a batch status (a word of ASCII letters, digits, `_` and `-`)".to_owned())
    }
}

/// `request_counts` of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestCounts {
    #[serde(default)]
    pub(crate) total: u64,
    #[serde(default)]
    pub(crate) completed: u64,
    #[serde(default)]
    pub(crate) failed: u64,
}

/// The fields of the Batch object qwen uses (`components/schemas/Batch` of the `OpenAI` spec).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Batch {
    pub(crate) id: String,
    pub(crate) status: String,
    /// The file the batch reads (the one this submission uploaded).
    #[serde(default)]
    pub(crate) input_file_id: Option<String>,
    #[serde(default)]
    pub(crate) output_file_id: Option<String>,
    #[serde(default)]
    pub(crate) error_file_id: Option<String>,
    #[serde(default)]
    pub(crate) request_counts: Option<RequestCounts>,
    #[serde(default)]
    pub(crate) metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) errors: Option<Value>,
    /// Seconds since the epoch (Anthropic's RFC 3339 `created_at` converted).
    #[serde(default)]
    pub(crate) created_at: Option<u64>,
    /// Anthropic's `results_url`, once processing ended.
    #[serde(default)]
    pub(crate) results_url: Option<String>,
}

impl Batch {
    /// A status after which nothing changes at the provider.
    pub(crate) fn is_terminal(status: &str) -> bool {
        matches!(status, "completed" | "failed" | "expired" | "cancelled")
    }

    /// Every id and the status checked ([`check_id`], [`check_status`]): a batch object that fails
    /// is an invalid answer, and nothing of it is printed, stored or used in a URL.
    fn checked(self) -> Result<Self, String> {
        check_id(&self.id).map_err(|e| format!("`id` {e}"))?;
        check_status(&self.status).map_err(|e| format!("`status` {e}"))?;
        for (field, id) in [
            ("input_file_id", &self.input_file_id),
            ("output_file_id", &self.output_file_id),
            ("error_file_id", &self.error_file_id),
        ] {
            if let Some(id) = id {
                check_id(id).map_err(|e| format!("`{field}` {e}"))?;
            }
        }
        Ok(self)
    }

    /// Whether this batch object carries the metadata qwen attached to `wanted`'s part: `None`
    /// when it has no metadata at all (a provider that does not keep it).
    pub(crate) fn belongs_to(&self, wanted: &Map<String, Value>) -> Option<bool> {
        let m = self.metadata.as_ref().filter(|m| !m.is_empty())?;
        Some(wanted.iter().all(|(k, v)| m.get(k) == Some(v)))
    }

    /// The first of the batch-level errors (`errors.data[0]`), as `code: message`.
    pub(crate) fn first_error(&self) -> Option<String> {
        let e = self.errors.as_ref()?.pointer("/data/0")?;
        let code = e.get("code").and_then(Value::as_str).unwrap_or("error");
        let message = e.get("message").and_then(Value::as_str).unwrap_or("");
        Some(format!("{code}: {message}"))
    }
}

/// One page of a list (`ListBatchesResponse`, `ListFilesResponse`).
#[derive(Debug, Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FileObject {
    id: String,
    #[serde(default)]
    filename: String,
}

/// Which Batch API a client speaks, and for `OpenAI`'s which endpoint its lines go to
/// (`CreateBatchRequest.endpoint` in openai/openai-openapi's `openapi.yaml` lists both
/// `/v1/chat/completions` and `/v1/responses`). Recorded in a batch's ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BatchKind {
    /// `OpenAI`'s Batch API, lines for `/v1/chat/completions` (`--auth-type openai`).
    #[default]
    OpenaiChat,
    /// `OpenAI`'s Batch API, lines for `/v1/responses` (`--auth-type openai-responses`).
    OpenaiResponses,
    /// Anthropic's Message Batches (`--auth-type anthropic`).
    Anthropic,
}

impl BatchKind {
    /// The `endpoint` of an `OpenAI` batch and the `url` of its lines.
    pub(crate) fn endpoint(self) -> &'static str {
        match self {
            Self::OpenaiResponses => "/v1/responses",
            Self::OpenaiChat | Self::Anthropic => "/v1/chat/completions",
        }
    }

    /// The `--auth-type` that speaks this kind.
    pub(crate) fn auth_type(self) -> &'static str {
        match self {
            Self::OpenaiChat => "openai",
            Self::OpenaiResponses => "openai-responses",
            Self::Anthropic => "anthropic",
        }
    }

    /// The collection batches live in.
    fn batches(self) -> &'static str {
        match self {
            Self::Anthropic => "v1/messages/batches",
            Self::OpenaiChat | Self::OpenaiResponses => "batches",
        }
    }
}

/// A client for one base URL and key.
#[derive(Clone)]
pub(crate) struct BatchApi {
    http: reqwest::Client,
    pub(super) base: Url,
    /// The key and its `Authorization` header, made as the chat client makes them.
    bearer: std::sync::Arc<Bearer>,
    /// The chat client's retry rule: 408/429/5xx and network errors, doubling backoff with jitter.
    retry: RetryPolicy,
    /// `-H` headers (a gateway's tenant header, say), sent with every request.
    headers: Vec<super::params::ExtraHeader>,
    pub(super) kind: BatchKind,
    /// The values of those headers that carry credentials, removed from server text like the key.
    secrets: Vec<SecretString>,
}

impl BatchApi {
    pub(crate) fn new(
        base: &Url,
        key: SecretString,
        settings: &super::ClientSettings,
        kind: BatchKind,
        key_header: super::wire::KeyHeader,
    ) -> Result<Self, ApiError> {
        let http = super::transport_builder(base, &settings.transport)?
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.idle_timeout)
            .build()
            .map_err(|e| ApiError::Setup(super::error_chain(&e)))?;
        let headers = settings.headers.clone();
        Ok(Self {
            http,
            base: base.clone(),
            bearer: std::sync::Arc::new(Bearer::new(key, key_header)?),
            retry: settings.retry,
            secrets: headers
                .iter()
                .filter(|h| h.is_secret())
                .map(|h| SecretString::from(h.value.clone()))
                .collect(),
            headers,
            kind,
        })
    }

    pub(crate) fn kind(&self) -> BatchKind {
        self.kind
    }

    pub(super) fn url(&self, path: &str) -> Url {
        super::url::endpoint(&self.base, path)
    }

    /// `<base>/<collection>/<id>[/<action>]`, the id encoded as exactly one path segment (and
    /// checked by [`check_id`] before: an id from a ledger or a server is never a path).
    pub(super) fn url_of(
        &self,
        collection: &str,
        id: &str,
        action: Option<&str>,
    ) -> Result<Url, ApiError> {
        check_id(id).map_err(|e| ApiError::InvalidResponse(format!("the id {e}")))?;
        let mut url = self.url(collection);
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| ApiError::Setup("the base URL cannot hold a path".to_owned()))?;
            segments.push(id);
            if let Some(action) = action {
                segments.push(action);
            }
        }
        Ok(url)
    }

    /// Server or transport text through the one sanitiser: the key and credential `-H` values
    /// removed, one line, escape sequences and workflow commands neutralised.
    pub(crate) fn scrubbed(&self, text: &str) -> String {
        crate::sanitize::line(
            &self.without_secrets(text),
            Some(self.bearer.key.expose_secret()),
            1000,
        )
    }

    /// Data (a provider's output line, copied to stdout or a file): the key and credential `-H`
    /// values removed, and nothing else changed: never cut, never rewritten.
    pub(crate) fn scrubbed_data(&self, text: &str) -> String {
        crate::sanitize::scrub_key(&self.without_secrets(text), self.bearer.key.expose_secret())
    }

    fn without_secrets(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| {
            crate::sanitize::scrub_key(&text, secret.expose_secret())
        })
    }

    pub(super) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(method, url)
            .header(self.bearer.kind.name(), self.bearer.header.clone());
        if self.kind == BatchKind::Anthropic {
            // Every Message Batches request carries `anthropic-version`, as a Messages one does.
            for (name, value) in super::wire::Wire::Anthropic.fixed_headers() {
                if !self
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name))
                {
                    builder = builder.header(*name, *value);
                }
            }
        }
        for h in &self.headers {
            builder = builder.header(h.name.as_str(), h.value.as_str());
        }
        builder
    }

    async fn error_of(&self, status: StatusCode, response: reqwest::Response) -> ApiError {
        // As the chat client reads an error: only its start, and the message through one helper.
        let (body, _) = read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let message = error_message(&String::from_utf8_lossy(&body));
        ApiError::Http {
            status: status.as_u16(),
            message: self.scrubbed(&message),
            retry_after: None,
            code: None,
        }
    }

    pub(super) fn transport(&self, e: &reqwest::Error) -> ApiError {
        match transport_error(e) {
            ApiError::Timeout(d) => ApiError::Timeout(self.scrubbed(&d)),
            ApiError::Network(d) => ApiError::Network(self.scrubbed(&d)),
            other => other,
        }
    }

    /// A request without side effects (or one that may be repeated), retried on 408/429/5xx and
    /// network errors with a doubling backoff.
    pub(super) async fn json_idempotent(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.retried(|| self.json_once(method.clone(), url.clone(), body))
            .await
    }

    /// Run `once` again while `RetryPolicy::decide` says so (the chat client's one retry rule).
    pub(super) async fn retried<T, F, Fut>(&self, mut once: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0;
        let mut last_500: Option<String> = None;
        loop {
            attempt += 1;
            match once().await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    // A 500 is temporary, unless the server says twice over that a setting of its
                    // own is missing: that is not dressed up as temporary (exit 75) for a CI job
                    // that retries on 75 to loop on.
                    if let ApiError::Http {
                        status: 500,
                        message,
                        ..
                    } = &e
                    {
                        if last_500.as_deref() == Some(message.as_str())
                            && says_a_setting_is_missing(message)
                        {
                            return Err(ApiError::ServerMisconfigured(message.clone()));
                        }
                        last_500 = Some(message.clone());
                    }
                    match self.retry.decide(e, attempt, false) {
                        Decision::Retry { wait, .. } => tokio::time::sleep(wait).await,
                        Decision::GiveUp(e) => return Err(e),
                    }
                }
            }
        }
    }

    pub(super) async fn json_once(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut request = self.request(method, url);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let bytes = self.answer_bytes(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::InvalidResponse(
                self.scrubbed(&format!("the Batch API answered with invalid JSON ({e})")),
            )
        })
    }

    /// A successful answer's body (bounded), or the error the answer is.
    pub(super) async fn answer_bytes(
        &self,
        response: reqwest::Response,
    ) -> Result<Vec<u8>, ApiError> {
        let status = response.status();
        if !status.is_success() {
            return Err(self.error_of(status, response).await);
        }
        read_bounded(response, MAX_JSON_BYTES)
            .await
            .map_err(|e| self.transport_or_limit(e))
    }

    fn transport_or_limit(&self, e: ReadError) -> ApiError {
        match e {
            ReadError::Transport(e) => self.transport(&e),
            ReadError::TooLarge(max) => {
                ApiError::InvalidResponse(format!("the answer is larger than {max} bytes"))
            }
        }
    }

    /// `POST /files` (multipart/form-data, `purpose=batch`, `file`), streamed from `file` (opened
    /// by the caller through the state-file check; `path` names it in messages). Returns the
    /// file id, checked.
    pub(crate) async fn upload(
        &self,
        file: std::fs::File,
        path: &Path,
        filename: &str,
    ) -> Result<String, ApiError> {
        use tokio::io::AsyncReadExt;
        let boundary = format!("qwen-{}", uuid::Uuid::new_v4().simple());
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/jsonl\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let file = tokio::fs::File::from_std(file);
        let size = file
            .metadata()
            .await
            .map_err(|e| ApiError::Network(format!("cannot read `{}`: {e}", path.display())))?
            .len();
        let length = head.len() as u64 + size + tail.len() as u64;
        let reader = std::io::Cursor::new(head.into_bytes())
            .chain(file)
            .chain(std::io::Cursor::new(tail.into_bytes()));
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            reader,
            64 * 1024,
        ));
        let response = self
            .request(Method::POST, self.url("files"))
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(CONTENT_LENGTH, length)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let bytes = self.answer_bytes(response).await?;
        let file: FileObject = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::InvalidResponse(
                self.scrubbed(&format!("the file upload answered without an id ({e})")),
            )
        })?;
        check_id(&file.id).map_err(|e| {
            ApiError::InvalidResponse(format!("the file upload answered with an id that {e}"))
        })?;
        self.free_of_secrets("file id", &file.id)?;
        Ok(file.id)
    }

    /// `POST /batches`. Not retried: a create whose answer is lost is found again by `find`.
    pub(crate) async fn create(
        &self,
        input_file_id: &str,
        completion_window: &str,
        metadata: &Map<String, Value>,
    ) -> Result<Batch, ApiError> {
        let body = serde_json::json!({
            "input_file_id": input_file_id,
            "endpoint": self.kind.endpoint(),
            "completion_window": completion_window,
            "metadata": metadata,
        });
        let value = self
            .json_once(Method::POST, self.url("batches"), Some(&body))
            .await?;
        self.parse_batch(value)
    }

    /// `GET /batches/{id}` (Anthropic: `GET /v1/messages/batches/{id}`).
    pub(crate) async fn retrieve(&self, id: &str) -> Result<Batch, ApiError> {
        let url = self.url_of(self.kind.batches(), id, None)?;
        let value = self.json_idempotent(Method::GET, url, None).await?;
        self.parse_batch(value)
    }

    /// `POST /batches/{id}/cancel` (Anthropic: `POST /v1/messages/batches/{id}/cancel`;
    /// repeating it is harmless).
    pub(crate) async fn cancel(&self, id: &str) -> Result<Batch, ApiError> {
        let url = self.url_of(self.kind.batches(), id, Some("cancel"))?;
        let value = self.json_idempotent(Method::POST, url, None).await?;
        self.parse_batch(value)
    }

    /// The batch whose `metadata` holds every pair of `wanted`, walking `GET /batches?after=&limit=`
    /// (newest first) for at most `max_pages` pages.
    pub(crate) async fn find(
        &self,
        wanted: &Map<String, Value>,
        max_pages: usize,
    ) -> Result<Option<Batch>, ApiError> {
        let found = self
            .find_in_pages(
                "batches",
                &[("limit", "100")],
                max_pages,
                "batch",
                |b: &Batch| &b.id,
                |b| b.belongs_to(wanted) == Some(true),
            )
            .await?;
        found.map(|b| self.accepted(b)).transpose()
    }

    /// The id of an uploaded batch file named `filename` (an upload whose answer was lost), walking
    /// `GET /files?purpose=batch&order=desc&limit=&after=` for at most `max_pages` pages.
    pub(crate) async fn find_file(
        &self,
        filename: &str,
        max_pages: usize,
    ) -> Result<Option<String>, ApiError> {
        let params = [("purpose", "batch"), ("order", "desc"), ("limit", "1000")];
        let found = self
            .find_in_pages(
                "files",
                &params,
                max_pages,
                "file",
                |f: &FileObject| &f.id,
                |f| f.filename == filename,
            )
            .await?;
        match found {
            Some(f) => {
                check_id(&f.id).map_err(|e| {
                    ApiError::InvalidResponse(format!(
                        "the provider's file list holds an id that {e}"
                    ))
                })?;
                self.free_of_secrets("file id", &f.id)?;
                Ok(Some(f.id))
            }
            None => Ok(None),
        }
    }

    /// The first item of a paged list at `path` that `wanted` accepts, walking at most
    /// `max_pages` pages (`after` = the page's `last_id`, else its last item's id).
    async fn find_in_pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
        max_pages: usize,
        what: &str,
        id_of: impl Fn(&T) -> &String,
        wanted: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, ApiError> {
        let mut after: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..max_pages {
            let mut url = self.url(path);
            {
                let mut q = url.query_pairs_mut();
                for (name, value) in params {
                    q.append_pair(name, value);
                }
                if let Some(a) = &after {
                    q.append_pair("after", a);
                }
            }
            let value = self.json_idempotent(Method::GET, url, None).await?;
            let page: Page<T> = serde_json::from_value(value).map_err(|e| {
                ApiError::InvalidResponse(
                    self.scrubbed(&format!("the {what} list is not a list ({e})")),
                )
            })?;
            let last = page.data.last().map(|item| id_of(item).clone());
            if let Some(found) = page.data.into_iter().find(|item| wanted(item)) {
                return Ok(Some(found));
            }
            // The cursor goes into a query string (encoded), but only a usable id is followed,
            // and only forward: a cursor seen before (a server whose `last_id` never advances)
            // ends the walk at once instead of asking for the same page until the bound.
            let next = page
                .last_id
                .or(last)
                .filter(|id| page.has_more && check_id(id).is_ok());
            match next {
                Some(id) if seen.insert(id.clone()) => after = Some(id),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// `GET /files/{id}/content` into `dest` (a new file: whatever was at that name, a link
    /// included, is removed first, never followed), streamed, at most `max` bytes; the caller
    /// renames it into place. A file over `max` is removed and an error.
    pub(crate) async fn download(&self, id: &str, dest: &Path, max: u64) -> Result<u64, ApiError> {
        let url = self.url_of("files", id, Some("content"))?;
        let done = self
            .retried(|| self.download_once(&url, id, dest, max))
            .await;
        if done.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        done
    }

    /// One download of `url` (the content of the provider's file or batch `id`) into `dest`.
    pub(super) async fn download_once(
        &self,
        url: &Url,
        id: &str,
        dest: &Path,
        max: u64,
    ) -> Result<u64, ApiError> {
        let local = |e: std::io::Error| {
            ApiError::Network(format!("cannot write `{}`: {e}", dest.display()))
        };
        let mut response = self
            .request(Method::GET, url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.error_of(status, response).await);
        }
        match std::fs::remove_file(dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(local(e)),
            _ => {}
        }
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        let mut file = options.open(dest).await.map_err(local)?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            written += chunk.len() as u64;
            if written > max {
                return Err(ApiError::InvalidResponse(format!(
                    "the provider's file `{id}` is larger than {max} bytes, more than its requests can need; nothing of it was kept"
                )));
            }
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        file.sync_all().await.map_err(local)?;
        Ok(written)
    }

    /// A batch object, its ids and status checked ([`Batch::checked`]); Anthropic's
    /// `message_batch` read into the same fields first.
    pub(super) fn parse_batch(&self, value: Value) -> Result<Batch, ApiError> {
        let value = if self.kind == BatchKind::Anthropic {
            super::message_batches::as_batch(&value).map_err(ApiError::InvalidResponse)?
        } else {
            value
        };
        let batch: Batch = serde_json::from_value(value).map_err(|e| {
            ApiError::InvalidResponse(
                self.scrubbed(&format!("the answer is not a batch object ({e})")),
            )
        })?;
        self.accepted(batch)
    }

    /// A batch object whose ids and status pass [`Batch::checked`] and hold no secret.
    fn accepted(&self, batch: Batch) -> Result<Batch, ApiError> {
        let batch = batch.checked().map_err(|e| {
            ApiError::InvalidResponse(format!("the provider's batch object is refused: {e}"))
        })?;
        self.free_of_secrets("id", &batch.id)?;
        self.free_of_secrets("status", &batch.status)?;
        for id in [
            &batch.input_file_id,
            &batch.output_file_id,
            &batch.error_file_id,
        ]
        .into_iter()
        .flatten()
        {
            self.free_of_secrets("file id", id)?;
        }
        Ok(batch)
    }

    /// An id or a status that holds the key (or a credential `-H` value) is refused: it would be
    /// printed and stored.
    fn free_of_secrets(&self, field: &str, text: &str) -> Result<(), ApiError> {
        if self.scrubbed_data(text) == text {
            Ok(())
        } else {
            Err(ApiError::InvalidResponse(format!(
                "the provider's batch {field} holds the key or a credential header value; refused"
            )))
        }
    }

    /// `DELETE /files/{id}`; a file already gone counts as deleted.
    pub(crate) async fn delete_file(&self, id: &str) -> Result<(), ApiError> {
        let url = self.url_of("files", id, None)?;
        match self.json_idempotent(Method::DELETE, url, None).await {
            Ok(_) | Err(ApiError::Http { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

enum ReadError {
    Transport(reqwest::Error),
    TooLarge(usize),
}

/// The whole body, or `TooLarge` past `max` bytes.
async fn read_bounded(response: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    match read_capped(response, max).await {
        Ok((body, true)) => Ok(body),
        Ok((_, false)) => Err(ReadError::TooLarge(max)),
        Err(e) => Err(ReadError::Transport(e)),
    }
}

/// Whether a server's error message says a setting of its own is missing or not set
/// (`files_settings is not set`, `... not configured`, `missing ... setting`).
fn says_a_setting_is_missing(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not set") || m.contains("not configured") || m.contains("missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_safe_path_segment() {
        for good in [
            "file-abc123",
            "batch_6789",
            "file-batch-X_y",
            &"a".repeat(128),
        ] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            ".",
            "../models/ft:gpt-4o",
            "a/b",
            "a%2Fb",
            "a?b",
            "a#b",
            "a b",
            "ft:x",
            "id\u{1b}[31m",
            "id\n::warning::x",
            "ü",
            &"a".repeat(129),
        ] {
            let err = check_id(bad).unwrap_err();
            assert!(!err.contains('\u{1b}') && !err.contains('\n'), "{err}");
        }
        assert!(check_status("in_progress").is_ok());
        assert!(check_status("done\n::warning::x").is_err());
    }

    fn api_for(server: &wiremock::MockServer) -> BatchApi {
        let mut settings = crate::settings::Connection::default().client(false, 1, 1024);
        settings.retry.retries = 3;
        settings.retry.base_delay = std::time::Duration::ZERO;
        settings.connect_timeout = std::time::Duration::from_secs(10);
        settings.idle_timeout = std::time::Duration::from_secs(10);
        BatchApi::new(
            &Url::parse(&format!("{}/v1", server.uri())).unwrap(),
            SecretString::from("sk-test-0123456789abcdef"),
            &settings,
            BatchKind::OpenaiChat,
            crate::client::wire::KeyHeader::Bearer,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_paging_cursor_that_does_not_advance_ends_the_walk_at_once() {
        use wiremock::matchers::{method, path};
        let server = wiremock::MockServer::start().await;
        // Every page: one other file, more to come, and the same `last_id`.
        wiremock::Mock::given(method("GET"))
            .and(path("/v1/files"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "object": "list",
                    "data": [{"id": "file-1", "object": "file", "filename": "other.jsonl"}],
                    "has_more": true,
                    "last_id": "file-1"
                })),
            )
            .mount(&server)
            .await;
        let found = api_for(&server).find_file("mine.jsonl", 50).await.unwrap();
        assert_eq!(found, None);
        // The first page, then the one its cursor names; the same cursor again ends the walk.
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_same_missing_setting_500_twice_is_permanent_not_temporary() {
        use wiremock::matchers::method;
        let server = wiremock::MockServer::start().await;
        // LiteLLM without `files_settings` answers every Batch API call this way.
        wiremock::Mock::given(method("GET"))
            .respond_with(wiremock::ResponseTemplate::new(500).set_body_json(serde_json::json!({
                "error": {"message": "files_settings is not set", "type": "None", "param": "None", "code": "500"}
            })))
            .mount(&server)
            .await;
        let err = api_for(&server)
            .find_file("mine.jsonl", 1)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::ServerMisconfigured(_)), "{err:?}");
        assert_eq!(err.exit_status(), crate::exit::ExitStatus::Failure);
        assert_eq!(server.received_requests().await.unwrap().len(), 2);

        // An ordinary 500 stays temporary: retried to the end, then exit 75.
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("GET"))
            .respond_with(
                wiremock::ResponseTemplate::new(500).set_body_string("Internal Server Error"),
            )
            .mount(&server)
            .await;
        let err = api_for(&server)
            .find_file("mine.jsonl", 1)
            .await
            .unwrap_err();
        assert_eq!(
            err.exit_status(),
            crate::exit::ExitStatus::TempFail,
            "{err:?}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 4);
    }

    #[test]
    fn a_missing_setting_is_told_from_a_passing_failure() {
        assert!(says_a_setting_is_missing("files_settings is not set"));
        assert!(says_a_setting_is_missing(
            "Batch API not configured for this model"
        ));
        assert!(!says_a_setting_is_missing("Internal Server Error"));
        assert!(!says_a_setting_is_missing("upstream timed out"));
    }

    #[test]
    fn an_id_is_encoded_as_exactly_one_segment() {
        let api = BatchApi::new(
            &Url::parse("http://127.0.0.1:9/v1").unwrap(),
            SecretString::from("sk-test-0123456789abcdef"),
            &crate::settings::Connection::default().client(false, 1, 1024),
            BatchKind::OpenaiChat,
            crate::client::wire::KeyHeader::Bearer,
        )
        .unwrap();
        let url = api.url_of("batches", "batch_1", Some("cancel")).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/v1/batches/batch_1/cancel");
        assert!(api.url_of("files", "../models/ft:x", None).is_err());
    }
}
