"""Neon on a real Unitree G1: the robot's nodes of the stack table (neon_ros.tools.stack) with config/neon.yaml.

    ros2 launch neon_ros neon.launch.py network_interface:=eth0 camera_topic:=/head_cam/image_raw
    ros2 service call /g1_bridge/enable std_srvs/srv/SetBool "{data: true}"   # then it moves

The bridge starts in ``arm_sdk`` mode (waist + arms; Unitree's controller keeps balance)
and DISABLED: nothing reaches the motors until /g1_bridge/enable is called (the table's
robot overrides are the defaults of the bridge arguments). bridge_watchdog runs beside
it on the same mode, interface and domain: if the bridge dies it damps the robot.
body_bridge (the head's base velocity to Unitree's loco service in arm_sdk mode, and the Dex3
hands) shares them too and starts disabled as well: /body_bridge/enable.
sim.launch.py includes this file with the table's simulation overrides (bridge_mode:=lowcmd
autostart:=true).
Access: ROS 2 discovery stays on this machine (``discovery_range`` LOCALHOST; SUBNET lets
other computers on the network see, command and enable the robot), the Unitree DDS uses only
``network_interface``, and every node runs in its SROS2 enclave /neon/NODE, used once
ROS_SECURITY_ENABLE=true (keystore: ``neon-ros security``).
Works with the launch API of Humble, Jazzy and Kilted.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from neon_ros.contract import TOPIC_CAMERA
from neon_ros.tools.security import DEFAULT_DISCOVERY_RANGE, discovery_actions, enclave
from neon_ros.tools.stack import node, param_text, robot_nodes

PACKAGE = "neon_ros"
BRIDGE = node("g1_bridge").robot
WATCHDOG = node("bridge_watchdog").robot

ARGUMENTS = (
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "neon.yaml"]),
     "node parameters (YAML)"),
    ("camera_topic", TOPIC_CAMERA, "the head camera's sensor_msgs/Image topic"),
    ("discovery_range", DEFAULT_DISCOVERY_RANGE,
     "ROS 2 discovery: LOCALHOST (this computer only) or SUBNET (anyone on the network can command the robot)"),
    ("bridge_mode", param_text(BRIDGE["mode"]),
     "g1_bridge mode: arm_sdk (robot default) or lowcmd (sim / gantry only)"),
    ("autostart", param_text(BRIDGE["autostart"]), "enable the bridge at start (true only in simulation)"),
    ("network_interface", param_text(BRIDGE["network_interface"]), "network interface on the robot's DDS network"),
    ("dds_domain_id", param_text(BRIDGE["dds_domain_id"]), "Unitree DDS domain (0 on the robot)"),
    ("bridge_rt_priority", param_text(BRIDGE["rt_priority"]),
     "SCHED_FIFO priority of g1_bridge (0 = normal; real-time where permitted on the robot)"),
    ("watchdog_rt_priority", param_text(WATCHDOG["rt_priority"]),
     "SCHED_FIFO priority of bridge_watchdog (0 = normal; real-time where permitted on the robot)"),
    ("gravity_compensation", param_text(BRIDGE["gravity_compensation"]),
     "g1_bridge adds the model's gravity torque as feed-forward"),
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
    from_arguments = {  # per node: the parameters this file's arguments set
        # the clip geometry (T, H, W) comes from the same preset the backbone runs
        "camera_buffer": {"preset": arg("preset")},
        "backbone": {"preset": arg("preset")},
        "action_head": {"checkpoint": arg("checkpoint")},
        "speech_in": {"audio_source": arg("speech_source")},
        "speech_out": {"output": arg("speech_output")},
        "g1_bridge": {
            "mode": arg("bridge_mode"),
            "autostart": ParameterValue(arg("autostart"), value_type=bool),
            "network_interface": arg("network_interface"),
            "dds_domain_id": ParameterValue(arg("dds_domain_id"), value_type=int),
            "gravity_compensation": ParameterValue(arg("gravity_compensation"), value_type=bool),
            "rt_priority": ParameterValue(arg("bridge_rt_priority"), value_type=int),
        },
        # the head's base velocity and hands: the bridge's mode (arm_sdk: loco allowed), enable, interface, domain
        "body_bridge": {
            "mode": arg("bridge_mode"),
            "autostart": ParameterValue(arg("autostart"), value_type=bool),
            "network_interface": arg("network_interface"),
            "dds_domain_id": ParameterValue(arg("dds_domain_id"), value_type=int),
        },
        # the watchdog listens to the bridge's commands: same mode (topic), interface and domain
        "bridge_watchdog": {
            "mode": arg("bridge_mode"),
            "network_interface": arg("network_interface"),
            "dds_domain_id": ParameterValue(arg("dds_domain_id"), value_type=int),
            "rt_priority": ParameterValue(arg("watchdog_rt_priority"), value_type=int),
        },
    }
    remappings = {"camera_buffer": [(TOPIC_CAMERA, arg("camera_topic"))]}
    nodes = [
        *(Node(package=PACKAGE, executable=n.name, name=n.name, output="screen",
               parameters=[params, from_arguments.get(n.name, {})], remappings=remappings.get(n.name, []),
               arguments=["--ros-args", "--enclave", enclave(n.name)])
          for n in robot_nodes()),
        Node(package="robot_state_publisher", executable="robot_state_publisher", condition=rviz,
             parameters=[{"robot_description": ParameterValue(Command(["cat ", arg("urdf")]), value_type=str)}]),
        Node(package="rviz2", executable="rviz2", condition=rviz, arguments=["-d", arg("rviz_config")]),
        # /diagnostics (rates, latencies, faults of every node): RViz has no display for it.
        Node(package="rqt_robot_monitor", executable="rqt_robot_monitor", condition=rviz),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, description=doc, **({} if default is None else {"default_value": default}))
         for name, default, doc in ARGUMENTS]
        + discovery_actions(arg("discovery_range"))
        + nodes)
