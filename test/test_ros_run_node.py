"""rosutil.run_node: a node that crashes in native code says where, on stderr."""

import subprocess
import textwrap

import pytest
from support import REPO, python, ros_env

pytestmark = pytest.mark.ros

# A node whose timer callback dies of a real SIGSEGV (faulthandler's own test trigger), the way a
# DDS or rclpy callback dies in native code.
CRASHING_NODE = textwrap.dedent("""
    import faulthandler
    from rclpy.node import Node
    from neon_ros.ros import rosutil

    class Crasher(Node):
        def __init__(self):
            super().__init__("crasher")
            self.create_timer(0.05, self.crash_in_native_code)

        def crash_in_native_code(self):
            faulthandler._sigsegv()

    rosutil.run_node(Crasher, args=[])
""")


def test_a_native_crash_prints_the_python_stack_of_the_callback():
    out = subprocess.run(python("-c", CRASHING_NODE), env=ros_env(), cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == -11, (out.returncode, out.stderr[-2000:])
    assert "Fatal Python error: Segmentation fault" in out.stderr, out.stderr[-2000:]
    assert "crash_in_native_code" in out.stderr, out.stderr[-2000:]
