"""``munet export --format timm``: a folder in timm's Hugging Face layout that
``timm.create_model("local-dir:...")`` loads offline with the system's logits; adapters keep
munet's format in the same folder shape; a model card beside the weights."""

from __future__ import annotations

import json

import pytest
import torch

from munet.cli import main
from munet.serve.errors import ExportError
from munet.serve.export import export_task, load_exported


def _probe(system, task: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    size = system.task_info(task).image_size
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_timm_folder_loads_with_create_model_and_gives_the_same_logits(synthetic, tmp_path):
    import timm
    from timm.data import resolve_data_config

    out = tmp_path / "alpha"
    done = export_task(synthetic, "alpha", out, "timm")
    names = ("model.safetensors", "config.json", "README.md")
    assert done["files"] == [str(out / n) for n in names]
    assert done["format"] == "timm" and done["max_abs_diff"] == 0.0
    assert done["usage"] == f'timm.create_model("local-dir:{out}", pretrained=True)'

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "vit_tiny_patch16_224"
    assert cfg["num_classes"] == 4 and cfg["label_names"] == synthetic.classes("alpha")
    pre = cfg["pretrained_cfg"]
    assert pre["mean"] == [0.5] * 3 and pre["std"] == [0.5] * 3
    assert pre["input_size"] == [3, 32, 32] and pre["num_classes"] == 4
    assert cfg["model_args"]["depth"] == 2 and cfg["model_args"]["embed_dim"] == 48

    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = _probe(synthetic, "alpha", 5)
    want = synthetic.runner.run({"alpha": x})["alpha"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-6)
    data = resolve_data_config({}, model=model)
    assert tuple(data["input_size"]) == (3, 32, 32)
    assert tuple(data["mean"]) == (0.5, 0.5, 0.5) and tuple(data["std"]) == (0.5, 0.5, 0.5)
    assert model.pretrained_cfg["label_names"] == synthetic.classes("alpha")
    # munet reads the same folder back, with the system's preprocessing
    assert torch.equal(load_exported(out).logits(x), want)


def test_model_card_names_task_classes_accuracy_parameters(synthetic, tmp_path):
    export_task(synthetic, "alpha", tmp_path / "a", "timm")
    card = (tmp_path / "a" / "README.md").read_text()
    info = synthetic.info("alpha")
    assert card.startswith("---\nlibrary_name: timm\n")
    assert "# alpha: a muNet task model" in card
    assert all(f"`{c}`" in card for c in synthetic.classes("alpha"))
    assert f"parameters: {info['params']:,} in this model" in card
    acc = info["test_accuracy"]
    assert ("n/a" if acc is None else f"{acc:.4f}") in card
    assert "local-dir:" in card and "resolve_data_config" in card


def test_adapter_path_keeps_munet_format_in_a_folder(synthetic, tmp_path):
    out = tmp_path / "gamma"
    done = export_task(synthetic, "gamma", out, "timm")
    assert done["format"] == "munet-path"
    assert done["usage"] == f'munet.serve.load_exported("{out}")'
    cfg = json.loads((out / "config.json").read_text())
    assert "architecture" not in cfg and cfg["adapter_layers"] == [1]
    assert "library_name: munet" in (out / "README.md").read_text()
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    assert torch.equal(load_exported(out).logits(x), synthetic.logits("gamma", x))


def test_export_cli_timm_format(synthetic_dir, tmp_path, capsys):
    out = tmp_path / "delta"
    base = ["export", "--system", str(synthetic_dir), "--task", "delta", "--format", "timm"]
    assert main([*base, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out / 'model.safetensors'}" in text
    assert f'load with: timm.create_model("local-dir:{out}", pretrained=True)' in text
    (tmp_path / "file").write_text("x")
    assert main([*base, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(ExportError, match="does not exist"):
        load_exported(tmp_path / "empty-folder-missing")


def test_top_level_export_opens_a_system_directory(synthetic_dir, synthetic, tmp_path):
    import munet

    done = munet.export(synthetic_dir, "beta", tmp_path / "beta", format="timm")
    assert done["format"] == "timm" and done["max_abs_diff"] == 0.0
    x = _probe(synthetic, "beta", 3)
    assert torch.equal(load_exported(tmp_path / "beta").logits(x), synthetic.logits("beta", x))
