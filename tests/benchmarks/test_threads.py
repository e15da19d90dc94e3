"""benchmarks/threads.py runs end to end in its short mode (its figures are not looked at: CPUs here are shared)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
from conftest import load_benchmark


@pytest.fixture(scope="module")
def threads() -> Iterator[ModuleType]:
    module = load_benchmark("threads")
    count = torch.get_num_threads()
    yield module
    torch.set_num_threads(count)


def test_a_measurement_sets_the_threads_and_counts_its_steps(threads: ModuleType) -> None:
    stepper = threads.Stepper("lenet5")
    per_second, step_ms = stepper.measure(1, seconds=1.0, steps=3)
    assert torch.get_num_threads() == 1
    assert per_second > 0 and step_ms > 0


def test_the_benchmark_prints_its_machine_and_a_row_for_every_measurement(
    threads: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    threads.main(["--models", "lenet5", "--threads", "1", "--rounds", "1", "--steps", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Machine: ") and "CPU capability" in out[0]
    rows = [line for line in out if line.startswith("| `lenet5`")]
    assert [row.split(" | ")[1:3] for row in rows] == [["idle", "1"], ["beside a job", "1"]]


def test_bad_counts_are_refused(threads: ModuleType) -> None:
    with pytest.raises(SystemExit):
        threads.main(["--threads", "0"])
