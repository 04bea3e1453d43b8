#!/usr/bin/env bash
# Sourced, not run: the one case runner of the CI test scripts that run qwen against a server.
#
#   run_qwen NAME [VAR=value...] -- ARGS...
#       runs $qwen_bin ARGS in a fresh HOME and working directory under $tmp with only PATH, HOME,
#       LANG, OPENAI_BASE_URL=$base_url, OPENAI_API_KEY=$qwen_api_key, OPENAI_MODEL=$qwen_model and
#       the VAR=value given, no stdin, `timeout $case_timeout`; stdout, stderr, the exit status and the
#       wall time go to $tmp/NAME.{out,err,status,secs}. Returns 0. The variables are read at the
#       call, so a case may shadow `base_url` with a `local`.
#   pycheck NAME <<'PY' ... PY
#       runs the Python on stdin with `out` (stdout text), `err`, `status` (qwen's exit code), `secs`
#       (its wall time), `lines` (stdout lines), `name`, `tmp`, `seen` (JSON from $tmp/NAME.seen, else
#       {}), `fail(message)` and, when $pycheck_upstream is set, `upstream_get(path)` (a GET of
#       $pycheck_upstream + path, JSON) defined; fails, showing qwen's output, when `fail` is called.
#   run_cases LABEL NAME...
#       runs `case_NAME` (dashes as underscores) for each NAME, logs `ok`/`FAIL` with the seconds,
#       and on a failure the names and the servers that died (lib/server.sh); prints
#       `LABEL: N passed, M failed` last and returns non-zero when any case failed.
#
# The sourcing script defines `log` (its prefixed line on stderr). Sourcing this sources
# scripts/lib/server.sh too.

# shellcheck source=scripts/lib/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

# shellcheck disable=SC2154 # tmp, base_url, qwen_api_key, qwen_model, case_timeout, qwen_bin: the caller's
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
    OPENAI_BASE_URL="$base_url" OPENAI_API_KEY="$qwen_api_key" OPENAI_MODEL="$qwen_model" "${extra[@]}" \
    timeout "$case_timeout" "$qwen_bin" "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err") || status=$?
  echo "$status" >"$tmp/$name.status"
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)" >"$tmp/$name.secs"
}

pycheck() {
  python3 -c '
import json, sys
name, tmp, upstream = sys.argv[1], sys.argv[2], sys.argv[3]
def read(ext):
    with open(f"{tmp}/{name}.{ext}", encoding="utf-8") as f:
        return f.read()
out, err, status, secs = read("out"), read("err"), int(read("status")), float(read("secs"))
lines = out.splitlines()
try:
    with open(f"{tmp}/{name}.seen", encoding="utf-8") as f:
        seen = json.load(f)
except FileNotFoundError:
    seen = {}
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
' "$1" "$tmp" "${pycheck_upstream:-}"
}

run_cases() {
  local label="$1" passed=0 failed=0 failed_names=() name t0
  shift
  for name in "$@"; do
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
    servers_report_dead
  fi
  echo "$label: $passed passed, $failed failed"
  ((failed == 0))
}
