#!/usr/bin/env bash
# The differential oracle for src/config/dotenv_parse.rs: runs `dotenv.parse` of the real npm dotenv 17
# (what Qwen Code reads `.env` files with) over every fixtures/dotenv/corpus/*.env and writes
# fixtures/dotenv/expected.json (corpus file name -> parsed object), which a Rust unit test compares
# our parser against.
#
#   scripts/dotenv-oracle.sh           # regenerate fixtures/dotenv/expected.json
#   scripts/dotenv-oracle.sh --check   # regenerate into a temp file; fail if it differs from the committed one
#   scripts/dotenv-oracle.sh --fuzz N  # also N random inputs (seeded, DOTENV_FUZZ_SEED) through both parsers
#
# dotenv is installed once into ${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/dotenv-oracle (npm, quiet);
# later runs use that copy and need no network. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/cached-install.sh
source scripts/lib/cached-install.sh

check=false
fuzz=0
case "${1:-}" in
  --check) check=true ;;
  --fuzz) fuzz=${2:-}; [[ $fuzz =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 --fuzz N" >&2; exit 2; } ;;
  "") ;;
  *) echo "usage: $0 [--check | --fuzz N]" >&2; exit 2 ;;
esac

spec=dotenv@17
cache=$ci_cache/dotenv-oracle
module=$cache/node_modules/dotenv
if [[ ! -f $module/package.json ]]; then
  mkdir -p "$cache"
  if ! npm_install "$cache" "$spec"; then
    echo "error: cannot install $spec into $cache (offline, and no cached copy)" >&2
    exit 1
  fi
fi

if ((fuzz > 0)); then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  mkdir "$dir/corpus"
  DOTENV_MODULE=$module node - "$dir" "$fuzz" "${DOTENV_FUZZ_SEED:-1}" <<'JS'
const fs = require('fs')
const path = require('path')
const dotenv = require(process.env.DOTENV_MODULE)
const [dir, count, seed] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
// Pieces that matter to the grammar, joined at random (mulberry32, so a seed replays a run).
const atoms = ['A', 'B_1', 'export ', 'export', ' ', '\t', '=', ': ', ':', '#', ' #', "'", '"', '`',
  '\\', "\\'", '\\"', '\\n', '\n', '\n\n', '\r\n', '\r', '\ufeff', '\u2028', '\u2029', '\u00a0',
  'x', 'y z', '$', '${A}', 'é', '-', '.', '__proto__', '\u000b']
let state = seed >>> 0
const random = () => {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const expected = {}
for (let i = 0; i < count; i++) {
  let text = ''
  const n = 1 + Math.floor(random() * 60)
  for (let j = 0; j < n; j++) text += atoms[Math.floor(random() * atoms.length)]
  const name = `f${String(i).padStart(6, '0')}.env`
  fs.writeFileSync(path.join(dir, 'corpus', name), text)
  expected[name] = dotenv.parse(Buffer.from(text))
}
fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(expected))
JS
  QWEN_DOTENV_FUZZ_DIR=$dir cargo nextest run --locked --run-ignored only -E 'test(fuzz_corpus_matches_npm_dotenv)'
  exit
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
