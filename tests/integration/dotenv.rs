//! The `.env` search: each step, first file wins, no merging, DEBUG exclusion, unreadable files,
//! the project base-URL trust rule, and `auth status`.

use serde_json::{Value, json};

use crate::common::{
    KEY, Run, TestEnv, base_url, only_body, run, server_expecting, server_for_key,
};

/// Never resolved, never contacted: the `.invalid` TLD is reserved (RFC 6761).
const FOREIGN_BASE_URL: &str = "http://example.invalid/v1";

fn key_line(key: &str) -> String {
    format!("OPENAI_API_KEY={key}\n")
}

/// Run `hi` with only the base URL from the environment; the key must come from a file.
async fn run_expecting_key(env: &TestEnv, key: &str) {
    let server = server_for_key(key).await;
    run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

/// Run `hi` with the test key against a server that answers `ok` and must receive it once.
async fn run_hi(env: &TestEnv) -> Run {
    let server = server_expecting(1).await;
    run(env.cmd_for(&server).arg("hi"))
}

fn status_json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

#[tokio::test]
async fn qwen_dir_env_wins_over_plain_env_at_the_same_level() {
    let env = TestEnv::new();
    env.write_project(".qwen/.env", &key_line("qwen-dir-key"));
    env.write_project(".env", &key_line("plain-key"));
    run_expecting_key(&env, "qwen-dir-key").await;
}

#[tokio::test]
async fn dotenv_is_found_by_walking_up_from_a_nested_cwd() {
    let mut env = TestEnv::new();
    env.write_project(".env", &key_line("top-key"));
    env.cd("a/b/c");
    run_expecting_key(&env, "top-key").await;
}

#[tokio::test]
async fn nearest_level_wins_even_over_a_qwen_dir_further_up() {
    let mut env = TestEnv::new();
    env.write_project(".qwen/.env", &key_line("far-key"));
    env.write_project("a/.env", &key_line("near-key"));
    env.cd("a/b");
    run_expecting_key(&env, "near-key").await;
}

#[tokio::test]
async fn home_qwen_env_is_used_when_no_project_file_exists() {
    let env = TestEnv::new();
    env.write_home(".qwen/.env", &key_line("home-qwen-key"));
    env.write_home(".env", &key_line("home-plain-key"));
    run_expecting_key(&env, "home-qwen-key").await;
}

#[tokio::test]
async fn home_plain_env_is_the_last_resort() {
    let env = TestEnv::new();
    env.write_home(".env", &key_line("home-plain-key"));
    run_expecting_key(&env, "home-plain-key").await;
}

#[tokio::test]
async fn a_project_file_beats_the_home_files() {
    let env = TestEnv::new();
    env.write_home(".qwen/.env", &key_line("home-qwen-key"));
    env.write_project(".env", &key_line("project-key"));
    run_expecting_key(&env, "project-key").await;
}

#[tokio::test]
async fn project_files_at_one_level_are_never_merged() {
    let env = TestEnv::new();
    let server = server_for_key("qwen-dir-key").await;
    env.write_project(".qwen/.env", &key_line("qwen-dir-key"));
    env.write_project(".env", "OPENAI_MODEL=model-from-the-other-file\n");
    let r = run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--json", "hi"]));
    r.code(0).stderr_empty();
    assert_eq!(r.result()["model"], "gpt-4o");
    assert_eq!(only_body(&server).await["model"], "gpt-4o");
}

#[tokio::test]
async fn a_project_file_is_never_merged_with_a_home_file() {
    let env = TestEnv::new();
    let server = server_for_key("project-key").await;
    env.write_project(".env", &key_line("project-key"));
    env.write_home(".env", "OPENAI_MODEL=model-from-home\n");
    let r = run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--json", "hi"]));
    r.code(0).stderr_empty();
    assert_eq!(r.result()["model"], "gpt-4o");
}

#[tokio::test]
async fn a_file_never_overrides_a_non_empty_environment_variable() {
    let env = TestEnv::new();
    let server = server_for_key(KEY).await;
    env.write_project(
        ".qwen/.env",
        "OPENAI_API_KEY=file-key\nOPENAI_MODEL=file-model\nDEBUG=1\n",
    );
    let r = run(env
        .cmd_for(&server)
        .env("OPENAI_MODEL", "env-model")
        .env("DEBUG", "0")
        .args(["--json", "hi"]));
    // DEBUG=0 in the environment is set, so the file's DEBUG=1 does not apply either.
    r.code(0).stderr_empty();
    assert_eq!(r.result()["model"], "env-model");
}

#[tokio::test]
async fn debug_from_a_project_plain_env_is_ignored() {
    let env = TestEnv::new();
    env.write_project(".env", "DEBUG=1\nDEBUG_MODE=true\n");
    run_hi(&env).await.code(0).stdout_is("ok\n").stderr_empty();
}

#[tokio::test]
async fn debug_from_a_project_qwen_env_is_honoured() {
    let env = TestEnv::new();
    env.write_project(".qwen/.env", "DEBUG=1\n");
    run_hi(&env)
        .await
        .code(0)
        .stdout_is("ok\n")
        .stderr_has("DEBUG ");
}

#[tokio::test]
async fn debug_mode_from_the_home_plain_env_is_honoured() {
    let env = TestEnv::new();
    env.write_home(".env", "DEBUG_MODE=true\n");
    run_hi(&env)
        .await
        .code(0)
        .stdout_is("ok\n")
        .stderr_has("DEBUG ");
}

#[tokio::test]
async fn debug_from_the_home_qwen_env_is_honoured() {
    let env = TestEnv::new();
    env.write_home(".qwen/.env", "DEBUG=true\n");
    run_hi(&env)
        .await
        .code(0)
        .stdout_is("ok\n")
        .stderr_has("DEBUG ");
}

#[tokio::test]
async fn a_dotenv_over_one_mib_is_exit_52() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    let big = format!("OPENAI_MODEL=m\n{}", "# padding\n".repeat(110_000));
    let file = env.write_project(".env", &big);
    run(env.cmd_for(&server).arg("hi"))
        .code(52)
        .stdout_empty()
        .stderr_has("error: cannot read")
        .stderr_has(&file.display().to_string())
        .stderr_has("larger than 1024 KiB")
        .stderr_has("hint: ");
}

#[tokio::test]
async fn an_unreadable_dotenv_in_json_mode_is_a_configuration_error_document() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    let file = env.project.join(".qwen/.env");
    std::fs::create_dir_all(env.project.join(".qwen")).expect("create .qwen");
    std::fs::write(&file, b"OPENAI_API_KEY=caf\xe9\n").expect("write .env");
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(52).stderr_has("error: cannot read");
    crate::common::assert_error_result(&r.result(), "configuration_error");
}

#[tokio::test]
async fn a_dotenv_that_is_not_utf8_is_exit_52() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    let file = env.project.join(".env");
    std::fs::write(&file, b"OPENAI_MODEL=caf\xe9\n").expect("write .env");
    run(env.cmd_for(&server).arg("hi"))
        .code(52)
        .stdout_empty()
        .stderr_has(&format!("error: cannot read `{}`", file.display()));
}

#[test]
fn project_env_base_url_is_refused_for_env_key() {
    let env = TestEnv::new();
    env.write_project(".env", &format!("OPENAI_BASE_URL={FOREIGN_BASE_URL}\n"));
    run(env.cmd().env("OPENAI_API_KEY", KEY).args([
        "--retries",
        "0",
        "--connect-timeout",
        "2s",
        "hi",
    ]))
    .code(52)
    .stdout_empty()
    .stderr_has("error: refusing to send the API key from environment variable OPENAI_API_KEY")
    .stderr_has("example.invalid")
    .stderr_has("--openai-base-url")
    .stderr_has("QWEN_TRUST_PROJECT_ENV=1")
    // Refused before anything could be sent: not even the plain-http warning came out.
    .stderr_lacks("warning:");
}

#[test]
fn project_qwen_env_base_url_is_refused_for_flag_key() {
    let env = TestEnv::new();
    env.write_project(
        ".qwen/.env",
        &format!("OPENAI_BASE_URL={FOREIGN_BASE_URL}\n"),
    );
    let r = run(env.cmd().args([
        "--openai-api-key",
        KEY,
        "--retries",
        "0",
        "--connect-timeout",
        "2s",
        "--json",
        "hi",
    ]));
    r.code(52)
        .stderr_has("refusing to send the API key from flag --openai-api-key");
    crate::common::assert_error_result(&r.result(), "configuration_error");
}

#[tokio::test]
async fn project_env_loopback_base_url_is_allowed_for_env_key() {
    let env = TestEnv::new();
    let server = server_for_key("env-key").await;
    env.write_project(".env", &format!("OPENAI_BASE_URL={}\n", base_url(&server)));
    run(env.cmd().env("OPENAI_API_KEY", "env-key").arg("hi"))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
}

#[test]
fn trust_project_env_lifts_the_refusal() {
    let env = TestEnv::new();
    env.write_project(".env", &format!("OPENAI_BASE_URL={FOREIGN_BASE_URL}\n"));

    let status = run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("QWEN_TRUST_PROJECT_ENV", "1")
        .args(["auth", "status", "--json"]));
    status.code(0).stderr_empty();
    let doc = status_json(&status.stdout);
    assert_eq!(doc["ready"], true, "{doc}");
    assert_eq!(doc["base_url"]["value"], FOREIGN_BASE_URL);

    // A real run gets past the check and tries the host: a network failure, not 52. The host is
    // `0.0.0.0` (not loopback for the trust rule, yet never leaves this machine and needs no DNS).
    env.write_project(".env", "OPENAI_BASE_URL=http://0.0.0.0:9/v1\n");
    run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("QWEN_TRUST_PROJECT_ENV", "1")
        .args(["--retries", "0", "--connect-timeout", "2s", "hi"]))
    .code(75)
    .stdout_empty()
    .stderr_has("warning: the API key will be sent over plain http to `0.0.0.0`")
    .stderr_has("error: ")
    .stderr_lacks("refusing");
}

#[test]
fn refusal_is_reported_by_auth_status_too() {
    let env = TestEnv::new();
    env.write_project(".env", &format!("OPENAI_BASE_URL={FOREIGN_BASE_URL}\n"));
    let r = run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .args(["auth", "status", "--json"]));
    r.code(52).stderr_empty();
    let doc = status_json(&r.stdout);
    assert_eq!(doc["ready"], false, "{doc}");
    assert_eq!(doc["error"]["type"], "configuration_error", "{doc}");
}

#[test]
fn key_and_base_url_from_the_same_project_file_are_trusted() {
    let env = TestEnv::new();
    env.write_project(
        ".env",
        &format!("OPENAI_API_KEY={KEY}\nOPENAI_BASE_URL={FOREIGN_BASE_URL}\n"),
    );
    let r = run(env.cmd().args(["auth", "status", "--json"]));
    r.code(0).stderr_empty();
    let doc = status_json(&r.stdout);
    assert_eq!(doc["ready"], true, "{doc}");
    assert_eq!(doc["api_key"]["source"]["type"], "dotenv");
    assert_eq!(doc["base_url"]["source"]["type"], "dotenv");
}

#[tokio::test]
async fn key_and_base_url_from_the_same_project_file_run() {
    let env = TestEnv::new();
    let server = server_for_key("file-key").await;
    env.write_project(
        ".env",
        &format!(
            "OPENAI_API_KEY=file-key\nOPENAI_BASE_URL={}\n",
            base_url(&server)
        ),
    );
    run(env.cmd().arg("hi"))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
}

#[test]
fn a_home_file_base_url_is_trusted_with_an_env_key() {
    let env = TestEnv::new();
    env.write_home(".env", &format!("OPENAI_BASE_URL={FOREIGN_BASE_URL}\n"));
    let r = run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .args(["auth", "status", "--json"]));
    r.code(0).stderr_empty();
    assert_eq!(status_json(&r.stdout)["ready"], true);
}

#[test]
fn auth_status_shows_values_sources_and_probed_paths() {
    let env = TestEnv::new();
    let file = env.write_project(".env", "OPENAI_MODEL=file-model\n");
    let r = run(env.cmd().env("OPENAI_API_KEY", KEY).args([
        "auth",
        "status",
        "--openai-base-url",
        "http://127.0.0.1:9/v1",
    ]));
    r.code(0)
        .stderr_empty()
        .stdout_has("auth method: openai (default)")
        .stdout_has("(environment variable OPENAI_API_KEY)")
        .stdout_has("base url:    http://127.0.0.1:9/v1 (flag --openai-base-url)")
        .stdout_has(&format!(
            "model:       file-model (file {})",
            file.display()
        ))
        .stdout_has(&format!(".env file:   {}", file.display()))
        .stdout_has(&format!(
            "searched:    {}",
            env.project.join(".qwen/.env").display()
        ))
        .stdout_has(&env.project.join(".env").display().to_string())
        .stdout_has("interactive: no")
        .stdout_has("ready:       yes");
    // The search stopped at the first file found: the home files were not probed.
    assert!(
        !r.stdout
            .contains(&env.home.join(".env").display().to_string()),
        "{r}"
    );
}

#[test]
fn auth_status_json_shows_values_sources_and_probed_paths() {
    let env = TestEnv::new();
    let file = env.write_home(".env", "OPENAI_MODEL=home-model\n");
    let r = run(env
        .cmd()
        .env("OPENAI_API_KEY", KEY)
        .args(["auth", "status", "--json"]));
    r.code(0).stderr_empty();
    let doc = status_json(&r.stdout);
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["error"], Value::Null);
    assert_eq!(doc["auth_type"]["value"], "openai");
    assert_eq!(
        doc["api_key"]["source"],
        json!({"type": "env", "name": "OPENAI_API_KEY"})
    );
    assert_eq!(
        doc["model"],
        json!({"value": "home-model", "source": {"type": "dotenv", "path": file}})
    );
    assert_eq!(doc["dotenv"]["used"], json!(file));
    assert_eq!(doc["interactive"], false);
    let probed: Vec<String> = doc["dotenv"]["probed"]
        .as_array()
        .expect("probed list")
        .iter()
        .map(|p| p.as_str().expect("a path").to_owned())
        .collect();
    let expected_order = [
        env.project.join(".qwen/.env"),
        env.project.join(".env"),
        env.root.join(".qwen/.env"),
        env.root.join(".env"),
        env.home.join(".qwen/.env"),
        env.home.join(".env"),
    ];
    let positions: Vec<usize> = expected_order
        .iter()
        .map(|p| {
            probed
                .iter()
                .position(|q| *q == p.display().to_string())
                .unwrap_or_else(|| panic!("{} was not probed: {probed:?}", p.display()))
        })
        .collect();
    assert!(
        positions.is_sorted(),
        "probed in the wrong order: {probed:?}"
    );
    assert_eq!(
        probed.last().map(String::as_str),
        Some(file.to_str().expect("utf-8 path"))
    );
}

#[test]
fn auth_status_without_a_key_exits_41() {
    let env = TestEnv::new();
    let r = run(env.cmd().env("OPENAI_API_KEY", "").args(["auth", "status"]));
    r.code(41)
        .stdout_has("api key:     (none)")
        .stdout_has("environment variable OPENAI_API_KEY is set but empty")
        .stdout_has(".env file:   (none found)")
        .stdout_has("ready:       no")
        .stderr_has("error: no API key");

    let r = run(env.cmd().args(["auth", "status", "--json"]));
    r.code(41).stderr_empty();
    let doc = status_json(&r.stdout);
    assert_eq!(doc["ready"], false);
    assert_eq!(doc["api_key"]["value"], Value::Null);
    assert_eq!(doc["error"]["type"], "authentication_error");
    assert_eq!(doc["dotenv"]["used"], Value::Null);
}
