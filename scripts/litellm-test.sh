#!/usr/bin/env bash
# Runs qwen against the LiteLLM proxy (PyPI litellm[proxy], pinned in scripts/litellm-env.sh), the
# gateway many teams put in front of their providers, on loopback, offline: models answered by
# LiteLLM itself (`mock_response`), no database, and deployments with `rpm: 60` that the proxy
# enforces (`enforce_model_rate_limits`: fixed calendar-minute windows, a 429 that says only
# `llm_provider-retry-after: 60`), and a deployment routed to scripts/litellm-upstream.py (started
# here on a free loopback port) for an upstream's 429 relayed as `llm_provider-*` headers, for
# the Batch API through the proxy's `files_settings`, for `--auth-type openai-responses` and
# `--auth-type anthropic` through the proxy's `/v1/responses` and `/v1/messages` (single runs,
# stream-json, 20-job batches with resume; which upstream route each reached is checked), and for
# `total_cost_usd` against the proxy's own price (`x-litellm-response-cost`). The configuration
# is scripts/litellm-config.yaml. Each check is a named case; the last line is
# `litellm: N passed, M failed`, and the exit status is non-zero when any case failed.
#
#   scripts/litellm-test.sh [QWEN_BIN]   the binary to test (default: $QWEN_BIN, else
#                                        target/debug/qwen, built here if missing)
#   LITELLM_READY_TIMEOUT=seconds        how long the proxy may take to answer (default 120)
#   LITELLM_CASE_TIMEOUT=seconds         the limit for each qwen run (default 240)
#   LITELLM_CASES="a b"                  run only these cases
#
# To add a case: write a function `case_NAME` that returns non-zero on failure (use `run_qwen` to
# run qwen hermetically and `pycheck` to assert on its output with Python, both from
# scripts/lib/cases.sh), and list it in CASES.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=scripts/lib/cases.sh
source scripts/lib/cases.sh # and scripts/lib/server.sh

ready_timeout="${LITELLM_READY_TIMEOUT:-120}"
case_timeout="${LITELLM_CASE_TIMEOUT:-240}"
master_key="sk-qwen-ci-litellm-master"
qwen_api_key="$master_key"
qwen_model=mock

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
servers_init "$tmp"

# --- the upstream --------------------------------------------------------------------------------
# scripts/litellm-upstream.py picks a free port and prints `PORT=<n>` once it listens.
upstream_log="$tmp/upstream.log"
python3 "$root/scripts/litellm-upstream.py" 0 >"$tmp/upstream.port" 2>"$upstream_log" &
upstream_pid=$!
server_track upstream "$upstream_pid" "$upstream_log"
for _ in $(seq 100); do
  grep -q '^PORT=' "$tmp/upstream.port" 2>/dev/null && break
  kill -0 "$upstream_pid" 2>/dev/null || break
  sleep 0.1
done
upstream_port="$(sed -n 's/^PORT=//p' "$tmp/upstream.port")"
[[ -n "$upstream_port" ]] || { log "error: the upstream did not start"; tail -n 20 "$upstream_log" >&2; exit 1; }
upstream_url="http://127.0.0.1:$upstream_port/v1"
pycheck_upstream="$upstream_url"

port="$(free_port)"
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
server_track proxy "$proxy_pid" "$proxy_log"

# proxy_ready: the proxy lists every model of the configuration.
proxy_ready() {
  python3 - "$base_url/models" "$master_key" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": f"Bearer {sys.argv[2]}"})
with urllib.request.urlopen(req, timeout=2) as r:
    ids = {m["id"] for m in json.load(r)["data"]}
sys.exit(0 if {"mock", "limited", "window", "upstream", "vllm"} <= ids else 1)
PY
}
server_wait proxy "$proxy_pid" "$base_url/models" "$ready_timeout" "$proxy_log" proxy_ready
log "proxy ready on $base_url after $server_ready_secs s"

# --- helpers for cases (run_qwen and pycheck: scripts/lib/cases.sh) ---------------------------
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

# --- Responses and Messages through the proxy ------------------------------------------------------
# The variables for `--auth-type TYPE` at the proxy with the master key (qwen adds `/responses` to
# OPENAI_BASE_URL and `/v1/messages` to ANTHROPIC_BASE_URL). Where the proxy sends each request
# (checked against litellm 1.108.7, and asserted below through the upstream's request counts):
# `/v1/responses` for `upstream` (openai/) and `vllm` (hosted_vllm/) goes natively to the
# upstream's `/v1/responses`; `/v1/messages` for `vllm` is translated to the upstream's
# `/v1/chat/completions`, and for `upstream` bridged to its `/v1/responses`
# (scripts/litellm-config.yaml cites the source for each).
proto_env() {
  case "$1" in
    openai-responses) echo "OPENAI_BASE_URL=$base_url OPENAI_API_KEY=$master_key" ;;
    anthropic) echo "ANTHROPIC_BASE_URL=http://127.0.0.1:$port ANTHROPIC_API_KEY=$master_key" ;;
    *) echo "OPENAI_BASE_URL=$base_url OPENAI_API_KEY=$master_key" ;;
  esac
}

# requests_seen NAME: saves the upstream's request counts to $tmp/NAME.seen (read by pycheck as
# `seen`, to compare with `upstream_get("/qwen-ci/requests")` after the run).
requests_seen() {
  python3 - "$upstream_url/qwen-ci/requests" >"$tmp/$1.seen" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    print(r.read().decode())
PY
}

# proto_single TYPE MODEL NAME UPSTREAM_PATH: one run, `-o json`: the upstream's answer,
# `is_error: false`, exit 0, and exactly one request reached the upstream, at UPSTREAM_PATH.
proto_single() {
  local type="$1" model="$2" name="$3" want="$4"
  requests_seen "$name"
  # shellcheck disable=SC2046 # proto_env prints VAR=value words without spaces
  run_qwen "$name" $(proto_env "$type") -- --auth-type "$type" -m "$model" -o json "Say hello. $name"
  WANT="$want" pycheck "$name" <<'PY'
import os
if status != 0: fail(f"exit status {status}, expected 0")
doc = json.loads(out)[-1]
if doc.get("is_error") is not False or doc.get("result") != f"upstream: Say hello. {name}":
    fail(f"not the upstream's answer: {doc}")
after = upstream_get("/qwen-ci/requests")
grew = {k: v - seen.get(k, 0) for k, v in after.items() if k.startswith("POST") and v != seen.get(k, 0)}
if grew != {f"POST /v1/{os.environ['WANT']}": 1}:
    fail(f"the upstream saw {grew}, expected one POST /v1/{os.environ['WANT']}")
PY
}

# proto_stream TYPE MODEL NAME: `-o stream-json --include-partial-messages`: the init message,
# then Claude-shaped stream events in order (message_start, content_block_start, the text deltas,
# content_block_stop), the assistant message, message_stop, and the result last; the deltas add up
# to the answer.
proto_stream() {
  local type="$1" model="$2" name="$3"
  # shellcheck disable=SC2046
  run_qwen "$name" $(proto_env "$type") -- --auth-type "$type" -m "$model" -o stream-json \
    --include-partial-messages "Say hello, in a few more words than usual. $name"
  pycheck "$name" <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
docs = [json.loads(l) for l in lines]
kinds = [d["type"] + ":" + (d.get("subtype") or (d.get("event") or {}).get("type", "")) for d in docs]
squeezed = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
want = ["system:init", "stream_event:message_start", "stream_event:content_block_start",
        "stream_event:content_block_delta", "stream_event:content_block_stop", "assistant:",
        "stream_event:message_stop", "result:success"]
if squeezed != want: fail(f"events {squeezed}, expected {want}")
answer = f"upstream: Say hello, in a few more words than usual. {name}"
deltas = "".join(d["event"]["delta"].get("text", "") for d in docs
                 if d["type"] == "stream_event" and d["event"]["type"] == "content_block_delta")
if kinds.count("stream_event:content_block_delta") < 2: fail("the answer did not come in pieces")
result = docs[-1]
if deltas != answer or result.get("result") != answer or result.get("is_error") is not False:
    fail(f"deltas {deltas!r}, result {result}")
PY
}

# proto_batch TYPE MODEL NAME: a 20-job local batch (`--jobs`, concurrency 8): 20 success lines,
# each the upstream's answer to its job; then `--resume`: exit 0, all 20 skipped, and not one
# more request at the upstream.
proto_batch() {
  local type="$1" model="$2" name="$3"
  python3 -c '
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(20):
        f.write(json.dumps({"id": f"j{i}", "prompt": f"{sys.argv[2]} job {i}"}) + "\n")
' "$tmp/$name-jobs.jsonl" "$name"
  local args=(--auth-type "$type" -m "$model" --jobs "$tmp/$name-jobs.jsonl" --output "$tmp/$name-out.jsonl"
    --concurrency 8)
  # shellcheck disable=SC2046
  run_qwen "$name" $(proto_env "$type") -- "${args[@]}" --summary "$tmp/$name-summary.json"
  pycheck "$name" <<'PY' || return 1
if status != 0: fail(f"exit status {status}, expected 0")
rows = {r["id"]: r for r in map(json.loads, open(f"{tmp}/{name}-out.jsonl", encoding="utf-8"))}
for i in range(20):
    r = rows.get(f"j{i}") or {}
    if r.get("is_error") is not False or r.get("result") != f"upstream: {name} job {i}":
        fail(f"j{i}: {r}")
summary = json.load(open(f"{tmp}/{name}-summary.json"))
if summary.get("succeeded") != 20: fail(f"summary: {summary}")
PY
  requests_seen "$name-resume"
  # shellcheck disable=SC2046
  run_qwen "$name-resume" $(proto_env "$type") -- "${args[@]}" --resume --summary "$tmp/$name-resumed.json"
  pycheck "$name-resume" <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
summary = json.load(open(f"{tmp}/{name.removesuffix('-resume')}-resumed.json"))
if summary.get("skipped_resumed") != 20 or summary.get("succeeded") != 0:
    fail(f"the resume ran jobs again: {summary}")
after = upstream_get("/qwen-ci/requests")
if any(v != seen.get(k, 0) for k, v in after.items() if k.startswith("POST")):
    fail("the resume sent requests")
PY
}

case_responses_single() {
  proto_single openai-responses upstream responses-single responses || return 1
  proto_single openai-responses vllm responses-single-vllm responses
}
case_responses_stream() { proto_stream openai-responses upstream responses-stream; }
case_responses_batch() { proto_batch openai-responses upstream responses-batch; }
case_messages_single() {
  proto_single anthropic vllm messages-single chat/completions || return 1
  proto_single anthropic upstream messages-single-bridge responses
}
case_messages_stream() { proto_stream anthropic vllm messages-stream; }
case_messages_batch() { proto_batch anthropic vllm messages-batch; }

# --- cost ---------------------------------------------------------------------------------------
# litellm_cost ROUTE MODEL PROMPT: the proxy's own price of PROMPT on ROUTE (chat, responses,
# messages) for MODEL: the `x-litellm-response-cost` header of a request that does not stream (on
# a stream the header cannot carry it; the proxy then adds `usage.cost` to the stream instead).
litellm_cost() {
  python3 - "$base_url" "$master_key" "$@" <<'PY'
import json, sys, urllib.request
base, key, route, model, prompt = sys.argv[1:6]
message = [{"role": "user", "content": prompt}]
url, body = {
    "chat": ("/chat/completions", {"model": model, "messages": message}),
    "responses": ("/responses", {"model": model, "input": message}),
    "messages": ("/messages", {"model": model, "max_tokens": 100, "messages": message}),
}[route]
req = urllib.request.Request(base + url, data=json.dumps(body).encode(),
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    print(r.headers["x-litellm-response-cost"])
PY
}

# For each wire protocol, a run's `total_cost_usd` is the proxy's price of the same request (its
# `x-litellm-response-cost`), with `cost_source: provider`.
case_cost() {
  local type route model
  for type in openai openai-responses anthropic; do
    case "$type" in
      openai) route=chat model=upstream ;;
      openai-responses) route=responses model=upstream ;;
      anthropic) route=messages model=vllm ;;
    esac
    local prompt="What does this cost? ($type)"
    litellm_cost "$route" "$model" "$prompt" >"$tmp/cost-$type.want" || { log "no price from the proxy"; return 1; }
    # shellcheck disable=SC2046
    run_qwen "cost-$type" $(proto_env "$type") -- --auth-type "$type" -m "$model" -o json "$prompt"
    pycheck "cost-$type" <<'PY' || return 1
want = float(open(f"{tmp}/{name}.want").read())
doc = json.loads(out)[-1]
if status != 0: fail(f"exit status {status}, expected 0")
if not want > 0: fail(f"the proxy priced the request at {want}")
got = doc.get("total_cost_usd")
if not isinstance(got, float) or abs(got - want) > 1e-12 or doc.get("cost_source") != "provider":
    fail(f"total_cost_usd {got} ({doc.get('cost_source')}), the proxy's x-litellm-response-cost {want}")
PY
  done
}

# A 5-job batch on a priced deployment: each line's cost is the proxy's price of its job, and the
# summary's `total_cost_usd` is their sum, from the provider, with no job left without a cost.
case_cost_batch() {
  python3 -c '
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(5):
        f.write(json.dumps({"id": f"c{i}", "prompt": "price me " + "please " * i}) + "\n")
' "$tmp/cost-jobs.jsonl"
  local i
  for i in 0 1 2 3 4; do
    litellm_cost chat upstream "price me $(python3 -c "import sys; print('please ' * int(sys.argv[1]), end='')" "$i")" \
      >>"$tmp/cost-batch.want" || return 1
  done
  run_qwen cost-batch -- -m upstream --jobs "$tmp/cost-jobs.jsonl" --output "$tmp/cost-out.jsonl" \
    --summary "$tmp/cost-summary.json"
  pycheck cost-batch <<'PY'
if status != 0: fail(f"exit status {status}, expected 0")
want = [float(x) for x in open(f"{tmp}/cost-batch.want").read().split()]
rows = {r["id"]: r for r in map(json.loads, open(f"{tmp}/cost-out.jsonl", encoding="utf-8"))}
for i, w in enumerate(want):
    r = rows.get(f"c{i}") or {}
    if r.get("cost_source") != "provider" or abs((r.get("total_cost_usd") or -1) - w) > 1e-12:
        fail(f"c{i}: total_cost_usd {r.get('total_cost_usd')} ({r.get('cost_source')}), the proxy's {w}")
summary = json.load(open(f"{tmp}/cost-summary.json"))
print(f"    5 jobs: total_cost_usd {summary.get('total_cost_usd')} (the proxy's: {sum(want)})", file=sys.stderr)
if abs((summary.get("total_cost_usd") or -1) - sum(want)) > 1e-12 or summary.get("cost_source") != "provider" \
        or summary.get("jobs_without_cost") != 0:
    fail(f"summary: {summary}")
PY
}

CASES=(single wrong-key relayed-hint responses-single responses-stream responses-batch messages-single
  messages-stream messages-batch cost cost-batch batch-api batch-cancel window-batch spent-window-short-wait
  spent-window-waits)
if [[ -n "${LITELLM_CASES:-}" ]]; then read -r -a CASES <<<"$LITELLM_CASES"; fi

run_cases litellm "${CASES[@]}"
