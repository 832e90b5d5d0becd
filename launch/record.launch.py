"""Record a training session (contract.TRAINING_TOPICS) to mcap with `ros2 bag record`.

    ros2 launch neon_ros record.launch.py output:=bags/session1
    ros2 launch neon_ros record.launch.py use_recorder:=true   # no rosbag2 here: Neon's recorder node

Then: ``neon-ros bag2dataset bags/session1 datasets/g1_teleop`` cuts it into episodes.
Discovery stays on this machine like the stack's (``discovery_range:=SUBNET`` widens it); the
recorder runs in SROS2 enclave /neon/recorder (``ros2 bag``: ROS_SECURITY_ENCLAVE_OVERRIDE).
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription
from neon_ros.contract import TRAINING_TOPICS
from neon_ros.tools.security import DEFAULT_DISCOVERY_RANGE, discovery_actions, enclave

PACKAGE = "neon_ros"


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    use_recorder = arg("use_recorder")
    bag = ExecuteProcess(
        cmd=["ros2", "bag", "record", "-s", "mcap", "-o", arg("output"),
             "--max-bag-duration", arg("max_bag_seconds"), *TRAINING_TOPICS],
        output="screen", condition=UnlessCondition(use_recorder))
    recorder = Node(package=PACKAGE, executable="recorder", name="recorder", output="screen",
                    condition=IfCondition(use_recorder), arguments=["--ros-args", "--enclave", enclave("recorder")],
                    parameters=[{"output": arg("output"), "topics": list(TRAINING_TOPICS),
                                 "max_bag_seconds": ParameterValue(arg("max_bag_seconds"), value_type=float)}])
    return LaunchDescription([
        DeclareLaunchArgument("output", default_value="bags/session", description="bag directory"),
        DeclareLaunchArgument("max_bag_seconds", default_value="0", description="split period, s (0 = never)"),
        DeclareLaunchArgument("use_recorder", default_value="false",
                              description="use Neon's recorder node instead of `ros2 bag record`"),
        DeclareLaunchArgument("discovery_range", default_value=DEFAULT_DISCOVERY_RANGE,
                              description="ROS 2 discovery: LOCALHOST (this computer only) or SUBNET"),
        *discovery_actions(arg("discovery_range")),
        bag,
        recorder,
    ])
