"""The overhead benchmarks' timing machinery: the same batches in every arm, one plain step per Trainer step, and
every phase of a Trainer step timed."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import rich
import torch
from conftest import load_benchmark

from zoo.tasks.cuda_probe import PROBE_VARIABLE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    return load_benchmark("overhead")


def tiny_set() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(50, 1, 28, 28, generator=generator), torch.randint(0, 10, (50,), generator=generator)


def test_plain_batches_cross_epochs_and_stop_at_steps(overhead: ModuleType) -> None:
    images, labels = tiny_set()
    batches = list(overhead.plain_batches(images, labels, batch_size=16, steps=6))
    # 50 images in batches of 16: 4 batches an epoch (the last of 2), so 6 steps run into the second epoch
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2, 16, 16]
    first_epoch = torch.cat([b[1] for b in batches[:4]])
    assert sorted(first_epoch.tolist()) == sorted(labels.tolist())
    again = list(overhead.plain_batches(images, labels, batch_size=16, steps=6))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))


def test_plain_stepper_trains_and_stops(overhead: ModuleType) -> None:
    images, labels = tiny_set()
    step = overhead.PlainStepper(images, labels, model="lenet5", batch_size=16, steps=3, lr=1e-2)
    before = [p.detach().clone() for p in step.net.parameters()]
    assert [step(), step(), step(), step()] == [True, True, True, False]
    assert any(not torch.equal(a, b) for a, b in zip(before, step.net.parameters(), strict=True))


def test_interleaved_pairs_every_trainer_step_with_a_plain_step(overhead: ModuleType) -> None:
    images, labels = tiny_set()
    stepper = overhead.PlainStepper(images, labels, model="lenet5", batch_size=16, steps=5, lr=1e-3)
    clock = overhead.Interleaved(stepper)
    overhead.lightning_fit(images, labels, model="lenet5", batch_size=16, steps=5, lr=1e-3, callbacks=[clock])
    assert len(clock.plain_times) == len(clock.trainer_times) == 5
    assert all(t > 0 for t in clock.plain_times + clock.trainer_times)
    assert next(stepper.batches, None) is None  # the plain arm took exactly as many steps as the Trainer


def test_floor_arm_does_the_plain_steps_work_through_the_trainer(overhead: ModuleType) -> None:
    """The floor arm is the plain loop's step with Lightning's loop around it: the same batches, forward, backward,
    Adam step and zero_grad, so the same weights after the same steps; and exactly as many steps, although
    ``global_step`` does not count them."""
    images, labels = tiny_set()
    plain = overhead.PlainStepper(images, labels, model="lenet5", batch_size=16, steps=5, lr=1e-2)
    clock = overhead.Interleaved(
        overhead.PlainStepper(images, labels, model="lenet5", batch_size=16, steps=5, lr=1e-2)
    )
    floor = overhead.FloorModule("lenet5", 1e-2)
    loader = overhead.PlainBatches(images, labels, batch_size=16, steps=5)
    trainer = overhead.quiet_trainer(5, [clock], max_epochs=1)
    trainer.fit(floor, train_dataloaders=loader)
    while plain():
        pass
    assert len(clock.plain_times) == len(clock.trainer_times) == 5
    # manual optimisation with the bare optimiser counts no steps: hence max_epochs, not max_steps
    assert trainer.global_step == 0
    for ours, theirs in zip(floor.net.parameters(), plain.net.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_plain_steps_run_without_the_probe_setting_lightning_adds(
    overhead: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain arm stands for a script that imports torch alone; the Trainer's arm keeps Lightning's setting."""
    monkeypatch.setenv(PROBE_VARIABLE, "1")
    images, labels = tiny_set()
    seen: list[str | None] = []

    class Recording(overhead.PlainStepper):  # type: ignore[name-defined,misc]
        def __call__(self) -> bool:
            seen.append(os.environ.get(PROBE_VARIABLE))
            return bool(super().__call__())

    clock = overhead.Interleaved(Recording(images, labels, model="lenet5", batch_size=16, steps=3, lr=1e-3))
    overhead.lightning_fit(images, labels, model="lenet5", batch_size=16, steps=3, lr=1e-3, callbacks=[clock])
    assert seen == [None, None, None]
    assert os.environ[PROBE_VARIABLE] == "1"


def test_cuda_probe_pairs_the_settings_and_puts_the_variable_back(
    overhead: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PROBE_VARIABLE, "1")
    monkeypatch.setitem(sys.modules, "overhead", overhead)  # it imports overhead.py's pieces
    module = load_benchmark("cuda_probe")
    module.main(["--models", "lenet5", "--steps", "2", "--rounds", "2"])
    out = capsys.readouterr().out
    assert re.search(r"CPU capability \w+", out)
    rounds = re.findall(r"lenet5 round \d: probe on [\d.]+ ms, off [\d.]+ ms a step; on/off [\d.]+", out)
    assert len(rounds) == 2
    assert re.search(r"lenet5: on/off [\d.]+ \([\d.]+-[\d.]+\); the probe costs -?[\d.]+ ms a step", out)
    assert os.environ[PROBE_VARIABLE] == "1"
    with pytest.raises(SystemExit) as refused:
        module.main(["--steps", "0"])
    assert refused.value.code == 2
    assert "--steps and --rounds must be at least 1" in capsys.readouterr().err


def test_overhead_runs_end_to_end_on_synthetic_data(
    overhead: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["overhead.py", "--synthetic", "--steps", "3", "--rounds", "2"])
    overhead.main()
    out = capsys.readouterr().out
    assert out.count("round ") == 4  # two rounds of whole fits, two of steps
    for line in ("zoo/plain:", "lightning/plain:", "zoo/lightning:"):
        assert line in out
    assert (
        len(re.findall(r"round \d: lightning/plain [\d.]+, zoo/plain [\d.]+, floor/plain [\d.]+", out)) == 2
    )
    assert re.search(r"floor/plain: [\d.]+ \([\d.]+-[\d.]+\), [+-][\d.]+ ms a step", out)


@pytest.fixture()
def step_phases(overhead: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setitem(sys.modules, "overhead", overhead)  # it imports overhead.py's pieces
    return load_benchmark("step_phases")


def test_phase_clock_times_every_phase_of_every_step(overhead: ModuleType, step_phases: ModuleType) -> None:
    images, labels = tiny_set()
    stepper = step_phases.TimedPlainStepper(images, labels, model="lenet5", batch_size=16, steps=8, lr=1e-3)
    clock = step_phases.PhaseClock(stepper)
    overhead.lightning_fit(images, labels, model="lenet5", batch_size=16, steps=8, lr=1e-3, callbacks=[clock])
    # "between batches" runs from the first batch's end to the second's start, and on: one fewer than the steps
    for phase in step_phases.PHASES:
        assert len(clock.times[phase]) == (7 if phase == "between batches" else 8), phase
        assert min(clock.times[phase]) > 0, phase
    assert {len(times) for times in stepper.times.values()} == {8}  # one plain step before each Trainer step
    measured = clock.milliseconds()
    assert set(measured["trainer"]) == set(step_phases.PHASES) == set(measured["plain"])
    # the plain step has no phase of its own between the loss and the backward pass, or before its forward
    assert measured["plain"]["loss to backward"] == measured["plain"]["before forward"] == 0


def test_step_phases_prints_a_row_a_phase_on_synthetic_data(
    step_phases: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["step_phases.py", "--synthetic", "--steps", "8", "--rounds", "1"])
    step_phases.main()
    out = capsys.readouterr().out
    for phase in step_phases.PHASES:
        assert re.search(rf"\| {re.escape(phase)} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", out), phase
    assert re.search(r"Lightning alone [0-9.]+, zoo [0-9.]+", out) and "CPU capability" in out
    monkeypatch.setattr(sys, "argv", ["step_phases.py", "--synthetic", "--steps", "6"])
    with pytest.raises(SystemExit) as refused:
        step_phases.main()
    assert refused.value.code == 2
    assert "--steps must be more than 6" in capsys.readouterr().err


def test_progress_overhead_times_every_arm_on_synthetic_data(
    overhead: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # it imports overhead.py's pieces
    # Lightning's bar points rich's shared console at the benchmark's terminal, closed when it ends: a console of
    # this test's own, so later tests print to theirs
    monkeypatch.setattr(rich, "_console", None)
    monkeypatch.setitem(sys.modules, "overhead", overhead)
    module = load_benchmark("progress_overhead")
    monkeypatch.setattr(sys, "argv", ["progress_overhead.py", "--synthetic", "--steps", "4", "--rounds", "2"])
    module.main()
    out = capsys.readouterr().out
    assert out.count("round ") == 2 and "CPU capability" in out
    for arm in module.ARMS:  # a time a step for each, and its ratio to the arm without a bar
        assert re.search(rf"    {arm}: [0-9.]+ ms; [0-9.]+ \(", out), out


def test_exit_time_times_both_exits_in_alternating_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_benchmark("exit_time")
    # the child without the imports of a zoo fit (seconds each): the timing machinery alone. Its 300,000 lists
    # hold themselves in a cycle, which only the collector frees: a tenth of a second collected, nothing frozen
    child = (
        "import atexit, gc, time\nkept = [[i] for i in range(300_000)]\nkept.append(kept)\n"
        + module.CHILD.split("import zoo.cli.fit\n")[1]
    )
    monkeypatch.setattr(module, "CHILD", child)
    monkeypatch.setattr(sys, "argv", ["exit_time.py", "--rounds", "2"])
    module.main()
    out = capsys.readouterr().out
    assert out.count("  round ") == 2 and "CPU capability" in out
    medians = r"median over 2 rounds: Python's collection ([0-9.]+) s, frozen \(zoo\) ([0-9.]+) s"
    collected, frozen = map(float, re.findall(medians, out)[0])
    assert 0 < frozen < collected, out


def test_figures_overhead_refuses_a_recipe_without_figure_callbacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    figures_overhead = load_benchmark("figures_overhead")
    monkeypatch.setattr(sys, "argv", ["figures_overhead.py", "--recipe", "fast_fashionmnist"])
    with pytest.raises(SystemExit) as refused:
        figures_overhead.main()
    assert refused.value.code == 2
    assert "fast_fashionmnist turns on no zoo figure callbacks" in capsys.readouterr().err
