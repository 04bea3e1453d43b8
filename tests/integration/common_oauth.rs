//! Harness for the login and Qwen OAuth tests, on top of `common::TestEnv` (temporary HOME and
//! project directory, cleared environment): no browser, the real binary on pipes or in a
//! pseudo-terminal, and helpers for the files a login leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic by design

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Session};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::common::{Run, TestEnv};

/// What the login and OAuth tests need of a `TestEnv`: a command that never opens a browser, and
/// the files a login reads and writes.
pub(crate) trait AuthEnv {
    /// `TestEnv::std_cmd` (cleared environment, HOME, the project as working directory, stdout and
    /// stderr piped) with a no-browser switch and standard input closed.
    fn auth_cmd(&self) -> Command;
    fn creds_path(&self) -> PathBuf;
    fn settings_path(&self) -> PathBuf;
    fn project_env(&self) -> PathBuf;
    fn write_creds(&self, creds: &Value);
    fn read_creds(&self) -> Value;
    /// Select the auth method in the user settings file.
    fn select(&self, method: &str);
}

impl AuthEnv for TestEnv {
    fn auth_cmd(&self) -> Command {
        let mut cmd = self.std_cmd();
        cmd.env("QWEN_NO_BROWSER", "1").stdin(Stdio::null());
        cmd
    }

    fn creds_path(&self) -> PathBuf {
        self.home.join(".qwen/oauth_creds.json")
    }

    fn settings_path(&self) -> PathBuf {
        self.home.join(".qwen/settings.json")
    }

    fn project_env(&self) -> PathBuf {
        self.project_path(".qwen/.env")
    }

    fn write_creds(&self, creds: &Value) {
        self.write_home(".qwen/oauth_creds.json", &creds.to_string());
    }

    fn read_creds(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.creds_path()).unwrap()).unwrap()
    }

    fn select(&self, method: &str) {
        self.write_home(
            ".qwen/settings.json",
            &json!({"security": {"auth": {"selectedType": method}}}).to_string(),
        );
    }
}

/// Run a command on pipes to completion; both streams must be UTF-8.
pub(crate) fn output(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub(crate) fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A chat completion answered as one JSON body (the client understands both that and SSE).
pub(crate) fn chat_answer(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }))
}

/// The form fields of a request body.
pub(crate) fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A program in a pseudo-terminal (TERM=dumb) with echo on, as a terminal a person types into
/// has it, and everything it printed kept in `output`.
pub(crate) struct Pty {
    session: OsSession,
    pub(crate) output: String,
}

impl Pty {
    pub(crate) fn spawn(cmd: &Command) -> Self {
        // ptyprocess starts the child with echo off. Switching it on from here would race with
        // the program switching it off for a secret, so a shell runs `stty echo` in the child,
        // on its own terminal, before it execs the program (with the program's environment).
        let mut wrapped = Command::new("/bin/sh");
        wrapped
            .arg("-c")
            .arg("PATH=/usr/bin:/bin stty echo; exec \"$0\" \"$@\"")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear()
            .env("TERM", "dumb");
        for (name, value) in cmd.get_envs() {
            if let Some(value) = value {
                wrapped.env(name, value);
            }
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        let mut session = Session::spawn(wrapped).unwrap();
        session.set_expect_timeout(Some(Duration::from_secs(20)));
        Self {
            session,
            output: String::new(),
        }
    }

    /// Echo is on (visible answers are shown): call it while the program asks a visible question.
    pub(crate) fn assert_echo_on(&self) {
        assert!(
            self.session.get_process().get_echo().unwrap(),
            "the terminal has echo off while a visible question is asked\n{}",
            self.output
        );
    }

    pub(crate) fn expect(&mut self, text: &str) {
        match self.session.expect(text) {
            Ok(found) => self
                .output
                .push_str(&String::from_utf8_lossy(found.as_bytes())),
            Err(e) => panic!("waiting for {text:?}: {e}\nso far:\n{}", self.output),
        }
    }

    pub(crate) fn send_line(&mut self, text: &str) {
        self.session.send_line(text).unwrap();
    }

    /// Wait until the program has switched terminal echo off (as it must before a secret is typed).
    pub(crate) fn wait_for_echo_off(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.session.get_process().get_echo().unwrap() {
            assert!(
                Instant::now() < deadline,
                "echo was never switched off\nso far:\n{}",
                self.output
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Read to the end and return the exit code and everything printed.
    pub(crate) fn finish(mut self) -> (i32, String) {
        match self.session.expect(Eof) {
            Ok(rest) => self
                .output
                .push_str(&String::from_utf8_lossy(rest.as_bytes())),
            Err(e) => panic!("waiting for the end: {e}\nso far:\n{}", self.output),
        }
        match self.session.get_process().wait().unwrap() {
            WaitStatus::Exited(_, code) => (code, self.output),
            other => panic!("unexpected end {other:?}\n{}", self.output),
        }
    }
}
