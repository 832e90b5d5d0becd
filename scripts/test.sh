#!/usr/bin/env bash
# Run the whole suite inside .venv (set up by scripts/setup.sh). Extra args go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NEON_VENV:-$ROOT/.venv}
cd "$ROOT"
unset CYCLONEDDS_HOME
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
exec "$VENV/bin/python" -m pytest -q --durations=15 "$@"
