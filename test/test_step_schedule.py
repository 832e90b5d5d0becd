"""runtime.step_schedule: when the head steps, from features' arrivals (plain logic, no ROS)."""

import re

import numpy as np
import pytest

from neon_ros.runtime.step_schedule import StepSchedule, schedule_for

PERIOD = 0.05


def _feed(s: StepSchedule, stamps, latency=0.05):
    for st in stamps:
        s.features(st + latency, latency)


def test_features_step_at_their_arrival_not_at_the_next_tick():
    s = StepSchedule(PERIOD)
    s.stepped(1.000)
    s.features(1.037, 0.037)
    assert s.next_step() == (1.037, False)


def test_a_step_comes_no_sooner_than_min_gap_after_the_last():
    s = StepSchedule(PERIOD, min_gap=0.02)
    s.stepped(1.000)
    s.features(1.005, 0.05)
    assert s.next_step()[0] == pytest.approx(1.020)


def test_without_an_estimate_steps_are_a_period_apart():
    s = StepSchedule(PERIOD)
    assert s.next_step() == (float("-inf"), False)  # never stepped: now
    _feed(s, [1.9, 2.0])  # two features: no interval estimate yet
    s.stepped(2.0)  # on them
    assert s.next_step() == (pytest.approx(2.05), False)


def test_a_step_far_from_the_next_features_is_a_period_after_the_last():
    s = StepSchedule(PERIOD)
    _feed(s, [0.0, 0.1, 0.2])  # 10 Hz, 50 ms latency: the next arrive at 0.35
    s.stepped(0.25)  # the arrival step of the features stamped 0.2
    assert s.next_step() == (pytest.approx(0.30), False)  # 50 ms before the next: a step on these


def test_a_step_due_just_before_new_features_waits_for_them():
    s = StepSchedule(PERIOD)
    _feed(s, [0.0, 0.1, 0.2])
    s.stepped(0.31)  # the next tick would be 0.36, after the expected arrival 0.35 - hold
    due, waiting = s.next_step()
    assert waiting and due == pytest.approx(0.35 + PERIOD)  # wait for them, at most a grace period


def test_repeated_or_older_features_are_not_new():
    s = StepSchedule(PERIOD)
    assert s.features(1.05, 0.05)
    assert not s.features(1.06, 0.06)  # the same camera stamp again
    assert not s.features(1.07, 0.10)  # an older frame


def test_late_steps_are_counted():
    s = StepSchedule(PERIOD)
    s.stepped(1.0, after_wait=True)
    s.stepped(1.1)
    assert s.late == 1


@pytest.mark.parametrize("kwargs", [{"period": 0.0}, {"period": PERIOD, "min_gap": 0.2},
                                    {"period": PERIOD, "window": 2}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        StepSchedule(**kwargs)


def _ages(stamps, arrivals, step_times_of):
    """Camera -> step age of every step, stepping on the newest features arrived."""
    steps = step_times_of(stamps, arrivals)
    idx = np.searchsorted(arrivals, steps, side="right") - 1
    ok = idx >= 0
    return steps[ok] - stamps[idx[ok]], steps


def _grid(phase):
    return lambda stamps, arrivals: np.arange(phase, stamps[-1], PERIOD)


def _scheduled(stamps, arrivals):
    s, steps, k = StepSchedule(PERIOD), [], 0
    while k < len(arrivals):
        due, after_wait = s.next_step()
        if due < arrivals[k]:
            steps.append(max(due, 0.0))
            s.stepped(steps[-1], after_wait)
            continue
        s.features(arrivals[k], arrivals[k] - stamps[k])  # the next answer is its arrival step
        k += 1
    return np.array(steps)


def test_against_a_fixed_grid_chunks_are_younger_at_the_same_rate():
    """10 Hz features, 40 ms + an exponential tail of latency (as in the demo): the scheduled
    steps' camera -> step p99 is well under the fixed 20 Hz grid's at any phase, ~20 steps/s."""
    rng = np.random.default_rng(0)
    stamps = np.arange(3000) * 0.1
    arrivals = np.sort(stamps + 0.04 + rng.exponential(0.01, stamps.size))
    ages, steps = _ages(stamps, arrivals, _scheduled)
    p99 = np.percentile(ages, 99)
    grid_p99 = [np.percentile(_ages(stamps, arrivals, _grid(ph))[0], 99)
                for ph in np.linspace(0.0, PERIOD, 5, endpoint=False)]
    assert p99 < min(grid_p99) - 0.015, (p99, grid_p99)
    assert 19.0 <= steps.size / stamps[-1] <= 20.5
    assert np.max(np.diff(steps)) <= PERIOD + PERIOD / 2 + PERIOD + 1e-9  # a wait is bounded: period + hold + grace


def test_a_step_on_new_features_clears_them():
    s = StepSchedule(PERIOD)
    s.stepped(1.0)
    s.features(1.03, 0.03)
    s.stepped(1.03)
    assert s.next_step() == (pytest.approx(1.08), False)  # a period after, no second arrival step
    assert not s.features(1.04, 0.04)  # the same frame again: no new step
    assert s.next_step() == (pytest.approx(1.08), False)


def test_schedule_names_map_to_their_step_times():
    """action_head's and the simulated deployment's ``schedule``: arrival -> a StepSchedule, grid ->
    None (the caller's absolute deadlines), anything else refused with the choices."""
    assert isinstance(schedule_for("arrival", 0.05), StepSchedule) and schedule_for("arrival", 0.05).period == 0.05
    assert schedule_for("grid", 0.05) is None
    with pytest.raises(ValueError, match=re.escape("arrival | grid")):
        schedule_for("fast", 0.05)
