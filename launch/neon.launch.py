"""Neon on a real Unitree G1: all six nodes with config/neon.yaml.

    ros2 launch neon_ros neon.launch.py network_interface:=eth0 camera_topic:=/head_cam/image_raw
    ros2 service call /g1_bridge/enable std_srvs/srv/SetBool "{data: true}"   # then it moves

The bridge starts in ``arm_sdk`` mode (waist + arms; Unitree's controller keeps balance)
and DISABLED: nothing reaches the motors until /g1_bridge/enable is called.
sim.launch.py includes this file with bridge_mode:=lowcmd autostart:=true.
Works with the launch API of Humble, Jazzy and Kilted.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "neon_ros"

ARGUMENTS = (
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "neon.yaml"]),
     "node parameters (YAML)"),
    ("camera_topic", "/camera/image_raw", "the head camera's sensor_msgs/Image topic"),
    ("bridge_mode", "arm_sdk", "g1_bridge mode: arm_sdk (robot default) or lowcmd (sim / gantry only)"),
    ("autostart", "false", "enable the bridge at start (true only in simulation)"),
    ("network_interface", "eth0", "network interface on the robot's DDS network"),
    ("dds_domain_id", "0", "Unitree DDS domain (0 on the robot)"),
    ("preset", "cpu_default", "backbone preset"),
    ("checkpoint", None, "action head checkpoint (required: `neon-ros train`, or the demo head "
                         "`neon-ros demo` caches under ~/.cache/neon/demo_head)"),
    ("speech_source", "mic", "speech_in audio_source: mic, a WAV file or a directory of WAVs"),
    ("speech_output", "speaker", "speech_out output: speaker or a directory for WAVs"),
    ("rviz", "false", "start RViz (config/neon.rviz), robot_state_publisher and rqt_robot_monitor"),
    ("urdf", "", "G1 URDF for the RViz robot model (e.g. unitree_ros g1_29dof.urdf); needed when rviz:=true"),
    ("rviz_config", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "neon.rviz"]),
     "RViz configuration"),
)


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    params = arg("params_file")
    rviz = IfCondition(arg("rviz"))
    nodes = [
        Node(package=PACKAGE, executable="camera_buffer", name="camera_buffer", output="screen",
             # the clip geometry (T, H, W) comes from the same preset the backbone runs
             parameters=[params, {"preset": arg("preset")}],
             remappings=[("/camera/image_raw", arg("camera_topic"))]),
        Node(package=PACKAGE, executable="backbone", name="backbone", output="screen",
             parameters=[params, {"preset": arg("preset")}]),
        Node(package=PACKAGE, executable="action_head", name="action_head", output="screen",
             parameters=[params, {"checkpoint": arg("checkpoint")}]),
        Node(package=PACKAGE, executable="speech_in", name="speech_in", output="screen",
             parameters=[params, {"audio_source": arg("speech_source")}]),
        Node(package=PACKAGE, executable="speech_out", name="speech_out", output="screen",
             parameters=[params, {"output": arg("speech_output")}]),
        Node(package=PACKAGE, executable="g1_bridge", name="g1_bridge", output="screen",
             parameters=[params, {
                 "mode": arg("bridge_mode"),
                 "autostart": ParameterValue(arg("autostart"), value_type=bool),
                 "network_interface": arg("network_interface"),
                 "dds_domain_id": ParameterValue(arg("dds_domain_id"), value_type=int),
             }]),
        Node(package="robot_state_publisher", executable="robot_state_publisher", condition=rviz,
             parameters=[{"robot_description": ParameterValue(Command(["cat ", arg("urdf")]), value_type=str)}]),
        Node(package="rviz2", executable="rviz2", condition=rviz, arguments=["-d", arg("rviz_config")]),
        # /diagnostics (rates, latencies, faults of every node): RViz has no display for it.
        Node(package="rqt_robot_monitor", executable="rqt_robot_monitor", condition=rviz),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, description=doc, **({} if default is None else {"default_value": default}))
         for name, default, doc in ARGUMENTS]
        + nodes)
