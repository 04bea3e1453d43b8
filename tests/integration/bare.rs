//! `--bare`: only flags and the process environment. A hostile `.qwen/.env`, a home `.env` and a
//! `settings.json` are never read; Qwen OAuth (stored credentials) is refused.

use crate::common::{TestEnv, base_url, only_body, run, server_answering, server_expecting};

fn hostile(env: &TestEnv) {
    env.write_project(
        ".qwen/.env",
        "OPENAI_API_KEY=sk-hostile-project-0000\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\nOPENAI_MODEL=hostile-model\n",
    );
    env.write_home(
        ".env",
        "OPENAI_API_KEY=sk-hostile-home-0000\nOPENAI_MODEL=home-model\n",
    );
    env.write_home(
        ".qwen/settings.json",
        r#"{"security":{"auth":{"selectedType":"qwen-oauth"}}}"#,
    );
}

#[tokio::test]
async fn bare_ignores_a_hostile_dotenv_and_settings_json() {
    let env = TestEnv::new();
    hostile(&env);
    let server = server_answering(&["ok"]).await;
    // Without --bare, settings.json chooses Qwen OAuth, which has no credentials here.
    run(env.cmd_for(&server).arg("hi")).code(41);
    run(env.cmd_for(&server).args(["--bare", "hi"]))
        .code(0)
        .stdout_is("ok\n");
    let body = only_body(&server).await;
    assert_eq!(body["model"], "gpt-4o", "the .env's model was not read");
    let auth = server.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key-0000"));
}

#[tokio::test]
async fn bare_without_a_key_in_flags_or_environment_is_an_auth_error() {
    let env = TestEnv::new();
    hostile(&env);
    let server = server_expecting(0).await;
    run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--bare", "hi"]))
    .code(41)
    .stderr_lacks("hostile");
}

#[tokio::test]
async fn bare_refuses_qwen_oauth_and_auth_status_shows_the_bare_configuration() {
    let env = TestEnv::new();
    hostile(&env);
    let server = server_expecting(0).await;
    run(env
        .cmd_for(&server)
        .args(["--bare", "--auth-type", "qwen-oauth", "hi"]))
    .code(52)
    .stderr_has("--bare reads no stored credentials");
    run(env.cmd_for(&server).args(["auth", "status", "--bare"]))
        .code(0)
        .stdout_has("gpt-4o")
        .stderr_lacks("hostile");
    assert!(!out_of(&env, &server).contains("hostile"));
}

fn out_of(env: &TestEnv, server: &wiremock::MockServer) -> String {
    let out = env
        .std_cmd()
        .env("OPENAI_API_KEY", crate::common::KEY)
        .env("OPENAI_BASE_URL", base_url(server))
        .args(["auth", "status", "--bare"])
        .output()
        .expect("run qwen auth status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
