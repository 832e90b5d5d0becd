import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _normal_scheduling() -> None:
    """Put every thread of this process back on SCHED_OTHER.

    Some code under test asks for SCHED_FIFO (rt_priority); if the pytest process itself ever
    ends up real-time, every child it starts inherits it and busy real-time nodes starve the
    machine. Tests always start from normal scheduling.
    """
    import os

    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) != os.SCHED_OTHER:
                os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass



@pytest.fixture(autouse=True)
def normal_scheduling():
    _normal_scheduling()
    yield
    _normal_scheduling()
