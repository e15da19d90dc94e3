"""What torch's NVML probe costs an optimiser step, as importing Lightning leaves it, against the probe skipped.

    python benchmarks/cuda_probe.py                                    # lenet5 and convnet, 5 rounds
    python benchmarks/cuda_probe.py --models convnet --steps 200 --rounds 3

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``; every step of a torch optimiser then asks whether
CUDA is available through NVML, which on a host without NVIDIA's driver fails to load each time
(``zoo/tasks/cuda_probe.py``). zoo's tasks turn the probe off for a fit where it can only fail. Two plain loops
(``overhead.py``'s: the same network, Adam and batches of random images) take steps in turn, one with the
variable at ``1`` and one with it at ``0``, the order swapped every step, so both see the same machine. Prints, per
round, the mean step of each and their ratio; then the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from overhead import PlainStepper, probe_setting, quartiles

from zoo.cli.environment import hardware
from zoo.cli.speed import cpu_capability
from zoo.tasks.cuda_probe import nvml_loads

#: steps left out at the start of each round: lazy set-up and first calls
WARM_UP = 10


def paired_steps(model: str, *, steps: int, batch_size: int, seed: int) -> dict[str, float]:
    """Mean seconds a step with the probe on ("1") and off ("0"), stepped in turn on random images."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(4096, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (4096,), generator=generator)
    total = steps + WARM_UP
    steppers = {
        setting: PlainStepper(images, labels, model=model, batch_size=batch_size, steps=total, lr=1e-3)
        for setting in ("1", "0")
    }
    seconds = dict.fromkeys(steppers, 0.0)
    for step in range(total):
        for setting in ("1", "0") if step % 2 else ("0", "1"):
            with probe_setting(setting):
                started = time.perf_counter()
                steppers[setting]()
                elapsed = time.perf_counter() - started
            if step >= WARM_UP:
                seconds[setting] += elapsed
    return {setting: total_seconds / steps for setting, total_seconds in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["lenet5", "convnet"], help="registered 28x28x1 models"
    )
    parser.add_argument("--steps", type=int, default=400, help="timed steps of each setting per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")
    print(f"machine: {hardware()}, CPU capability {cpu_capability()}, torch {torch.__version__}")
    print(f"torch built with CUDA: {torch.backends.cuda.is_built()}; NVML loads here: {nvml_loads()}")
    for model in args.models:
        ratios: list[float] = []
        saved: list[float] = []
        for round_ in range(args.rounds):
            mean = paired_steps(model, steps=args.steps, batch_size=args.batch_size, seed=round_)
            ratios.append(mean["1"] / mean["0"])
            saved.append((mean["1"] - mean["0"]) * 1e3)
            print(f"  {model} round {round_ + 1}: probe on {mean['1'] * 1e3:.3f} ms, off {mean['0'] * 1e3:.3f} ms "
                  f"a step; on/off {ratios[-1]:.4f}", flush=True)  # fmt: skip
        low, middle, high = quartiles(ratios)
        print(f"{model}: on/off {middle:.4f} ({low:.4f}-{high:.4f}); the probe costs "
              f"{statistics.median(saved):.3f} ms a step (median of {args.rounds} rounds)")  # fmt: skip


if __name__ == "__main__":
    main()
