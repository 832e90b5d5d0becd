"""`neon-ros teleop`: take over the G1 from the policy, from a script or the keyboard.

Publishes trajectory_msgs/JointTrajectory on /neon/teleop/joint_trajectory at --rate
(default 20 Hz) naming only the joints you move; g1_bridge lets teleop override the
policy for those joints while messages keep coming (teleop_timeout, 0.3 s). When this
command ends (script done, q, end of input, space) it releases the joints and the bridge
fades back to the policy; if it dies instead, the bridge holds teleop's last target (a
deadman: bridge parameter teleop_loss). Every target goes through the bridge's safety layer
(joint limits, velocity and torque limits), so nothing here can command an unsafe pose.

Three ways to drive:

  neon-ros teleop --joint right_shoulder_pitch_joint=-0.8 --joint right_elbow_joint+=0.3 --duration 3
      hold these joints (absolute rad, or +=/-= relative to the pose at start) for 3 s

  neon-ros teleop --script wave.txt
      a keyframe script, one line per keyframe, linearly interpolated:
          # time_s   joint=value ...       (rad; NAME+=D / NAME-=D relative to the start pose)
          0.0   right_shoulder_pitch_joint+=0
          1.0   right_shoulder_pitch_joint=-1.2  right_elbow_joint=0.2
          2.5   right_shoulder_pitch_joint=-1.2  right_elbow_joint=0.8
      joints missing from a keyframe keep their value; teleop ends after the last keyframe

  neon-ros teleop            (on a terminal: keyboard)
      n / p      next / previous joint        + / -   move it by the step (default 0.05 rad)
      ] / [      double / halve the step      space   release all (hand back to the policy)
      e          E-STOP (/neon/estop true: the bridge damps)      q   quit (hands back)
      end of input quits (never a move)

``--estop`` only sends the e-stop: latched, once g1_bridge's subscription matched, and
acknowledged; exit status 1 if no subscriber matched within 2 s (nothing was stopped). The
bridge keeps damping until the e-stop is released (``ros2 topic pub --once /neon/estop
std_msgs/msg/Bool "{data: false}"``) and /g1_bridge/enable is called. Pose and joint names: /joint_states, G1 names
(``neon_ros.g1.JOINT_NAMES``). rclpy is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neon_ros.runtime.teleop import TeleopError, TeleopScript, parse_assignment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--script", type=Path, help="keyframe script (format above)")
    src.add_argument("--joint", action="append", default=[], metavar="NAME=VALUE",
                     help="hold a joint: NAME=rad, NAME+=rad or NAME-=rad (repeatable)")
    src.add_argument("--estop", action="store_true",
                     help="send /neon/estop true (latched; the bridge damps) and exit; 1 if no bridge matched")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds to hold --joint targets (default 3)")
    parser.add_argument("--rate", type=float, default=20.0, help="publish rate, Hz (default 20; bridge needs > 3.4)")
    parser.add_argument("--step", type=float, default=0.05, help="keyboard step, rad (default 0.05)")
    parser.add_argument("--state-timeout", type=float, default=10.0,
                        help="seconds to wait for /joint_states (the start pose), and then for the bridge's "
                             "teleop subscription, before giving up (a script's clock starts once it matched)")


def load_plan_source(args: argparse.Namespace) -> TeleopScript | None:
    """The script or --joint hold the arguments describe (None = keyboard)."""
    if args.script is not None:
        if not args.script.is_file():
            raise TeleopError(f"teleop script {args.script} does not exist")
        return TeleopScript.parse(args.script.read_text(), str(args.script))
    if args.joint:
        return TeleopScript.hold([parse_assignment(a) for a in args.joint], args.duration)
    return None


def run(args: argparse.Namespace) -> int:
    if args.rate <= 1.0 / 0.3 or args.rate > 500:
        print(f"--rate must be in (3.4, 500] Hz so the bridge sees teleop as fresh, got {args.rate}",
              file=sys.stderr)
        return 2
    try:
        script = None if args.estop else load_plan_source(args)
    except TeleopError as exc:
        print(f"neon-ros teleop: {exc}", file=sys.stderr)
        return 2
    if script is None and not args.estop and not sys.stdin.isatty():
        print("neon-ros teleop: no --script/--joint and stdin is not a terminal (keyboard mode needs a tty)",
              file=sys.stderr)
        return 2
    from neon_ros.ros.teleop import run_teleop  # rclpy only from here on

    return run_teleop(args, script)

