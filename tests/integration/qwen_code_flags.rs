//! Qwen Code's headless flags a user or the Qwen Code SDK passes: the agent flags qwen accepts
//! with no effect, the ones it refuses with a reason, and `--append-system-prompt`.

use crate::common::{TestEnv, only_body, run, server_answering, server_expecting};

#[tokio::test]
async fn the_agent_flags_the_sdk_passes_are_accepted_and_change_nothing() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args([
        "--channel=SDK",
        "--approval-mode",
        "yolo",
        "--max-session-turns",
        "3",
        "--max-tool-calls",
        "5",
        "--allowed-tools",
        "read_file,shell",
        "--core-tools",
        "a",
        "--exclude-tools",
        "b",
        "--sandbox",
        "--safe-mode",
        "hi",
    ]))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
    let body = only_body(&server).await;
    assert_eq!(
        body["messages"],
        serde_json::json!([{"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn agent_flags_that_promise_a_behaviour_are_refused_with_a_reason() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    for (args, why) in [
        (&["--experimental-hooks"][..], "runs no hooks"),
        (&["--extensions", "x"][..], "loads no extensions"),
        (&["--experimental-lsp"][..], "language-server"),
        (&["--tavily-api-key", "tvly-secret"][..], "web search"),
        (&["--web-search-default", "tavily"][..], "web search"),
    ] {
        run(env.cmd_for(&server).args(args).arg("hi"))
            .code(2)
            .stderr_has("is a Qwen Code agent flag")
            .stderr_has(why)
            .stderr_lacks("tvly-secret");
    }
}

#[tokio::test]
async fn append_system_prompt_extends_the_system_message() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args([
        "--system-prompt",
        "Be brief.",
        "--append-system-prompt",
        "Answer in French.",
        "hi",
    ]))
    .code(0);
    let body = only_body(&server).await;
    assert_eq!(
        body["messages"][0],
        serde_json::json!({"role": "system", "content": "Be brief.\n\nAnswer in French."})
    );
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .args(["--append-system-prompt", "Answer in French.", "hi"]))
    .code(0);
    assert_eq!(
        only_body(&server).await["messages"][0]["content"],
        "Answer in French."
    );
}
