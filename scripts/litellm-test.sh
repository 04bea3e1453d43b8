#!/usr/bin/env bash
# Runs qwen against the LiteLLM proxy (PyPI litellm[proxy], pinned in scripts/litellm-env.sh), the
# gateway many teams put in front of their providers, on loopback, offline: models answered by
# LiteLLM itself (`mock_response`), no database, and deployments with `rpm: 60` that the proxy
# enforces (`enforce_model_rate_limits`: fixed calendar-minute windows, a 429 that says only
# `llm_provider-retry-after: 60`), and a deployment routed to scripts/litellm-upstream.py (started
# here on a free loopback port) for an upstream's 429 relayed as `llm_provider-*` headers and for
# the Batch API through the proxy's `files_settings`. The configuration is
# scripts/litellm-config.yaml. Each check is a named case; the last line is
# `litellm: N passed, M failed`, and the exit status is non-zero when any case failed.
#
#   scripts/litellm-test.sh [QWEN_BIN]   the binary to test (default: $QWEN_BIN, else
#                                        target/debug/qwen, built here if missing)
#   LITELLM_READY_TIMEOUT=seconds        how long the proxy may take to answer (default 120)
#   LITELLM_CASE_TIMEOUT=seconds         the limit for each qwen run (default 240)
#   LITELLM_CASES="a b"                  run only these cases
#
# To add a case: write a function `case_NAME` that returns non-zero on failure (use `run_qwen` to
# run qwen hermetically and `pycheck` to assert on its output with Python), and list it in CASES.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

ready_timeout="${LITELLM_READY_TIMEOUT:-120}"
case_timeout="${LITELLM_CASE_TIMEOUT:-240}"
master_key="sk-qwen-ci-litellm-master"

log() { echo "litellm: $*" >&2; }

# --- the proxy -------------------------------------------------------------------------------------
# Waits for an install that .ci/run started in the background (a lock), or does it now.
env_out="$(scripts/litellm-env.sh --print)"
PYTHON="$(sed -n 's/^PYTHON=//p' <<<"$env_out")"
[[ -x "$PYTHON" ]] || { log "error: the install gave no usable python"; exit 1; }

qwen_bin="${1:-${QWEN_BIN:-}}"
if [[ -z "$qwen_bin" ]]; then
  qwen_bin="$root/target/debug/qwen"
  [[ -x "$qwen_bin" ]] || cargo build --locked --bin qwen >&2
fi
[[ -x "$qwen_bin" ]] || { log "error: no qwen binary at \`$qwen_bin\`"; exit 1; }
qwen_bin="$(cd "$(dirname "$qwen_bin")" && pwd)/$(basename "$qwen_bin")"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/qwen-litellm.XXXXXX")"
proxy_pid=""
upstream_pid=""
cleanup() {
  local status=$?
  if [[ -n "$upstream_pid" ]]; then
    kill "$upstream_pid" 2>/dev/null || true
    wait "$upstream_pid" 2>/dev/null || true
  fi
  if [[ -n "$proxy_pid" ]] && kill -0 "$proxy_pid" 2>/dev/null; then
    kill "$proxy_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the upstream --------------------------------------------------------------------------------
# scripts/litellm-upstream.py picks a free port and prints `PORT=<n>` once it listens.
upstream_log="$tmp/upstream.log"
python3 "$root/scripts/litellm-upstream.py" 0 >"$tmp/upstream.port" 2>"$upstream_log" &
upstream_pid=$!
for _ in $(seq 100); do
  grep -q '^PORT=' "$tmp/upstream.port" 2>/dev/null && break
  kill -0 "$upstream_pid" 2>/dev/null || break
  sleep 0.1
done
upstream_port="$(sed -n 's/^PORT=//p' "$tmp/upstream.port")"
[[ -n "$upstream_port" ]] || { log "error: the upstream did not start"; tail -n 20 "$upstream_log" >&2; exit 1; }
upstream_url="http://127.0.0.1:$upstream_port/v1"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base_url="http://127.0.0.1:$port/v1"
proxy_log="$tmp/proxy.log"
# No database, the model cost map shipped in the package (no download at start), no telemetry
# (`LITELLM_TELEMETRY_DISABLED`, litellm/proxy/telemetry/settings.py), no banner. The upstream's
# URL for the config (`os.environ/QWEN_CI_UPSTREAM_BASE`), and as OPENAI_BASE_URL/OPENAI_API_KEY:
# what `/v1/batches` without a model falls back to (litellm/batches/main.py, `create_batch` and
# `retrieve_batch`: `optional_params.api_base or litellm.api_base or OPENAI_BASE_URL`).
(cd "$tmp" && exec env LITELLM_MASTER_KEY="$master_key" LITELLM_LOCAL_MODEL_COST_MAP=True \
  LITELLM_TELEMETRY_DISABLED=true LITELLM_DONT_SHOW_FEEDBACK_BOX=true \
  QWEN_CI_UPSTREAM_BASE="$upstream_url" OPENAI_BASE_URL="$upstream_url" OPENAI_API_KEY=not-used \
  "$(dirname "$PYTHON")/litellm" --config "$root/scripts/litellm-config.yaml" \
  --host 127.0.0.1 --port "$port" >"$proxy_log" 2>&1) &
proxy_pid=$!

proxy_log_tail() { echo "--- last lines of the proxy log:" >&2; tail -n 30 "$proxy_log" >&2 || true; }
upstream_log_tail() { echo "--- last lines of the upstream log:" >&2; tail -n 15 "$upstream_log" >&2 || true; }

started=$SECONDS
until python3 - "$base_url/models" "$master_key" <<'PY' 2>/dev/null
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": f"Bearer {sys.argv[2]}"})
with urllib.request.urlopen(req, timeout=2) as r:
    ids = {m["id"] for m in json.load(r)["data"]}
sys.exit(0 if {"mock", "limited", "window", "upstream"} <= ids else 1)
PY
do
  if ! kill -0 "$proxy_pid" 2>/dev/null; then
    log "error: the proxy exited before it answered /v1/models"
    proxy_log_tail
    exit 1
  fi
  if ((SECONDS - started > ready_timeout)); then
    log "error: the proxy did not answer $base_url/models within ${ready_timeout}s"
    proxy_log_tail
    exit 1
  fi
  sleep 0.5
done
log "proxy ready on $base_url after $((SECONDS - started)) s"

# --- helpers for cases ---------------------------------------------------------------------------
# run_qwen NAME [VAR=value...] -- ARGS...: runs qwen in a fresh HOME and working directory with only
# the variables it needs (plus the VAR=value given); stdout, stderr, the exit status and the wall
# time go to $tmp/NAME.{out,err,status,secs}. Returns 0.
run_qwen() {
  local name="$1"
  shift
  local extra=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do extra+=("$1"); shift; done
  shift
  local dir="$tmp/$name"
  mkdir -p "$dir/home" "$dir/work"
  local status=0
  local t0
  t0="$(date +%s.%N)"
  (cd "$dir/work" && env -i PATH="$PATH" HOME="$dir/home" LANG=C.UTF-8 \
    OPENAI_BASE_URL="$base_url" OPENAI_API_KEY="$master_key" OPENAI_MODEL=mock "${extra[@]}" \
    timeout "$case_timeout" "$qwen_bin" "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err") || status=$?
  echo "$status" >"$tmp/$name.status"
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)" >"$tmp/$name.secs"
}

# pycheck NAME <<'PY' ... PY: runs the Python on stdin with `out` (stdout text), `err`, `status`
# (qwen's exit code), `secs` (its wall time), `lines` (stdout lines), `fail(message)` and
# `upstream_get(path)` (a GET to scripts/litellm-upstream.py, not through the proxy) defined.
pycheck() {
  python3 -c '
import json, sys
name, tmp = sys.argv[1], sys.argv[2]
def read(ext):
    with open(f"{tmp}/{name}.{ext}", encoding="utf-8") as f:
        return f.read()
out, err, status, secs = read("out"), read("err"), int(read("status")), float(read("secs"))
lines = out.splitlines()
upstream = sys.argv[3]
def upstream_get(path):
    import urllib.request
    with urllib.request.urlopen(upstream + path, timeout=10) as r:
        return json.load(r)
class Failed(Exception):
    pass
def fail(message):
    raise Failed(message)
try:
    exec(sys.stdin.read())
except Failed as e:
    print(f"    {e}", file=sys.stderr)
    print(f"    exit status {status} after {secs}s; stderr: {err.strip()[-800:]!r}", file=sys.stderr)
    print(f"    stdout: {out.strip()[:800]!r}", file=sys.stderr)
    sys.exit(1)
' "$1" "$tmp" "$upstream_url"
}

# spend MODEL: sends requests to MODEL (20 at a time) until the proxy answers 429: its window for
# this calendar minute is spent. Prints how many seconds are left of the minute.
spend() {
  python3 - "$base_url/chat/completions" "$master_key" "$1" <<'PY'
import json, sys, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, key, model = sys.argv[1:4]
body = json.dumps({"model": model, "messages": [{"role": "user", "content": "spend"}]}).encode()
def post(_):
    req = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
with ThreadPoolExecutor(20) as pool:
    for _ in range(10):
        if 429 in list(pool.map(post, range(20))):
            print(f"{60 - time.time() % 60:.1f}")
            sys.exit(0)
sys.exit("the proxy never answered 429")
PY
}

# --- cases ---------------------------------------------------------------------------------------
case_single() {
  run_qwen single -- --json "Say hello."
  pycheck single <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
doc = json.loads(out)
if doc[-1].get("is_error") is not False or "LiteLLM mock" not in doc[-1].get("result", ""):
    fail(f"not the mock's answer: {doc[-1]}")
PY
}

# A key other than the master key, on a proxy without a database: LiteLLM answers
# `400 {"error":{"type":"no_db_connection",...}}`; that is an authentication failure (41).
case_wrong_key() {
  run_qwen wrong-key OPENAI_API_KEY=sk-not-the-master-key -- "Say hello."
  pycheck wrong-key <<'PY'
if status != 41: fail(f"exit status {status}, expected 41 (authentication)")
if "hint:" not in err: fail("no hint")
PY
}

# The window spent, a --max-retry-wait shorter than LiteLLM's 60 s hint: exit 75 at once, saying
# how long the server asked for.
case_spent_window_short_wait() {
  spend limited >/dev/null
  run_qwen spent-short -- --model limited --max-retry-wait 10s "Say hello."
  pycheck spent-short <<'PY'
if status != 75: fail(f"exit status {status}, expected 75")
if "60s" not in err: fail("the message does not say the server asked for 60s")
if secs > 10: fail(f"{secs}s: not at once")
PY
}

# The window spent (still, after the case above, or spent again): a single run waits the 60 s the
# proxy asked for (`llm_provider-retry-after`) and succeeds, instead of spending its retries.
case_spent_window_waits() {
  spend limited >/dev/null
  run_qwen spent-waits -- --model limited --debug "Say hello."
  pycheck spent-waits <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
if "retrying in 60000 ms" not in err: fail("the run did not wait the 60 s the proxy asked for")
if err.count("attempt=") > 3: fail(f"{err.count('attempt=')} attempts: the hint was not followed")
PY
}

# 120 jobs at --concurrency 30, no --rpm, against `rpm: 60` in calendar minutes: nothing lost, and
# done at most 15 s after the start of the window the last 60 jobs need.
case_window_batch() {
  # Start early in a minute, so that the first 60 surely fit in it: the bar is then the next minute.
  local left
  left="$(python3 -c 'import time; print(int(60 - time.time() % 60))')"
  if ((left < 15)); then sleep "$((left + 1))"; fi
  python3 -c '
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(120):
        f.write(json.dumps({"id": f"j{i}", "prompt": f"job {i}"}) + "\n")
' "$tmp/window-jobs.jsonl"
  python3 -c 'import time; print(time.time())' >"$tmp/window.start"
  run_qwen window-batch -- --model window --jobs "$tmp/window-jobs.jsonl" --output "$tmp/window-out.jsonl" \
    --concurrency 30 --summary "$tmp/window-summary.json" --progress-interval 5s
  pycheck window-batch <<'PY'
import math
with open(f"{tmp}/window.start") as f:
    start = float(f.read())
boundary = math.floor(start / 60 + 1) * 60 - start
rows = [json.loads(l) for l in open(f"{tmp}/window-out.jsonl", encoding="utf-8")]
ok = sum(1 for r in rows if r.get("is_error") is False)
summary = json.load(open(f"{tmp}/window-summary.json"))
print(f"    120 jobs: {ok} succeeded in {secs}s; the second window opened at {boundary:.1f}s "
      f"(bar {boundary + 15:.1f}s); {summary.get('rate_limited')} answered 429", file=sys.stderr)
if status != 0: fail(f"exit status {status}, expected 0")
if ok != 120: fail(f"{120 - ok} jobs lost")
if secs > boundary + 15: fail(f"{secs}s, more than 15 s after the second window opened ({boundary:.1f}s)")
PY
}

# An upstream's 429 relayed by the proxy: its `Retry-After: 3` and `x-ratelimit-reset-requests: 3s`
# arrive only as `llm_provider-retry-after`/`llm_provider-x-ratelimit-reset-requests` (the
# deployment has `num_retries: 0`, so LiteLLM does not retry it itself). A single run waits the
# 3 s it was told and succeeds on its second attempt.
case_relayed_hint() {
  run_qwen relayed-hint -- --model upstream --json "Say hello. [429-once] relayed-hint"
  pycheck relayed-hint <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
doc = json.loads(out)[-1]
if doc.get("is_error") is not False or not doc.get("result", "").startswith("upstream: "):
    fail(f"not the upstream's answer: {doc}")
attempts, waited = doc.get("attempts"), doc.get("retry_wait_ms")
print(f"    attempts {attempts}, retry_wait_ms {waited}, {secs}s", file=sys.stderr)
if attempts != 2: fail(f"attempts {attempts}, expected 2 (one 429, then the answer)")
if not isinstance(waited, int) or not 2900 <= waited <= 6000:
    fail(f"retry_wait_ms {waited}: not the 3 s the relayed hint asked for")
PY
}

# The Batch API through the proxy (`files_settings` and the OpenAI fallback to the upstream):
# upload, create, retrieve (the upstream completes a batch on its first retrieve), download, one
# success line per job; `batch status --json` says completed; `fetch --delete-remote` deletes the
# input and output files at the upstream. The ledger is kept in one --state-dir for every step.
case_batch_api() {
  local state="$tmp/batch-state"
  python3 -c '
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(3):
        f.write(json.dumps({"id": f"j{i}", "prompt": f"job {i}"}) + "\n")
' "$tmp/batch-jobs.jsonl"
  run_qwen batch-submit OPENAI_MODEL=upstream -- batch submit "$tmp/batch-jobs.jsonl" --name x \
    --state-dir "$state" --wait --poll-interval 1s --output "$tmp/batch-results.jsonl"
  pycheck batch-submit <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
rows = [json.loads(l) for l in open(f"{tmp}/batch-results.jsonl", encoding="utf-8")]
got = {r.get("id"): r for r in rows}
if len(rows) != 3 or set(got) != {"j0", "j1", "j2"}: fail(f"{len(rows)} lines for {sorted(got)}, expected j0 j1 j2")
for i in range(3):
    r = got[f"j{i}"]
    if r.get("is_error") is not False or r.get("result") != f"upstream: job {i}":
        fail(f"j{i} is not the upstream's answer: {r}")
PY
  run_qwen batch-status -- batch status x --state-dir "$state" --json
  pycheck batch-status <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
doc = json.loads(out)
part = (doc.get("parts") or [{}])[0]
if doc.get("status") != "completed" or part.get("request_counts", {}).get("completed") != 3:
    fail(f"not completed with 3 requests: {doc}")
PY
  run_qwen batch-delete -- batch fetch x --state-dir "$state" --delete-remote --output "$tmp/batch-again.jsonl"
  pycheck batch-delete <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
if len(open(f"{tmp}/batch-again.jsonl", encoding="utf-8").read().splitlines()) != 3: fail("not 3 lines")
batch = next(b for b in upstream_get("/batches")["data"] if (b.get("metadata") or {}).get("qwen_batch") == "x")
left = {f["id"] for f in upstream_get("/files")["data"]}
for field in ("input_file_id", "output_file_id"):
    if batch[field] in left: fail(f"the {field} is still at the upstream after --delete-remote")
PY
}

# A batch that does not finish (its input holds the upstream's `[hold]` marker), cancelled through
# the proxy: `batch cancel` exits 0, `batch status --json` says cancelled, and `batch fetch` gives
# a `batch_cancelled` line per job, exit 1.
case_batch_cancel() {
  local state="$tmp/batch-state"
  printf '%s\n' '{"id": "h0", "prompt": "wait [hold]"}' '{"id": "h1", "prompt": "wait [hold]"}' >"$tmp/hold-jobs.jsonl"
  run_qwen cancel-submit OPENAI_MODEL=upstream -- batch submit "$tmp/hold-jobs.jsonl" --name held --state-dir "$state"
  pycheck cancel-submit <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
PY
  run_qwen cancel-cancel -- batch cancel held --state-dir "$state"
  pycheck cancel-cancel <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
PY
  run_qwen cancel-status -- batch status held --state-dir "$state" --json
  pycheck cancel-status <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
doc = json.loads(out)
if doc.get("status") != "cancelled": fail(f"not cancelled: {doc}")
PY
  run_qwen cancel-fetch -- batch fetch held --state-dir "$state" --output "$tmp/hold-results.jsonl"
  pycheck cancel-fetch <<'PY'
if status != 1: fail(f"exit status {status}, expected 1")
rows = [json.loads(l) for l in open(f"{tmp}/hold-results.jsonl", encoding="utf-8")]
types = sorted((r.get("id"), (r.get("error") or {}).get("type")) for r in rows)
if types != [("h0", "batch_cancelled"), ("h1", "batch_cancelled")]: fail(f"lines: {types}")
PY
}

CASES=(single wrong-key relayed-hint batch-api batch-cancel window-batch spent-window-short-wait spent-window-waits)
if [[ -n "${LITELLM_CASES:-}" ]]; then read -r -a CASES <<<"$LITELLM_CASES"; fi

passed=0
failed=0
failed_names=()
for name in "${CASES[@]}"; do
  t0=$SECONDS
  if "case_${name//-/_}"; then
    passed=$((passed + 1))
    log "ok   $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    log "FAIL $name ($((SECONDS - t0)) s)"
  fi
done

if ((failed > 0)); then
  log "failed: ${failed_names[*]}"
  kill -0 "$proxy_pid" 2>/dev/null || { log "the proxy is no longer running"; proxy_log_tail; }
  kill -0 "$upstream_pid" 2>/dev/null || { log "the upstream is no longer running"; upstream_log_tail; }
fi
echo "litellm: $passed passed, $failed failed"
((failed == 0))
