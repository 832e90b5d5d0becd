"""speech_out: /neon/narration (std_msgs/String) -> speech on the speaker or one WAV per narration.

Parameters (config/neon.yaml, section speech_out):
- backend: espeak (default, local espeak-ng), personaplex (NVIDIA PersonaPlex server,
  `personaplex_url`), piper (Piper command line, `piper_model`).
- output: 'speaker' (sounddevice, `device`) or a directory that receives one WAV per narration.
A newer narration pre-empts one in progress; the same text within `repeat_s` is dropped.
A backend or speaker that cannot run is an ERROR on /diagnostics (and in the log) saying
why; the node keeps running and keeps counting what it could not say.
With backend personaplex, every sentence PersonaPlex does not deliver in full (server
unreachable at start, connection refused or timed out, closed or stalled mid-sentence,
malformed or over-limit data) is spoken whole by espeak-ng instead; /diagnostics is WARN
("personaplex unreachable: ...; speaking with espeak-ng") until PersonaPlex, tried again
after `personaplex_retry_s`, speaks again (voice.tts.FallbackTts).
"""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import String

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable, scheduling_params
from neon_ros.voice.audio import AudioDeviceError
from neon_ros.voice.speech_queue import DirectorySink, SpeakerSink, SpeechQueue, SpeechQueueConfig
from neon_ros.voice.tts import TTS_BACKENDS, FallbackTts, TtsConfig, TtsUnavailableError, make_tts

PARAMETERS: ParamTable = {
    "backend": Param("espeak", f"speech backend: {', '.join(sorted(TTS_BACKENDS))}"),
    "output": Param("speaker", "'speaker' (sounddevice) or a directory for one WAV per narration"),
    "device": Param("", "sounddevice output device ('' = default)"),
    "voice": Param("en-us", "espeak-ng voice"),
    "rate_wpm": Param(165, "espeak-ng words per minute", (80, 450)),
    "pitch": Param(50, "espeak-ng pitch", (0, 99)),
    "executable": Param("", "espeak-ng / piper program ('' = found on PATH)"),
    "piper_model": Param("", "piper: voice model .onnx"),
    "personaplex_url": Param("ws://127.0.0.1:8998", "personaplex: server URL (ws://, wss://, http(s)://)"),
    "personaplex_voice": Param("NATF2.pt", "personaplex: voice prompt file on the server"),
    "personaplex_server_args": Param("", "personaplex: start its server from the installed package with "
                                     "these arguments ('' = use personaplex_url)"),
    "personaplex_tls_ca_file": Param("", "personaplex, wss://: PEM certificates to trust besides the system's "
                                     "(a server's self-signed --ssl certificate); '' = the system store"),
    "personaplex_insecure_tls": Param(False, "personaplex, wss://: accept any certificate and host name "
                                      "(only a test server on a network you control)"),
    "personaplex_retry_s": Param(30.0, "personaplex: after it failed, s of speaking with espeak-ng before "
                                 "PersonaPlex is tried again", (0.0, 3600.0)),
    "timeout": Param(20.0, "s a synthesis may take", (1.0, 120.0)),
    "repeat_s": Param(5.0, "the same narration within this many s is dropped", (0.0, 600.0)),
    "max_age_s": Param(5.0, "a narration waiting longer than this is skipped", (0.1, 600.0)),
    "diagnostics_period": Param(1.0, "s between /diagnostics messages", (0.1, 60.0)),
    **scheduling_params(nice=10),  # narration yields the cores to the control path
}


class SpeechOut(Node):
    def __init__(self) -> None:
        super().__init__("speech_out")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.scheduling = rosutil.apply_scheduling(p)  # before the node starts threads: they inherit it
        tts_cfg = TtsConfig(
            backend=p["backend"], voice=p["voice"], rate_wpm=p["rate_wpm"], pitch=p["pitch"],
            executable=p["executable"], piper_model=p["piper_model"], personaplex_url=p["personaplex_url"],
            personaplex_voice=p["personaplex_voice"], local_server_args=p["personaplex_server_args"].split(),
            timeout_s=p["timeout"], personaplex_retry_s=p["personaplex_retry_s"],
            personaplex_tls_ca_file=p["personaplex_tls_ca_file"], personaplex_insecure_tls=p["personaplex_insecure_tls"],
        )
        self.output, device = p["output"], p["device"]
        queue_cfg = SpeechQueueConfig(repeat_s=p["repeat_s"], max_age_s=p["max_age_s"])
        self.backend_name = tts_cfg.backend
        self.fault = ""
        self.fallback_reported = ""  # the fallback fault last logged
        self.unspoken = 0
        self.queue: SpeechQueue | None = None
        self.tts = None
        try:
            self.tts = make_tts(tts_cfg)
            sink = SpeakerSink(device) if self.output == "speaker" else DirectorySink(self.output)
            self.queue = SpeechQueue(self.tts, sink, queue_cfg)
            self.get_logger().info(f"speaking with {self.tts.describe()} to {sink.describe()}")
        except TtsUnavailableError as exc:
            self.fault = f"speech backend {self.backend_name!r} unavailable: {exc}"
        except AudioDeviceError as exc:
            self.fault = f"no speaker: {exc} (set output to a directory to write WAV files)"
        except OSError as exc:
            self.fault = f"cannot write to output {self.output!r}: {exc}"
        if self.fault:
            self.get_logger().error(self.fault)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.create_subscription(String, contract.TOPIC_NARRATION, self.on_narration, rosutil.COMMAND_QOS)
        self.create_timer(p["diagnostics_period"], self.publish_diagnostics)

    def on_narration(self, msg: String) -> None:
        if self.queue is None:
            self.unspoken += 1
            return
        self.queue.submit(msg.data)

    def publish_diagnostics(self) -> None:
        values: dict = {"backend": self.backend_name, "output": self.output}
        level, message = "ok", "ready"
        if self.queue is not None:
            s = self.queue.stats
            values |= {"received": s.received, "spoken": s.spoken, "preempted": s.preempted,
                       "throttled": s.throttled, "stale": s.stale, "failed": s.failed, "last_text": s.last_text,
                       "last_output": s.last_output,
                       "last_ready_ms": "" if math.isnan(s.last_ready_s) else f"{1e3 * s.last_ready_s:.0f}"}
            message = "speaking" if self.queue.busy else "ready"
            if s.last_error:
                level, message = "warn", s.last_error
            if isinstance(self.tts, FallbackTts):
                message = self._fallback_diagnostics(values) or message
                level = "warn" if self.tts.fault else level
        else:
            values["unspoken"] = self.unspoken
        if self.fault:
            level, message = "error", self.fault
        values = {**values, "scheduling": self.scheduling}
        status = msgs.diagnostic_status("speech_out", level, message, values, hardware_id="audio")
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [status]))

    def _fallback_diagnostics(self, values: dict) -> str:
        """Adds the fallback's counts to ``values``; logs when it switches; its fault ('' while the primary works)."""
        tts = self.tts
        values |= {"speaking_with": tts.speaking_with, f"{tts.primary_name}_spoken": tts.primary_spoken,
                   f"{tts.fallback_name}_spoken": tts.fallback_spoken,
                   f"{tts.primary_name}_failures": tts.primary_failures}
        fault = tts.fault
        if fault != self.fallback_reported:
            if fault:
                self.get_logger().warning(fault)
            else:
                self.get_logger().info(f"{tts.primary_name} works again; speaking with it")
            self.fallback_reported = fault
        return fault

    def on_shutdown(self) -> None:
        if self.queue is not None:
            self.queue.close()
        close = getattr(self.tts, "close", None)
        if close is not None:
            close()


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(SpeechOut, "speech_out", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    raise SystemExit(main())
