"""ruff (configured in pyproject.toml) passes, and its layering rule (TID251) really bites.

rclpy only in neon_ros/nodes, neon_ros/ros, neon_ros/tools, launch files and tests; torch
never in neon_ros/bridge or neon_ros/sim (their ruff.toml files extend the banned list).
"""

import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

RUFF = Path(sys.executable).parent / "ruff"


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), "check", "--no-cache", *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_ruff_clean():
    out = ruff("neon_ros", "test", "launch")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(("path", "source", "banned"), [
    ("neon_ros/runtime/probe.py", "import rclpy\n", True),
    ("neon_ros/policy/probe.py", "from rclpy.node import Node\n", True),
    ("neon_ros/data/probe.py", "def f():\n    import rclpy.executors\n", True),
    ("neon_ros/backbones/probe.py", "import rclpy.node\n", True),
    ("neon_ros/voice/probe.py", "from rclpy import qos\n", True),
    ("neon_ros/probe.py", "import rclpy\n", True),
    ("neon_ros/bridge/probe.py", "import rclpy\n", True),
    ("neon_ros/bridge/probe.py", "import torch.nn\n", True),
    ("neon_ros/sim/probe.py", "from torch import nn\n", True),
    ("neon_ros/sim/probe.py", "def f():\n    import torch\n", True),
    ("neon_ros/nodes/probe.py", "import rclpy.node\n", False),
    ("neon_ros/ros/probe.py", "from rclpy.node import Node\n", False),
    ("neon_ros/tools/probe.py", "import rclpy\n", False),
    ("launch/probe.py", "import rclpy\n", False),
    ("test/probe.py", "import rclpy\n", False),
    ("neon_ros/runtime/probe.py", "import torch\n", False),
    ("neon_ros/policy/probe.py", "from torch import nn\n", False),
])
def test_layering_rule(path, source, banned):
    out = ruff("--select", "TID251", "--output-format", "concise", "--stdin-filename", path, stdin=source)
    assert ("TID251" in out.stdout) == banned, out.stdout + out.stderr
    assert out.returncode == int(banned), out.stdout + out.stderr
