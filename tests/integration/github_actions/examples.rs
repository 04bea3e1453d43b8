//! The examples under `examples/github-actions/`: their shape, and run through the action's script.

use serde_json::Value;
use serde_yaml::Value as Yaml;

use super::{
    ActionEnv, INPUTS, INSTALL_INPUTS, KEY, base_url, keys, read, repo_file, run_scripts,
    server_answering, triggers, yaml,
};

/// The `with:` of the example's step that uses this action, with `${{ ... }}` replaced from `values`.
fn example_inputs(rel: &str, values: &[(&str, &str)]) -> Vec<(String, String)> {
    let wf = yaml(rel);
    let jobs = wf["jobs"].as_mapping().expect("jobs");
    let step = jobs
        .values()
        .filter_map(|j| j["steps"].as_sequence())
        .flatten()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("qwen-headless/qwen@"))
        })
        .unwrap_or_else(|| panic!("{rel}: no step uses the action"));
    let uses = step["uses"].as_str().unwrap_or_default();
    let sha = uses.split('@').nth(1).unwrap_or_default();
    assert!(
        sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
        "{rel}: {uses}"
    );
    let mut out = Vec::new();
    for (name, value) in step["with"].as_mapping().expect("with") {
        let name = name.as_str().expect("input name").to_owned();
        assert!(
            INPUTS.contains(&name.as_str()),
            "{rel}: unknown input {name}"
        );
        let mut value = match value {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            other => panic!("{rel}: {name} is {other:?}"),
        };
        while let Some(start) = value.find("${{") {
            let end = value[start..].find("}}").expect("closing }}") + start + 2;
            let expr = value[start + 3..end - 2].trim();
            let (_, with) = values
                .iter()
                .find(|(e, _)| *e == expr)
                .unwrap_or_else(|| panic!("{rel}: no test value for `{expr}`"));
            value.replace_range(start..end, with);
        }
        out.push((name, value));
    }
    out
}

fn as_inputs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .filter(|(n, _)| !INSTALL_INPUTS.contains(&n.as_str()))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn example_pr_review_runs_through_the_action_against_a_local_server() {
    let server = server_answering("Looks fine.").await;
    let url = base_url(&server);
    let env = ActionEnv::new();
    let temp = env.runner_temp().to_string_lossy().into_owned();
    std::fs::write(env.runner_temp().join("pr.diff"), "+fn main() {}\n").expect("write diff");
    let inputs = example_inputs(
        "examples/github-actions/pr-review.yml",
        &[
            ("runner.temp", &temp),
            ("secrets.OPENAI_API_KEY", KEY),
            ("vars.OPENAI_BASE_URL", &url),
            ("vars.OPENAI_MODEL", "review-model"),
        ],
    );
    let run = env.run(
        &as_inputs(&inputs),
        None,
        &[("OPENAI_API_KEY".into(), KEY.into())],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("result").as_deref(), Some("Looks fine."));
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert_eq!(body["model"], "review-model");
    assert_eq!(body["max_tokens"], 1500);
    assert_eq!(body["temperature"], 0.2);
    let prompt = body["messages"][0]["content"].as_str().expect("content");
    assert!(
        prompt.starts_with("+fn main() {}\n\n\nReview this pull request diff."),
        "{prompt}"
    );
    run.assert_key_never_shown();
}

#[tokio::test]
async fn example_migration_runs_the_v2_inputs_against_a_local_server() {
    let server = server_answering("- one").await;
    let url = base_url(&server);
    let rel = "examples/github-actions/migrate-from-ai-inference.yml";
    let inputs = example_inputs(
        rel,
        &[
            ("secrets.OPENAI_API_KEY", KEY),
            ("vars.OPENAI_BASE_URL", &url),
        ],
    );
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    for v2 in [
        "system-prompt",
        "prompt",
        "model",
        "max-tokens",
        "endpoint",
        "token",
    ] {
        assert!(names.contains(&v2), "{v2} missing from {names:?}");
    }
    // The key comes from `token` (action.yml: inputs.token || inputs.api-key || env.OPENAI_API_KEY).
    let token = inputs
        .iter()
        .find(|(n, _)| n == "token")
        .map(|(_, v)| v.clone())
        .expect("token");
    let run = ActionEnv::new().run(&as_inputs(&inputs), Some(&token), &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("response").as_deref(), Some("- one"));
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["max_tokens"], 400);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][0]["content"],
        "You write release notes for engineers."
    );
    // The v2 "before" is shown in the comment, and a later step reads `response`.
    let text = read(rel);
    assert!(text.contains("#         uses: actions/ai-inference@v2"));
    assert!(text.contains("steps.summary.outputs.response"));
    run.assert_key_never_shown();
}

#[tokio::test]
async fn example_issue_triage_passes_its_prompt_file_and_drives_the_label_step() {
    let rel = "examples/github-actions/issue-triage.yml";
    let server = server_answering(r#"{"kind":"bug","reason":"it crashes"}"#).await;
    let url = base_url(&server);
    let env = ActionEnv::new();
    let temp = env.runner_temp().to_string_lossy().into_owned();
    let prompts = env.work().join(".github/prompts");
    std::fs::create_dir_all(&prompts).expect("mkdir");
    std::fs::copy(
        repo_file("examples/github-actions/prompts/triage.prompt.yml"),
        prompts.join("triage.prompt.yml"),
    )
    .expect("copy the prompt file");
    std::fs::write(env.runner_temp().join("title.txt"), "App crashes").expect("write");
    std::fs::write(env.runner_temp().join("body.txt"), "on start").expect("write");
    let inputs = example_inputs(
        rel,
        &[
            ("runner.temp", &temp),
            ("secrets.OPENAI_API_KEY", KEY),
            ("vars.OPENAI_BASE_URL", &url),
        ],
    );
    let run = env.run(&as_inputs(&inputs), Some(KEY), &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let requests = server.received_requests().await.expect("recorded");
    let body: Value = requests[0].body_json().expect("json");
    assert_eq!(body["response_format"]["json_schema"]["name"], "triage");
    assert_eq!(
        body["messages"][1]["content"],
        "Title: App crashes\n\n<issue>\non start\n</issue>\n"
    );
    let response: Value =
        serde_json::from_str(&run.output("response").expect("response")).expect("JSON");
    assert_eq!(response["kind"], "bug");

    // The label step's `if:` reads that field of the response.
    let wf = yaml(rel);
    let steps = wf["jobs"]["triage"]["steps"].as_sequence().expect("steps");
    let label = steps
        .iter()
        .find(|s| s["name"].as_str() == Some("Label a bug"))
        .expect("label step");
    assert_eq!(
        label["if"].as_str(),
        Some(
            "steps.triage.outputs.exit-code == '0' && fromJSON(steps.triage.outputs.response).kind == 'bug'"
        )
    );
}

#[test]
fn example_pr_review_uses_the_action_with_the_diff_as_prompt_file() {
    let wf = yaml("examples/github-actions/pr-review.yml");
    assert!(triggers(&wf).get("pull_request").is_some());
    let steps = wf["jobs"]["review"]["steps"].as_sequence().expect("steps");
    let step = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("qwen-headless/qwen@"))
        })
        .expect("a step using the action");
    let with = &step["with"];
    assert!(
        with["prompt-file"]
            .as_str()
            .is_some_and(|p| p.ends_with("pr.diff"))
    );
    assert_eq!(
        with["api-key"].as_str(),
        Some("${{ secrets.OPENAI_API_KEY }}")
    );
    for key in keys(with) {
        assert!(INPUTS.contains(&key.as_str()), "unknown input {key}");
    }
    assert!(run_scripts(&wf).join("\n").contains("git diff"));
}

#[test]
fn example_sharded_batch_covers_four_shards_and_merges_them() {
    let wf = yaml("examples/github-actions/sharded-batch.yml");
    let shards: Vec<u64> = wf["jobs"]["shard"]["strategy"]["matrix"]["shard"]
        .as_sequence()
        .expect("shard matrix")
        .iter()
        .filter_map(Yaml::as_u64)
        .collect();
    assert_eq!(shards, [1, 2, 3, 4]);
    let scripts = run_scripts(&wf).join("\n");
    assert!(scripts.contains(
        "qwen --jobs fixtures/jobs.jsonl --shard \"$SHARD/4\" --output \"part-$SHARD.jsonl\""
    ));
    assert!(scripts.contains("cat part-*.jsonl > results.jsonl"));
    assert_eq!(wf["jobs"]["merge"]["needs"].as_str(), Some("shard"));
    assert!(repo_file("fixtures/jobs.jsonl").is_file());
}
