"""Export one task's model: safetensors + JSON config (timm layout), or ONNX.

A path without residual adapters is exactly a timm ``VisionTransformer``: its safetensors file is
a plain timm state dict and the JSON names the timm constructor arguments. A path with adapters
is saved in munet's layout (timm keys plus ``adapters.<i>.*``) and is rebuilt by
:func:`load_exported`; the JSON says so. ONNX files take float images in [-1, 1] with a dynamic
batch dimension and are checked against the torch model with onnxruntime when it is installed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from munet import __version__
from munet.serve.engine import run_chunked
from munet.serve.errors import ExportError
from munet.serve.images import prepare_images
from munet.serve.system import DEFAULT_BATCH_SIZE, MultitaskSystem, TaskInfo, predictions
from munet.system.arch import RootArch

FORMATS = ("safetensors", "onnx")
TIMM_ARCHITECTURE = "vit_tiny_patch16_224"
ONNX_TOLERANCE = 1e-4  # max |onnx - torch| relative to the largest |logit| (at least 1)

PREPROCESS = (
    "convert to {channels} channel(s) ({gray}), resize to {size}x{size} (bilinear, antialiased "
    "when shrinking), scale pixels p in [0, 255] to p / 127.5 - 1, replicate a gray channel "
    "to 3; input is float32 [N, 3, {size}, {size}]"
)


def timm_args(arch: RootArch, hparams: dict[str, Any]) -> dict[str, Any]:
    """Arguments of ``timm.models.vision_transformer.VisionTransformer`` for a path."""
    return {
        "img_size": int(hparams["ds_image_size"]),
        "patch_size": arch.patch_size,
        "in_chans": arch.in_chans,
        "embed_dim": arch.embed_dim,
        "depth": int(hparams["num_layers"]),
        "num_heads": arch.num_heads,
        "mlp_ratio": arch.mlp_hidden_dim / arch.embed_dim,
        "qkv_bias": arch.qkv_bias,
        "num_classes": int(hparams["num_classes"]),
        "class_token": True,
        "global_pool": "token",
    }


def _config(system: MultitaskSystem, task: str, kind: str) -> dict[str, Any]:
    path = system.path(task)
    info = system.task_info(task)
    args = timm_args(system.arch, path.hparams)
    adapters = list(path.hparams.get("adapter_layers", []))
    cfg: dict[str, Any] = {
        "format": kind,
        "munet_version": __version__,
        "task": task,
        "class_names": list(info.class_names),
        "num_classes": len(info.class_names),
        "test_accuracy": path.metrics.get("test_quality"),
        "preprocess": {
            "image_size": info.image_size,
            "channels": info.channels,
            "description": PREPROCESS.format(
                channels=info.channels,
                gray="RGB to luma as PIL convert('L')" if info.channels == 1 else "RGB",
                size=info.image_size,
            ),
        },
        "timm": {"architecture": TIMM_ARCHITECTURE, "model_args": args},
        "munet": {"arch": system.arch.to_dict(), "hparams": dict(path.hparams)},
        "adapter_layers": adapters,
    }
    if kind == "timm":
        overlay = {k: args[k] for k in ("img_size", "depth", "embed_dim", "num_heads")}
        kw = ", ".join(
            f"{k}={args[k]!r}" for k in ("patch_size", "mlp_ratio", "num_classes", *overlay)
        )
        cfg["usage"] = (
            f"timm.create_model({TIMM_ARCHITECTURE!r}, pretrained=True, "
            f"pretrained_cfg_overlay=dict(file=PATH, num_classes={args['num_classes']}), {kw}); "
            "or timm.models.vision_transformer.VisionTransformer(**model_args) + "
            "load_state_dict(safetensors.torch.load_file(PATH))"
        )
    elif kind == "munet-path":
        cfg["note"] = (
            f"not a plain timm state dict: residual adapters at layers {adapters} "
            "(adapters.<i>.* run before blocks.<i>); load with munet.serve.load_exported(PATH)"
        )
    return cfg


def _out_path(out: str | os.PathLike, task: str, suffix: str) -> Path:
    p = Path(out)
    if p.is_dir():
        p = p / f"{task}{suffix}"
    if p.suffix != suffix:
        p = p.with_name(p.name + suffix) if not p.suffix else p.with_suffix(suffix)
    if not p.parent.is_dir():
        raise ExportError(f"folder {p.parent} does not exist; create it or pick another --out")
    return p


def export_task(
    system: MultitaskSystem, task: str, out: str | os.PathLike, fmt: str = "safetensors"
) -> dict[str, Any]:
    """Write a task's model to ``out`` (file or folder) and a JSON config beside it.

    Returns ``{"files": [...], "format": ..., "max_abs_diff": ...}`` (the difference between
    the written model and the system's, measured on random inputs).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = system.path(task)
    model = system.model(task).cpu()
    plain = not path.hparams.get("adapter_layers")
    if fmt == "onnx":
        target = _out_path(out, task, ".onnx")
        diff = _export_onnx(model, system.task_info(task), target)
        cfg = _config(system, task, "onnx")
        size = cfg["preprocess"]["image_size"]
        cfg["onnx"] = {
            "input": {"name": "images", "shape": ["batch", 3, size, size], "range": [-1, 1]},
            "output": {"name": "logits", "shape": ["batch", cfg["num_classes"]]},
            "verified_max_abs_diff": diff,
        }
    else:
        from safetensors.torch import save_file

        target = _out_path(out, task, ".safetensors")
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        cfg = _config(system, task, "timm" if plain else "munet-path")
        save_file(state, str(target), metadata={"format": "pt", "munet_format": cfg["format"]})
        diff = _check_reload(model, target, system.task_info(task), plain, cfg)
    # the ONNX config gets its own name so both exports of a task can share a folder
    config_file = target.with_suffix(".onnx.json" if fmt == "onnx" else ".json")
    config_file.write_text(json.dumps(cfg, indent=2) + "\n")
    return {"files": [str(target), str(config_file)], "format": cfg["format"], "max_abs_diff": diff}


def _probe(info: TaskInfo, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, info.image_size, info.image_size, generator=g) * 2 - 1


def _check_reload(
    model: torch.nn.Module, file: Path, info: TaskInfo, plain: bool, cfg: dict[str, Any]
) -> float:
    """Reload the written file (as timm when plain) and compare logits with the model."""
    from safetensors.torch import load_file

    state = load_file(str(file))
    if plain:
        from timm.models.vision_transformer import VisionTransformer

        again: torch.nn.Module = VisionTransformer(**cfg["timm"]["model_args"])
        again.load_state_dict(state, strict=True)
    else:
        again = _build(cfg, state)
    again.eval()
    x = _probe(info, 4)
    with torch.inference_mode():
        diff = float((again(x) - model(x)).abs().max())
    if diff > 1e-5:
        raise ExportError(f"exported model of {file} differs from the system's by {diff:.3g}")
    return diff


def _export_onnx(model: torch.nn.Module, info: TaskInfo, target: Path) -> float | None:
    """torch.onnx.export with a dynamic batch; verified with onnxruntime when installed."""
    import contextlib
    import io

    model.grad_from = 0  # no per-stage no_grad blocks in the exported graph
    x = _probe(info, 2)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            torch.onnx.export(
                model,
                (x,),
                str(target),
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes={"images": {0: batch}},
                dynamo=True,
                external_data=False,
            )
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs the onnx extra ({err.name} is missing); pip install 'munet[onnx]'"
        ) from None
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    worst = 0.0
    for n in (1, 3):
        probe = _probe(info, n, seed=n)
        got = torch.from_numpy(session.run(None, {"images": probe.numpy()})[0])
        with torch.inference_mode():
            ref = model(probe)
        diff = float((got - ref).abs().max())
        if diff > ONNX_TOLERANCE * max(1.0, float(ref.abs().max())):
            raise ExportError(f"ONNX model {target} differs from torch by {diff:.3g} (batch {n})")
        worst = max(worst, diff)
    return worst


def _build(cfg: dict[str, Any], state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A munet PathModel from an export's config and state dict."""
    from munet.model.vit import PathModel

    arch = RootArch.from_dict(cfg["munet"]["arch"])
    with torch.device("meta"):
        model = PathModel(arch, cfg["munet"]["hparams"])
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ExportError(
            f"exported weights do not match their config: {str(err).splitlines()[0]}"
        ) from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@dataclass
class ExportedModel:
    """A task model rebuilt from an export, with the system's preprocessing and numerics."""

    model: torch.nn.Module
    info: TaskInfo
    config: dict[str, Any]
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def classes(self) -> list[str]:
        return list(self.info.class_names)

    def logits(self, images: Any) -> torch.Tensor:
        x = prepare_images(images, self.info.channels, self.info.image_size)
        with torch.inference_mode():
            return run_chunked(self.model, x, self.batch_size)

    def predict(self, images: Any, top_k: int = 1) -> list[dict[str, Any]]:
        """Same inputs and outputs as :meth:`MultitaskSystem.predict`."""
        return predictions(self.logits(images), self.info.class_names, top_k)


def load_exported(path: str | os.PathLike) -> ExportedModel:
    """Rebuild an exported safetensors model (timm or munet-path format) without its system."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.suffix == ".onnx":
        raise ExportError(f"{p} is ONNX; run it with onnxruntime (its JSON config is beside it)")
    weights, config = p.with_suffix(".safetensors"), p.with_suffix(".json")
    for f in (weights, config):
        if not f.is_file():
            raise ExportError(f"{f} does not exist; export with `munet export` first")
    try:
        cfg = json.loads(config.read_text())
        state = load_file(str(weights))
    except Exception as err:
        raise ExportError(f"cannot read export {weights} ({err.__class__.__name__})") from None
    if cfg.get("format") not in ("timm", "munet-path"):
        raise ExportError(f"{config} has format {cfg.get('format')!r}, not a munet export")
    hp = cfg["munet"]["hparams"]
    info = TaskInfo(
        cfg["task"],
        list(cfg["class_names"]),
        int(cfg["preprocess"]["channels"]),
        int(hp["ds_image_size"]),
    )
    return ExportedModel(_build(cfg, state), info, cfg)
