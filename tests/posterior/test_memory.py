"""StepSizeMemory: autoMALA's adapted step sizes carried from call to call (maths 4.2,
departures A12)."""

from __future__ import annotations

import torch

from tkam.posterior import StepSizeMemory


def test_the_first_call_and_a_batch_of_another_size_start_from_the_initial_step() -> None:
    memory = StepSizeMemory()
    assert memory.start(0.01, 4) == 0.01
    memory.keep(torch.tensor([0.02, 0.04, 0.08, 0.16]))
    torch.testing.assert_close(memory.start(0.01, 4), torch.tensor([0.02, 0.04, 0.08, 0.16]))
    assert memory.start(0.01, 3) == 0.01  # e.g. the shorter last batch of an epoch
    memory.keep(None)  # a ULA call adapts nothing
    assert memory.start(0.01, 4) == 0.01


def test_kept_step_sizes_are_a_detached_copy() -> None:
    adapted = torch.tensor([0.5, 0.25], requires_grad=True)
    memory = StepSizeMemory()
    memory.keep(adapted * 1)
    with torch.no_grad():
        adapted.mul_(2)
    assert not memory.step_size.requires_grad
    torch.testing.assert_close(memory.step_size, torch.tensor([0.5, 0.25]))


def test_state_round_trips_bitwise() -> None:
    memory = StepSizeMemory()
    assert memory.state().numel() == 0
    memory.keep(torch.tensor([0.1, 1e-4, 3.3], dtype=torch.float32))
    other = StepSizeMemory()
    other.load(memory.state())
    assert other.step_size.dtype == torch.float32
    assert torch.equal(other.step_size, memory.step_size)
    other.load(torch.zeros(0))
    assert other.step_size is None
