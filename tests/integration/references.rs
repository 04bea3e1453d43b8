//! `@path` references in the prompt: Qwen Code's format for a file of the workspace, and a refusal
//! (exit 42, nothing sent) for a link out, `/proc`, a FIFO, a git-ignored file.

use crate::common::{TestEnv, only_body, run, server_answering, server_expecting, user_message};

#[tokio::test]
async fn a_reference_sends_the_file_in_qwen_codes_format() {
    let env = TestEnv::new();
    env.write_project("README.md", "# Title\nbody\n");
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).arg("summarize @README.md"))
        .code(0)
        .stdout_is("ok\n");
    let want = format!(
        "summarize @README.md\n--- Content from referenced files ---\nContent from {}:\n# Title\nbody\n\n--- End of content ---",
        env.project_path("README.md").display()
    );
    assert_eq!(user_message(&only_body(&server).await), want);
}

#[tokio::test]
async fn an_escaped_at_or_a_name_that_is_no_file_stays_text() {
    let env = TestEnv::new();
    env.write_project("README.md", "x");
    let server = server_answering(&["ok"]).await;
    let prompt = "mail ops@example.org about \\@README.md";
    run(env.cmd_for(&server).arg(prompt)).code(0);
    assert_eq!(user_message(&only_body(&server).await), prompt);
}

#[tokio::test]
async fn references_in_stdin_are_text() {
    let env = TestEnv::new();
    env.write_project("secret.txt", "s3cr3t");
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .arg("review")
        .write_stdin("see @secret.txt"))
    .code(0);
    assert_eq!(
        user_message(&only_body(&server).await),
        "see @secret.txt\n\nreview"
    );
}

#[tokio::test]
async fn include_directories_widens_the_workspace() {
    let env = TestEnv::new();
    let other = env.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "wide").unwrap();
    let path = other.join("notes.txt");
    let prompt = format!("read @{}", path.display());
    let refused = server_expecting(0).await;
    run(env.cmd_for(&refused).arg(&prompt))
        .code(42)
        .stderr_has("outside the workspace");
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .args(["--add-dir", other.to_str().unwrap()])
        .arg(&prompt))
    .code(0);
    assert!(user_message(&only_body(&server).await).ends_with("\nwide\n--- End of content ---"));
}

#[tokio::test]
async fn hostile_references_are_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    std::fs::write(env.root.join("outside.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(env.root.join("outside.txt"), env.project_path("link")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", env.project_path("env")).unwrap();
    let fifo = env.project_path("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    env.write_project("big.txt", &"x".repeat(2048));
    env.write_project("ctl\u{7}bell.txt", "x");
    assert!(
        std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(&env.project)
            .status()
            .unwrap()
            .success()
    );
    env.write_project(".gitignore", "ignored.txt\n");
    env.write_project("ignored.txt", "x");
    let server = server_expecting(0).await;
    for (reference, why) in [
        ("@link", "outside"),
        ("@env", "outside"),
        ("@/proc/self/environ", "outside"),
        ("@fifo", "not a regular file"),
        ("@../outside.txt", ".."),
        ("@big.txt", "bytes"),
        ("@ignored.txt", "git ignores it"),
    ] {
        run(env
            .cmd_for(&server)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["--max-input-bytes", "1024"])
            .arg(format!("read {reference}")))
        .code(42)
        .stdout_empty()
        .stderr_has("was refused")
        .stderr_has(why);
    }
    // A control character in a name is shown escaped, never written raw to stderr.
    run(env
        .cmd_for(&server)
        .args(["--max-input-bytes", "1", "read @ctl\u{7}bell.txt"]))
    .code(42)
    .stderr_has("was refused")
    .stderr_lacks("\u{7}");
}
