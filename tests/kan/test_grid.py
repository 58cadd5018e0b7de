"""The grid-update schedule (maths 2.6)."""

from __future__ import annotations

import pytest

from tkam.kan.grid import GridUpdateSchedule


def update_steps(schedule: GridUpdateSchedule, last_step: int) -> list[int]:
    """Run the schedule as a training loop would and list the steps that update the grids."""
    steps = []
    for step in range(1, last_step + 1):
        if schedule.due(step):
            schedule.mark(step)
            steps.append(step)
    return steps


@pytest.mark.parametrize(
    ("decay", "last_step", "expected"),
    [
        (0.999, 2000, [1, 101, 211, 346, 536, 860, 1625]),
        (0.9999, 700, [1, 101, 202, 305, 411, 521, 636]),
        (1.0, 350, [1, 101, 201, 301]),  # no decay: a fixed interval
    ],
)
def test_schedule_steps(decay: float, last_step: int, expected: list[int]) -> None:
    assert update_steps(GridUpdateSchedule(interval=100, decay=decay), last_step) == expected


def test_schedule_reaches_about_5506_next_with_decay_0999() -> None:
    steps = update_steps(GridUpdateSchedule(interval=100, decay=0.999), 6000)
    assert steps[:7] == [1, 101, 211, 346, 536, 860, 1625]
    assert len(steps) == 8 and abs(steps[7] - 5506) <= 2  # the spec's "approximately 5506"


def test_about_21_updates_in_8000_steps_with_decay_09999() -> None:
    steps = update_steps(GridUpdateSchedule(interval=100, decay=0.9999), 8000)
    assert 20 <= len(steps) <= 22


def test_schedule_is_not_due_before_the_first_update_except_at_step_1() -> None:
    schedule = GridUpdateSchedule()
    assert schedule.due(1)
    assert not any(schedule.due(step) for step in range(2, 500))


def test_schedule_state_round_trip_resumes_identically() -> None:
    first = GridUpdateSchedule(interval=100, decay=0.999)
    update_steps(first, 400)  # updates at 1, 101, 211, 346
    restored = GridUpdateSchedule()
    restored.load_state_dict(first.state_dict())
    assert restored.state_dict() == first.state_dict()
    later = [s for s in range(401, 2000) if restored.due(s) and (restored.mark(s) or True)]
    assert later == [536, 860, 1625]
