"""Roots from timm ViTs: ``timm:<name>[.<tag>]`` and ``file:<weights>`` with a sidecar (spec §11).

A timm root is built in three steps, all offline:

1. the architecture is instantiated on the meta device (no memory, no init cost) and checked:
   only class-token ViTs in timm's plain ``VisionTransformer`` layout are accepted, because a
   path is assembled from exactly those components (:mod:`munet.model.vit`); anything else is
   refused in one line naming what is unsupported;
2. :class:`RootArch` is read off the model (depth, widths, heads, patch, native image size);
3. the weights are read from a file: safetensors, a torch state dict (``torch.load`` with
   ``weights_only=True``; pickled objects are refused) or an original AugReg / big_vision
   ``.npz`` (timm's own JAX loader). Without ``--root-weights`` the local Hugging Face and torch
   hub caches are searched; nothing is ever downloaded.

When the checkpoint was trained on inputs normalised with a mean/std other than munet's
(``x / 127.5 - 1``, i.e. mean = std = 0.5), the normalisation is folded into the patch
embedding, which is linear, so the root sees its training distribution exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from munet.errors import RootError
from munet.model.root_base import Root, split_timm_state
from munet.system.arch import RootArch

Log = Callable[[str], None]

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".npz")
SIDECAR_SUFFIXES = (".json", ".yaml", ".yml")
HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
MUNET_MEAN = (0.5, 0.5, 0.5)
MUNET_STD = (0.5, 0.5, 0.5)
EXAMPLE = "timm:vit_base_patch16_224.augreg_in21k"
NEEDS = (
    "munet needs a class-token ViT in timm's VisionTransformer layout (global_pool='token', "
    "no register tokens, no fc_norm/pre-logits, plain LayerNorm/GELU blocks), e.g. " + EXAMPLE
)


# ----------------------------------------------------------------------------- entry points


def load_timm_root(name: str, weights: str | os.PathLike | None, log: Log | None = None) -> Root:
    """``timm:<name>[.<tag>]``: weights from ``weights`` or the local caches (never downloaded)."""
    spec = f"timm:{name}"
    if not name:
        raise RootError(f"root {spec!r} names no model; use e.g. {EXAMPLE}")
    model = create_meta_model(name, {}, spec)
    arch = root_arch(model, spec)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if weights is not None:
        path = resolve_weights_path(Path(weights), spec)
    else:
        path = find_cached_weights(cfg)
        if path is None:
            raise RootError(missing_weights_message(spec, cfg))
    return build_root(
        spec, model, arch, path, _norm(cfg), {"model": name, "tag": cfg.get("tag")}, log
    )


def load_file_root(
    location: str, weights: str | os.PathLike | None, log: Log | None = None
) -> Root:
    """``file:<weights>``: a weights file whose sidecar names its timm architecture."""
    spec = f"file:{location}"
    if weights is not None:
        raise RootError(
            f"--root-weights is only for timm: roots; root {spec!r} already names its weights file"
        )
    path = resolve_weights_path(Path(location).expanduser(), spec)
    sidecar_path, sidecar = read_sidecar(path, spec)
    model_name, kwargs, defaults = sidecar_architecture(sidecar, sidecar_path, spec)
    check_sidecar_args(kwargs, weights_header(path), sidecar_path, spec)
    model = create_meta_model(model_name, kwargs, spec)
    arch = root_arch(model, spec)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {}) if model_name else {}
    norm = _norm({**cfg, **defaults})
    extra = {"model": model_name or "VisionTransformer", "sidecar": str(sidecar_path)}
    return build_root(spec, model, arch, path, norm, extra, log)


# ----------------------------------------------------------------------------- architecture

#: Keys of a sidecar's args that are not architecture (and could load or fetch weights).
_NOT_ARCH_ARGS = frozenset(
    {
        "pretrained",
        "num_classes",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "checkpoint_path",
        "cache_dir",
    }
)
#: Sanity bounds on declared sizes when the weights' header cannot be read without loading.
MAX_DEPTH, MAX_WIDTH = 1024, 1 << 15
#: A meta model may exceed what its weights file holds by this many elements before it is
#: materialised (position embeddings may be resampled); more is refused unallocated.
SIZE_SLACK = 64 * 1024 * 1024


def weights_header(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor shapes of a safetensors weights file from its header alone; None for other
    formats or an unreadable file (reading the weights reports that)."""
    if path.suffix != ".safetensors":
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception:
        return None


def check_sidecar_args(
    args: Mapping[str, Any], header: Mapping[str, tuple[int, ...]] | None, where: Path, spec: str
) -> None:
    """A sidecar's declared depth and width, against the weights' header where one was read
    (else against sanity bounds), before any model is built."""
    for key, bound in (("depth", MAX_DEPTH), ("embed_dim", MAX_WIDTH)):
        value = args.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise RootError(
                f"root {spec!r}: sidecar {where} {key}={repr(value)[:40]} is invalid; use an "
                f"integer 1..{bound} matching the weights"
            )
    if not header or "cls_token" not in header:  # not timm's layout: load_weights checks
        return
    blocks = {k.split(".")[1] for k in header if k.startswith("blocks.")}
    found = {"depth": len(blocks), "embed_dim": header["cls_token"][-1]}
    for key, value in found.items():
        if args.get(key) is not None and args[key] != value:
            raise RootError(
                f"root {spec!r}: sidecar {where} declares {key}={args[key]} but the weights "
                f"have {value}; fix the sidecar"
            )


def check_size(model: nn.Module, path: Path, spec: str) -> None:
    """Refuse, before it is materialised, a meta model far larger than its weights file holds."""
    need = sum(t.numel() for t in model.state_dict().values())
    header = weights_header(path)
    if header is not None:
        have = sum(math.prod(shape) for shape in header.values())
    else:
        have = path.stat().st_size // 2  # at least 2 bytes per stored element
    if need > 2 * have + SIZE_SLACK:
        raise RootError(
            f"root {spec!r}: the architecture has {need:,} parameters but {path} holds about "
            f"{have:,}; it is not a checkpoint of this architecture (check the sidecar)"
        )


def create_meta_model(name: str | None, kwargs: Mapping[str, Any], spec: str) -> nn.Module:
    """The timm model on the meta device (architecture only), headless, never pretrained."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if name and (":" in name or "/" in name):  # hf-hub:, timm/…, URLs: resolved online
        raise RootError(
            f"root {spec!r}: model {name[:80]!r} is a hub or URL name, which munet never "
            "resolves (nothing is downloaded at run time); give a timm architecture name, "
            "e.g. vit_tiny_patch16_224"
        )
    args = {k: v for k, v in kwargs.items() if k not in _NOT_ARCH_ARGS}
    try:
        with torch.device("meta"):
            if name:
                return timm.create_model(name, pretrained=False, num_classes=0, **args)
            return VisionTransformer(num_classes=0, **args)
    except RuntimeError as err:
        msg = str(err)
        if "Unknown model" in msg or "Invalid pretrained tag" in msg:
            raise RootError(
                f"root {spec!r}: timm says {msg.rstrip('.')}; list names with "
                "timm.list_pretrained('vit_*') and use e.g. " + EXAMPLE
            ) from None
        raise RootError(f"root {spec!r}: timm cannot build {name!r}: {msg}") from None
    except TypeError as err:
        raise RootError(f"root {spec!r}: bad architecture arguments {dict(args)}: {err}") from None


def unsupported(model: nn.Module) -> str | None:
    """What about ``model`` munet cannot express as root components, or None if nothing."""
    from timm.layers import Mlp, PatchEmbed
    from timm.models.vision_transformer import Attention, Block, VisionTransformer

    if type(model) is not VisionTransformer:
        return f"model class {type(model).__name__}"
    if not model.has_class_token:
        return "a model without class token (class_token=False)"
    if model.global_pool != "token":
        return f"global_pool={model.global_pool!r}"
    if model.num_reg_tokens:
        return f"{model.num_reg_tokens} register tokens"
    if model.no_embed_class:
        return "no_embed_class=True"
    if model.pos_embed is None:
        return "a model without learned position embedding"
    if getattr(model, "attn_pool", None) is not None:
        return "an attention-pooling head"
    if not isinstance(model.fc_norm, nn.Identity):
        return "fc_norm (a norm after pooling)"
    if not isinstance(getattr(model, "pre_logits", nn.Identity()), nn.Identity):
        return "a pre-logits layer"
    if not isinstance(model.norm_pre, nn.Identity):
        return "pre_norm (a norm before the blocks)"
    if isinstance(model.norm, nn.Identity):
        return "final_norm=False"
    pe = model.patch_embed
    if type(pe) is not PatchEmbed:
        return f"patch embedding {type(pe).__name__}"
    if not isinstance(pe.norm, nn.Identity):
        return "a norm in the patch embedding"
    proj = pe.proj
    if not isinstance(proj, nn.Conv2d) or proj.bias is None:
        return "a patch embedding without bias"
    if proj.kernel_size != proj.stride or proj.padding != (0, 0) or len(set(pe.patch_size)) != 1:
        return f"patches {proj.kernel_size} with stride {proj.stride}"
    if pe.img_size is None or len(set(pe.img_size)) != 1:
        return f"non-square image size {pe.img_size}"
    if proj.in_channels != 3:
        return f"in_chans={proj.in_channels}"
    if why := _norm_problem(model.norm, "final norm"):
        return why
    dim = model.embed_dim
    shapes = set()
    for i, block in enumerate(model.blocks):
        where = f"block {i}"
        if type(block) is not Block:
            return f"block type {type(block).__name__}"
        if not (isinstance(block.ls1, nn.Identity) and isinstance(block.ls2, nn.Identity)):
            return "layer scale (init_values)"
        attn, mlp = block.attn, block.mlp
        if type(attn) is not Attention:
            return f"attention type {type(attn).__name__}"
        if not (isinstance(attn.q_norm, nn.Identity) and isinstance(attn.k_norm, nn.Identity)):
            return "qk_norm"
        if not isinstance(getattr(attn, "norm", nn.Identity()), nn.Identity):
            return "scale_attn_norm"
        if getattr(attn, "gate", None) is not None:
            return "gated attention"
        if attn.num_heads * attn.head_dim != dim or getattr(attn, "attn_dim", dim) != dim:
            return f"attention width {attn.num_heads}x{attn.head_dim} != embed_dim {dim}"
        if not math.isclose(float(attn.scale), attn.head_dim**-0.5):
            return f"attention scale {attn.scale}"
        if attn.proj.bias is None:
            return "proj_bias=False"
        if type(mlp) is not Mlp:
            return f"MLP type {type(mlp).__name__}"
        if type(mlp.act) is not nn.GELU or mlp.act.approximate != "none":
            return f"activation {mlp.act!r}"
        if not isinstance(mlp.norm, nn.Identity):
            return "scale_mlp_norm"
        if mlp.fc1.bias is None or mlp.fc2.bias is None:
            return "an MLP without bias"
        for norm in (block.norm1, block.norm2):
            if why := _norm_problem(norm, where):
                return why
        shapes.add((attn.num_heads, mlp.fc1.out_features, attn.qkv.bias is not None))
    if len(shapes) > 1:
        return f"blocks of different shapes {sorted(shapes)}"
    return None


def _norm_problem(norm: nn.Module, where: str) -> str | None:
    from timm.layers import LayerNorm

    if type(norm) not in (nn.LayerNorm, LayerNorm):
        return f"non-standard norm {type(norm).__name__} in the {where}"
    if not math.isclose(norm.eps, 1e-6) or not norm.elementwise_affine or norm.bias is None:
        return f"non-standard norm {norm!r} in the {where} (munet uses LayerNorm eps=1e-6)"
    return None


def root_arch(model: nn.Module, spec: str) -> RootArch:
    """The root's dimensions, read off the model; RootError if munet cannot express it."""
    why = unsupported(model)
    if why is None and len(model.blocks) == 0:
        why = "a model without blocks"
    if why is not None:
        raise RootError(f"root {spec!r} has {why}, which is unsupported; {NEEDS}")
    block = model.blocks[0]
    dim = model.embed_dim
    hidden = block.mlp.fc1.out_features
    if int(dim * (hidden / dim)) != hidden:  # PathModel rebuilds the MLP from mlp_ratio
        raise RootError(f"root {spec!r} has an MLP width {hidden} munet cannot rebuild; {NEEDS}")
    return RootArch(
        embed_dim=dim,
        depth=len(model.blocks),
        num_heads=block.attn.num_heads,
        mlp_hidden_dim=hidden,
        patch_size=model.patch_embed.patch_size[0],
        image_size=model.patch_embed.img_size[0],
        in_chans=3,
        qkv_bias=block.attn.qkv.bias is not None,
    )


# ----------------------------------------------------------------------------- weights


def resolve_weights_path(path: Path, spec: str) -> Path:
    """An existing weights file (a folder holding one of ``HF_FILES`` or one .npz is accepted)."""
    path = path.expanduser()
    if path.is_dir():
        found = [path / n for n in HF_FILES if (path / n).is_file()] or sorted(path.glob("*.npz"))
        if not found:
            raise RootError(
                f"root {spec!r}: folder {path} holds none of {', '.join(HF_FILES)} or a .npz; "
                "pass the weights file itself"
            )
        path = found[0]
    if not path.is_file():
        raise RootError(f"root {spec!r}: weights file {path} does not exist; check the path")
    if not path.name.endswith(WEIGHT_SUFFIXES):
        raise RootError(
            f"root {spec!r}: weights file {path.name} has an unknown format; use one of "
            + ", ".join(WEIGHT_SUFFIXES)
        )
    return path


def find_cached_weights(cfg: Mapping[str, Any]) -> Path | None:
    """A weights file for ``cfg`` in the local Hugging Face or torch hub cache (no network)."""
    repo = cfg.get("hf_hub_id")
    if repo:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else list(HF_FILES)
            for name in names:
                found = try_to_load_from_cache(repo, name)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
    url = cfg.get("url")
    if url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if cached.is_file():
            return cached
    return None


def missing_weights_message(spec: str, cfg: Mapping[str, Any]) -> str:
    """One line: where we looked and which file to pass with --root-weights."""
    wants = []
    if cfg.get("hf_hub_id"):
        wants.append(f"model.safetensors from https://huggingface.co/{cfg['hf_hub_id']}")
    if cfg.get("url"):
        wants.append(os.path.basename(cfg["url"]))
    which = " or ".join(wants) or "the model's weights (safetensors, .pth or AugReg .npz)"
    return (
        f"root {spec!r}: no weights found offline (searched the Hugging Face cache and "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}); get {which} and pass it with "
        "--root-weights FILE"
    )


def read_state_dict(path: Path, spec: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a torch checkpoint (``weights_only=True``).

    A checkpoint dict wrapping the weights under ``state_dict_ema`` / ``model_ema`` /
    ``state_dict`` / ``model`` is unwrapped (EMA first, as timm does); a ``module.`` prefix left
    by DistributedDataParallel is removed.
    """
    import pickle

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise RootError(
            f"root {spec!r}: {path} holds pickled Python objects, which munet does not load; "
            "save a plain state dict (torch.save(model.state_dict())) or safetensors"
        ) from None
    except Exception as err:  # corrupt or not a checkpoint at all
        raise RootError(
            f"root {spec!r}: cannot read weights {path} ({err.__class__.__name__}: {err})"
        ) from None
    if isinstance(state, Mapping):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise RootError(f"root {spec!r}: {path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(model: nn.Module, path: Path, spec: str) -> None:
    """Fill the meta ``model`` (materialised here) with the weights in ``path``; strict."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    model.to_empty(device="cpu")
    if path.suffix == ".npz":
        load_npz(model, path, spec)
        return
    state = read_state_dict(path, spec)
    extra = [k for k in state if k.startswith(("pre_logits.", "fc_norm.", "reg_token"))]
    if extra:  # timm's filter silently drops a pre-logits layer; a root must not lose one
        raise RootError(f"root {spec!r}: {path} has {extra[0]}, which is unsupported; {NEEDS}")
    try:
        state = checkpoint_filter_fn(state, model)
    except Exception as err:
        raise RootError(
            f"root {spec!r}: {path} does not fit the architecture ({err.__class__.__name__}: {err})"
        ) from None
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"lacks {missing[:3]}" if missing else f"has unexpected {unexpected[:3]}"
        raise RootError(
            f"root {spec!r}: {path} {what}; it is not a checkpoint of this architecture"
        )
    wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise RootError(
            f"root {spec!r}: {path} has {k} of shape {tuple(state[k].shape)}, the architecture "
            f"needs {tuple(own[k].shape)}; the sidecar or model name does not match the weights"
        )
    model.load_state_dict(state, strict=True)


def load_npz(model: nn.Module, path: Path, spec: str) -> None:
    """An AugReg / big_vision ``.npz`` through timm's own JAX loader (``allow_pickle=False``)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
    except Exception as err:
        raise RootError(f"root {spec!r}: cannot read {path} as .npz ({err})") from None
    if any(k.endswith("pre_logits/kernel") for k in keys):
        raise RootError(f"root {spec!r}: {path} has a pre-logits layer, which is unsupported")
    try:
        model.load_pretrained(str(path))
    except KeyError as err:
        raise RootError(
            f"root {spec!r}: {path} lacks {err.args[0]!r}; it is not an AugReg ViT .npz of this "
            "architecture"
        ) from None
    except Exception as err:
        raise RootError(
            f"root {spec!r}: {path} does not fit the architecture ({err.__class__.__name__}: {err})"
        ) from None


def fold_input_norm(
    state: dict[str, torch.Tensor], mean: Sequence[float], std: Sequence[float]
) -> None:
    """Make the patch embedding take munet's inputs (x/127.5 - 1) instead of (x/255 - mean)/std.

    With x01 = (m + 1) / 2, the normalised input is m * a + c per channel, where
    a = 1 / (2 std) and c = (0.5 - mean) / std; a linear, padding-free patch projection absorbs
    both exactly: W' = W * a, b' = b + sum(W * c).
    """
    w = state["patch_embed.proj.weight"].double()
    a = torch.tensor([0.5 / s for s in std], dtype=torch.float64).view(1, -1, 1, 1)
    c = torch.tensor([(0.5 - m) / s for m, s in zip(mean, std, strict=True)], dtype=torch.float64)
    bias = state["patch_embed.proj.bias"].double() + (w * c.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    state["patch_embed.proj.weight"] = (w * a).float()
    state["patch_embed.proj.bias"] = bias.float()


def _norm(cfg: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = tuple(float(v) for v in cfg.get("mean") or MUNET_MEAN)
    std = tuple(float(v) for v in cfg.get("std") or MUNET_STD)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise RootError(f"input mean {mean} / std {std} must be 3 numbers each, std > 0")
    return mean, std


def build_root(
    spec: str,
    model: nn.Module,
    arch: RootArch,
    path: Path,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    extra: Mapping[str, Any],
    log: Log | None,
) -> Root:
    """Load ``path`` into ``model`` and split it into root components."""
    say = log or logger.info
    check_size(model, path, spec)
    load_weights(model, path, spec)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    mean, std = norm
    folded = not (
        all(math.isclose(m, 0.5) for m in mean) and all(math.isclose(s, 0.5) for s in std)
    )
    if folded:
        fold_input_norm(state, mean, std)
    params = split_timm_state(state, arch)
    info = {
        **extra,
        "weights": str(path),
        "weights_bytes": path.stat().st_size,
        "arch": arch.to_dict(),
        "input_mean": list(mean),
        "input_std": list(std),
        "input_norm_folded": folded,
    }
    note = f", input norm mean {mean} std {std} folded into the patch embedding" if folded else ""
    say(
        f"root {spec}: {arch.depth} blocks, width {arch.embed_dim}, {arch.num_heads} heads, "
        f"patch {arch.patch_size}, native {arch.image_size} px, weights {path}{note}"
    )
    return Root(spec, arch, params, info)


# ----------------------------------------------------------------------------- sidecars


def read_sidecar(path: Path, spec: str) -> tuple[Path, dict[str, Any]]:
    """The JSON/YAML beside a weights file: ``<stem>.json|yaml|yml``, else ``config.json``."""
    stem = path.with_suffix("")
    candidates = [stem.with_name(stem.name + s) for s in SIDECAR_SUFFIXES]
    candidates.append(path.with_name("config.json"))  # Hugging Face timm layout
    for cand in candidates:
        if cand.is_file():
            try:
                if cand.suffix == ".json":
                    data = json.loads(cand.read_text())
                else:
                    import yaml

                    data = yaml.safe_load(cand.read_text())
            except Exception as err:
                raise RootError(f"root {spec!r}: sidecar {cand} is unreadable ({err})") from None
            if not isinstance(data, dict):
                raise RootError(f"root {spec!r}: sidecar {cand} must hold a mapping")
            return cand, data
    raise RootError(
        f"root {spec!r} has no sidecar; write {candidates[0]} naming its timm architecture, "
        'e.g. {"model": "vit_base_patch16_224"} or {"model": "vit_tiny_patch16_224", '
        '"args": {"depth": 6, "img_size": 64}}'
    )


def sidecar_architecture(
    data: Mapping[str, Any], where: Path, spec: str
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(timm model name or None, constructor kwargs, mean/std overrides) from a sidecar.

    Accepted forms: ``{"model": name, "args": {...}}`` (also timm's hub ``config.json`` keys
    ``architecture`` / ``model_args``), ``{"args": {VisionTransformer kwargs}}``, or munet's own
    ``{"arch": {RootArch fields}}``. Optional ``mean`` / ``std`` (also under ``pretrained_cfg``).
    """
    name = data.get("model", data.get("architecture"))
    args = data.get("args", data.get("model_args")) or {}
    if "arch" in data and name is None and not args:
        try:
            arch = RootArch.from_dict(data["arch"])
        except (KeyError, TypeError) as err:
            raise RootError(f"root {spec!r}: sidecar {where} arch is incomplete ({err})") from None
        args = {
            "img_size": arch.image_size,
            "patch_size": arch.patch_size,
            "in_chans": arch.in_chans,
            "embed_dim": arch.embed_dim,
            "depth": arch.depth,
            "num_heads": arch.num_heads,
            "mlp_ratio": arch.mlp_hidden_dim / arch.embed_dim,
            "qkv_bias": arch.qkv_bias,
        }
    if name is None and not args:
        raise RootError(
            f'root {spec!r}: sidecar {where} names no architecture; give "model" (a timm '
            'name), "args" (VisionTransformer arguments) or "arch"'
        )
    if (name is not None and not isinstance(name, str)) or not isinstance(args, dict):
        raise RootError(f"root {spec!r}: sidecar {where}: model must be a string, args a mapping")
    pcfg = data.get("pretrained_cfg") or {}
    norm = {k: data.get(k, pcfg.get(k)) for k in ("mean", "std") if data.get(k, pcfg.get(k))}
    return name, dict(args), norm
