#!/usr/bin/env python3
"""Rate-limit benchmark: a batch against a server that allows 10 requests/s and answers 429 beyond.

The server (in this script) keeps a token bucket (10 per second, burst 10), answers an admitted
request after 200 ms and refuses the others at once with HTTP 429, in one of four behaviours:

  headers      OpenAI-style: x-ratelimit-{limit,remaining,reset}-{requests,tokens} on every answer,
               429 body `rate_limit_exceeded`, no Retry-After
  retry-after  only `Retry-After: <whole seconds>` on a 429, no x-ratelimit-* headers
  bare         a bare 429 with a body, nothing else
  tokens       the limit is on tokens (prompt chars / 4 + max_tokens, as OpenAI counts them,
               1,100 per second, burst 1,100: 10 requests/s of these jobs), said in headers

It runs `qwen --jobs FILE --concurrency 50` (no --rpm) and reports lost jobs, the share of requests
answered 429, the wall time and the share of the ideal (the server's allowed rate).

    python3 scripts/bench_ratelimit.py                     # all four scenarios, 300 jobs
    python3 scripts/bench_ratelimit.py --scenario bare --jobs 300
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 10.0          # requests per second
BURST = 10.0
LATENCY = 0.2        # seconds per admitted answer
MAX_TOKENS = 100
TOKEN_RATE = 1100.0  # tokens per second in the token scenario
TOKEN_BURST = 1100.0


def go_duration(seconds):
    """OpenAI's reset format: `1s`, `6m0s`, `20ms`, `1h2m3.5s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = ""
    if h >= 1:
        out += f"{int(h)}h"
    if h >= 1 or m >= 1:
        out += f"{int(m)}m"
    s = round(s, 3)
    out += (f"{s:g}" if s != int(s) else f"{int(s)}") + "s"
    return out


class Bucket:
    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.level, self.at = burst, time.monotonic()
        self.lock = threading.Lock()

    def _refill(self):
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now

    def take(self, cost):
        """(admitted, remaining, seconds until whole, seconds until `cost` is there)."""
        with self.lock:
            self._refill()
            ok = self.level >= cost
            if ok:
                self.level -= cost
            wait = max(0.0, (cost - self.level) / self.rate)
            return ok, self.level, (self.burst - self.level) / self.rate, wait


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.rejected = 0

    def add(self, rejected):
        with self.lock:
            self.requests += 1
            self.rejected += int(rejected)


def make_handler(scenario, bucket, stats):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body, headers):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("content-length", "0"))
            req = json.loads(self.rfile.read(length) or b"{}")
            chars = sum(len(m.get("content", "")) for m in req.get("messages", []))
            prompt_tokens = math.ceil(chars / 4)
            cost = prompt_tokens + int(req.get("max_tokens", MAX_TOKENS)) if scenario == "tokens" else 1
            ok, remaining, full_in, wait = bucket.take(cost)
            stats.add(not ok)
            headers = {}
            if scenario == "headers":
                headers = {
                    "x-ratelimit-limit-requests": str(int(BURST)),
                    "x-ratelimit-remaining-requests": str(int(remaining)),
                    "x-ratelimit-reset-requests": go_duration(full_in),
                    "x-ratelimit-limit-tokens": "1000000",
                    "x-ratelimit-remaining-tokens": "999000",
                    "x-ratelimit-reset-tokens": "60ms",
                }
            elif scenario == "tokens":
                headers = {
                    "x-ratelimit-limit-requests": "10000",
                    "x-ratelimit-remaining-requests": "9999",
                    "x-ratelimit-reset-requests": "6ms",
                    "x-ratelimit-limit-tokens": str(int(TOKEN_BURST)),
                    "x-ratelimit-remaining-tokens": str(int(remaining)),
                    "x-ratelimit-reset-tokens": go_duration(full_in),
                }
            if not ok:
                if scenario == "retry-after":
                    headers["retry-after"] = str(max(1, math.ceil(wait)))
                what = "tokens per min (TPM)" if scenario == "tokens" else "requests per min (RPM)"
                body = {"error": {
                    "message": f"Rate limit reached for {req.get('model')} in organization org-bench on {what}. Please try again in {math.ceil(wait * 1000)}ms.",
                    "type": "tokens" if scenario == "tokens" else "requests",
                    "param": None,
                    "code": "rate_limit_exceeded"}}
                self.reply(429, body, headers)
                return
            time.sleep(LATENCY)
            self.reply(200, {
                "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20,
                          "total_tokens": prompt_tokens + 20},
            }, headers)

    return Handler


def build():
    subprocess.run(["nice", "-n", "19", "cargo", "build", "--release", "--quiet", "--bin", "qwen"],
                   cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "qwen")


def run(qwen, scenario, jobs, concurrency, workdir):
    if scenario == "tokens":
        bucket = Bucket(TOKEN_RATE, TOKEN_BURST)
    else:
        bucket = Bucket(RATE, BURST)
    stats = Stats()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(scenario, bucket, stats))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    job_file = os.path.join(workdir, "jobs.jsonl")
    with open(job_file, "w") as f:
        for i in range(jobs):
            f.write(json.dumps({"prompt": f"prompt number {i:04}: say ok", "max_tokens": MAX_TOKENS}) + "\n")
    out = os.path.join(workdir, f"out-{scenario}.jsonl")
    summary = os.path.join(workdir, f"summary-{scenario}.json")
    for p in (out, summary):
        if os.path.exists(p):
            os.remove(p)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": workdir,
           "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": base_url}
    start = time.monotonic()
    proc = subprocess.run([qwen, "--jobs", job_file, "--output", out, "--summary", summary,
                           "--concurrency", str(concurrency), "--quiet"],
                          env=env, cwd=workdir, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    server.shutdown()
    ok = 0
    with open(out) as f:
        for line in f:
            if json.loads(line).get("is_error") is False:
                ok += 1
    # The ideal: the burst at once, then the allowed rate, plus one answer's latency.
    if scenario == "tokens":
        per_job = math.ceil(len("prompt number 0000: say ok") / 4) + MAX_TOKENS
        ideal = max(0.0, (jobs * per_job - TOKEN_BURST) / TOKEN_RATE) + LATENCY
    else:
        ideal = max(0.0, (jobs - BURST) / RATE) + LATENCY
    return {
        "scenario": scenario,
        "exit": proc.returncode,
        "lost": jobs - ok,
        "requests": stats.requests,
        "rejected_pct": round(100.0 * stats.rejected / max(1, stats.requests), 1),
        "wall_s": round(wall, 1),
        "ideal_s": round(ideal, 1),
        "of_ideal_pct": round(100.0 * ideal / wall, 1),
        "stderr_tail": proc.stderr.strip().splitlines()[-1:] if proc.returncode else [],
    }


BARS = {"headers": (95, 5), "tokens": (95, 5), "retry-after": (90, 10), "bare": (85, 15)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=list(BARS), action="append")
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--qwen", help="a built qwen binary (default: build the release one)")
    args = ap.parse_args()
    qwen = os.path.abspath(args.qwen) if args.qwen else build()
    print("| server behaviour | exit | jobs lost | requests | answered 429 | wall | ideal | of ideal | bars met |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    failed = False
    with tempfile.TemporaryDirectory() as workdir:
        for scenario in args.scenario or list(BARS):
            r = run(qwen, scenario, args.jobs, args.concurrency, workdir)
            min_pct, max_429 = BARS[scenario]
            met = r["exit"] == 0 and r["lost"] == 0 and r["of_ideal_pct"] >= min_pct and r["rejected_pct"] <= max_429
            failed |= not met
            print(f"| {scenario} | {r['exit']} | {r['lost']} of {args.jobs} | {r['requests']} | {r['rejected_pct']} % "
                  f"| {r['wall_s']} s | {r['ideal_s']} s | {r['of_ideal_pct']} % | {'yes' if met else 'NO'} {' '.join(r['stderr_tail'])} |",
                  flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
