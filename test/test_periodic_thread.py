"""timing.PeriodicThread: a node's fast periodic job off the rclpy executor (g1_bridge's /joint_states)."""

import threading
import time

import pytest

from neon_ros.runtime.timing import PeriodicThread


def test_runs_on_its_period_and_stops_at_once():
    calls: list[float] = []
    t = PeriodicThread(0.01, lambda: calls.append(time.monotonic()), "test_periodic")
    t.start()
    time.sleep(0.3)
    t.stop()
    n = len(calls)
    assert 20 <= n <= 31, n  # ~30 at 100 Hz (fewer only on a loaded machine)
    time.sleep(0.05)
    assert len(calls) == n  # nothing after stop
    slow = PeriodicThread(30.0, lambda: None, "test_periodic_slow")
    slow.start()
    t0 = time.monotonic()
    slow.stop()
    assert time.monotonic() - t0 < 1.0  # the sleep ends at the stop, not at the 30 s deadline
    assert not any(th.name.startswith("test_periodic") for th in threading.enumerate())


def test_a_failing_job_is_reported_and_the_next_period_runs():
    errors: list[BaseException] = []
    calls = []

    def job():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("publisher gone")

    t = PeriodicThread(0.01, job, "test_periodic_err", errors.append)
    t.start()
    time.sleep(0.15)
    t.stop()
    assert len(errors) == 1 and "publisher gone" in str(errors[0]) and len(calls) > 3


def test_without_an_error_handler_the_thread_ends_on_the_error(monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    calls = []

    def job():
        calls.append(1)
        raise ValueError("bad")

    t = PeriodicThread(0.01, job, "test_periodic_raise")
    t.start()
    time.sleep(0.1)
    t.stop()
    assert calls == [1] and seen == [ValueError]


@pytest.mark.parametrize("period", [0.0, -1.0])
def test_a_period_that_is_not_positive_is_refused(period):
    with pytest.raises(ValueError):
        PeriodicThread(period, lambda: None, "x")
