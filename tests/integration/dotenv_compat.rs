//! A `.env` file means to qwen what it means to Qwen Code (npm dotenv 17 `parse`): nothing is
//! expanded, the lines dotenv accepts are read the same way, skipped lines are named on stderr
//! without their content, and a file that is not UTF-8 is still a configuration error.

use serde_json::Value;

use crate::common::{
    KEY, TestEnv, assert_error_result, base_url, only_body, run, server_expecting, server_for_key,
};

/// The model a successful `hi` sent, with the key and base URL from the environment and the
/// rest from `contents` in `.qwen/.env`; stdout/stderr must never show the key.
async fn model_sent_with(contents: &str) -> String {
    let env = TestEnv::new();
    env.write_project(".qwen/.env", contents);
    let server = server_for_key(KEY).await;
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(0).stderr_empty();
    assert!(
        !r.stdout.contains(KEY),
        "the key is in stdout: {}",
        r.stdout
    );
    let body = only_body(&server).await;
    let model = body["model"].as_str().expect("a model").to_owned();
    assert_eq!(r.result()["model"], Value::String(model.clone()));
    model
}

#[tokio::test]
async fn a_dotenv_reference_to_the_key_is_literal_text_never_the_key() {
    let model = model_sent_with("OPENAI_MODEL=${OPENAI_API_KEY}\n").await;
    assert_eq!(model, "${OPENAI_API_KEY}");
}

#[tokio::test]
async fn a_dotenv_reference_to_a_key_in_the_same_file_is_literal_too() {
    let env = TestEnv::new();
    let file_key = "sk-file-key-1234567890";
    env.write_project(
        ".qwen/.env",
        &format!(
            "OPENAI_API_KEY={file_key}\nOPENAI_MODEL=\"${{OPENAI_API_KEY}}\"\nM2=$OPENAI_API_KEY\n"
        ),
    );
    let server = server_for_key(file_key).await;
    let r = run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .args(["--json", "hi"]));
    r.code(0).stderr_empty();
    assert!(!r.stdout.contains(file_key), "{}", r.stdout);
    assert_eq!(only_body(&server).await["model"], "${OPENAI_API_KEY}");
}

#[test]
fn auth_status_shows_the_literal_reference_not_the_key() {
    let env = TestEnv::new();
    env.write_project(".qwen/.env", "OPENAI_MODEL=${OPENAI_API_KEY}\n");
    for args in [&["auth", "status"][..], &["auth", "status", "--json"]] {
        let r = run(env.cmd().env("OPENAI_API_KEY", KEY).args(args));
        r.code(0);
        assert!(!r.stdout.contains(KEY), "{args:?}: {}", r.stdout);
        assert!(!r.stderr.contains(KEY), "{args:?}: {}", r.stderr);
        let shown = format!("{}{}", r.stdout, r.stderr);
        assert!(shown.contains("${OPENAI_API_KEY}"), "{args:?}: {shown}");
    }
}

#[tokio::test]
async fn a_key_with_a_dollar_reaches_the_server_whole() {
    let env = TestEnv::new();
    let key = "sk-ab$cd";
    env.write_project(".qwen/.env", &format!("OPENAI_API_KEY={key}\n"));
    // The mock answers only `Bearer sk-ab$cd`: a key cut to `sk-ab` gets a 404.
    let server = server_for_key(key).await;
    run(env
        .cmd()
        .env("OPENAI_BASE_URL", base_url(&server))
        .arg("hi"))
    .code(0)
    .stdout_is("ok\n")
    .stderr_empty();
}

#[tokio::test]
async fn unquoted_values_keep_inner_spaces_and_drop_an_inline_comment() {
    assert_eq!(
        model_sent_with("OPENAI_MODEL=my model # note\n").await,
        "my model"
    );
    assert_eq!(
        model_sent_with("OPENAI_MODEL=gpt-4o   # the default\n").await,
        "gpt-4o"
    );
}

/// npm dotenv keeps the spaces inside quotes (the oracle's corpus checks the parser); qwen then
/// trims every resolved model, key and base URL, on purpose (README, "Configuration and
/// precedence"), so the model sent has none.
#[tokio::test]
async fn spaces_inside_quotes_are_read_then_trimmed_like_every_resolved_value() {
    assert_eq!(
        model_sent_with("OPENAI_MODEL=\"    spaced    \"\n").await,
        "spaced"
    );
}

#[tokio::test]
async fn a_value_after_spaces_is_read() {
    assert_eq!(model_sent_with("OPENAI_MODEL=   spaced\n").await, "spaced");
    assert_eq!(model_sent_with("OPENAI_MODEL =  spaced\n").await, "spaced");
}

#[tokio::test]
async fn a_byte_order_mark_at_the_start_is_accepted() {
    assert_eq!(
        model_sent_with("\u{FEFF}OPENAI_MODEL=bom-model\r\n").await,
        "bom-model"
    );
}

#[tokio::test]
async fn backtick_and_single_quotes_keep_their_content_as_is() {
    assert_eq!(
        model_sent_with("OPENAI_MODEL=`it's \"quoted\"`\n").await,
        "it's \"quoted\""
    );
    // (qwen trims every resolved value at its ends, whatever its source: inner spaces stay.)
    assert_eq!(model_sent_with("OPENAI_MODEL='a  #b'\n").await, "a  #b");
    assert_eq!(model_sent_with("OPENAI_MODEL='a\\nb'\n").await, "a\\nb");
}

#[tokio::test]
async fn an_unterminated_quote_is_read_as_dotenv_reads_it() {
    // dotenv falls back to the unquoted rule: the quote stays, the next line is its own entry.
    assert_eq!(
        model_sent_with("OPENAI_MODEL=\"unterminated\nOTHER=1\n").await,
        "\"unterminated"
    );
}

#[tokio::test]
async fn duplicates_and_export_behave_as_in_dotenv() {
    assert_eq!(
        model_sent_with("OPENAI_MODEL=first\nexport OPENAI_MODEL=second\n").await,
        "second"
    );
}

#[tokio::test]
async fn a_skipped_line_is_named_by_file_and_number_never_by_content() {
    let env = TestEnv::new();
    let file = env.write_project(
        ".qwen/.env",
        "# settings\nOPENAI_MODEL=m\nsk-pasted-secret-without-a-name\n\n  also skipped\n",
    );
    let server = server_expecting(1).await;
    let r = run(env.cmd_for(&server).arg("hi"));
    r.code(0).stdout_is("ok\n");
    for line in [3, 5] {
        r.stderr_has(&format!(
            "warning: `{}` line {line}: not a KEY=value line, skipped",
            file.display()
        ));
    }
    r.stderr_lacks("sk-pasted-secret")
        .stderr_lacks("also skipped");
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);
    assert_eq!(only_body(&server).await["model"], "m");
}

#[tokio::test]
async fn a_dotenv_that_is_not_utf8_stays_exit_52_without_its_content() {
    let env = TestEnv::new();
    let server = server_expecting(0).await;
    let file = env.project.join(".qwen/.env");
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("create .qwen");
    std::fs::write(&file, b"\xEF\xBB\xBFOPENAI_API_KEY=sk-secret-\xff\n").expect("write .env");
    let r = run(env.cmd_for(&server).args(["--json", "hi"]));
    r.code(52)
        .stderr_has(&format!("error: cannot read `{}`", file.display()))
        .stderr_has("not valid UTF-8")
        .stderr_lacks("sk-secret");
    assert!(!r.stdout.contains("sk-secret"), "{}", r.stdout);
    assert_error_result(&r.result(), "configuration_error");
}
