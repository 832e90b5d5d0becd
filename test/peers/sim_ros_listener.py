"""Listens to sim_g1's ROS side: /camera/image_raw and its /diagnostics (real rclpy).

usage: python -m test.peers.sim_ros_listener TIMEOUT_S MIN_FRAMES

Waits for MIN_FRAMES camera images and one sim_g1 physics diagnostics status, then prints
RESULT with the image geometry, red-pixel count of the last frame and the diagnostics values.
"""

import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from neon_ros import contract
from neon_ros.ros import msgs, rosutil


def main() -> int:
    timeout, min_frames = float(sys.argv[1]), int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("sim_ros_listener")
    got = {"frames": 0, "image": None, "diag": None}

    def on_image(msg: Image) -> None:
        got["frames"] += 1
        got["image"] = msg

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == "sim_g1: physics":
                got["diag"] = msgs.diagnostic_values(st)

    node.create_subscription(Image, contract.TOPIC_CAMERA, on_image, rosutil.SENSOR_QOS)
    node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (got["frames"] < min_frames or got["diag"] is None):
        rclpy.spin_once(node, timeout_sec=0.1)
    out = {"frames": got["frames"]}
    img = got["image"]
    if img is not None:
        out.update(encoding=img.encoding, width=img.width, height=img.height, step=img.step,
                   data_len=len(img.data), frame_id=img.header.frame_id)
        if img.encoding == "rgb8" and len(img.data) == img.height * img.width * 3:
            rgb = np.frombuffer(bytes(img.data), dtype=np.uint8).reshape(img.height, img.width, 3).astype(int)
            out["red_px"] = int(((rgb[..., 0] > 120) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)).sum())
            out["std"] = round(float(rgb.std()), 2)
    for k, v in (got["diag"] or {}).items():
        out[k] = v
    print("RESULT " + " ".join(f"{k}={v}" for k, v in out.items()), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
