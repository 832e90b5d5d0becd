"""Names and sizes of DESIGN.md sections 2-5, in one place (no rclpy import).

Every node, tool and test takes topic names, chunk geometry and DDS topic names from
here, so the contract changes in one file together with DESIGN.md.
"""

from __future__ import annotations

# Action chunk geometry (DESIGN.md section 4).
CHUNK_STEPS = 16  # future steps per chunk
CONTROL_DT = 0.05  # s between chunk points (20 Hz control step)
CONTROL_RATE_HZ = 1.0 / CONTROL_DT
HEAD_INPUT_DIM = 2048  # pooled feature width the head consumes after its input projection

# Bridge / robot timing.
LOWCMD_DT = 0.002  # s, rt/lowcmd period (500 Hz)

# ROS 2 topics (DESIGN.md section 3).
TOPIC_CAMERA = "/camera/image_raw"
TOPIC_CLIP = "/neon/clip"
TOPIC_INSTRUCTION = "/neon/instruction"
TOPIC_FEATURES = "/neon/features"
TOPIC_JOINT_STATES = "/joint_states"
TOPIC_ACTION_CHUNK = "/neon/action_chunk"
TOPIC_TELEOP = "/neon/teleop/joint_trajectory"
TOPIC_ESTOP = "/neon/estop"
TOPIC_NARRATION = "/neon/narration"
TOPIC_MARKERS = "/neon/markers"
TOPIC_DIAGNOSTICS = "/diagnostics"
TOPIC_UTTERANCE_AUDIO = "/neon/utterance_audio"
TOPIC_LOCO_CMD = "/neon/loco_cmd"  # geometry_msgs/TwistStamped: the head's base velocity command
TOPIC_GRIP_CMD = "/neon/grip_cmd"  # sensor_msgs/JointState: hand closure 0..1 per hand (GRIP_NAMES)

SERVICE_ENABLE = "/g1_bridge/enable"
# g1_bridge takes chunks and teleop on a node of its own of this name: teleop waits for its subscription.
BRIDGE_COMMAND_NODE = "g1_bridge_commands"
# ... and the e-stop on a node of this name: an e-stop sender waits for its subscription.
BRIDGE_ESTOP_NODE = "g1_bridge_estop"
SERVICE_DAMP = "/g1_bridge/damp"
SERVICE_BODY_ENABLE = "/body_bridge/enable"

# /neon/grip_cmd: JointState names, one per hand; position = closure (0 open .. 1 closed).
GRIP_NAMES = ("left_hand", "right_hand")

# Topics a training recording needs (record.launch.py and the recorder use this list).
TRAINING_TOPICS = (
    TOPIC_CAMERA,
    TOPIC_INSTRUCTION,
    TOPIC_JOINT_STATES,
    TOPIC_ACTION_CHUNK,
    TOPIC_TELEOP,
    TOPIC_ESTOP,
    TOPIC_NARRATION,
)

# Robot-side DDS topics (unitree_sdk2py, names as on the robot).
DDS_LOWCMD = "rt/lowcmd"
DDS_LOWSTATE = "rt/lowstate"
DDS_ARM_SDK = "rt/arm_sdk"
# Dex3-1 hands (unitree_hg HandCmd_), one topic per hand, in GRIP_NAMES order.
DDS_DEX3_CMD = ("rt/dex3/left/cmd", "rt/dex3/right/cmd")

# Feature image encoding on /neon/features.
FEATURE_ENCODING = "32FC1"
