#!/usr/bin/env bash
# The differential oracle for qwen's JSON documents: runs Qwen Code 0.24.4 (npm
# `@qwen-code/qwen-code`, what our `-o json`/`stream-json` promise to match) and qwen over the same
# exchanges against the same loopback server (fixtures/qwen-code-oracle/server.py), and compares the
# documents after removing what must differ (uuids, timings, versions) and the deliberate
# differences listed, each with its reason, in fixtures/qwen-code-oracle/differences.json.
#
#   scripts/qwen-code-oracle.sh --install   install (or check) the cached copies, run nothing
#   scripts/qwen-code-oracle.sh             install if needed, then run the matrix: `N passed, M failed`
#
# Qwen Code asks for Node >= 22 (Debian's is older): npm's `node` package brings one. Both are
# installed once into ${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/qwen-code-oracle by
# scripts/lib/cached-install.sh: a marker file, written last, records a finished install of exactly
# these pins (without it the directory is rebuilt), and a lock makes a second caller wait for the
# first (.ci/run starts the install in the background).
# Qwen Code runs with a throwaway HOME whose settings.json turns usage statistics and background
# memory extraction off (or it makes a second request and adds its tokens). Needs npm and python3;
# QWEN_BIN names the qwen binary (default target/debug/qwen).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/cached-install.sh
source scripts/lib/cached-install.sh

QWEN_CODE_VERSION=0.24.4
NODE_VERSION=22.23.3

install_only=$(ci_flag --install "$@")

dir="$ci_cache/qwen-code-oracle"
key="@qwen-code/qwen-code@$QWEN_CODE_VERSION node@$NODE_VERSION"
node="$dir/node/node_modules/node/bin/node"
entry="$dir/qwen-code/node_modules/@qwen-code/qwen-code/cli-entry.js"

log() { echo "qwen-code-oracle: $*" >&2; }

complete() { [[ -x "$node" ]] && [[ -f "$entry" ]]; }

install() {
  mkdir -p "$dir"
  npm_install "$dir/node" "node@$NODE_VERSION"
  npm_install "$dir/qwen-code" "@qwen-code/qwen-code@$QWEN_CODE_VERSION"
  [[ "$("$node" --version)" == "v$NODE_VERSION" ]] || { log "error: \`$node\` is not Node $NODE_VERSION"; exit 1; }
}

cached_install "$dir" "$key" install complete
if $install_only; then
  exit 0
fi

qwen_bin=${QWEN_BIN:-target/debug/qwen}
[[ -x $qwen_bin ]] || { log "error: no qwen binary at \`$qwen_bin\` (run \`cargo build\`, or set QWEN_BIN)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PATH="$(dirname "$node"):$PATH" python3 fixtures/qwen-code-oracle/oracle.py "$entry" "$node" "$(realpath "$qwen_bin")" "$work"
