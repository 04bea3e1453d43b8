//! Provider parameters reach the body (the extra body cannot replace the request), and headers
//! are checked, credential headers masked and scrubbed.

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::common::{TestEnv, chat, only_body, run, server_answering, server_mounting};

#[tokio::test]
async fn provider_parameters_reach_the_body_and_the_extra_body_cannot_replace_the_request() {
    let env = TestEnv::new();
    env.write_project(
        "extra.json",
        r#"{"top_k": 20, "provider": {"order": ["a"]}, "seed": 1}"#,
    );
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args([
        "--top-p",
        "0.9",
        "--seed",
        "42",
        "--stop",
        "END",
        "--stop",
        "STOP",
        "--extra-body",
        "@extra.json",
        "hi",
    ]))
    .code(0);
    let body = only_body(&server).await;
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(
        body["seed"], 42,
        "a flag wins over the same key in the extra body"
    );
    assert_eq!(body["stop"], json!(["END", "STOP"]));
    assert_eq!(body["top_k"], 20);
    assert_eq!(body["provider"], json!({"order": ["a"]}));
    assert_eq!(body["stream"], true);
    for bad in [r#"{"model": "x"}"#, r#"{"stream": false}"#, "[1]", "{oops"] {
        run(env.cmd_for(&server).args(["--extra-body", bad, "hi"]))
            .code(2)
            .stderr_has("--extra-body");
    }
}

#[tokio::test]
async fn a_batch_masks_a_credential_header_flag_once() {
    let env = TestEnv::new();
    let secret = "hdr-secret-1234567890";
    let server = server_answering(&["ok"]).await;
    env.write_project(
        "jobs.jsonl",
        "{\"id\": \"a\", \"prompt\": \"one\"}\n{\"id\": \"b\", \"prompt\": \"two\"}\n",
    );
    let out = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "-H",
        &format!("X-Api-Key: {secret}"),
        "--jobs",
        "jobs.jsonl",
        "-q",
    ]));
    out.code(0);
    assert_eq!(
        out.stderr.matches(&format!("::add-mask::{secret}")).count(),
        1,
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn headers_are_checked_and_credential_headers_are_masked_and_scrubbed_but_others_not() {
    let env = TestEnv::new();
    let secret = "hdr-secret-9876543210";
    let server = server_mounting(
        chat().respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": format!("bad tenant key {secret} for CI")}}),
        )),
        2,
    )
    .await;
    let out = run(env.cmd_for(&server).env("GITHUB_ACTIONS", "true").args([
        "-H",
        &format!("X-Api-Key: {secret}"),
        "-H",
        "X-Title: CI",
        "hi",
    ]));
    out.code(1)
        .stderr_has(&format!("::add-mask::{secret}"))
        .stderr_lacks("::add-mask::CI")
        .stderr_has("for CI");
    assert_eq!(
        out.stderr.matches(secret).count(),
        1,
        "only the mask command: {}",
        out.stderr
    );
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(
        requests[0]
            .headers
            .get("x-api-key")
            .map(wiremock::http::HeaderValue::as_bytes),
        Some(secret.as_bytes())
    );
    for bad in [
        "Authorization: Bearer x",
        "Bad Name: x",
        "X-A: a\rb",
        "no-colon",
    ] {
        let out = run(env.cmd_for(&server).args(["-H", bad, "hi"]));
        out.code(2).stderr_lacks("Bearer x");
    }
    let debug = run(env.cmd_for(&server).args([
        "--debug",
        "-H",
        &format!("X-Api-Key: {secret}"),
        "-H",
        "X-Title: CI",
        "hi",
    ]));
    debug
        .code(1)
        .stderr_has("DEBUG header X-Api-Key: hdr…10 (--header)")
        .stderr_has("DEBUG header X-Title: **** (--header)");
    assert!(!debug.stderr.contains(secret), "{}", debug.stderr);
    let status = run(env.cmd_for(&server).args([
        "auth",
        "status",
        "-H",
        &format!("X-Api-Key: {secret}"),
        "-H",
        "X-Title: CI",
    ]));
    status
        .code(0)
        .stdout_has("header:      X-Api-Key: hdr…10 (--header)")
        .stdout_has("header:      X-Title: **** (--header)");
    assert!(!status.stdout.contains(secret), "{}", status.stdout);
}
