"""Tensor operations the pure core asks for: copy, fresh init, position-embedding resize."""

from __future__ import annotations

import math

import torch
from timm.layers import resample_abs_pos_embed

from munet.model.vit import fan_in_normal_
from munet.system.arch import ADAPTER_PREFIX, HEAD, LOWRANK_PREFIX, Shapes

Params = dict[str, torch.Tensor]


class TorchOps:
    """``ParamOps`` on dicts of CPU float32 tensors."""

    def copy(self, params: Params) -> Params:
        return {k: v.detach().clone() for k, v in params.items()}

    def init(self, name: str, shapes: Shapes, seed: int) -> Params:
        """A new head is all zeros; a new adapter is an exact identity (zero second layer); a new
        low-rank delta B·A is exactly zero (B zero, A random, as LoRA)."""
        out = {k: torch.zeros(s) for k, s in shapes.items()}
        if name == HEAD:
            return out
        gen = torch.Generator().manual_seed(seed)
        if name.startswith(ADAPTER_PREFIX):
            out["norm.weight"].fill_(1.0)
            fan_in_normal_(out["fc1.weight"], gen)
            return out
        if name.startswith(LOWRANK_PREFIX):
            for key in sorted(out):
                if key.endswith(".lora_A"):
                    fan_in_normal_(out[key], gen)
            return out
        raise ValueError(f"component {name!r} cannot be initialised from scratch")

    def resize_posembed(self, params: Params, shapes: Shapes) -> Params:
        """Resample the patch grid linearly; the class-token embedding is kept as is."""
        pos = params["pos_embed"]
        new_grid = int(math.isqrt(shapes["pos_embed"][1] - 1))
        old_grid = int(math.isqrt(pos.shape[1] - 1))
        out = resample_abs_pos_embed(
            pos,
            [new_grid, new_grid],
            [old_grid, old_grid],
            num_prefix_tokens=1,
            interpolation="bilinear",
            antialias=False,
        )
        return {"pos_embed": out.detach().clone().contiguous()}
