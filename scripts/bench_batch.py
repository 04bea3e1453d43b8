#!/usr/bin/env python3
"""Batch benchmark: qwen against the bundled echo server with a fixed latency.

Reports achieved throughput against the ideal (concurrency / latency), CPU time per request and
peak memory (max RSS) of the qwen process, for each job count given.

    python3 scripts/bench_batch.py                      # 10,000 and 100,000 jobs, concurrency 100, 50 ms
    python3 scripts/bench_batch.py --jobs 10000 --concurrency 100 --latency-ms 50
    python3 scripts/bench_batch.py --jobs 1000000 --concurrency 1000 --latency-ms 500   # ~9 minutes

While a run goes on, the qwen process's resident memory is sampled (from /proc) each time the
number of finished jobs reaches a power of ten from 10,000 up: the memory curve of one run.
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
        ["nice", "-n", "19", "cargo", "build", "--release", "--quiet", "--bin", "qwen", "--example", "echo-server"],
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
    errors = open(os.path.join(workdir, "stderr.txt"), "w+")
    proc = subprocess.Popen([GNU_TIME, "-f", "%M %U %S", "-o", timing,
                             qwen, "--jobs", job_file, "--output", out,
                             "--concurrency", str(concurrency), "--quiet"],
                            env=env, cwd=workdir, stderr=errors, text=True)
    curve = sample_rss(proc, out, jobs)
    wall = time.monotonic() - start
    errors.seek(0)
    stderr = errors.read()
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
        "rss_curve": curve,
    }


def qwen_pid(time_pid):
    """The pid of qwen, the child of GNU time."""
    try:
        with open(f"/proc/{time_pid}/task/{time_pid}/children") as f:
            children = f.read().split()
        return int(children[0]) if children else None
    except OSError:
        return None


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def sample_rss(proc, out, jobs):
    """Wait for `proc`; meanwhile note qwen's RSS when the finished jobs (result lines) first
    reach 10,000, 100,000, 1,000,000 … (and the last sample before the end)."""
    marks = [m for m in (10_000, 100_000, 1_000_000, 10_000_000) if m <= jobs]
    curve = {}
    lines, offset, pid, last = 0, 0, None, None
    while proc.poll() is None:
        time.sleep(0.2)
        pid = pid or qwen_pid(proc.pid)
        if pid is None or not os.path.exists(out):
            continue
        with open(out, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        lines += chunk.count(b"\n")
        rss = rss_mib(pid)
        if rss is not None:
            last = (lines, rss)
        for m in marks:
            if m not in curve and lines >= m and rss is not None:
                curve[m] = rss
    if last and marks and marks[-1] not in curve:
        curve[marks[-1]] = last[1]
    return curve


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
            curves = []
            for jobs in counts:
                r = run_once(qwen, base_url, jobs, args.concurrency, args.latency_ms, workdir)
                print(f"| {r['jobs']:,} | {r['concurrency']} | {r['latency_ms']} ms | {r['wall_s']} s "
                      f"| {r['throughput_rps']} req/s | {r['ideal_rps']} req/s | {r['of_ideal_pct']} % "
                      f"| {r['cpu_ms_per_request']} ms | {r['peak_rss_mib']} MiB |", flush=True)
                curves.append((jobs, r["rss_curve"]))
            print()
            print("| run | RSS after 10k jobs | after 100k | after 1M |")
            print("|---:|---:|---:|---:|")
            for jobs, curve in curves:
                cells = [f"{curve[m]} MiB" if m in curve else "-" for m in (10_000, 100_000, 1_000_000)]
                print(f"| {jobs:,} jobs | " + " | ".join(cells) + " |", flush=True)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
