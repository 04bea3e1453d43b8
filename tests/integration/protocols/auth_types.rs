//! The auth types of these protocols: their variables and default base URLs, the protocol
//! `auth status` names, Anthropic's bearer token, Vertex AI express mode, and what a provider batch
//! refuses.

use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer};

use super::{MODEL, P};
use crate::common::{KEY, Run, TestEnv, run};

/// Each auth type but `openai`: its key, base URL and model variables, its default base URL, and
/// its protocol as `auth status` names it (`[name, endpoint for the model m-env, key header]`).
type AuthTypeRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    [&'static str; 3],
);
const AUTH_TYPES: [AuthTypeRow; 4] = [
    (
        "openai-responses",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "https://api.openai.com/v1",
        [
            "responses",
            "https://api.openai.com/v1/responses",
            "authorization",
        ],
    ),
    (
        "anthropic",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "https://api.anthropic.com/",
        [
            "anthropic-messages",
            "https://api.anthropic.com/v1/messages",
            "x-api-key",
        ],
    ),
    (
        "gemini",
        "GEMINI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GEMINI_MODEL",
        "https://generativelanguage.googleapis.com/",
        [
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/models/m-env:streamGenerateContent?alt=sse",
            "x-goog-api-key",
        ],
    ),
    (
        "vertex-ai",
        "GOOGLE_API_KEY",
        "GOOGLE_VERTEX_BASE_URL",
        "GOOGLE_MODEL",
        "https://aiplatform.googleapis.com/",
        [
            "vertex-ai",
            "https://aiplatform.googleapis.com/v1/publishers/google/models/m-env:streamGenerateContent?alt=sse",
            "x-goog-api-key",
        ],
    ),
];

/// `auth status` names the protocol, in `--json` and in text: `[name, endpoint, key header]`.
fn assert_protocol(doc: &Value, text: &Run, [name, endpoint, key_header]: [&str; 3]) {
    assert_eq!(doc["protocol"]["name"], name, "{doc}");
    assert_eq!(doc["protocol"]["endpoint"], endpoint, "{doc}");
    assert_eq!(doc["protocol"]["key_header"], key_header, "{doc}");
    text.code(0).stdout_has(&format!(
        "protocol:    {name} (POST {endpoint}, the key in {key_header})"
    ));
}

#[tokio::test]
async fn anthropic_auth_token_is_a_bearer_token_and_auth_status_names_each_types_variables() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {KEY}").as_str(),
        ))
        .respond_with(P::Anthropic.answer(None, &["ok"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    run(env
        .cmd()
        .env("QWEN_AUTH_TYPE", "anthropic")
        .env("ANTHROPIC_AUTH_TOKEN", KEY)
        .env("ANTHROPIC_BASE_URL", server.uri())
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n");
    server.verify().await;

    for (auth_type, key_var, base_var, model_var, default_base, protocol) in AUTH_TYPES {
        let r = run(env
            .cmd()
            .env(key_var, "sk-some-key-1234567890")
            .env(model_var, "m-env")
            .args(["auth", "status", "--json", "--auth-type", auth_type]));
        r.code(0);
        let doc: Value = serde_json::from_str(&r.stdout).expect("JSON");
        assert_eq!(doc["auth_type"]["value"], auth_type, "{doc}");
        assert_eq!(doc["api_key"]["source"]["name"], key_var, "{doc}");
        assert_eq!(doc["base_url"]["value"], default_base, "{doc}");
        assert_eq!(doc["model"]["value"], "m-env", "{doc}");
        assert_eq!(doc["model"]["source"]["name"], model_var, "{doc}");
        let text = run(env
            .cmd()
            .env(key_var, "sk-some-key-1234567890")
            .env(model_var, "m-env")
            .args(["auth", "status", "--auth-type", auth_type]));
        assert_protocol(&doc, &text, protocol);

        // A project `.env` cannot send a key from the environment to its own host.
        env.write_project(
            ".qwen/.env",
            &format!("{base_var}=https://evil.example.com\n"),
        );
        run(env.cmd().env(key_var, "sk-some-key-1234567890").args([
            "--auth-type",
            auth_type,
            "hi",
        ]))
        .code(52)
        .stderr_has("refusing to send the API key")
        .stderr_has(base_var);
        std::fs::remove_file(env.project_path(".qwen/.env")).expect("remove .env");
    }
}

#[tokio::test]
async fn a_provider_batch_refuses_gemini_and_vertex_and_a_bad_qwen_auth_type_is_named() {
    let env = TestEnv::new();
    env.write_project("jobs.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    // Gemini's batch mode is another shape: refused before anything is sent (the base URL is a
    // closed port), with the reason and the local batch as the way out.
    for (auth_type, key_var) in [
        ("gemini", "GEMINI_API_KEY"),
        ("vertex-ai", "GOOGLE_API_KEY"),
    ] {
        run(env
            .cmd()
            .env(key_var, KEY)
            .env("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
            .env("GOOGLE_VERTEX_BASE_URL", "http://127.0.0.1:9")
            .args(["batch", "submit", "jobs.jsonl", "--auth-type", auth_type]))
        .code(2)
        .stderr_has(&format!("not the batch mode of --auth-type {auth_type}"))
        .stderr_has("batchGenerateContent")
        .stderr_has("qwen --jobs FILE");
    }
    assert!(!env.project_path(".qwen/batches/jobs.json").exists());
    // The key's own header cannot be given again with -H.
    run(env
        .cmd()
        .env("ANTHROPIC_API_KEY", KEY)
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .args([
            "--auth-type",
            "anthropic",
            "-H",
            "X-Api-Key: other",
            "--retries",
            "0",
            "hi",
        ]))
    .code(52)
    .stderr_has("carries the API key");
    run(env.cmd().env("QWEN_AUTH_TYPE", "claude").arg("hi"))
        .code(52)
        .stderr_has("QWEN_AUTH_TYPE=`claude`")
        .stderr_has("openai-responses");
}

/// Vertex AI in express mode: the Gemini body and stream, at the global endpoint's
/// `publishers/google/models` path, with `GOOGLE_API_KEY` in `x-goog-api-key`; without that key the
/// run stops at once and says that only express mode is supported.
#[tokio::test]
async fn vertex_ai_express_mode_uses_the_gemini_wire_at_the_publishers_path() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1/publishers/google/models/{MODEL}:streamGenerateContent"
        )))
        .and(query_param("alt", "sse"))
        .and(wiremock::matchers::header("x-goog-api-key", KEY))
        .respond_with(P::Gemini.answer(None, &["from ", "vertex"]).respond())
        .expect(1)
        .mount(&server)
        .await;
    run(env
        .cmd()
        .env("GOOGLE_API_KEY", KEY)
        .env("GOOGLE_VERTEX_BASE_URL", server.uri())
        .env("GOOGLE_MODEL", MODEL)
        .args(["--auth-type", "vertex-ai", "hi"]))
    .code(0)
    .stdout_is("from vertex\n");
    server.verify().await;

    run(env
        .cmd()
        .env("GOOGLE_CLOUD_PROJECT", "p")
        .env("GOOGLE_CLOUD_LOCATION", "us-central1")
        .args(["--auth-type", "vertex-ai", "hi"]))
    .code(41)
    .stderr_has("GOOGLE_API_KEY is not set")
    .stderr_has("express mode only");
}
