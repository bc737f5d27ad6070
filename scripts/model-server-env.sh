#!/usr/bin/env bash
# Prints the Python of the virtualenv that runs the local llama.cpp server, creating it first if needed.
#
# The virtualenv lives in the user's cache, keyed by stack/model-server.txt and CMAKE_ARGS, so the
# few-minute llama.cpp build happens once per machine and every clone (and CI) reuses it. We keep it
# out of uv.lock because uv may rebuild an sdist for every fresh environment, and nothing imports it.
# Usage: scripts/model-server-env.sh UV
set -euo pipefail
uv=${1:-uv}
root=$(cd "$(dirname "$0")/.." && pwd)
req="$root/stack/model-server.txt"
emb="$root/stack/embeddings-server.txt"
key=$( { cat "$req" "$emb"; echo "${CMAKE_ARGS:-}"; } | sha256sum | cut -c1-12)
dir="${SUTAZAI_MODEL_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sutazai/model-server-$key}"
if [ ! -f "$dir/.complete" ]; then
  echo "installing the local model server into $dir" >&2
  echo "(llama.cpp is built portably with CMAKE_ARGS=\"${CMAKE_ARGS:-}\"; the first time takes ~5 minutes)" >&2
  rm -rf "$dir"
  "$uv" venv --quiet --seed --python 3.11 "$dir" >&2
  "$uv" pip install --python "$dir/bin/python" -r "$req" >&2
  # The embeddings server's torch comes through pip, whose configured find-links may hold a CPU build
  # (uv would take PyPI's multi-GB CUDA build); see stack/embeddings-server.txt.
  "$dir/bin/python" -m pip install --quiet -r "$emb" >&2
  touch "$dir/.complete"
fi
echo "$dir/bin/python"
