"""Roots: the pretrained ViT a system grows from, split into components (spec §1.1, §11).

``builtin:<name>`` roots are small ViTs munet pretrains itself, offline, on glyphs rendered from
matplotlib's fonts (a corpus disjoint from the built-in tasks), cached on disk. ``timm:`` and
``file:`` roots (pretrained timm ViTs) live in :mod:`munet.model.roots_timm`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from munet.data.cache import CACHE_ENV
from munet.errors import RootError
from munet.system.arch import (
    CLS,
    EMBEDDING,
    ENCODER_NORM,
    POSEMBED,
    RootArch,
    block_name,
    timm_prefix,
)

ROOT_FORMAT = 1


@dataclass(frozen=True)
class BuiltinRoot:
    arch: RootArch
    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    description: str = ""


BUILTIN_ROOTS: dict[str, BuiltinRoot] = {
    "vit_ti3": BuiltinRoot(
        RootArch(
            embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
        ),
        steps=2400,
        description="ViT-Ti/16, 3 blocks, 32 px (the spec's character root), ~3 min to pretrain",
    ),
    "vit_micro": BuiltinRoot(
        RootArch(
            embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=8, image_size=32
        ),
        steps=1000,
        batch_size=64,
        lr=2e-3,
        description="a 2-block, 48-wide ViT for tests and smoke runs (seconds to pretrain)",
    ),
}


@dataclass
class Root:
    """A loaded root: its architecture, per-component parameters and provenance."""

    spec: str
    arch: RootArch
    params: dict[str, dict[str, torch.Tensor]]  # component name -> tensors (timm-relative keys)
    info: dict[str, Any] = field(default_factory=dict)


def cache_dir() -> Path:
    """``$MUNET_CACHE_DIR`` (the same variable as the data cache) or ``~/.cache/munet``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "munet"


def split_timm_state(
    state: Mapping[str, torch.Tensor], arch: RootArch
) -> dict[str, dict[str, torch.Tensor]]:
    """Split a timm VisionTransformer state dict into root components (the head is dropped)."""
    names = [EMBEDDING, CLS, POSEMBED, ENCODER_NORM] + [block_name(i) for i in range(arch.depth)]
    out: dict[str, dict[str, torch.Tensor]] = {n: {} for n in names}
    for name in names:
        prefix = timm_prefix(name)
        for key, value in state.items():
            if name == CLS and key != "cls_token" or name == POSEMBED and key != "pos_embed":
                continue
            if prefix and not key.startswith(prefix):
                continue
            out[name][key[len(prefix) :]] = value.detach().to(torch.float32).clone().contiguous()
    hp = {"ds_image_size": arch.image_size}
    for name, tensors in out.items():
        want = arch.shapes(name, hp)
        got = {k: tuple(v.shape) for k, v in tensors.items()}
        if got != want:
            raise RootError(
                f"root weights for {name!r} have shapes {got}, expected {want}; "
                "the checkpoint does not match its architecture"
            )
    return out


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


def builtin_paths(name: str, seed: int = 0) -> tuple[Path, Path]:
    recipe = hashlib.sha256(repr(BUILTIN_ROOTS[name]).encode()).hexdigest()[:8]
    base = cache_dir() / "roots" / f"{name}-f{ROOT_FORMAT}-s{seed}-{recipe}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def load_builtin(name: str, log: Callable[[str], None] | None = None, seed: int = 0) -> Root:
    if name not in BUILTIN_ROOTS:
        raise RootError(f"unknown builtin root {name!r}; known: {', '.join(BUILTIN_ROOTS)}")
    weights, meta = builtin_paths(name, seed)
    if not (weights.is_file() and meta.is_file()):
        pretrain_builtin(name, seed=seed, log=log)
    from safetensors.torch import load_file

    try:
        info = json.loads(meta.read_text())
        state = load_file(str(weights))
    except Exception as err:  # corrupt cache: say how to rebuild it
        raise RootError(
            f"cached root {weights} is unreadable ({err.__class__.__name__}); "
            f"delete it and run `munet pretrain-root {name}`"
        ) from None
    arch = BUILTIN_ROOTS[name].arch
    return Root(f"builtin:{name}", arch, split_timm_state(state, arch), info)


def pretrain_builtin(
    name: str, seed: int = 0, log: Callable[[str], None] | None = None, force: bool = False
) -> dict[str, Any]:
    """Pretrain a builtin root on the glyph corpus; deterministic per seed; cached on disk."""
    from safetensors.torch import save

    from munet.data.builtin import load_pretrain_corpus
    from munet.data.pipeline import TrainStream, prepare_eval
    from munet.store.atomic import atomic_write_bytes, atomic_write_json

    say = log or print
    spec = BUILTIN_ROOTS[name]
    weights, meta = builtin_paths(name, seed)
    if weights.is_file() and meta.is_file() and not force:
        return json.loads(meta.read_text())
    t0 = time.time()
    corpus = load_pretrain_corpus(seed=seed)
    say(
        f"pretraining root builtin:{name} on {len(corpus.train_y)} glyphs "
        f"({corpus.num_classes} classes), {spec.steps} steps of {spec.batch_size}"
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = timm_model(spec.arch, corpus.num_classes)
    ds = {
        "ds_image_size": spec.arch.image_size,
        "ds_area_range_min": 0.5,
        "ds_aspect_ratio_range_min": 0.75,
        "ds_flip_left_right": False,
        "ds_brightness_delta": 0.0,
        "ds_contrast_delta": 0.0,
        "ds_saturation_delta": 0.0,
        "ds_hue_delta": 0.0,
    }
    stream = iter(TrainStream(corpus, ds, spec.batch_size, seed))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.05)
    warm = max(1, spec.steps // 20)
    model.train()
    from tqdm import tqdm

    bar = tqdm(
        range(spec.steps), desc=f"pretrain {name}", unit="step", disable=None, mininterval=1.0
    )
    for step in bar:
        lr = (
            spec.lr
            * min(1.0, (step + 1) / warm)
            * 0.5
            * (1 + math.cos(math.pi * min(1.0, step / spec.steps)))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = next(stream)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == spec.steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if bar.disable and (step % 200 == 0 or step == spec.steps - 1):
                say(
                    f"  pretrain step {step + 1}/{spec.steps} loss {loss.item():.3f} "
                    f"({time.time() - t0:.0f} s)"
                )
    model.eval()
    with torch.no_grad():
        xv = prepare_eval(corpus.val_x, spec.arch.image_size)
        acc = float((model(xv).argmax(-1) == corpus.val_y).float().mean())
    seconds = time.time() - t0
    info = {
        "name": name,
        "seed": seed,
        "arch": spec.arch.to_dict(),
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "corpus": "pretrain_glyphs",
        "corpus_classes": corpus.num_classes,
        "corpus_train": len(corpus.train_y),
        "val_accuracy": acc,
        "seconds": round(seconds, 1),
        "format": ROOT_FORMAT,
    }
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("head")}
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(weights, save(state))
    atomic_write_json(meta, info)
    say(
        f"root builtin:{name}: pretraining accuracy {acc:.3f} on held-out glyphs, "
        f"{seconds:.0f} s; cached at {weights}"
    )
    return info
