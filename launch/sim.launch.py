"""Neon on the simulated G1: sim_g1 (MuJoCo, rendered head camera) + the nodes of neon.launch.py.

    ros2 launch neon_ros sim.launch.py
    ros2 launch neon_ros sim.launch.py rviz:=true urdf:=/path/to/g1_29dof.urdf

The bridge runs in ``lowcmd`` mode (all 29 joints; the pelvis is pinned as on a gantry)
and starts enabled. sim_g1 and the bridge talk real Unitree DDS on the loopback
interface in their own DDS domain (default 1, away from a robot's 0).
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "neon_ros"


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "neon.yaml"])
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "neon.launch.py"])),
        launch_arguments={
            "params_file": params,
            "bridge_mode": "lowcmd",
            "autostart": "true",
            "network_interface": "lo",
            "dds_domain_id": arg("dds_domain_id"),
            "checkpoint": arg("checkpoint"),
            "speech_source": arg("speech_source"),
            "speech_output": arg("speech_output"),
            "rviz": arg("rviz"),
            "urdf": arg("urdf"),
        }.items(),
    )
    sim = Node(package=PACKAGE, executable="sim_g1", name="sim_g1", output="screen",
               parameters=[params, {
                   "network_interface": "lo",
                   "dds_domain_id": ParameterValue(arg("dds_domain_id"), value_type=int),
                   "fixed_base": ParameterValue(arg("fixed_base"), value_type=bool),
                   "camera_rate": ParameterValue(arg("camera_rate"), value_type=float),
               }])
    return LaunchDescription([
        DeclareLaunchArgument("dds_domain_id", default_value="1", description="Unitree DDS domain of the sim"),
        DeclareLaunchArgument("fixed_base", default_value="true", description="pin the pelvis (gantry)"),
        DeclareLaunchArgument("camera_rate", default_value="30.0", description="rendered camera Hz (0 = off)"),
        DeclareLaunchArgument("checkpoint", description="action head checkpoint (required)"),
        DeclareLaunchArgument("speech_source", default_value="mic", description="speech_in audio_source"),
        DeclareLaunchArgument("speech_output", default_value="speaker", description="speech_out output"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz"),
        DeclareLaunchArgument("urdf", default_value="", description="G1 URDF for RViz"),
        sim,
        robot,
    ])
