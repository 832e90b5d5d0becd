"""action_head as a real rclpy process: staleness, malformed input, resume (scripted features)."""

import math

import pytest
from support import ros_env

from neon_ros.tools.random_head import save_random_checkpoint
from test.peers.nodes_events import last_diag, of, run_driver, start_node, wait_ready

pytestmark = pytest.mark.ros

WIDTH = 64
MAX_AGE = 0.3


@pytest.fixture(scope="module")
def head_ckpt(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("head") / "head", WIDTH, "test", d_model=64)


def _head_params(ckpt, **extra):
    return {"checkpoint": str(ckpt), "max_feature_age": MAX_AGE, "diagnostics_period": 0.5, **extra}


def _check_chunks(chunks):
    for c in chunks:
        assert c["shape"] == [16, 29] and c["names_ok"] and c["finite"] and c["within_limits"] and c["times_ok"]


@pytest.mark.timeout(120)
def test_stale_features_stop_chunks_and_fresh_resume(tmp_path, head_ckpt):
    env = ros_env()
    with start_node("action_head", env, tmp_path, _head_params(head_ckpt), params_file=True) as head:
        wait_ready(head, "action_head")
        evs = run_driver(env, "--features", "fresh:2,stale:2.5,fresh:2.5", "--joints", "--width-features",
                         str(WIDTH), "--instruction", "wave hello", "--duration", "7.5")
        assert head.alive(), head.output()
        assert head.stop() == 0  # clean SIGTERM
        assert "Traceback" not in head.log_path.read_text(), head.log_path.read_text()
    sent = of(evs, "features_sent")
    fresh = {e["stamp"] for e in sent if e["mode"] == "fresh"}
    stale = [e["stamp"] for e in sent if e["mode"] == "stale"]
    chunks = of(evs, "chunk")
    assert chunks, "no chunk at all"
    _check_chunks(chunks)
    assert all(c["stamp"] in fresh for c in chunks)  # the camera stamp carried through, never a stale one
    # Staleness: no chunk is acted on features older than max_feature_age (+ slack for delivery
    # on a loaded machine), so chunks stop soon after the fresh features do.
    assert max((c["received"] - c["stamp"]) * 1e-9 for c in chunks) < MAX_AGE + 0.5
    stale_start, stale_end = min(stale) + 10**9, max(stale) + 10**9  # stale stamps are 1 s old when sent
    assert not [c for c in chunks if stale_start + 1.0e9 < c["received"] < stale_end]
    assert any(c["stamp"] > stale_end for c in chunks)  # resumed
    stale_diags = [d for d in of(evs, "diag", name="action_head") if int(d["values"]["refused_stale"]) > 0]
    assert stale_diags and any("old" in d["message"] for d in stale_diags)
    assert of(evs, "markers") and of(evs, "markers")[0]["n"] == 4
    narr = of(evs, "narration")
    assert narr and "wave" in narr[0]["text"].lower()


@pytest.mark.timeout(150)
def test_a_slow_backbones_old_features_drive_the_head(tmp_path_factory, tmp_path):
    """max_feature_age 0 (the default): the budget is the head's backbone preset's declared
    latency + 0.3 s. A qwen2_5_omni_3b head (1.3 s per clip on the robot) acts on features 1 s
    old, which a fixed 0.3 s budget refused."""
    slow_id = "qwen2_5_omni_3b.L-1"
    ckpt = save_random_checkpoint(tmp_path_factory.mktemp("slow") / "head", WIDTH, slow_id, d_model=64)
    env = ros_env()
    with start_node("action_head", env, tmp_path, {"checkpoint": str(ckpt), "diagnostics_period": 0.5}) as head:
        wait_ready(head, "action_head")
        evs = run_driver(env, "--features", "stale:3", "--joints", "--width-features", str(WIDTH),
                         "--backbone-id", slow_id, "--duration", "3")
        assert head.alive(), head.output()
        log = head.log_path.read_text()
    assert "max feature age 1600 ms" in log, log
    chunks = of(evs, "chunk")
    assert chunks, log
    _check_chunks(chunks)


@pytest.mark.timeout(180)
def test_the_int8_runtime_drives_the_node(tmp_path, head_ckpt):
    """runtime onnxruntime_int8: the node quantises the head once and publishes valid chunks, and
    with each the prediction's loco and grip commands."""
    env = ros_env()
    with start_node("action_head", env, tmp_path, _head_params(head_ckpt, runtime="onnxruntime_int8")) as head:
        wait_ready(head, "action_head", timeout=150)
        evs = run_driver(env, "--features", "fresh:3", "--joints", "--width-features", str(WIDTH),
                         "--duration", "3")
        assert head.alive(), head.output()
        log = head.log_path.read_text()
    chunks = of(evs, "chunk")
    assert chunks, log
    _check_chunks(chunks)
    assert "(onnxruntime_int8)" in log, log
    # the same prediction's base velocity and hand closures, for body_bridge, stamped like the chunks
    loco, grip = of(evs, "loco"), of(evs, "grip")
    assert loco and grip, log
    stamps = {c["stamp"] for c in chunks}
    assert {m["stamp"] for m in loco} <= stamps and {m["stamp"] for m in grip} <= stamps
    assert all(len(m["velocity"]) == 3 and all(math.isfinite(v) for v in m["velocity"]) for m in loco)
    assert all(m["names"] == ["left_hand", "right_hand"] and all(0.0 <= c <= 1.0 for c in m["closure"])
               for m in grip)


@pytest.mark.timeout(150)
def test_malformed_input_is_refused_and_node_keeps_running(tmp_path, head_ckpt):
    env = ros_env()
    with start_node("action_head", env, tmp_path, _head_params(head_ckpt)) as head:
        wait_ready(head, "action_head")
        no_js = run_driver(env, "--features", "fresh:2.5", "--width-features", str(WIDTH), "--duration", "3")
        bad = run_driver(env, "--features", "nan:1,wide:1,wrongid:1,badenc:1,fresh:2.5", "--joints",
                         "--width-features", str(WIDTH), "--duration", "7")
        assert head.alive(), head.output()
    assert not of(no_js, "chunk")
    d = last_diag(no_js, "action_head")
    assert d is not None and int(d["values"]["refused_no_joint_state"]) > 0
    assert any("no joint state" in e["message"] for e in of(no_js, "diag", name="action_head"))

    fresh = {e["stamp"] for e in of(bad, "features_sent") if e["mode"] == "fresh"}
    chunks = of(bad, "chunk")
    assert chunks and all(c["stamp"] in fresh for c in chunks)  # nothing from bad data
    _check_chunks(chunks)
    v = last_diag(bad, "action_head")["values"]
    for reason in ("non_finite", "wrong_width", "wrong_backbone"):
        assert int(v[f"refused_{reason}"]) > 0, v
    assert int(v["bad_feature_msgs"]) > 0 and "32FC1" in v["last_input_error"]
    messages = " ".join(d["message"] for d in of(bad, "diag", name="action_head"))
    assert "non-finite" in messages and "width" in messages and "backbone" in messages


@pytest.mark.timeout(120)
def test_each_features_is_acted_on_at_its_arrival_not_at_the_next_tick(tmp_path, head_ckpt):
    """schedule arrival (the default), at 1 step/s with features every 2 s: each features'
    first chunk comes right after they arrive. On a 1 s grid it would come 0-1 s later (all five
    within 0.25 s: a 0.1% chance); steps between arrivals go on a period after the last."""
    env = ros_env()
    params = _head_params(head_ckpt, rate=1.0, max_feature_age=3.0)
    with start_node("action_head", env, tmp_path, params) as head:
        wait_ready(head, "action_head")
        evs = run_driver(env, "--features", "fresh:12", "--feature-rate", "0.5", "--joints",
                         "--width-features", str(WIDTH), "--duration", "11.5")
        assert head.alive(), head.output()
        log = head.log_path.read_text()
    assert "(arrival)" in log, log
    sent = [e["stamp"] for e in of(evs, "features_sent")]
    chunks = of(evs, "chunk")
    _check_chunks(chunks)
    assert len(sent) >= 5, sent
    first = {}
    for c in chunks:
        first.setdefault(c["stamp"], c["received"])
    delays = [(first[s] - s) * 1e-9 for s in sent if s in first]
    assert len(delays) == len(sent) and max(delays) < 0.25, delays
    per_features = [sum(c["stamp"] == s for c in chunks) for s in sent[:-1]]
    assert all(n >= 2 for n in per_features), per_features  # and a step a period later, on the same features
