"""The Neon action head: a ~6M-parameter decoder on frozen backbone features.

Modules (import what you need; nothing here imports rclpy or runs at import):
- ``embodiment``: registry of robots whose demonstrations train the head;
- ``actions``: relative-action math (T_rel = T_now^-1 T_future, 6D rotations, deltas),
  normalisation statistics;
- ``model``: ``HeadConfig`` and ``ActionHead`` (one readable file) with its loss;
- ``checkpoint``: safetensors weights + JSON config, shape-checked loading;
- ``runtime``: ``HeadRuntime`` (torch or onnxruntime), what the action_head node calls;
- ``kinematics``: G1 hand forward kinematics and damped-least-squares IK;
- ``onnx_export``: ONNX export verified against onnxruntime;
- ``bench``: ``neon-ros bench head``.
"""
