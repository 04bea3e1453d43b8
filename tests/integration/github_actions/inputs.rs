//! actions/ai-inference v2 inputs, mapped to qwen's flags (a fake qwen records what it is given):
//! contradictions refused, file inputs read inside the workspace, the map inputs left to qwen.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::{
    ActionEnv, FakeQwen, INPUTS, INSTALL_INPUTS, KEY, UNSUPPORTED_V2_INPUTS, base_url,
    server_answering,
};

type Inputs = &'static [(&'static str, &'static str)];

/// One row: the inputs, then argument pairs (or single arguments) that must appear in qwen's argv.
struct Mapping {
    inputs: Inputs,
    want: &'static [&'static [&'static str]],
    absent: &'static [&'static str],
}

const MAPPINGS: &[Mapping] = &[
    Mapping {
        inputs: &[("prompt", "hi")],
        want: &[&["--prompt", "hi"]],
        absent: &["--max-tokens", "--system-prompt"],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("model", "m1")],
        want: &[&["--model", "m1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("endpoint", "http://127.0.0.1:9/v1")],
        want: &[&["--openai-base-url", "http://127.0.0.1:9/v1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("base-url", "http://127.0.0.1:9/v1")],
        want: &[&["--openai-base-url", "http://127.0.0.1:9/v1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[
            ("prompt", "hi"),
            ("base-url", "http://x/v1"),
            ("endpoint", "http://x/v1"),
        ],
        want: &[&["--openai-base-url", "http://x/v1"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("max-tokens", "300")],
        want: &[&["--max-tokens", "300"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("max-completion-tokens", "300")],
        want: &[&["--max-tokens", "300"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("temperature", "0.3")],
        want: &[&["--temperature", "0.3"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("top-p", "0.9")],
        want: &[&["--top-p", "0.9"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("system-prompt", "Be brief.")],
        want: &[&["--system-prompt", "Be brief."]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("output-format", "json")],
        want: &[&["--output-format", "json"]],
        absent: &[],
    },
    Mapping {
        inputs: &[("prompt", "hi"), ("extra-args", "--retries 2")],
        want: &[&["--retries", "2"]],
        absent: &[],
    },
    // qwen reads the map inputs from the environment: no value on the command line.
    Mapping {
        inputs: &[("prompt", "hi"), ("custom-headers", "X-Team: qa\n")],
        want: &[&["--ai-inference-inputs"]],
        absent: &["--header", "X-Team: qa"],
    },
    // v2: max-completion-tokens counts, a different max-tokens is ignored (with a warning).
    Mapping {
        inputs: &[
            ("prompt", "hi"),
            ("max-tokens", "100"),
            ("max-completion-tokens", "300"),
        ],
        want: &[&["--max-tokens", "300"]],
        absent: &["100"],
    },
    // v2: a system-prompt-file wins over a system-prompt (with a warning).
    Mapping {
        inputs: &[
            ("prompt", "hi"),
            ("system-prompt", "ignored"),
            ("system-prompt-file", "/dev/null"),
        ],
        want: &[&["--system-prompt-file", "/dev/null"]],
        absent: &["--system-prompt", "ignored"],
    },
    // v2: provider github-models (its default) is a request to `endpoint`.
    Mapping {
        inputs: &[("prompt", "hi"), ("provider", " GitHub-Models ")],
        want: &[&["--prompt", "hi"]],
        absent: &["--ai-inference-inputs"],
    },
];

#[test]
fn action_maps_every_v2_input_to_qwen_flags() {
    let rows = MAPPINGS;
    let mut covered = BTreeSet::new();
    for row in rows {
        let fake = FakeQwen::new("ok");
        let run = ActionEnv::new().run(row.inputs, Some(KEY), &fake.env());
        assert_eq!(run.code(), Some(0), "{:?}: {}", row.inputs, run.stderr());
        let argv = fake.argv();
        for want in row.want {
            assert!(
                argv.windows(want.len()).any(|w| w == *want),
                "{:?}: no {want:?} in {argv:?}",
                row.inputs
            );
        }
        for flag in row.absent {
            assert!(
                !argv.iter().any(|a| a == flag),
                "{:?}: {flag} in {argv:?}",
                row.inputs
            );
        }
        assert_eq!(fake.key(), KEY, "the key arrives in the environment");
        assert!(
            !argv.iter().any(|a| a.contains(KEY)),
            "the key is on the command line"
        );
        covered.extend(row.inputs.iter().map(|(n, _)| *n));
    }
    // The rest of the inputs have their own tests below (files, maps, jobs, install, key).
    covered.extend([
        "prompt-file",
        "system-prompt-file",
        "input",
        "file_input",
        "jobs",
        "token",
        "api-key",
    ]);
    covered.extend(INSTALL_INPUTS);
    // Not supported: warned about by name (`action_warns_by_name_for_the_v2_inputs_it_does_not_support`).
    covered.extend(UNSUPPORTED_V2_INPUTS);
    let all: BTreeSet<&str> = INPUTS.into_iter().collect();
    assert_eq!(covered, all);
}

#[test]
fn action_refuses_inputs_that_contradict_each_other_or_do_not_parse() {
    let rows: [(Inputs, i32, &str); 6] = [
        (
            &[
                ("prompt", "hi"),
                ("base-url", "http://a/v1"),
                ("endpoint", "http://b/v1"),
            ],
            2,
            "`base-url` and `endpoint`",
        ),
        (
            &[
                ("prompt", "hi"),
                ("system-prompt-file", "/nonexistent/system.txt"),
            ],
            42,
            "cannot be read",
        ),
        (
            &[("jobs", "jobs.jsonl"), ("input", "a: 1")],
            2,
            "not to jobs",
        ),
        (
            &[("prompt", "hi"), ("provider", "copilot")],
            2,
            "provider: copilot is not supported",
        ),
        (
            &[("prompt", "hi"), ("provider", "bedrock")],
            2,
            "unsupported provider",
        ),
        (
            &[("prompt", "hi"), ("enable-github-mcp", "yes")],
            2,
            "enable-github-mcp is true or false",
        ),
    ];
    for (inputs, code, message) in rows {
        let fake = FakeQwen::new("ok");
        let run = ActionEnv::new().run(inputs, Some(KEY), &fake.env());
        assert_eq!(run.code(), Some(code), "{inputs:?}: {}", run.stderr());
        assert_eq!(
            run.output("exit-code"),
            Some(code.to_string()),
            "{inputs:?}"
        );
        assert!(
            run.stderr().contains("::error title=qwen action::"),
            "{}",
            run.stderr()
        );
        assert!(
            run.stderr().contains(message),
            "{inputs:?}: {}",
            run.stderr()
        );
        assert!(!fake.ran(), "{inputs:?}: qwen ran");
    }
}

#[test]
fn action_reads_the_system_prompt_from_a_file() {
    let fake = FakeQwen::new("ok");
    let env = ActionEnv::new();
    let file = env.work().join("system.txt");
    std::fs::write(&file, "You review Rust.\nBe terse.\n").expect("write");
    let run = env.run(
        &[("prompt", "hi"), ("system-prompt-file", "system.txt")],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = fake.argv();
    // qwen reads the file itself (through its door): the text is never on a command line.
    assert!(
        argv.windows(2)
            .any(|w| w == ["--system-prompt-file", "system.txt"]),
        "{argv:?}"
    );
    assert!(!argv.iter().any(|a| a == "--system-prompt"), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("Be terse")), "{argv:?}");
}

#[tokio::test]
async fn action_sends_the_system_prompt_file_byte_for_byte() {
    let server = server_answering("ok").await;
    let env = ActionEnv::new();
    std::fs::write(
        env.work().join("system.txt"),
        "You review Rust.\nBe terse.\n\n",
    )
    .expect("write");
    let url = base_url(&server);
    let run = env.run(
        &[
            ("prompt", "hi"),
            ("system-prompt-file", "system.txt"),
            ("base-url", &url),
        ],
        Some(KEY),
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let requests = server.received_requests().await.expect("recorded");
    let body: Value = requests[0].body_json().expect("json");
    assert_eq!(
        body["messages"][0]["content"],
        "You review Rust.\nBe terse.\n\n"
    );
}

/// Issue 19 H4: a file input committed as a link to `/proc/self/environ` (or to a file outside
/// the workspace) is refused, for every input that names a file, and nothing is sent.
#[tokio::test]
async fn action_file_inputs_that_link_out_of_the_workspace_are_refused() {
    let server = server_answering("echo").await;
    let url = base_url(&server);
    let secret = "OUTSIDE-SECRET-4242";
    for target in ["/proc/self/environ", "OUTSIDE"] {
        for case in 0..5 {
            let env = ActionEnv::new();
            let outside = env.runner_temp().join("outside.txt");
            std::fs::write(&outside, secret).expect("write");
            let target = if target == "OUTSIDE" {
                outside.clone()
            } else {
                PathBuf::from(target)
            };
            std::os::unix::fs::symlink(&target, env.work().join("evil.txt")).expect("symlink");
            std::fs::write(
                env.work().join("t.prompt.yml"),
                "messages:\n  - role: user\n    content: '{{d}}'\n",
            )
            .expect("write");
            let inputs: Vec<(&str, &str)> = match case {
                0 => vec![("prompt", "hi"), ("system-prompt-file", "evil.txt")],
                1 => vec![
                    ("prompt-file", "t.prompt.yml"),
                    ("file_input", "d: evil.txt"),
                ],
                2 => vec![("prompt-file", "evil.txt")],
                3 => vec![("prompt-file", "evil.txt"), ("prompt", "review")],
                _ => vec![("prompt-file", "./evil.txt"), ("prompt", "review")],
            };
            let mut all = inputs.clone();
            all.push(("base-url", &url));
            let run = env.run(&all, Some(KEY), &[("SECRET_ENV".into(), secret.into())]);
            assert_eq!(
                run.code(),
                Some(42),
                "{inputs:?} -> {target:?}: {}",
                run.stderr()
            );
            assert_eq!(run.output("exit-code").as_deref(), Some("42"));
            run.assert_key_never_shown();
            assert!(!run.stderr().contains(secret), "{}", run.stderr());
            assert!(!run.stdout().contains(secret), "{}", run.stdout());
        }
    }
    assert_eq!(server.received_requests().await.expect("recorded").len(), 0);
}

#[test]
fn action_passes_every_line_of_extra_args() {
    let fake = FakeQwen::new("ok");
    let env = ActionEnv::new();
    let run = env.run(
        &[
            ("prompt", "hi"),
            ("extra-args", "--retries 2\n--max-tokens 5\n\t --seed 3  \n"),
        ],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = fake.argv();
    for pair in [["--retries", "2"], ["--max-tokens", "5"], ["--seed", "3"]] {
        assert!(argv.windows(2).any(|w| w == pair), "{pair:?} in {argv:?}");
    }
}

/// The map inputs are qwen's to read (`--ai-inference-inputs`, from the same `QWEN_ACTION_*`
/// variables): the script never parses them, and no value reaches a command line. What qwen makes
/// of them is tested against a server in `ai_inference_v2.rs`.
#[test]
fn action_hands_the_map_inputs_to_qwen_through_the_environment() {
    let fake = FakeQwen::new("ok");
    let env = ActionEnv::new();
    std::fs::write(env.work().join("review.prompt.yml"), "messages: []\n").expect("write");
    let run = env.run(
        &[
            ("prompt-file", "review.prompt.yml"),
            ("input", "lang: Rust-value-1\nnotes: |\n  one\n"),
            ("file_input", "{\"diff\": \"pr.diff\"}"),
            ("custom-headers", "X-Team: hdr-value-2"),
        ],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = fake.argv();
    assert!(
        argv.windows(3).any(|w| w
            == [
                "--ai-inference-inputs",
                "--prompt-file",
                "review.prompt.yml"
            ]),
        "{argv:?}"
    );
    for a in &argv {
        for value in [
            "Rust-value-1",
            "pr.diff",
            "hdr-value-2",
            "--var",
            "--header",
        ] {
            assert!(!a.contains(value), "{value} in {argv:?}");
        }
    }
    // Without a .prompt.yml prompt file, v2 never reads input or file_input: a warning, and qwen
    // is not asked to read them.
    let fake = FakeQwen::new("ok");
    let run = ActionEnv::new().run(
        &[("prompt", "hi"), ("input", "a: 1"), ("file_input", "b: x")],
        Some(KEY),
        &fake.env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let stderr = run.stderr();
    for name in ["input", "file_input"] {
        assert!(
            stderr.contains(&format!("::warning title=qwen action::{name} is ignored: it fills the placeholders of a .prompt.yml prompt-file")),
            "{stderr}"
        );
    }
    assert!(!fake.argv().iter().any(|a| a == "--ai-inference-inputs"));
}
