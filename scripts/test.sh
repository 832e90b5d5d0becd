#!/usr/bin/env bash
# Run the whole suite inside .venv (set up by scripts/setup.sh). Extra args go to pytest.
#
# The suite runs as a new user's first run does: with an empty cache (a fresh
# XDG_CACHE_HOME, removed afterwards), so the G1 assets are fetched and the demo head is
# trained inside the run, and nothing depends on what an earlier run left in ~/.cache.
# NEON_TEST_CACHE=DIR keeps (and reuses) the cache in DIR instead, for quick local reruns.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NEON_VENV:-$ROOT/.venv}
cd "$ROOT"
unset CYCLONEDDS_HOME NEON_ASSETS NEON_DEMO_TEST_CHECKPOINT
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}

if [ -n "${NEON_TEST_CACHE:-}" ]; then
  mkdir -p "$NEON_TEST_CACHE"
  export XDG_CACHE_HOME=$NEON_TEST_CACHE
else
  XDG_CACHE_HOME=$(mktemp -d -t neon-test-cache.XXXXXX)
  export XDG_CACHE_HOME
  trap 'rm -rf "$XDG_CACHE_HOME"' EXIT
fi
export NEON_SUITE_CACHE=$XDG_CACHE_HOME  # test/conftest.py suite_cache: the tests may share what this run built
echo "[neon test] cache: $XDG_CACHE_HOME ($(find "$XDG_CACHE_HOME" -mindepth 1 -maxdepth 1 | wc -l) entries)"
"$VENV/bin/neon-ros" assets --quiet  # the G1 model, fetched into this cache as on a first run
"$VENV/bin/python" -m pytest -q --durations=15 "$@"
