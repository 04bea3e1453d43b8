#!/usr/bin/env bash
# The differential oracle for src/config/dotenv_parse.rs: runs `dotenv.parse` of the real npm dotenv 17
# (what Qwen Code reads `.env` files with) over every fixtures/dotenv/corpus/*.env and writes
# fixtures/dotenv/expected.json (corpus file name -> parsed object), which a Rust unit test compares
# our parser against.
#
#   scripts/dotenv-oracle.sh           # regenerate fixtures/dotenv/expected.json
#   scripts/dotenv-oracle.sh --check   # regenerate into a temp file; fail if it differs from the committed one
#
# dotenv is installed once into ${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/dotenv-oracle (npm, quiet);
# later runs use that copy and need no network. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

spec=dotenv@17
cache=${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/dotenv-oracle
module=$cache/node_modules/dotenv
if [[ ! -f $module/package.json ]]; then
  mkdir -p "$cache"
  if ! npm install --silent --no-audit --no-fund --no-package-lock --prefix "$cache" "$spec" >/dev/null; then
    echo "error: cannot install $spec into $cache (offline, and no cached copy)" >&2
    exit 1
  fi
fi

expected=fixtures/dotenv/expected.json
out=$expected
if $check; then
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
fi

DOTENV_MODULE=$module node - fixtures/dotenv/corpus "$out" <<'JS'
const fs = require('fs')
const path = require('path')
const dotenv = require(process.env.DOTENV_MODULE)
const version = require(path.join(process.env.DOTENV_MODULE, 'package.json')).version
const [dir, out] = process.argv.slice(2)
const result = {}
for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.env')).sort()) {
  // A Buffer, as dotenv's own config() reads a file; its toString keeps a byte order mark.
  const parsed = dotenv.parse(fs.readFileSync(path.join(dir, name)))
  const sorted = {}
  for (const key of Object.keys(parsed).sort()) sorted[key] = parsed[key]
  result[name] = sorted
}
fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
console.error(`dotenv ${version}: ${Object.keys(result).length} corpus files`)
JS

if $check; then
  if ! diff -u "$expected" "$out" >&2; then
    echo "error: $expected is out of date: run scripts/dotenv-oracle.sh and review the diff" >&2
    exit 1
  fi
fi
