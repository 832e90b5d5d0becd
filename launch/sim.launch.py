"""Neon on the simulated G1: the stack table (neon_ros.tools.stack) with its simulation overrides.

    ros2 launch neon_ros sim.launch.py
    ros2 launch neon_ros sim.launch.py rviz:=true urdf:=/path/to/g1_29dof.urdf

The robot's nodes come from neon.launch.py, included with the table's simulation
overrides of the bridge: ``lowcmd`` mode (all 29 joints; the pelvis is pinned as on a
gantry), started enabled. The simulation-only nodes (sim_g1: MuJoCo, rendered head camera)
start here. sim_g1 and the bridge talk real Unitree DDS on the loopback interface in their
own DDS domain (default 1, away from a robot's 0). ROS 2 discovery stays on this machine
unless ``discovery_range:=SUBNET``.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from neon_ros.tools.security import DEFAULT_DISCOVERY_RANGE, discovery_actions, enclave
from neon_ros.tools.stack import STACK, node, param_text

PACKAGE = "neon_ros"
BRIDGE = node("g1_bridge").sim
WATCHDOG = node("bridge_watchdog").sim


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "neon.yaml"])
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "neon.launch.py"])),
        launch_arguments={
            "params_file": params,
            "bridge_mode": param_text(BRIDGE["mode"]),
            "autostart": param_text(BRIDGE["autostart"]),
            "network_interface": param_text(BRIDGE["network_interface"]),
            "gravity_compensation": param_text(BRIDGE["gravity_compensation"]),
            "bridge_rt_priority": param_text(BRIDGE["rt_priority"]),
            "watchdog_rt_priority": param_text(WATCHDOG["rt_priority"]),
            "dds_domain_id": arg("dds_domain_id"),
            "checkpoint": arg("checkpoint"),
            "speech_source": arg("speech_source"),
            "speech_output": arg("speech_output"),
            "rviz": arg("rviz"),
            "urdf": arg("urdf"),
            "discovery_range": arg("discovery_range"),
        }.items(),
    )
    from_arguments = {  # per simulation-only node: the parameters this file's arguments set
        "sim_g1": {
            "dds_domain_id": ParameterValue(arg("dds_domain_id"), value_type=int),
            "fixed_base": ParameterValue(arg("fixed_base"), value_type=bool),
            "camera_rate": ParameterValue(arg("camera_rate"), value_type=float),
        },
    }
    sim_only = [Node(package=PACKAGE, executable=n.name, name=n.name, output="screen",
                     parameters=[params, {**n.sim, **from_arguments.get(n.name, {})}],
                     arguments=["--ros-args", "--enclave", enclave(n.name)])
                for n in STACK if n.robot is None]
    return LaunchDescription([
        DeclareLaunchArgument("dds_domain_id", default_value="1", description="Unitree DDS domain of the sim"),
        DeclareLaunchArgument("fixed_base", default_value=param_text(node("sim_g1").sim["fixed_base"]),
                              description="pin the pelvis (gantry)"),
        DeclareLaunchArgument("camera_rate", default_value="30.0", description="rendered camera Hz (0 = off)"),
        DeclareLaunchArgument("checkpoint", description="action head checkpoint (required)"),
        DeclareLaunchArgument("speech_source", default_value="mic", description="speech_in audio_source"),
        DeclareLaunchArgument("speech_output", default_value="speaker", description="speech_out output"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz"),
        DeclareLaunchArgument("urdf", default_value="", description="G1 URDF for RViz"),
        DeclareLaunchArgument("discovery_range", default_value=DEFAULT_DISCOVERY_RANGE,
                              description="ROS 2 discovery: LOCALHOST (this computer only) or SUBNET"),
        *discovery_actions(arg("discovery_range")),
        *sim_only,
        robot,
    ])
