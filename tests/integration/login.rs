//! `qwen auth login` with an API key, driven through a real pseudo-terminal: hidden key input,
//! defaults, the check request, `.qwen/.env` (0600, other lines kept), `.gitignore` updated once;
//! and `auth use`, `auth logout`, and the login a run offers in a terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic by design

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{TestEnv, chat};
use crate::common_oauth::{AuthEnv, Pty, chat_answer, mode, output};

const KEY: &str = "sk-typed-secret-key-0123456789";

/// Type the key once the program has switched echo off, as a person would.
fn type_key(pty: &mut Pty, key: &str) {
    pty.expect("API key (input hidden): ");
    pty.wait_for_echo_off();
    pty.send_line(key);
    pty.expect("Key received: ");
}

/// Answer the base URL and model questions.
fn answer_base_url_and_model(pty: &mut Pty, base_url: &str, model: &str) {
    pty.expect("Base URL [https://api.openai.com/v1]: ");
    pty.send_line(base_url);
    pty.expect("Model [gpt-4o]: ");
    pty.send_line(model);
}

fn git_init(dir: &std::path::Path) {
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .env("HOME", dir)
        .status();
    if !git.is_ok_and(|s| s.success()) {
        // No git here: a `.git` directory is enough for the login's own check.
        std::fs::create_dir_all(dir.join(".git")).unwrap();
    }
}

#[tokio::test]
async fn api_key_login_hides_the_key_keeps_other_lines_and_ignores_the_file_once() {
    let sandbox = TestEnv::new();
    git_init(&sandbox.project);
    sandbox.write_project(".gitignore", "target/\n");
    sandbox.write_project(
        ".qwen/.env",
        "# team settings\nFOO=bar\nOPENAI_API_KEY=old-key\nOPENAI_MODEL=old-model\n",
    );

    for (round, key) in [KEY, "sk-second-key-abcdefghijkl"].into_iter().enumerate() {
        let mut cmd = sandbox.auth_cmd();
        cmd.args(["auth", "login", "--no-verify"])
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        let mut pty = Pty::spawn(&cmd);
        pty.expect("Choose 1 or 2 [1]: ");
        pty.assert_echo_on();
        pty.send_line("");
        type_key(&mut pty, key);
        answer_base_url_and_model(&mut pty, "", "");
        let (code, output) = pty.finish();
        assert_eq!(code, 0, "round {round}: {output}");
        assert!(!output.contains(key), "the key was shown: {output}");
        assert!(output.contains("sk-…"), "{output}");
        assert!(output.contains("Saved OPENAI_API_KEY"), "{output}");
        if round == 0 {
            assert!(output.contains("Added `.qwen/.env` to"), "{output}");
        } else {
            assert!(!output.contains("Added"), "{output}");
        }
        let env = sandbox.read_project(".qwen/.env");
        assert_eq!(
            env,
            format!(
                "# team settings\nFOO=bar\nOPENAI_API_KEY={key}\nOPENAI_MODEL=gpt-4o\nOPENAI_BASE_URL=https://api.openai.com/v1\n"
            )
        );
        assert_eq!(mode(&sandbox.project_env()), 0o600);
    }
    let gitignore = sandbox.read_project(".gitignore");
    assert_eq!(gitignore, "target/\n.qwen/.env\n");
    // Choosing the API key, which runs use anyway, writes no settings file.
    assert!(!sandbox.settings_path().exists());
}

async fn key_server(models: ResponseTemplate, one_token: Option<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(models)
        .expect(1)
        .mount(&server)
        .await;
    if let Some(answer) = one_token {
        chat()
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(body_partial_json(
                json!({"model": "my-model", "max_tokens": 1}),
            ))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
    }
    server
}

/// `key_server` whose `GET /models` accepts the key.
async fn key_server_accepting() -> MockServer {
    key_server(
        ResponseTemplate::new(200).set_body_json(json!({"data": []})),
        None,
    )
    .await
}

/// A login with the API key method against `server`; `answer` is given to "Save it anyway?".
fn login_against(sandbox: &TestEnv, server: &MockServer, answer: Option<&str>) -> (i32, String) {
    let mut cmd = sandbox.auth_cmd();
    cmd.args(["auth", "login", "--method", "openai"]);
    let mut pty = Pty::spawn(&cmd);
    type_key(&mut pty, KEY);
    answer_base_url_and_model(&mut pty, &format!("{}/v1", server.uri()), "my-model");
    pty.expect("my-model"); // echoed: the terminal shows visible answers
    if let Some(answer) = answer {
        pty.expect("Save it anyway? [y/N]: ");
        pty.send_line(answer);
    }
    pty.finish()
}

#[tokio::test]
async fn api_key_login_checks_the_key_with_get_models() {
    let sandbox = TestEnv::new();
    let server = key_server_accepting().await;
    let (code, output) = login_against(&sandbox, &server, None);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("The key works (GET /models: HTTP 200)"),
        "{output}"
    );
    let env = sandbox.read_project(".qwen/.env");
    assert!(
        env.contains(&format!("OPENAI_BASE_URL={}/v1\n", server.uri())),
        "{env}"
    );
    assert!(env.contains("OPENAI_MODEL=my-model\n"));
    assert!(!output.contains(KEY));
}

#[tokio::test]
async fn api_key_login_falls_back_to_a_one_token_chat_request() {
    let sandbox = TestEnv::new();
    let server = key_server(ResponseTemplate::new(404), Some(chat_answer("."))).await;
    let (code, output) = login_against(&sandbox, &server, None);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("one-token chat request: HTTP 200"),
        "{output}"
    );
    assert!(sandbox.project_env().exists());
}

#[tokio::test]
async fn a_refused_key_is_not_saved_unless_the_person_says_so() {
    let sandbox = TestEnv::new();
    let server = key_server(
        ResponseTemplate::new(401)
            .set_body_json(json!({"error": {"message": format!("bad key {KEY}")}})),
        None,
    )
    .await;
    let (code, output) = login_against(&sandbox, &server, Some("n"));
    assert_eq!(code, 41, "{output}");
    assert!(output.contains("The server refused the key"), "{output}");
    assert!(output.contains("--no-verify"), "{output}");
    assert!(
        !output.contains(KEY),
        "a server's echo of the key was shown: {output}"
    );
    assert!(!sandbox.project_env().exists());
}

#[tokio::test]
async fn login_refuses_at_once_in_a_terminal_when_ci_is_set() {
    let sandbox = TestEnv::new();
    let server = MockServer::start().await;
    let mut cmd = sandbox.auth_cmd();
    cmd.args(["auth", "login"])
        .env("CI", "true")
        .env("QWEN_OAUTH_BASE_URL", server.uri());
    let (code, output) = Pty::spawn(&cmd).finish();
    assert_eq!(code, 41, "{output}");
    assert!(output.contains("not interactive"), "{output}");
    assert!(output.contains("OPENAI_API_KEY"), "{output}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_run_in_a_terminal_without_credentials_offers_the_login_then_answers() {
    let sandbox = TestEnv::new();
    let server = key_server_accepting().await;
    chat()
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_partial_json(
            json!({"model": "my-model", "messages": [{"role": "user", "content": "hello"}]}),
        ))
        .respond_with(chat_answer("pong"))
        .expect(1)
        .mount(&server)
        .await;
    let mut cmd = sandbox.auth_cmd();
    cmd.arg("hello");
    let mut pty = Pty::spawn(&cmd);
    pty.expect("no API key");
    pty.expect("Choose 1 or 2 [1]: ");
    pty.assert_echo_on();
    pty.send_line("1");
    type_key(&mut pty, KEY);
    answer_base_url_and_model(&mut pty, &format!("{}/v1", server.uri()), "my-model");
    let (code, output) = pty.finish();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("pong"), "{output}");
    assert!(!output.contains(KEY));
}

#[tokio::test]
async fn auth_use_changes_only_the_selected_type() {
    let sandbox = TestEnv::new();
    let before = json!({
        "model": {"name": "qwen3-coder-plus"},
        "security": {"auth": {"selectedType": "openai", "useExternal": false}, "folderTrust": {"enabled": true}},
        "mcpServers": {"files": {"command": "npx", "args": ["-y", "server-files"]}},
        "ui": {"theme": "GitHub"}
    });
    sandbox.write_home(
        ".qwen/settings.json",
        &serde_json::to_string_pretty(&before).unwrap(),
    );
    output(sandbox.auth_cmd().args(["auth", "use", "qwen-oauth"]))
        .code(0)
        .stdout_empty()
        .stderr_has("Selected qwen-oauth")
        .stderr_has("qwen auth login --method qwen-oauth");
    let text = std::fs::read_to_string(sandbox.settings_path()).unwrap();
    let after: Value = serde_json::from_str(&text).unwrap();
    let mut want = before.clone();
    want["security"]["auth"]["selectedType"] = json!("qwen-oauth");
    assert_eq!(after, want);
    // Key order is kept too.
    assert!(text.find("\"model\"").unwrap() < text.find("\"security\"").unwrap());
    assert!(text.find("\"mcpServers\"").unwrap() < text.find("\"ui\"").unwrap());
    assert_eq!(mode(&sandbox.settings_path()), 0o600);

    // Back again: the run resolves the method from the file, and the flag still wins.
    let status = |extra: &[&str]| {
        let out = output(
            sandbox
                .auth_cmd()
                .args(["auth", "status", "--json"])
                .args(extra),
        );
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        (
            doc["auth_type"]["value"].clone(),
            doc["auth_type"]["source"]["type"].clone(),
        )
    };
    assert_eq!(status(&[]), (json!("qwen-oauth"), json!("setting")));
    assert_eq!(
        status(&["--auth-type", "openai"]),
        (json!("openai"), json!("flag"))
    );
    output(sandbox.auth_cmd().args(["auth", "use", "openai"]));
    assert_eq!(status(&[]), (json!("openai"), json!("setting")));
}

#[tokio::test]
async fn auth_logout_says_what_it_removes_then_removes_it() {
    let sandbox = TestEnv::new();
    sandbox.write_creds(&json!({"access_token": "tok", "expiry_date": 1}));
    sandbox.write_project(".qwen/.env", "OPENAI_API_KEY=sk-x\nOPENAI_MODEL=m\n");

    output(sandbox.auth_cmd().args(["auth", "logout"]))
        .code(0)
        .stderr_has("Removing:")
        .stderr_has("oauth_creds.json")
        .stdout_empty();
    assert!(!sandbox.creds_path().exists());
    // Without --env the key stays.
    assert!(
        sandbox
            .read_project(".qwen/.env")
            .contains("OPENAI_API_KEY")
    );

    let logout_env = || output(sandbox.auth_cmd().args(["auth", "logout", "--env"]));
    logout_env()
        .code(0)
        .stderr_has("the OPENAI_API_KEY line of");
    assert_eq!(sandbox.read_project(".qwen/.env"), "OPENAI_MODEL=m\n");

    logout_env().code(0).stderr_has("Nothing to remove");
}
