#!/usr/bin/env bash
# The install steps of action.yml: put the prebuilt static qwen of the action's release on PATH in
# seconds (download, sha256 check against the release's SHA256SUMS, tool cache), or say why not and
# leave the build from source to cargo.
#
#   action-install.sh           try the release binary; on success set qwen-path, else set build=true
#   action-install.sh --build   build from the action's source with cargo (skipped when the Actions
#                               cache already restored the build), then set qwen-path
#
# Everything arrives through the environment, never spliced into the script:
#   QWEN_INSTALL_VERSION        the `version` input (`v1.2.3` or `1.2.3`); empty: the action's ref
#   QWEN_INSTALL_ACTION_REF     `github.action_ref` (a tag such as `v1.2.3` or `v1` picks the release);
#                               the action's path, .../_actions/<owner>/<repo>/<ref>, wins when it has one
#   QWEN_INSTALL_BASE_URL       the `download-base-url` input; empty: the action repository's releases
#   QWEN_INSTALL_ACTION_REPOSITORY, GITHUB_SERVER_URL   for that default URL
#   ACTION_PATH                 the action's checkout (Cargo.toml, for `v1`-style tags and the build)
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_PATH
# A wrong checksum is an error (exit 1) and installs nothing; a missing release (a branch or commit
# ref, an HTTP 404) is not: the build from source takes over and the log says so.
set -euo pipefail

say() { echo "qwen install: $*" >&2; }
escape_data() {
  local s=${1//'%'/'%25'}
  s=${s//$'\r'/'%0D'}
  printf '%s' "${s//$'\n'/'%0A'}"
}
fail() {
  echo "::error title=qwen install::$(escape_data "$1")" >&2
  exit 1
}

github_output=${GITHUB_OUTPUT:-/dev/null}
tmp=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
action_path=${ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}

# A directory goes on PATH only when it is one plain line that we made ourselves.
add_to_path() {
  local dir=$1
  case $dir in
    /*) ;;
    *) fail "refusing to put a relative directory on PATH: $dir" ;;
  esac
  [[ $dir != *[$'\r\n']* ]] || fail "refusing to put a directory with a line break on PATH"
  [ -x "$dir/qwen" ] || fail "no qwen binary in $dir"
  if [ -n "${GITHUB_PATH:-}" ]; then printf '%s\n' "$dir" >>"$GITHUB_PATH"; fi
  echo "qwen-path=$dir/qwen" >>"$github_output"
}

# The SHA-256 of FILE (`-`: standard input), in hex.
sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum -- "$1" | cut -d' ' -f1
  else
    shasum -a 256 -- "$1" | cut -d' ' -f1
  fi
}

# ---- build from source (the fallback) ---------------------------------------------------------------
if [ "${1:-}" = "--build" ]; then
  root="$tmp/qwen-action"
  if [ -x "$root/bin/qwen" ]; then
    say "qwen restored from the Actions cache (built earlier from the same source)"
  else
    command -v cargo >/dev/null || fail "no release binary for this runner and no cargo to build qwen: set the \`version\` input to a release, or install Rust first"
    say "building qwen from source with cargo (a few minutes)"
    # A build for this job, not a shipped binary: skip LTO and build in parallel to save minutes.
    CARGO_TERM_COLOR=never CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install --path "$action_path" --locked --root "$root" --bin qwen
  fi
  add_to_path "$root/bin"
  exit 0
fi

# The cache key of the source, for the fallback's Actions cache.
source_key() {
  local sum
  sum=$(cd "$action_path" && find Cargo.toml Cargo.lock src -type f -print0 | LC_ALL=C sort -z |
    xargs -0 cat | sha256_of - | cut -c1-20) || true
  printf 'qwen-bin-%s-%s-%s' "${RUNNER_OS:-unknown}" "${RUNNER_ARCH:-unknown}" "$sum"
}

fallback() {
  say "$1"
  say "falling back to building qwen from source with cargo"
  {
    echo "build=true"
    echo "cache-key=$(source_key)"
  } >>"$github_output"
  exit 0
}

# ---- which release -----------------------------------------------------------------------------------
version=${QWEN_INSTALL_VERSION:-}
ref=${QWEN_INSTALL_ACTION_REF:-}
repository=${QWEN_INSTALL_ACTION_REPOSITORY:-}
# `github.action_ref` and `github.action_repository` are not promised inside composite actions
# (actions/runner#2473): the runner's checkout path, .../_actions/<owner>/<repo>/<ref>, says it too.
if [[ $action_path =~ /_actions/([^/]+)/([^/]+)/([^/]+)/?$ ]]; then
  repository="${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
  ref=${BASH_REMATCH[3]}
fi
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$action_path/Cargo.toml" 2>/dev/null | head -n1 || true)
if [ -n "$version" ]; then
  [[ $version == v* ]] || version="v$version"
elif [[ $ref =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
  version=$ref
elif [[ $ref =~ ^v[0-9]+(\.[0-9]+)?$ ]] && [[ v$cargo_version == "$ref".* ]]; then
  # A moving major tag (`@v1`): the release is the version of the source that tag points at.
  version="v$cargo_version"
else
  fallback "the action's ref \`${ref:-(none)}\` is not a release tag and no \`version\` input is set"
fi
[[ $version =~ ^v[0-9][0-9A-Za-z.+-]*$ ]] || fail "\`$version\` is not a release version (expected e.g. v1.2.3)"

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64) target=x86_64-unknown-linux-musl arch=x64 ;;
  Linux/ARM64) target=aarch64-unknown-linux-musl arch=arm64 ;;
  macOS/X64) target=x86_64-apple-darwin arch=x64 ;;
  macOS/ARM64) target=aarch64-apple-darwin arch=arm64 ;;
  *) fallback "no prebuilt qwen for ${RUNNER_OS:-this OS} on ${RUNNER_ARCH:-this architecture}" ;;
esac
asset="qwen-$version-$target.tar.gz"

# ---- the tool cache ----------------------------------------------------------------------------------
cache_root=${RUNNER_TOOL_CACHE:-$tmp/tool-cache}
dest="$cache_root/qwen/${version#v}/$arch"
if [ -f "$dest.complete" ] && [ -x "$dest/qwen" ]; then
  say "qwen $version ($target) from the tool cache"
  add_to_path "$dest"
  exit 0
fi

# ---- download and verify -----------------------------------------------------------------------------
base=${QWEN_INSTALL_BASE_URL:-}
if [ -z "$base" ]; then
  base="${GITHUB_SERVER_URL:-https://github.com}/${repository:-qwen-headless/qwen}/releases/download"
fi
base=${base%/}
# A mirror URL may carry credentials (`https://user:token@host/...`): mask them before any log line.
if [[ $base =~ ^https?://([^/@]+)@ ]]; then
  echo "::add-mask::$(escape_data "${BASH_REMATCH[1]}")" >&2
  [[ ${BASH_REMATCH[1]} == *:* ]] && echo "::add-mask::$(escape_data "${BASH_REMATCH[1]#*:}")" >&2
fi
case $base in
  https://* | http://*) ;;
  *) fail "download-base-url must be an http(s) URL" ;;
esac
command -v curl >/dev/null || fallback "curl is not installed"

work=$(mktemp -d "$tmp/qwen-install.XXXXXXXX")
trap 'rm -rf -- "$work"' EXIT

# fetch NAME: download $base/$version/NAME into $work; prints the HTTP status (000: no answer).
fetch() {
  curl --silent --show-error --location --proto '=https,http' --retry 3 --connect-timeout 10 \
    --max-time 300 --output "$work/$1" --write-out '%{http_code}' "$base/$version/$1" || true
}

say "downloading $asset from $base/$version/"
status=$(fetch SHA256SUMS)
case $status in
  200) ;;
  404) fallback "no release $version at $base (HTTP 404 for SHA256SUMS)" ;;
  *) fallback "could not download SHA256SUMS of $version from $base (HTTP $status)" ;;
esac
status=$(fetch "$asset")
case $status in
  200) ;;
  404) fallback "release $version has no $asset (HTTP 404)" ;;
  *) fallback "could not download $asset (HTTP $status)" ;;
esac

expected=$(awk -v name="$asset" '$2 == name || $2 == "*" name { print $1; exit }' "$work/SHA256SUMS")
[ -n "$expected" ] || fail "SHA256SUMS of $version lists no checksum for $asset: nothing installed"
actual=$(sha256_of "$work/$asset")
if [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $asset: SHA256SUMS says $expected, the download is $actual; nothing installed"
fi
say "sha256 of $asset verified ($actual)"

mkdir -p "$work/x"
tar -xzf "$work/$asset" -C "$work/x"
bin="$work/x/qwen-$version-$target/qwen"
[ -f "$bin" ] || fail "$asset does not hold qwen-$version-$target/qwen: nothing installed"

# Into the tool cache: a fresh directory, then the `.complete` marker (the toolkit's convention).
rm -rf -- "$dest" "$dest.complete"
mkdir -p "$dest"
cp -- "$bin" "$dest/qwen"
[ -f "$work/x/qwen-$version-$target/qwen-code" ] && cp -- "$work/x/qwen-$version-$target/qwen-code" "$dest/"
chmod 755 "$dest"/*
touch "$dest.complete"
say "qwen $version ($target) installed in $dest"
add_to_path "$dest"
