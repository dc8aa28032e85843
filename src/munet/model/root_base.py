"""What every kind of root shares: the :class:`Root` record and the split of a timm ViT state
dict into root components. :mod:`munet.model.root` (builtin roots, ``load_root``) and
:mod:`munet.model.roots_timm` (``timm:`` and ``file:`` roots) both build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

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


@dataclass
class Root:
    """A loaded root: its architecture, per-component parameters and provenance."""

    spec: str
    arch: RootArch
    params: dict[str, dict[str, torch.Tensor]]  # component name -> tensors (timm-relative keys)
    info: dict[str, Any] = field(default_factory=dict)


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
