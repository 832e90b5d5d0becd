"""`neon-ros bench voice`: speech-in and narration latencies, p50/p99 from one run.

1. utterance end -> instruction: spoken robot commands (espeak-ng, four voices at 130-170 wpm,
   the bench's own set ``COMMANDS``) streamed in real time through the speech_in pipeline
   (silero-vad + Whisper primed with the robot's vocabulary + its vocabulary reading and near-miss
   correction + its guards, the node's own
   classes, model warmed at start); the clock runs from the end of speech in the stream to the
   /neon/instruction message arriving at a subscriber in this process (real rclpy, latched
   QoS). Includes the VAD's end-of-utterance silence wait (min_silence_ms), Whisper and the
   publish. ``--no-ros`` stops the clock at the callback. Accuracy: exact (normalised) / said.
2. narration -> audio ready: sentences of the narration table (neon_ros.runtime.narration)
   through speech_out's SpeechQueue with the chosen backend; the clock runs from submit to synthesized audio, and to the WAV file written.

Nothing is asserted; figures are printed (and written as JSON with --json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# (instruction, phase, seen) -> one sentence of the narration table each.
NARRATION_CASES = (
    ("pick up the red cup", "reaching", ["red cup"]),
    ("pick up the red cup", "grasping", None),
    ("pick up the red cup", "holding", None),
    ("wave your left hand", "waving", None),
    ("point at the cup", "pointing", None),
    ("", "idle", None),
)
# The bench's spoken set: robot commands in four espeak-ng voices (used for nothing else).
COMMANDS = ("pick up the blue cup", "put the banana in the basket", "open the top drawer", "hand me the spoon",
            "wave your left hand", "place the bowl on the counter", "close the cabinet door", "turn right",
            "give me the red block", "point at the towel", "lift the box slowly", "stand still")
VOICES = (("en-us", 150), ("en-gb", 140), ("en+f3", 160), ("en+m3", 130))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--utterances", type=int, default=len(COMMANDS),
                        help="spoken commands to stream (real time; the set repeats after "f"{len(COMMANDS)})")
    parser.add_argument("--narrations", type=int, default=20, help="narrations to synthesize")
    parser.add_argument("--backend", default="faster_whisper", choices=("faster_whisper", "openai_whisper"),
                        help="ASR backend")
    parser.add_argument("--model", default="", help="ASR model (see speech_in `model`; openai_whisper needs one, "
                        "e.g. made by python -m neon_ros.voice.ct2_whisper DIR)")
    parser.add_argument("--model-name", default="tiny.en", help="Whisper model size preset (speech_in model_name)")
    parser.add_argument("--window-s", type=float, default=None,
                        help="faster_whisper input window, s (speech_in window_s; 0 = Whisper's 30 s; "
                        "default: AsrConfig's)")
    parser.add_argument("--beam-size", type=int, default=0, help="Whisper beam width (1 = greedy, 0 = the preset's)")
    parser.add_argument("--vocabulary", default="voice_vocabulary.yaml",
                        help="command vocabulary (speech_in `vocabulary`; '' = the task registry only)")
    parser.add_argument("--correction-margin", type=float, default=None,
                        help="near-miss correction margin, nats (speech_in correction_margin; 0 = off; "
                        "default: AsrConfig's)")
    parser.add_argument("--reading-margin", type=float, default=None,
                        help="vocabulary reading margin, nats (speech_in reading_margin; 0 = off; "
                        "default: AsrConfig's)")
    parser.add_argument("--threads", type=int, default=2, help="Whisper CPU threads")
    parser.add_argument("--min-silence-ms", type=int, default=300, help="VAD silence that ends an utterance")
    parser.add_argument("--early-ms", type=int, default=128, help="silence after which Whisper starts "
                        "speculatively (speech_in early_ms; 0 = off)")
    parser.add_argument("--tts", default="espeak", choices=("espeak", "personaplex", "piper"), help="narration backend")
    parser.add_argument("--personaplex-url", default="ws://127.0.0.1:8998", help="PersonaPlex server (--tts personaplex)")
    parser.add_argument("--piper-model", default="", help="Piper voice .onnx (--tts piper)")
    parser.add_argument("--no-ros", action="store_true", help="skip rclpy: stop the clock at the publish callback")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


def _stream_dir(directory: Path, n: int) -> list[str]:
    from neon_ros.voice.audio import write_wav
    from neon_ros.voice.tts import TtsConfig, make_tts

    said = []
    for i in range(n):
        text = COMMANDS[i % len(COMMANDS)]
        voice, wpm = VOICES[i % len(VOICES)]
        audio, rate = make_tts(TtsConfig(voice=voice, rate_wpm=wpm)).synthesize(text)
        write_wav(directory / f"{i:03d}.wav", audio, rate)
        said.append(text)
    return said


class _RosHop:
    """A publisher node and a subscriber node in this process, spun by one executor thread."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        from neon_ros import contract
        from neon_ros.ros import rosutil

        rclpy.init()
        self.rclpy = rclpy
        self.String = String
        self.pub_node = rclpy.create_node("bench_voice_pub")
        self.sub_node = rclpy.create_node("bench_voice_sub")
        self.pub = self.pub_node.create_publisher(String, contract.TOPIC_INSTRUCTION, rosutil.LATCHED_QOS)
        self.received: dict[str, float] = {}
        self.sub_node.create_subscription(String, contract.TOPIC_INSTRUCTION,
                                          lambda m: self.received.setdefault(m.data, time.monotonic()),
                                          rosutil.LATCHED_QOS)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.pub_node)
        self.ex.add_node(self.sub_node)
        self.thread = threading.Thread(target=self.ex.spin, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    def publish(self, text: str) -> None:
        self.pub.publish(self.String(data=text))

    def close(self) -> None:
        self.ex.shutdown(timeout_sec=1.0)
        self.pub_node.destroy_node()
        self.sub_node.destroy_node()
        self.rclpy.try_shutdown()


def bench_speech_in(args, workdir: Path) -> dict:
    from neon_ros.runtime.timing import percentiles
    from neon_ros.voice.asr import AsrConfig, make_asr
    from neon_ros.voice.audio import FileSource
    from neon_ros.voice.listener import SpeechListener
    from neon_ros.voice.vad import Segmenter, VadConfig
    from neon_ros.voice.vocabulary import load_vocabulary, normalize

    clips = workdir / "clips"
    clips.mkdir()
    said = _stream_dir(clips, args.utterances)
    vocabulary = load_vocabulary(args.vocabulary)
    optional = {k: v for k, v in (("window_s", args.window_s), ("correction_margin", args.correction_margin),
                                  ("reading_margin", args.reading_margin)) if v is not None}
    cfg = AsrConfig(backend=args.backend, model=args.model, name=args.model_name, beam_size=args.beam_size,
                    threads=args.threads, initial_prompt=vocabulary.prompt, **optional)
    asr = make_asr(cfg, vocabulary)
    asr.warm_up()
    hop = None if args.no_ros else _RosHop()
    rows: list[dict] = []
    seq = [0]

    def on_heard(heard) -> None:
        if not heard.accepted:
            rows.append({"accepted": False, "said": heard.transcript.text, "reason": heard.reason})
            return
        text = f"{heard.text} #{seq[0]}"  # unique per message, so each arrival is timed
        seq[0] += 1
        published = time.monotonic()
        if hop is not None:
            hop.publish(text)
        rows.append({"accepted": True, "text": heard.text, "key": text, "end_s": heard.utterance.end_s,
                     "closed": heard.utterance.ended_at, "published": published, "asr_s": heard.transcript.elapsed_s,
                     "first_pass": heard.transcript.first_pass})

    segmenter = Segmenter(VadConfig(min_silence_ms=args.min_silence_ms, early_ms=args.early_ms))
    listener = SpeechListener(asr, segmenter, cfg, on_heard, vocabulary=vocabulary)
    source = FileSource(clips, realtime=1.0, gap_s=1.5)
    listener.start(source)
    deadline = time.monotonic() + 30 + 6 * args.utterances
    while not listener.idle and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    listener.stop()
    if hop is not None:
        hop.close()
    ok = [r for r in rows if r["accepted"]]
    t0 = source.started_at
    end_to_msg, end_to_pub = [], []
    for r in ok:
        speech_end = t0 + r["end_s"]
        end_to_pub.append(r["published"] - speech_end)
        if hop is not None and r["key"] in hop.received:
            end_to_msg.append(hop.received[r["key"]] - speech_end)
    heard = [normalize(r["text"]) if r["accepted"] else f"<rejected {r['said']!r}: {r['reason']}>" for r in rows]
    return {
        "utterances": len(said), "instructions": len(ok), "rejected": len(rows) - len(ok),
        "correct": sum(h == s for h, s in zip(heard, said, strict=False)),
        "misheard": [(s, h) for h, s in zip(heard, said, strict=False) if h != s],
        "corrected": [(r["first_pass"], r["text"]) for r in ok if r["first_pass"]],
        "asr_backend": asr.describe(), "min_silence_ms": args.min_silence_ms, "early_ms": args.early_ms,
        "speech_end_to_instruction_ms": {k: v * 1e3 if k != "n" else v for k, v in
                                         percentiles(end_to_msg if hop is not None else end_to_pub).items()},
        "whisper_ms": {k: v * 1e3 if k != "n" else v for k, v in percentiles([r["asr_s"] for r in ok]).items()},
        "publish_to_receive_ms": {k: v * 1e3 if k != "n" else v for k, v in percentiles(
            [a - b for a, b in zip(end_to_msg, end_to_pub, strict=False)]).items()} if hop is not None else None,
    }


def bench_narration(args, workdir: Path) -> dict:
    from neon_ros.runtime.narration import compose
    from neon_ros.runtime.timing import percentiles
    from neon_ros.voice.speech_queue import DirectorySink, SpeechQueue, SpeechQueueConfig
    from neon_ros.voice.tts import TtsConfig, make_tts

    tts = make_tts(TtsConfig(backend=args.tts, personaplex_url=args.personaplex_url, piper_model=args.piper_model))
    sink = DirectorySink(workdir / "spoken")
    ready: list[float] = []
    written: list[float] = []
    submitted = [0.0]
    narrations = [compose(*case) for case in NARRATION_CASES]
    queue = SpeechQueue(tts, sink, SpeechQueueConfig(repeat_s=0.0, max_age_s=60.0),
                        on_ready=lambda _text, s: ready.append(s))
    try:
        for i in range(args.narrations):
            submitted[0] = time.monotonic()
            queue.submit(narrations[i % len(narrations)])
            deadline = time.monotonic() + 60
            while queue.busy and time.monotonic() < deadline:
                time.sleep(0.002)
            written.append(time.monotonic() - submitted[0])
    finally:
        queue.close()
    wavs = sorted((workdir / "spoken").glob("*.wav"))
    seconds = []
    for w in wavs:
        import soundfile as sf

        info = sf.info(str(w))
        seconds.append(info.frames / info.samplerate)
    return {
        "backend": tts.describe(), "narrations": args.narrations, "spoken": queue.stats.spoken,
        # --tts personaplex falls back to espeak-ng per sentence: say how many it spoke, and why
        "fallback_spoken": getattr(tts, "fallback_spoken", 0), "fault": getattr(tts, "fault", ""),
        "narration_to_audio_ready_ms": {k: v * 1e3 if k != "n" else v for k, v in percentiles(ready).items()},
        "narration_to_wav_written_ms": {k: v * 1e3 if k != "n" else v for k, v in percentiles(written).items()},
        "audio_seconds_mean": float(np.mean(seconds)) if seconds else float("nan"),
    }


def _fmt(p: dict | None) -> str:
    if not p:
        return "n/a"
    return f"p50 {p['p50']:.0f} ms  p99 {p['p99']:.0f} ms  max {p['max']:.0f} ms  (n={p['n']})"


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="neon_voice_bench_") as d:
        work = Path(d)
        print(f"speech in: streaming {args.utterances} spoken commands in real time ...", flush=True)
        sin = bench_speech_in(args, work)
        print(f"  {sin['asr_backend']}: {sin['instructions']}/{sin['utterances']} instructions, "
              f"accuracy {sin['correct']}/{sin['utterances']} exact, {sin['rejected']} rejected")
        for expected, got in sin["misheard"]:
            print(f"    misheard {expected!r} as {got!r}")
        for first, corrected in sin["corrected"]:
            print(f"    corrected {first!r} to {corrected!r} (vocabulary, scored on the audio)")
        print(f"  speech end -> instruction{' (callback)' if args.no_ros else ' received'}: "
              f"{_fmt(sin['speech_end_to_instruction_ms'])}")
        print(f"    of which VAD end-of-utterance wait {sin['min_silence_ms']} ms "
              f"(Whisper starts after {sin['early_ms']} ms); "
              f"Whisper {_fmt(sin['whisper_ms'])}")
        if sin["publish_to_receive_ms"]:
            print(f"    publish -> subscriber: {_fmt(sin['publish_to_receive_ms'])}")
        print(f"narration: {args.narrations} narrations ...", flush=True)
        nar = bench_narration(args, work)
        print(f"  {nar['backend']}: narration -> audio ready {_fmt(nar['narration_to_audio_ready_ms'])}")
        if nar["fallback_spoken"]:
            print(f"  NOTE: {nar['fallback_spoken']} of {nar['spoken']} narrations were spoken by the fallback "
                  f"({nar['fault'] or 'the primary failed, then recovered'}): the figures mix both backends")
        print(f"  narration -> WAV written {_fmt(nar['narration_to_wav_written_ms'])}; "
              f"mean audio {nar['audio_seconds_mean']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"speech_in": sin, "narration": nar}, indent=2))
    return 0
