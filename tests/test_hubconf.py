"""``hubconf.py``: torch.hub finds every registered network in the repository, offline, with its shipped weights."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO

from zoo.models import create_model, list_models


def test_load_from_the_repository_folder_gives_the_shipped_weights() -> None:
    net = torch.hub.load(str(REPO), "lenet5", weights="fashionmnist", source="local")
    shipped = create_model("lenet5", weights="fashionmnist")
    assert type(net) is type(shipped)
    for (key, ours), theirs in zip(net.state_dict().items(), shipped.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=key)


def test_weights_fix_the_classes_as_in_create_model() -> None:
    net = torch.hub.load(str(REPO), "convnet", weights="fashionmnist_0to4", source="local")
    assert net.num_classes == 5
    built = torch.hub.load(str(REPO), "resnet20", source="local", num_classes=7, in_channels=1)
    assert built(torch.zeros(2, 1, 32, 32)).shape == (2, 7)


def test_list_and_help_name_every_registered_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.hub.list and help take no source="local" (torch 2.14): point their repository lookup at this folder
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(REPO))
    assert sorted(torch.hub.list("owner/zoo")) == list_models()
    assert "lenet5.fashionmnist" in torch.hub.help("owner/zoo", "lenet5")
