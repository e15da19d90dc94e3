"""The per-step learning-rate schedules recipes use."""

from __future__ import annotations

import itertools

import pytest
import torch

from zoo.tasks import WarmupCosine, WarmupMultiStep, WarmupPoly


def _rates(schedule_cls: type, steps: int, **kwargs: object) -> list[float]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule = schedule_cls(optimizer, **kwargs)
    schedule.set_total_steps(steps)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_multistep_follows_he_et_al() -> None:
    rates = _rates(WarmupMultiStep, 64, milestones=[0.5, 0.75])
    assert rates[:32] == pytest.approx([0.1] * 32)
    assert rates[32:48] == pytest.approx([0.01] * 16)
    assert rates[48:] == pytest.approx([0.001] * 16)


def test_multistep_warmup_runs_at_a_fraction_of_the_rate() -> None:
    rates = _rates(WarmupMultiStep, 100, milestones=[0.5], warmup=0.05, warmup_factor=0.1)
    assert rates[:5] == pytest.approx([0.01] * 5)
    assert rates[5:50] == pytest.approx([0.1] * 45)
    assert rates[50:] == pytest.approx([0.01] * 50)


def test_multistep_linear_warmup_rises_as_linear_lr() -> None:
    rates = _rates(
        WarmupMultiStep, 100, milestones=[0.5], warmup=0.1, warmup_factor=0.001, warmup_mode="linear"
    )
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.001, total_iters=10)
    expected = []
    for _ in range(10):  # torchvision's detection warm-up
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert rates[:10] == pytest.approx(expected)
    assert rates[10:50] == pytest.approx([0.1] * 40) and rates[50:] == pytest.approx([0.01] * 50)


def test_cosine_warms_up_then_anneals_to_the_final_fraction() -> None:
    rates = _rates(WarmupCosine, 100, warmup=0.1, final_fraction=0.0)
    assert rates[:10] == pytest.approx([0.01 * (i + 1) for i in range(10)])
    assert rates[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[-1] < 0.001


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"milestones": [0.75, 0.5]}, "increasing fractions"),
        ({"milestones": [1.5]}, "increasing fractions"),
        ({"milestones": [0.5], "warmup": 1.0}, "warmup is a fraction"),
        ({"milestones": [0.5], "warmup_mode": "cosine"}, "constant or linear"),
    ],
)
def test_bad_multistep_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WarmupMultiStep(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), **kwargs)  # type: ignore[arg-type]


def test_poly_decay_is_torchvisions() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=50, power=0.9)
    expected = []
    for _ in range(50):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert _rates(WarmupPoly, 50) == pytest.approx(expected)
    assert _rates(WarmupPoly, 50)[-1] == pytest.approx(0.1 * (1 / 50) ** 0.9)


def test_poly_warmup_rises_linearly_then_decays() -> None:
    rates = _rates(WarmupPoly, 100, warmup=0.1, warmup_factor=0.01)
    assert rates[:10] == pytest.approx([0.1 * (0.01 + 0.99 * i / 10) for i in range(10)])
    assert rates[10] == pytest.approx(0.1)
    assert all(a > b for a, b in itertools.pairwise(rates[10:]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"power": 0.0}, "power must be positive"), ({"warmup": 1.0}, "warmup is a fraction"),
     ({"warmup_factor": 0.0}, "warmup_factor is a fraction")],
)  # fmt: skip
def test_bad_poly_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WarmupPoly(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), **kwargs)  # type: ignore[arg-type]
