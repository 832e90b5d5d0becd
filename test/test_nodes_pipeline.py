"""camera -> camera_buffer -> backbone -> action_head, all real rclpy processes.

Once with the real cpu_default backbone and once with a tiny random Qwen2.5-Omni
thinker: chunks arrive as 16 x 29 with the G1 joint names and the camera stamp.
"""

import re

import pytest
from support import ros_env

from neon_ros.tools.random_head import save_random_checkpoint
from test.peers.nodes_events import last_diag, of, run_driver, start_node, wait_ready

pytestmark = pytest.mark.ros


@pytest.mark.timeout(240)
@pytest.mark.parametrize("preset, tiny", [("cpu_default", False), ("qwen2_5_omni_3b", True)])
def test_camera_to_chunk(tmp_path, preset, tiny):
    env = ros_env()
    common = {"preset": preset, "tiny": tiny}
    # Generous feature age: on a loaded 2-core machine one clip can take a second to encode;
    # staleness itself is tested in test_nodes_head.
    with start_node("camera_buffer", env, tmp_path, {**common, "clip_rate": 8.0}, params_file=True) as cam, \
         start_node("backbone", env, tmp_path, {**common, "threads": 1}, params_file=True) as bb:
        wait_ready(cam, "camera_buffer")
        wait_ready(bb, "backbone", timeout=150)
        m = re.search(r"id='([^']+)', width=(\d+)", bb.output())
        assert m, bb.output()
        backbone_id, width = m.group(1), int(m.group(2))
        if tiny:  # malformed clips: a clear diagnostic, no features, the node keeps running
            # 6 s: the backbone reports at 1 Hz, and its /diagnostics reach the driver only once that
            # direction is discovered too (3 s once saw none on a loaded machine)
            bad = run_driver(env, "--bad-clips", "--duration", "6")
            assert not of(bad, "features") and bb.alive()
            d = last_diag(bad, "backbone")
            assert d is not None and int(d["values"]["malformed"]) > 0 and "stacked frames" in d["message"], d
        ckpt = save_random_checkpoint(tmp_path / "head", width, backbone_id, d_model=64)
        params = {"checkpoint": str(ckpt), "max_feature_age": 3.0, "diagnostics_period": 0.5}
        with start_node("action_head", env, tmp_path, params, params_file=True) as head:
            wait_ready(head, "action_head")
            evs = run_driver(env, "--camera", "rgb8", "--camera-rate", "8", "--height", "120", "--width", "160",
                             "--joints", "--instruction", "pick up the red cup", "--duration", "8")
            assert head.alive(), head.output()
        assert cam.alive() and bb.alive(), bb.output()
    camera = {e["stamp"] for e in of(evs, "camera")}
    feats = of(evs, "features")
    assert feats, "no features"
    assert all(f["width"] == width and f["frame_id"] == backbone_id and f["finite"] for f in feats)
    assert all(f["stamp"] in camera for f in feats)
    chunks = of(evs, "chunk")
    assert chunks, f"no chunks; head diagnostics: {last_diag(evs, 'action_head')}"
    for c in chunks:
        assert c["shape"] == [16, 29] and c["names_ok"] and c["times_ok"] and c["within_limits"]
        assert c["stamp"] in camera  # the camera stamp travelled clip -> features -> chunk
    d = last_diag(evs, "backbone")["values"]
    assert d["backbone_id"] == backbone_id and int(d["errors"]) == 0
    assert tiny or int(d["malformed"]) == 0  # (the tiny run was fed bad clips on purpose)
    if preset == "cpu_default":
        assert d["incremental"] == "True" and int(d["frames_encoded"]) > 0
