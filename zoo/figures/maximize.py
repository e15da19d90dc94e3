"""Activation maximisation: inputs optimised by gradient ascent to excite a filter or a class.

Regularised as in Yosinski et al. 2015 ("Understanding neural networks through deep visualization"): a mean
square penalty (:data:`L2_WEIGHT`) keeps the inputs small, a 3x3 binomial blur every :data:`BLUR_EVERY` steps
removes the high frequencies that excite a unit without looking like anything, and after each step the inputs are
clipped to the normalised values of pixels 0..1 (when the data says how it normalises).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.figures.layers import capture, find_layer

__all__ = ["BLUR_EVERY", "L2_WEIGHT", "ascend", "class_score", "layer_score"]

#: weight of the inputs' mean square in the objective
L2_WEIGHT = 1.0
#: how often, in steps, the inputs are blurred
BLUR_EVERY = 4

Score = Callable[[Tensor], Tensor]


def layer_score(network: nn.Module, layer: str, channels: list[int]) -> Score:
    """For inputs ``(N, C, H, W)``: the mean activation of channel ``channels[i]`` of ``layer`` on input ``i``."""
    module = find_layer(network, layer)

    def score(inputs: Tensor) -> Tensor:
        with capture({layer: module}) as outputs:
            network(inputs)
        picked = outputs[layer][range(len(channels)), channels]
        return picked.flatten(1).mean(dim=1) if picked.ndim > 1 else picked

    return score


def class_score(network: nn.Module, targets: list[int]) -> Score:
    """For inputs ``(N, C, H, W)``: the logit of class ``targets[i]`` on input ``i``."""
    return lambda inputs: network(inputs)[range(len(targets)), targets]


def ascend(
    score: Score,
    count: int,
    shape: tuple[int, ...],
    *,
    device: torch.device,
    steps: int,
    seed: int = 0,
    mean: Tensor | None = None,
    std: Tensor | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] = iter,
) -> tuple[Tensor, list[float]]:
    """Gradient ascent on ``count`` inputs of ``shape`` ``(C, H, W)``, from faint seeded noise.

    Args:
        score: the value to maximise for each input, ``(N,)`` for inputs ``(N, C, H, W)``.
        count: how many inputs.
        shape: ``(C, H, W)`` of one input.
        device: where the network runs.
        steps: Adam steps.
        seed: seeds the starting noise.
        mean: per-channel normalisation mean (0..1 units); with ``std``, keeps inputs within pixels 0..1.
        std: per-channel normalisation standard deviation.
        progress: wraps the steps, to show progress.

    Returns:
        The inputs ``(count, C, H, W)`` on the CPU, and the score each reached.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = (0.1 * torch.randn(count, *shape, generator=generator)).to(device).requires_grad_(True)
    bounds = None
    if mean is not None and std is not None:
        shaped = (1, -1, 1, 1)
        bounds = ((-mean / std).to(device).view(shaped), ((1 - mean) / std).to(device).view(shaped))
    binomial = torch.tensor([1.0, 2.0, 1.0], device=device)
    blur = (binomial[:, None] * binomial[None, :] / 16).expand(shape[0], 1, 3, 3)
    optimiser = torch.optim.Adam([inputs], lr=0.05)
    value = torch.zeros(count)
    for step in progress(range(steps)):
        optimiser.zero_grad()
        value = score(inputs)
        (L2_WEIGHT * inputs.square().mean(dim=(1, 2, 3)) - value).sum().backward()
        optimiser.step()
        with torch.no_grad():
            if step % BLUR_EVERY == 0:
                padded = F.pad(inputs, (1, 1, 1, 1), mode="replicate")
                inputs.copy_(F.conv2d(padded, blur, groups=shape[0]))
            if bounds is not None:
                inputs.copy_(torch.maximum(torch.minimum(inputs, bounds[1]), bounds[0]))
    return inputs.detach().cpu(), value.detach().cpu().tolist()
