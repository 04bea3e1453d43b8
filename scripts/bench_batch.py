#!/usr/bin/env python3
"""Batch benchmark: qwen against the bundled echo server with a fixed latency.

Reports achieved throughput against the ideal (concurrency / latency), CPU time per request and
peak memory (max RSS) of the qwen process, for each job count given.

    python3 scripts/bench_batch.py                      # 10,000 and 100,000 jobs, concurrency 100, 50 ms
    python3 scripts/bench_batch.py --jobs 10000 --concurrency 100 --latency-ms 50
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"  # Debian package `time`
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "qwen", "--example", "echo-server"],
        cwd=ROOT, check=True)
    return (os.path.join(ROOT, "target", "release", "qwen"),
            os.path.join(ROOT, "target", "release", "examples", "echo-server"))


def start_server(binary, latency_ms):
    proc = subprocess.Popen([binary, "--port", "0", "--latency-ms", str(latency_ms)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        sys.exit(f"echo server did not start: {line!r}")
    return proc, match.group(1)


def run_once(qwen, base_url, jobs, concurrency, latency_ms, workdir):
    job_file = os.path.join(workdir, f"jobs-{jobs}.jsonl")
    with open(job_file, "w") as f:
        for i in range(jobs):
            f.write(json.dumps({"prompt": f"prompt number {i}: say something short"}) + "\n")
    out = os.path.join(workdir, f"out-{jobs}.jsonl")
    if os.path.exists(out):
        os.remove(out)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": workdir,
           "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": base_url}
    # GNU time measures the qwen process itself (a forked Python child would report the
    # interpreter's own peak RSS when it is larger).
    timing = os.path.join(workdir, "time.txt")
    start = time.monotonic()
    proc = subprocess.run([GNU_TIME, "-f", "%M %U %S", "-o", timing,
                           qwen, "--jobs", job_file, "--output", out,
                           "--concurrency", str(concurrency), "--quiet"],
                          env=env, cwd=workdir, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    stderr = proc.stderr
    code = proc.returncode
    with open(timing) as f:
        max_rss_kib, user, system = f.read().split()[-3:]
    with open(out) as f:
        lines = sum(1 for _ in f)
    if code != 0 or lines != jobs:
        sys.exit(f"run failed: exit {code}, {lines}/{jobs} lines\n{stderr}")
    cpu = float(user) + float(system)
    ideal = concurrency / (latency_ms / 1000.0)
    achieved = jobs / wall
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "wall_s": round(wall, 2),
        "throughput_rps": round(achieved, 1),
        "ideal_rps": round(ideal, 1),
        "of_ideal_pct": round(100 * achieved / ideal, 1),
        "cpu_ms_per_request": round(1000 * cpu / jobs, 3),
        "peak_rss_mib": round(int(max_rss_kib) / 1024, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, action="append", help="job counts (repeatable)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    counts = args.jobs or [10_000, 100_000]
    if not os.path.exists(GNU_TIME):
        sys.exit("needs GNU time at /usr/bin/time (apt-get install time)")
    qwen, server_bin = build()
    server, base_url = start_server(server_bin, args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            print("| jobs | concurrency | latency | wall | throughput | ideal | of ideal | CPU/request | peak RSS |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for jobs in counts:
                r = run_once(qwen, base_url, jobs, args.concurrency, args.latency_ms, workdir)
                print(f"| {r['jobs']:,} | {r['concurrency']} | {r['latency_ms']} ms | {r['wall_s']} s "
                      f"| {r['throughput_rps']} req/s | {r['ideal_rps']} req/s | {r['of_ideal_pct']} % "
                      f"| {r['cpu_ms_per_request']} ms | {r['peak_rss_mib']} MiB |", flush=True)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
