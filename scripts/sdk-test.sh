#!/usr/bin/env bash
# Acceptance: the Qwen Code SDK (npm @qwen-code/sdk, pinned) drives qwen through
# `--input-format stream-json`, against local servers. Installs Node >= 22 (npm's `node`
# package, when the system's is older) and the SDK under ~/.cache/qwen-ci (scripts/lib/cached-install.sh,
# without a marker: each is installed when its files are there), builds qwen, and runs
# scripts/sdk-test.mjs, which prints `N passed, M failed`.
#
#   bash scripts/sdk-test.sh [QWEN_BINARY]
set -euo pipefail
# shellcheck source=scripts/lib/cached-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cached-install.sh"

SDK_VERSION=0.1.14
NODE_MAJOR=22
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${QWEN_CI_CACHE:-$HOME/.cache/qwen-ci}

log() { echo "sdk-test: $*" >&2; }
node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
node_ok() { [ "$(node_major "$NODE")" -ge "$NODE_MAJOR" ]; }

NODE=$(command -v node || true)
if [ -z "$NODE" ] || ! node_ok; then
  NODE=$CACHE/node$NODE_MAJOR/node_modules/.bin/node
  install_node() { npm_install "$CACHE/node$NODE_MAJOR" "node@$NODE_MAJOR"; }
  cached_install "$CACHE/node$NODE_MAJOR" "" install_node node_ok
fi

SDK_DIR=$CACHE/qwen-sdk-$SDK_VERSION
sdk_ok() { [ -f "$SDK_DIR/node_modules/@qwen-code/sdk/package.json" ]; }
install_sdk() { npm_install "$SDK_DIR" --engine-strict=false "@qwen-code/sdk@$SDK_VERSION"; }
cached_install "$SDK_DIR" "" install_sdk sdk_ok

QWEN=${1:-}
if [ -z "$QWEN" ]; then
  (cd "$ROOT" && cargo build --locked --quiet --bin qwen)
  QWEN=$ROOT/target/debug/qwen
fi

SDK_DIR=$SDK_DIR/node_modules/@qwen-code/sdk exec "$NODE" "$ROOT/scripts/sdk-test.mjs" "$QWEN"
