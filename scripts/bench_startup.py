#!/usr/bin/env python3
"""Start-up cost of one prompt: `qwen hi` against the bundled echo server with no latency, next to
`curl` sending the same streaming request. Wall time over repeated runs (after a warm-up), and peak
memory of each process measured by GNU time.

    python3 scripts/bench_startup.py [--runs 50] [--qwen BIN] [--otel]

`--qwen BIN` measures another build (say, an older one) beside it; `--otel` adds the same run with
OpenTelemetry export on (to a local receiver that answers 200 at once) and with a TRACEPARENT only.
"""
import argparse
import http.server
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GNU_TIME = "/usr/bin/time"  # Debian package `time`
BODY = ('{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},'
        '"messages":[{"role":"user","content":"hi"}]}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--qwen", action="append", default=[], help="another qwen binary to measure too")
    parser.add_argument("--otel", action="store_true", help="also measure with OpenTelemetry export on")
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
            qwen = os.path.join(ROOT, "target/release/qwen")
            commands = {
                "qwen hi": [qwen, "hi"],
                "curl -sN … /chat/completions": ["curl", "-sN", "-H", "Authorization: Bearer bench-key-0000",
                                                 "-H", "Content-Type: application/json", "-d", BODY,
                                                 base_url + "/chat/completions"],
            }
            for other in args.qwen:
                commands[f"{other} hi"] = [other, "hi"]
            envs = {}
            if args.otel:
                sink = otlp_sink()
                envs["qwen hi (OTel export on)"] = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink}
                envs["qwen hi (TRACEPARENT only)"] = {
                    "TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
                for name in envs:
                    commands[name] = [qwen, "hi"]
            print("| command | median wall | p90 wall | peak RSS |")
            print("|---|---:|---:|---:|")
            base_env = env
            for name, cmd in commands.items():
                env = dict(base_env, **envs.get(name, {}))
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


def otlp_sink():
    """A local OTLP/HTTP receiver that answers 200 at once (what a nearby collector costs)."""
    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


if __name__ == "__main__":
    main()
