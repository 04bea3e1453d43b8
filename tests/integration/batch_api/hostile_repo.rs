//! A hostile repository (issue 19): a committed ledger, ids and the state directory cannot reach
//! files or batches that are not this submission's, and outputs pass the one path door.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::{OK_JOBS, finished_batch, lines_by_id, qwen};
use crate::batch_api_emulator::Emulator;
use crate::common::{KEY, TestEnv, run, wait_bounded};

/// Edit the ledger of `name` as a pull request could.
fn edit_ledger(env: &TestEnv, name: &str, edit: impl FnOnce(&mut Value)) {
    let rel = format!(".qwen/batches/{name}.json");
    let mut ledger: Value = serde_json::from_str(&env.read_project(&rel)).expect("the ledger");
    edit(&mut ledger);
    env.write_project(&rel, &ledger.to_string());
}

/// A ledger as a repository would commit it: one part not yet uploaded, its input file `input`.
fn committed_ledger(name: &str, input: &str) -> String {
    serde_json::json!({
        "version": 1, "name": name, "submission": "0123456789abcdef0123456789abcdef",
        "created_at": 1, "base_url": "BASE", "job_file": "jobs.jsonl", "jobs": 1,
        "completion_window": "24h",
        "parts": [{"part": 1, "model": "gpt-4o", "requests": 1, "bytes": 10, "input": input,
            "upload": "pending", "input_file_id": null, "create": "pending", "batch_id": null,
            "status": null, "request_counts": null, "output_file_id": null, "error_file_id": null,
            "batch_error": null, "download": "pending", "output": null, "errors": null}]
    })
    .to_string()
}

#[test]
fn a_committed_ledger_cannot_upload_delete_or_read_a_file_outside_its_directory() {
    let env = TestEnv::new();
    env.write_project("jobs.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    let secret = env.write_project("id_deploy", "PRIVATE KEY");
    let emu = Emulator::start(KEY);
    let absolute = secret.display().to_string();
    for input in [
        "../../../id_deploy",
        absolute.as_str(),
        "part-0001.input.jsonl/../../x",
    ] {
        let ledger = committed_ledger("nightly", input).replace("BASE", &emu.base_url);
        env.write_project(".qwen/batches/nightly.json", &ledger);
        qwen(
            &env,
            &emu,
            &["batch", "submit", "jobs.jsonl", "--name", "nightly"],
        )
        .code(42)
        .stdout_empty()
        .stderr_has("damaged");
        assert_eq!(env.read_project("id_deploy"), "PRIVATE KEY", "{input}");
        assert!(emu.log().is_empty(), "{input}: {:?}", emu.log());
    }
    // The right name, but a link to the file: not uploaded, not removed.
    let ledger =
        committed_ledger("nightly", "part-0001.input.jsonl").replace("BASE", &emu.base_url);
    env.write_project(".qwen/batches/nightly.json", &ledger);
    std::fs::create_dir_all(env.project_path(".qwen/batches/nightly")).expect("mkdir");
    std::os::unix::fs::symlink(
        &secret,
        env.project_path(".qwen/batches/nightly/part-0001.input.jsonl"),
    )
    .expect("symlink");
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.jsonl", "--name", "nightly"],
    )
    .code(42)
    .stdout_empty()
    .stderr_has("cannot upload");
    assert_eq!(env.read_project("id_deploy"), "PRIVATE KEY");
    assert_eq!(emu.count("POST /v1/files"), 0, "{:?}", emu.log());
    // A ledger named for another batch, or whose `output` names another file, is damaged too.
    env.write_project(
        ".qwen/batches/other.json",
        &committed_ledger("nightly", "part-0001.input.jsonl"),
    );
    qwen(&env, &emu, &["batch", "fetch", "other"])
        .code(42)
        .stderr_has("damaged");
    env.write_project(
        ".qwen/batches/nightly.json",
        &ledger.replace("\"output\":null", "\"output\":\"../../../id_deploy\""),
    );
    qwen(&env, &emu, &["batch", "fetch", "nightly"])
        .code(42)
        .stdout_empty()
        .stderr_has("damaged");
    // `list` names a damaged ledger on stderr and leaves it out.
    run(env.cmd().args(["batch", "list"]))
        .code(0)
        .stdout_empty()
        .stderr_has("damaged");
    // A committed part file that is a regular file of the tree is sent like a job file would be,
    // but not removed: qwen did not make its directory (no marker).
    std::fs::remove_file(env.project_path(".qwen/batches/other.json")).expect("rm");
    std::fs::remove_file(env.project_path(".qwen/batches/nightly/part-0001.input.jsonl"))
        .expect("rm");
    let line = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o\",\"messages\":[]}}\n";
    env.write_project(".qwen/batches/nightly/part-0001.input.jsonl", line);
    env.write_project(".qwen/batches/nightly.json", &ledger);
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.jsonl", "--name", "nightly"],
    )
    .code(0);
    assert_eq!(emu.uploads().len(), 1);
    assert_eq!(
        env.read_project(".qwen/batches/nightly/part-0001.input.jsonl"),
        line
    );
}

#[test]
fn ids_from_a_ledger_never_become_other_api_paths() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    let before = emu.log().len();
    let hostile = [
        ("batch_id", "../models/ft:gpt-4o:x"),
        ("output_file_id", "../assistants/asst_1"),
        ("input_file_id", "../fine_tuning/jobs/ftjob-1"),
        ("error_file_id", "file-1%2F..%2Fx"),
        ("batch_id", "batch_1\u{1b}[2J"),
    ];
    for (field, id) in hostile {
        edit_ledger(&env, "n", |l| l["parts"][0][field] = Value::from(id));
        for args in [
            &["batch", "fetch", "n", "--delete-remote"][..],
            &["batch", "cancel", "n"],
            &["batch", "status", "n"],
        ] {
            let r = qwen(&env, &emu, args);
            r.code(42).stdout_empty().stderr_has("damaged");
            assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
        }
        edit_ledger(&env, "n", |l| l["parts"][0][field] = Value::Null);
    }
    assert_eq!(emu.log().len(), before, "nothing sent: {:?}", emu.log());
}

#[test]
fn delete_remote_and_cancel_touch_only_what_this_submission_made() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    emu.set_tick_on_poll(false);
    // Batch `mine` ends; batch `yours` (the user's other batch) is still running.
    finished_batch(&env, &emu, "mine");
    qwen(
        &env,
        &emu,
        &["batch", "submit", "jobs.yaml", "--name", "yours"],
    )
    .code(0);
    let yours: Value =
        serde_json::from_str(&env.read_project(".qwen/batches/yours.json")).expect("ledger");
    let your_batch = yours["parts"][0]["batch_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let your_file = yours["parts"][0]["input_file_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A ledger that names the other batch's file: --delete-remote deletes what `mine`'s batch
    // object names, never that file.
    edit_ledger(&env, "mine", |l| {
        l["parts"][0]["input_file_id"] = Value::from(your_file.as_str());
        l["parts"][0]["output_file_id"] = Value::from(your_file.as_str());
    });
    let files_before = emu.file_count();
    qwen(
        &env,
        &emu,
        &[
            "batch",
            "fetch",
            "mine",
            "--output",
            "r.jsonl",
            "--delete-remote",
        ],
    )
    .code(0);
    assert!(
        !emu.log().contains(&format!("DELETE /v1/files/{your_file}")),
        "{:?}",
        emu.log()
    );
    assert_eq!(
        emu.file_count(),
        files_before - 2,
        "mine's input and output"
    );
    // A ledger whose batch id is the other batch: cancel refuses, nothing is cancelled.
    edit_ledger(&env, "mine", |l| {
        l["parts"][0]["batch_id"] = Value::from(your_batch.as_str());
        l["parts"][0]["status"] = Value::from("in_progress");
    });
    qwen(&env, &emu, &["batch", "cancel", "mine"])
        .code(42)
        .stdout_empty()
        .stderr_has("not created by this submission");
    assert_eq!(emu.count("POST /v1/batches/"), 0, "{:?}", emu.log());
    assert_eq!(emu.statuses()[1], "validating");
}

#[test]
fn a_linked_state_directory_is_refused_and_nothing_outside_is_removed() {
    let env = TestEnv::new();
    env.write_project("reviews.jsonl", "{\"id\":\"a\",\"prompt\":\"hi\"}\n");
    let emu = Emulator::start(KEY);
    let projects = env.home.join("projects");
    std::fs::create_dir_all(projects.join("reviews")).expect("mkdir");
    std::fs::write(projects.join("reviews/keep.txt"), "mine").expect("write");
    std::fs::create_dir_all(env.project_path(".git")).expect("mkdir");
    for (link, target) in [
        (".qwen", env.home.clone()),
        (".qwen/batches", projects.clone()),
    ] {
        if link == ".qwen/batches" {
            std::fs::create_dir_all(env.project_path(".qwen")).expect("mkdir");
        }
        std::os::unix::fs::symlink(&target, env.project_path(link)).expect("symlink");
        qwen(&env, &emu, &["batch", "submit", "reviews.jsonl"])
            .code(42)
            .stdout_empty()
            .stderr_has("symbolic link");
        assert_eq!(
            std::fs::read_to_string(projects.join("reviews/keep.txt")).expect("kept"),
            "mine"
        );
        std::fs::remove_file(env.project_path(link)).expect("unlink");
    }
    // `--state-dir` through a link out of the project is refused the same way.
    std::os::unix::fs::symlink(&projects, env.project_path("state")).expect("symlink");
    qwen(
        &env,
        &emu,
        &["batch", "submit", "reviews.jsonl", "--state-dir", "state"],
    )
    .code(42)
    .stderr_has("symbolic link");
    // A directory qwen did not make (no marker) is never removed.
    std::fs::create_dir_all(env.project_path(".qwen/batches/reviews")).expect("mkdir");
    env.write_project(".qwen/batches/reviews/keep.txt", "mine");
    qwen(&env, &emu, &["batch", "submit", "reviews.jsonl"])
        .code(42)
        .stderr_has("not made by qwen");
    assert_eq!(env.read_project(".qwen/batches/reviews/keep.txt"), "mine");
    assert!(emu.log().is_empty(), "{:?}", emu.log());
    assert_eq!(
        std::fs::read_to_string(projects.join("reviews/keep.txt")).expect("kept"),
        "mine"
    );
}

#[test]
fn fetch_output_writes_through_a_link_and_refuses_its_own_state_files() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    let real = env.write_project("real.jsonl", "old\n");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::symlink("real.jsonl", env.project_path("link.jsonl")).expect("symlink");
    qwen(
        &env,
        &emu,
        &[
            "batch",
            "fetch",
            "n",
            "--output",
            "link.jsonl",
            "--overwrite",
        ],
    )
    .code(0);
    let link = std::fs::symlink_metadata(env.project_path("link.jsonl")).expect("link");
    assert!(link.file_type().is_symlink(), "the link is kept");
    assert_eq!(lines_by_id(&env.read_project("real.jsonl")).len(), 5);
    let mode = std::fs::metadata(&real).expect("real").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "its mode is kept");
    // The job file, the ledger (by a link too) and the state directory are never the output.
    std::os::unix::fs::symlink(".qwen/batches/n.json", env.project_path("ledger-link"))
        .expect("symlink");
    for output in [
        "jobs.yaml",
        ".qwen/batches/n.json",
        "ledger-link",
        ".qwen/batches/n.lock",
        ".qwen/batches/n/part-0001.output.jsonl",
    ] {
        qwen(
            &env,
            &emu,
            &["batch", "fetch", "n", "--output", output, "--overwrite"],
        )
        .code(2)
        .stdout_empty();
    }
    assert_eq!(env.read_project("jobs.yaml"), OK_JOBS);
    qwen(&env, &emu, &["batch", "status", "n"]).code(0);
    // A link to nothing is refused, never replaced.
    std::os::unix::fs::symlink("nowhere.jsonl", env.project_path("dangling")).expect("symlink");
    qwen(&env, &emu, &["batch", "fetch", "n", "--output", "dangling"])
        .code(42)
        .stderr_has("a link to nothing");
    assert!(!env.project_path("nowhere.jsonl").exists());
    // A FIFO is not a results file (and opening it never hangs).
    let fifo = env.project_path("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    qwen(&env, &emu, &["batch", "fetch", "n", "--output", "fifo"])
        .code(42)
        .stderr_has("not a regular file");
    // A link in the repository may not lead the results out of it, as for a local batch.
    let outside = env.root.join("outside.jsonl");
    std::fs::write(&outside, "keep\n").expect("outside");
    std::os::unix::fs::symlink(&outside, env.project_path("out.jsonl")).expect("symlink");
    qwen(
        &env,
        &emu,
        &[
            "batch",
            "fetch",
            "n",
            "--output",
            "out.jsonl",
            "--overwrite",
        ],
    )
    .code(42)
    .stderr_has("leads out of the workspace");
    assert_eq!(
        std::fs::read_to_string(&outside).expect("outside"),
        "keep\n"
    );
}

#[test]
fn a_stdout_write_error_other_than_a_closed_pipe_is_exit_1() {
    let env = TestEnv::new();
    env.write_project("jobs.yaml", OK_JOBS);
    let emu = Emulator::start(KEY);
    finished_batch(&env, &emu, "n");
    for args in [
        &["batch", "fetch", "n"][..],
        &["batch", "status", "n"],
        &["batch", "list"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let child = env
            .std_cmd()
            .env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", &emu.base_url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(full)
            .spawn()
            .expect("spawn qwen");
        wait_bounded(child, Duration::from_secs(20))
            .code(1)
            .stderr_has("standard output");
    }
}
