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
# `input`, `file_input` and `custom-headers` are flat maps written as YAML (`name: value` lines, quoted
# values, `|`/`>` block values) or as one JSON object; this script reads that subset itself, so the
# action needs no YAML tool on the runner, and refuses anything else (nested maps, lists, anchors).
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
  # The input variables' files held workflow data: gone with the step.
  [ -n "${vars_dir:-}" ] && rm -rf -- "$vars_dir"
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

# ---- the flat-map reader for input / file_input / custom-headers -------------------------------------
# parse_map TEXT: fills map_keys and map_values, or returns 1 with map_error set.
map_keys=()
map_values=()
map_error=""
sv=""
header_names=()
header_values=()

trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# A double-quoted scalar's body (without the quotes), JSON/YAML escapes: \" \\ \/ \n \t \r.
# Sets sv (scalar value), or map_error and returns 1.
unescape_double() {
  local s=$1 c i=0
  sv=""
  while [ "$i" -lt "${#s}" ]; do
    c=${s:i:1}
    if [ "$c" = "\\" ]; then
      i=$((i + 1))
      case ${s:i:1} in
        n) sv+=$'\n' ;;
        t) sv+=$'\t' ;;
        r) sv+=$'\r' ;;
        '"' | "\\" | /) sv+=${s:i:1} ;;
        *)
          map_error="unsupported escape \\${s:i:1} in a double-quoted value"
          return 1
          ;;
      esac
    else
      sv+=$c
    fi
    i=$((i + 1))
  done
}

# One scalar as written after `key:` (or inside a JSON object), quoted or plain: sets sv.
scalar() {
  local v
  v=$(trim "$1")
  case $v in
    '"'*'"') unescape_double "${v:1:${#v}-2}" ;;
    "'"*"'")
      v=${v:1:${#v}-2}
      sv=${v//"''"/"'"}
      ;;
    '{'* | '['* | '&'* | '*'* | '!'* | '"'* | "'"*)
      map_error="unsupported value \`${v:0:1}…\`: only text values (plain, quoted or a | block)"
      return 1
      ;;
    *)
      # A plain value ends at ` #` (a comment).
      v=${v%%[[:space:]]#*}
      sv=$(trim "$v")
      ;;
  esac
}

add_entry() {
  local k=$1 i
  for i in "${!map_keys[@]}"; do
    if [ "${map_keys[i]}" = "$k" ]; then
      map_error="\`$k\` is given twice"
      return 1
    fi
  done
  map_keys+=("$k")
  map_values+=("$2")
}

# `{"name": "value", other: "x"}` on any number of lines: no nesting, string or plain values.
parse_flow_map() {
  local s=$1 i=0 n k v c quote
  n=${#s}
  i=1 # past `{`
  while :; do
    while [ "$i" -lt "$n" ] && [[ ${s:i:1} =~ [[:space:],] ]]; do i=$((i + 1)); done
    [ "$i" -lt "$n" ] || { map_error="a JSON object without its closing }"; return 1; }
    [ "${s:i:1}" = "}" ] && { [ -z "$(trim "${s:i+1}")" ] && return 0; map_error="text after the closing }"; return 1; }
    # key and value: a quoted string, or plain text up to `:` / `,` / `}`.
    local part
    for part in key value; do
      c=${s:i:1}
      if [ "$c" = '"' ] || [ "$c" = "'" ]; then
        quote=$c
        local j=$((i + 1)) raw=""
        while [ "$j" -lt "$n" ] && [ "${s:j:1}" != "$quote" ]; do
          if [ "$quote" = '"' ] && [ "${s:j:1}" = "\\" ]; then raw+=${s:j:2}; j=$((j + 2)); continue; fi
          raw+=${s:j:1}
          j=$((j + 1))
        done
        [ "$j" -lt "$n" ] || { map_error="an unterminated string"; return 1; }
        i=$((j + 1))
        scalar "$quote$raw$quote" || return 1
        v=$sv
      else
        local stop=':'
        [ "$part" = value ] && stop=',}'
        local j=$i
        while [ "$j" -lt "$n" ] && [[ $stop != *"${s:j:1}"* ]]; do j=$((j + 1)); done
        scalar "${s:i:j-i}" || return 1
        v=$sv
        i=$j
      fi
      while [ "$i" -lt "$n" ] && [[ ${s:i:1} =~ [[:space:]] ]]; do i=$((i + 1)); done
      if [ "$part" = key ]; then
        k=$v
        [ "${s:i:1}" = ":" ] || { map_error="expected \`:\` after \`$k\`"; return 1; }
        i=$((i + 1))
        while [ "$i" -lt "$n" ] && [[ ${s:i:1} =~ [[:space:]] ]]; do i=$((i + 1)); done
      fi
    done
    add_entry "$k" "$v" || return 1
  done
}

parse_map() {
  local text=$1 body
  map_keys=()
  map_values=()
  map_error=""
  body=$(trim "$text")
  [ -n "$body" ] || return 0
  if [ "${body:0:1}" = "{" ]; then
    parse_flow_map "$body"
    return
  fi
  local -a lines=()
  local one
  while IFS= read -r one || [ -n "$one" ]; do lines+=("$one"); done <<<"$text"
  local i=0 n=${#lines[@]} line key rest indent style value
  local key_re='^("[^"]*"|'"'"'[^'"'"']*'"'"'|[^[:space:]#"'"'"'][^:]*):([[:space:]].*)?$'
  while [ "$i" -lt "$n" ]; do
    line=${lines[i]%$'\r'}
    i=$((i + 1))
    [[ -z $(trim "$line") || $(trim "$line") == '#'* ]] && continue
    if [[ $line == [[:space:]]* ]]; then
      map_error="line $i is indented: only a flat map of \`name: value\` lines is read"
      return 1
    fi
    if ! [[ $line =~ $key_re ]]; then
      map_error="line $i is not \`name: value\`"
      return 1
    fi
    rest=$(trim "${BASH_REMATCH[2]}")
    scalar "${BASH_REMATCH[1]}" || return 1
    key=$sv
    case ${rest%%[[:space:]]#*} in
      '|' | '|-' | '|+' | '>' | '>-' | '>+')
        style=${rest%%[[:space:]]#*}
        value=""
        indent=""
        local -a block=()
        while [ "$i" -lt "$n" ]; do
          line=${lines[i]%$'\r'}
          if [ -n "$(trim "$line")" ]; then
            [[ $line == [[:space:]]* ]] || break
            if [ -z "$indent" ]; then
              indent=${line%%[![:space:]]*}
            elif [[ $line != "$indent"* ]]; then
              break
            fi
            block+=("${line#"$indent"}")
          else
            block+=("")
          fi
          i=$((i + 1))
        done
        local j
        for j in "${!block[@]}"; do
          if [ "${style:0:1}" = ">" ] && [ "$j" -gt 0 ] && [ -n "${block[j]}" ] && [ -n "${block[j - 1]}" ]; then
            value+=" ${block[j]}"
          elif [ "$j" -gt 0 ]; then
            value+=$'\n'"${block[j]}"
          else
            value+=${block[j]}
          fi
        done
        # Chomping: `-` strips the final newlines, `+` keeps them all, the default keeps one.
        local stripped=$value
        while [[ $stripped == *$'\n' ]]; do stripped=${stripped%$'\n'}; done
        case $style in
          *-) value=$stripped ;;
          *+) value+=$'\n' ;;
          *) [ -n "$stripped" ] && value=$stripped$'\n' || value="" ;;
        esac
        ;;
      *)
        scalar "$rest" || return 1
        value=$sv
        ;;
    esac
    add_entry "$key" "$value" || return 1
  done
}

# ---- masking: first, before anything else can print --------------------------------------------------
headers_text=${QWEN_ACTION_CUSTOM_HEADERS:-}
mask "${OPENAI_API_KEY:-}"
# The mask step also gets both key inputs, in case the one not used is another secret.
mask "${QWEN_ACTION_TOKEN:-}"
mask "${QWEN_ACTION_API_KEY:-}"
# v2's MCP token is never used, but it is a secret all the same.
mask "${QWEN_ACTION_GITHUB_MCP_TOKEN:-}"
header_error=""
if [ -n "$headers_text" ]; then
  if parse_map "$headers_text"; then
    for value in "${map_values[@]}"; do mask "$value"; done
    header_names=("${map_keys[@]}")
    header_values=("${map_values[@]}")
  else
    # Unreadable: mask every line, since the values cannot be told apart.
    while IFS= read -r line; do
      mask "$(trim "$line")"
      [[ $line == *:* ]] && mask "$(trim "${line#*:}")"
    done <<<"$headers_text"
    header_error=$map_error
  fi
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

# actions/ai-inference v2 inputs qwen does not support: a warning by name (the runner's own
# "Unexpected input" never comes, since action.yml declares them), never their values.
unsupported() {
  local name=$1 value=$2 instead=$3
  [ -n "$value" ] || return 0
  echo "::warning title=qwen action::$name is not supported and is ignored: $instead" >&2
}
if [ -n "${QWEN_ACTION_ENABLE_GITHUB_MCP:-}" ] && [ "${QWEN_ACTION_ENABLE_GITHUB_MCP}" != false ]; then
  unsupported enable-github-mcp x "qwen calls no tools (no GitHub MCP server); put the context the model needs in the prompt, input or file_input (e.g. a saved \`gh pr diff\`)"
fi
unsupported github-mcp-token "${QWEN_ACTION_GITHUB_MCP_TOKEN:-}" "there is no GitHub MCP server; the token is never used or sent"
unsupported github-mcp-toolsets "${QWEN_ACTION_GITHUB_MCP_TOOLSETS:-}" "qwen calls no tools (no GitHub MCP server)"
unsupported provider "${QWEN_ACTION_PROVIDER:-}" "qwen talks to any OpenAI-compatible API: name it with endpoint (or base-url) and token (or api-key)"
unsupported copilot-cli-path "${QWEN_ACTION_COPILOT_CLI_PATH:-}" "the Copilot CLI is not used: give endpoint (or base-url) and token (or api-key) of an OpenAI-compatible API"
unsupported copilot-allow-tools "${QWEN_ACTION_COPILOT_ALLOW_TOOLS:-}" "qwen calls no tools"

# Never quote custom-headers back: any part of it may be a secret (masks hide whole values only).
[ -z "$header_error" ] || usage_error "custom-headers is not a map of header names to text values (\`Name: value\` lines, or a JSON object)"

args=()
[ -n "$model" ] && args+=(--model "$model")
url=$(one_of base-url "$base_url" endpoint "$endpoint") || exit
[ -n "$url" ] && args+=(--openai-base-url "$url")
limit=$(one_of max-tokens "$max_tokens" max-completion-tokens "$max_completion_tokens") || exit
[ -n "$limit" ] && args+=(--max-tokens "$limit")
[ -n "$temperature" ] && args+=(--temperature "$temperature")
[ -n "$top_p" ] && args+=(--top-p "$top_p")
header_re='^[A-Za-z0-9!#$%&'"'"'*+.^_`|~-]+$'
for i in "${!header_names[@]}"; do
  name=${header_names[i]}
  value=${header_values[i]}
  [[ $name =~ $header_re ]] || usage_error "custom-headers: header $((i + 1)) has a name that is not a header name"
  [[ $value != *[$'\r\n']* ]] || usage_error "custom-headers: the value of header $((i + 1)) holds a line break"
  args+=(--header "$name: $value")
done
if [ -n "$system_prompt_file" ]; then
  [ -z "$system_prompt" ] || usage_error "give system-prompt or system-prompt-file, not both"
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
    # A prompt file (GitHub's stored-prompt format): qwen reads it, with the variables as --var flags.
    [ -z "$prompt" ] || usage_error "a .prompt.yml prompt-file holds the messages: give no prompt with it"
    args+=(--prompt-file "$prompt_file")
    if ! parse_map "$vars_text"; then usage_error "input: $map_error"; fi
    if [ "${#map_keys[@]}" -gt 0 ]; then
      # Each value goes through a private file (`name=@file`): no argument-length limit, and a value
      # that starts with `@` is never taken for a path.
      vars_dir=$(mktemp -d "$tmp/qwen-vars.XXXXXXXX") || exit
      for i in "${!map_keys[@]}"; do
        printf '%s' "${map_values[i]}" >"$vars_dir/$i"
        args+=(--var "${map_keys[i]}=@$vars_dir/$i")
      done
    fi
    if ! parse_map "$file_vars_text"; then usage_error "file_input: $map_error"; fi
    for i in "${!map_keys[@]}"; do
      path=${map_values[i]}
      require_readable "$path" "file_input: the file for \`${map_keys[i]}\` cannot be read: $path"
      args+=(--var "${map_keys[i]}=@$path")
    done
    ;;
  *)
    [ -z "$vars_text$file_vars_text" ] || usage_error "input and file_input need a .prompt.yml or .prompt.yaml prompt-file"
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
