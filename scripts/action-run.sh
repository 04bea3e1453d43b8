#!/usr/bin/env bash
# The "Run qwen" step of action.yml, kept as a file so it can be read, linted and tested outside GitHub.
#
# Inputs arrive as QWEN_ACTION_* environment variables (never spliced into the script, so an input
# cannot inject shell code); the key arrives as OPENAI_API_KEY and is never put on a command line.
# Writes the outputs result / exit-code / results-file to $GITHUB_OUTPUT and exits with qwen's code.
# QWEN_BIN overrides the binary (the tests point it at a fresh build).
set -uo pipefail

qwen=${QWEN_BIN:-qwen}
prompt=${QWEN_ACTION_PROMPT:-}
prompt_file=${QWEN_ACTION_PROMPT_FILE:-}
jobs=${QWEN_ACTION_JOBS:-}
model=${QWEN_ACTION_MODEL:-}
base_url=${QWEN_ACTION_BASE_URL:-}
format=${QWEN_ACTION_OUTPUT_FORMAT:-}
tmp=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
github_output=${GITHUB_OUTPUT:-/dev/null}

code=2
# Whatever happens below, exit-code is reported and is the step's own status.
trap 'echo "exit-code=$code" >>"$github_output"; exit "$code"' EXIT

# `::error::` with the toolkit's escaping of the message (%, CR, LF).
annotate() {
  local message=${1//'%'/'%25'}
  message=${message//$'\r'/'%0D'}
  message=${message//$'\n'/'%0A'}
  echo "::error title=qwen action::$message" >&2
}

# A delimiter for a multi-line output value that the value itself does not contain.
delimiter_for() {
  local file=$1 delim
  while :; do
    delim="qwen_eof_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    grep -qF -- "$delim" "$file" || break
  done
  printf '%s' "$delim"
}

args=()
[ -n "$model" ] && args+=(--model "$model")
[ -n "$base_url" ] && args+=(--openai-base-url "$base_url")
extra=()
read -r -a extra <<<"${QWEN_ACTION_EXTRA_ARGS:-}"

if [ -n "$jobs" ]; then
  if [ -n "$prompt" ] || [ -n "$prompt_file" ]; then
    annotate "give either jobs or prompt/prompt-file, not both"
    exit 2
  fi
  results="$tmp/qwen-results.jsonl"
  case "$format" in
    "" | jsonl) ;;
    openai-batch) args+=(--output-format openai-batch) ;;
    *)
      annotate "output-format '$format' does not apply to a batch: use jsonl or openai-batch"
      exit 2
      ;;
  esac
  # A results file left by an earlier step of this job would be refused (exit 42); --resume keeps it.
  case " ${extra[*]} " in
    *" --resume "*) ;;
    *) rm -f -- "$results" ;;
  esac
  echo "results-file=$results" >>"$github_output"
  echo "result=" >>"$github_output"
  "$qwen" --jobs "$jobs" --output "$results" "${args[@]}" "${extra[@]}" </dev/null
  code=$?
  exit "$code"
fi

case "$format" in
  "" | text | json | stream-json) [ -n "$format" ] && args+=(--output-format "$format") ;;
  *)
    annotate "output-format '$format' is not one of text, json, stream-json (for one prompt)"
    exit 2
    ;;
esac
[ -n "$prompt" ] && args+=(--prompt "$prompt")
input=/dev/null
if [ -n "$prompt_file" ]; then
  if [ ! -r "$prompt_file" ]; then
    annotate "prompt-file '$prompt_file' cannot be read"
    code=42
    exit "$code"
  fi
  input=$prompt_file
fi

out="$tmp/qwen-result.txt"
# stdout goes to the log and to the output file; stderr (diagnostics) to the log only.
"$qwen" "${args[@]}" "${extra[@]}" <"$input" | tee "$out"
code=${PIPESTATUS[0]}

delim=$(delimiter_for "$out")
{
  echo "result<<$delim"
  cat -- "$out"
  # The value ends at the newline before the delimiter: add one when the text has none.
  [ -s "$out" ] && [ -n "$(tail -c1 -- "$out")" ] && echo
  echo "$delim"
  echo "results-file="
} >>"$github_output"
exit "$code"
