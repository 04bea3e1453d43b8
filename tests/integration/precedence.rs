//! Flag beats environment beats `.env` beats default, for key, base URL and model; empty counts as unset.
//! The full matrix is a unit test of the pure resolver (`config::resolve`,
//! `precedence_matrix_for_key_base_url_and_model`); these tests prove the winner reaches the wire.

use serde_json::json;
use wiremock::MockServer;
use wiremock::matchers::body_partial_json;

use crate::common::{
    Sse, TestEnv, base_url, chat, only_body, run, server_expecting, server_for_key, server_mounting,
};

/// A server that answers only requests for `model`, exactly once.
async fn server_for_model(model: &str) -> MockServer {
    server_mounting(
        chat()
            .and(body_partial_json(json!({"model": model})))
            .respond_with(Sse::answer(&["ok"]).respond()),
        1,
    )
    .await
}

#[tokio::test]
async fn key_flag_beats_env_and_dotenv() {
    let env = TestEnv::new();
    let server = server_for_key("flag-key").await;
    env.write_project(".env", "OPENAI_API_KEY=file-key\n");
    run(env
        .cmd()
        .env("OPENAI_API_KEY", "env-key")
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--openai-api-key", "flag-key", "hi"]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn key_env_beats_dotenv() {
    let env = TestEnv::new();
    let server = server_for_key("env-key").await;
    env.write_project(".env", "OPENAI_API_KEY=file-key\n");
    run(env
        .cmd()
        .env("OPENAI_API_KEY", "env-key")
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn key_from_dotenv_when_neither_flag_nor_env() {
    let env = TestEnv::new();
    let server = server_for_key("file-key").await;
    env.write_project(".env", "OPENAI_API_KEY=file-key\n");
    run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn empty_key_flag_counts_as_unset() {
    let env = TestEnv::new();
    let server = server_for_key("env-key").await;
    run(env
        .cmd()
        .env("OPENAI_API_KEY", "env-key")
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--openai-api-key", "", "hi"]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn base_url_flag_beats_env_and_dotenv() {
    let env = TestEnv::new();
    let (flag, from_env, file) = (
        server_expecting(1).await,
        server_expecting(0).await,
        server_expecting(0).await,
    );
    env.write_project(
        ".env",
        &format!(
            "OPENAI_API_KEY=file-key\nOPENAI_BASE_URL={}\n",
            base_url(&file)
        ),
    );
    run(env.cmd().env("OPENAI_BASE_URL", base_url(&from_env)).args([
        "--openai-base-url",
        &base_url(&flag),
        "hi",
    ]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[test]
fn base_url_and_model_default_when_set_nowhere() {
    let env = TestEnv::new();
    let r = run(env
        .cmd()
        .env("OPENAI_API_KEY", "env-key")
        .args(["auth", "status", "--json"]));
    r.code(0).stderr_empty();
    let status: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON object");
    assert_eq!(status["base_url"]["value"], "https://api.openai.com/v1");
    assert_eq!(status["base_url"]["source"], json!({"type": "default"}));
    assert_eq!(status["model"]["value"], "gpt-4o");
    assert_eq!(status["model"]["source"], json!({"type": "default"}));
}

#[tokio::test]
async fn model_flag_beats_env_and_dotenv() {
    let env = TestEnv::new();
    let server = server_for_model("flag-model").await;
    env.write_project(".env", "OPENAI_MODEL=file-model\n");
    let r = run(env.cmd_for(&server).env("OPENAI_MODEL", "env-model").args([
        "-m",
        "flag-model",
        "--json",
        "hi",
    ]));
    r.code(0).stderr_empty();
    let messages = r.json();
    assert_eq!(messages[0]["model"], "flag-model", "init names the model");
    assert_eq!(r.result()["model"], "flag-model");
    assert_eq!(only_body(&server).await["model"], "flag-model");
}

#[tokio::test]
async fn empty_env_key_falls_through_to_dotenv() {
    let env = TestEnv::new();
    let server = server_for_key("file-key").await;
    env.write_project(".env", "OPENAI_API_KEY=file-key\n");
    run(env
        .cmd()
        .env("OPENAI_API_KEY", "")
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn empty_env_key_with_no_other_key_is_exit_41_saying_set_but_empty() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env
        .cmd()
        .env("OPENAI_API_KEY", "")
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(41)
    .stdout_empty()
    .stderr_has("error: no API key")
    .stderr_has("environment variable OPENAI_API_KEY is set but empty")
    .stderr_has("hint: ");
}

#[test]
fn an_empty_key_in_the_dotenv_is_reported_as_set_but_empty() {
    let env = TestEnv::new();
    let file = env.write_project(".qwen/.env", "OPENAI_API_KEY=\nOPENAI_MODEL=m\n");
    run(env.cmd().arg("hi"))
        .code(41)
        .stdout_empty()
        .stderr_has(&format!("file {} is set but empty", file.display()))
        .stderr_has(&format!(
            "used {} (it has no OPENAI_API_KEY)",
            file.display()
        ));
}

#[tokio::test]
async fn missing_key_error_names_the_variable_and_the_searched_paths() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    let r = run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"));
    r.code(41)
        .stdout_empty()
        .stderr_has("OPENAI_API_KEY is not set")
        .stderr_lacks("set but empty");
    for probed in [
        env.project.join(".qwen/.env"),
        env.project.join(".env"),
        env.home.join(".qwen/.env"),
        env.home.join(".env"),
    ] {
        r.stderr_has(&probed.display().to_string());
    }
}
