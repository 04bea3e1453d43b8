#!/usr/bin/env bash
# Opt-in: qwen's OpenTelemetry export against a real OTLP receiver, Arize Phoenix (PyPI
# `arize-phoenix`, an LLM-tracing server that takes OTLP/HTTP protobuf on its HTTP port and has a
# REST API to read spans back). A batch of three jobs runs against the bundled echo server with a
# CI's TRACEPARENT, an API key and an OTLP header that must appear nowhere in the spans; the spans
# are read back and checked: the batch span is the child of TRACEPARENT, one span per job and one
# per attempt under it, GenAI attributes set, no key, no header value, no prompt.
#
#     bash scripts/otel-test.sh
#
# Phoenix is installed once into a virtual environment ($QWEN_OTEL_VENV, default
# ~/.cache/qwen-otel-phoenix; several hundred MB). Not run by .ci/run: see the README ("Tracing").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PHOENIX_VERSION="20.26.1"
VENV="${QWEN_OTEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen-otel-phoenix}"
KEY="sk-otel-test-key-0123456789"
HEADER_SECRET="otlp-header-secret-4567"
PARENT_TRACE="4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN="00f067aa0ba902b7"

if [ ! -x "$VENV/bin/phoenix" ]; then
    echo "otel-test: installing arize-phoenix $PHOENIX_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "arize-phoenix==$PHOENIX_VERSION"
fi
(cd "$ROOT" && cargo build --locked --quiet --bin qwen --example echo-server)

work="$(mktemp -d)"
# shellcheck source=scripts/lib/server.sh
source "$ROOT/scripts/lib/server.sh"
servers_init "$work" # the servers below are stopped, and $work removed, at exit
PHX_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
ECHO_PORT="$(free_port)"

PHOENIX_WORKING_DIR="$work/phoenix" PHOENIX_PORT="$PHX_PORT" PHOENIX_GRPC_PORT="$GRPC_PORT" \
    PHOENIX_HOST=127.0.0.1 "$VENV/bin/phoenix" serve >"$work/phoenix.log" 2>&1 &
server_track Phoenix $! "$work/phoenix.log"
"$ROOT/target/debug/examples/echo-server" --port "$ECHO_PORT" >"$work/echo.log" 2>&1 &
server_track "echo server" $! "$work/echo.log"

started=$SECONDS
until curl -sf "http://127.0.0.1:$PHX_PORT/healthz" >/dev/null 2>&1; do
    if (( SECONDS - started > 240 )); then
        echo "otel-test: Phoenix did not start" >&2
        tail -20 "$work/phoenix.log" >&2
        exit 1
    fi
    sleep 1
done
echo "otel-test: Phoenix ready in $(( SECONDS - started ))s" >&2

printf '%s\n' '{"id":"a","prompt":"first secret prompt"}' '{"id":"b","prompt":"second"}' \
    '{"id":"c","prompt":"third"}' >"$work/jobs.jsonl"
(
    cd "$work"
    env -i PATH="$PATH" HOME="$work" \
        OPENAI_API_KEY="$KEY" OPENAI_BASE_URL="http://127.0.0.1:$ECHO_PORT/v1" \
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PHX_PORT" \
        OTEL_EXPORTER_OTLP_HEADERS="x-otel-test=$HEADER_SECRET" \
        TRACEPARENT="00-$PARENT_TRACE-$PARENT_SPAN-01" \
        "$ROOT/target/debug/qwen" --jobs jobs.jsonl --output out.jsonl --quiet
)

# Phoenix writes spans asynchronously: poll until all 7 (1 batch + 3 jobs + 3 attempts) are in.
for _ in $(seq 1 30); do
    curl -sf "http://127.0.0.1:$PHX_PORT/v1/projects/default/spans?limit=100" >"$work/spans.json" || true
    if python3 -c 'import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))["data"]) >= 7 else 1)' \
        "$work/spans.json" 2>/dev/null; then
        break
    fi
    sleep 1
done

python3 - "$work/spans.json" "$KEY" "$HEADER_SECRET" "$PARENT_TRACE" "$PARENT_SPAN" <<'PY'
import json, sys

path, key, header_secret, trace, parent = sys.argv[1:]
text = open(path).read()
spans = json.loads(text)["data"]
fail = []
def check(ok, what):
    if not ok:
        fail.append(what)

check(key not in text, "the API key is in a span")
check(header_secret not in text, "an OTLP header value is in a span")
check("first secret prompt" not in text, "a prompt is in a span without content capture")
check(all(s["context"]["trace_id"] == trace for s in spans), "a span is outside the CI's trace")
batch = [s for s in spans if s["name"] == "qwen batch"]
check(len(batch) == 1, f"{len(batch)} batch spans")
if batch:
    check(batch[0]["parent_id"] == parent, "the batch span is not the child of TRACEPARENT")
    bid = batch[0]["context"]["span_id"]
    jobs = [s for s in spans if s["parent_id"] == bid]
    check(len(jobs) == 3, f"{len(jobs)} job spans")
    for job in jobs:
        a = job["attributes"]
        for k, v in [("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
                     ("gen_ai.request.model", "gpt-4o"), ("gen_ai.response.model", "gpt-4o")]:
            check(a.get(k) == v, f"job {a.get('qwen.job.id')}: {k} = {a.get(k)!r}")
        check(isinstance(a.get("gen_ai.usage.input_tokens"), int), "no input tokens")
        check(a.get("gen_ai.response.finish_reasons") == ["stop"], "no finish reasons")
        attempts = [s for s in spans if s["parent_id"] == job["context"]["span_id"]]
        check(len(attempts) == 1, f"job {a.get('qwen.job.id')}: {len(attempts)} attempt spans")
        for at in attempts:
            check(at["attributes"].get("http.response.status_code") == 200, "attempt status")
if fail:
    print("otel-test: FAILED:\n  " + "\n  ".join(fail), file=sys.stderr)
    sys.exit(1)
print(f"otel-test: {len(spans)} spans read back from Phoenix: parent from TRACEPARENT, "
      "one per job and attempt, GenAI attributes set, no key, header or prompt", file=sys.stderr)
PY
echo "otel-test: 1 passed, 0 failed" >&2
