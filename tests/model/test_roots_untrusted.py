"""A ``file:`` root's sidecar is untrusted: hub names are refused without any lookup, declared
sizes are checked against the weights' header before a model is built, and a meta model far
larger than its weights file is refused before it is materialised."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from munet.errors import RootError
from munet.model.root import load_root

ARGS = {"depth": 2, "img_size": 32}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """A 2-block vit_tiny (width 192) saved as safetensors and as a torch state dict."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **ARGS)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    d = tmp_path_factory.mktemp("untrusted-root")
    save_file(sd, d / "w.safetensors")
    torch.save(sd, d / "w.pth")
    return {"safetensors": d / "w.safetensors", "pth": d / "w.pth"}


@pytest.fixture
def spies(monkeypatch):
    """Records every DNS lookup and every timm.create_model call (with its arguments)."""
    seen = {"dns": [], "create": []}

    def no_dns(*args, **kwargs):
        seen["dns"].append(args[0])
        raise OSError("no network in tests")

    real_create = timm.create_model

    def create(*args, **kwargs):
        seen["create"].append(kwargs)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(timm, "create_model", create)
    return seen


def _root(path: Path, sidecar: dict, tmp_path: Path) -> Path:
    local = tmp_path / path.name
    local.write_bytes(path.read_bytes())
    local.with_suffix(".json").write_text(json.dumps(sidecar))
    return local


@pytest.mark.parametrize(
    "name",
    [
        "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k",
        "timm/vit_tiny_patch16_224.augreg_in21k",
        "https://example.com/vit.json",
        "local-dir:/tmp/x",
    ],
)
def test_hub_and_url_model_names_are_refused_without_a_lookup(weights, tmp_path, spies, name):
    path = _root(weights["safetensors"], {"model": name, "args": ARGS}, tmp_path)
    with pytest.raises(RootError, match="hub or URL name") as err:
        load_root(f"file:{path}", log=lambda m: None)
    assert "\n" not in str(err.value)
    assert spies == {"dns": [], "create": []}
    with pytest.raises(RootError, match="hub or URL name"):
        load_root(f"timm:{name}", weights=weights["safetensors"], log=lambda m: None)
    assert spies == {"dns": [], "create": []}


@pytest.mark.parametrize(
    "fmt,args,message",
    [
        ("safetensors", {"embed_dim": 2**20}, "embed_dim=1048576 is invalid"),
        ("safetensors", {"embed_dim": 384}, "embed_dim=384 but the weights have 192"),
        ("safetensors", {"depth": 200_000}, "depth=200000 is invalid"),
        ("safetensors", {"depth": 3}, "depth=3 but the weights have 2"),
        ("pth", {"depth": 200_000}, "depth=200000 is invalid"),
        ("pth", {"embed_dim": "wide"}, "embed_dim='wide' is invalid"),
    ],
)
def test_declared_sizes_are_checked_before_a_model_is_built(
    weights, tmp_path, spies, fmt, args, message
):
    path = _root(
        weights[fmt], {"model": "vit_tiny_patch16_224", "args": {**ARGS, **args}}, tmp_path
    )
    with pytest.raises(RootError, match=message):
        load_root(f"file:{path}", log=lambda m: None)
    assert spies["create"] == []


def test_a_model_far_larger_than_its_weights_is_refused_before_allocation(
    weights, tmp_path, spies, monkeypatch
):
    def no_alloc(self, *args, **kwargs):
        raise AssertionError("materialised a model its weights cannot fill")

    monkeypatch.setattr(torch.nn.Module, "to_empty", no_alloc)
    big = {
        "model": "vit_tiny_patch16_224",
        "args": {**ARGS, "depth": 24, "embed_dim": 2048, "num_heads": 16},
    }
    path = _root(weights["pth"], big, tmp_path)  # a .pth: no header, its size is the bound
    with pytest.raises(RootError, match="parameters but .* holds about"):
        load_root(f"file:{path}", log=lambda m: None)
    assert all(call["pretrained"] is False for call in spies["create"])


def test_a_good_sidecar_still_loads_and_never_asks_for_pretrained_weights(weights, tmp_path, spies):
    path = _root(weights["safetensors"], {"model": "vit_tiny_patch16_224", "args": ARGS}, tmp_path)
    root = load_root(f"file:{path}", log=lambda m: None)
    assert (root.arch.depth, root.arch.embed_dim) == (2, 192)
    assert spies["create"] and all(call["pretrained"] is False for call in spies["create"])
    assert spies["dns"] == []
