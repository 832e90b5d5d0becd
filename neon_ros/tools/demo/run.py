"""`neon-ros demo` orchestration: start the stack on a simulated G1, watch it, report, stop.

Children (real nodes, real DDS, each its own process and log under logs/):
sim_g1 (MuJoCo, rendered head camera), g1_bridge (lowcmd, autostart), bridge_watchdog
(damps the robot if the bridge dies), camera_buffer, backbone (cpu_default), action_head
(the demo head: trained on the simulated soup on first run and cached), speech_in (fed the
task spoken by espeak-ng), speech_out (WAVs into the report's narration/ folder).
The demo process itself runs one observer node.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from neon_ros.tools import processes
from neon_ros.tools.demo.report import RunInfo, write_report
from neon_ros.tools.demo.status import StatusPrinter, silent_stage, status_lines
from neon_ros.tools.demo.tasks import DEFAULT_TASK, DemoTask, evaluate, resolve_task

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config" / "neon.yaml"


@dataclass
class DemoConfig:
    """One demo run.

    seconds: how long to watch the live stack (after the first chunk and the instruction).
    task: a task of the simulated soup (neon_ros.data.sim_expert.TASKS) or any instruction text.
    headless: no in-place terminal redraw and no browser at the end.
    output_root: reports/demo-<time>/ is created under it.
    checkpoint: a head checkpoint; '' = ensure_demo_head() (trained once, cached).
    quick: train the quick demo head when none is cached (tests).
    ros_domain_id, dds_domain_id: None = random (ROS 201..230, Unitree DDS 101..200).
    localhost_only: ROS 2 discovery limited to this machine.
    startup_timeout: s to wait for the first chunk before giving up.
    instruction_timeout: s to wait for speech_in before publishing the typed task instead.
    camera_rate: sim_g1 head camera Hz (0 = the demo head's training data rate).
    camera_size: (width, height) of the rendered camera ((0, 0) = the training data's).
    params_file: node parameters (config/neon.yaml of the checkout if it exists).
    record: also run the `recorder` node: the session's training topics go to <report>/bag
        (mcap), ready for `neon-ros bag2dataset`.
    """

    seconds: float = 30.0
    task: str = DEFAULT_TASK
    headless: bool = False
    output_root: Path = Path("reports")
    checkpoint: str = ""
    quick: bool = False
    ros_domain_id: int | None = None
    dds_domain_id: int | None = None
    localhost_only: bool = True
    startup_timeout: float = 240.0
    instruction_timeout: float = 60.0
    camera_rate: float = 0.0
    camera_size: tuple[int, int] = (0, 0)
    params_file: Path | None = field(default_factory=lambda: REPO_CONFIG if REPO_CONFIG.is_file() else None)
    record: bool = False

    def __post_init__(self) -> None:
        if not 1.0 <= self.seconds <= 3600:
            raise ValueError(f"--seconds must be in [1, 3600], got {self.seconds}")
        if self.startup_timeout <= 0 or self.instruction_timeout <= 0:
            raise ValueError("startup_timeout and instruction_timeout must be > 0")
        if not 0 <= self.camera_rate <= 60:
            raise ValueError(f"camera_rate must be in [0, 60] Hz, got {self.camera_rate}")
        if len(self.camera_size) != 2 or min(self.camera_size) < 0:
            raise ValueError(f"camera_size must be (width, height) >= 0, got {self.camera_size}")
        self.output_root = Path(self.output_root)
        if self.params_file is not None and not Path(self.params_file).is_file():
            raise FileNotFoundError(f"params file {self.params_file} does not exist")
        resolve_task(self.task)  # raises on an empty task


def training_camera(quick: bool) -> tuple[float, int, int]:
    """(fps, width, height) of the camera the demo head was trained on (the sim soup recipe)."""
    try:
        from neon_ros.tools.demo.demo_head import recipe

        r = recipe(quick)
        return float(r.fps), int(r.camera_size[0]), int(r.camera_size[1])
    except (ImportError, OSError, KeyError, ValueError):
        return 10.0, 128, 128


def node_params(cfg: DemoConfig, checkpoint: str, dds: int, speech_wav: Path, narration_dir: Path
                ) -> dict[str, dict[str, object]]:
    """The demo's parameters of each stack node, on top of the stack table's simulation overrides."""
    fps, width, height = training_camera(cfg.quick and not cfg.checkpoint)
    return {
        # A laptop CPU shares itself between physics, rendering, the backbone and Whisper: allow
        # older features and longer gaps than on the robot (where config/neon.yaml rules).
        "g1_bridge": {"dds_domain_id": dds, "damp_timeout": 5.0, "lowstate_timeout": 1.0},
        # damps the simulated robot if the bridge dies, as in the launch files (the bridge's domain;
        # the table gives it the bridge's mode and interface)
        "bridge_watchdog": {"dds_domain_id": dds},
        # the camera the head was trained on: same rate and render size as the soup's demonstrations
        "sim_g1": {"dds_domain_id": dds, "camera_rate": float(cfg.camera_rate or fps),
                   "camera_width": cfg.camera_size[0] or width, "camera_height": cfg.camera_size[1] or height},
        "camera_buffer": {"source": "topic", "preset": "cpu_default"},
        # the vision tower in onnxruntime on one thread: 3x faster than torch eager on a CPU
        "backbone": {"preset": "cpu_default", "runtime": "onnxruntime", "threads": 1},
        # features up to 1.2 s old still give chunks the bridge accepts (last point 0.75 s + max_input_age 0.5 s)
        "action_head": {"checkpoint": checkpoint, "max_feature_age": 1.2},
        "speech_in": {"audio_source": str(speech_wav)},
        "speech_out": {"output": str(narration_dir)},
    }


def cached_demo_head(quick: bool = False) -> Path:
    """The demo head under <cache>/demo_head (~/.cache/neon): trained on first use, then reused."""
    try:
        from neon_ros.tools.demo.demo_head import ensure_demo_head
    except ImportError as exc:
        raise RuntimeError(f"the demo head trainer is not available ({exc}); pass --checkpoint") from exc
    from neon_ros.sim.assets import cache_root

    # Building renders the sim soup (MuJoCo EGL) and then loads the backbone (transformers,
    # which imports triton): importing triton AFTER an EGL context segfaults in this stack,
    # before it is fine. So load it first when it is installed.
    with contextlib.suppress(ImportError):
        importlib.import_module("triton")
    return Path(ensure_demo_head(cache_root() / "demo_head", quick=quick))


def demo_checkpoint(cfg: DemoConfig, say) -> str:
    if cfg.checkpoint:
        return cfg.checkpoint
    say("preparing the demo head (trained on the simulated soup on first run, then cached)...")
    t0 = time.monotonic()
    path = cached_demo_head(cfg.quick)
    say(f"demo head: {path} ({time.monotonic() - t0:.1f} s)")
    return str(path)


def run_demo(cfg: DemoConfig, stream=None) -> tuple[int, Path]:
    """Run the whole demo; return (exit code, report directory)."""
    stream = stream or sys.stdout
    interactive = (not cfg.headless) and stream.isatty()
    printer = StatusPrinter(stream, interactive)
    task: DemoTask = resolve_task(cfg.task)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = cfg.output_root / time.strftime("demo-%Y%m%d-%H%M%S")
    n = 1
    while out.exists():
        out = cfg.output_root / f"{time.strftime('demo-%Y%m%d-%H%M%S')}-{n}"
        n += 1
    (out / "narration").mkdir(parents=True)
    ros, dds = processes.pick_domains(cfg.ros_domain_id, cfg.dds_domain_id)
    env = processes.child_env(ros, localhost_only=cfg.localhost_only)
    processes.join_domain(env)  # the observer node joins the same domain
    info = RunInfo(task=task, seconds=cfg.seconds, started=started, ros_domain_id=ros, dds_domain_id=dds)
    printer.message(f"Neon demo: task {task.name!r} ({task.instruction!r}); report -> {out}")
    printer.message(f"ROS_DOMAIN_ID={ros} (localhost only: {cfg.localhost_only}), Unitree DDS domain {dds}")

    info.checkpoint = demo_checkpoint(cfg, printer.message)
    wav = processes.synthesize_speech(task.instruction, out / "speech" / "command.wav")
    printer.message(f"spoken command synthesised: {wav}")
    params = node_params(cfg, info.checkpoint, dds, wav, out / "narration")

    from neon_ros.ros.monitor import MonitorThread  # rclpy from here on

    monitor = MonitorThread()
    rec = monitor.record
    group = processes.ProcessGroup(env, out / "logs")
    code = 0
    kin = None
    try:
        group.start_stack(params, cfg.params_file)
        if cfg.record:
            group.start("recorder", processes.node_command(
                "recorder", {"output": str(out / "bag")}, cfg.params_file))
        names = [c.name for c in group.children]
        printer.message(f"started {len(names)} nodes: {', '.join(names)} (logs in {out / 'logs'})")
        code, kin = _watch(cfg, task, monitor, group, printer, info)
    except KeyboardInterrupt:
        info.notes.append("interrupted by the user (Ctrl-C)")
        code = 130
    finally:
        printer.message("stopping the nodes (SIGINT, clean shutdown)...")
        group.stop(grace=15.0)
        info.observed_s = monitor.node.now()
        monitor.close()
    for c in group.children:
        info.children[c.name] = {"returncode": c.returncode, "stop_signal": c.stop_signal,
                                 "log": str(c.log_path.relative_to(out))}
    if kin is None:
        from neon_ros.runtime.kinematics import G1Kinematics

        kin = G1Kinematics()
    t, q = rec.joint_arrays()
    outcome = evaluate(task, t, q, kin, live_from=info.live_from)
    summary = write_report(out, rec, info, outcome)
    printer.message(f"\n{outcome.summary}")
    printer.message(f"report: {out / 'report.md'} (figures: {', '.join(summary['figures'])}; "
                    f"{len(summary['narration_wavs'])} narration WAVs)")
    latest = cfg.output_root / "latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink():
            latest.unlink()
        if not latest.exists():
            latest.symlink_to(out.name)
    if cfg.record:
        printer.message(f"recorded session: {out / 'bag'} (neon-ros bag2dataset {out / 'bag'} DATASET_DIR)")
    if interactive and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        import webbrowser

        webbrowser.open((out / "report.html").resolve().as_uri())
    return code, out


def _cpu_snapshot(group: processes.ProcessGroup) -> dict[str, dict]:
    """Every node's threads' CPU time, and this process's (the observer: status, live figures)."""
    return {**{c.name: processes.thread_cpu_ns(c.popen.pid) for c in group.children},
            "demo observer": processes.thread_cpu_ns(os.getpid())}


def _watch(cfg: DemoConfig, task: DemoTask, monitor, group: processes.ProcessGroup, printer: StatusPrinter,
           info: RunInfo):
    """Startup phase, then the live phase; returns (exit code, kinematics used for live distance)."""
    from neon_ros.runtime.kinematics import G1Kinematics
    from neon_ros.tools.demo.tasks import palm_distances

    rec = monitor.record
    kin = G1Kinematics()
    t_start = time.monotonic()
    live_at = None
    cpu_at_live: dict[str, dict] = {}
    typed = False
    last_enable = 0.0
    reenables = 0
    while True:
        time.sleep(1.0)
        now_wall = time.monotonic()
        dead = group.dead()
        if dead:
            for c in dead:
                info.notes.append(f"{c.name} exited early with code {c.popen.returncode}; log tail:\n"
                                  + c.tail())
                printer.message(f"ERROR: {c.name} exited (code {c.popen.returncode}); last lines:\n{c.tail()}")
            return 1, kin
        with rec.lock:
            heard = bool(rec.instructions)
            first_chunk = rec.live_since is not None
            last_q = rec.js_q[-1] if rec.js_q else None
        if not heard and not typed and now_wall - t_start > cfg.instruction_timeout:
            monitor.node.publish_instruction(task.instruction)
            typed = True
            info.instruction_source = "typed (speech_in heard nothing in time)"
            info.notes.append(f"speech_in delivered no instruction within {cfg.instruction_timeout:g} s; "
                              "the demo published the typed task instead")
            printer.message("speech_in heard nothing yet: publishing the typed instruction")
        # The simulated robot on a busy laptop: when the bridge latched damping for a timing
        # reason (never an e-stop or a damp request), do what the operator would: enable again.
        with rec.lock:
            level, message = rec.diag_messages.get("g1_bridge", ("", ""))
        if (message.startswith("damping") and "estop" not in message and "damp_service" not in message
                and reenables < 20 and now_wall - last_enable > 3.0
                and monitor.node.request_enable()):
            last_enable = now_wall
            reenables += 1
            info.notes.append(f"t={monitor.node.now():.1f} s: bridge was '{message}'; the demo re-enabled it")
            printer.message(f"bridge: {message}; re-enabling (/g1_bridge/enable)")
        distance = float(palm_distances(last_q[None], kin).min()) if last_q is not None else None
        if live_at is None and first_chunk and (heard or typed):
            live_at = now_wall
            info.startup_s = live_at - t_start
            info.live_from = monitor.node.now()
            printer.message(f"LIVE after {info.startup_s:.1f} s: chunks flowing, instruction in force")
            cpu_at_live = _cpu_snapshot(group)
        elapsed = now_wall - (live_at if live_at is not None else t_start)
        phase = "running" if live_at is not None else "starting"
        printer.show(status_lines(rec, monitor.node.now(), phase, elapsed, cfg.seconds, distance))
        if live_at is not None and elapsed >= cfg.seconds:
            info.live_s = elapsed
            info.cpu = processes.cpu_profile(cpu_at_live, _cpu_snapshot(group), time.monotonic() - live_at)
            return 0, kin
        if live_at is None and now_wall - t_start > cfg.startup_timeout:
            with rec.lock:
                silent = silent_stage(rec.counts, rec.diag_messages)
            if silent is None:  # chunks flow: the instruction never came
                why = "no instruction arrived (speech_in heard nothing and the typed fallback was not seen)"
                node = "speech_in"
            else:
                node, why = silent
            child = next((c for c in group.children if c.name == node), None)
            tail = f"\n{node} log tail:\n{child.tail()}" if child is not None else ""
            info.notes.append(f"not live within {cfg.startup_timeout:g} s of starting: {why}")
            printer.message(f"ERROR: the stack did not go live in {cfg.startup_timeout:g} s: {why}{tail}")
            return 1, kin
