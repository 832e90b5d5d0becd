"""The demo report a person looks at: figures (PNG), report.md, report.html, summary.json.

Figures: commanded vs measured joints (the most active ones; teleop spans shaded), the
camera->features and camera->chunk latency histograms, rendered head-camera frames, and
palm-to-cup distance over time against the success threshold. Narration WAVs are in
``narration/`` next to the report (speech_out wrote them there).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neon_ros import contract, g1
from neon_ros.runtime.timing import percentiles
from neon_ros.tools.demo.record import DemoRecord
from neon_ros.tools.demo.tasks import DemoTask, TaskOutcome


@dataclass
class RunInfo:
    """Facts about the run the report states (filled by the orchestrator)."""

    task: DemoTask
    seconds: float
    started: str
    checkpoint: str = ""
    ros_domain_id: int = 0
    dds_domain_id: int = 0
    instruction_source: str = "speech"  # "speech" (speech_in heard it) or "typed" (fallback)
    startup_s: float = float("nan")
    live_s: float = 0.0
    observed_s: float = 0.0  # the observer node's whole watch, startup included
    live_from: float = 0.0  # observer time (s) when the live period began
    children: dict[str, dict] = field(default_factory=dict)  # name -> {"returncode", "stop_signal", "log"}
    cpu: dict[str, dict] = field(default_factory=dict)  # process -> {"percent" of one core, busiest "threads"}, live period
    notes: list[str] = field(default_factory=list)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def active_joints(measured: np.ndarray, commanded: np.ndarray, n: int = 6) -> list[int]:
    spread = np.zeros(g1.NUM_JOINTS)
    for arr in (measured, commanded):
        if len(arr):
            spread = np.maximum(spread, np.ptp(arr, axis=0))
    return sorted(np.argsort(-spread)[:n].tolist())


def tracking_error(t_meas: np.ndarray, q_meas: np.ndarray, t_cmd: np.ndarray, q_cmd: np.ndarray,
                   joints: list[int]) -> float:
    """RMS (rad) of commanded minus measured at the commanded times inside the measured span."""
    if len(t_meas) < 2 or len(t_cmd) == 0:
        return float("nan")
    inside = (t_cmd >= t_meas[0]) & (t_cmd <= t_meas[-1])
    if not inside.any():
        return float("nan")
    err = [q_cmd[inside, j] - np.interp(t_cmd[inside], t_meas, q_meas[:, j]) for j in joints]
    return float(np.sqrt(np.mean(np.square(err))))


def plot_joints(path: Path, rec: DemoRecord, joints: list[int]) -> None:
    plt = _plt()
    t_m, q_m = rec.joint_arrays()
    t_c, q_c = rec.commanded()
    fig, axes = plt.subplots(len(joints), 1, figsize=(10, 1.9 * len(joints) + 0.6), sharex=True, squeeze=False)
    spans = rec.source_spans("teleop")
    if len(t_c) > 1:  # break the commanded line where no chunk covered the time
        gaps = np.flatnonzero(np.diff(t_c) > 2 * contract.CONTROL_DT) + 1
        t_c = np.insert(t_c, gaps, np.nan)
        q_c = np.insert(q_c, gaps, np.nan, axis=0)
    for ax, j in zip(axes[:, 0], joints, strict=True):
        if len(t_c):
            ax.plot(t_c, q_c[:, j], "--", color="tab:orange", lw=1.2, label="commanded (chunks)")
        if len(t_m):
            ax.plot(t_m, q_m[:, j], color="tab:blue", lw=1.2, label="measured (/joint_states)")
        for a, b in spans:
            ax.axvspan(a, b, color="tab:green", alpha=0.15, label="teleop (bridge)" if (a, b) == spans[0] else None)
        ax.set_ylabel(g1.JOINT_NAMES[j].replace("_joint", ""), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=3)
    axes[-1, 0].set_xlabel("time since demo start (s)")
    fig.suptitle("Commanded vs measured joint angles (rad)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_latency(path: Path, rec: DemoRecord) -> dict[str, dict]:
    plt = _plt()
    series = {"camera -> features": rec.feature_latency_ms, "camera -> action chunk": rec.chunk_latency_ms}
    stats = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, (name, values) in zip(axes, series.items(), strict=True):
        vals = np.asarray(values, dtype=float)
        stats[name] = percentiles(vals)
        if vals.size:
            ax.hist(vals, bins=40, color="tab:purple", alpha=0.8)
            for q, style in ((50, "-"), (99, "--")):
                v = stats[name][f"p{q}"]
                ax.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.0f} ms")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no messages", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{name} (n={vals.size})", fontsize=10)
        ax.set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return stats


def plot_frames(path: Path, rec: DemoRecord, live_from: float = 0.0, n: int = 8) -> int:
    """The last frame before the live period, then frames spread over it."""
    plt = _plt()
    frames = rec.frames
    if not frames:
        return 0
    times = np.array([t for t, _ in frames])
    live = np.flatnonzero(times >= live_from)
    before = np.flatnonzero(times < live_from)[-1:]
    if live.size:
        spread = live[np.linspace(0, live.size - 1, min(n - before.size, live.size)).round().astype(int)]
        pick = np.unique(np.concatenate([before, spread]))
    else:
        pick = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int))
    cols = min(4, len(pick))
    rows = int(np.ceil(len(pick) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), pick, strict=False):
        t, img = frames[i]
        ax.imshow(img)
        ax.set_title(f"t = {t:.1f} s{' (before)' if t < live_from else ''}", fontsize=8)
    fig.suptitle("Head camera (rendered by sim_g1)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return len(pick)


def plot_distance(path: Path, outcome: TaskOutcome, task: DemoTask, rec: DemoRecord) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    if len(outcome.times):
        ax.plot(outcome.times, outcome.distances[:, 0] * 100, label="left palm")
        ax.plot(outcome.times, outcome.distances[:, 1] * 100, label="right palm")
    if rec.live_since is not None:
        ax.axvline(rec.live_since, color="k", ls=":", lw=1, label="first chunk")
    for a, b in rec.source_spans("teleop"):
        ax.axvspan(a, b, color="tab:green", alpha=0.15)
    ax.set_xlabel("time since demo start (s)")
    ax.set_ylabel("palm to cup (cm)")
    ax.set_title("Hand-to-cup distance (FK of measured joints vs the scene's cup)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_summary(rec: DemoRecord, info: RunInfo, outcome: TaskOutcome, latency: dict,
                  tracking: float, joints: list[int], wavs: list[Path]) -> dict:
    observed = max(info.observed_s, info.live_s, 1e-9)
    live_start = info.live_from
    with rec.lock:
        counts = dict(rec.counts)
        instructions = [text for _, text in rec.instructions]
        narrations = [{"t": round(t, 2), "text": text} for t, text in rec.narrations]
        bridge = [{"t": round(t, 2), "state": s, "source": src} for t, s, src in rec.bridge]
        diag = {name: {"level": lvl, "message": msg} for name, (lvl, msg) in rec.diag_messages.items()}
        diag_values = {name: dict(v) for name, v in rec.diagnostics.items()}
    return {
        "task": {"name": info.task.name, "instruction": info.task.instruction, "scored": info.task.scored},
        "achieved": outcome.achieved,
        "outcome": outcome.summary,
        "min_palm_cup_distance_m": None if not np.isfinite(outcome.min_distance) else round(outcome.min_distance, 4),
        "instruction_heard": instructions,
        "instruction_source": info.instruction_source,
        "narrations": narrations,
        "narration_wavs": [w.name for w in wavs],
        "counts": counts,
        "mean_rates_hz": {t: round(rec.rate_between(t, live_start, live_start + info.live_s), 2)
                          for t in counts} if info.live_s > 0 else {t: round(n / observed, 2)
                                                                    for t, n in counts.items()},
        "latency_ms": {k: {kk: (round(vv, 1) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                       for k, v in latency.items()},
        "tracking_rms_rad": None if not np.isfinite(tracking) else round(tracking, 4),
        "plotted_joints": [g1.JOINT_NAMES[j] for j in joints],
        "teleop_spans_s": [[round(a, 2), round(b, 2)] for a, b in rec.source_spans("teleop")],
        "bridge_states": bridge,
        "diagnostics": diag,
        "diagnostic_values": diag_values,  # each status's last key-values (stage timings: camera_buffer, backbone, ...)
        "run": {"seconds": info.seconds, "started": info.started, "startup_s": round(info.startup_s, 1),
                "live_s": round(info.live_s, 1), "observed_s": round(observed, 1), "checkpoint": info.checkpoint,
                "ros_domain_id": info.ros_domain_id, "dds_domain_id": info.dds_domain_id,
                "children": info.children, "notes": info.notes},
        "cpu_percent_live": info.cpu,
    }


def write_report(out: Path, rec: DemoRecord, info: RunInfo, outcome: TaskOutcome) -> dict:
    """Write every figure and the report files into ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    t_m, q_m = rec.joint_arrays()
    t_c, q_c = rec.commanded()
    joints = active_joints(q_m, q_c)
    plot_joints(out / "joints.png", rec, joints)
    latency = plot_latency(out / "latency.png", rec)
    n_frames = plot_frames(out / "frames.png", rec, info.live_from)
    plot_distance(out / "hand_to_cup.png", outcome, info.task, rec)
    tracking = tracking_error(t_m, q_m, t_c, q_c, joints)
    wavs = sorted((out / "narration").glob("*.wav")) if (out / "narration").is_dir() else []
    summary = build_summary(rec, info, outcome, latency, tracking, joints, wavs)
    with rec.lock:
        teleop_t = np.asarray(rec.teleop_t)
        chunk_t, chunk_ms = np.asarray(rec.chunk_t), np.asarray(rec.chunk_latency_ms)
    # chunk_t / chunk_latency_ms: when each chunk arrived and its camera -> chunk latency (where the spikes are)
    np.savez_compressed(out / "data.npz", joint_t=t_m, joint_q=q_m, command_t=t_c, command_q=q_c,
                        teleop_t=teleop_t, joint_names=np.asarray(g1.JOINT_NAMES), chunk_t=chunk_t,
                        chunk_latency_ms=chunk_ms)
    summary["figures"] = ["joints.png", "latency.png", "hand_to_cup.png"] + (["frames.png"] if n_frames else [])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    md = render_markdown(summary, info)
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(render_html(md, summary))
    return summary


def _verdict(summary: dict) -> str:
    a = summary["achieved"]
    return "✅ task achieved" if a else ("❌ task not achieved" if a is False else "ℹ️ no success criterion")


def render_markdown(s: dict, info: RunInfo) -> str:
    lat = s["latency_ms"]
    rates = s["mean_rates_hz"]
    lines = [
        f"# Neon demo — {s['task']['instruction']!r}",
        "",
        f"**{_verdict(s)}.** {s['outcome']}",
        "",
        f"- Started {s['run']['started']}; stack live after {s['run']['startup_s']} s; observed for "
        f"{s['run']['live_s']} s (requested {info.seconds:g} s).",
        f"- Instruction heard: {', '.join(repr(t) for t in s['instruction_heard']) or '(none)'} "
        f"(source: {s['instruction_source']}).",
        f"- Head checkpoint: `{s['run']['checkpoint']}`; ROS_DOMAIN_ID {s['run']['ros_domain_id']}, "
        f"Unitree DDS domain {s['run']['dds_domain_id']} (localhost only).",
        f"- Tracking RMS (commanded - measured, plotted joints): {s['tracking_rms_rad']} rad.",
        "",
        f"## Rates (messages / s over the {s['run']['live_s']} s live period; counts over the whole "
        f"{s['run']['observed_s']} s watch)",
        "",
        "| topic | Hz | messages |",
        "|---|---|---|",
    ]
    for topic in (contract.TOPIC_CAMERA, contract.TOPIC_CLIP, contract.TOPIC_FEATURES, contract.TOPIC_ACTION_CHUNK,
                  contract.TOPIC_JOINT_STATES, contract.TOPIC_NARRATION, contract.TOPIC_TELEOP):
        lines.append(f"| `{topic}` | {rates.get(topic, 0)} | {s['counts'].get(topic, 0)} |")
    lines += ["", "## Latency (camera capture stamp -> message received)", "", "| path | p50 ms | p99 ms | max ms | n |",
              "|---|---|---|---|---|"]
    for name, v in lat.items():
        lines.append(f"| {name} | {v.get('p50')} | {v.get('p99')} | {v.get('max')} | {v.get('n')} |")
    cpu = s.get("cpu_percent_live") or {}
    if cpu:
        total = sum(v["percent"] for v in cpu.values())
        lines += ["", f"## CPU during the live period (% of one core; {os.cpu_count()} cores; all: {total:.0f}%)", "",
                  "| process | CPU % | busiest threads (%) |", "|---|---|---|"]
        for name, v in sorted(cpu.items(), key=lambda kv: -kv[1]["percent"]):
            threads = ", ".join(f"{t} {p}" for t, p in v["threads"].items())
            lines.append(f"| {name} | {v['percent']} | {threads} |")
    lines += ["", "## Figures", "", "![commanded vs measured joints](joints.png)", "",
              "![palm to cup distance](hand_to_cup.png)", "", "![latency histograms](latency.png)", ""]
    if "frames.png" in s["figures"]:
        lines += ["![rendered frames](frames.png)", ""]
    lines += ["## Narration", ""]
    lines += [f"- t={n['t']} s: {n['text']!r}" for n in s["narrations"]] or ["- (none)"]
    if s["narration_wavs"]:
        lines += ["", "Audio: " + ", ".join(f"[{w}](narration/{w})" for w in s["narration_wavs"])]
    lines += ["", "## Bridge states", ""]
    lines += [f"- t={b['t']} s: {b['state']} ({b['source']})" for b in s["bridge_states"]] or ["- (none seen)"]
    if s["teleop_spans_s"]:
        lines += ["", f"Teleop overrides: {s['teleop_spans_s']} s."]
    lines += ["", "## Nodes", "", "| node | exit | stopped with | last diagnostic |", "|---|---|---|---|"]
    for name, c in s["run"]["children"].items():
        d = s["diagnostics"].get(name, {})
        lines.append(f"| {name} | {c.get('returncode')} | {c.get('stop_signal') or '-'} | "
                     f"{d.get('level', '-')}: {d.get('message', '-')} |")
    if s["run"]["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in s["run"]["notes"]]
    lines += ["", "Logs of every node: `logs/`. Raw numbers: `summary.json`; joint series: `data.npz`.", ""]
    return "\n".join(lines)


def render_html(md: str, summary: dict) -> str:
    """A self-contained page: the markdown's text with the figures and audio players inline."""
    body = []
    for line in md.splitlines():
        if line.startswith("![") and "](" in line:
            src = line[line.index("](") + 2:-1]
            body.append(f'<p><img src="{html.escape(src)}" style="max-width:100%"></p>')
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip():
            body.append(f"<pre style='margin:0'>{html.escape(line)}</pre>")
    for w in summary["narration_wavs"]:
        body.append(f'<p>{html.escape(w)}: <audio controls src="narration/{html.escape(w)}"></audio></p>')
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Neon demo report</title></head>"
            "<body style='font-family:sans-serif;max-width:1000px;margin:auto'>" + "\n".join(body) + "</body></html>")
