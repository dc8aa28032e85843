"""A task's model, assembled from its path's components on timm's ViT layers (spec §1.2, §11).

Attribute names follow timm's ``VisionTransformer`` (``patch_embed``, ``cls_token``,
``pos_embed``, ``blocks``, ``norm``, ``head``), so a path without adapters has exactly a timm
state dict. Adapters live in ``adapters[str(i)]`` and run before ``blocks[i]``. A low-rank
component of block i turns that block's linear layers into :class:`LowRankLinear` (its
``lora_A``/``lora_B`` beside the block's ``weight``); :func:`merged_state_dict` folds them into
plain timm weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from munet.system.arch import (
    ADAPTER_PREFIX,
    BLOCK_PREFIX,
    CLS,
    EMBEDDING,
    ENCODER_NORM,
    HEAD,
    LOWRANK_PREFIX,
    POSEMBED,
    RootArch,
    block_name,
    layer_index,
    timm_prefix,
)
from munet.system.component import Component

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class ResidualAdapter(nn.Module):
    """LayerNorm → Linear(d, a) → GELU → Linear(a, d), added to the input (spec §2.2)."""

    def __init__(self, dim: int, adapter_dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm(dim)
        self.fc1 = nn.Linear(dim, adapter_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(adapter_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class LowRankLinear(nn.Linear):
    """A linear layer plus a low-rank delta: ``x Wᵀ + b + (x Aᵀ) Bᵀ`` (LoRA, Hu et al. 2021,
    without scaling). ``weight`` and ``bias`` keep their timm names (they are the block's)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.lora_A = nn.Parameter(torch.zeros(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(F.linear(x, self.lora_A), self.lora_B)

    def merged_weight(self) -> torch.Tensor:
        """W + B·A: the plain weight that computes the same function."""
        return self.weight + self.lora_B @ self.lora_A


def add_lowrank(block: nn.Module, arch: RootArch, rank: int) -> None:
    """Replace the block's low-rank targets (``RootArch.linear_shapes``) by LowRankLinear."""
    for target in arch.linear_shapes():
        owner, _, leaf = target.rpartition(".")
        old = block.get_submodule(target)
        new = LowRankLinear(old.in_features, old.out_features, rank, old.bias is not None)
        setattr(block.get_submodule(owner), leaf, new)


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with every low-rank delta folded into its weight (W + B·A): the
    state dict of the same model without low-rank components (a plain timm ViT if it has no
    adapters)."""
    state = dict(model.state_dict())
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LowRankLinear):
                state[f"{name}.weight"] = module.merged_weight()
                del state[f"{name}.lora_A"], state[f"{name}.lora_B"]
    return state


class PathModel(nn.Module):
    """The forward pass of one path: embed → [adapter_i] block_i … → norm → class token → head
    (a block with a low-rank component runs it inside its stage).

    Stages below the lowest trainable component run under ``torch.no_grad()``: frozen prefixes
    cost no activation memory and no backward compute.
    """

    def __init__(self, arch: RootArch, hparams: Mapping[str, Any]) -> None:
        super().__init__()
        d = arch.embed_dim
        size = int(hparams["ds_image_size"])
        self.image_size = size
        self.patch_embed = PatchEmbed(size, arch.patch_size, arch.in_chans, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + arch.num_patches(size), d))
        self.blocks = nn.ModuleList(
            Block(
                d,
                arch.num_heads,
                mlp_ratio=arch.mlp_hidden_dim / d,
                qkv_bias=arch.qkv_bias,
                norm_layer=LayerNorm,
            )
            for _ in range(int(hparams["num_layers"]))
        )
        for i in hparams.get("lowrank_layers", ()):
            add_lowrank(self.blocks[i], arch, int(hparams["lowrank_rank"]))
        self.adapters = nn.ModuleDict(
            {
                str(i): ResidualAdapter(d, int(hparams["adapter_dim"]))
                for i in hparams.get("adapter_layers", ())
            }
        )
        self.norm = LayerNorm(d)
        self.head = nn.Linear(d, int(hparams["num_classes"]))
        self.grad_from = 0  # index of the first stage that needs autograd (see stages())
        self.arch = arch
        self.hparams = dict(hparams)

    def arch_flops(self, stage: str) -> int:
        """Forward FLOPs of ``stage`` on one image (see ``RootArch.stage_flops``)."""
        return self.arch.stage_flops(stage, self.hparams)

    def stages(self) -> list[tuple[str, Any]]:
        """Forward stages in order; names match component names."""
        out: list[tuple[str, Any]] = [(EMBEDDING, self._embed)]
        for i, block in enumerate(self.blocks):
            if str(i) in self.adapters:
                out.append((f"{ADAPTER_PREFIX}{i}", self.adapters[str(i)]))
            out.append((f"{BLOCK_PREFIX}{i}", block))
        out.append((ENCODER_NORM, self.norm))
        out.append((HEAD, lambda x: self.head(x[:, 0])))
        return out

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_from(images, 0)

    def forward_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Run stages ``start``… on ``x`` (the output of stage ``start - 1``, or images)."""
        for k, (_, stage) in enumerate(self.stages()[start:], start):
            if k < self.grad_from:
                with torch.no_grad():
                    x = stage(x)
            else:
                x = stage(x)
        return x

    @torch.no_grad()
    def frozen_prefix(self, images: torch.Tensor) -> torch.Tensor:
        """The output of the stages below ``grad_from`` (those that need no autograd)."""
        x = images
        for _, stage in self.stages()[: self.grad_from]:
            x = stage(x)
        return x


def stage_of(name: str) -> str:
    """The forward stage a component belongs to (cls and pos embeddings join the embedding, a
    low-rank component its block)."""
    if name.startswith(LOWRANK_PREFIX):
        return block_name(layer_index(name) or 0)
    return EMBEDDING if name in (CLS, POSEMBED) else name


StageKey = tuple[Any, ...]


def stage_keys(
    model: PathModel, components: Sequence[Component], image_size: int
) -> list[StageKey]:
    """One key per forward stage of ``model``: the stage name and the ids of the components it
    runs (the embedding also carries the image size). Equal keys = the same computation."""
    ids: dict[str, list[int]] = {}
    for comp in components:
        ids.setdefault(stage_of(comp.name), []).append(comp.id)
    keys: list[StageKey] = []
    for name, _ in model.stages():
        key: StageKey = (name, tuple(ids.get(name, ())))
        if name == EMBEDDING:
            key += (int(image_size),)
        keys.append(key)
    return keys


def build_model(
    arch: RootArch,
    hparams: Mapping[str, Any],
    components: Sequence[Component],
    trainable: bool = True,
    head: bool = True,
) -> PathModel:
    """A PathModel whose parameters *are* the components' tensors (no copy).

    Frozen components get ``requires_grad=False``; with ``trainable=False`` every parameter is
    frozen and the model is put in eval mode (inference, export). With ``head=False`` the head
    component is left out and the model returns the normalised class token (its features).
    """
    with torch.device("meta"):
        model = PathModel(arch, {**hparams, "num_classes": 1} if not head else hparams)
    if not head:
        model.head = nn.Identity()
        components = [c for c in components if c.name != HEAD]
    state: dict[str, torch.Tensor] = {}
    grad: dict[str, bool] = {}
    for comp in components:
        if comp.params is None:
            raise ValueError(f"component {comp.name}:{comp.id} has no parameters loaded")
        prefix = timm_prefix(comp.name)
        for key, tensor in comp.params.items():
            state[prefix + key] = tensor
            grad[prefix + key] = trainable and comp.trainable
    model.load_state_dict(state, strict=True, assign=True)
    for name, p in model.named_parameters():
        p.requires_grad_(grad[name])
    names = [n for n, _ in model.stages()]
    lowest = [names.index(stage_of(c.name)) for c in components if trainable and c.trainable]
    model.grad_from = min(lowest) if lowest else len(names)
    model.train(False)  # dropout is 0 everywhere; the model always runs in eval mode
    return model


def fan_in_normal_(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flax's LeCun-normal default: truncated normal with variance 1/fan_in."""
    std = math.sqrt(1.0 / tensor.shape[1]) / 0.87962566103423978
    return nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std, generator=generator)
