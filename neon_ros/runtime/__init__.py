"""The inference core that runs on the robot computer, no rclpy.

ring (frames -> clips), image (Image fields <-> arrays), encoder/geometry (clip shape per
backbone), gate (which features the head may act on), head + checkpoint (HeadRuntime on
torch / onnxruntime, and the one clamp: prediction -> chunk), control (the 20 Hz control step),
kinematics (G1 hand FK/IK), narration (what the robot says), timing (deadlines, real-time
scheduling, rates, percentiles), trt (TensorRT engines, import-guarded), teleop (the keyframe
scripts and keyboard state of `neon-ros teleop`).
"""
