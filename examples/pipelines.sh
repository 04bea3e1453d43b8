#!/usr/bin/env bash
# Shell pipelines with qwen, runnable against the bundled echo server: ./examples/pipelines.sh
# Each recipe is a plain command you can copy; the echo server answers with your own prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "these recipes use jq: apt-get install jq (or brew install jq)" >&2; exit 1; }

cargo build --quiet --bin qwen --example echo-server
PATH="$PWD/target/debug:$PATH"
log=$(mktemp)
work=$(mktemp -d)
./target/debug/examples/echo-server --port 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$log" "$work"' EXIT
for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
OPENAI_BASE_URL=$(grep -o 'http://[^ ]*' "$log")
export OPENAI_API_KEY=local-test-key OPENAI_BASE_URL
step() { printf '\n--- %s\n' "$*" >&2; }

step "review a diff: stdin comes first, then the prompt"
git show --stat HEAD | qwen "Review this change"     # in a PR: git diff origin/main... | qwen ...

step "the answer alone, from the JSON document"
echo "Summarize: qwen is a headless runner" | qwen --json | jq -r '.[-1].result'

step "what a run cost, and whether it failed"
qwen --json "hi" | jq '.[-1] | {is_error, usage, attempts, duration_ms}'

step "fail the pipeline on an error, keep the message"
if ! answer=$(qwen --json "check" | jq -er '.[-1] | select(.is_error | not) | .result'); then
  echo "qwen failed" >&2
fi
echo "answer: ${answer:-}"

step "a batch from a file, one prompt per line, without xargs"
printf '%s\n' "Name a colour" "Name a fruit" "Name a river" >"$work/prompts.txt"
while IFS= read -r prompt; do
  [ -n "$prompt" ] || continue
  # </dev/null: qwen must not read the loop's own stdin (the rest of the file)
  qwen --json "$prompt" </dev/null | jq -c '.[-1] | {prompt: $p, result, is_error, usage}' --arg p "$prompt"
done <"$work/prompts.txt" | tee "$work/results.jsonl"

step "sum tokens over a JSON Lines results file (the same works on \`qwen --jobs ... --output\` files)"
jq -s '{jobs: length,
        failed: map(select(.is_error)) | length,
        input_tokens: map(.usage.input_tokens // 0) | add,
        output_tokens: map(.usage.output_tokens // 0) | add}' "$work/results.jsonl"

step "stream text deltas as they arrive"
qwen -o stream-json --include-partial-messages "streaming works" \
  | jq -rj 'select(.type=="stream_event") | .event.delta.text // empty'
echo

step "the exit code tells CI what happened (75 = temporary: retry the step later)"
set +e
OPENAI_BASE_URL=http://127.0.0.1:9/v1 qwen --retries 0 "unreachable" 2>/dev/null
echo "exit code: $?"
