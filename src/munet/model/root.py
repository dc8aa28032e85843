"""Roots: the pretrained ViT a system grows from, split into components (spec §1.1, §11).

``builtin:<name>`` roots are small ViTs munet pretrains itself, offline, on glyphs rendered from
matplotlib's fonts (a corpus disjoint from the built-in tasks), cached on disk. ``timm:`` and
``file:`` roots (pretrained timm ViTs) live in :mod:`munet.model.roots_timm`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from munet.data.cache import cache_root
from munet.errors import RootError
from munet.model.root_base import Root, split_timm_state
from munet.system.arch import RootArch

ROOT_FORMAT = 1

logger = logging.getLogger(__name__)

#: Builtin roots pretrained once by `munet pretrain-root NAME --force --out` and committed.
SHIPPED_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BuiltinRoot:
    """A builtin root's recipe: architecture, pretraining schedule and corpus size.

    ``train_per_class`` sets the number of rendered training glyphs per pretraining class (the
    held-out split is the same for every recipe, so accuracies compare); ``crop_area_min`` is the
    smallest random-crop area used as pretraining augmentation.
    """

    arch: RootArch
    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    description: str = ""
    train_per_class: int = 200
    crop_area_min: float = 0.5
    #: wall time on a 2-core CPU machine, shown by `munet pretrain-root --list` (not recipe)
    expected_minutes: float = field(default=0.0, compare=False, repr=False)


BUILTIN_ROOTS: dict[str, BuiltinRoot] = {
    "vit_ti3": BuiltinRoot(
        RootArch(
            embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
        ),
        steps=12000,
        train_per_class=600,
        description="ViT-Ti/16, 3 blocks, 32 px (the spec's character root); the default",
        expected_minutes=20,
    ),
    "vit_ti6": BuiltinRoot(
        RootArch(
            embed_dim=192, depth=6, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
        ),
        steps=7200,
        train_per_class=600,
        description="ViT-Ti/16, 6 blocks, 32 px: deeper, ~1.9x the FLOPs of vit_ti3",
        expected_minutes=23,
    ),
    "vit_ti3_p8": BuiltinRoot(
        RootArch(
            embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=8, image_size=32
        ),
        steps=7200,
        train_per_class=600,
        description="ViT-Ti/8, 3 blocks, 32 px: 4x the tokens (finer detail), ~3.2x the FLOPs",
        expected_minutes=40,
    ),
    "vit_micro": BuiltinRoot(
        RootArch(
            embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=8, image_size=32
        ),
        steps=6000,
        batch_size=64,
        lr=3e-3,
        train_per_class=600,
        description="a 2-block, 48-wide ViT for tests and smoke runs",
        expected_minutes=3,
    ),
}


def cache_dir() -> Path:
    """munet's cache folder (:func:`munet.data.cache.cache_root`); roots go in ``roots/``."""
    return cache_root()


def timm_model(arch: RootArch, num_classes: int) -> torch.nn.Module:
    """A timm VisionTransformer with the root's dimensions (class token, no pre-logits)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=arch.image_size,
        patch_size=arch.patch_size,
        in_chans=arch.in_chans,
        num_classes=num_classes,
        embed_dim=arch.embed_dim,
        depth=arch.depth,
        num_heads=arch.num_heads,
        mlp_ratio=arch.mlp_hidden_dim / arch.embed_dim,
        qkv_bias=arch.qkv_bias,
        class_token=True,
        global_pool="token",
    )


def load_root(
    spec: str,
    log: Callable[[str], None] | None = None,
    weights: str | os.PathLike | None = None,
) -> Root:
    """Load a root by spec (never downloads anything).

    - ``builtin:<name>``: a small ViT pretrained by munet on first use and cached;
    - ``timm:<name>[.<tag>]``: a timm ViT; weights from ``weights`` (``--root-weights``: a
      safetensors file, a torch state dict or an AugReg ``.npz``) or the local Hugging Face /
      torch hub cache;
    - ``file:<path>``: a weights file with a JSON/YAML sidecar naming its timm architecture.
    """
    kind, _, name = spec.partition(":")
    if not name:
        kind, name = "builtin", spec
    if kind == "builtin":
        if weights is not None:
            raise RootError(
                f"--root-weights is only for timm: roots; builtin:{name} is pretrained by munet"
            )
        return load_builtin(name, log)
    if kind == "timm":
        from munet.model.roots_timm import load_timm_root

        return load_timm_root(name, weights, log)
    if kind == "file":
        from munet.model.roots_timm import load_file_root

        return load_file_root(name, weights, log)
    raise RootError(
        f"root {spec!r} has an unknown kind {kind!r}; use builtin:<name> "
        f"(known: {', '.join(BUILTIN_ROOTS)}), timm:<model>[.<tag>] or file:<weights>"
    )


def recipe_key(name: str) -> str:
    """A digest of a builtin root's recipe: cache names and the shipped sidecar carry it."""
    return hashlib.sha256(repr(BUILTIN_ROOTS[name]).encode()).hexdigest()[:8]


def builtin_paths(name: str, seed: int = 0) -> tuple[Path, Path]:
    base = cache_dir() / "roots" / f"{name}-f{ROOT_FORMAT}-s{seed}-{recipe_key(name)}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def shipped_paths(name: str) -> tuple[Path, Path]:
    """Where a root that ships inside the package keeps its weights and JSON sidecar."""
    return SHIPPED_DIR / f"{name}.safetensors", SHIPPED_DIR / f"{name}.json"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shipped_info(name: str) -> dict[str, Any] | None:
    """The sidecar of the shipped weights of ``name``, or None when none ship for its recipe."""
    weights, meta = shipped_paths(name)
    if not (weights.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        raise RootError(
            f"the shipped sidecar {meta} is unreadable; reinstall munet "
            f"(or regenerate it with `munet pretrain-root {name} --force`)"
        ) from None
    return info if info.get("recipe") == recipe_key(name) else None


def _read_weights(weights: Path, meta: Path, name: str, sha256: str | None) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    try:
        info = json.loads(meta.read_text())
        if sha256 is not None and file_sha256(weights) != sha256:
            raise RootError(
                f"root weights {weights} do not match the sha256 in {meta.name}; the file is "
                f"damaged: reinstall munet or run `munet pretrain-root {name} --force`"
            )
        state = load_file(str(weights))
    except RootError:
        raise
    except Exception as err:  # corrupt cache: say how to rebuild it
        raise RootError(
            f"root {weights} is unreadable ({err.__class__.__name__}); "
            f"delete it and run `munet pretrain-root {name} --force`"
        ) from None
    return state, info


def load_builtin(name: str, log: Callable[[str], None] | None = None, seed: int = 0) -> Root:
    """A builtin root: the weights shipped in the package (checked against their sha256) when
    they exist for this recipe and seed 0, else pretrained on first use and cached."""
    if name not in BUILTIN_ROOTS:
        raise RootError(f"unknown builtin root {name!r}; known: {', '.join(BUILTIN_ROOTS)}")
    shipped = shipped_info(name) if seed == 0 else None
    if shipped is not None:
        weights, meta = shipped_paths(name)
        state, info = _read_weights(weights, meta, name, shipped.get("sha256"))
        info = {**info, "source": "shipped"}
    else:
        weights, meta = builtin_paths(name, seed)
        if not (weights.is_file() and meta.is_file()):
            pretrain_builtin(name, seed=seed, log=log)
        state, info = _read_weights(weights, meta, name, None)
    arch = BUILTIN_ROOTS[name].arch
    return Root(f"builtin:{name}", arch, split_timm_state(state, arch), info)


def machine_name(device: torch.device) -> str:
    """CPU model and core count (and the GPU's name on CUDA), for provenance records."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    name = f"{cpu}, {os.cpu_count()} cores"
    if device.type == "cuda":
        name += f", {torch.cuda.get_device_name(device)}"
    return name


def pretrain(
    spec: BuiltinRoot,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    device: str = "auto",
    name: str = "root",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Pretrain a root of recipe ``spec`` on the glyph corpus; deterministic per seed and device.

    AdamW with linear warm-up (5 %) and cosine decay (the schedule candidates use), random crops
    down to ``spec.crop_area_min`` of the area, no flips (a mirrored glyph is another glyph).
    On CUDA the forward pass runs under bf16 autocast. Returns the head-less timm state dict and
    a provenance record.
    """
    from munet.data.builtin import load_pretrain_corpus
    from munet.data.pipeline import TrainStream, prepare_eval
    from munet.system.schedule import learning_rate

    say = log or logger.info
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    t0 = time.time()
    corpus = load_pretrain_corpus(seed=seed, train_per_class=spec.train_per_class)
    say(
        f"pretraining root builtin:{name} on {len(corpus.train_y)} glyphs "
        f"({corpus.num_classes} classes), {spec.steps} steps of {spec.batch_size} on {dev.type}"
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = timm_model(spec.arch, corpus.num_classes)
    model.to(dev)
    ds = {
        "ds_image_size": spec.arch.image_size,
        "ds_area_range_min": spec.crop_area_min,
        "ds_aspect_ratio_range_min": 0.75,
        "ds_flip_left_right": False,
        "ds_brightness_delta": 0.0,
        "ds_contrast_delta": 0.0,
        "ds_saturation_delta": 0.0,
        "ds_hue_delta": 0.0,
    }
    stream = iter(TrainStream(corpus, ds, spec.batch_size, seed))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.05)
    schedule = {"opt_lr": spec.lr, "opt_lr_schedule": "cosine", "opt_lr_warmup_ratio": 0.05}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    model.train()
    from munet.progress import Progress

    count = Progress(spec.steps, f"pretrain {name}", unit="step", log=log, logger=logger)
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, schedule, spec.steps, spec.steps)
        x, y = next(stream)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        # reading the loss synchronises a GPU: only every 50 steps
        count.advance(note=f"loss {loss.item():.3f}" if step % 50 == 0 else None)
    count.close()
    model.eval()
    with torch.no_grad(), autocast:
        xv = prepare_eval(corpus.val_x, spec.arch.image_size).to(dev)
        pred = torch.cat([model(xv[i : i + 512]).argmax(-1) for i in range(0, len(xv), 512)])
        acc = float((pred.cpu() == corpus.val_y).float().mean())
    info = {
        "name": name,
        "seed": seed,
        "arch": spec.arch.to_dict(),
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "optimizer": "adamw wd 0.05, warm-up 5 % + cosine, grad clip 1.0",
        "augmentation": f"random crop area >= {spec.crop_area_min}, aspect >= 0.75, no flip",
        "corpus": "pretrain_glyphs",
        "corpus_classes": corpus.num_classes,
        "corpus_train": len(corpus.train_y),
        "val_accuracy": acc,
        "seconds": round(time.time() - t0, 1),
        "machine": machine_name(dev),
        "torch": torch.__version__,
        "format": ROOT_FORMAT,
    }
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith("head")
    }
    return state, info


def pretrain_builtin(
    name: str,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    force: bool = False,
    device: str = "auto",
    out_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Pretrain the builtin root ``name`` and write it to the cache (or ``out_dir``).

    Returns the sidecar record, with ``sha256`` of the weights file and, where a root of this
    recipe ships in the package, ``shipped_sha256`` and ``matches_shipped`` so a regenerated file
    that differs is reported rather than silently used (the shipped file stays the one loaded).
    """
    from safetensors.torch import save

    from munet.fileio.atomic import atomic_write_bytes, atomic_write_json

    say = log or logger.info
    if name not in BUILTIN_ROOTS:
        raise RootError(f"unknown builtin root {name!r}; known: {', '.join(BUILTIN_ROOTS)}")
    if out_dir is not None:
        base = Path(out_dir) / name
        weights, meta = base.with_suffix(".safetensors"), base.with_suffix(".json")
    else:
        weights, meta = builtin_paths(name, seed)
    if weights.is_file() and meta.is_file() and not force:
        return json.loads(meta.read_text())
    state, info = pretrain(BUILTIN_ROOTS[name], seed, say, device, name)
    blob = save(state)  # no metadata: safetensors may write a metadata map in any order
    info["recipe"] = recipe_key(name)
    info["sha256"] = hashlib.sha256(blob).hexdigest()
    shipped = shipped_info(name) if seed == 0 else None
    if shipped is not None:
        info["shipped_sha256"] = shipped["sha256"]
        info["matches_shipped"] = shipped["sha256"] == info["sha256"]
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(weights, blob)
    atomic_write_json(meta, info)
    say(
        f"root builtin:{name}: pretraining accuracy {info['val_accuracy']:.3f} on held-out glyphs, "
        f"{info['seconds']:.0f} s; written to {weights}"
    )
    if shipped is not None and not info["matches_shipped"]:
        say(
            f"note: this file differs from the root shipped in the package (sha256 "
            f"{info['sha256'][:12]} vs {shipped['sha256'][:12]}; held-out accuracy "
            f"{info['val_accuracy']:.3f} vs {shipped['val_accuracy']:.3f}); munet keeps loading "
            "the shipped file"
        )
    return info
