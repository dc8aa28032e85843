"""Component names and tensor shapes of a ViT path, from the root's dimensions (spec §1, §11).

Pure: no torch. Tensor keys are timm's ``VisionTransformer`` keys relative to the component, so
a path without adapters maps one-to-one onto a timm state dict (a low-rank component's tensors
sit beside its block's, ``blocks.<i>.attn.qkv.lora_A``…, and fold into them on export).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

Shapes = dict[str, tuple[int, ...]]

EMBEDDING = "embedding"
CLS = "cls"
POSEMBED = "posembed_input"
ENCODER_NORM = "encoder_norm"
HEAD = "head"
BLOCK_PREFIX = "encoderblock_"
ADAPTER_PREFIX = "residual_adapter_"
LOWRANK_PREFIX = "lowrank_"

#: Components a mutation inserts at a block (prefix -> the hyperparameter listing their blocks):
#: residual adapters (spec §2.2) and, beyond the paper (``search: extended``), low-rank deltas.
INSERTED_LAYERS = {ADAPTER_PREFIX: "adapter_layers", LOWRANK_PREFIX: "lowrank_layers"}

#: Component name -> prefix of its tensors in a timm VisionTransformer state dict.
TIMM_PREFIX = {
    EMBEDDING: "patch_embed.",
    CLS: "",
    POSEMBED: "",
    ENCODER_NORM: "norm.",
    HEAD: "head.",
}


def block_name(i: int) -> str:
    return f"{BLOCK_PREFIX}{i}"


def adapter_name(i: int) -> str:
    return f"{ADAPTER_PREFIX}{i}"


def lowrank_name(i: int) -> str:
    return f"{LOWRANK_PREFIX}{i}"


def is_inserted(name: str) -> bool:
    """Whether ``name`` is a component a mutation inserts (an adapter or a low-rank delta):
    new ones start as an exact no-op, and a size change re-initialises them."""
    return name.startswith(tuple(INSERTED_LAYERS))


def layer_index(name: str) -> int | None:
    """Block index of an ``encoderblock_i``, ``residual_adapter_i`` or ``lowrank_i`` name, else
    None."""
    for prefix in (BLOCK_PREFIX, *INSERTED_LAYERS):
        if name.startswith(prefix):
            return int(name[len(prefix) :])
    return None


def timm_prefix(name: str) -> str:
    """Prefix of a component's tensors in a timm state dict (adapters have none in timm; a
    low-rank component's tensors sit in its block's linear layers)."""
    if name.startswith((BLOCK_PREFIX, LOWRANK_PREFIX)):
        return f"blocks.{layer_index(name)}."
    if name.startswith(ADAPTER_PREFIX):
        return f"adapters.{layer_index(name)}."
    return TIMM_PREFIX[name]


@dataclass(frozen=True)
class RootArch:
    """Dimensions of a class-token ViT (timm ``VisionTransformer`` layout, no pre-logits)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden_dim: int
    patch_size: int
    image_size: int
    in_chans: int = 3
    qkv_bias: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RootArch:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def num_patches(self, image_size: int) -> int:
        if image_size % self.patch_size:
            raise ValueError(
                f"image size {image_size} is not a multiple of patch {self.patch_size}"
            )
        return (image_size // self.patch_size) ** 2

    def component_names(self, hparams: Mapping[str, Any]) -> list[str]:
        """Ordered names: embedding, cls, pos, [adapter_i] block_i [lowrank_i]…, encoder_norm,
        head."""
        names = [EMBEDDING, CLS, POSEMBED]
        adapters = set(hparams.get("adapter_layers", ()))
        lowranks = set(hparams.get("lowrank_layers", ()))
        for i in range(hparams["num_layers"]):
            if i in adapters:
                names.append(adapter_name(i))
            names.append(block_name(i))
            if i in lowranks:
                names.append(lowrank_name(i))
        return names + [ENCODER_NORM, HEAD]

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(out, in) features of the block's linear layers that a low-rank component adds a
        delta B·A to (LoRA's usual ViT targets): attention qkv and projection, MLP fc1 and fc2."""
        d, h = self.embed_dim, self.mlp_hidden_dim
        return {"attn.qkv": (3 * d, d), "attn.proj": (d, d), "mlp.fc1": (h, d), "mlp.fc2": (d, h)}

    def shapes(self, name: str, hparams: Mapping[str, Any]) -> Shapes:
        """Tensor shapes of one component under a path's hyperparameters."""
        d, h = self.embed_dim, self.mlp_hidden_dim
        if name == EMBEDDING:
            p = self.patch_size
            return {"proj.weight": (d, self.in_chans, p, p), "proj.bias": (d,)}
        if name == CLS:
            return {"cls_token": (1, 1, d)}
        if name == POSEMBED:
            return {"pos_embed": (1, 1 + self.num_patches(hparams["ds_image_size"]), d)}
        if name == ENCODER_NORM:
            return {"weight": (d,), "bias": (d,)}
        if name == HEAD:
            return {"weight": (hparams["num_classes"], d), "bias": (hparams["num_classes"],)}
        if name.startswith(BLOCK_PREFIX):
            shapes: Shapes = {
                "norm1.weight": (d,),
                "norm1.bias": (d,),
                "attn.qkv.weight": (3 * d, d),
                "attn.proj.weight": (d, d),
                "attn.proj.bias": (d,),
                "norm2.weight": (d,),
                "norm2.bias": (d,),
                "mlp.fc1.weight": (h, d),
                "mlp.fc1.bias": (h,),
                "mlp.fc2.weight": (d, h),
                "mlp.fc2.bias": (d,),
            }
            if self.qkv_bias:
                shapes["attn.qkv.bias"] = (3 * d,)
            return shapes
        if name.startswith(ADAPTER_PREFIX):
            a = hparams["adapter_dim"]
            return {
                "norm.weight": (d,),
                "norm.bias": (d,),
                "fc1.weight": (a, d),
                "fc1.bias": (a,),
                "fc2.weight": (d, a),
                "fc2.bias": (d,),
            }
        if name.startswith(LOWRANK_PREFIX):
            r = int(hparams["lowrank_rank"])
            shapes = {}
            for target, (out, inp) in self.linear_shapes().items():
                shapes[f"{target}.lora_A"] = (r, inp)
                shapes[f"{target}.lora_B"] = (out, r)
            return shapes
        raise KeyError(f"unknown component name {name!r}")

    def stage_flops(self, name: str, hparams: Mapping[str, Any]) -> int:
        """Forward FLOPs of one stage on one image (2 per multiply-add; matmuls only, as is
        usual: norms, softmax and GELU add a few percent). Stage names are the forward stages:
        embedding, residual_adapter_i, encoderblock_i (with its lowrank_i, if any),
        encoder_norm, head."""
        d, h = self.embed_dim, self.mlp_hidden_dim
        patches = self.num_patches(int(hparams["ds_image_size"]))
        tokens = 1 + patches
        if name == EMBEDDING:
            return 2 * patches * self.in_chans * self.patch_size**2 * d
        if name.startswith(BLOCK_PREFIX):
            dense = tokens * (3 * d * d + d * d + 2 * d * h)
            attention = 2 * tokens * tokens * d  # scores and weighted sum
            if layer_index(name) in hparams.get("lowrank_layers", ()):
                # x·Aᵀ·Bᵀ beside each target: r × (in + out) multiply-adds per token
                r = int(hparams["lowrank_rank"])
                dense += tokens * r * sum(o + i for o, i in self.linear_shapes().values())
            return 2 * (dense + attention)
        if name.startswith(ADAPTER_PREFIX):
            return 2 * tokens * 2 * d * int(hparams["adapter_dim"])
        if name == ENCODER_NORM:
            return 0
        if name == HEAD:
            return 2 * d * int(hparams["num_classes"])
        raise KeyError(f"unknown stage name {name!r}")

    def reference_params(self) -> int:
        """P_ref: the root's parameter count at image size 32 with a 2-class head (spec §6)."""
        hp = {"num_layers": self.depth, "ds_image_size": 32, "num_classes": 2, "adapter_layers": []}
        if 32 % self.patch_size:
            hp["ds_image_size"] = self.patch_size * max(1, round(32 / self.patch_size))
        return sum(numel(self.shapes(n, hp)) for n in self.component_names(hp))


def numel(shapes: Shapes) -> int:
    """Number of scalars in a component of the given tensor shapes."""
    return sum(math.prod(s) for s in shapes.values())
