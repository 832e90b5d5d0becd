"""The head camera loop: renders ``G1Sim`` frames at a fixed rate in its own thread.

Rendering (tens of ms in software GL) runs beside the physics thread and only copies the
physics state under the simulator's lock, so a slow frame delays the next frame, never a
physics step. Deadlines are absolute; a frame that misses its slot is skipped, not queued.

The thread lowers its own scheduling priority (nice + ``CAMERA_NICE``, Linux applies it per
thread) before it creates its GL context, so Mesa's llvmpipe worker threads, which inherit
it, yield the CPU to the physics thread on a busy machine. ``start()`` returns after the
first frame, so GL context creation (which holds the GIL) happens before physics starts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

from neon_ros.sim import scene
from neon_ros.sim.g1_sim import G1Sim

FrameCallback = Callable[[np.ndarray], None]
CAMERA_NICE = 10  # added niceness of the rendering thread (0 = same priority as physics)


def _lower_thread_priority(increment: int) -> None:
    if increment <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError:  # not permitted here: render at normal priority
        pass


class CameraLoop:
    """Render ``camera`` at ``rate_hz`` and hand each (H, W, 3) uint8 frame to ``on_frame``."""

    def __init__(self, sim: G1Sim, rate_hz: float, on_frame: FrameCallback, camera: str = scene.HEAD_CAMERA):
        if not (rate_hz > 0.0):
            raise ValueError(f"camera rate must be > 0 Hz, got {rate_hz}")
        self.sim = sim
        self.rate_hz = float(rate_hz)
        self.camera = camera
        self.on_frame = on_frame
        self.frames = 0
        self.skipped = 0
        self.render_seconds = 0.0  # total time spent rendering
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, first_frame_timeout: float = 60.0) -> None:
        """Start rendering; return once the first frame is out (or the thread failed, see ``error``)."""
        self._thread = threading.Thread(target=self._run, name="sim_g1_camera", daemon=True)
        self._thread.start()
        self._first.wait(first_frame_timeout)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        _lower_thread_priority(CAMERA_NICE)
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                frame = self.sim.render(self.camera)
                self.render_seconds += time.monotonic() - t0
                self.frames += 1
                self.on_frame(frame)
                self._first.set()
                next_t += period
                now = time.monotonic()
                if next_t < now:  # missed slots: skip them
                    missed = int((now - next_t) / period) + 1
                    self.skipped += missed
                    next_t += missed * period
                self._stop.wait(max(0.0, next_t - time.monotonic()))
        except BaseException as e:  # surfaced through diagnostics by the owner
            self.error = e
        finally:
            self._first.set()
            self.sim.close_thread_renderer()
