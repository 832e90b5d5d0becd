import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def normal_scheduling():
    """Every test starts and ends on SCHED_OTHER in all threads.

    Some code under test asks for SCHED_FIFO (rt_priority); a real-time pytest process would
    hand it to every child it starts, and busy real-time nodes starve two cores. The tests of
    [9] check separately that the project itself never leaves a process real-time.
    """
    from neon_ros.runtime.timing import restore_normal_scheduling

    restore_normal_scheduling()
    yield
    restore_normal_scheduling()


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models: one torch thread avoids oversubscription spin-waits on a loaded 2-core machine
    (a module asks for it with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``)."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def suite_cache(tmp_path_factory) -> Path:
    """The neon cache folder this run's tests share.

    Under scripts/test.sh (NEON_SUITE_CACHE names its XDG_CACHE_HOME, fresh for each run): that
    cache, where the demo test's `neon-ros demo --quick` trained the quick demo head as on a new
    user's machine, so the tests of that head reuse it instead of training it again. Run
    directly (pytest): a fresh folder, so nothing an earlier run left in ~/.cache is tested.
    """
    suite = os.environ.get("NEON_SUITE_CACHE")
    if suite and suite == os.environ.get("XDG_CACHE_HOME") and not os.environ.get("NEON_ASSETS"):
        from neon_ros.sim.assets import cache_root

        return cache_root()
    return tmp_path_factory.mktemp("neon_cache")
