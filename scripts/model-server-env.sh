#!/usr/bin/env bash
# Prints the Python of the virtualenv that runs the local llama.cpp server, creating it first if needed.
#
# The virtualenv lives in the user's cache, keyed by stack/model-server.txt, stack/embeddings-server.txt
# and the CMake options, so the few-minute llama.cpp build happens once per machine and every clone (and
# CI) reuses it. We keep it out of uv.lock because uv may rebuild an sdist for every fresh environment,
# and nothing imports it. Progress goes to stderr, one line per phase and a heartbeat while it builds;
# the full build output is in <env>/install.log.
# Usage: scripts/model-server-env.sh UV
set -euo pipefail
uv=${1:-uv}
root=$(cd "$(dirname "$0")/.." && pwd)
req="$root/stack/model-server.txt"
emb="$root/stack/embeddings-server.txt"
# Only what `python -m llama_cpp.server` loads: libllama and ggml. No multimodal library (mtmd/llava,
# about a third of the objects), no tests, examples, tools, C++ server or HTTPS support. CMAKE_ARGS
# (the Makefile's portable CPU flags, or the user's own) comes first; these follow it.
lean="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_MTMD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
lean+=" -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF"
lean+=" -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF"
export CMAKE_ARGS="${CMAKE_ARGS:+$CMAKE_ARGS }$lean"
key=$( { cat "$req" "$emb"; echo "$CMAKE_ARGS"; } | sha256sum | cut -c1-12)
dir="${SUTAZAI_MODEL_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sutazai/model-server-$key}"

say() { echo "[model server $(date +%H:%M:%S)] $*" >&2; }

# Run "$@" with its output in $log; print a heartbeat every 20 s (with ninja's [done/total] when the
# log shows one) so a long compile is visibly alive.
logged() {
  "$@" >>"$log" 2>&1 &
  local pid=$! start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      step=$(grep -ao '\[[0-9]*/[0-9]*\]' "$log" | tail -n 1 || true)
      say "  ... $((SECONDS - start)) s${step:+, compiled $step}"
    fi
  done
  if ! wait "$pid"; then
    say "FAILED; the end of $log:"
    tail -n 40 "$log" >&2
    exit 1
  fi
}

mkdir -p "$(dirname "$dir")"
# Two clones syncing at once build the environment once: the second waits for the first.
if command -v flock >/dev/null; then
  exec 9>"$dir.lock"
  flock 9
fi
if [ ! -f "$dir/.complete" ]; then
  started=$SECONDS
  say "creating $dir (once per machine; ~5 minutes on 2 cores, most of it compiling llama.cpp)"
  rm -rf "$dir"
  "$uv" venv --quiet --seed --python 3.11 "$dir" >&2
  log="$dir/install.log"
  say "1/2 building llama-cpp-python (llama.cpp, CMAKE_ARGS=\"$CMAKE_ARGS\"); full output: $log"
  # --refresh-package: uv's cache does not key built wheels on CMAKE_ARGS; this environment's key does.
  logged "$uv" pip install -v --refresh-package llama-cpp-python --python "$dir/bin/python" -r "$req"
  # The embeddings server's torch comes through pip, whose configured find-links may hold a CPU build
  # (uv would take PyPI's multi-GB CUDA build); see stack/embeddings-server.txt.
  say "2/2 installing the embeddings server (sentence-transformers, CPU torch) with pip"
  logged "$dir/bin/python" -m pip install -r "$emb"
  touch "$dir/.complete"
  say "ready in $((SECONDS - started)) s"
fi
echo "$dir/bin/python"
