"""ruff (configured in pyproject.toml) passes on the package, launch files and tests."""

import subprocess
import sys
from pathlib import Path

from support import REPO


def test_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    out = subprocess.run([str(ruff), "check", "neon_ros", "test", "launch"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
