//! Where the prompt comes from: argument, `-p`, stdin, both, nothing, too much, and a pipe nobody closes.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{
    KEY, TestEnv, base_url, only_body, run, server_answering, server_expecting, user_message,
    wait_bounded,
};

#[tokio::test]
async fn argument_only_is_the_prompt() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).arg("just the argument"))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
    assert_eq!(user_message(&only_body(&server).await), "just the argument");
}

#[tokio::test]
async fn several_words_are_joined_with_spaces() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args(["write", "a", "haiku"]))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
    assert_eq!(user_message(&only_body(&server).await), "write a haiku");
}

#[tokio::test]
async fn dash_p_is_the_prompt() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).args(["-p", "from the flag"]))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
    assert_eq!(user_message(&only_body(&server).await), "from the flag");
}

#[tokio::test]
async fn stdin_only_is_the_prompt() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).write_stdin("summarize this\nplease\n"))
        .code(0)
        .stdout_is("ok\n")
        .stderr_empty();
    assert_eq!(
        user_message(&only_body(&server).await),
        "summarize this\nplease\n"
    );
}

#[tokio::test]
async fn stdin_and_argument_are_stdin_blank_line_argument() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .arg("Review this change")
        .write_stdin("diff --git a b"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
    assert_eq!(
        user_message(&only_body(&server).await),
        "diff --git a b\n\nReview this change"
    );
}

#[tokio::test]
async fn stdin_and_dash_p_are_combined_the_same_way() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .args(["-p", "explain"])
        .write_stdin("line one\n"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
    assert_eq!(
        user_message(&only_body(&server).await),
        "line one\n\n\nexplain"
    );
}

#[tokio::test]
async fn empty_stdin_without_argument_is_exit_42() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env.cmd_for(&server).write_stdin(""))
        .code(42)
        .stdout_empty()
        .stderr_has("error: nothing to send")
        // The message names the three ways to give a prompt.
        .stderr_has("as an argument")
        .stderr_has("-p/--prompt")
        .stderr_has("standard input");
}

#[tokio::test]
async fn whitespace_only_stdin_is_exit_42() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env.cmd_for(&server).write_stdin(" \n\t\r\n  "))
        .code(42)
        .stdout_empty()
        .stderr_has("error: nothing to send");
}

#[tokio::test]
async fn whitespace_only_argument_is_exit_42() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env.cmd_for(&server).arg("   "))
        .code(42)
        .stdout_empty()
        .stderr_has("error: nothing to send");
}

#[tokio::test]
async fn stdin_over_max_input_bytes_is_exit_42_and_nothing_is_sent() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env
        .cmd_for(&server)
        .args(["--max-input-bytes", "16"])
        .write_stdin("x".repeat(17)))
    .code(42)
    .stdout_empty()
    .stderr_has("larger than the limit of 16 bytes")
    .stderr_has("--max-input-bytes");
}

#[tokio::test]
async fn stdin_of_exactly_max_input_bytes_is_sent_whole() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .args(["--max-input-bytes", "16"])
        .write_stdin("y".repeat(16)))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
    assert_eq!(user_message(&only_body(&server).await), "y".repeat(16));
}

#[tokio::test]
async fn stdin_over_the_limit_is_refused_even_with_an_argument() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env
        .cmd_for(&server)
        .args(["--max-input-bytes", "8", "summarize"])
        .write_stdin("z".repeat(64)))
    .code(42)
    .stdout_empty()
    .stderr_has("larger than the limit of 8 bytes");
}

#[tokio::test]
async fn non_utf8_stdin_is_exit_42() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env
        .cmd_for(&server)
        .write_stdin(vec![b'o', b'k', 0xff, 0xfe]))
    .code(42)
    .stdout_empty()
    .stderr_has("not valid UTF-8");
}

#[tokio::test]
async fn a_never_closing_pipe_with_an_argument_does_not_hang() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    let mut child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn qwen");
    // Keep the write end open, and write nothing, until the child has exited.
    let stdin = child.stdin.take().expect("stdin handle");
    let r = wait_bounded(child, Duration::from_secs(20));
    drop(stdin);
    r.code(0).stdout_is("ok\n").stderr_empty();
    assert_eq!(user_message(&only_body(&server).await), "hi");
}

#[tokio::test]
async fn without_an_argument_stdin_is_awaited_past_the_stdin_timeout() {
    let env = TestEnv::new();
    let server = server_answering(&["ok"]).await;
    let mut child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--stdin-timeout", "1ms"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn qwen");
    let mut stdin = child.stdin.take().expect("stdin handle");
    // Late by far more than --stdin-timeout: without an argument that must not matter.
    std::thread::sleep(Duration::from_millis(200));
    stdin.write_all(b"late input").expect("write stdin");
    drop(stdin);
    let r = wait_bounded(child, Duration::from_secs(20));
    r.code(0).stdout_is("ok\n").stderr_empty();
    assert_eq!(user_message(&only_body(&server).await), "late input");
}

#[tokio::test]
async fn dash_p_with_a_positional_prompt_is_a_usage_error() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    run(env.cmd_for(&server).args(["-p", "one", "two"]))
        .code(2)
        .stdout_empty()
        .stderr_has("cannot be used with");
}
