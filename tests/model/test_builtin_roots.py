"""Builtin roots: pretraining records, the root shipped in the package, and its sha256 check."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from munet.cli import main
from munet.errors import RootError
from munet.model import root as rootmod
from munet.system.arch import RootArch

NANO = rootmod.BuiltinRoot(
    RootArch(embed_dim=16, depth=1, num_heads=2, mlp_hidden_dim=32, patch_size=8, image_size=32),
    steps=4,
    batch_size=8,
    train_per_class=2,
    description="a test root",
)


@pytest.fixture
def nano(monkeypatch, tmp_path):
    """A 4-step root named ``nano`` whose shipped files live in tmp_path/ship."""
    monkeypatch.setitem(rootmod.BUILTIN_ROOTS, "nano", NANO)
    monkeypatch.setattr(rootmod, "SHIPPED_DIR", tmp_path / "ship")
    return tmp_path / "ship"


def test_shipping_a_root_then_loading_it_checks_its_sha256(nano, capsys):
    info = rootmod.pretrain_builtin("nano", out_dir=nano, log=lambda m: None)
    weights, meta = nano / "nano.safetensors", nano / "nano.json"
    assert json.loads(meta.read_text()) == info
    assert info["sha256"] == rootmod.file_sha256(weights)
    assert info["recipe"] == rootmod.recipe_key("nano") and info["steps"] == 4
    assert {"corpus_train", "val_accuracy", "seconds", "machine", "torch"} <= set(info)
    loaded = rootmod.load_builtin("nano")
    assert loaded.info["source"] == "shipped"
    state = load_file(str(weights))
    assert torch.equal(loaded.params["embedding"]["proj.weight"], state["patch_embed.proj.weight"])
    # one flipped byte: a one-line RootError naming the fix, never silently used
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(RootError, match="do not match the sha256.*reinstall munet"):
        rootmod.load_builtin("nano")


def test_regenerating_a_shipped_root_reports_a_difference_and_keeps_the_shipped_one(nano):
    rootmod.pretrain_builtin("nano", out_dir=nano, log=lambda m: None)
    same = rootmod.pretrain_builtin("nano", force=True, log=lambda m: None)
    assert same["matches_shipped"] is True  # deterministic on one machine
    # ship a valid file that differs (as one pretrained on another CPU would)
    weights, meta = nano / "nano.safetensors", nano / "nano.json"
    state = load_file(str(weights))
    state["norm.weight"] = state["norm.weight"] + 0.5
    save_file(state, str(weights))
    shipped = json.loads(meta.read_text())
    meta.write_text(json.dumps({**shipped, "sha256": rootmod.file_sha256(weights)}))
    said = []
    other = rootmod.pretrain_builtin("nano", force=True, log=said.append)
    assert other["matches_shipped"] is False
    assert any("differs from the root shipped" in m for m in said)
    # piped progress: the count of steps, the time left and the loss
    (count,) = [m for m in said if m.startswith("pretrain nano ")]
    assert re.fullmatch(r"pretrain nano 4/4, \d\d:\d\d elapsed, ETA 00:00 loss \d\.\d{3}", count)
    loaded = rootmod.load_builtin("nano")
    assert torch.equal(loaded.params["encoder_norm"]["weight"], state["norm.weight"])


def test_a_shipped_file_of_another_recipe_is_ignored(nano, monkeypatch):
    rootmod.pretrain_builtin("nano", out_dir=nano, log=lambda m: None)
    import dataclasses

    monkeypatch.setitem(rootmod.BUILTIN_ROOTS, "nano", dataclasses.replace(NANO, steps=5))
    assert rootmod.shipped_info("nano") is None
    loaded = rootmod.load_builtin("nano", log=lambda m: None)  # pretrained into the cache
    assert loaded.info.get("source") != "shipped" and loaded.info["steps"] == 5


def test_pretrain_root_lists_the_builtin_roots(capsys):
    assert main(["pretrain-root", "--list"]) == 0
    out = capsys.readouterr().out
    assert "vit_ti3" in out and "vit_micro" in out
    ti3 = rootmod.BUILTIN_ROOTS["vit_ti3"]
    assert f"{ti3.steps} steps of {ti3.batch_size}" in out


def test_the_default_root_ships_with_munet_and_matches_its_recipe():
    info = rootmod.shipped_info("vit_ti3")
    assert info is not None, "src/munet/model/weights/vit_ti3.* missing or of an old recipe"
    assert info["sha256"] == rootmod.file_sha256(rootmod.shipped_paths("vit_ti3")[0])
    assert info["val_accuracy"] >= 0.95
