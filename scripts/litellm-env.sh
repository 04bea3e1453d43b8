#!/usr/bin/env bash
# Installs (once per machine) the LiteLLM proxy that scripts/litellm-test.sh runs qwen against: PyPI
# `litellm[proxy]`, pinned exactly, with no database (the proxy then accepts only its master key).
#
#   scripts/litellm-env.sh          install if needed, then print nothing and exit 0
#   scripts/litellm-env.sh --print  the same, then print the venv's python (PYTHON=...)
#
# The pin is exact on purpose: litellm 1.82.7, 1.82.8 and 1.107.0 were published compromised, and
# releases after 1.108.7 need a package that the registry here does not have. Move it only to a
# version checked by hand.
#
# The virtual environment lives at ${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/litellm-venv, installed
# by scripts/lib/cached-install.sh: a marker file, written last, records a finished install of
# exactly this pin; without it (a run that died half-way, or another pin) the venv is rebuilt from
# scratch. A lock makes a second caller (the test script while .ci/run's background install still
# runs) wait for the first one instead of racing it.
set -euo pipefail
# shellcheck source=scripts/lib/cached-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cached-install.sh"

LITELLM_VERSION=1.108.7

venv="$ci_cache/litellm-venv"
key="litellm[proxy]==$LITELLM_VERSION python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
print=$(ci_flag --print "$@")

log() { echo "litellm-env: $*" >&2; }

install() {
  python3 -m venv "$venv"
  local py="$venv/bin/python"
  "$py" -m pip install --disable-pip-version-check --quiet "litellm[proxy]==$LITELLM_VERSION"
  # The proxy's own import: a missing optional dependency shows here, not when a test starts it.
  LITELLM_LOCAL_MODEL_COST_MAP=True "$py" -c 'import litellm, litellm.proxy.proxy_server' \
    || { log "error: litellm.proxy does not import after the install"; exit 1; }
}

cached_install "$venv" "$key" install

if $print; then
  echo "PYTHON=$venv/bin/python"
fi
