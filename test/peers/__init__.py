"""Peer processes of the ROS tests, each run as ``python -m test.peers.NAME``."""

from __future__ import annotations

import time
from collections.abc import Callable


def spin_until(executor, seconds: float, done: Callable[[], bool] = lambda: False, step: float = 0.1) -> bool:
    """Spin ``executor`` for ``seconds`` or until ``done()``, in ``step`` s slices; returns ``done()``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not done():
        executor.spin_once(timeout_sec=step)
    return done()


def shut_down(executor, node) -> None:
    """A peer's end: its executor first, then its node, then rclpy (a node destroyed under a
    running executor can crash the process on its way out)."""
    import rclpy

    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
