//! What the action shows: secrets masked before anything else, unsupported inputs warned about by
//! name, workflow commands in the answer stopped, an answer too large for an output left to a file.

use std::process::Command;

use super::{ActionEnv, FakeQwen, KEY, base_url, repo_file, run_action, server_answering};

#[test]
fn action_masks_the_key_and_every_header_value_before_anything_else() {
    let fake = FakeQwen::new("fine");
    let headers = "X-Api-Token: hdr-secret-1\nX-Other: \"hdr-secret-2\"\n";
    let run = ActionEnv::new().run(
        &[("prompt", "hi"), ("custom-headers", headers)],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "hdr-secret-1", "hdr-secret-2"]);

    // Text that is no map (qwen warns and sends no header) is masked line by line all the same,
    // and a JSON object's values are masked by qwen once it has read them.
    let run = ActionEnv::new().run(
        &[
            ("prompt", "hi"),
            ("custom-headers", "X-A: [x]\nhdr-secret-3"),
        ],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "hdr-secret-3"]);
}

/// Issue 21 point 3: the v2 inputs qwen does not support are warned about by name (never by value),
/// the run goes on, and the MCP token is masked like every secret.
#[test]
fn action_warns_by_name_for_the_v2_inputs_it_does_not_support() {
    let fake = FakeQwen::new("fine");
    let inputs = [
        ("enable-github-mcp", "true"),
        ("github-mcp-token", "ghp-mcp-secret-77"),
        ("github-mcp-toolsets", "repos,issues"),
        ("copilot-cli-path", "/opt/copilot"),
        ("copilot-allow-tools", "shell"),
    ];
    let mut all = vec![("prompt", "hi")];
    all.extend(inputs);
    let run = ActionEnv::new().run(&all, Some(KEY), &fake.env());
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.assert_secrets_never_shown(&[KEY, "ghp-mcp-secret-77"]);
    let stderr = run.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("::warning"))
        .collect();
    assert_eq!(warnings.len(), inputs.len(), "{stderr}");
    for ((name, value), warning) in inputs.iter().zip(&warnings) {
        assert!(
            warning.starts_with(&format!(
                "::warning title=qwen action::{name} is not supported"
            )),
            "{name}: {stderr}"
        );
        assert!(!warning.contains(value), "{value}: {warning}");
    }
    // `enable-github-mcp: false` and `provider: github-models` (v2's defaults) ask for nothing
    // qwen lacks; `provider: copilot` fails (`action_refuses_inputs_that_contradict_…`).
    for (name, value) in [
        ("enable-github-mcp", "false"),
        ("enable-github-mcp", "FALSE"),
        ("provider", "github-models"),
    ] {
        let run = ActionEnv::new().run(&[("prompt", "hi"), (name, value)], Some(KEY), &fake.env());
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        assert!(!run.stderr().contains("::warning"), "{}", run.stderr());
    }
}

#[test]
fn action_mask_mode_prints_only_masks_and_sets_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let github_output = dir.path().join("out");
    let out = Command::new("bash")
        .arg(repo_file("scripts/action-run.sh"))
        .arg("--mask")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", KEY)
        .env("QWEN_ACTION_CUSTOM_HEADERS", "{\"X-A\": \"v%1\\nv2\"}")
        .env("QWEN_ACTION_TOKEN", KEY)
        .env("QWEN_ACTION_API_KEY", "other-key")
        .env("GITHUB_OUTPUT", &github_output)
        .env("QWEN_BIN", "/nonexistent/qwen")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "::add-mask::{KEY}\n::add-mask::{KEY}\n::add-mask::other-key\n::add-mask::{{\"X-A\": \"v%251\\nv2\"}}\n::add-mask::v%251\\nv2\n"
        )
    );
    assert!(
        !github_output.exists()
            || std::fs::read_to_string(&github_output)
                .unwrap_or_default()
                .is_empty()
    );
}

#[tokio::test]
async fn action_stops_workflow_commands_in_the_answer_it_copies_into_the_log() {
    let answer = "::warning::pwned\n::add-mask::x\n::stop-commands::guess\n::error::done";
    let server = server_answering(answer).await;
    let url = base_url(&server);
    let run = run_action(&[("prompt", "hi"), ("base-url", &url)], Some(KEY));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.logged_answer(), format!("{answer}\n"));
    assert_eq!(run.output("result").as_deref(), Some(answer));
}

/// The runner reads both streams as one log: qwen's own workflow commands on stderr (its masks and
/// annotations) must come before the stopped stretch, never inside it.
#[test]
fn action_copies_the_answer_after_qwens_own_workflow_commands() {
    let fake = FakeQwen::new("::warning::from the server\n");
    std::fs::write(
        fake.dir.path().join("stderr"),
        "::add-mask::oauth-token\n::error::boom\n",
    )
    .expect("write");
    let env = ActionEnv::new();
    let out = Command::new("bash")
        .arg("-c")
        .arg("exec bash \"$0\" 2>&1")
        .arg(repo_file("scripts/action-run.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUNNER_TEMP", env.runner_temp())
        .env("OPENAI_API_KEY", KEY)
        .env("QWEN_ACTION_PROMPT", "hi")
        .env("QWEN_BIN", fake.dir.path().join("qwen"))
        .current_dir(env.work())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = log.lines().collect();
    let stop = lines
        .iter()
        .position(|l| l.starts_with("::stop-commands::"))
        .expect("stop-commands");
    let token = &lines[stop]["::stop-commands::".len()..];
    let end = format!("::{token}::");
    assert_eq!(
        lines[stop + 1..],
        ["::warning::from the server", end.as_str()]
    );
    let error = lines
        .iter()
        .position(|l| *l == "::error::boom")
        .expect("qwen's annotation");
    let mask = lines
        .iter()
        .position(|l| *l == "::add-mask::oauth-token")
        .expect("qwen's mask");
    assert!(error < stop && mask < stop, "{log}");
}

#[test]
fn action_leaves_an_answer_over_256_kib_to_response_file_with_a_warning() {
    let big = "x".repeat(256 * 1024 + 1);
    let fake = FakeQwen::new(&big);
    let run = ActionEnv::new().run(&[("prompt", "hi")], Some(KEY), &fake.env());
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("result").as_deref(), Some(""));
    assert_eq!(run.output("response").as_deref(), Some(""));
    let file = run.output("response-file").expect("response-file");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), big);
    assert!(
        run.stderr()
            .contains("::warning title=qwen action::the answer is 262145 bytes")
            && run.stderr().contains("response-file"),
        "{}",
        run.stderr()
    );

    // Exactly 256 KiB still fits.
    let fits = "y".repeat(256 * 1024);
    let fake = FakeQwen::new(&fits);
    let run = ActionEnv::new().run(&[("prompt", "hi")], Some(KEY), &fake.env());
    assert_eq!(run.output("response").as_deref(), Some(fits.as_str()));
    assert!(!run.stderr().contains("::warning"));
}
