//! `@path` references in the prompt: Qwen Code's format for a file, a directory (its structure)
//! and qwen's own glob expansion; a refusal (exit 42, nothing sent) for a link out, `/proc`, a
//! FIFO, a git-ignored or `.qwenignore`d file, a glob that matches too much.

use crate::common::{TestEnv, only_body, run, server_answering, server_expecting, user_message};

#[tokio::test]
async fn a_reference_sends_the_file_in_qwen_codes_format() {
    let env = TestEnv::new();
    env.write_project("README.md", "# Title\nbody\n");
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).arg("summarize @README.md"))
        .code(0)
        .stdout_is("ok\n");
    // Qwen Code 0.24.4 names the file as the prompt wrote it (its request body, captured).
    let want = "summarize @README.md\n--- Content from referenced files ---\nContent from README.md:\n# Title\nbody\n\n--- End of content ---";
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
    mkfifo(&env.project_path("fifo"));
    env.write_project("big.txt", &"x".repeat(2048));
    env.write_project("ctl\u{7}bell.txt", "x");
    git_init(&env);
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
    // The same name met through a glob: the match is named escaped too.
    run(env
        .cmd_for(&server)
        .args(["--max-input-bytes", "1", "read @ctl*.txt"]))
    .code(42)
    .stderr_has("its match `ctl\\u{7}bell.txt`")
    .stderr_lacks("\u{7}");
}

fn git_init(env: &TestEnv) {
    assert!(
        std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(&env.project)
            .status()
            .expect("run git init")
            .success()
    );
}

fn mkfifo(path: &std::path::Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("run mkfifo")
            .success()
    );
}

#[tokio::test]
async fn a_directory_reference_sends_its_structure_as_qwen_code_does() {
    let env = TestEnv::new();
    git_init(&env);
    env.write_project(".gitignore", "big/*.log\n");
    env.write_project(".qwenignore", "big/zed.md\n");
    for name in [
        "b.txt", "B2.txt", "a.txt", "_u.txt", "-d.txt", "10.txt", "9.txt", "Zed.md", "zed.md",
        ".hid", "gi.log",
    ] {
        env.write_project(&format!("big/{name}"), "x\n");
    }
    for i in 1..=8 {
        env.write_project(&format!("big/zeta/f{i}"), "x\n");
    }
    env.write_project("big/Alpha/deep/d.txt", "x\n");
    env.write_project("big/Alpha/one", "x\n");
    for empty in ["big/node_modules", "big/beta_dir", "big/dist"] {
        std::fs::create_dir_all(env.project_path(empty)).unwrap();
    }
    std::os::unix::fs::symlink("../a.txt", env.project_path("big/link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", env.project_path("big/etclink")).unwrap();
    mkfifo(&env.project_path("big/fifo"));
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("see @big/ now"))
    .code(0);
    // What Qwen Code 0.24.4 sent for this very tree (captured from its request body): a
    // breadth-first listing of 20 items, links, the FIFO and ignored files left out.
    let want = format!(
        "see @big/ now\n--- Content from referenced files ---\nContent from big/:\nShowing up to 20 items:\n\n{}/\n\
         ├───_u.txt\n├───-d.txt\n├───.hid\n├───10.txt\n├───9.txt\n├───a.txt\n├───b.txt\n├───B2.txt\n\
         ├───Alpha/\n│   ├───one\n│   └───deep/\n│       └───...\n├───beta_dir/\n├───dist/...\n\
         ├───node_modules/...\n└───zeta/\n    ├───f1\n    ├───f2\n    ├───f3\n    ├───f4\n    └───f5\n\
         \x20   └───...\n--- End of content ---",
        env.project_path("big").display()
    );
    assert_eq!(user_message(&only_body(&server).await), want);
}

#[tokio::test]
async fn a_glob_reference_sends_each_matching_file_in_path_order() {
    let env = TestEnv::new();
    git_init(&env);
    env.write_project(".gitignore", "target/\n");
    env.write_project(".qwenignore", "src/hidden.rs\n");
    env.write_project("src/z.rs", "zed\n");
    env.write_project("src/a/b.rs", "bee\n");
    env.write_project("src/hidden.rs", "secret\n");
    env.write_project("src/notes.txt", "not rust\n");
    env.write_project("src/target/gen.rs", "generated\n");
    std::fs::write(env.root.join("outside.rs"), "outside").unwrap();
    std::os::unix::fs::symlink(env.root.join("outside.rs"), env.project_path("src/link.rs"))
        .unwrap();
    mkfifo(&env.project_path("src/fifo.rs"));
    let server = server_answering(&["ok"]).await;
    run(env
        .cmd_for(&server)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("review @src/**/*.rs"))
    .code(0);
    assert_eq!(
        user_message(&only_body(&server).await),
        "review @src/**/*.rs\n--- Content from referenced files ---\nContent from src/a/b.rs:\nbee\n\nContent from src/z.rs:\nzed\n\n--- End of content ---"
    );
}

#[tokio::test]
async fn a_glob_that_matches_nothing_is_text_and_one_that_matches_too_much_is_refused() {
    let env = TestEnv::new();
    for i in 0..101 {
        env.write_project(&format!("many/f{i:03}.txt"), "x");
    }
    let server = server_answering(&["ok"]).await;
    run(env.cmd_for(&server).arg("see @many/*.md")).code(0);
    assert_eq!(user_message(&only_body(&server).await), "see @many/*.md");
    let refused = server_expecting(0).await;
    run(env.cmd_for(&refused).arg("see @many/*.txt"))
        .code(42)
        .stdout_empty()
        .stderr_has("was refused")
        .stderr_has("more than 100 files");
    run(env
        .cmd_for(&refused)
        .args(["--max-input-bytes", "300", "see @many/f00*.txt"]))
    .code(42)
    .stderr_has("--max-input-bytes");
}

#[tokio::test]
async fn qwenignore_excludes_a_named_file_or_directory() {
    let env = TestEnv::new();
    env.write_project(".qwenignore", "# private\nsecret.txt\nprivate/\n");
    env.write_project("secret.txt", "s3cr3t");
    env.write_project("private/key.txt", "k");
    let server = server_expecting(0).await;
    for (reference, file) in [("@secret.txt", ".qwenignore"), ("@private", ".qwenignore")] {
        run(env.cmd_for(&server).arg(format!("read {reference}")))
            .code(42)
            .stdout_empty()
            .stderr_has("was refused")
            .stderr_has(&format!("`{file}` excludes it"));
    }
    // An ignore file that is a FIFO (or a link out) is never opened: the reference is refused,
    // rather than sent without the rules or left hanging.
    std::fs::remove_file(env.project_path(".qwenignore")).unwrap();
    mkfifo(&env.project_path(".qwenignore"));
    env.write_project("notes.txt", "n");
    run(env.cmd_for(&server).arg("read @notes.txt"))
        .code(42)
        .stderr_has("not a regular file")
        .stderr_has("its rules cannot be applied");
}
