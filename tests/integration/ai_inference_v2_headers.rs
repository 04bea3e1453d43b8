//! `actions/ai-inference` v2's `__tests__/helpers.test.ts` `parseCustomHeaders` expectations (tag
//! `v2`, v2.1.1), run through this action against a local server as `ai_inference_v2.rs` runs the
//! others: each row names its v2 test; the headers checked are the ones the request carried.

use super::ai_inference_v2::{Case, check};

/// helpers.test.ts `parseCustomHeaders`, each through the request qwen sends.
#[allow(
    clippy::too_many_lines,
    reason = "a table of transcribed cases, one row each"
)]
fn header_cases() -> Vec<Case> {
    const SKIPPED: &str = "because its value contains newline characters, which are not allowed in HTTP header values.";
    vec![
        Case {
            source: "helpers.test.ts parseCustomHeaders: parses YAML format headers correctly",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    "header1: value1\nheader2: value2\nX-Custom-Header: custom-value",
                ),
            ],
            headers: &[
                ("header1", Some("value1")),
                ("header2", Some("value2")),
                ("x-custom-header", Some("custom-value")),
            ],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: parses JSON format headers correctly",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    r#"{"header1": "value1", "header2": "value2", "X-Team": "engineering"}"#,
                ),
            ],
            headers: &[
                ("header1", Some("value1")),
                ("header2", Some("value2")),
                ("x-team", Some("engineering")),
            ],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: masks sensitive header values in logs",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    "{\"Ocp-Apim-Subscription-Key\": \"secret123\", \"serviceName\": \"my-service\"}",
                ),
            ],
            headers: &[
                ("ocp-apim-subscription-key", Some("secret123")),
                ("servicename", Some("my-service")),
            ],
            stderr: &["::add-mask::secret123", "::add-mask::my-service"],
            difference: Some(
                "every value is masked (v2 masked none, and left sensitive ones out of its debug lines)",
            ),
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: validates header names and skips invalid ones",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    "valid-header: value1\ninvalid header: value2\ninvalid_underscore: value3\ninvalid@header: value4\nvalid123: value5",
                ),
            ],
            headers: &[
                ("valid-header", Some("value1")),
                ("invalid_underscore", Some("value3")),
                ("valid123", Some("value5")),
                ("invalid@header", None),
            ],
            stderr: &[
                "Skipping invalid header name: invalid header",
                "Skipping invalid header name: invalid@header",
            ],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: warns and returns empty object for invalid JSON",
            inputs: &[("prompt", "hi"), ("custom-headers", "{invalid json}")],
            stderr: &["Failed to parse custom headers"],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: warns and returns empty object for invalid YAML (issue 21: no header sent)",
            inputs: &[
                ("prompt", "hi"),
                ("custom-headers", "invalid: yaml: structure: bad"),
            ],
            headers: &[("invalid", None)],
            stderr: &["Failed to parse custom headers"],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: warns and returns empty object for JSON array",
            inputs: &[
                ("prompt", "hi"),
                ("custom-headers", r#"["header1", "header2"]"#),
            ],
            stderr: &["Custom headers JSON must be an object, not null or an array"],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: warns and returns empty object for null value",
            inputs: &[("prompt", "hi"), ("custom-headers", "null")],
            stderr: &["Custom headers YAML must be an object"],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: warns and returns empty object for YAML array",
            inputs: &[("prompt", "hi"), ("custom-headers", "- header1\n- header2")],
            stderr: &["Custom headers YAML must be an object"],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: converts non-string values to strings",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    r#"{"numericHeader": 123, "boolHeader": true, "nullHeader": null, "floatHeader": 1.0}"#,
                ),
            ],
            headers: &[
                ("numericheader", Some("123")),
                ("boolheader", Some("true")),
                ("nullheader", Some("null")),
                ("floatheader", Some("1")),
            ],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: rejects header values with newline characters (LF, CR, CRLF)",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    r#"{"X-Custom-Header": "value\nwith", "X-Injected": "value\rwith", "X-Attack": "value\r\nInjected-Header: malicious", "header1": "safe-value"}"#,
                ),
            ],
            headers: &[
                ("header1", Some("safe-value")),
                ("x-custom-header", None),
                ("x-injected", None),
                ("x-attack", None),
                ("injected-header", None),
            ],
            stderr: &[SKIPPED, "Skipping header \"X-Attack\""],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: rejects multiline YAML values for security",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    "header1: value1\nheader2: |\n  multiline\n  value\n  here",
                ),
            ],
            headers: &[("header1", Some("value1")), ("header2", None)],
            stderr: &["Skipping header \"header2\" because its value contains newline characters"],
            ..Case::default()
        },
        Case {
            source: "parseCustomHeaders: handles complex real-world Azure APIM example",
            inputs: &[
                ("prompt", "hi"),
                (
                    "custom-headers",
                    "Ocp-Apim-Subscription-Key: my-subscription-key-123\nserviceName: terraform-plan-workflow\nenv: prod\nteam: infrastructure\ncomputer: github-actions\nsystemID: terraform-ci",
                ),
            ],
            headers: &[
                ("ocp-apim-subscription-key", Some("my-subscription-key-123")),
                ("servicename", Some("terraform-plan-workflow")),
                ("env", Some("prod")),
                ("team", Some("infrastructure")),
                ("computer", Some("github-actions")),
                ("systemid", Some("terraform-ci")),
            ],
            ..Case::default()
        },
        Case {
            source: "issue 21: a header that would replace the key",
            inputs: &[
                ("prompt", "hi"),
                ("custom-headers", "Authorization: Bearer other-key-9"),
            ],
            code: 2,
            stderr: &["custom-headers: `Authorization` cannot be set with a header"],
            difference: Some(
                "refused (exit 2): it would replace the key qwen sends; give the key with `token`",
            ),
            ..Case::default()
        },
    ]
}

#[tokio::test]
async fn v2_custom_header_tests_pass_through_the_action() {
    for case in header_cases() {
        check(&case).await;
    }
}

/// `--ai-inference-inputs` straight on qwen: a batch sends the `custom-headers` with every job (a
/// `-H` flag of the same name wins), and `input` without a prompt file to fill is refused (exit 2),
/// in a batch or a single run; the flag alone, with nothing in the variables, changes nothing.
#[tokio::test]
async fn the_hidden_flag_gives_a_batch_the_headers_and_refuses_stray_variables() {
    use super::common::{TestEnv, run, server_expecting};
    let server = server_expecting(2).await;
    let env = TestEnv::new();
    env.write_project(
        "jobs.jsonl",
        "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"y\"}\n",
    );
    let headers = "X-Team: qa\nX-Over: from-input";
    let mut cmd = env.cmd_for(&server);
    cmd.env("QWEN_ACTION_CUSTOM_HEADERS", headers).args([
        "--ai-inference-inputs",
        "--jobs",
        "jobs.jsonl",
        "-H",
        "X-Over: from-flag",
    ]);
    run(&mut cmd).code(0);
    for request in server.received_requests().await.expect("recorded") {
        let header = |n: &str| {
            request
                .headers
                .get(n)
                .map(|v| v.to_str().unwrap_or("?").to_owned())
        };
        assert_eq!(header("x-team").as_deref(), Some("qa"));
        assert_eq!(header("x-over").as_deref(), Some("from-flag"));
    }
    for args in [
        &["--ai-inference-inputs", "--jobs", "jobs.jsonl"][..],
        &["--ai-inference-inputs", "hi"],
    ] {
        let mut cmd = env.cmd_for(&server);
        cmd.env("QWEN_ACTION_INPUT", "a: 1").args(args);
        run(&mut cmd)
            .code(2)
            .stderr_has("input and file_input fill the placeholders of a .prompt.yml prompt-file");
    }
    // Without the flag the variables are not read at all.
    let quiet = server_expecting(1).await;
    let mut cmd = env.cmd_for(&quiet);
    cmd.env("QWEN_ACTION_CUSTOM_HEADERS", "X-Team: qa")
        .arg("hi");
    run(&mut cmd).code(0);
    let requests = quiet.received_requests().await.expect("recorded");
    assert!(requests[0].headers.get("x-team").is_none());
}
