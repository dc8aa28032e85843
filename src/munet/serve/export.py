"""Export one task's model: a timm Hugging Face folder, safetensors + JSON, or ONNX.

A path without residual adapters is exactly a timm ``VisionTransformer``. ``timm`` (the default)
writes a folder in timm's Hugging Face layout -- ``config.json`` (``architecture``, ``model_args``,
``num_classes``, ``label_names``, ``pretrained_cfg`` with mean/std 0.5 and the input size),
``model.safetensors`` and a model card ``README.md`` -- that
``timm.create_model("local-dir:DIR", pretrained=True)`` loads and
``timm.data.resolve_data_config`` understands. A path with adapters is saved in munet's layout
(timm keys plus ``adapters.<i>.*``), in the same folder shape, and is rebuilt by
:func:`load_exported`. Low-rank components (``search: extended``) are folded into their blocks'
weights (W + B·A) in the timm and safetensors formats, so they leave a plain timm model plain.
``safetensors`` writes one weights file and a JSON beside it. ONNX files
take float images in [-1, 1] with a dynamic batch dimension and are checked against the torch
model with onnxruntime when it is installed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from munet import __version__
from munet.model.vit import merged_state_dict
from munet.serve.engine import run_chunked
from munet.serve.errors import ExportError
from munet.serve.images import prepare_images
from munet.serve.system import DEFAULT_BATCH_SIZE, MultitaskSystem, TaskInfo, predictions
from munet.system.arch import RootArch

FORMATS = ("timm", "safetensors", "onnx")
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
    hparams = dict(path.hparams)
    merged = hparams.get("lowrank_layers")
    if merged:  # the export's weights hold W + B·A: a model without low-rank components
        hparams["lowrank_layers"] = []
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
        "munet": {"arch": system.arch.to_dict(), "hparams": hparams},
        "adapter_layers": adapters,
    }
    if merged:
        cfg["merged_lowrank_layers"] = list(merged)
    if kind == "timm":
        overlay = {k: args[k] for k in ("img_size", "depth", "embed_dim", "num_heads")}
        kw = ", ".join(
            f"{k}={args[k]!r}" for k in ("patch_size", "mlp_ratio", "num_classes", *overlay)
        )
        # custom_load=False: the architecture's own weights are .npz files read by custom code
        cfg["usage"] = (
            f"timm.create_model({TIMM_ARCHITECTURE!r}, pretrained=True, "
            f"pretrained_cfg_overlay=dict(file=PATH, num_classes={args['num_classes']}, "
            f"custom_load=False), {kw}); "
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
    from safetensors import SafetensorError

    try:
        return _export_task(system, task, out, fmt)
    except OSError as err:  # a read-only or full file system
        where = err.filename or out
        raise ExportError(
            f"cannot write export {where}: {err.strerror or err}; choose a writable --out"
        ) from None
    except SafetensorError as err:  # its I/O errors are not OSError
        raise ExportError(
            f"cannot write export {out}: {str(err).splitlines()[0][:200]}; choose a writable --out"
        ) from None


def _export_task(
    system: MultitaskSystem, task: str, out: str | os.PathLike, fmt: str
) -> dict[str, Any]:
    path = system.path(task)
    model = system.model(task).cpu()
    plain = not path.hparams.get("adapter_layers")
    if fmt == "timm":
        return _export_folder(system, task, model, plain, Path(out))
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
        state = _weights(model)
        cfg = _config(system, task, "timm" if plain else "munet-path")
        save_file(state, str(target), metadata={"format": "pt", "munet_format": cfg["format"]})
        diff = _check_reload(model, target, system.task_info(task), plain, cfg)
    # the ONNX config gets its own name so both exports of a task can share a folder
    config_file = target.with_suffix(".onnx.json" if fmt == "onnx" else ".json")
    config_file.write_text(json.dumps(cfg, indent=2) + "\n")
    return {"files": [str(target), str(config_file)], "format": cfg["format"], "max_abs_diff": diff}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors an export writes: the model's, low-rank deltas merged (W + B·A)."""
    return {k: v.detach().cpu().contiguous() for k, v in merged_state_dict(model).items()}


WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"


def hub_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """timm's Hugging Face ``config.json`` for a plain path, from its munet export config (kept
    under ``munet``; timm ignores it)."""
    args = cfg["timm"]["model_args"]
    size = cfg["preprocess"]["image_size"]
    n = cfg["num_classes"]
    return {
        "architecture": cfg["timm"]["architecture"],
        "num_classes": n,
        "num_features": args["embed_dim"],
        "global_pool": args["global_pool"],
        "model_args": {k: v for k, v in args.items() if k != "num_classes"},
        "label_names": list(cfg["class_names"]),
        "pretrained_cfg": {
            "tag": f"munet_{cfg['task']}",
            "custom_load": False,
            "input_size": [3, size, size],
            "fixed_input_size": True,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "num_classes": n,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
        "munet": cfg,
    }


def _export_folder(
    system: MultitaskSystem, task: str, model: torch.nn.Module, plain: bool, folder: Path
) -> dict[str, Any]:
    """The ``timm`` format: ``folder`` holds model.safetensors, config.json and README.md."""
    from safetensors.torch import save_file

    if folder.exists() and not folder.is_dir():
        raise ExportError(f"--out {folder} is a file; give a folder for --format timm")
    if not folder.parent.is_dir():
        raise ExportError(f"folder {folder.parent} does not exist; create it or pick another --out")
    folder.mkdir(exist_ok=True)
    cfg = _config(system, task, "timm" if plain else "munet-path")
    cfg.pop("usage", None)
    weights, config = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    state = _weights(model)
    save_file(state, str(weights), metadata={"format": "pt", "munet_format": cfg["format"]})
    if plain:
        usage = f'timm.create_model("local-dir:{folder}", pretrained=True)'
        written: dict[str, Any] = hub_config(cfg)
    else:
        usage = f'munet.serve.load_exported("{folder}")'
        written = cfg
    config.write_text(json.dumps(written, indent=2) + "\n")
    diff = _check_reload(model, weights, system.task_info(task), plain, cfg)
    card = folder / CARD_FILE
    card.write_text(model_card(cfg, system.info(task), usage, plain))
    return {
        "files": [str(weights), str(config), str(card)],
        "format": cfg["format"],
        "max_abs_diff": diff,
        "usage": usage,
    }


def model_card(cfg: dict[str, Any], row: dict[str, Any], usage: str, plain: bool) -> str:
    """A Hugging Face model card: the task, classes, test accuracy, parameters, provenance."""
    args = cfg["timm"]["model_args"]
    hp = cfg["munet"]["hparams"]
    acc = cfg["test_accuracy"]
    params, accounted = row.get("params"), row.get("accounted_params")
    classes = ", ".join(f"`{c}`" for c in cfg["class_names"])
    lines = [
        "---",
        "library_name: timm" if plain else "library_name: munet",
        "tags:",
        "- image-classification",
        "- munet",
        "---",
        "",
        f"# {cfg['task']}: a muNet task model",
        "",
        f"Image classification for the task **{cfg['task']}** ({cfg['num_classes']} classes), "
        "one path of a multitask system evolved with munet "
        "(muNet, Gesmundo & Dean 2022) and exported on its own.",
        "",
        f"- test accuracy: {'n/a' if acc is None else f'{acc:.4f}'} (held-out test split, "
        "never used for selection)",
        f"- parameters: {params:,} in this model"
        + (
            f" ({accounted:,.0f} accounted to the task in its multitask system, where "
            "components are shared between tasks)"
            if isinstance(accounted, (int, float))
            else ""
        ),
        f"- task spec: `{row.get('spec')}`",
        f"- architecture: ViT, {args['depth']} blocks of width {args['embed_dim']}, "
        f"{args['num_heads']} heads, patch {args['patch_size']}, "
        f"{args['img_size']}x{args['img_size']} px"
        + (f", residual adapters before blocks {cfg['adapter_layers']}" if not plain else "")
        + (
            f"; low-rank deltas of blocks {cfg['merged_lowrank_layers']} merged into their weights"
            if cfg.get("merged_lowrank_layers")
            else ""
        ),
        f"- classes: {classes}",
        "",
        "## Use",
        "",
        "```python",
        *(
            [
                "import timm",
                "",
                f"model = {usage}.eval()",
                "config = timm.data.resolve_data_config({}, model=model)",
                "transform = timm.data.create_transform(**config)",
            ]
            if plain
            else ["import munet.serve", "", f"model = {usage}", "model.predict(images)"]
        ),
        "```",
        "",
        f"Preprocessing: {cfg['preprocess']['description']}.",
        "",
        "## How it was built",
        "",
        f"munet {cfg['munet_version']} evolved this path from a pretrained root by mutating "
        "which components to clone and train, the number of layers, residual adapters and the "
        "optimizer and data hyperparameters, keeping a candidate only if it scored better on "
        "the task's validation split. Its hyperparameters: "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(hp.items()))
        + ".",
        "",
    ]
    return "\n".join(lines)


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
    try:
        with torch.device("meta"):
            model = PathModel(arch, cfg["munet"]["hparams"])
    except Exception as err:  # e.g. a width the heads do not divide
        raise ExportError(
            f"exported config does not describe a buildable model ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); re-export with `munet export`"
        ) from None
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


def _header(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a safetensors file, read from its header alone."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def _indices(header: dict[str, tuple[int, ...]], prefix: str) -> set[int]:
    """The ``i`` of every ``<prefix>.<i>.`` key (a non-integer ``i`` is returned as -1)."""
    out = set()
    for k in header:
        if k.startswith(prefix + "."):
            i = k.split(".")[1]
            out.add(int(i) if i.isdigit() and len(i) < 9 else -1)
    return out


def check_export(
    cfg: Any, header: dict[str, tuple[int, ...]], where: Path | str = "export config"
) -> TaskInfo:
    """The TaskInfo of an export's config, once its declared counts and shapes agree with the
    weights' safetensors header; else one ExportError naming the disagreement."""

    def bad(what: str) -> ExportError:
        return ExportError(f"{where}: {what}; re-export with `munet export`")

    def whole(value: Any, name: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise bad(f"{name}={repr(value)[:40]} is invalid (an integer {lo}..{hi})")
        return value

    if not isinstance(cfg, dict):
        raise bad("is not a JSON object")
    if cfg.get("format") not in ("timm", "munet-path"):
        raise ExportError(f"{where} has format {str(cfg.get('format'))[:40]!r}, not a munet export")
    m, pre = cfg.get("munet"), cfg.get("preprocess")
    if not isinstance(m, dict) or not isinstance(m.get("arch"), dict):
        raise bad('has no "munet": {"arch": ..., "hparams": ...} section')
    hp = m.get("hparams")
    if not isinstance(hp, dict) or not isinstance(pre, dict):
        raise bad('has no "munet.hparams" or no "preprocess" section')
    try:
        arch = RootArch.from_dict(m["arch"])
    except (KeyError, TypeError) as err:
        raise bad(f"munet.arch is incomplete ({err.__class__.__name__}: {err})") from None
    for name in ("embed_dim", "depth", "num_heads", "mlp_hidden_dim", "patch_size", "image_size"):
        whole(getattr(arch, name), f"arch.{name}", 1, 1 << 16)
    for key in ("cls_token", "pos_embed", "head.weight"):
        if len(header.get(key, ())) < 2:
            raise bad(f"the weights have no {key} matrix")
    if header["cls_token"][-1] != arch.embed_dim:
        raise bad(
            f"arch.embed_dim={arch.embed_dim} but the weights are {header['cls_token'][-1]} wide"
        )
    layers = whole(hp.get("num_layers"), "num_layers", 1, arch.depth)
    if _indices(header, "blocks") != set(range(layers)):
        raise bad(
            f"num_layers={layers} but the weights hold {len(_indices(header, 'blocks'))} blocks"
        )
    adapters = hp.get("adapter_layers", [])
    if not isinstance(adapters, list) or len(adapters) > layers:
        raise bad(f"adapter_layers is not a list of at most num_layers={layers} layers")
    adapters = [whole(a, "adapter_layers[]", 0, layers - 1) for a in adapters]
    if set(adapters) != _indices(header, "adapters") or len(set(adapters)) != len(adapters):
        raise bad(
            f"adapter_layers={adapters[:8]} but the weights hold adapters at "
            f"{sorted(_indices(header, 'adapters'))[:8]}"
        )
    if hp.get("lowrank_layers"):
        raise bad("lowrank_layers is not empty but an export holds merged weights (W + B·A)")
    names = cfg.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("class_names is not a list of strings")
    if len(names) != header["head.weight"][0] or hp.get("num_classes") != len(names):
        raise bad(
            f"{len(names)} class_names, num_classes={str(hp.get('num_classes'))[:20]}, but the "
            f"head has {header['head.weight'][0]} outputs"
        )
    channels = pre.get("channels")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise bad(f"preprocess.channels={repr(channels)[:20]} is invalid (1 or 3)")
    size = whole(hp.get("ds_image_size"), "ds_image_size", arch.patch_size, 1 << 14)
    tokens = (size // arch.patch_size) ** 2 + 1
    if size % arch.patch_size or header["pos_embed"][-2] != tokens:
        raise bad(
            f"ds_image_size={size} (patch {arch.patch_size}) needs {tokens} position embeddings, "
            f"the weights hold {header['pos_embed'][-2]}"
        )
    task = cfg.get("task")
    return TaskInfo(task if isinstance(task, str) else "task", list(names), channels, size)


def load_exported(path: str | os.PathLike) -> ExportedModel:
    """Rebuild an exported model without its system: a folder of ``--format timm`` (either
    kind) or a safetensors file (its JSON beside it)."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.suffix == ".onnx":
        raise ExportError(f"{p} is ONNX; run it with onnxruntime (its JSON config is beside it)")
    if p.is_dir():
        weights, config = p / WEIGHTS_FILE, p / CONFIG_FILE
    else:
        weights, config = p.with_suffix(".safetensors"), p.with_suffix(".json")
    for f in (weights, config):
        if not f.is_file():
            raise ExportError(f"{f} does not exist; export with `munet export` first")
    try:
        cfg = json.loads(config.read_text())
        header = _header(weights)
    except Exception as err:
        raise ExportError(f"cannot read export {weights} ({err.__class__.__name__})") from None
    if isinstance(cfg, dict) and "architecture" in cfg and isinstance(cfg.get("munet"), dict):
        cfg = cfg["munet"]  # timm's config.json carries munet's under "munet"
    info = check_export(cfg, header, config)  # before any model is built or tensor read
    try:
        state = load_file(str(weights))
    except Exception as err:
        raise ExportError(f"cannot read export {weights} ({err.__class__.__name__})") from None
    return ExportedModel(_build(cfg, state), info, cfg)
