//! The harness: a hermetic temporary HOME and project, the `qwen` binary with a cleared
//! environment, and wiremock servers that speak the chat-completions streaming protocol.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

/// The key most tests authenticate with.
pub(crate) const KEY: &str = "sk-test-key-0000";

/// Where the chat endpoint lives under `base_url(server)`.
pub(crate) const CHAT_PATH: &str = "/v1/chat/completions";

/// The longest any single run may take before the harness calls it a hang.
pub(crate) const RUN_BOUND: Duration = Duration::from_secs(20);

/// A temporary root holding `home/` (used as `HOME`) and `project/` (the working directory).
/// The two are siblings, so the walk up from the project never passes through HOME.
pub(crate) struct TestEnv {
    _root: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) project: PathBuf,
    cwd: PathBuf,
}

impl TestEnv {
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("qwen-it-")
            .tempdir()
            .expect("create a temporary directory");
        // Canonical, so that paths compare equal to what the binary sees as its cwd.
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        assert_no_dotenv_above(&root);
        let home = root.join("home");
        let project = root.join("project");
        std::fs::create_dir_all(&home).expect("create home");
        std::fs::create_dir_all(&project).expect("create project");
        Self {
            _root: dir,
            root,
            cwd: project.clone(),
            home,
            project,
        }
    }

    /// Write a file under the project directory (parents created).
    pub(crate) fn write_project(&self, rel: &str, contents: &str) -> PathBuf {
        write_file(&self.project.join(rel), contents)
    }

    /// A path under the project directory.
    pub(crate) fn project_path(&self, rel: &str) -> PathBuf {
        self.project.join(rel)
    }

    /// A file under the project directory as text.
    pub(crate) fn read_project(&self, rel: &str) -> String {
        std::fs::read_to_string(self.project_path(rel)).expect("read file")
    }

    /// Write a file under HOME (parents created).
    pub(crate) fn write_home(&self, rel: &str, contents: &str) -> PathBuf {
        write_file(&self.home.join(rel), contents)
    }

    /// Run from a directory below the project (created).
    pub(crate) fn cd(&mut self, rel: &str) -> PathBuf {
        let dir = self.project.join(rel);
        std::fs::create_dir_all(&dir).expect("create cwd");
        self.cwd.clone_from(&dir);
        dir
    }

    /// The binary with a cleared environment: only `HOME`, and whatever the test adds.
    pub(crate) fn cmd(&self) -> assert_cmd::Command {
        self.cmd_named("qwen")
    }

    /// `cmd()` for either binary (`qwen`, `qwen-code`): the one way the tests run the program
    /// (`std_cmd` is the same environment for a test that manages the child itself).
    pub(crate) fn cmd_named(&self, bin: &str) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin(bin).expect("a binary of this package");
        cmd.env_clear()
            .env("HOME", &self.home)
            .current_dir(&self.cwd)
            .timeout(RUN_BOUND);
        cmd
    }

    /// `cmd()` pointed at `server` with the test key, both from the environment.
    pub(crate) fn cmd_for(&self, server: &MockServer) -> assert_cmd::Command {
        self.cmd_with(&base_url(server), KEY)
    }

    /// `cmd()` pointed at any base URL with any key, both from the environment.
    pub(crate) fn cmd_with(&self, base_url: &str, key: &str) -> assert_cmd::Command {
        let mut cmd = self.cmd();
        cmd.env("OPENAI_API_KEY", key)
            .env("OPENAI_BASE_URL", base_url);
        cmd
    }

    /// The same environment as `cmd()`, as a `std::process::Command` for tests that manage the child.
    pub(crate) fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_qwen"));
        cmd.env_clear()
            .env("HOME", &self.home)
            .current_dir(&self.cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// No `.env` or `.qwen/.env` may sit above the temporary directory: it would leak into every run.
#[track_caller]
fn assert_no_dotenv_above(dir: &Path) {
    for ancestor in dir.ancestors() {
        for candidate in [ancestor.join(".env"), ancestor.join(".qwen").join(".env")] {
            assert!(
                !candidate.exists(),
                "`{}` exists above the test directory: it would leak into every test",
                candidate.display()
            );
        }
    }
}

fn write_file(path: &Path, contents: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create parent");
    std::fs::write(path, contents).expect("write file");
    path.to_owned()
}

/// One finished run: exit code and both streams.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    fn from_output(output: &std::process::Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub(crate) fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, Some(want), "unexpected exit code\n{self}");
        self
    }

    #[track_caller]
    pub(crate) fn stdout_is(&self, want: &str) -> &Self {
        assert_eq!(self.stdout, want, "unexpected stdout\n{self}");
        self
    }

    #[track_caller]
    pub(crate) fn stdout_empty(&self) -> &Self {
        self.stdout_is("")
    }

    #[track_caller]
    pub(crate) fn stderr_empty(&self) -> &Self {
        assert_eq!(self.stderr, "", "stderr should be empty\n{self}");
        self
    }

    #[track_caller]
    pub(crate) fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub(crate) fn stderr_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr.contains(needle),
            "stderr should not contain {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub(crate) fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout should contain {needle:?}\n{self}"
        );
        self
    }

    /// stdout as the one JSON array of `-o json`.
    #[track_caller]
    pub(crate) fn json(&self) -> Vec<Value> {
        assert!(
            self.stdout.ends_with('\n'),
            "the JSON document should end with a newline\n{self}"
        );
        match serde_json::from_str::<Value>(&self.stdout) {
            Ok(Value::Array(messages)) => messages,
            Ok(other) => panic!("stdout is JSON but not an array: {other}\n{self}"),
            Err(e) => panic!("stdout is not one JSON document ({e})\n{self}"),
        }
    }

    /// stdout as JSON lines (`-o stream-json`), each a JSON object.
    #[track_caller]
    pub(crate) fn json_lines(&self) -> Vec<Value> {
        json_lines(&self.stdout, &format!("stdout of\n{self}"))
    }

    /// The last message of the `-o json` array, which must be the result.
    #[track_caller]
    pub(crate) fn result(&self) -> Value {
        let messages = self.json();
        let last = messages.last().cloned().unwrap_or(Value::Null);
        assert_eq!(
            last["type"], "result",
            "the last message is the result\n{self}"
        );
        last
    }
}

/// Run to completion (bounded by `RUN_BOUND`).
pub(crate) fn run(cmd: &mut assert_cmd::Command) -> Run {
    let output = cmd.output().expect("run qwen");
    Run::from_output(&output)
}

/// Wait for a child managed by the test, with a generous bound; kills it and fails when exceeded.
pub(crate) fn wait_bounded(mut child: Child, bound: Duration) -> Run {
    let reader = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("qwen did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// The base URL that reaches `server`'s `/v1`.
pub(crate) fn base_url(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

/// A mock for `POST /v1/chat/completions`, to be completed with matchers and a response.
pub(crate) fn chat() -> MockBuilder {
    wiremock::Mock::given(method("POST")).and(path(CHAT_PATH))
}

/// A server on which `mock` is mounted, and must be hit `n` times.
pub(crate) async fn server_mounting(mock: Mock, n: u64) -> MockServer {
    let server = MockServer::start().await;
    mock.expect(n).mount(&server).await;
    server
}

/// A server whose chat endpoint answers `response`, and must be hit `n` times.
pub(crate) async fn server_with(response: ResponseTemplate, n: u64) -> MockServer {
    server_mounting(chat().respond_with(response), n).await
}

/// A server that answers anything with "ok", and must receive `n` requests.
pub(crate) async fn server_expecting(n: u64) -> MockServer {
    server_with(Sse::answer(&["ok"]).respond(), n).await
}

/// A server that answers "ok" only to requests carrying `Bearer <key>`, exactly once.
pub(crate) async fn server_for_key(key: &str) -> MockServer {
    server_mounting(
        chat()
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(Sse::answer(&["ok"]).respond()),
        1,
    )
    .await
}

/// A server that answers every chat request with `pieces` as a stream.
pub(crate) async fn server_answering(pieces: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    chat()
        .respond_with(Sse::answer(pieces).respond())
        .mount(&server)
        .await;
    server
}

/// The JSON bodies of every request the server received.
pub(crate) async fn request_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .iter()
        .map(|r| r.body_json::<Value>().expect("the request body is JSON"))
        .collect()
}

/// The one request body the server received.
pub(crate) async fn only_body(server: &MockServer) -> Value {
    let mut bodies = request_bodies(server).await;
    assert_eq!(bodies.len(), 1, "expected exactly one request: {bodies:?}");
    bodies.remove(0)
}

/// The content of the last user message of a request body.
pub(crate) fn user_message(body: &Value) -> String {
    let messages = body["messages"].as_array().expect("messages array");
    let last = messages.last().expect("at least one message");
    assert_eq!(
        last["role"], "user",
        "the last message is the user's: {body}"
    );
    last["content"].as_str().expect("string content").to_owned()
}

/// Wait until the server has received at least one request (bounded).
pub(crate) async fn wait_for_request(server: &MockServer) {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let received = server.received_requests().await.unwrap_or_default();
        if !received.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server received no request within {RUN_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An SSE body in the shape OpenAI-compatible servers stream, built event by event.
#[derive(Debug, Clone)]
pub(crate) struct Sse {
    /// The `id` and `model` every chunk carries.
    id: String,
    model: String,
    events: Vec<String>,
}

impl Default for Sse {
    fn default() -> Self {
        Self::from_server("chatcmpl-test", "server-model")
    }
}

impl Sse {
    /// A stream that starts like a real one: the role delta, with no text.
    pub(crate) fn new() -> Self {
        Self::default().chunk(&json!({"role": "assistant", "content": ""}), None)
    }

    /// An empty stream whose chunks will carry `id` and `model`.
    pub(crate) fn from_server(id: &str, model: &str) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            events: Vec::new(),
        }
    }

    /// The usual complete answer: text pieces, `finish_reason: stop`, usage 12/2/14, `[DONE]`.
    pub(crate) fn answer(pieces: &[&str]) -> Self {
        pieces
            .iter()
            .fold(Self::new(), |sse, piece| sse.text(piece))
            .finish("stop")
            .usage(12, 2)
            .done()
    }

    /// One chunk with a choice carrying `delta` and `finish_reason: finish`.
    pub(crate) fn chunk(mut self, delta: &Value, finish: Option<&str>) -> Self {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        self.events.push(format!("data: {chunk}\n\n"));
        self
    }

    pub(crate) fn text(self, text: &str) -> Self {
        self.chunk(&json!({"content": text}), None)
    }

    pub(crate) fn finish(self, reason: &str) -> Self {
        self.chunk(&json!({}), Some(reason))
    }

    pub(crate) fn usage(mut self, input: u64, output: u64) -> Self {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": self.model,
            "choices": [],
            "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
        });
        self.events.push(format!("data: {chunk}\n\n"));
        self
    }

    pub(crate) fn done(self) -> Self {
        self.raw("data: [DONE]\n\n")
    }

    /// Any text, verbatim (comments, `event:` lines, odd line endings).
    pub(crate) fn raw(mut self, text: &str) -> Self {
        self.events.push(text.to_owned());
        self
    }

    pub(crate) fn body(&self) -> String {
        self.events.concat()
    }

    /// A 200 response carrying this stream as `text/event-stream`.
    pub(crate) fn respond(&self) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_raw(self.body(), "text/event-stream")
    }
}

/// An error response with an OpenAI-style JSON body.
pub(crate) fn error_response(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"message": message, "type": "test_error"}}))
}

/// The checks every `-o json` result shares.
#[track_caller]
pub(crate) fn assert_result_shape(result: &Value) {
    for field in [
        "type",
        "subtype",
        "uuid",
        "session_id",
        "is_error",
        "duration_ms",
        "duration_api_ms",
        "num_turns",
        "usage",
        "model",
        "attempts",
    ] {
        assert!(
            result.get(field).is_some(),
            "result lacks `{field}`: {result}"
        );
    }
    for field in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(
            result["usage"].get(field).is_some(),
            "usage lacks `{field}`: {result}"
        );
    }
    assert!(result["duration_ms"].is_u64(), "{result}");
    assert!(result["duration_api_ms"].is_u64(), "{result}");
    assert!(result["session_id"].is_string(), "{result}");
}

/// A failed run's result: `is_error`, `error_during_execution`, an `error{type,message}`, no `result`.
#[track_caller]
pub(crate) fn assert_error_result(result: &Value, error_type: &str) {
    assert_result_shape(result);
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["subtype"], "error_during_execution", "{result}");
    assert_eq!(result["error"]["type"], error_type, "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message should be a non-empty string: {result}"
    );
    assert!(
        result.get("result").is_none(),
        "a failed result has no `result` field: {result}"
    );
}

/// JSON Lines text as objects: every line must be complete (newline-terminated) JSON. The one
/// reader of JSON lines in the tests.
#[track_caller]
pub(crate) fn json_lines(text: &str, what: &str) -> Vec<Value> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{what} should end with a newline (no torn line):\n{text}"
    );
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => panic!("a line of {what} is JSON but not an object: {other}"),
            Err(e) => panic!("a line of {what} is not JSON ({e}): {line:?}"),
        })
        .collect()
}

/// Send signal `name` (`TERM`, `INT`) to process `pid` with `kill`: the one signal sender.
#[track_caller]
pub(crate) fn send_signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}
