"""``munet export``: plain timm safetensors, munet-format adapters, ONNX through onnxruntime."""

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


def test_path_without_adapters_exports_a_plain_timm_state_dict(synthetic, tmp_path):
    import timm
    from safetensors.torch import load_file
    from timm.models.vision_transformer import VisionTransformer

    assert synthetic.path("alpha").hparams["adapter_layers"] == []
    done = export_task(synthetic, "alpha", tmp_path / "alpha.safetensors")
    assert done["format"] == "timm" and done["max_abs_diff"] == 0.0
    cfg = json.loads((tmp_path / "alpha.json").read_text())
    args = cfg["timm"]["model_args"]
    assert args == {
        "img_size": 32,
        "patch_size": 8,
        "in_chans": 3,
        "embed_dim": 48,
        "depth": 2,
        "num_heads": 3,
        "mlp_ratio": 2.0,
        "qkv_bias": True,
        "num_classes": 4,
        "class_token": True,
        "global_pool": "token",
    }
    assert cfg["class_names"] == synthetic.classes("alpha")
    x = _probe(synthetic, "alpha", 5)
    want = synthetic.runner.run({"alpha": x})["alpha"]

    plain = VisionTransformer(**args).eval()
    plain.load_state_dict(load_file(str(tmp_path / "alpha.safetensors")), strict=True)
    keep = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")
    hub = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay=dict(
            file=str(tmp_path / "alpha.safetensors"), num_classes=4, custom_load=False
        ),
        num_classes=4,
        **{k: args[k] for k in keep},
    ).eval()
    with torch.no_grad():
        for model in (plain, hub):
            torch.testing.assert_close(model(x), want, rtol=0, atol=1e-6)
    assert torch.equal(load_exported(tmp_path / "alpha.safetensors").logits(x), want)


def test_path_with_adapters_exports_munet_format_that_reloads_alone(synthetic, tmp_path):
    from safetensors.torch import load_file
    from timm.models.vision_transformer import VisionTransformer

    done = export_task(synthetic, "gamma", tmp_path)  # a folder: named after the task
    assert done["files"] == [str(tmp_path / "gamma.safetensors"), str(tmp_path / "gamma.json")]
    cfg = json.loads((tmp_path / "gamma.json").read_text())
    assert cfg["format"] == "munet-path" and cfg["adapter_layers"] == [1]
    assert "not a plain timm state dict" in cfg["note"]
    state = load_file(str(tmp_path / "gamma.safetensors"))
    assert any(k.startswith("adapters.1.") for k in state)
    with pytest.raises(RuntimeError, match="adapters"):
        VisionTransformer(**cfg["timm"]["model_args"]).load_state_dict(state, strict=True)

    exported = load_exported(tmp_path / "gamma.json")
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    assert torch.equal(exported.logits(x), synthetic.logits("gamma", x))
    assert exported.predict(x, top_k=2) == synthetic.predict("gamma", x, top_k=2)
    assert exported.classes == synthetic.classes("gamma")


def test_onnx_export_has_a_dynamic_batch_and_matches_torch(synthetic, tmp_path):
    import onnxruntime as ort

    done = export_task(synthetic, "gamma", tmp_path / "gamma", "onnx")
    assert done["files"] == [str(tmp_path / "gamma.onnx"), str(tmp_path / "gamma.onnx.json")]
    assert done["max_abs_diff"] is not None and done["max_abs_diff"] < 1e-4
    cfg = json.loads((tmp_path / "gamma.onnx.json").read_text())
    assert cfg["onnx"]["input"]["shape"] == ["batch", 3, 32, 32]
    session = ort.InferenceSession(str(tmp_path / "gamma.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = _probe(synthetic, "gamma", n)
        (got,) = session.run(None, {"images": x.numpy()})
        want = synthetic.runner.run({"gamma": x})["gamma"]
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-5)


def test_export_cli_and_errors(synthetic_dir, tmp_path, capsys):
    base = ["export", "--system", str(synthetic_dir)]
    assert main([*base, "--task", "delta", "--out", str(tmp_path / "d.safetensors")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'd.safetensors'}" in out and "timm.create_model(" in out
    assert json.loads((tmp_path / "d.json").read_text())["timm"]["model_args"]["img_size"] == 16

    assert main([*base, "--task", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main([*base, "--task", "beta", "--out", str(tmp_path / "no" / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ExportError, match="does not exist"):
        load_exported(tmp_path / "missing.safetensors")
    with pytest.raises(ExportError, match="onnxruntime"):
        load_exported(tmp_path / "model.onnx")
