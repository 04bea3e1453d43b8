//! Issue 19: every file the command line names is a door. Inputs (`--prompt-file`, `--var @path`,
//! `--json-schema @path`, `--system-prompt-file`, `--jobs`) and outputs (`--result-file`,
//! `--output`, `--summary`) refuse a link committed to the repository that leads out of it, a FIFO,
//! a kernel file; prompt files and job files are bounded in size, nesting and what they render.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::MockServer;

use crate::batch_support::{echo_server, jsonl};
use crate::common::{KEY, Sse, TestEnv, chat, run};

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

fn link(env: &TestEnv, target: &std::path::Path, name: &str) {
    std::os::unix::fs::symlink(target, env.project_path(name)).expect("symlink");
}

fn mkfifo(env: &TestEnv, name: &str) {
    let status = std::process::Command::new("mkfifo")
        .arg(env.project_path(name))
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

/// H4: a committed link to `/proc/self/environ` or to a file outside the project never becomes the
/// prompt, a variable, a schema or a system message; the key is never shown.
#[tokio::test]
async fn command_line_files_that_link_out_of_the_workspace_are_refused() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let outside = env.root.join("outside.txt");
    std::fs::write(&outside, "OUTSIDE-SECRET").expect("write");
    link(
        &env,
        std::path::Path::new("/proc/self/environ"),
        "environ.txt",
    );
    link(&env, &outside, "outside-link.txt");
    std::fs::create_dir_all(env.root.join("elsewhere")).expect("mkdir");
    std::fs::write(
        env.root.join("elsewhere/x.prompt.yml"),
        "messages:\n  - role: user\n    content: hi\n",
    )
    .expect("write");
    link(&env, &env.root.join("elsewhere"), "prompts");
    env.write_project(
        "p.prompt.yml",
        "messages:\n  - role: user\n    content: '{{d}}'\n",
    );
    for evil in ["environ.txt", "outside-link.txt"] {
        let var = format!("d=@{evil}");
        let schema = format!("@{evil}");
        let cases: [Vec<&str>; 5] = [
            vec!["--prompt-file", evil],
            vec!["--prompt-file", "p.prompt.yml", "--var", &var],
            vec!["--json-schema", &schema, "hi"],
            vec!["--system-prompt-file", evil, "hi"],
            vec!["--extra-body", &schema, "hi"],
        ];
        for args in cases {
            let r = run(env.cmd_for(&server).args(&args));
            assert!(
                r.code == Some(42) || r.code == Some(2),
                "{args:?}: {:?} {}",
                r.code,
                r.stderr
            );
            r.stdout_empty()
                .stderr_has("leads out of the workspace")
                .stderr_lacks(KEY)
                .stderr_lacks("OUTSIDE-SECRET");
        }
    }
    // A link to a directory outside: the prompt file under it is outside too.
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "prompts/x.prompt.yml"]))
    .code(42)
    .stderr_has("the link `prompts`")
    .stderr_has("hint: a link in the repository may not lead out of it");
    // --jobs too.
    std::fs::write(
        env.root.join("jobs.jsonl"),
        "{\"prompt\": \"outside job\"}\n",
    )
    .expect("write");
    link(&env, &env.root.join("jobs.jsonl"), "jobs.jsonl");
    run(env.cmd_for(&server).args(["--jobs", "jobs.jsonl"]))
        .code(42)
        .stderr_has("--jobs: `jobs.jsonl` goes through the link");
    assert_eq!(requests(&server).await, 0, "nothing may be sent");
    // Named as what they are (outside the project), the same files are the user's choice.
    let r = run(env
        .cmd_for(&server)
        .args(["--prompt-file", outside.to_str().expect("utf-8")]));
    r.code(0).stdout_has("OUTSIDE-SECRET");
}

/// H4/L5: a link inside the project to a file inside it is fine; a FIFO (which would block the
/// open forever) and a directory are refused at once, whatever names them.
#[tokio::test]
async fn a_fifo_is_refused_at_once_for_every_input() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    mkfifo(&env, "fifo");
    mkfifo(&env, "fifo.prompt.yml");
    mkfifo(&env, "fifo.jsonl");
    env.write_project(
        "p.prompt.yml",
        "messages:\n  - role: user\n    content: '{{d}}'\n",
    );
    let started = Instant::now();
    let cases: [&[&str]; 6] = [
        &["--prompt-file", "fifo"],
        &["--prompt-file", "fifo.prompt.yml"],
        &["--prompt-file", "p.prompt.yml", "--var", "d=@fifo"],
        &["--json-schema", "@fifo", "hi"],
        &["--system-prompt-file", "fifo", "hi"],
        &["--jobs", "fifo.jsonl"],
    ];
    for args in cases {
        let r = run(env.cmd_for(&server).args(args));
        assert!(
            r.code == Some(42) || r.code == Some(2),
            "{args:?}: {:?} {}",
            r.code,
            r.stderr
        );
        r.stderr_has("not a regular file");
    }
    // In a job file: a prompt_file, a `vars` file and a json_schema.
    let jobs = [
        json!({"id": "a", "prompt_file": "fifo"}),
        json!({"id": "b", "prompt_file": "fifo.prompt.yml"}),
        json!({"id": "c", "prompt_file": "p.prompt.yml", "vars": {"d": "@fifo"}}),
        json!({"id": "d", "prompt": "hi", "json_schema": "fifo"}),
    ];
    for job in jobs {
        env.write_project("j.jsonl", &jsonl(std::slice::from_ref(&job)));
        run(env.cmd_for(&server).args(["--jobs", "j.jsonl"]))
            .code(42)
            .stderr_has("not a regular file");
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "no input may hang"
    );
    assert_eq!(requests(&server).await, 0);
    // A link that stays inside the project is followed.
    env.write_project("real.txt", "inside text");
    link(&env, &env.project_path("real.txt"), "inside-link.txt");
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "inside-link.txt"]))
    .code(0)
    .stdout_is("inside text\n");
}

/// M6: an output committed as a link out of the workspace is never written through.
#[tokio::test]
async fn outputs_that_link_out_of_the_workspace_are_refused() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let target = env.write_home(".gitconfig", "[user]\n\tname = me\n");
    link(&env, &target, "review.md");
    link(&env, &env.home.join("new-file"), "dangling.md");
    for file in ["review.md", "dangling.md"] {
        let r = run(env.cmd_for(&server).args(["--result-file", file, "hi"]));
        r.code(42).stderr_has("leads out of the workspace");
    }
    env.write_project("j.jsonl", &jsonl(&[json!({"id": "a", "prompt": "x"})]));
    for flag in ["--output", "--summary"] {
        run(env
            .cmd_for(&server)
            .args(["--jobs", "j.jsonl", flag, "review.md"]))
        .code(42)
        .stderr_has(&format!("{flag}: `review.md` goes through the link"));
    }
    assert_eq!(
        requests(&server).await,
        0,
        "refused before anything is sent"
    );
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "[user]\n\tname = me\n"
    );
    assert!(!env.home.join("new-file").exists());
    // A result file in the project (even through a link inside it) is written.
    env.write_project("out/real.md", "old");
    link(&env, &env.project_path("out/real.md"), "answer.md");
    run(env
        .cmd_for(&server)
        .args(["--result-file", "answer.md", "fresh"]))
    .code(0);
    assert_eq!(env.read_project("out/real.md"), "fresh");
}

/// L8: `--result-file F < F` would overwrite the prompt it reads.
#[tokio::test]
async fn a_result_file_that_is_standard_input_is_refused() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let input = env.write_project("prompt.txt", "the prompt\n");
    let file = std::fs::File::open(&input).expect("open");
    let child = env
        .std_cmd()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", crate::common::base_url(&server))
        .args(["--result-file", "prompt.txt"])
        .stdin(file)
        .spawn()
        .expect("spawn");
    crate::common::wait_bounded(child, Duration::from_secs(20))
        .code(2)
        .stderr_has("--result-file and standard input name the same file");
    // The system prompt's file is read before the answer is written: one file for both is refused.
    run(env.cmd_for(&server).args([
        "--system-prompt-file",
        "prompt.txt",
        "--result-file",
        "./prompt.txt",
        "hi",
    ]))
    .code(2)
    .stderr_has("--system-prompt-file and --result-file name the same file");
    assert_eq!(env.read_project("prompt.txt"), "the prompt\n");
    assert_eq!(requests(&server).await, 0);
}

/// M3: the rendered prompt is checked against --max-input-bytes as it is filled: 20 × a 1 MiB
/// variable, and 200,000 placeholders, are exit 42 quickly, with nothing sent.
#[tokio::test]
async fn a_rendered_prompt_file_is_bounded_by_max_input_bytes() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    env.write_project("d.txt", &"v".repeat(1024 * 1024));
    env.write_project(
        "twenty.prompt.yml",
        &format!(
            "messages:\n  - role: user\n    content: '{}'\n",
            "{{d}}".repeat(20)
        ),
    );
    env.write_project(
        "many.prompt.yml",
        &format!(
            "messages:\n  - role: user\n    content: '{}'\n",
            "{{d}}".repeat(200_000)
        ),
    );
    for file in ["twenty.prompt.yml", "many.prompt.yml"] {
        let started = Instant::now();
        let r = run(env.cmd_for(&server).args([
            "--prompt-file",
            file,
            "--var",
            "d=@d.txt",
            "-o",
            "json",
        ]));
        r.code(42)
            .stderr_has("larger than the limit of 8388608 bytes")
            .stderr_has("--max-input-bytes");
        assert_eq!(r.result()["is_error"], true);
        assert!(started.elapsed() < Duration::from_secs(10), "{file}");
    }
    // In a job file too.
    env.write_project(
        "j.jsonl",
        &jsonl(&[json!({"id": "a", "prompt_file": "twenty.prompt.yml", "vars": {"d": "@d.txt"}})]),
    );
    run(env.cmd_for(&server).args(["--jobs", "j.jsonl"]))
        .code(42)
        .stderr_has("larger than the limit");
    assert_eq!(requests(&server).await, 0);
    // An oversize variable file says which limit to raise (not "use --var @file").
    run(env.cmd_for(&server).args([
        "--prompt-file",
        "twenty.prompt.yml",
        "--var",
        "d=@d.txt",
        "--max-input-bytes",
        "1000",
    ]))
    .code(42)
    .stderr_has("larger than 1000 bytes")
    .stderr_has("--max-input-bytes")
    .stderr_lacks("--var name=@file");
}

/// M4: deeply nested YAML is refused before it is parsed, in a job file and in a prompt file, and
/// a YAML job document has a size cap.
#[tokio::test]
async fn deeply_nested_yaml_is_refused_before_parsing() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    // The shapes that cost the parser minutes: a flow sequence opened after a key, flow maps.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    env.write_project(
        "jobs.yaml",
        &format!("jobs:\n  - prompt: {}\n", "[".repeat(100_000)),
    );
    env.write_project("maps.yaml", &"{a: ".repeat(60_000));
    env.write_project(
        "deep.prompt.yml",
        &format!("messages:\n  - role: user\n    content: hi\nx: {deep}\n"),
    );
    let started = Instant::now();
    for file in ["jobs.yaml", "maps.yaml"] {
        run(env.cmd_for(&server).args(["--jobs", file]))
            .code(42)
            .stderr_has("nest more than 64 levels");
    }
    run(env
        .cmd_for(&server)
        .args(["--prompt-file", "deep.prompt.yml"]))
    .code(42)
    .stderr_has("nest more than 64 levels");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Over 8 MiB, a YAML document is refused whatever it holds (JSON Lines are streamed).
    let big = env.project_path("big.yaml");
    std::fs::File::create(&big)
        .expect("create")
        .set_len(8 * 1024 * 1024 + 1)
        .expect("size");
    run(env.cmd_for(&server).args(["--jobs", "big.yaml"]))
        .code(42)
        .stderr_has("larger than")
        .stderr_has("JSON Lines");
    // A JSON Lines file is streamed, but one line is bounded the same way.
    let line = env.project_path("big.jsonl");
    std::fs::File::create(&line)
        .expect("create")
        .set_len(64 * 1024 * 1024 + 1)
        .expect("size");
    run(env.cmd_for(&server).args(["--jobs", "big.jsonl"]))
        .code(42)
        .stderr_has("big.jsonl: line 1: the line is longer than 67108864 bytes");
    assert_eq!(requests(&server).await, 0);
}

/// L3: a prompt file that is not a map (a link to a secret file, say) is never quoted, on stderr
/// or in the JSON document.
#[tokio::test]
async fn a_prompt_file_that_is_not_a_map_is_never_quoted() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let secret = "AWS_SECRET=abcd1234efgh5678";
    for (name, text) in [
        ("a.prompt.yml", secret.to_owned()),
        ("b.prompt.yml", format!("- {secret}\n")),
        ("c.prompt.yml", format!("messages: \"{secret}\"\n")),
        (
            "d.prompt.yml",
            format!("messages:\n  - role: user\n    content: [\"{secret}\"]\n"),
        ),
    ] {
        env.write_project(name, &text);
        let summary = env.project_path("summary.md");
        let r = run(env
            .cmd_for(&server)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .args(["--prompt-file", name, "-o", "json"]));
        r.code(42).stderr_lacks("abcd1234").stderr_has(name);
        assert!(!r.stdout.contains("abcd1234"), "{}", r.stdout);
        let summary = std::fs::read_to_string(&summary).expect("a step summary");
        assert!(summary.contains(name), "{summary}");
        assert!(!summary.contains("abcd1234"), "{summary}");
    }
}

/// L6: one warning per missing name per file, capped, however many jobs and passes repeat it.
#[tokio::test]
async fn missing_placeholders_are_warned_once_per_name_per_file_and_capped() {
    let env = TestEnv::new();
    let server = echo_server(Duration::ZERO).await;
    let content = (0..5_000).fold(String::new(), |mut text, i| {
        let _ = write!(text, "{{{{n{i}}}}} ");
        text
    });
    env.write_project(
        "p.prompt.yml",
        &format!("messages:\n  - role: user\n    content: '{content}'\n"),
    );
    let jobs: Vec<_> = (0..20)
        .map(|i| json!({"id": format!("j{i}"), "prompt_file": "p.prompt.yml"}))
        .collect();
    env.write_project("j.jsonl", &jsonl(&jobs));
    let r = run(env
        .cmd_for(&server)
        .args(["--jobs", "j.jsonl", "--output", "o.jsonl", "-q"]));
    r.code(0);
    let warnings = r
        .stderr
        .lines()
        .filter(|l| l.contains("no value for"))
        .count();
    assert_eq!(warnings, 10, "{}", r.stderr);
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains("only the first 10"))
            .count(),
        1,
        "{}",
        r.stderr
    );
}

/// L8: token counts a server reports are summed without wrapping.
#[tokio::test]
async fn huge_token_counts_saturate_instead_of_wrapping() {
    let env = TestEnv::new();
    let server = MockServer::start().await;
    // Each job's own numbers fit; their sum over two jobs does not.
    let huge = 1u64 << 63;
    let body = Sse::new()
        .text("ok")
        .finish("stop")
        .raw(&format!(
            "data: {}\n\n",
            json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": huge}})
        ))
        .done();
    chat().respond_with(body.respond()).mount(&server).await;
    env.write_project(
        "j.jsonl",
        &jsonl(&[
            json!({"id": "a", "prompt": "x"}),
            json!({"id": "b", "prompt": "y"}),
        ]),
    );
    let r = run(env.cmd_for(&server).args([
        "--jobs",
        "j.jsonl",
        "--output",
        "o.jsonl",
        "--summary",
        "s.json",
        "--concurrency",
        "1",
    ]));
    r.code(0);
    let summary: serde_json::Value =
        serde_json::from_str(&env.read_project("s.json")).expect("summary json");
    assert_eq!(summary["input_tokens"], 6, "{summary}");
    assert_eq!(summary["total_tokens"], u64::MAX, "{summary}");
}
