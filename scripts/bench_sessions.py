#!/usr/bin/env python3
"""One-shot cost of recording a conversation: `qwen hi` against the bundled echo server with no
latency, recording off (`--chat-recording=false`), on (the default, a new session each run), and
resuming a two-message session (`-r ID`). The three alternate run by run, so that a busy machine
slows them alike. Wall time from this script, peak RSS from GNU time (`/usr/bin/time -v`).

    python3 scripts/bench_sessions.py [--runs 100] [--qwen BIN]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GNU_TIME = "/usr/bin/time"  # Debian package `time`


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--qwen", help="the qwen binary (default: build target/release/qwen)")
    args = parser.parse_args()
    if not os.path.exists(GNU_TIME):
        sys.exit("needs GNU time at /usr/bin/time (apt-get install time)")
    if args.qwen:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "echo-server"], cwd=ROOT, check=True)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "qwen", "--example", "echo-server"],
                       cwd=ROOT, check=True)
    qwen = os.path.abspath(args.qwen) if args.qwen else os.path.join(ROOT, "target/release/qwen")
    server = subprocess.Popen([os.path.join(ROOT, "target/release/examples/echo-server"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base_url = re.search(r"(http://\S+)", server.stdout.readline()).group(1)
    try:
        with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as cwd:
            env = {"PATH": os.environ.get("PATH", ""), "HOME": home,
                   "OPENAI_API_KEY": "bench-key-0000", "OPENAI_BASE_URL": base_url}

            def quiet(cmd):
                subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)

            quiet([qwen, "--session-id", "bench", "seed"])
            cases = {
                "`qwen --chat-recording=false hi` (off)": [qwen, "--chat-recording=false", "hi"],
                "`qwen hi` (on: a new session)": [qwen, "hi"],
                "`qwen -r ID --chat-recording=false hi` (a 2-message session read)":
                    [qwen, "-r", "bench", "--chat-recording=false", "hi"],
            }
            walls = {name: [] for name in cases}
            for i in range(args.runs + 10):
                for name, cmd in cases.items():
                    start = time.monotonic()
                    quiet(cmd)
                    if i >= 10:
                        walls[name].append((time.monotonic() - start) * 1000)
            print("| command | median wall | p90 wall | peak RSS |")
            print("|---|---:|---:|---:|")
            for name, cmd in cases.items():
                timing = os.path.join(home, "time.txt")
                subprocess.run([GNU_TIME, "-v", "-o", timing] + cmd, env=env, cwd=cwd,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
                with open(timing) as f:
                    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read()).group(1))
                w = sorted(walls[name])
                print(f"| {name} | {statistics.median(w):.1f} ms | {w[int(len(w) * 0.9)]:.1f} ms "
                      f"| {rss_kib / 1024:.1f} MiB |")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
