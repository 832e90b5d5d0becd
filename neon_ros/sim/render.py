"""Off-screen MuJoCo rendering through an explicitly chosen headless GL (EGL, else OSMesa).

``mujoco.Renderer`` takes its GL platform from MUJOCO_GL as it was when mujoco was FIRST
imported anywhere in the process, so an early ``import mujoco`` without it (a test module,
a tool) leaves it on GLFW, which needs a display. This renderer creates its EGL (or OSMesa)
context itself, whatever MUJOCO_GL said at import time, and draws with the same MuJoCo
calls. Backend order: MUJOCO_GL if it names egl or osmesa, else egl, then osmesa.

A GL context belongs to the thread that uses it: make one renderer per rendering thread.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from neon_ros.errors import NeonError

BACKENDS = ("egl", "osmesa")
MAX_GEOMS = 10_000


class RenderError(NeonError, RuntimeError):
    """No headless GL could be created; the message says what was tried and how to fix it."""


def _context(backend: str, width: int, height: int):
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        raise ValueError(f"unknown GL backend {backend!r}; use one of {BACKENDS}")
    return GLContext(width, height)


def backend_order() -> list[str]:
    wanted = os.environ.get("MUJOCO_GL", "").strip().lower()
    return [wanted] + [b for b in BACKENDS if b != wanted] if wanted in BACKENDS else list(BACKENDS)


class OffscreenRenderer:
    """Renders fixed cameras of ``model`` into (height, width, 3) uint8 RGB arrays."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int):
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(f"{width}x{height} exceeds the model's off-screen buffer "
                             f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}")
        self.model = model
        self.width, self.height = int(width), int(height)
        errors = []
        self._ctx = None
        for backend in backend_order():
            try:
                ctx = _context(backend, self.width, self.height)
                ctx.make_current()
                self._mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
            except Exception as e:  # this platform is missing here: try the next one
                errors.append(f"{backend}: {e}")
                continue
            self._ctx, self.backend = ctx, backend
            break
        if self._ctx is None:
            raise RenderError("no headless OpenGL for off-screen rendering (" + "; ".join(errors) + "); install "
                              "libegl1 and libgl1-mesa-dri (EGL) or libosmesa6 (OSMesa)")
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr)
        self._scene = mujoco.MjvScene(model, maxgeom=MAX_GEOMS)
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)

    def render(self, data: mujoco.MjData, camera_id: int) -> np.ndarray:
        """Draw fixed camera ``camera_id`` for the kinematics in ``data``; a new array each call."""
        if self._ctx is None:
            raise RenderError("renderer is closed")
        self._ctx.make_current()
        self._camera.fixedcamid = int(camera_id)
        mujoco.mjv_updateScene(self.model, data, self._option, self._perturb, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._mjr)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._mjr)
        return np.flipud(self._rgb).copy()  # OpenGL rows run bottom-up

    def close(self) -> None:
        """Free the GL resources (call from the thread that rendered)."""
        if self._ctx is None:
            return
        try:
            self._ctx.make_current()
            self._mjr.free()
        finally:
            self._ctx.free()
            self._ctx = None
