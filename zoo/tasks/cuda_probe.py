"""Torch's CUDA probe on every optimiser step, made cheap on hosts where it can only fail.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that asking whether CUDA is available does not
initialise CUDA before processes fork. With it set, and until CUDA is initialised, each
``torch.cuda.is_available()`` tries to load NVML (``libnvidia-ml.so.1``), and every step of Adam, AdamW, RMSprop and
torch's other optimisers that can be captured in a CUDA graph asks (``_accelerator_graph_capture_health_check``;
SGD does not). On a host without NVIDIA's driver running torch's CUDA build (PyPI's default on Linux), the load
fails each time and torch falls back to the CUDA runtime's own device count, the answer it gives when the variable
is unset. The failed load cost 0.54-0.58 ms a step on 2 cores of an AMD EPYC (``benchmarks/cuda_probe.py``), a
LeNet-5 step 7.6% longer.

:func:`skip_failing_probe` turns the NVML probe off for a fit when the library cannot be loaded, so the answer stays
the same and only the failed load goes; :func:`restore_probe` puts the variable back when the fit ends (a fit that
fails leaves it off, which gives the same answers). Where NVML loads (a host with NVIDIA's driver) nothing changes:
there the probe keeps forks safe.
"""

from __future__ import annotations

import ctypes
import functools
import os

import torch

__all__ = ["PROBE_VARIABLE", "nvml_loads", "restore_probe", "skip_failing_probe"]

#: torch's switch between the NVML probe ("1") and the CUDA runtime's count
PROBE_VARIABLE = "PYTORCH_NVML_BASED_CUDA_CHECK"
#: the library torch's probe loads (``torch.cuda._raw_device_count_nvml``)
_NVML = "libnvidia-ml.so.1"


@functools.cache
def nvml_loads() -> bool:
    """Whether NVML's library loads in this process, tried once."""
    try:
        ctypes.CDLL(_NVML)
    except OSError:
        return False
    return True


def skip_failing_probe() -> str | None:
    """Turn torch's NVML probe off if it is on and can only fail here (torch built with CUDA, NVML not loadable).

    Returns:
        The variable's value before, to hand to :func:`restore_probe`; None when it was left alone or unset.
    """
    before = os.environ.get(PROBE_VARIABLE)
    if before != "1" or not torch.backends.cuda.is_built() or nvml_loads():
        return None
    os.environ[PROBE_VARIABLE] = "0"
    return before


def restore_probe(before: str | None) -> None:
    """Put back the value :func:`skip_failing_probe` replaced (None: it replaced nothing)."""
    if before is not None:
        os.environ[PROBE_VARIABLE] = before
