"""Threads and precision chosen for the host (zoo.cli.speed, zoo.cli.precision), tested without depending on this
machine's CPU: its flags, its load and the measured times are given to the functions here."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import make_idx_dataset
from torch import nn

from zoo.cli import fit, precision, speed
from zoo.cli.precision import FULL_PRECISION, choose_precision, time_reduced_precision, training_device
from zoo.cli.speed import Choice, choose_threads, share_threads, threads_for
from zoo.errors import ZooError

BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2 = frozenset({"avx", "avx2", "fma"})


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A cache of our own, no inherited choices, and torch's threads put back afterwards."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OMP_NUM_THREADS", "_ZOO_THREADS", "_ZOO_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    for name in (
        "OMP_NUM_THREADS",
        "_ZOO_THREADS",
        "_ZOO_PRECISION",
    ):  # set by zoo itself, not by monkeypatch
        os.environ.pop(name, None)


# ---- threads ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usable", "busy", "default", "expected"),
    [
        (2, 0.0, 2, 2),  # idle: torch's default
        (2, 0.1, 2, 2),  # a daemon's tick does not cost a thread
        (2, 1.0, 2, 1),  # another training job on one core
        (2, 2.0, 2, 1),  # both cores busy: one thread, never none
        (2, 1.4, 2, 1),
        (16, 3.2, 16, 13),
        (16, 0.0, 8, 8),  # never more than torch's default (its physical cores)
    ],
)
def test_the_threads_are_the_cores_other_processes_leave_free(
    usable: int, busy: float, default: int, expected: int
) -> None:
    assert threads_for(usable, busy, default) == expected


def test_measured_threads_say_how_busy_the_cores_were(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "_usable_cpus", lambda: {0, 1})
    monkeypatch.setattr(speed, "_TORCH_THREADS", 2)
    monkeypatch.setattr(speed, "busy_cores", lambda *_: 1.1)
    choice = choose_threads(None)
    assert choice == Choice(1, "other processes kept 1.1 of 2 cores busy")
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(speed, "busy_cores", lambda *_: 0.0)
    assert choose_threads(None).value == 2 and torch.get_num_threads() == 2
    monkeypatch.setattr(speed, "busy_cores", lambda *_: None)  # no /proc/stat
    assert choose_threads(None) == Choice(
        2, "torch's default: this system does not say how busy its cores are"
    )


def test_given_threads_are_obeyed_and_bad_ones_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "busy_cores", lambda *_: pytest.fail("a given count is not measured"))
    assert choose_threads(1) == Choice(1, "--threads") and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads(None) == Choice(1, "OMP_NUM_THREADS")
    for bad in (0, -2, True, "2"):
        with pytest.raises(ZooError, match=r"^--threads takes a whole number of threads, 1 or more"):
            choose_threads(bad)  # type: ignore[arg-type]
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ZooError, match="OMP_NUM_THREADS must be a whole number"):
        choose_threads(None)


def test_a_measured_count_is_shared_between_the_processes_of_a_launch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OMP_NUM_THREADS", "_ZOO_THREADS"):  # set by share_threads: put back after the test
        monkeypatch.setenv(name, "1")
    measured = Choice(4, "other processes kept 0.0 of 4 cores busy")
    assert share_threads(measured, 1) is measured
    shared = share_threads(measured, 2)
    assert (
        shared.value == 2
        and shared.reason.endswith(", shared by 2 processes")
        and torch.get_num_threads() == 2
    )
    assert (
        os.environ["OMP_NUM_THREADS"] == "2"
    )  # Lightning's launcher keeps it; the other ranks start with it
    assert share_threads(Choice(3, "--threads"), 2).value == 3  # a given count is each process's
    monkeypatch.setenv("LOCAL_RANK", "1")  # another rank takes rank zero's share as it is
    monkeypatch.setenv("_ZOO_THREADS", "2|other processes kept 0.0 of 4 cores busy, shared by 2 processes")
    assert choose_threads(None) == Choice(
        2, "other processes kept 0.0 of 4 cores busy, shared by 2 processes"
    )


def test_busy_cores_reads_this_machine() -> None:
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat")
    busy = speed.busy_cores(0.05)
    assert busy is not None and 0.0 <= busy <= len(speed._usable_cpus()) + 0.5


# ---- precision --------------------------------------------------------------------------------------------------


class Timed:
    """Stands in for :func:`time_reduced_precision`: returns ``ratio`` and counts its calls."""

    def __init__(self, ratio: float) -> None:
        self.ratio, self.calls = ratio, 0

    def __call__(self, net: nn.Module, example: torch.Tensor, dtype: torch.dtype) -> float:
        self.calls += 1
        assert dtype == torch.bfloat16 and example.shape == (32, 1, 28, 28)  # a CPU times 32 at most
        return self.ratio


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))


def auto(net: nn.Module | None = None, configured: object = "bf16-mixed", **kwargs: object) -> Choice:
    options = {"auto": True, "given": False, "device": "cpu", "net": net, "shape": (1, 28, 28), "batch": 256}
    return choose_precision(configured, **{**options, **kwargs})  # type: ignore[arg-type]


def test_bfloat16_is_kept_only_where_it_measured_faster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: BF16)
    net = small_net()
    net(torch.zeros(1, 1, 28, 28))
    faster = Timed(0.6)
    monkeypatch.setattr(precision, "time_reduced_precision", faster)
    choice = auto(net)
    assert (
        choice.value == "bf16-mixed"
        and "took 0.60x the step time of 32-true, measured on this host" in choice.reason
    )
    assert faster.calls == 1
    # cached for this host, network, input and thread count: not measured again
    cached = json.loads((tmp_path / "cache" / "speed.json").read_text())
    assert [entry["ratio"] for entry in cached.values()] == [0.6]
    again = auto(net)
    assert again.value == "bf16-mixed" and "cached" in again.reason and faster.calls == 1
    # the same layers and parameters in another order are another network: measured again
    reordered = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(10)
    )
    reordered(torch.zeros(1, 1, 28, 28))
    assert "measured on this host" in auto(reordered).reason and faster.calls == 2

    (tmp_path / "cache" / "speed.json").unlink()
    slower = Timed(1.3)
    monkeypatch.setattr(precision, "time_reduced_precision", slower)
    choice = auto(net)
    assert choice.value == FULL_PRECISION and "bf16-mixed took 1.30x the step time" in choice.reason
    # a few percent is not a clear win: float32 stays
    (tmp_path / "cache" / "speed.json").unlink()
    monkeypatch.setattr(precision, "time_reduced_precision", Timed(0.95))
    assert auto(net).value == FULL_PRECISION


def test_bfloat16_is_not_tried_where_the_cpu_has_no_bfloat16_arithmetic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: AVX2)
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(
        precision, "time_reduced_precision", lambda *a: pytest.fail("known slower: not timed")
    )
    choice = auto(small_net())
    assert choice == Choice(
        FULL_PRECISION, "this CPU (AVX2) has no bfloat16 arithmetic: bf16-mixed would be emulated, slower"
    )
    # float16 on a CPU with bfloat16 only is no better
    monkeypatch.setattr(precision, "cpu_flags", lambda: BF16)
    assert "no float16 arithmetic" in auto(small_net(), configured="16-mixed").reason


def test_an_explicit_precision_is_obeyed_and_a_recipe_without_auto_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "time_reduced_precision", lambda *a: pytest.fail("nothing to measure"))
    assert auto(small_net(), given=True) == Choice("bf16-mixed", "given on the command line")
    assert auto(small_net(), configured="32-true", given=True).value == "32-true"
    assert auto(small_net(), auto=False) == Choice("bf16-mixed", "the recipe's trainer.precision")
    assert auto(small_net(), configured=None, auto=False).value == FULL_PRECISION
    assert auto(None).reason == "the data gives no input shape to time the network with"
    assert auto(small_net(), device="mps") == Choice(FULL_PRECISION, "zoo does not time bf16-mixed on mps")
    assert auto(small_net(), configured=None, device="mps").reason == "no reduced precision to try on mps"


def test_without_a_reduced_precision_in_the_recipe_the_hosts_is_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: BF16)
    monkeypatch.setattr(precision, "time_reduced_precision", Timed(0.5))
    net = small_net()
    net(torch.zeros(1, 1, 28, 28))
    assert auto(net, configured=None).value == "bf16-mixed"
    assert auto(net, configured="32-true").value == "bf16-mixed"


def test_processes_started_each_on_its_own_do_not_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: BF16)
    monkeypatch.setattr(precision, "launched_processes", lambda: 2)  # torchrun, SLURM
    monkeypatch.setattr(precision, "time_reduced_precision", lambda *a: pytest.fail("each would time alone"))
    choice = auto(small_net())
    assert choice.value == FULL_PRECISION and "--trainer.precision" in choice.reason
    assert auto(small_net(), given=True).value == "bf16-mixed"  # named: every process obeys it


def test_gpus_without_tensor_cores_for_the_type_are_not_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))
    assert (
        precision._known_slower("cuda", "bf16-mixed")
        == "this GPU (compute capability 7.5) has no bfloat16 tensor cores"
    )
    assert precision._known_slower("cuda", "16-mixed") is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 1))
    assert "no float16 tensor cores" in str(precision._known_slower("cuda", "16-mixed"))


def test_the_training_device_follows_the_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert [training_device(a) for a in ("cpu", "auto", None, "tpu")] == ["cpu", "cpu", "cpu", "tpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert [training_device(a) for a in ("auto", "gpu", "cuda", "cpu")] == ["cuda", "cuda", "cuda", "cpu"]


def test_timing_leaves_the_network_as_it_was() -> None:
    torch.manual_seed(0)
    net = small_net().train()
    example = torch.rand(4, 1, 28, 28)
    net(example)  # the lazy layer takes its shape
    net[0].weight.grad = marker = torch.ones_like(net[0].weight)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ratio = time_reduced_precision(net, example, torch.bfloat16, seconds=0.05, most=3)
    assert ratio > 0
    assert net.training and net[0].weight.grad is marker and net[1].weight.grad is None
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch norm's statistics did not move


# ---- through zoo fit --------------------------------------------------------------------------------------------


def fit_args(tmp_path: Path, *extra: str) -> list[str]:
    root = make_idx_dataset(tmp_path / "idx", n_train=200, n_test=40)
    return [
        "--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(root),
        "--data.init_args.val_size", "40", "--data.init_args.batch_size", "64",
        "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.accelerator", "cpu",
        "--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.callbacks", "[]",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(("value", "fragment"), [("0", "not 0"), ("-1", "not -1"), ("abc", "threads")])
def test_bad_threads_are_one_line(
    value: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fit.main(fit_args(tmp_path, "--threads", value)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo fit: error: ") and fragment in err[0], err
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_fit_says_and_records_its_threads_and_precision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: AVX2)
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX2")
    assert fit.main(fit_args(tmp_path, "--threads", "1", "--auto_precision", "true")) == 0
    out = capsys.readouterr()
    said = [line for line in out.out.splitlines() if line.startswith(("threads:", "precision:"))]
    assert said == [
        "threads: 1 (--threads)",
        "precision: 32-true (this CPU (AVX2) has no bfloat16 arithmetic: bf16-mixed would be emulated, slower)",
    ]
    (metrics_file,) = (tmp_path / "runs").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["threads"] == 1 and metrics["threads_reason"] == "--threads"
    assert metrics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert metrics["precision"] == "32-true" and "no bfloat16 arithmetic" in metrics["precision_reason"]

    # a precision on the command line is obeyed over auto_precision, and said so
    assert fit.main(fit_args(tmp_path, "--auto_precision", "true", "--trainer.precision", "bf16-mixed")) == 0
    assert "precision: bf16-mixed (given on the command line)" in capsys.readouterr().out.splitlines()


def test_the_ranks_lightning_starts_take_this_run_s_precision_not_an_earlier_one_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an earlier auto_precision run in the same process chose bf16-mixed; this run's recipe says 32-true
    monkeypatch.setenv("_ZOO_PRECISION", '["bf16-mixed", "measured by an earlier run"]')
    for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    chosen = precision.choose_precision("32-true", auto=False, given=False, device="cpu")
    assert chosen == Choice("32-true", "the recipe's trainer.precision")
    monkeypatch.setenv(
        "LOCAL_RANK", "1"
    )  # rank 1, started by Lightning's launcher with rank zero's environment
    assert precision.choose_precision("32-true", auto=False, given=False, device="cpu") == chosen
