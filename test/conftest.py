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
