"""Neon: a frozen video foundation model + a ~6M-parameter action head for the Unitree G1.

The package is plain-Python core modules (no rclpy) plus thin ROS 2 node files under
``neon_ros.nodes``. Importing ``neon_ros`` has no side effects.
"""

__version__ = "0.1.0"
