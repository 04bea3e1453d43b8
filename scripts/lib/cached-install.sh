#!/usr/bin/env bash
# Sourced, not run: the one way the CI scripts install a pinned tool once per machine into
# ~/.cache/qwen-ci (a venv, an npm prefix), so that a second run, or a second caller, finds it ready.
#
#   ci_cache                             ${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci (the default home)
#   flag=$(ci_flag --print "$@")         `true` for the flag, `false` for no argument, else usage, exit 2
#   cached_install DIR KEY INSTALL_FN [CHECK_FN]
#   npm_install PREFIX ARGS...           npm install ARGS into PREFIX, quietly (no lock file, no audit)
#
# cached_install: DIR is installed when its marker file DIR/.qwen-ci-installed holds exactly KEY
# (the pins; the marker is written last, after INSTALL_FN succeeded) and CHECK_FN, if given,
# succeeds. KEY "" means no marker: CHECK_FN alone says. When not installed it takes the lock DIR.lock
# (beside DIR) with flock, so that a second caller (a test script while .ci/run's background
# install still runs) waits for the first instead of racing it, looks again, and if still not
# installed removes DIR and runs INSTALL_FN, which must rebuild DIR from nothing. The sourcing
# script defines `log` (its prefixed line on stderr).

# shellcheck disable=SC2034 # for the sourcing script
ci_cache="${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci"

ci_flag() {
  case "${2:-}" in
    "$1") echo true ;;
    "") echo false ;;
    *) echo "usage: $0 [$1]" >&2; exit 2 ;;
  esac
}

cached_install() {
  local dir="$1" key="$2" install_fn="$3" check_fn="${4:-}"
  mkdir -p "$(dirname "$dir")"
  if cached_install_done "$dir" "$key" "$check_fn"; then
    log "already installed in $dir"
    return 0
  fi
  exec 9>"$dir.lock"
  if ! flock -n 9; then
    log "another install is running; waiting for it"
    flock 9
  fi
  if ! cached_install_done "$dir" "$key" "$check_fn"; then
    local start=$SECONDS
    log "installing into $dir${key:+ (key: $key)}"
    rm -rf "$dir"
    "$install_fn"
    [[ -z "$key" ]] || printf '%s' "$key" >"$dir/.qwen-ci-installed"
    log "installed in $((SECONDS - start)) s"
  fi
  flock -u 9
  exec 9>&-
}

# cached_install_done DIR KEY CHECK_FN: the marker holds KEY (or KEY is ""), and CHECK_FN passes.
cached_install_done() {
  local dir="$1" key="$2" check_fn="$3"
  if [[ -n "$key" ]]; then
    [[ -f "$dir/.qwen-ci-installed" && "$(cat "$dir/.qwen-ci-installed")" == "$key" ]] || return 1
  fi
  [[ -z "$check_fn" ]] || "$check_fn"
}

# npm_install PREFIX ARGS...: npm packages into the prefix, quietly (errors still show).
npm_install() {
  local prefix="$1"
  shift
  npm install --silent --no-audit --no-fund --no-package-lock --prefix "$prefix" "$@" >/dev/null
}
