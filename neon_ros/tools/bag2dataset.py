"""`neon-ros bag2dataset`: a recorded session -> G1 teleop episodes, one per instruction.

Input: one rosbag2 directory (mcap or sqlite3, from `ros2 bag record`, record.launch.py or
Neon's `recorder`) or a session directory of split bags. The session is cut at every
/neon/instruction message: an episode runs from one instruction to the next (or the
end), and becomes its own rosbag2 (mcap) directory holding that instruction message
first, then the camera, joint states, chunks, teleop, e-stop and narration messages of
its time span, byte for byte (no re-serialisation). ``index.json`` lists the episodes
(instruction, span, message counts, teleop/policy/passive). The output directory is the
``path`` of a ``type: g1_rosbag`` source in a data soup (neon_ros.data.sources.g1_rosbag),
which reads every episode bag in it.

    neon-ros bag2dataset bags/session-20261121-213000 datasets/g1_cups
    neon-ros bag2dataset bags/s1 datasets/g1 --min-seconds 2 --default-instruction "pick up the cup"

Episodes shorter than --min-seconds, or without joint states or camera images, are
dropped (and listed in index.json under ``dropped``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neon_ros import contract
from neon_ros.data.recording import STORAGES, bag_dirs

INDEX_NAME = "index.json"
NS = 1_000_000_000


@dataclass
class Bag2DatasetConfig:
    """How to cut a session.

    source: a rosbag2 directory or a directory of them (split recordings).
    output: new or empty directory for the episode bags and index.json.
    topics: topics copied into the episodes (the instruction topic is always copied).
    min_seconds: drop episodes shorter than this.
    default_instruction: instruction for the span before the first /neon/instruction
        ("" = drop that span).
    storage: storage of the written episodes ("mcap" or "sqlite3").
    """

    source: Path
    output: Path
    topics: tuple[str, ...] = contract.TRAINING_TOPICS
    min_seconds: float = 1.0
    default_instruction: str = ""
    storage: str = "mcap"

    def __post_init__(self) -> None:
        self.source, self.output = Path(self.source), Path(self.output)
        self.topics = tuple(dict.fromkeys((*self.topics, contract.TOPIC_INSTRUCTION)))
        if not self.source.exists():
            raise FileNotFoundError(f"{self.source} does not exist")
        if self.output.exists() and any(self.output.iterdir()):
            raise FileExistsError(f"{self.output} is not empty; choose a new output directory")
        if self.min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0, got {self.min_seconds}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")


@dataclass
class Segment:
    """One instruction's span of the session: [start_ns, end_ns)."""

    instruction: str
    start_ns: int
    end_ns: int
    name: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    kind: str = "passive"
    synthetic: bool = False  # no instruction message starts it (--default-instruction)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / NS


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s[:limit] or "instruction"


def plan_segments(instructions: list[tuple[int, str]], start_ns: int, end_ns: int,
                  default_instruction: str = "") -> list[Segment]:
    """Cut [start_ns, end_ns] at each (time, text) instruction; consecutive repeats merge."""
    segments: list[Segment] = []
    cuts = sorted(instructions)
    synthetic_start = None
    if default_instruction and (not cuts or cuts[0][0] > start_ns):
        cuts.insert(0, (start_ns, default_instruction))
        synthetic_start = start_ns
    for i, (t, text) in enumerate(cuts):
        stop = cuts[i + 1][0] if i + 1 < len(cuts) else end_ns + 1
        if segments and segments[-1].instruction == text and segments[-1].end_ns == t:
            segments[-1].end_ns = stop
        else:
            segments.append(Segment(text, t, stop, synthetic=t == synthetic_start and i == 0))
    for k, seg in enumerate(segments):
        seg.name = f"episode_{k:04d}_{slug(seg.instruction)}"
    return segments


def convert(config: Bag2DatasetConfig, progress: bool = True) -> dict:
    """Cut the session into episode bags; return (and write) the index."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Writer
    from tqdm import tqdm

    bags = bag_dirs(config.source)
    if not bags:
        raise FileNotFoundError(f"no rosbag2 directory (metadata.yaml) in {config.source}")
    with AnyReader(bags) as reader:
        conns = [c for c in reader.connections if c.topic in config.topics]
        instr_conns = [c for c in conns if c.topic == contract.TOPIC_INSTRUCTION]
        # (an empty connection list would mean "every connection" to rosbags)
        instructions = [(t, str(reader.deserialize(raw, c.msgtype).data))
                        for c, t, raw in reader.messages(connections=instr_conns)] if instr_conns else []
        if not instructions and not config.default_instruction:
            raise ValueError(f"{config.source} has no {contract.TOPIC_INSTRUCTION} message: pass "
                             "--default-instruction to name the task of the whole session")
        segments = plan_segments(instructions, reader.start_time, reader.end_time, config.default_instruction)
        kept: list[Segment] = []
        writer = None
        current: Segment | None = None
        wconns: dict = {}
        config.output.mkdir(parents=True, exist_ok=True)
        total = sum(reader.topics[c.topic].msgcount for c in conns) if conns else 0
        messages = reader.messages(connections=conns) if conns else iter(())
        for conn, t, raw in tqdm(messages, total=total, unit="msg", disable=not progress, desc="bag2dataset"):
            seg = next((s for s in segments if s.start_ns <= t < s.end_ns), None)
            if seg is None:
                continue
            if seg is not current:
                if writer is not None:
                    writer.close()
                current, wconns = seg, {}
                writer = Writer(config.output / seg.name, version=9, storage_plugin=STORAGES[config.storage])
                writer.open()
                kept.append(seg)
                if seg.synthetic:
                    _write_instruction(writer, wconns, reader.typestore, seg)
            key = conn.topic
            if key not in wconns:
                wconns[key] = writer.add_connection(conn.topic, conn.msgtype, typestore=reader.typestore)
            writer.write(wconns[key], t, raw)
            seg.counts[key] = seg.counts.get(key, 0) + 1
        if writer is not None:
            writer.close()
    return _finish(config, segments, kept)


def _write_instruction(writer, wconns: dict, bag_typestore, seg: Segment) -> None:
    """The episode before any instruction message (--default-instruction): write its instruction."""
    from rosbags.typesys import Stores, get_typestore

    msgtype = "std_msgs/msg/String"
    typestore = bag_typestore if msgtype in bag_typestore.types else get_typestore(Stores.ROS2_KILTED)
    raw = typestore.serialize_cdr(typestore.types[msgtype](data=seg.instruction), msgtype)
    wconns[contract.TOPIC_INSTRUCTION] = writer.add_connection(contract.TOPIC_INSTRUCTION, msgtype,
                                                               typestore=typestore)
    writer.write(wconns[contract.TOPIC_INSTRUCTION], seg.start_ns, raw)
    seg.counts[contract.TOPIC_INSTRUCTION] = seg.counts.get(contract.TOPIC_INSTRUCTION, 0) + 1


def _finish(config: Bag2DatasetConfig, segments: list[Segment], written: list[Segment]) -> dict:
    import shutil

    episodes, dropped = [], []
    for seg in segments:
        c = seg.counts
        seg.kind = "teleop" if c.get(contract.TOPIC_TELEOP) else (
            "policy" if c.get(contract.TOPIC_ACTION_CHUNK) else "passive")
        reason = ""
        if seg not in written:
            reason = "no messages in its span"
        elif c.get(contract.TOPIC_JOINT_STATES, 0) < 2 or not c.get(contract.TOPIC_CAMERA):
            reason = f"needs >= 2 {contract.TOPIC_JOINT_STATES} and {contract.TOPIC_CAMERA} messages"
        elif seg.seconds < config.min_seconds:
            reason = f"shorter than {config.min_seconds} s"
        entry = asdict(seg) | {"seconds": round(seg.seconds, 3)}
        if reason:
            dropped.append(entry | {"reason": reason})
            if (config.output / seg.name).exists():
                shutil.rmtree(config.output / seg.name)
        else:
            episodes.append(entry)
    index = {"source": str(config.source), "adapter": "g1_rosbag", "episodes": episodes, "dropped": dropped}
    (config.output / INDEX_NAME).write_text(json.dumps(index, indent=2))
    return index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("source", type=Path, help="rosbag2 directory, or a directory of split bags")
    parser.add_argument("output", type=Path, help="new or empty directory for the episodes")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="drop shorter episodes (default 1 s)")
    parser.add_argument("--default-instruction", default="",
                        help="instruction for the span before the first /neon/instruction ('' = drop it)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="episode bag storage")
    parser.add_argument("--topics", nargs="+", default=list(contract.TRAINING_TOPICS),
                        help="topics copied into the episodes (default: contract.TRAINING_TOPICS)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = Bag2DatasetConfig(args.source, args.output, tuple(args.topics), args.min_seconds,
                                args.default_instruction, args.storage)
        index = convert(cfg)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"neon-ros bag2dataset: {exc}", file=sys.stderr)
        return 2
    for ep in index["episodes"]:
        print(f"{ep['name']}: {ep['seconds']:.1f} s, {ep['kind']}, \"{ep['instruction']}\"")
    for ep in index["dropped"]:
        print(f"dropped {ep['name']}: {ep['reason']}")
    print(f"{len(index['episodes'])} episode(s) in {cfg.output} (a `type: g1_rosbag` source)")
    return 0 if index["episodes"] else 1
