"""The end-to-end benchmark runs both arms to a test accuracy on IDX files made here, and compares their times."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_idx_dataset

from zoo.tasks import ClassificationTask

ROOT = Path(__file__).resolve().parents[2]


def test_both_arms_train_test_and_are_compared(tmp_path: Path) -> None:
    data = make_idx_dataset(tmp_path / "fashion", n_train=300, n_test=100)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "end_to_end.py"), "--recipe", "lenet5_fashionmnist",
         "--epochs", "1", "--limit_batches", "3", "--workers", "0", "--data_root", str(data)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "ZOO_DATA_DIR": str(tmp_path / "none")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "CPU capability" in out and "lenet5, batch" in out
    for arm in ("zoo", "torchvision"):
        (row,) = re.findall(
            rf"seed 0 +{arm}: test accuracy ([0-9.]+), training ([0-9.]+) s, whole command ([0-9.]+) s", out
        )
        accuracy, training, whole = map(float, row)
        assert 0 <= accuracy <= 1 and 0 <= training < whole  # a few batches may round to 0.0 s
    assert re.search(r"torchvision / zoo, whole command: [0-9.]+x", out)


def test_the_torchvision_arm_tests_with_the_recipes_augmentation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    end_to_end = importlib.import_module("end_to_end")
    settings = end_to_end.recipe_settings("fast_fashionmnist", None)
    task = ClassificationTask(model="fastnet", num_classes=10, in_channels=1, tta_flip=settings["tta_flip"],
                              tta_shift=settings["tta_shift"]).eval()  # fmt: skip
    images = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = end_to_end.tested_logits(
            task.net, images, flip=settings["tta_flip"], shift=settings["tta_shift"]
        )
        assert settings["tta_shift"] > 0
        assert not torch.allclose(ours, task.net(images))  # the TTA does something
        torch.testing.assert_close(ours, task(images))
