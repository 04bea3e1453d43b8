//! `qwen batch submit|status|fetch|cancel|list` against the local Files + Batches emulator: the
//! full path, crashes at each step, splitting, expiry then a local `--resume`, cancel, the
//! provider's own line format, and the key kept out of every output.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::batch_api_emulator::Emulator;
use crate::common::{KEY, Run, TestEnv, run};

mod bench;
mod flow;
mod hostile_provider;
mod hostile_repo;
mod recovery;

/// Five jobs; `b` is refused by the provider (a per-line 400).
const JOBS: &str = "\
jobs:
  - id: a
    prompt: first
  - id: b
    prompt: FAIL400 please
  - id: c
    prompt: third
  - id: d
    prompt: fourth
  - id: e
    prompt: fifth
";

const OK_JOBS: &str = "\
jobs:
  - id: a
    prompt: first
  - id: b
    prompt: second
  - id: c
    prompt: third
  - id: d
    prompt: fourth
  - id: e
    prompt: fifth
";

fn qwen(env: &TestEnv, emu: &Emulator, args: &[&str]) -> Run {
    run(env.cmd_with(&emu.base_url, KEY).args(args))
}

/// `qwen batch submit FILE FLAGS... --wait --poll-interval 10ms`: submit, then wait for the end.
fn submit_and_wait(env: &TestEnv, emu: &Emulator, file: &str, flags: &[&str]) -> Run {
    let mut command_line = vec!["batch", "submit", file];
    command_line.extend_from_slice(flags);
    command_line.extend(["--wait", "--poll-interval", "10ms"]);
    qwen(env, emu, &command_line)
}

/// The result lines of a file, by id; fails when an id appears twice.
fn lines_by_id(text: &str) -> HashMap<String, Value> {
    let mut by_id = HashMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let id = v
            .get("custom_id")
            .or_else(|| v.get("id"))
            .and_then(Value::as_str)
            .expect("an id")
            .to_owned();
        assert!(
            by_id.insert(id.clone(), v).is_none(),
            "`{id}` twice in:\n{text}"
        );
    }
    by_id
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn keys(map: &HashMap<String, Value>) -> BTreeSet<String> {
    map.keys().cloned().collect()
}

/// A finished batch `name` of `OK_JOBS`, submitted and waited for (not fetched).
fn finished_batch(env: &TestEnv, emu: &Emulator, name: &str) {
    qwen(env, emu, &["batch", "submit", "jobs.yaml", "--name", name]).code(0);
    for _ in 0..3 {
        emu.advance();
    }
}
