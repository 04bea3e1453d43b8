//! OpenTelemetry export against a wiremock OTLP receiver (the real receiver is
//! `scripts/otel-test.sh`): spans of the run, the jobs and the attempts, `GenAI` attributes, the
//! parent from `TRACEPARENT`, the `traceparent` sent to the provider, no key or header value
//! anywhere, and an export that fails without failing the run.

use std::collections::HashMap;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::batch_support::{file_lines, jsonl};
use crate::common::{KEY, Sse, TestEnv, chat, error_response, run};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTLP_SECRET: &str = "otlp-secret-value-1234";

async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// Every span the receiver got (OTLP/JSON), and the raw bodies.
async fn spans(receiver: &MockServer) -> (Vec<Value>, Vec<String>) {
    let requests = receiver.received_requests().await.expect("requests");
    let mut spans = Vec::new();
    let mut raw = Vec::new();
    for r in requests {
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {OTLP_SECRET}").as_str()),
            "OTEL_EXPORTER_OTLP_HEADERS are sent"
        );
        let body = String::from_utf8(r.body.clone()).expect("utf-8");
        let doc: Value = serde_json::from_str(&body).expect("OTLP/JSON");
        for rs in doc["resourceSpans"].as_array().expect("resourceSpans") {
            assert_eq!(
                rs["resource"]["attributes"][0],
                json!({"key": "service.name", "value": {"stringValue": "qwen"}})
            );
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                spans.extend(ss["spans"].as_array().expect("spans").iter().cloned());
            }
        }
        raw.push(body);
    }
    (spans, raw)
}

fn attrs(span: &Value) -> HashMap<String, Value> {
    span["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| {
            let v = &a["value"];
            let value = v
                .get("stringValue")
                .or_else(|| v.get("intValue"))
                .or_else(|| v.get("doubleValue"))
                .or_else(|| v.get("boolValue"))
                .cloned()
                .unwrap_or_else(|| v.clone());
            (a["key"].as_str().expect("key").to_owned(), value)
        })
        .collect()
}

fn otel_env(cmd: &mut assert_cmd::Command, receiver: &MockServer) {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.uri())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer%20{OTLP_SECRET}"),
        )
        .env("TRACEPARENT", PARENT);
}

#[tokio::test]
async fn a_batch_exports_its_jobs_and_attempts_under_the_ci_trace() {
    let env = TestEnv::new();
    let api = MockServer::start().await;
    // Job b fails once (500) before it is answered: two attempt spans.
    chat()
        .and(wiremock::matchers::body_string_contains("second"))
        .respond_with(error_response(500, "boom"))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    chat()
        .respond_with(Sse::answer(&["ok"]).respond())
        .mount(&api)
        .await;
    let jobs = [
        json!({"id": "a", "prompt": "first"}),
        json!({"id": "b", "prompt": "second"}),
    ];
    env.write_project("jobs.jsonl", &jsonl(&jobs));
    let receiver = receiver().await;
    let mut cmd = env.cmd_for(&api);
    otel_env(&mut cmd, &receiver);
    let r = run(cmd.args([
        "--jobs",
        "jobs.jsonl",
        "--output",
        "out.jsonl",
        "--retry-base-delay",
        "0",
        "--concurrency",
        "1",
    ]));
    r.code(0).stderr_lacks("OpenTelemetry");
    assert_eq!(file_lines(&env, "out.jsonl").len(), 2);

    let (spans, raw) = spans(&receiver).await;
    for body in &raw {
        assert!(!body.contains(KEY), "the API key is in a span: {body}");
        assert!(!body.contains(OTLP_SECRET), "a header value is in a span");
        assert!(
            !body.contains("first"),
            "the prompt is not exported by default"
        );
    }
    assert!(spans.iter().all(|s| s["traceId"] == TRACE_ID), "{spans:#?}");
    let root: Vec<&Value> = spans.iter().filter(|s| s["name"] == "qwen batch").collect();
    assert_eq!(root.len(), 1, "{spans:#?}");
    assert_eq!(
        root[0]["parentSpanId"], "00f067aa0ba902b7",
        "a child of TRACEPARENT"
    );
    let root_id = &root[0]["spanId"];
    let jobs: Vec<&Value> = spans
        .iter()
        .filter(|s| &s["parentSpanId"] == root_id)
        .collect();
    assert_eq!(jobs.len(), 2, "{spans:#?}");
    for job in &jobs {
        let a = attrs(job);
        assert_eq!(a["gen_ai.operation.name"], "chat");
        assert_eq!(a["gen_ai.provider.name"], "openai");
        assert_eq!(a["gen_ai.request.model"], "gpt-4o");
        assert_eq!(a["gen_ai.response.model"], "server-model");
        assert_eq!(a["gen_ai.usage.input_tokens"], "12");
        assert_eq!(a["gen_ai.usage.output_tokens"], "2");
        assert_eq!(job["name"], "chat gpt-4o");
        let attempts: Vec<&Value> = spans
            .iter()
            .filter(|s| s["parentSpanId"] == job["spanId"])
            .collect();
        let want = if a["qwen.job.id"] == "b" { 2 } else { 1 };
        assert_eq!(attempts.len(), want, "{spans:#?}");
        assert_eq!(a["qwen.attempts"], want.to_string());
        for attempt in attempts {
            assert_eq!(attempt["kind"], 3, "an attempt is a CLIENT span");
            let aa = attrs(attempt);
            assert_eq!(aa["gen_ai.request.model"], "gpt-4o");
            if aa["http.response.status_code"] == "500" {
                assert_eq!(aa["error.type"], "server_error");
                assert_eq!(attempt["status"]["code"], 2);
            } else {
                assert_eq!(
                    aa["gen_ai.response.finish_reasons"]["arrayValue"]["values"][0]["stringValue"],
                    "stop"
                );
            }
        }
    }

    assert_traceparents_name_attempts(&api, &spans).await;
}

/// The provider got a traceparent naming each attempt's span, in the CI's trace.
async fn assert_traceparents_name_attempts(api: &MockServer, spans: &[Value]) {
    let requests = api.received_requests().await.expect("requests");
    assert_eq!(requests.len(), 3);
    let attempt_ids: Vec<String> = spans
        .iter()
        .filter(|s| s["kind"] == 3)
        .map(|s| s["spanId"].as_str().expect("id").to_owned())
        .collect();
    for request in requests {
        let tp = request
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .expect("traceparent");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts[1], TRACE_ID);
        assert!(attempt_ids.contains(&parts[2].to_owned()), "{tp}");
    }
}

#[tokio::test]
async fn content_is_exported_only_when_asked_and_a_single_run_has_its_spans() {
    let env = TestEnv::new();
    let api = MockServer::start().await;
    chat()
        .respond_with(Sse::answer(&["the answer"]).respond())
        .mount(&api)
        .await;
    let receiver = receiver().await;
    let mut cmd = env.cmd_for(&api);
    otel_env(&mut cmd, &receiver);
    cmd.env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true");
    let r = run(cmd.args(["the question"]));
    r.code(0).stdout_is("the answer\n");
    let (spans, raw) = spans(&receiver).await;
    assert!(!raw.concat().contains(KEY));
    let names: Vec<&str> = spans
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"qwen"));
    let job = spans
        .iter()
        .find(|s| s["kind"] == 1 && s["name"] == "chat gpt-4o")
        .expect("the job span");
    let a = attrs(job);
    assert!(
        a["gen_ai.input.messages"]
            .as_str()
            .expect("input")
            .contains("the question")
    );
    assert!(
        a["gen_ai.output.messages"]
            .as_str()
            .expect("output")
            .contains("the answer")
    );
}

#[tokio::test]
async fn a_receiver_that_fails_is_one_warning_and_never_the_runs_failure() {
    let env = TestEnv::new();
    let api = MockServer::start().await;
    chat()
        .respond_with(Sse::answer(&["ok"]).respond())
        .mount(&api)
        .await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let mut cmd = env.cmd_for(&api);
    otel_env(&mut cmd, &receiver);
    let r = run(cmd.args(["hi"]));
    r.code(0)
        .stdout_is("ok\n")
        .stderr_has("warning: OpenTelemetry export to")
        .stderr_has("HTTP 503")
        .stderr_lacks(OTLP_SECRET);

    // Nothing listens: the same, within the bounded wait.
    let mut cmd = env.cmd_for(&api);
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "2000");
    let started = std::time::Instant::now();
    let r = run(cmd.args(["hi"]));
    r.code(0)
        .stdout_is("ok\n")
        .stderr_has("warning: OpenTelemetry export");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn without_export_a_traceparent_is_handed_on_as_it_is() {
    let env = TestEnv::new();
    let api = MockServer::start().await;
    chat()
        .and(wiremock::matchers::header("traceparent", PARENT))
        .respond_with(Sse::answer(&["ok"]).respond())
        .expect(1)
        .mount(&api)
        .await;
    let r = run(env.cmd_for(&api).env("TRACEPARENT", PARENT).args(["hi"]));
    r.code(0).stdout_is("ok\n").stderr_empty();
}
