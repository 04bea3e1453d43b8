//! `action.yml` as written: the documented inputs and outputs, the key only in the environment,
//! the secret inputs masked first, every input passed under its `QWEN_ACTION_*` name.

use serde_yaml::Value as Yaml;

use super::{INPUTS, INSTALL_INPUTS, OUTPUTS, keys, read, run_scripts, yaml};

#[test]
fn action_yml_declares_exactly_the_documented_inputs_and_outputs() {
    let action = yaml("action.yml");
    assert_eq!(keys(&action["inputs"]), INPUTS);
    assert_eq!(keys(&action["outputs"]), OUTPUTS);
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    for name in INPUTS {
        let input = &action["inputs"][name];
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "input {name} needs a description"
        );
        assert_eq!(input["required"].as_bool(), Some(false), "input {name}");
    }
    for name in OUTPUTS {
        let value = action["outputs"][name]["value"].as_str().expect("value");
        assert_eq!(value, format!("${{{{ steps.run.outputs.{name} }}}}"));
    }
}

/// The inputs and outputs named in the first column of the README's action tables.
fn readme_action_table(kind: &str) -> Vec<String> {
    let readme = read("README.md");
    let start = readme
        .find("### GitHub Action")
        .expect("README has a `### GitHub Action` section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let section = &section[..end];
    let mut names = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        if line.starts_with(&format!("| {kind} |")) {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let first = line.split('|').nth(1).unwrap_or_default().trim();
            if let Some(name) = first.strip_prefix('`').and_then(|n| n.strip_suffix('`')) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn readme_action_tables_match_action_yml() {
    let action = yaml("action.yml");
    assert_eq!(readme_action_table("input"), keys(&action["inputs"]));
    assert_eq!(readme_action_table("output"), keys(&action["outputs"]));
}

fn step<'a>(action: &'a Yaml, id: &str) -> &'a Yaml {
    action["runs"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("a step with id `{id}`"))
}

#[test]
fn action_passes_the_key_only_through_the_environment() {
    let action = yaml("action.yml");
    let run = step(&action, "run");
    let key_env = run["env"]["OPENAI_API_KEY"]
        .as_str()
        .expect("OPENAI_API_KEY in env");
    // `token` (v2's name) first, then `api-key`, then the job's environment; never github.token.
    assert_eq!(
        key_env,
        "${{ inputs.token || inputs.api-key || env.OPENAI_API_KEY }}"
    );
    assert_eq!(
        action["inputs"]["token"]["default"].as_str(),
        Some(""),
        "token has no default"
    );
    assert_eq!(action["inputs"]["max-tokens"]["default"].as_str(), Some(""));
    assert!(!read("action.yml").contains("github.token"));
    for script in run_scripts(&action) {
        // Inputs reach scripts only through env: no `${{ ... }}` spliced into shell code.
        assert!(!script.contains("${{"), "expression in a script: {script}");
        assert!(
            !script.contains("OPENAI_API_KEY"),
            "key named in a script: {script}"
        );
    }
    for file in ["scripts/action-run.sh", "scripts/action-install.sh"] {
        let script = read(file);
        assert!(
            !script.contains("--openai-api-key"),
            "{file} passes the key as a flag"
        );
        assert!(
            !script.contains("set -x"),
            "tracing would print the command lines"
        );
    }
}

#[test]
fn action_masks_the_secret_inputs_in_its_first_step() {
    let action = yaml("action.yml");
    let first = &action["runs"]["steps"][0];
    let run = step(&action, "run");
    assert!(
        first["run"]
            .as_str()
            .is_some_and(|r| r.contains("action-run.sh\" --mask")),
        "{first:?}"
    );
    for var in ["OPENAI_API_KEY", "QWEN_ACTION_CUSTOM_HEADERS"] {
        assert_eq!(first["env"][var], run["env"][var], "{var}");
    }
    assert_eq!(
        first["env"]["QWEN_ACTION_TOKEN"].as_str(),
        Some("${{ inputs.token }}")
    );
    assert_eq!(
        first["env"]["QWEN_ACTION_API_KEY"].as_str(),
        Some("${{ inputs.api-key }}")
    );
}

/// Every input the run script reads arrives as `QWEN_ACTION_<NAME>` = `${{ inputs.<name> }}`, so the
/// tests below, which set those variables, exercise what the action passes.
#[test]
fn action_run_step_passes_each_input_under_its_qwen_action_name() {
    let action = yaml("action.yml");
    let env = &step(&action, "run")["env"];
    for name in INPUTS {
        if INSTALL_INPUTS.contains(&name) || name == "token" || name == "api-key" {
            continue;
        }
        let var = format!(
            "QWEN_ACTION_{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
        assert_eq!(
            env[var.as_str()].as_str(),
            Some(format!("${{{{ inputs.{name} }}}}").as_str()),
            "{var}"
        );
    }
    let install = &step(&action, "install")["env"];
    assert_eq!(
        install["QWEN_INSTALL_VERSION"].as_str(),
        Some("${{ inputs.version }}")
    );
    assert_eq!(
        install["QWEN_INSTALL_BASE_URL"].as_str(),
        Some("${{ inputs.download-base-url }}")
    );
    assert_eq!(
        install["QWEN_INSTALL_ACTION_REF"].as_str(),
        Some("${{ github.action_ref }}")
    );
}
