#!/usr/bin/env bash
# Runs qwen for real against the echo server that ships in examples/, with no account and no network.
# Usage: ./examples/try-local.sh ["your prompt"]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin qwen --example echo-server
log=$(mktemp)
./target/debug/examples/echo-server --port 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
base_url=$(grep -o 'http://[^ ]*' "$log")
echo "echo server at $base_url" >&2
prompt=${1:-"Hello from qwen"}
export OPENAI_API_KEY=local-test-key OPENAI_BASE_URL="$base_url"
echo "--- text:" >&2
./target/debug/qwen "$prompt"
echo "--- json (the last message is the result):" >&2
echo "$prompt" | ./target/debug/qwen --json
