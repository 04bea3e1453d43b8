#!/usr/bin/env python3
"""Time to first result of the GitHub Action, outside GitHub: the action's install step and run step
(scripts/action-install.sh, scripts/action-run.sh) run end to end with the variables a runner sets,
against a release directory served by `python3 -m http.server` on 127.0.0.1 (through the
`download-base-url` input) and the bundled echo server.

    python3 scripts/bench_action.py [--qwen BIN] [--echo-server BIN] [--runs 5] [--cargo]

cold: an empty tool cache (download, sha256 check, unpack, run); warm: the tool cache filled by an
earlier run (what a self-hosted runner sees; hosted runners start empty); cargo: the fallback, a
build from source with the action's settings (`cargo install`, no LTO, 16 codegen units) in a fresh
target directory, then the run. --qwen packages an existing binary instead of building one.
"""
import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSION = "v0.0.0-bench"
TARGET = "x86_64-unknown-linux-musl"  # the asset a Linux X64 runner asks for


def release_dir(qwen, where):
    """<where>/<VERSION>/{qwen-<VERSION>-<TARGET>.tar.gz, SHA256SUMS}, as release.yml publishes them."""
    name = f"qwen-{VERSION}-{TARGET}"
    out = os.path.join(where, VERSION)
    os.makedirs(out)
    archive = os.path.join(out, name + ".tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(qwen, arcname=f"{name}/qwen")
    with open(archive, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(out, "SHA256SUMS"), "w") as f:
        f.write(f"{digest}  {name}.tar.gz\n")
    return os.path.getsize(archive)


def start(cmd, pattern):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            return proc, m.group(1)
    sys.exit(f"{cmd[0]} did not start")


def runner_env(base, work, ref, echo_url, extra=None):
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.path.join(work, "home"),
        "CI": "true", "GITHUB_ACTIONS": "true", "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
        "RUNNER_TEMP": os.path.join(work, "temp"), "RUNNER_TOOL_CACHE": os.path.join(base, "tool-cache"),
        "GITHUB_OUTPUT": os.path.join(work, "output"), "GITHUB_PATH": os.path.join(work, "path"),
        "GITHUB_STEP_SUMMARY": os.path.join(work, "summary"), "GITHUB_ACTION_PATH": ROOT,
        "ACTION_PATH": ROOT, "QWEN_INSTALL_ACTION_REF": ref, "GITHUB_ACTION_REF": ref,
        "OPENAI_API_KEY": "bench-key-0000", "QWEN_ACTION_BASE_URL": echo_url, "QWEN_ACTION_PROMPT": "hi",
    }
    # The runner's toolchain stays where it is although HOME is fresh.
    env["CARGO_HOME"] = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    env["RUSTUP_HOME"] = os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup"))
    env.update(extra or {})
    for d in ("home", "temp"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    return env


def outputs(env):
    with open(env["GITHUB_OUTPUT"]) as f:
        return dict(l.split("=", 1) for l in f.read().splitlines() if "=" in l and "<<" not in l)


def first_result(base, ref, echo_url, extra=None):
    """Install (release or cargo) and run one prompt; returns seconds to the first result."""
    work = tempfile.mkdtemp(dir=base)
    env = runner_env(base, work, ref, echo_url, extra)
    log = open(os.path.join(base, "steps.log"), "a")
    t0 = time.monotonic()
    install = os.path.join(base, "scripts/action-install.sh")
    subprocess.run(["bash", install], env=env, check=True, stderr=log)
    out = outputs(env)
    if out.get("build") == "true":
        subprocess.run(["bash", install, "--build"], env=env, check=True, stdout=log, stderr=log)
        out = outputs(env)
    env["QWEN_BIN"] = out["qwen-path"]
    run = subprocess.run(["bash", os.path.join(base, "scripts/action-run.sh")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    elapsed = time.monotonic() - t0
    if run.returncode != 0 or "hi" not in run.stdout:
        sys.exit(f"the run failed ({run.returncode}): {run.stdout}")
    shutil.rmtree(work)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qwen", help="package this binary instead of building target/release/qwen")
    parser.add_argument("--echo-server", help="use this echo-server binary instead of building one")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cargo", action="store_true", help="also time the cargo fallback (minutes)")
    args = parser.parse_args()
    build = ["cargo", "build", "--release", "--quiet"]
    build += [] if args.echo_server else ["--example", "echo-server"]
    build += [] if args.qwen else ["--bin", "qwen"]
    if len(build) > 4:
        subprocess.run(build, cwd=ROOT, check=True)
    qwen = args.qwen or os.path.join(ROOT, "target/release/qwen")
    echo_server = args.echo_server or os.path.join(ROOT, "target/release/examples/echo-server")

    with tempfile.TemporaryDirectory() as base:
        # The steps run from a copy, so editing the checkout during a long run cannot change them.
        shutil.copytree(os.path.join(ROOT, "scripts"), os.path.join(base, "scripts"))
        size = release_dir(qwen, os.path.join(base, "releases"))
        http, port = start([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0",
                            "--directory", os.path.join(base, "releases")], r"port (\d+)")
        echo, echo_url = start([echo_server, "--port", "0"],
                               r"(http://\S+)")
        mirror = {"QWEN_INSTALL_BASE_URL": f"http://127.0.0.1:{port}"}
        try:
            rows = []
            cold = []
            for _ in range(args.runs):
                shutil.rmtree(os.path.join(base, "tool-cache"), ignore_errors=True)
                cold.append(first_result(base, VERSION, echo_url, mirror))
            rows.append(("release binary, empty tool cache (cold)", cold))
            warm = [first_result(base, VERSION, echo_url, mirror) for _ in range(args.runs)]
            rows.append(("release binary, tool cache filled (warm)", warm))
            if args.cargo:
                shutil.rmtree(os.path.join(base, "tool-cache"), ignore_errors=True)
                rows.append(("cargo fallback, fresh build (ref `main`)", [first_result(base, "main", echo_url)]))
            print(f"archive: {size / 1e6:.1f} MB")
            print("| path | runs | median | min | max |")
            print("|---|---:|---:|---:|---:|")
            for name, times in rows:
                print(f"| {name} | {len(times)} | {statistics.median(times):.2f} s | {min(times):.2f} s | {max(times):.2f} s |")
        finally:
            http.terminate()
            echo.terminate()


if __name__ == "__main__":
    main()
