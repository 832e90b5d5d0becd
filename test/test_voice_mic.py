"""The real microphone path: sounddevice -> PortAudio -> ALSA -> a PulseAudio source hearing speech.

No sound card exists on the test machines (a VM: no /dev/snd, no kernel modules, so no
snd-aloop). The test therefore starts its own PulseAudio server in user space (private runtime
dir, anonymous unix socket, no D-Bus, no hardware modules) with one null sink, ``neon_air``,
whose monitor is the default source: a "room" the operator speaks into. PortAudio sees it as
the ALSA device ``pulse`` (the ALSA pulse plugin from libasound2-plugins), exactly as
on a desktop or a robot computer running PulseAudio/PipeWire. ``paplay`` plays an espeak-ng
sentence into the sink in real time; a child process (``voice_mic_probe.py``) has opened
``audio.open_source("mic", device="pulse")`` before and runs the real silero-vad
``Segmenter`` on what it hears, stopping at the first utterance.

Checked: exactly that sentence is heard (one utterance of the sentence's own length) and the
captured waveform matches the WAV (normalised cross-correlation), at the negotiated 16 kHz and
with the stream forced to 44.1 / 48 kHz (and to two channels), where audio.py resamples (and
down-mixes) itself; the negotiation's fallbacks against a device that refuses 16 kHz and mono.

Debian packages (installed by scripts/setup.sh): pulseaudio, pulseaudio-utils,
libasound2-plugins, libportaudio2, espeak-ng. Without them the device tests skip and say so.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from neon_ros.voice import audio
from neon_ros.voice.vad import Segmenter, VadConfig

PROBE = Path(__file__).with_name("voice_mic_probe.py")
SENTENCE = "Neon, pick up the red cup and put it in the bowl."
SINK = "neon_air"


def _missing_packages() -> list[str]:
    missing = [pkg for pkg, exe in (("pulseaudio", "pulseaudio"), ("pulseaudio-utils", "paplay"),
                                    ("espeak-ng", "espeak-ng")) if shutil.which(exe) is None]
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") + \
            glob.glob("/usr/lib/alsa-lib/libasound_module_pcm_pulse.so"):
        missing.append("libasound2-plugins")
    return missing


needs_audio_server = pytest.mark.skipif(
    bool(_missing_packages()),
    reason=f"Debian packages {', '.join(_missing_packages())} missing (scripts/setup.sh installs them)")


# --- the streaming resampler the mic path relies on (no device needed) -------------------------

@pytest.mark.parametrize("rate_in", [44100, 48000, 22050, 8000, 16000])
def test_stream_resampler_equals_whole_signal_resampling(rate_in):
    x = (np.random.default_rng(rate_in).standard_normal(rate_in * 2) * 0.1).astype(np.float32)
    whole = audio.resample(x, rate_in)
    r = audio.StreamResampler(rate_in)
    sizes, out, i, k = (1411, 7, 1, 4000, 333, 512), [], 0, 0
    while i < x.size:
        out.append(r.feed(x[i:i + sizes[k % len(sizes)]]))
        i += sizes[k % len(sizes)]
        k += 1
    y = np.concatenate(out)
    # everything but the last ~half filter (still waiting for input) is already out, and exact
    assert whole.size - 40 <= y.size <= whole.size
    np.testing.assert_allclose(y, whole[:y.size], atol=1e-6)
    with pytest.raises(ValueError):
        audio.StreamResampler(0)


class _HwCard:
    """A fake PortAudio (sounddevice) for one unit, negotiate_input: a bare hw: card with four
    channels at 48 kHz that refuses 16 kHz and fewer than ``min_channels``."""

    class PortAudioError(Exception):
        pass

    def __init__(self, min_channels: int):
        self.min_channels = min_channels
        self.tried: list[tuple[int, int]] = []

    def query_devices(self, device, kind):
        return {"name": "hw:1,0", "default_samplerate": 48000.0, "max_input_channels": 4}

    def check_input_settings(self, device, samplerate, channels, dtype):
        self.tried.append((samplerate, channels))
        if samplerate != 48000 or channels < self.min_channels:
            raise self.PortAudioError("Invalid number of channels" if samplerate == 48000 else "Invalid sample rate")


@pytest.mark.parametrize(("min_channels", "want"), [(1, (48000, 1)), (2, (48000, 2)), (4, (48000, 4))])
def test_negotiation_falls_back_to_the_native_rate_and_fewest_channels(monkeypatch, min_channels, want):
    card = _HwCard(min_channels)
    monkeypatch.setattr(audio, "_sounddevice", lambda: card)
    assert audio.negotiate_input("hw:1,0") == want
    assert card.tried[:3] == [(16000, 1), (16000, 2), (16000, 4)]  # 16 kHz mono first: nothing to convert
    assert audio.negotiate_input("hw:1,0", rate=48000, channels=4) == (48000, 4)
    with pytest.raises(audio.AudioDeviceError, match=r"hw:1,0.*16000 Hz x 4"):
        audio.negotiate_input("hw:1,0", rate=16000, channels=4)


# --- a private PulseAudio server ------------------------------------------------------------------

class PulseServer:
    """pulseaudio in the foreground, owned by the test: started, waited for, terminated."""

    def __init__(self):
        # a short path: unix socket names are limited to 108 bytes
        self.dir = Path(tempfile.mkdtemp(prefix="neon-pa-"))
        self.socket = self.dir / "native"
        (self.dir / "home").mkdir()
        (self.dir / "run").mkdir(mode=0o700)
        script = self.dir / "neon.pa"
        script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            # a 48 kHz stereo "room", like a USB microphone; its monitor is what the mic hears
            f"load-module module-null-sink sink_name={SINK} rate=48000 channels=2 "
            f"sink_properties=device.description={SINK}\n"
            f"set-default-sink {SINK}\nset-default-source {SINK}.monitor\n")
        client_conf = self.dir / "client.conf"
        client_conf.write_text("autospawn = no\n")
        self.log: list[str] = []
        server_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir / "home"),
                      "XDG_RUNTIME_DIR": str(self.dir / "run"), "LANG": "C"}
        self.client_env = dict(os.environ, PULSE_SERVER=f"unix:{self.socket}",
                               PULSE_CLIENTCONFIG=str(client_conf), HOME=str(self.dir / "home"))
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1",
             "--use-pid-file=no", "--realtime=no", "--high-priority=no", "--log-target=stderr",
             "--log-level=info"],
            env=server_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        # ready when it says so (blocking reads; the test's timeout bounds them)
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            if "Daemon startup complete" in line:
                break
        else:
            self.stop()
            raise RuntimeError("pulseaudio did not start:\n" + "\n".join(self.log[-20:]))
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.join(timeout=10)  # the log pipe ends with the process
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pulse():
    server = PulseServer()
    try:
        yield server
    finally:
        server.stop()
    assert server.proc.returncode is not None


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("Debian package espeak-ng missing (scripts/setup.sh installs it)")
    wav = tmp_path_factory.mktemp("mic") / "instruction.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True, timeout=60)
    ref = audio.load(wav)
    # the sentence's own utterance length, by the same VAD, from the file itself
    seg = Segmenter(VadConfig())
    padded = np.concatenate([np.zeros(8000, np.float32), ref, np.zeros(16000, np.float32)])
    utts = [u for i in range(0, padded.size, 512) for u in seg.feed(padded[i:i + 512])] + seg.flush()
    assert len(utts) == 1
    return wav, ref, utts[0].duration_s


def _best_correlation(captured: np.ndarray, ref: np.ndarray) -> float:
    from scipy.signal import correlate

    c = correlate(captured, ref, mode="valid", method="fft")
    lag = int(np.argmax(np.abs(c)))
    seg = captured[lag:lag + ref.size]
    return float(abs(seg @ ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12))


@needs_audio_server
@pytest.mark.timeout(180)
@pytest.mark.parametrize(("rate", "channels"), [(0, 0), (44100, 1), (48000, 1), (48000, 2)],
                         ids=["negotiated", "stream44k1", "stream48k", "stream48k_stereo"])
def test_microphone_hears_the_operator(pulse, spoken, tmp_path, rate, channels):
    wav, ref, ref_duration = spoken
    out = tmp_path / "heard.npz"
    probe = subprocess.Popen([sys.executable, str(PROBE), "pulse", str(out), "20", str(rate), str(channels)],
                             env=pulse.client_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        ready = probe.stdout.readline()  # the stream runs: the first block arrived
        if not ready:
            raise AssertionError(f"the mic probe failed to start: {probe.communicate()[1][-3000:]}")
        started = json.loads(ready)
        if rate:
            assert started["rate"] == rate and started["channels"] == channels, started
            assert ("2 channels down-mixed" in started["ready"]) == (channels == 2), started
        else:  # PulseAudio converts: audio.py asks for what the VAD and Whisper want
            assert started["rate"] == audio.SAMPLE_RATE, started
        subprocess.run(["paplay", f"--device={SINK}", str(wav)], env=pulse.client_env, check=True,
                       timeout=60, stdin=subprocess.DEVNULL)
        stdout, stderr = probe.communicate(timeout=60)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.communicate()
    assert probe.returncode == 0, f"{stdout}\n{stderr[-3000:]}"
    result = json.loads(stdout.strip().splitlines()[-1])
    heard = np.load(out)
    utterance = heard["utterance"]
    # one utterance, the sentence's length (VAD windows are 32 ms; pads of 200 ms both sides)
    assert result["utterances"] == 1
    assert abs(result["duration_s"] - ref_duration) < 0.4, (result, ref_duration)
    assert result["overflows"] == 0, result
    # it is that sentence: the utterance holds the WAV's speech, sample for sample up to the
    # resampling filters (a resampler that clicks at block joins or drifts scores ~0.8)
    voiced = np.flatnonzero(np.abs(ref) > 1e-3)
    speech = ref[voiced[0]:voiced[-1] + 1]
    assert utterance.size >= speech.size
    assert _best_correlation(utterance, speech) > 0.95
