"""Plain-Python logic of the perception and inference nodes (no rclpy import).

ring: frame ring buffer -> clips; image: camera Image -> resized rgb8 arrays and video
sources; gate: which features the head may act on; chunk: head prediction -> safe
absolute chunk; markers: predicted hand paths as RViz markers; narration: when and
what the head says; timing: absolute-deadline ticker and rate/latency statistics.
"""
