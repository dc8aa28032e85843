"""Serving and exporting paths with low-rank components (search: extended): mixed batches share
the stages before the first block with a delta; exports fold W + B·A into plain timm weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from munet.serve.errors import ExportError
from munet.serve.export import export_task, load_exported
from munet.system.arch import RootArch

#: The dimensions of the builtin ``vit_micro`` root.
MICRO = RootArch(embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=8, image_size=32)


@pytest.fixture(scope="module")
def lowrank_system(tmp_path_factory: pytest.TempPathFactory):
    """alpha: the root's frozen blocks; eps: a low-rank delta on block 1; zeta: an adapter before
    block 0 and a delta on block 0 (written to disk and reopened)."""
    import munet
    from munet.serve.synthetic import make_synthetic_system

    d = make_synthetic_system(
        tmp_path_factory.mktemp("serve") / "lowrank",
        MICRO,
        {"alpha": 4, "eps": 3, "zeta": 2},
        adapter_layers={"zeta": [0]},
        lowrank_layers={"eps": [1], "zeta": [0]},
    )
    return munet.load(d)


def _probe(system, task: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    size = system.task_info(task).image_size
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_lowrank_paths_serve_with_their_block_stage_and_mixed_batches_agree(lowrank_system):
    s = lowrank_system
    assert s.info("eps")["lowrank_layers"] == [1] and s.info("alpha")["lowrank_layers"] == []
    eps = s.path("eps")
    assert [c.name for c in eps.components if c.name.startswith("lowrank_")] == ["lowrank_1"]
    keys = {t: s.runner.routes[t].keys for t in ("alpha", "eps")}
    # embedding and block 0 are the same computation; block 1 runs eps's delta
    assert keys["alpha"][:2] == keys["eps"][:2] and keys["alpha"][2] != keys["eps"][2]
    x = _probe(s, "alpha", 5)
    alone = {t: s.logits(t, x) for t in ("alpha", "eps", "zeta")}
    mixed = s.logits_prepared([("alpha", x), ("eps", x), ("zeta", x)])
    for t, got in zip(("alpha", "eps", "zeta"), mixed, strict=True):
        assert torch.equal(got, alone[t])
    assert (alone["eps"] - s.model("eps")(x)).abs().max() < 1e-5


def test_timm_export_merges_the_deltas_and_timm_loads_it_offline(lowrank_system, tmp_path):
    import timm

    out = tmp_path / "eps"
    done = export_task(lowrank_system, "eps", out, "timm")
    assert done["format"] == "timm" and done["max_abs_diff"] < 1e-5
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["munet"]["merged_lowrank_layers"] == [1]
    assert cfg["munet"]["munet"]["hparams"]["lowrank_layers"] == []
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert not [k for k in model.state_dict() if "lora" in k]
    x = _probe(lowrank_system, "eps", 4)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, lowrank_system.logits("eps", x), rtol=0, atol=1e-5)
    assert "merged into their weights" in (out / "README.md").read_text()


def test_munet_export_with_adapters_and_deltas_reloads_with_the_same_predictions(
    lowrank_system, tmp_path
):
    done = export_task(lowrank_system, "zeta", tmp_path, "safetensors")
    assert done["format"] == "munet-path"
    exported = load_exported(Path(done["files"][0]))
    x = _probe(lowrank_system, "zeta", 6)
    torch.testing.assert_close(
        exported.logits(x), lowrank_system.logits("zeta", x), rtol=0, atol=1e-5
    )
    assert [p["label"] for p in exported.predict(x)] == [
        p["label"] for p in lowrank_system.predict("zeta", x)
    ]


def test_an_export_config_asking_for_unmerged_deltas_is_refused(lowrank_system, tmp_path):
    done = export_task(lowrank_system, "eps", tmp_path, "safetensors")
    config = Path(done["files"][1])
    cfg = json.loads(config.read_text())
    cfg["munet"]["hparams"]["lowrank_layers"] = [1]
    config.write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="lowrank_layers is not empty"):
        load_exported(Path(done["files"][0]))
