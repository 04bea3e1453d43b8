//! `actions/ai-inference` v2's own expectations, run through this action: each row below is a test
//! of v2's `__tests__` (tag `v2`, v2.1.1, commit a7805884c80886efc241e94a5351df715968a0ad), named in
//! its `source`, with v2's inputs given to `scripts/action-run.sh` and the real qwen answering
//! against a local server; what v2 handed its `simpleInference` (messages, model, limits, response
//! format, headers) is checked in the request qwen sent. A row whose `difference` is set is a
//! deliberate difference, with its reason (also in the README's migration table). The README's
//! table of every v2 input and output is checked against v2's `action.yml`
//! (`fixtures/ai-inference-v2/action.yml`). `custom-headers` (helpers.test.ts) is in
//! `ai_inference_v2_headers.rs`.

use serde_json::Value;
use serde_yaml::Value as Yaml;

use super::github_actions::{
    ActionEnv, KEY, UNSUPPORTED_V2_INPUTS, base_url, keys, read, server_answering, yaml,
};

/// One transcribed expectation.
#[derive(Default)]
pub(super) struct Case {
    /// v2's test file and test name.
    pub(super) source: &'static str,
    /// Files in the workspace: name and content (`fixture:NAME` copies v2's fixture).
    pub(super) files: &'static [(&'static str, &'static str)],
    pub(super) inputs: &'static [(&'static str, &'static str)],
    /// The server's answer (default `ok`).
    pub(super) answer: &'static str,
    pub(super) code: i32,
    /// The request's `messages` (JSON), when one is sent.
    pub(super) messages: Option<&'static str>,
    /// Texts the last message must contain (where v2's test asserts `toContain`).
    pub(super) contains: &'static [&'static str],
    /// Body fields by JSON pointer, as JSON; `absent` for a field that must not be sent.
    pub(super) body: &'static [(&'static str, &'static str)],
    /// Request headers that must (or must not: `None`) be sent.
    pub(super) headers: &'static [(&'static str, Option<&'static str>)],
    /// Texts on stderr (warnings, errors).
    pub(super) stderr: &'static [&'static str],
    /// Why qwen differs from v2 here, on purpose.
    pub(super) difference: Option<&'static str>,
}

const SIMPLE: &[(&str, &str)] = &[("test.prompt.yml", "fixture:simple.prompt.yml")];
const SIMPLE_MESSAGES: &str = r#"[{"role": "system", "content": "Be as concise as possible"},
    {"role": "user", "content": "Compare cats and dogs, please"}]"#;
/// A prompt file that shows the variables it is given.
const SHOW: &[(&str, &str)] = &[(
    "show.prompt.yml",
    "messages:\n  - role: user\n    content: '[{{a}}][{{b}}][{{c}}]'\n",
)];
const VARS: &[(&str, &str)] = &[(
    "vars.prompt.yml",
    "messages:\n  - role: user\n    content: '{{var1}}/{{var2}}'\n",
)];
const HELLO: &[(&str, &str)] = &[(
    "hello.prompt.yml",
    "messages:\n  - role: user\n    content: 'Hello {{name}}, welcome to {{place}}!'\n",
)];
const USER_HI: &str = r#"[{"role": "user", "content": "hi"}]"#;

#[allow(
    clippy::too_many_lines,
    reason = "a table of transcribed cases, one row each"
)]
fn prompt_cases() -> Vec<Case> {
    vec![
        Case {
            source: "prompt.test.ts parseTemplateVariables: should parse simple YAML variables",
            files: SIMPLE,
            inputs: &[
                ("prompt-file", "test.prompt.yml"),
                ("input", "\n a: cats\n b: dogs\n      "),
            ],
            messages: Some(SIMPLE_MESSAGES),
            body: &[("/model", r#""openai/gpt-4o""#)],
            ..Case::default()
        },
        Case {
            source: "prompt.test.ts parseTemplateVariables: should parse multiline variables",
            files: VARS,
            inputs: &[
                ("prompt-file", "vars.prompt.yml"),
                (
                    "input",
                    "\n var1: hello\n var2: |\n   This is a\n   multiline string\n      ",
                ),
            ],
            contains: &["hello/", "This is a", "multiline string"],
            ..Case::default()
        },
        Case {
            source: "prompt.test.ts parseTemplateVariables: should return empty object for empty input",
            files: SHOW,
            inputs: &[("prompt-file", "show.prompt.yml"), ("input", "")],
            messages: Some(r#"[{"role": "user", "content": "[{{a}}][{{b}}][{{c}}]"}]"#),
            stderr: &["no value for `{{a}}`"],
            ..Case::default()
        },
        Case {
            source: "prompt.test.ts parseTemplateVariables: should throw error for invalid YAML",
            files: SHOW,
            inputs: &[
                ("prompt-file", "show.prompt.yml"),
                ("input", "invalid: yaml: content:"),
            ],
            code: 2,
            stderr: &["input: not valid YAML"],
            ..Case::default()
        },
        Case {
            source: "issue 21: scalars as js-yaml reads them and String() writes them",
            files: SHOW,
            inputs: &[
                ("prompt-file", "show.prompt.yml"),
                ("input", "a: 1.0\nb: True\nc: ~\n"),
            ],
            messages: Some(r#"[{"role": "user", "content": "[1][true][null]"}]"#),
            ..Case::default()
        },
        Case {
            source: "replaceTemplateVariables: should replace simple variables",
            files: HELLO,
            inputs: &[
                ("prompt-file", "hello.prompt.yml"),
                ("input", "name: John\nplace: GitHub"),
            ],
            messages: Some(r#"[{"role": "user", "content": "Hello John, welcome to GitHub!"}]"#),
            ..Case::default()
        },
        Case {
            source: "replaceTemplateVariables: should leave unreplaced variables as is",
            files: HELLO,
            inputs: &[("prompt-file", "hello.prompt.yml"), ("input", "name: John")],
            messages: Some(r#"[{"role": "user", "content": "Hello John, welcome to {{place}}!"}]"#),
            stderr: &["no value for `{{place}}`"],
            ..Case::default()
        },
        Case {
            source: "replaceTemplateVariables: should handle no variables",
            files: &[(
                "plain.prompt.yml",
                "messages:\n  - role: user\n    content: No variables here\n",
            )],
            inputs: &[("prompt-file", "plain.prompt.yml")],
            messages: Some(r#"[{"role": "user", "content": "No variables here"}]"#),
            ..Case::default()
        },
        Case {
            source: "isPromptYamlFile: should detect .prompt.yaml files",
            files: &[(
                "t.prompt.yaml",
                "messages:\n  - role: user\n    content: hi\n",
            )],
            inputs: &[("prompt-file", "t.prompt.yaml")],
            messages: Some(USER_HI),
            ..Case::default()
        },
        Case {
            source: "isPromptYamlFile: should reject other file types (test.yml is text); main.ts legacy format",
            files: &[("test.yml", "messages:\n  - role: user\n")],
            inputs: &[("prompt-file", "test.yml")],
            messages: Some(r#"[{"role": "user", "content": "messages:\n  - role: user\n"}]"#),
            difference: Some("no default system message (v2 adds \"You are a helpful assistant\")"),
            ..Case::default()
        },
        Case {
            source: "loadPromptFile: should load simple prompt file",
            files: SIMPLE,
            inputs: &[
                ("prompt-file", "test.prompt.yml"),
                ("input", "a: cats\nb: dogs"),
            ],
            messages: Some(SIMPLE_MESSAGES),
            body: &[("/model", r#""openai/gpt-4o""#)],
            ..Case::default()
        },
        Case {
            source: "loadPromptFile: should load JSON schema prompt file; buildResponseFormat sends JSON.parse(jsonSchema)",
            files: &[("j.prompt.yml", "fixture:json-schema.prompt.yml")],
            inputs: &[("prompt-file", "j.prompt.yml"), ("input", "animal: dog")],
            // qwen checks the answer against the schema and writes it compact (the same value).
            answer: r#"{"name":"dog","habitat":"homes","characteristics":["loyal"]}"#,
            messages: Some(
                r#"[{"role": "system", "content": "You are a helpful assistant that describes animals using JSON format"},
                {"role": "user", "content": "Describe a dog\nUse JSON format as specified in the response schema"}]"#,
            ),
            body: &[
                ("/response_format/type", r#""json_schema""#),
                ("/response_format/json_schema/name", r#""describe_animal""#),
                ("/response_format/json_schema/strict", "true"),
                (
                    "/response_format/json_schema/schema/required",
                    r#"["name", "habitat", "characteristics"]"#,
                ),
            ],
            ..Case::default()
        },
        Case {
            source: "loadPromptFile: should throw error for non-existent file",
            inputs: &[("prompt-file", "non-existent.prompt.yml")],
            code: 42,
            stderr: &["non-existent.prompt.yml"],
            difference: Some(
                "exit 42 (an input that cannot be read), where v2 exits 1 for every failure",
            ),
            ..Case::default()
        },
        Case {
            source: "parseFileTemplateVariables: reads file contents for variables",
            files: &[
                (
                    "sample.prompt.yml",
                    "messages:\n  - role: user\n    content: '{{sample}}'\n",
                ),
                ("j.prompt.yml", "fixture:json-schema.prompt.yml"),
            ],
            inputs: &[
                ("prompt-file", "sample.prompt.yml"),
                ("file_input", "sample: j.prompt.yml"),
            ],
            contains: &["messages:", "responseFormat:"],
            ..Case::default()
        },
        Case {
            source: "parseFileTemplateVariables: errors on missing files",
            files: SHOW,
            inputs: &[
                ("prompt-file", "show.prompt.yml"),
                ("file_input", "x: ./does-not-exist.txt"),
            ],
            code: 42,
            stderr: &["does-not-exist.txt"],
            difference: Some("exit 42 (an input that cannot be read), where v2 exits 1"),
            ..Case::default()
        },
    ]
}

#[allow(
    clippy::too_many_lines,
    reason = "a table of transcribed cases, one row each"
)]
fn file_input_and_inference_cases() -> Vec<Case> {
    const NON_STRING: [&[(&str, &str)]; 3] = [
        &[("prompt-file", "show.prompt.yml"), ("file_input", "x: 123")],
        &[
            ("prompt-file", "show.prompt.yml"),
            ("file_input", "x: true"),
        ],
        &[
            ("prompt-file", "show.prompt.yml"),
            ("file_input", "x: { nested: \"object\" }"),
        ],
    ];
    let mut cases: Vec<Case> = NON_STRING
        .into_iter()
        .map(|inputs| Case {
            source: "parseFileTemplateVariables: errors on non-string file paths",
            files: SHOW,
            inputs,
            code: 2,
            stderr: &["file template variable `x` must be a string file path"],
            ..Case::default()
        })
        .collect();
    cases.extend([
        Case {
            source: "helpers-inference.test.ts buildMessages: should build messages from legacy format",
            inputs: &[("prompt", "User prompt"), ("system-prompt", "System prompt")],
            messages: Some(r#"[{"role": "system", "content": "System prompt"}, {"role": "user", "content": "User prompt"}]"#),
            ..Case::default()
        },
        Case {
            source: "buildMessages: should use default system prompt when none provided",
            inputs: &[("prompt", "User prompt")],
            messages: Some(r#"[{"role": "user", "content": "User prompt"}]"#),
            difference: Some("no default system message: a prompt is sent as given (documented)"),
            ..Case::default()
        },
        Case {
            source: "buildResponseFormat: should build JSON schema response format",
            files: &[("s.prompt.yml", "messages:\n  - role: user\n    content: hi\nresponseFormat: json_schema\njsonSchema: '{\"name\": \"test_schema\", \"schema\": {\"type\": \"object\"}}'\n")],
            inputs: &[("prompt-file", "s.prompt.yml")],
            answer: "{}",
            body: &[("/response_format", r#"{"type": "json_schema", "json_schema": {"name": "test_schema", "schema": {"type": "object"}}}"#)],
            ..Case::default()
        },
        Case {
            source: "buildResponseFormat: should return undefined for text format",
            files: &[("t.prompt.yml", "messages:\n  - role: user\n    content: hi\nresponseFormat: text\n")],
            inputs: &[("prompt-file", "t.prompt.yml")],
            body: &[("/response_format", "absent")],
            ..Case::default()
        },
        Case {
            source: "buildResponseFormat: should return undefined when no response format specified",
            files: &[("t.prompt.yml", "messages:\n  - role: user\n    content: hi\n")],
            inputs: &[("prompt-file", "t.prompt.yml")],
            messages: Some(USER_HI),
            body: &[("/response_format", "absent")],
            ..Case::default()
        },
        Case {
            source: "buildResponseFormat: should throw error for invalid JSON schema",
            files: &[("t.prompt.yml", "messages:\n  - role: user\n    content: hi\nresponseFormat: json_schema\njsonSchema: invalid json\n")],
            inputs: &[("prompt-file", "t.prompt.yml")],
            code: 42,
            stderr: &["`jsonSchema` is not valid JSON"],
            difference: Some("exit 42 (a prompt file that cannot be used), where v2 exits 1"),
            ..Case::default()
        },
        Case {
            source: "issue 21 (helpers.ts buildResponseFormat): json_schema without jsonSchema sends no response_format",
            files: &[("t.prompt.yml", "messages:\n  - role: user\n    content: hi\nresponseFormat: json_schema\n")],
            inputs: &[("prompt-file", "t.prompt.yml")],
            body: &[("/response_format", "absent")],
            stderr: &["`responseFormat: json_schema` has no `jsonSchema`"],
            ..Case::default()
        },
        Case {
            source: "issue 21 (helpers.ts buildResponseFormat): a jsonSchema under responseFormat text is ignored",
            files: &[("t.prompt.yml", "messages:\n  - role: user\n    content: hi\nresponseFormat: text\njsonSchema: '{\"name\": \"n\", \"schema\": {}}'\n")],
            inputs: &[("prompt-file", "t.prompt.yml")],
            body: &[("/response_format", "absent")],
            stderr: &["`jsonSchema` is ignored"],
            ..Case::default()
        },
        Case {
            source: "issue 21 (main.ts): maxCompletionTokens wins over a different maxTokens",
            files: &[("t.prompt.yml", "messages:\n  - role: user\n    content: hi\nmodelParameters:\n  maxTokens: 100\n  maxCompletionTokens: 300\n")],
            inputs: &[("prompt-file", "t.prompt.yml")],
            body: &[("/max_tokens", "300")],
            stderr: &["`maxTokens: 100` is ignored"],
            difference: Some("the limit is sent as the API wants it (`max_tokens` to this server, `max_completion_tokens` to OpenAI and Azure); v2 always wrote `max_completion_tokens`"),
            ..Case::default()
        },
        Case {
            source: "buildInferenceRequest: should build inference request from legacy format (maxTokens 100)",
            inputs: &[("prompt", "User prompt"), ("system-prompt", "System prompt"), ("max-tokens", "100")],
            body: &[("/max_tokens", "100"), ("/temperature", "absent"), ("/top_p", "absent")],
            ..Case::default()
        },
    ]);
    cases
}

fn main_cases() -> Vec<Case> {
    vec![
        Case {
            source: "main-prompt-integration.test.ts: should handle prompt YAML files with template variables",
            files: SIMPLE,
            inputs: &[
                ("prompt-file", "test.prompt.yml"),
                ("input", "a: cats\nb: dogs"),
                ("model", "openai/gpt-4o"),
                ("max-tokens", "200"),
            ],
            answer: "Mocked AI response",
            messages: Some(SIMPLE_MESSAGES),
            body: &[("/model", r#""openai/gpt-4o""#), ("/max_tokens", "200")],
            ..Case::default()
        },
        Case {
            source: "main-prompt-integration.test.ts: supports file_input variables to load file contents",
            files: &[
                (
                    "test.prompt.yml",
                    "messages:\n  - role: user\n    content: 'Here is the data: {{blob}}'\nmodel: openai/gpt-4o\n",
                ),
                ("vars.txt", "FILE_CONTENTS"),
            ],
            inputs: &[
                ("prompt-file", "test.prompt.yml"),
                ("file_input", "blob: vars.txt"),
            ],
            messages: Some(r#"[{"role": "user", "content": "Here is the data: FILE_CONTENTS"}]"#),
            ..Case::default()
        },
        Case {
            source: "main-prompt-integration.test.ts: should fall back to legacy format when not using prompt YAML",
            inputs: &[
                ("prompt", "Hello, world!"),
                ("system-prompt", "You are helpful"),
                ("model", "openai/gpt-4o"),
                ("max-tokens", "200"),
            ],
            messages: Some(
                r#"[{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "Hello, world!"}]"#,
            ),
            body: &[("/model", r#""openai/gpt-4o""#), ("/max_tokens", "200")],
            ..Case::default()
        },
        Case {
            source: "issue 21 (main.ts): a prompt beside a .prompt.yml prompt-file is ignored",
            files: SIMPLE,
            inputs: &[
                ("prompt-file", "test.prompt.yml"),
                ("input", "a: cats\nb: dogs"),
                ("prompt", "ignored"),
            ],
            messages: Some(SIMPLE_MESSAGES),
            stderr: &["::warning title=qwen action::prompt is ignored"],
            ..Case::default()
        },
        Case {
            source: "issue 21 (main.ts): system-prompt beside a .prompt.yml prompt-file is ignored",
            files: SIMPLE,
            inputs: &[
                ("prompt-file", "test.prompt.yml"),
                ("input", "a: cats\nb: dogs"),
                ("system-prompt", "ignored"),
            ],
            messages: Some(SIMPLE_MESSAGES),
            stderr: &["::warning title=qwen action::system-prompt is ignored"],
            ..Case::default()
        },
        Case {
            source: "issue 21 (prompt.ts): a name in both input and file_input takes the file",
            files: &[
                (
                    "show.prompt.yml",
                    "messages:\n  - role: user\n    content: '[{{a}}][{{b}}][{{c}}]'\n",
                ),
                ("a.txt", "from file"),
            ],
            inputs: &[
                ("prompt-file", "show.prompt.yml"),
                ("input", "a: text\nb: 2\nc: '@x'"),
                ("file_input", "a: a.txt"),
            ],
            messages: Some(r#"[{"role": "user", "content": "[from file][2][@x]"}]"#),
            stderr: &["input `a` is also in file_input"],
            ..Case::default()
        },
    ]
}

fn write_files(env: &ActionEnv, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = env.work().join(name);
        match content.strip_prefix("fixture:") {
            Some(fixture) => {
                std::fs::write(&path, read(&format!("fixtures/ai-inference-v2/{fixture}")))
            }
            None => std::fs::write(&path, content),
        }
        .expect("write a file");
    }
}

pub(super) async fn check(case: &Case) {
    let server = server_answering(if case.answer.is_empty() {
        "ok"
    } else {
        case.answer
    })
    .await;
    let url = base_url(&server);
    let env = ActionEnv::new();
    write_files(&env, case.files);
    let mut inputs = case.inputs.to_vec();
    inputs.push(("endpoint", &url));
    let run = env.run(&inputs, Some(KEY), &[]);
    let src = match case.difference {
        Some(why) => format!("{} (deliberate difference: {why})", case.source),
        None => case.source.to_owned(),
    };
    let stderr = run.stderr();
    assert_eq!(run.code(), Some(case.code), "{src}: {stderr}");
    for text in case.stderr {
        assert!(stderr.contains(text), "{src}: no `{text}` in:\n{stderr}");
    }
    let requests = server.received_requests().await.expect("recorded");
    if case.code != 0 {
        assert!(requests.is_empty(), "{src}: a request was sent");
        return;
    }
    assert_eq!(requests.len(), 1, "{src}");
    let answer = if case.answer.is_empty() {
        "ok"
    } else {
        case.answer
    };
    assert_eq!(run.output("response").as_deref(), Some(answer), "{src}");
    let body: Value = requests[0].body_json().expect("json");
    if let Some(messages) = case.messages {
        let want: Value = serde_json::from_str(messages).expect("case JSON");
        assert_eq!(body["messages"], want, "{src}");
    }
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    for text in case.contains {
        assert!(last.contains(text), "{src}: no `{text}` in {last:?}");
    }
    for (pointer, want) in case.body {
        let got = body.pointer(pointer);
        if *want == "absent" {
            assert_eq!(got, None, "{src}: {pointer}");
        } else {
            let want: Value = serde_json::from_str(want).expect("case JSON");
            assert_eq!(got, Some(&want), "{src}: {pointer}");
        }
    }
    for (name, want) in case.headers {
        let got = requests[0]
            .headers
            .get(*name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        assert_eq!(got.as_deref(), *want, "{src}: header {name}");
    }
}

#[tokio::test]
async fn v2_prompt_tests_pass_through_the_action() {
    for case in prompt_cases() {
        check(&case).await;
    }
}

#[tokio::test]
async fn v2_file_input_and_inference_request_tests_pass_through_the_action() {
    for case in file_input_and_inference_cases() {
        check(&case).await;
    }
}

#[tokio::test]
async fn v2_main_prompt_integration_tests_pass_through_the_action() {
    for case in main_cases() {
        check(&case).await;
    }
}

/// The README's rows under `| v2 input |` / `| v2 output |`: name and status.
fn migration_rows(kind: &str) -> Vec<(String, String)> {
    let readme = read("README.md");
    let start = readme
        .find("### Coming from actions/ai-inference v2")
        .expect("README has the v2 migration section");
    let header = format!("| v2 {kind} | status |");
    let table = &readme[start..][readme[start..].find(&header).expect("the table")..];
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

/// The migration table lists every v2 input and output, in v2's order, each `same`, `different
/// on purpose` or `not supported`; the `not supported` inputs are the ones the action warns or
/// fails about by name; and this action declares every v2 input and output.
#[test]
fn the_readme_migration_table_lists_every_v2_input_and_output() {
    let v2 = yaml("fixtures/ai-inference-v2/action.yml");
    let ours = yaml("action.yml");
    for (kind, section) in [("input", "inputs"), ("output", "outputs")] {
        let rows = migration_rows(kind);
        let names: Vec<String> = rows.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, keys(&v2[section]), "{kind}s");
        for (name, status) in &rows {
            assert!(
                ["same", "different on purpose", "not supported"].contains(&status.as_str()),
                "{name}: {status}"
            );
            assert!(
                !matches!(ours[section][name.as_str()], Yaml::Null),
                "action.yml does not declare v2's {kind} `{name}`"
            );
        }
        if kind == "input" {
            let unsupported: Vec<&str> = rows
                .iter()
                .filter(|(_, s)| s == "not supported")
                .map(|(n, _)| n.as_str())
                .collect();
            assert_eq!(unsupported, UNSUPPORTED_V2_INPUTS);
        }
    }
}
