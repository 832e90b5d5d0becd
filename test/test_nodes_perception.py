"""Plain-Python logic of the perception/inference nodes, tested without rclpy nodes."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from neon_ros import contract, g1
from neon_ros.ros import markers
from neon_ros.runtime import gate, narration, timing
from neon_ros.runtime.geometry import ClipGeometry, resolve_geometry
from neon_ros.runtime.image import FrameError, VideoSource, image_to_rgb, resize_rgb, rgb_to_image_fields
from neon_ros.runtime.ring import FrameRing

NS = 1_000_000_000


def _img(arr: np.ndarray, encoding: str) -> Image:
    m = Image()
    for k, v in rgb_to_image_fields(arr, encoding).items():
        setattr(m, k, v)
    return m


def _rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- ring ----------------------------------------------------------------------------------

def test_ring_oldest_first_and_newest_stamp():
    ring = FrameRing(3, (2, 2, 3))
    assert ring.clip() is None
    for k in range(5):
        ring.push(np.full((2, 2, 3), k, np.uint8), 100 + k)
    c = ring.clip()
    assert c is not None and c.stamp_ns == 104
    assert [int(f[0, 0, 0]) for f in c.frames] == [2, 3, 4]
    assert ring.dropped == 2  # frames 0, 1 left the ring without being in a clip


def test_ring_refuses_backwards_stamps_and_new_clip_once():
    ring = FrameRing(2, (1, 1, 3))
    f = np.zeros((1, 1, 3), np.uint8)
    assert ring.push(f, 10) and ring.push(f, 20)
    assert not ring.push(f, 20) and not ring.push(f, 5)
    assert ring.out_of_order == 2
    assert ring.new_clip() is not None and ring.new_clip() is None
    ring.push(f, 30)
    assert ring.new_clip().stamp_ns == 30
    with pytest.raises(ValueError):
        ring.push(np.zeros((2, 1, 3), np.uint8), 40)
    with pytest.raises(ValueError):
        FrameRing(0, (1, 1, 3))


# --- image conversion -------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_color_encodings_round_trip(encoding):
    a = _rgb()
    assert np.array_equal(image_to_rgb(_img(a, encoding)), a)


def test_mono8_becomes_gray_rgb_and_resizes():
    a = _rgb(12, 16)
    out = image_to_rgb(_img(a, "mono8"), (6, 8))
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 1])


def test_row_padding_is_respected():
    a = _rgb(4, 5)
    m = _img(a, "rgb8")
    padded = np.zeros((4, 5 * 3 + 7), np.uint8)
    padded[:, :15] = a.reshape(4, 15)
    m.step, m.data = 22, padded.tobytes()
    assert np.array_equal(image_to_rgb(m), a)


@pytest.mark.parametrize("mutate, words", [
    (lambda m: setattr(m, "encoding", "weird42"), "unsupported image encoding"),
    (lambda m: (setattr(m, "height", 0), setattr(m, "width", 0)), "zero-size"),
    (lambda m: setattr(m, "data", bytes(10)), "expected"),
    (lambda m: setattr(m, "step", 3), "step"),
    (lambda m: setattr(m, "encoding", "8UC1"), "cannot convert"),
])
def test_malformed_images_raise_clear_errors(mutate, words):
    m = _img(_rgb(), "rgb8")
    mutate(m)
    with pytest.raises(FrameError, match=words):
        image_to_rgb(m)


def test_resize_and_video_file(tmp_path):
    assert resize_rgb(_rgb(10, 10), (5, 4)).shape == (5, 4, 3)
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for k in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * k, np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    src = VideoSource(str(path), loop=True)
    frames = [src.read() for _ in range(8)]  # loops past the end
    src.close()
    assert all(f is not None and f.shape == (24, 32, 3) for f in frames)
    assert abs(src.fps - 10) < 1
    with pytest.raises(FileNotFoundError):
        VideoSource(str(tmp_path / "missing.mp4"))


def test_geometry_explicit_values_win():
    assert resolve_geometry("", 4, 8, 9) == ClipGeometry(4, 8, 9)
    with pytest.raises(ValueError):
        resolve_geometry("", 0, 8, 9)
    with pytest.raises(ValueError):
        ClipGeometry(0, 1, 1)


# --- gate -------------------------------------------------------------------------------------

def _gate(**kw):
    return gate.InputGate(gate.GateConfig(backbone_id="bb", feature_dim=4, **kw))


def _feat(now, age_s=0.0, width=4, bid="bb", value=1.0):
    return gate.Features(np.full(width, value, np.float32), now - int(age_s * NS), bid)


def _joints(now, age_s=0.0, q=None):
    return gate.JointInput(g1.STANDING_POSE if q is None else q, np.zeros(29), now - int(age_s * NS))


@pytest.mark.parametrize("feat, joints, reason", [
    (None, True, gate.NO_FEATURES),
    (dict(age_s=0.5), True, gate.STALE),
    (dict(age_s=-1.0), True, gate.FUTURE),
    (dict(bid="other"), True, gate.WRONG_BACKBONE),
    (dict(width=5), True, gate.WRONG_WIDTH),
    (dict(value=np.nan), True, gate.NON_FINITE),
    (dict(), None, gate.NO_JOINT_STATE),
    (dict(), dict(age_s=2.0), gate.STALE_JOINT_STATE),
    (dict(), dict(q=np.full(29, np.inf)), gate.BAD_JOINT_STATE),
])
def test_gate_refusals(feat, joints, reason):
    now = 10 * NS
    g = _gate()
    f = None if feat is None else _feat(now, **feat)
    j = None if joints is None else _joints(now, **({} if joints is True else joints))
    v = g.check(f, j, now)
    assert not v.ok and v.reason == reason and v.detail
    assert g.stats.refused[reason] == 1 and g.stats.accepted == 0


def test_gate_accepts_fresh_input():
    now = 10 * NS
    g = _gate(max_feature_age=0.3)
    v = g.check(_feat(now, 0.29), _joints(now), now)
    assert v.ok and abs(v.age_s - 0.29) < 1e-6 and g.stats.accepted == 1
    with pytest.raises(ValueError):
        gate.GateConfig(backbone_id="", feature_dim=4, max_feature_age=0.0)


# --- chunk ------------------------------------------------------------------------------------

def test_safe_chunk_clamps_and_refuses():
    from neon_ros.runtime.head import ChunkError, safe_chunk

    q = g1.STANDING_POSE
    delta = np.full((contract.CHUNK_STEPS, g1.NUM_JOINTS), 1e-3)
    pos, clamped = safe_chunk(q, delta)
    assert clamped == 0 and np.allclose(pos - q, 1e-3)  # absolute targets = q + delta
    delta[3, 0] = 100.0
    pos, clamped = safe_chunk(q, delta)
    assert clamped == 1 and pos[3, 0] == g1.UPPER_LIMITS[0]
    pos, clamped = safe_chunk(q, delta, margin=0.01)
    assert clamped == 1 and pos[3, 0] == g1.UPPER_LIMITS[0] - 0.01
    delta[2, 2] = np.nan
    with pytest.raises(ChunkError, match="non-finite"):
        safe_chunk(q, delta)
    with pytest.raises(ChunkError, match="shape"):
        safe_chunk(q, np.zeros((15, 29)))


# --- markers ----------------------------------------------------------------------------------

def test_hand_path_markers():
    paths = np.random.default_rng(0).normal(size=(16, 2, 3))
    arr = markers.hand_path_markers(paths, 5 * NS)
    assert len(arr.markers) == 4 and all(len(m.points) == 16 for m in arr.markers)
    assert arr.markers[0].header.stamp.sec == 5
    paths[0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        markers.hand_path_markers(paths, 0)


# --- narration --------------------------------------------------------------------------------

def test_classify_phases():
    cfg = narration.PhaseConfig()
    still = np.zeros((16, 2, 3))
    moving = np.cumsum(np.full((16, 2, 3), 0.01), axis=0)
    assert narration.classify(still, None, None, 0.05, cfg) == "idle"
    assert narration.classify(moving, None, None, 0.05, cfg) == "reaching"
    grip = np.zeros((16, 2))
    grip[-1, 0] = 0.9
    assert narration.classify(still, grip, None, 0.05, cfg) == "grasping"
    assert narration.classify(still, -grip, None, 0.05, cfg) == "releasing"
    assert narration.classify(still, None, np.full((16, 3), 0.5), 0.05, cfg) == "walking"


def test_narrator_speaks_on_instruction_and_stable_phase_changes():
    n = narration.Narrator(narration.PhaseConfig(min_ticks=3, min_interval=1.0))
    assert n.update("", "idle", 0.0) is None  # nothing to announce yet
    assert n.update("pick up the cup", "idle", 0.1) == "Thinking about how to pick up the cup."
    assert n.update("pick up the cup", "reaching", 0.2) is None
    assert n.update("pick up the cup", "idle", 0.25) is None  # chatter resets the count
    for t in (1.2, 1.25):
        assert n.update("pick up the cup", "reaching", t) is None
    assert n.update("pick up the cup", "reaching", 1.3) == "Reaching for the cup now."
    assert n.update("pick up the cup", "reaching", 1.4) is None
    assert n.spoken == 2 and n.phase == "reaching"
    with pytest.raises(ValueError):
        n.update("x", "dancing", 2.0)


# --- timing -----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def test_absolute_ticker_does_not_drift_and_skips_overruns():
    clock = FakeClock()
    tick = timing.AbsoluteTicker(0.05, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        clock.t += 0.013  # a step's work
        assert abs(tick.wait()) < 1e-9
    assert abs(clock.t - 0.5) < 1e-9  # ten deadlines, no accumulated step time
    clock.t += 0.17  # overrun: deadlines 0.55 and 0.60 are missed, 0.65 is served late
    late = tick.wait()
    assert tick.missed == 2 and abs(late - 0.02) < 1e-9


def test_absolute_ticker_catches_up_within_max_lag():
    clock = FakeClock()
    tick = timing.AbsoluteTicker(0.01, clock=clock, sleep=clock.sleep, max_lag=0.1)
    clock.t += 0.035  # 3.5 periods behind: deadlines 0.01, 0.02, 0.03 run back to back
    assert [round(tick.wait(), 9) for _ in range(3)] == [0.025, 0.015, 0.005]
    assert tick.wait() < 1e-9 and tick.missed == 0 and abs(clock.t - 0.04) < 1e-9
    clock.t += 0.205  # beyond max_lag: skip to the latest deadline already past (0.24)
    late = tick.wait()
    assert tick.missed == 19 and abs(late - 0.005) < 1e-9


def test_percentiles():
    p = timing.percentiles(range(101))
    assert p == {"p50": 50.0, "p99": 99.0, "max": 100.0, "n": 101}
    assert timing.percentiles([2.0], qs=(90,)) == {"p90": 2.0, "max": 2.0, "n": 1}
    empty = timing.percentiles([])
    assert empty["n"] == 0 and np.isnan(empty["p50"]) and np.isnan(empty["max"])


def test_window_and_rate():
    w = timing.Window(10)
    for v in range(20):
        w.add(v)
    s = w.summary()
    assert s["max"] == 19 and 14 <= s["p50"] <= 15
    clock = FakeClock()
    r = timing.RateMeter(2.0, clock=clock)
    for _ in range(21):
        r.tick()
        clock.t += 0.05
    assert abs(r.rate() - 20.0) < 1.5 and r.total == 21
    assert timing.flatten("x", {"p50": 1}) == {"x_p50": 1}


# --- incremental clip encoder (a fake backbone: a single-unit test) ----------------------------

class _FrameBackbone:
    num_frames, width, frame_size = 3, 2, (2, 2)

    def __init__(self):
        self.calls = 0

    def encode_frame(self, frame):
        self.calls += 1
        return np.array([frame.mean(), frame.max()], np.float32)

    def frame_maps(self, frames):
        self.calls += len(frames)
        return np.stack([[f.mean(), f.max()] for f in frames]).astype(np.float32)

    def pool(self, maps, instruction=""):
        return np.asarray(maps).mean(0) + len(instruction)

    def encode(self, frames, instruction=""):
        return self.pool(self.frame_maps(frames), instruction)


def test_clip_encoder_reuses_frames_and_matches_full_encode():
    from neon_ros.runtime.encoder import ClipEncoder

    bb = _FrameBackbone()
    enc = ClipEncoder(bb)
    frames = [np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 30, 40)]
    a = enc.encode(np.stack(frames[:3]), "hi")
    b = enc.encode(np.stack(frames[1:]), "hi")  # one new frame
    assert enc.frames_encoded == 4 and enc.frames_reused == 2 and bb.calls == 4
    ref = _FrameBackbone()
    assert np.allclose(a, ref.encode(np.stack(frames[:3]), "hi"))
    assert np.allclose(b, ref.encode(np.stack(frames[1:]), "hi"))
    assert not ClipEncoder(bb, incremental=False).incremental

    class WholeClipOnly:
        num_frames, width = 3, 2

        def encode(self, frames, instruction=""):
            return np.zeros(2, np.float32)

    whole = ClipEncoder(WholeClipOnly())
    assert not whole.incremental and whole.encode(np.stack(frames[:3])).shape == (2,)


def test_clip_encoder_warm_up_runs_both_paths_and_leaves_nothing_behind():
    """backbone's warm-up at start: a whole clip and an incremental step on synthetic frames, then an
    empty cache (a real first clip is encoded in full, as without the warm-up)."""
    from neon_ros.runtime.encoder import ClipEncoder

    bb = _FrameBackbone()
    enc = ClipEncoder(bb)
    assert enc.warm_up() >= 0.0
    assert bb.calls == 4  # 3 frames, then 1 new one
    assert enc.frames_encoded == enc.frames_reused == 0 and not enc._cache
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 30)])
    assert np.allclose(enc.encode(frames, "hi"), _FrameBackbone().encode(frames, "hi"))
    assert enc.frames_encoded == 3


# --- one control step on a real (random-weight) head ---------------------------------------------

def test_head_step_on_a_random_head(tmp_path):
    from neon_ros.runtime.control import HeadStep
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.tools.random_head import save_random_checkpoint

    ckpt = save_random_checkpoint(tmp_path / "head", 16, "bb", d_model=32, delta_std=5.0)
    head = HeadRuntime(ckpt, runtime="torch", threads=1)
    core = HeadStep(head, gate.GateConfig("bb", 16), clamp_margin=0.01)
    now = 10 * NS
    res = core.step(_feat16(now), _joints(now), now)
    assert res.verdict.ok and res.positions.shape == (16, 29) and res.stamp_ns == now
    assert np.all(res.positions >= g1.LOWER_LIMITS + 0.01 - 1e-12)
    assert np.all(res.positions <= g1.UPPER_LIMITS - 0.01 + 1e-12)
    assert res.clamped > 0 and core.clamped_total == res.clamped  # huge random deltas got clamped
    assert res.phase in narration.PHASES and res.hand_paths is None  # no kinematics given
    stale = core.step(_feat16(now - 2 * NS), _joints(now), now)
    assert not stale.verdict.ok and stale.positions is None and core.gate.stats.refused[gate.STALE] == 1


def _feat16(stamp):
    return gate.Features(np.linspace(-1, 1, 16).astype(np.float32), stamp, "bb")
