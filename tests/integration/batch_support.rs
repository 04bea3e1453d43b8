//! What only the batch tests need on top of `common`: an echoing chat server (so every result can
//! be matched to its job), a raw HTTP server that measures how many requests are in flight at
//! once, a child process whose output can be watched while it runs (for signals), and helpers
//! for job and result files.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use crate::common::{KEY, Run, Sse, TestEnv, chat, request_bodies};

/// The `x-request-id` every echo response carries.
pub(crate) const REQUEST_ID: &str = "req-echo-0001";

/// Tokens the echo server reports for every answer.
pub(crate) const PROMPT_TOKENS: u64 = 10;
pub(crate) const COMPLETION_TOKENS: u64 = 2;

/// `TestEnv::std_cmd` pointed at `base_url` with the test key, as a child the test manages
/// (for signals).
pub(crate) fn spawn(env: &TestEnv, base_url: &str, args: &[&str]) -> Spawned {
    let mut child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn qwen");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        collect(child.stdout.take().map(|s| Box::new(s) as _), &stdout),
        collect(child.stderr.take().map(|s| Box::new(s) as _), &stderr),
    ];
    Spawned {
        child,
        stdout,
        stderr,
        readers,
    }
}

fn collect(
    stream: Option<Box<dyn Read + Send>>,
    into: &Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        let Some(mut stream) = stream else { return };
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().expect("lock").extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A `qwen` child process with its output collected as it comes.
pub(crate) struct Spawned {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Spawned {
    /// Send a signal (`TERM`, `INT`) with `kill`.
    pub(crate) fn signal(&self, name: &str) {
        crate::common::send_signal(self.child.id(), name);
    }

    /// What the child has written to stderr so far.
    pub(crate) fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    /// Poll until `cond` holds, failing the test after `bound`.
    #[track_caller]
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        bound: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + bound;
        while !cond(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "qwen ended ({status}) before {what}\n--- stderr ---\n{}",
                    self.stderr_now()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {bound:?} waiting for {what}\n--- stderr ---\n{}",
                self.stderr_now()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the child to end (bounded), then return its exit code and streams.
    pub(crate) fn wait(mut self, bound: Duration) -> Run {
        let deadline = Instant::now() + bound;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "qwen did not end within {bound:?}\n--- stderr ---\n{}",
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&self.stdout.lock().expect("lock")).into_owned(),
            stderr: self.stderr_now(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Run {
    /// stdout as result lines (none when empty).
    #[track_caller]
    pub(crate) fn stdout_lines(&self) -> Vec<Value> {
        json_lines(&self.stdout, "stdout")
    }
}

pub(crate) use crate::common::json_lines;

/// A result file of the project as objects.
#[track_caller]
pub(crate) fn file_lines(env: &TestEnv, rel: &str) -> Vec<Value> {
    json_lines(&env.read_project(rel), rel)
}

/// The `id` of every line, in order (`custom_id` for openai-batch lines).
#[track_caller]
pub(crate) fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.get("id")
                .filter(|_| l.get("custom_id").is_none())
                .or_else(|| l.get("custom_id"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("a line without an id: {l}"))
                .to_owned()
        })
        .collect()
}

/// Lines by id; fails on a duplicate id.
#[track_caller]
pub(crate) fn by_id(lines: &[Value]) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for (id, line) in ids(lines).into_iter().zip(lines) {
        let previous = map.insert(id.clone(), line.clone());
        assert!(previous.is_none(), "id `{id}` has two lines: {lines:#?}");
    }
    map
}

/// Sorted ids, to compare sets.
pub(crate) fn sorted<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v
}

/// Jobs as a JSON Lines file body.
pub(crate) fn jsonl(jobs: &[Value]) -> String {
    jobs.iter().fold(String::new(), |mut text, job| {
        text.push_str(&job.to_string());
        text.push('\n');
        text
    })
}

/// A server whose every chat request is answered by `Echo`.
pub(crate) async fn echo_server(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    chat().respond_with(Echo::after(delay)).mount(&server).await;
    server
}

/// Request bodies keyed by the last user message; fails when a prompt was sent twice.
pub(crate) async fn bodies_by_prompt(server: &MockServer) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for body in request_bodies(server).await {
        let prompt = last_user_message(&body).expect("a user message");
        let previous = map.insert(prompt.clone(), body);
        assert!(previous.is_none(), "prompt {prompt:?} was sent twice");
    }
    map
}

/// The content of the last user message of a request body.
pub(crate) fn last_user_message(body: &Value) -> Option<String> {
    body.get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user")?
        .get("content")?
        .as_str()
        .map(str::to_owned)
}

/// The echo servers' SSE answer: the text in the role delta, `finish_reason: stop`, a usage
/// chunk, `[DONE]`.
pub(crate) fn sse_answer(text: &str) -> String {
    Sse::from_server("chatcmpl-echo", "echo-server")
        .chunk(&json!({"role": "assistant", "content": text}), None)
        .finish("stop")
        .usage(PROMPT_TOKENS, COMPLETION_TOKENS)
        .done()
        .body()
}

/// Answers every chat request with its own last user message, streamed, after an optional delay.
pub(crate) struct Echo {
    delay: Duration,
}

impl Echo {
    pub(crate) fn after(delay: Duration) -> Self {
        Self { delay }
    }
}

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400).set_body_string("the request body is not JSON");
        };
        let Some(text) = last_user_message(&body) else {
            return ResponseTemplate::new(400).set_body_string("no user message");
        };
        ResponseTemplate::new(200)
            .insert_header("x-request-id", REQUEST_ID)
            .set_body_raw(sse_answer(&text), "text/event-stream")
            .set_delay(self.delay)
    }
}

/// A test server on 127.0.0.1, on a thread and runtime of its own (`threads` workers; 1: a
/// current-thread runtime), handing each connection to `serve`. Dropping it stops accepting.
pub(crate) struct TokioServer {
    pub(crate) base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TokioServer {
    pub(crate) fn start<F, Fut>(threads: usize, serve: F) -> Self
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = if threads > 1 {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .expect("a runtime for the test server");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let accept = async {
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve(socket));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            base_url,
            stop: Some(stop),
        }
    }
}

impl Drop for TokioServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A raw HTTP/1.1 server on 127.0.0.1 that holds every request for `hold` before echoing it,
/// and records how many requests it held at once. wiremock cannot tell this: it only sees a
/// request when it answers it.
pub(crate) struct HoldingServer {
    pub(crate) base_url: String,
    max_in_flight: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    _server: TokioServer,
}

impl HoldingServer {
    pub(crate) fn start(hold: Duration) -> Self {
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let counters = Counters {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max: Arc::clone(&max_in_flight),
            served: Arc::clone(&served),
            arrivals: Arc::clone(&arrivals),
        };
        let raw = TokioServer::start(1, move |socket| {
            let counters = counters.clone();
            async move {
                let _ = serve_held(socket, hold, &counters).await;
            }
        });
        Self {
            base_url: raw.base_url.clone(),
            max_in_flight,
            served,
            arrivals,
            _server: raw,
        }
    }

    /// The most requests held at the same moment.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// How many requests were answered.
    pub(crate) fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// When each request had fully arrived, in order.
    pub(crate) fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().expect("lock").clone()
    }
}

#[derive(Clone)]
struct Counters {
    in_flight: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

/// Read the next HTTP/1.1 request from `socket` (`buf` keeps what was read past it): its body as
/// JSON (`Null` when it is not JSON), or `None` when the peer closed the connection.
pub(crate) async fn read_json_request(
    socket: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Value>> {
    use tokio::io::AsyncReadExt;
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
    buf.drain(..head_end + length);
    Ok(Some(body))
}

/// One connection: read requests one by one, hold each, answer it with its echo.
async fn serve_held(
    mut socket: tokio::net::TcpStream,
    hold: Duration,
    counters: &Counters,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(body) = read_json_request(&mut socket, &mut buf).await? else {
            return Ok(());
        };

        // Held: counted from the moment the whole request is in until the answer starts, so a
        // client that sends its next request only after an answer is never counted twice.
        counters.arrivals.lock().expect("lock").push(Instant::now());
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(hold).await;
        counters.in_flight.fetch_sub(1, Ordering::SeqCst);

        let text = last_user_message(&body).unwrap_or_default();
        let sse = sse_answer(&text);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{sse}",
            sse.len()
        );
        socket.write_all(response.as_bytes()).await?;
        socket.flush().await?;
        counters.served.fetch_add(1, Ordering::SeqCst);
    }
}
