#!/usr/bin/env bash
# Acceptance: the Qwen Code SDK (npm @qwen-code/sdk, pinned) drives qwen through
# `--input-format stream-json`, against local servers. Installs Node >= 22 (npm's `node`
# package, when the system's is older) and the SDK under ~/.cache/qwen-ci, builds qwen, and runs
# scripts/sdk-test.mjs, which prints `N passed, M failed`.
#
#   bash scripts/sdk-test.sh [QWEN_BINARY]
set -euo pipefail

SDK_VERSION=0.1.14
NODE_MAJOR=22
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${QWEN_CI_CACHE:-$HOME/.cache/qwen-ci}

node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }

NODE=$(command -v node || true)
if [ -z "$NODE" ] || [ "$(node_major "$NODE")" -lt "$NODE_MAJOR" ]; then
  NODE=$CACHE/node$NODE_MAJOR/node_modules/.bin/node
  if [ "$(node_major "$NODE")" -lt "$NODE_MAJOR" ]; then
    npm install --prefix "$CACHE/node$NODE_MAJOR" --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR" >&2
  fi
fi

SDK_DIR=$CACHE/qwen-sdk-$SDK_VERSION
if [ ! -f "$SDK_DIR/node_modules/@qwen-code/sdk/package.json" ]; then
  npm install --prefix "$SDK_DIR" --no-audit --no-fund --loglevel=error --engine-strict=false \
    "@qwen-code/sdk@$SDK_VERSION" >&2
fi

QWEN=${1:-}
if [ -z "$QWEN" ]; then
  (cd "$ROOT" && cargo build --locked --quiet --bin qwen)
  QWEN=$ROOT/target/debug/qwen
fi

SDK_DIR=$SDK_DIR/node_modules/@qwen-code/sdk exec "$NODE" "$ROOT/scripts/sdk-test.mjs" "$QWEN"
