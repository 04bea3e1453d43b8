#!/usr/bin/env bash
# The "Run qwen" step of action.yml, kept as a file so it can be read, linted and tested outside GitHub.
#
# Inputs arrive as QWEN_ACTION_* environment variables (never spliced into the script, so an input
# cannot inject shell code); the key arrives as OPENAI_API_KEY and is never put on a command line.
# Writes the outputs result / response / response-file / exit-code / results-file to $GITHUB_OUTPUT
# and exits with qwen's code. QWEN_BIN overrides the binary (the tests point it at a fresh build or a
# fake that records its arguments).
#
#   action-run.sh          mask the secrets, map the inputs to qwen flags, run qwen, set the outputs
#   action-run.sh --mask   only register the secrets with ::add-mask:: (the action's first step)
#
# `input`, `file_input` and `custom-headers` are YAML (or JSON) maps: this script never reads them.
# qwen does, with a real YAML parser and actions/ai-inference v2's rules (`--ai-inference-inputs`:
# it takes the text from the same QWEN_ACTION_* variables, so no value is ever on a command line).
set -uo pipefail

qwen=${QWEN_BIN:-qwen}
tmp=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
github_output=${GITHUB_OUTPUT:-/dev/null}
# GitHub's limit for one step's outputs is 1 MB; an answer over 256 KiB goes to response-file only.
max_output_bytes=262144

code=2
outputs_done=false
# Whatever happens below, exit-code is reported and is the step's own status.
# shellcheck disable=SC2329 # called by the EXIT trap
finish() {
  if [ "$outputs_done" = false ] && [ "${mask_only:-false}" = false ]; then
    echo "exit-code=$code" >>"$github_output"
  fi
  exit "$code"
}
trap finish EXIT

# The toolkit's escaping of a workflow command's data (%, CR, LF).
escape_data() {
  local s=${1//'%'/'%25'}
  s=${s//$'\r'/'%0D'}
  printf '%s' "${s//$'\n'/'%0A'}"
}

# `::error::` for a problem with the action's inputs. Never called with a secret.
annotate() {
  echo "::error title=qwen action::$(escape_data "$1")" >&2
}

# Register a secret with the runner: the whole value, and each line of a multi-line value.
mask() {
  local value=$1 line
  [ -n "$value" ] || return 0
  echo "::add-mask::$(escape_data "$value")" >&2
  if [[ $value == *$'\n'* ]]; then
    while IFS= read -r line; do
      [ -n "$line" ] && echo "::add-mask::$(escape_data "$line")" >&2
    done <<<"$value"
  fi
}

trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# ---- masking: first, before anything else can print --------------------------------------------------
headers_text=${QWEN_ACTION_CUSTOM_HEADERS:-}
mask "${OPENAI_API_KEY:-}"
# The mask step also gets both key inputs, in case the one not used is another secret.
mask "${QWEN_ACTION_TOKEN:-}"
mask "${QWEN_ACTION_API_KEY:-}"
# v2's MCP token is never used, but it is a secret all the same.
mask "${QWEN_ACTION_GITHUB_MCP_TOKEN:-}"
# custom-headers before qwen is installed: the whole text, each line, and what follows each line's
# first `:` (unquoted), so that the "Run qwen" step's listing of its environment shows none of it.
# qwen masks each header value itself once it has read the map (a one-line JSON object's values).
if [ -n "$headers_text" ]; then
  mask "$headers_text"
  while IFS= read -r line; do
    [[ $line == *:* ]] || continue
    value=$(trim "${line#*:}")
    value=${value%,}
    value=${value%\}}
    value=$(trim "$value")
    [[ $value == \"*\" || $value == \'*\' ]] && value=${value:1:${#value}-2}
    mask "$value"
  done <<<"$headers_text"
fi
mask_only=false
if [ "${1:-}" = "--mask" ]; then
  mask_only=true
  code=0
  exit 0
fi

# ---- one input, one flag ---------------------------------------------------------------------------
prompt=${QWEN_ACTION_PROMPT:-}
prompt_file=${QWEN_ACTION_PROMPT_FILE:-}
jobs=${QWEN_ACTION_JOBS:-}
model=${QWEN_ACTION_MODEL:-}
base_url=${QWEN_ACTION_BASE_URL:-}
endpoint=${QWEN_ACTION_ENDPOINT:-}
format=${QWEN_ACTION_OUTPUT_FORMAT:-}
system_prompt=${QWEN_ACTION_SYSTEM_PROMPT:-}
system_prompt_file=${QWEN_ACTION_SYSTEM_PROMPT_FILE:-}
max_tokens=${QWEN_ACTION_MAX_TOKENS:-}
max_completion_tokens=${QWEN_ACTION_MAX_COMPLETION_TOKENS:-}
temperature=${QWEN_ACTION_TEMPERATURE:-}
top_p=${QWEN_ACTION_TOP_P:-}
vars_text=${QWEN_ACTION_INPUT:-}
file_vars_text=${QWEN_ACTION_FILE_INPUT:-}

usage_error() {
  annotate "$1"
  code=2
  exit 2
}

# A file input that cannot be read (missing, unreadable, a directory): exit 42 with MESSAGE.
require_readable() {
  local path=$1 message=$2
  if [ ! -r "$path" ] || [ -d "$path" ]; then
    annotate "$message"
    code=42
    exit 42
  fi
}

# The door for the one file this script opens for qwen (a plain prompt-file given with a prompt, as
# standard input), the same rule as qwen's for the files it reads: a regular file, not under /proc,
# /sys or /dev, and no symlink inside the workspace (the working directory) that leads out of it.
stdin_file_door() {
  local path=$1 ws cur part next target
  ws=$(pwd -P)
  case $path in
    /*) cur="" ;;
    *) cur=$ws ;;
  esac
  local -a parts=()
  IFS=/ read -r -d '' -a parts < <(printf '%s\0' "$path")
  for part in "${parts[@]}"; do
    case $part in
      "" | .) continue ;;
      ..)
        cur=${cur%/*}
        continue
        ;;
    esac
    next="$cur/$part"
    if [ -L "$next" ]; then
      target=$(readlink -f -- "$next") || target=""
      if [[ $next == "$ws"/* ]] && [[ -z $target || ($target != "$ws" && $target != "$ws"/*) ]]; then
        annotate "prompt-file '$path' goes through a link that leads out of the workspace: refused"
        code=42
        return 42
      fi
      cur=$target
    else
      cur=$next
    fi
  done
  case $cur/ in
    /proc/* | /sys/* | /dev/*)
      annotate "prompt-file '$path' is a kernel file: refused"
      code=42
      return 42
      ;;
  esac
  if [ ! -f "$cur" ]; then
    annotate "prompt-file '$path' is not a regular file"
    code=42
    return 42
  fi
}

# Two inputs that mean the same: either, or both with the same value.
one_of() {
  local a_name=$1 a=$2 b_name=$3 b=$4
  if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then
    usage_error "\`$a_name\` and \`$b_name\` mean the same and differ: give one"
  fi
  printf '%s' "${a:-$b}"
}

# A warning in the step log (and on the run's summary page). Never called with a value that may be
# a secret.
warn() {
  echo "::warning title=qwen action::$(escape_data "$1")" >&2
}

# An input that actions/ai-inference v2 would ignore here: ignored too, with a warning saying why.
ignored() {
  local name=$1 value=$2 why=$3
  [ -n "$value" ] || return 0
  warn "$name is ignored: $why (as actions/ai-inference v2 does)"
}

# actions/ai-inference v2 inputs qwen does not support: a warning by name (the runner's own
# "Unexpected input" never comes, since action.yml declares them), never their values.
unsupported() {
  local name=$1 value=$2 instead=$3
  [ -n "$value" ] || return 0
  warn "$name is not supported and is ignored: $instead"
}
# v2's `core.getBooleanInput` takes true/True/TRUE/false/False/FALSE and fails on anything else.
case ${QWEN_ACTION_ENABLE_GITHUB_MCP:-} in
  "" | false | False | FALSE) ;;
  true | True | TRUE)
    # v2 itself falls back to a plain request, with a warning, when its MCP server cannot be reached.
    unsupported enable-github-mcp x "qwen calls no tools (no GitHub MCP server), so the model answers from the prompt alone; put the context it needs in the prompt, input or file_input (e.g. a saved \`gh pr diff\`)"
    ;;
  *) usage_error "enable-github-mcp is true or false (YAML 1.2 core schema, as actions/ai-inference v2 reads it)" ;;
esac
unsupported github-mcp-token "${QWEN_ACTION_GITHUB_MCP_TOKEN:-}" "there is no GitHub MCP server; the token is never used or sent"
unsupported github-mcp-toolsets "${QWEN_ACTION_GITHUB_MCP_TOOLSETS:-}" "qwen calls no tools (no GitHub MCP server)"
# v2's parseProvider: trimmed, any case; github-models (its default) is what qwen does with endpoint.
provider=$(trim "${QWEN_ACTION_PROVIDER:-}" | tr '[:upper:]' '[:lower:]')
case $provider in
  "" | github-models) ;;
  copilot) usage_error "provider: copilot is not supported: qwen does not run the GitHub Copilot CLI; give endpoint (or base-url) and token (or api-key) of an OpenAI-compatible API, and drop provider" ;;
  *) usage_error "provider: unsupported provider (actions/ai-inference v2 knows github-models and copilot; qwen talks to the OpenAI-compatible API at endpoint)" ;;
esac
unsupported copilot-cli-path "${QWEN_ACTION_COPILOT_CLI_PATH:-}" "the Copilot CLI is not used: give endpoint (or base-url) and token (or api-key) of an OpenAI-compatible API"
unsupported copilot-allow-tools "${QWEN_ACTION_COPILOT_ALLOW_TOOLS:-}" "qwen calls no tools"

case "$prompt_file" in
  *.prompt.yml | *.prompt.yaml) prompt_yml=true ;;
  *) prompt_yml=false ;;
esac
# v2 reads the system prompt only without a .prompt.yml prompt file (whose messages hold it), and
# then a system-prompt-file wins over a system-prompt (`loadContentFromFileOrInput`).
if [ "$prompt_yml" = true ]; then
  ignored system-prompt "$system_prompt" "the .prompt.yml prompt-file holds the messages"
  ignored system-prompt-file "$system_prompt_file" "the .prompt.yml prompt-file holds the messages"
  system_prompt=""
  system_prompt_file=""
elif [ -n "$system_prompt_file" ]; then
  ignored system-prompt "$system_prompt" "system-prompt-file is given"
  system_prompt=""
fi
# v2 sends max_completion_tokens when it has one, and max_tokens only without (`src/main.ts`);
# qwen picks the parameter the API wants for the one limit.
if [ -n "$max_completion_tokens" ] && [ -n "$max_tokens" ] && [ "$max_tokens" != "$max_completion_tokens" ]; then
  ignored max-tokens "$max_tokens" "max-completion-tokens is given"
  max_tokens=""
fi
# input and file_input fill a .prompt.yml prompt file's placeholders; v2 never reads them otherwise.
if [ "$prompt_yml" = false ] && [ -z "$jobs" ]; then
  ignored input "$vars_text" "it fills the placeholders of a .prompt.yml prompt-file, and prompt-file is not one"
  ignored file_input "$file_vars_text" "it fills the placeholders of a .prompt.yml prompt-file, and prompt-file is not one"
  vars_text=""
  file_vars_text=""
  export QWEN_ACTION_INPUT="" QWEN_ACTION_FILE_INPUT=""
fi

args=()
[ -n "$model" ] && args+=(--model "$model")
url=$(one_of base-url "$base_url" endpoint "$endpoint") || exit
[ -n "$url" ] && args+=(--openai-base-url "$url")
limit=${max_completion_tokens:-$max_tokens}
[ -n "$limit" ] && args+=(--max-tokens "$limit")
[ -n "$temperature" ] && args+=(--temperature "$temperature")
[ -n "$top_p" ] && args+=(--top-p "$top_p")
# The map inputs: qwen reads them from QWEN_ACTION_INPUT, QWEN_ACTION_FILE_INPUT and
# QWEN_ACTION_CUSTOM_HEADERS, as v2 reads them (a real YAML parser; it masks each header value).
[ -n "$vars_text$file_vars_text$headers_text" ] && args+=(--ai-inference-inputs)
if [ -n "$system_prompt_file" ]; then
  require_readable "$system_prompt_file" "system-prompt-file '$system_prompt_file' cannot be read"
  # qwen reads the file itself, byte for byte, through its door for files (a regular file, no
  # link out of the workspace): its text never travels on a command line.
  args+=(--system-prompt-file "$system_prompt_file")
fi
[ -n "$system_prompt" ] && args+=(--system-prompt "$system_prompt")

# Every line of extra-args (a `|` block too), split on any whitespace.
extra=()
read -r -d '' -a extra <<<"${QWEN_ACTION_EXTRA_ARGS:-}"

if [ -n "$jobs" ]; then
  if [ -n "$prompt" ] || [ -n "$prompt_file" ]; then
    usage_error "give either jobs or prompt/prompt-file, not both"
  fi
  [ -z "$vars_text$file_vars_text" ] || usage_error "input and file_input apply to a .prompt.yml prompt-file, not to jobs"
  results="$tmp/qwen-results.jsonl"
  case "$format" in
    "" | jsonl) ;;
    openai-batch) args+=(--output-format openai-batch) ;;
    *) usage_error "output-format '$format' does not apply to a batch: use jsonl or openai-batch" ;;
  esac
  # A results file left by an earlier step of this job would be refused (exit 42); --resume keeps it.
  case " ${extra[*]} " in
    *" --resume "*) ;;
    *) rm -f -- "$results" ;;
  esac
  "$qwen" --jobs "$jobs" --output "$results" "${args[@]}" "${extra[@]}" </dev/null
  code=$?
  {
    echo "results-file=$results"
    echo "result="
    echo "response="
    echo "response-file="
    echo "exit-code=$code"
  } >>"$github_output"
  outputs_done=true
  exit "$code"
fi

case "$format" in
  "" | text | json | stream-json) [ -n "$format" ] && args+=(--output-format "$format") ;;
  *) usage_error "output-format '$format' is not one of text, json, stream-json (for one prompt)" ;;
esac

input=/dev/null
if [ -n "$prompt_file" ]; then
  require_readable "$prompt_file" "prompt-file '$prompt_file' cannot be read"
fi
case "$prompt_file" in
  *.prompt.yml | *.prompt.yaml)
    # A prompt file (GitHub's stored-prompt format): qwen reads it and fills it from input and
    # file_input. v2 reads only the file then: a prompt beside it is ignored.
    ignored prompt "$prompt" "the .prompt.yml prompt-file holds the messages"
    args+=(--prompt-file "$prompt_file")
    ;;
  *)
    if [ -n "$prompt_file" ] && [ -z "$prompt" ]; then
      # qwen reads it through its door for files.
      args+=(--prompt-file "$prompt_file")
    elif [ -n "$prompt_file" ]; then
      # The file's text then the prompt: the file goes on standard input, opened by this script,
      # so it passes the same door here first.
      stdin_file_door "$prompt_file" || exit
      args+=(--prompt "$prompt")
      input=$prompt_file
    else
      [ -n "$prompt" ] && args+=(--prompt "$prompt")
    fi
    ;;
esac

out=$(mktemp "$tmp/qwen-response-XXXXXXXX") || exit
# stdout goes to the response file, then into the log; stderr (diagnostics, and qwen's own workflow
# commands: masks, annotations) straight to the log. The copy is server text: workflow commands are
# stopped around it, with a token nobody can guess. It is copied after qwen has ended, so that qwen's
# own commands on stderr are never inside the stopped stretch.
"$qwen" "${args[@]}" "${extra[@]}" <"$input" >"$out"
code=$?
if [ -s "$out" ]; then
  stop=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "::stop-commands::$stop"
  cat -- "$out"
  [ -n "$(tail -c1 -- "$out")" ] && echo
  echo "::$stop::"
fi

# A delimiter for a multi-line output value that the value itself does not contain.
delimiter_for() {
  local file=$1 delim
  while :; do
    delim="qwen_eof_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    grep -qF -- "$delim" "$file" || break
  done
  printf '%s' "$delim"
}

size=$(wc -c <"$out" | tr -d ' ')
{
  if [ "$size" -gt "$max_output_bytes" ]; then
    echo "result="
    echo "response="
  else
    for name in result response; do
      delim=$(delimiter_for "$out")
      echo "$name<<$delim"
      cat -- "$out"
      # The value ends at the newline before the delimiter: add one when the text has none.
      [ -s "$out" ] && [ -n "$(tail -c1 -- "$out")" ] && echo
      echo "$delim"
    done
  fi
  echo "response-file=$out"
  echo "results-file="
  echo "exit-code=$code"
} >>"$github_output"
outputs_done=true
if [ "$size" -gt "$max_output_bytes" ]; then
  echo "::warning title=qwen action::the answer is $size bytes, over the 256 KiB a step output can carry: result and response are empty; read the file named by the response-file output ($(escape_data "$out"))" >&2
fi
exit "$code"
