#!/usr/bin/env python3
"""Start-up cost of one prompt: `qwen hi` against the bundled echo server with no latency, next to
`curl` sending the same streaming request. Wall time over repeated runs (after a warm-up), and peak
memory of each process measured by GNU time.

    python3 scripts/bench_startup.py [--runs 50]
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
BODY = ('{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},'
        '"messages":[{"role":"user","content":"hi"}]}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if not os.path.exists(GNU_TIME):
        sys.exit("needs GNU time at /usr/bin/time (apt-get install time)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "qwen", "--example", "echo-server"],
                   cwd=ROOT, check=True)
    server = subprocess.Popen([os.path.join(ROOT, "target/release/examples/echo-server"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base_url = re.search(r"(http://\S+)", server.stdout.readline()).group(1)
    try:
        with tempfile.TemporaryDirectory() as home:
            env = {"PATH": os.environ.get("PATH", ""), "HOME": home,
                   "OPENAI_API_KEY": "bench-key-0000", "OPENAI_BASE_URL": base_url}
            commands = {
                "qwen hi": [os.path.join(ROOT, "target/release/qwen"), "hi"],
                "curl -sN … /chat/completions": ["curl", "-sN", "-H", "Authorization: Bearer bench-key-0000",
                                                 "-H", "Content-Type: application/json", "-d", BODY,
                                                 base_url + "/chat/completions"],
            }
            print("| command | median wall | p90 wall | peak RSS |")
            print("|---|---:|---:|---:|")
            for name, cmd in commands.items():
                walls = []
                for i in range(args.runs + 10):
                    start = time.monotonic()
                    subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
                    if i >= 10:
                        walls.append((time.monotonic() - start) * 1000)
                timing = os.path.join(home, "rss.txt")
                subprocess.run([GNU_TIME, "-f", "%M", "-o", timing] + cmd, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
                with open(timing) as f:
                    rss_kib = int(f.read().split()[-1])
                walls.sort()
                print(f"| `{name}` | {statistics.median(walls):.1f} ms | {walls[int(len(walls) * 0.9)]:.1f} ms "
                      f"| {rss_kib / 1024:.1f} MiB |")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
