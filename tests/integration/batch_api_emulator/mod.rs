//! A local emulator of the provider's Files and Batches endpoints, written from the `OpenAI` API
//! reference (`openai/openai-openapi`, `openapi.yaml`): `POST /files` (multipart, `CreateFileRequest`:
//! `file` + `purpose=batch`, answers an `OpenAIFile`), `POST /batches` (`CreateBatchRequest`:
//! `input_file_id`, `endpoint`, `completion_window`, `metadata`), `GET /batches/{batch_id}`,
//! `GET /batches?after=&limit=` (`ListBatchesResponse`: `object=list`, `data`, `first_id`, `last_id`,
//! `has_more`; newest first, `limit` 1..100, default 20), `POST /batches/{batch_id}/cancel` (the batch
//! goes `cancelling`, later `cancelled` with partial results), `GET /files/{file_id}/content`,
//! `DELETE /files/{file_id}` (`DeleteFileResponse`). Batches move `validating → in_progress →
//! finalizing → completed` (or `failed`, `expired`, `cancelling → cancelled`) one step per tick of
//! a clock the test controls. Output and error files hold the Batch API's per-line shape:
//! `{"id","custom_id","response":{"status_code","request_id","body"},"error"}`. A batch's
//! `endpoint` is `/v1/chat/completions` or `/v1/responses` (the `CreateBatchRequest.endpoint`
//! enum); its lines' `url` must be the same, and `/v1/responses` lines are answered with
//! Responses objects. Started with [`Emulator::start_anthropic`], the same batches are spoken as
//! Anthropic's Message Batches (`messages`).

mod answers;
mod files;
mod messages;

use answers::input_lines;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::batch_support::TokioServer;

/// `qwen batch submit` of `jobs.yaml` as batch `n`, waiting for it (polls 10 ms apart).
pub(crate) const SUBMIT_WAIT: [&str; 8] = [
    "batch",
    "submit",
    "jobs.yaml",
    "--name",
    "n",
    "--wait",
    "--poll-interval",
    "10ms",
];

/// How a batch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every request runs.
    Complete,
    /// The batch fails validation (no output).
    Fail,
    /// The window ends after `ran` requests ran: partial output, then `expired`.
    Expire { ran: usize },
}

/// When to stop answering (a process killed while it waits loses the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hang {
    /// Never answer `POST /batches`, and do not create the batch.
    BeforeCreate,
    /// Create the batch, then never answer.
    AfterCreate,
    /// Store the uploaded file, then never answer.
    AfterUpload,
}

#[derive(Debug, Clone)]
pub(super) struct FileRec {
    filename: String,
    purpose: String,
    bytes: Vec<u8>,
    created_at: u64,
}

#[derive(Debug, Clone)]
struct BatchRec {
    id: String,
    /// `/v1/chat/completions` or `/v1/responses` (Anthropic: `/v1/messages`).
    endpoint: String,
    input_file_id: String,
    completion_window: String,
    metadata: Value,
    status: String,
    created_at: u64,
    stamps: Map<String, Value>,
    total: usize,
    /// Requests that ran so far (the first `ran` lines of the input).
    ran: usize,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    errors: Option<Value>,
    model: Option<String>,
    /// Requests that ran and ended in the error file.
    failed: usize,
}

/// Which Batch API the emulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Openai,
    Anthropic,
}

pub(super) struct State {
    key: String,
    flavor: Flavor,
    /// The server's root (`http://127.0.0.1:PORT`), for Anthropic's `results_url`.
    root: String,
    files: HashMap<String, FileRec>,
    batches: Vec<BatchRec>,
    next: u64,
    clock: u64,
    ending: Ending,
    /// Advance a batch one step on every `GET /batches/{id}` (for `--wait`).
    tick_on_poll: bool,
    hang: Option<Hang>,
    /// Reject an input file with more lines than this, or with more than one model.
    max_requests: usize,
    one_model_per_file: bool,
    log: Vec<String>,
    /// Fields that overwrite those of every batch object answered (a hostile provider).
    batch_patch: Option<Map<String, Value>>,
    /// The content of every output file written from now on, instead of the requests' answers.
    output_override: Option<Vec<u8>>,
    /// Every error message quotes the request's headers (a gateway that echoes them).
    echo_headers: bool,
    /// The JSON body of every `POST` to a batches collection.
    posted: Vec<Value>,
    /// The header that carried the key, per request (Anthropic: `x-api-key` or `bearer`).
    key_headers: Vec<&'static str>,
}

/// A running emulator on 127.0.0.1.
pub(crate) struct Emulator {
    pub(crate) base_url: String,
    state: Arc<Mutex<State>>,
    _server: TokioServer,
}

impl Emulator {
    pub(crate) fn start(key: &str) -> Self {
        Self::start_as(key, Flavor::Openai)
    }

    /// The same batches spoken as Anthropic's Message Batches; `base_url` is the server's root
    /// (what `ANTHROPIC_BASE_URL` holds).
    pub(crate) fn start_anthropic(key: &str) -> Self {
        Self::start_as(key, Flavor::Anthropic)
    }

    fn start_as(key: &str, flavor: Flavor) -> Self {
        let state = Arc::new(Mutex::new(State {
            key: key.to_owned(),
            flavor,
            root: String::new(),
            files: HashMap::new(),
            batches: Vec::new(),
            next: 0,
            clock: 1_700_000_000,
            ending: Ending::Complete,
            tick_on_poll: true,
            hang: None,
            max_requests: 50_000,
            one_model_per_file: true,
            log: Vec::new(),
            batch_patch: None,
            output_override: None,
            echo_headers: false,
            posted: Vec::new(),
            key_headers: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let server = TokioServer::start(2, move |socket| {
            let state = Arc::clone(&shared);
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(req, state).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            }
        });
        let root = server.base_url.trim_end_matches("/v1").to_owned();
        state.lock().expect("emulator lock").root.clone_from(&root);
        let base_url = match flavor {
            Flavor::Openai => server.base_url.clone(),
            Flavor::Anthropic => root,
        };
        Self {
            base_url,
            state,
            _server: server,
        }
    }

    /// The body of every `POST` the emulator received, in order (Anthropic's create bodies).
    pub(crate) fn posted(&self) -> Vec<Value> {
        self.with(|s| s.posted.clone())
    }

    /// The distinct headers the key came in (Anthropic: `x-api-key`, `bearer`).
    pub(crate) fn key_headers(&self) -> Vec<&'static str> {
        self.with(|s| {
            let mut seen = s.key_headers.clone();
            seen.dedup();
            seen
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("emulator lock"))
    }

    pub(crate) fn set_ending(&self, ending: Ending) {
        self.with(|s| s.ending = ending);
    }

    pub(crate) fn set_tick_on_poll(&self, on: bool) {
        self.with(|s| s.tick_on_poll = on);
    }

    pub(crate) fn set_hang(&self, hang: Option<Hang>) {
        self.with(|s| s.hang = hang);
    }

    pub(crate) fn set_max_requests(&self, n: usize) {
        self.with(|s| s.max_requests = n);
    }

    /// Overwrite these fields of every batch object answered from now on.
    pub(crate) fn set_batch_patch(&self, patch: Option<Value>) {
        self.with(|s| s.batch_patch = patch.and_then(|p| p.as_object().cloned()));
    }

    /// Write `bytes` as every later output file.
    pub(crate) fn set_output_override(&self, bytes: Option<Vec<u8>>) {
        self.with(|s| s.output_override = bytes);
    }

    /// Quote the request's headers in every error message.
    pub(crate) fn set_echo_headers(&self, on: bool) {
        self.with(|s| s.echo_headers = on);
    }

    /// One tick of the clock: every batch that has not ended moves one step.
    pub(crate) fn advance(&self) {
        self.with(|s| {
            for i in 0..s.batches.len() {
                step(s, i);
            }
        });
    }

    /// `METHOD /path` of every request, in order.
    pub(crate) fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// (filename, content) of every file uploaded with purpose `batch`.
    pub(crate) fn uploads(&self) -> Vec<(String, String)> {
        self.with(|s| {
            let mut files: Vec<_> = s
                .files
                .iter()
                .filter(|(_, f)| f.purpose == "batch")
                .map(|(id, f)| {
                    (
                        id.clone(),
                        f.filename.clone(),
                        String::from_utf8_lossy(&f.bytes).into_owned(),
                    )
                })
                .collect();
            files.sort();
            files.into_iter().map(|(_, n, c)| (n, c)).collect()
        })
    }

    pub(crate) fn batch_count(&self) -> usize {
        self.with(|s| s.batches.len())
    }

    pub(crate) fn statuses(&self) -> Vec<String> {
        self.with(|s| s.batches.iter().map(|b| b.status.clone()).collect())
    }

    pub(crate) fn file_count(&self) -> usize {
        self.with(|s| s.files.len())
    }
}

/// A request header's value from `all_headers` (`name: value ` pairs, names in lower case).
fn req_header(all_headers: &str, name: &str) -> Option<String> {
    let start = all_headers.find(&format!("{name}: "))? + name.len() + 2;
    all_headers[start..].split(' ').next().map(str::to_owned)
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let all_headers = req
        .headers()
        .iter()
        .fold(String::new(), |mut text, (k, v)| {
            let _ = write!(text, "{k}: {} ", v.to_str().unwrap_or_default());
            text
        });
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let api_key = req_header(&all_headers, "x-api-key");
    let version = req_header(&all_headers, "anthropic-version");
    let hang = {
        let mut s = state.lock().expect("emulator lock");
        s.log.push(format!("{method} {path}"));
        if s.flavor == Flavor::Anthropic {
            match messages::credential(&s.key, &auth, api_key.as_deref(), version.as_deref()) {
                Ok(header) => s.key_headers.push(header),
                Err(refused) => return *refused,
            }
        } else if auth != format!("Bearer {}", s.key) {
            let echo = if s.echo_headers {
                all_headers.as_str()
            } else {
                ""
            };
            return error(
                StatusCode::UNAUTHORIZED,
                &format!("Incorrect API key provided {echo}"),
            );
        }
        let hang = s.hang.clone();
        if method == "POST" && path == "/v1/batches" && hang == Some(Hang::BeforeCreate) {
            Some(())
        } else {
            None
        }
    };
    if hang.is_some() {
        std::future::pending::<()>().await;
    }
    let (response, hang_after) = {
        let mut s = state.lock().expect("emulator lock");
        let r = if s.flavor == Flavor::Anthropic {
            messages::route(&mut s, &method, &path, &body)
        } else {
            route(&mut s, &method, &path, &query, &content_type, &body)
        };
        let hang_after = method == "POST"
            && (((path == "/v1/batches" || path == "/v1/messages/batches")
                && s.hang == Some(Hang::AfterCreate))
                || (path == "/v1/files" && s.hang == Some(Hang::AfterUpload)));
        (r, hang_after)
    };
    if hang_after {
        std::future::pending::<()>().await;
    }
    response
}

fn route(
    s: &mut State,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["files"]) => files::upload(s, content_type, body),
        ("GET", ["files"]) => files::list_files(s, query),
        ("GET", ["files", id, "content"]) => match s.files.get(*id) {
            Some(f) => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(f.bytes.clone())))
                .expect("a response"),
            None => error(StatusCode::NOT_FOUND, "No such File object"),
        },
        ("DELETE", ["files", id]) => match s.files.remove(*id) {
            Some(_) => reply(
                StatusCode::OK,
                &json!({"id": id, "object": "file", "deleted": true}),
            ),
            None => error(StatusCode::NOT_FOUND, "No such File object"),
        },
        ("POST", ["batches"]) => create(s, body),
        ("GET", ["batches"]) => list(s, query),
        ("GET", ["batches", id]) => {
            let Some(i) = s.batches.iter().position(|b| b.id == *id) else {
                return error(StatusCode::NOT_FOUND, "No such Batch object");
            };
            if s.tick_on_poll {
                step(s, i);
            }
            reply(StatusCode::OK, &batch_out(s, &s.batches[i]))
        }
        ("POST", ["batches", id, "cancel"]) => {
            let now = s.clock;
            let Some(b) = s.batches.iter_mut().find(|b| b.id == *id) else {
                return error(StatusCode::NOT_FOUND, "No such Batch object");
            };
            if matches!(
                b.status.as_str(),
                "validating" | "in_progress" | "finalizing"
            ) {
                b.status = "cancelling".into();
                b.stamps.insert("cancelling_at".into(), json!(now));
            }
            let b = b.clone();
            reply(StatusCode::OK, &batch_out(s, &b))
        }
        _ => error(StatusCode::NOT_FOUND, "unknown endpoint"),
    }
}

fn create(s: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let Some(input) = req["input_file_id"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "input_file_id is required");
    };
    s.posted.push(req.clone());
    let Some(endpoint @ ("/v1/chat/completions" | "/v1/responses")) = req["endpoint"].as_str()
    else {
        return error(StatusCode::BAD_REQUEST, "unsupported endpoint");
    };
    let window = req["completion_window"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if window != "24h" {
        return error(StatusCode::BAD_REQUEST, "completion_window must be 24h");
    }
    if let Some(m) = req["metadata"].as_object()
        && (m.len() > 16
            || m.iter()
                .any(|(k, v)| k.len() > 64 || v.as_str().is_none_or(|v| v.len() > 512)))
    {
        return error(StatusCode::BAD_REQUEST, "invalid metadata");
    }
    let Some(file) = s.files.get(input) else {
        return error(StatusCode::BAD_REQUEST, "No such File object");
    };
    let total = file
        .bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    s.next += 1;
    let batch = BatchRec {
        id: format!("batch_{:06}", s.next),
        endpoint: endpoint.to_owned(),
        input_file_id: input.to_owned(),
        completion_window: window,
        metadata: req.get("metadata").cloned().unwrap_or(Value::Null),
        status: "validating".into(),
        created_at: s.clock,
        stamps: Map::new(),
        total,
        ran: 0,
        output_file_id: None,
        error_file_id: None,
        errors: None,
        model: None,
        failed: 0,
    };
    let answer = batch_out(s, &batch);
    s.batches.push(batch);
    reply(StatusCode::OK, &answer)
}

fn list(s: &State, query: &str) -> Response<Full<Bytes>> {
    let mut after = None;
    let mut limit = 20usize;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("after", v)) => after = Some(v.to_owned()),
            Some(("limit", v)) => limit = v.parse().unwrap_or(20),
            _ => {}
        }
    }
    if !(1..=100).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 100");
    }
    // Newest first.
    let newest: Vec<&BatchRec> = s.batches.iter().rev().collect();
    let start = after
        .and_then(|a| newest.iter().position(|b| b.id == a).map(|p| p + 1))
        .unwrap_or(0);
    let page: Vec<Value> = newest
        .iter()
        .skip(start)
        .take(limit)
        .map(|b| batch_out(s, b))
        .collect();
    let has_more = start + page.len() < newest.len();
    reply(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": page,
            "first_id": page.first().map(|b| b["id"].clone()),
            "last_id": page.last().map(|b| b["id"].clone()),
            "has_more": has_more,
        }),
    )
}

/// A batch object as answered: [`batch_json`] with the test's patch over it.
fn batch_out(s: &State, b: &BatchRec) -> Value {
    let mut v = batch_json(b);
    if let (Some(patch), Some(obj)) = (&s.batch_patch, v.as_object_mut()) {
        for (k, val) in patch {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

fn batch_json(b: &BatchRec) -> Value {
    let stamp = |k: &str| b.stamps.get(k).cloned().unwrap_or(Value::Null);
    let completed = if matches!(b.status.as_str(), "completed" | "expired" | "cancelled") {
        b.ran
    } else {
        b.ran / 2
    };
    json!({
        "id": b.id,
        "object": "batch",
        "endpoint": b.endpoint,
        "model": b.model,
        "errors": b.errors,
        "input_file_id": b.input_file_id,
        "completion_window": b.completion_window,
        "status": b.status,
        "output_file_id": b.output_file_id,
        "error_file_id": b.error_file_id,
        "created_at": b.created_at,
        "in_progress_at": stamp("in_progress_at"),
        "expires_at": b.created_at + 86_400,
        "finalizing_at": stamp("finalizing_at"),
        "completed_at": stamp("completed_at"),
        "failed_at": stamp("failed_at"),
        "expired_at": stamp("expired_at"),
        "cancelling_at": stamp("cancelling_at"),
        "cancelled_at": stamp("cancelled_at"),
        "request_counts": {"total": b.total, "completed": completed - b.failed.min(completed), "failed": b.failed},
        "metadata": b.metadata,
    })
}

/// Move batch `i` one step along its life.
pub(super) fn step(s: &mut State, i: usize) {
    s.clock += 1;
    let now = s.clock;
    let ending = s.ending;
    let status = s.batches[i].status.clone();
    match status.as_str() {
        "validating" => {
            let problem = validate(s, i);
            let b = &mut s.batches[i];
            if let Some(problem) = problem.or_else(|| {
                (ending == Ending::Fail).then(|| "the input file was rejected".to_owned())
            }) {
                b.status = "failed".into();
                b.errors = Some(
                    json!({"object": "list", "data": [{"code": "invalid_request", "message": problem, "param": null, "line": null}]}),
                );
                b.stamps.insert("failed_at".into(), json!(now));
            } else {
                b.status = "in_progress".into();
                b.stamps.insert("in_progress_at".into(), json!(now));
                b.ran = b.total / 2;
            }
        }
        "in_progress" => {
            if let Ending::Expire { ran } = ending {
                let ran = ran.min(s.batches[i].total);
                s.batches[i].ran = ran;
                answers::write_results(s, i);
                let b = &mut s.batches[i];
                b.status = "expired".into();
                b.stamps.insert("expired_at".into(), json!(now));
            } else {
                let b = &mut s.batches[i];
                b.ran = b.total;
                b.status = "finalizing".into();
                b.stamps.insert("finalizing_at".into(), json!(now));
            }
        }
        "finalizing" => {
            answers::write_results(s, i);
            let b = &mut s.batches[i];
            b.status = "completed".into();
            b.stamps.insert("completed_at".into(), json!(now));
        }
        "cancelling" => {
            answers::write_results(s, i);
            let b = &mut s.batches[i];
            b.status = "cancelled".into();
            b.stamps.insert("cancelled_at".into(), json!(now));
        }
        _ => {}
    }
}

/// What the provider's validation would reject.
fn validate(s: &mut State, i: usize) -> Option<String> {
    let lines = input_lines(s, i);
    if lines.len() > s.max_requests {
        return Some(format!(
            "the file has {} requests, more than {}",
            lines.len(),
            s.max_requests
        ));
    }
    let mut ids = std::collections::HashSet::new();
    let mut models = std::collections::HashSet::new();
    let endpoint = s.batches[i].endpoint.clone();
    // Chat lines carry `messages`, Responses lines `input`.
    let turns = if endpoint == "/v1/responses" {
        "input"
    } else {
        "messages"
    };
    for (n, l) in lines.iter().enumerate() {
        let ok = l["custom_id"].is_string()
            && l["method"] == "POST"
            && l["url"] == endpoint.as_str()
            && l["body"]["model"].is_string()
            && l["body"][turns].is_array()
            && l["body"].get("stream").is_none();
        if !ok {
            return Some(format!("line {}: not a valid request", n + 1));
        }
        if !ids.insert(l["custom_id"].as_str().unwrap_or_default().to_owned()) {
            return Some(format!("line {}: duplicate custom_id", n + 1));
        }
        models.insert(l["body"]["model"].as_str().unwrap_or_default().to_owned());
    }
    if s.one_model_per_file && models.len() > 1 {
        return Some("the file uses more than one model".into());
    }
    s.batches[i].model = models.into_iter().next();
    None
}
