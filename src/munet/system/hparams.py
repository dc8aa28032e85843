"""Hyperparameters of a path, their search space and incremental mutation (spec §2.4, §3)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Candidate lists of the spec (§3). ``num_layers`` and ``ds_image_size`` depend on the root and
#: are filled in by :func:`search_space_for`.
BASE_SEARCH_SPACE: dict[str, list[Any]] = {
    "opt_lr": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1],
    "opt_lr_schedule": ["constant", "cosine", "restarts"],
    "opt_lr_warmup_ratio": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4],
    "opt_momentum": [None, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
    "opt_nesterov": [True, False],
    "adapter_dim": [8, 16, 32, 64, 128],
    "ds_area_range_min": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
    "ds_aspect_ratio_range_min": [0.25, 0.5, 0.75, 1.0],
    "ds_flip_left_right": [True, False],
    "ds_brightness_delta": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2],
    "ds_contrast_delta": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2],
    "ds_saturation_delta": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2],
    "ds_hue_delta": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2],
}

#: Defaults of the character benchmark (spec §3); ``num_layers`` defaults to the root's depth.
BASE_DEFAULTS: dict[str, Any] = {
    "opt_lr": 0.01,
    "opt_lr_schedule": "cosine",
    "opt_lr_warmup_ratio": 0.1,
    "opt_momentum": 0.9,
    "opt_nesterov": False,
    "adapter_dim": 32,
    "adapter_layers": [],
    "ds_image_size": 32,
    "ds_area_range_min": 0.05,
    "ds_aspect_ratio_range_min": 0.75,
    "ds_flip_left_right": True,
    "ds_brightness_delta": 0.0,
    "ds_contrast_delta": 0.0,
    "ds_saturation_delta": 0.0,
    "ds_hue_delta": 0.0,
}

#: ``search: extended`` (beyond the paper): the optimizer becomes a choice (SGD as in the paper,
#: or AdamW with its own learning rates and weight decay) and a mutation may add a low-rank
#: delta of rank ``lowrank_rank`` to a block (``lowrank_layers``).
EXTENDED_SEARCH_SPACE: dict[str, list[Any]] = {
    "opt_name": ["sgd", "adamw"],
    "opt_adamw_lr": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3],
    "opt_weight_decay": [0.0, 0.01, 0.05, 0.1],
    "lowrank_rank": [2, 4, 8, 16],
}

EXTENDED_DEFAULTS: dict[str, Any] = {
    "opt_name": "sgd",
    "opt_adamw_lr": 1e-3,
    "opt_weight_decay": 0.01,
    "lowrank_rank": 8,
    "lowrank_layers": [],
}

#: ``paper``: the spec's search space exactly; ``extended``: plus the entries above.
SEARCHES = ("paper", "extended")

#: Where ``search: extended`` starts a task's path from the root: ``lowrank`` with a low-rank
#: delta on every block, trained by AdamW (PEFT's LoRA recipe, :data:`LOWRANK_START`); ``head``
#: with the head only and SGD, as the paper starts.
EXTENDED_STARTS = ("lowrank", "head")
LOWRANK_START: dict[str, Any] = {"opt_name": "adamw", "opt_adamw_lr": 2e-3}

#: munet's default augmentation (``augment_defaults: safe``): no flip, no random crop. A mirrored
#: character or oriented pattern is another class, and a 5 % crop of a 28-32 px image keeps a
#: few pixels; auto-tuning may still move both along the spec's candidate lists.
SAFE_AUGMENTATION: dict[str, Any] = {"ds_flip_left_right": False, "ds_area_range_min": 1.0}

AUGMENT_DEFAULTS = ("safe", "spec")


def default_hparams(
    augment: str = "safe", search: str = "paper", start: str = "head", depth: int | None = None
) -> dict[str, Any]:
    """Starting hyperparameters: the spec's (§3) with ``augment="spec"``, else with
    :data:`SAFE_AUGMENTATION` in place of the spec's flip and 5 % crop; with
    ``search="extended"`` also :data:`EXTENDED_DEFAULTS`, and with ``start="lowrank"``
    :data:`LOWRANK_START` and (given the root's ``depth``) a low-rank delta on every block."""
    if augment not in AUGMENT_DEFAULTS:
        raise ValueError(f"augment_defaults={augment!r} is unknown; use safe or spec")
    if search not in SEARCHES:
        raise ValueError(f"search={search!r} is unknown; use paper or extended")
    hp = copy.deepcopy(BASE_DEFAULTS)
    if augment == "safe":
        hp.update(SAFE_AUGMENTATION)
    if start not in EXTENDED_STARTS:
        raise ValueError(f"extended_start={start!r} is unknown; use lowrank or head")
    if search == "extended":
        hp.update(copy.deepcopy(EXTENDED_DEFAULTS))
        if start == "lowrank":
            hp.update(LOWRANK_START)
            if depth is not None:
                hp["lowrank_layers"] = list(range(depth))
    return hp


def peak_lr(hp: Mapping[str, Any]) -> float:
    """The path's peak learning rate: ``opt_adamw_lr`` under AdamW, else ``opt_lr`` (SGD; a path
    without ``opt_name`` is the paper's)."""
    return float(hp["opt_adamw_lr"] if hp.get("opt_name", "sgd") == "adamw" else hp["opt_lr"])


DATA_PREFIX = "ds_"


def is_data_hparam(name: str) -> bool:
    """Data hyperparameters are shared by the candidates of one generation batch."""
    return name.startswith(DATA_PREFIX)


def image_sizes_for(
    patch_size: int, max_size: int = 384, step: int = 16, min_patches: int = 1
) -> list[int]:
    """The spec's image-size list (16…384, step 16) restricted to multiples of the patch size
    that leave at least ``min_patches`` patches per side (1 = the spec's list)."""
    lowest = patch_size * max(1, min_patches)
    sizes = [s for s in range(step, max_size + 1, step) if s % patch_size == 0 and s >= lowest]
    if not sizes:
        sizes = [patch_size * k for k in range(max(1, min_patches), max_size // patch_size + 1)]
    return sizes


def search_space_for(
    depth: int,
    patch_size: int,
    auto_tune: bool = True,
    overrides: Mapping[str, Sequence[Any]] | None = None,
    min_patches: int = 1,
    search: str = "paper",
) -> dict[str, list[Any]]:
    """The mutable hyperparameters and their candidate lists for a root of ``depth`` blocks.

    Without auto-tuning only ``num_layers`` mutates (spec §3, "muNet w/o auto-tuning").
    ``min_patches`` > 1 drops image sizes that would leave the root fewer patches per side (a
    16 px image on a /16 root is one patch: a degenerate model whose generation batch is lost).
    ``search="extended"`` adds :data:`EXTENDED_SEARCH_SPACE` (with auto-tuning).
    """
    space: dict[str, list[Any]] = {"num_layers": list(range(1, depth + 1))}
    if auto_tune:
        space.update(copy.deepcopy(BASE_SEARCH_SPACE))
        space["ds_image_size"] = image_sizes_for(patch_size, min_patches=min_patches)
        if search == "extended":
            space.update(copy.deepcopy(EXTENDED_SEARCH_SPACE))
    for key, values in (overrides or {}).items():
        space[key] = list(values)
    return space


def incremental_step(values: Sequence[Any], current: Any, rng: np.random.Generator) -> Any:
    """Move to a neighbouring candidate, ±1 index with probability ½ each, clipped at the ends."""
    idx = index_of(values, current)
    step = 1 if rng.random() < 0.5 else -1
    return values[min(max(idx + step, 0), len(values) - 1)]


def index_of(values: Sequence[Any], value: Any) -> int:
    """Index of ``value`` in a candidate list; floats compare with tolerance."""
    for i, v in enumerate(values):
        if v == value or (
            isinstance(v, float)
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and abs(v - value) <= 1e-12 * max(1.0, abs(v))
        ):
            return i
    raise ValueError(f"value {value!r} is not in the candidate list {list(values)!r}")


def mutate_hparams(
    hparams: dict[str, Any],
    space: Mapping[str, Sequence[Any]],
    prob: float,
    rng: np.random.Generator,
    data: bool,
) -> tuple[dict[str, Any], list[str]]:
    """Mutate each data (``data=True``) or model/optimizer hyperparameter with probability ``prob``.

    Returns the new dict and a record of the changes ("name: old -> new"). Keys are visited in
    the sorted order of the search space so the random stream is stable.
    """
    out = dict(hparams)
    record: list[str] = []
    for name in sorted(space):
        if is_data_hparam(name) != data:
            continue
        if rng.random() >= prob:
            continue
        old = out[name]
        new = incremental_step(space[name], old, rng)
        if new != old:
            out[name] = new
            record.append(f"{name}: {old} -> {new}")
    return out, record


def mutate_inserted(
    hparams: dict[str, Any], key: str, inserted: str, prob: float, rng: np.random.Generator
) -> tuple[dict[str, Any], list[str]]:
    """Drop the blocks of ``hparams[key]`` above ``num_layers``; add each free block with
    ``prob``. ``inserted`` completes the record: "<inserted> <i>" and "removed with block <i>"."""
    out = dict(hparams)
    n = out["num_layers"]
    what = inserted.split()[0]
    layers = sorted(i for i in out[key] if i < n)
    record = [f"{what} removed with block {i}" for i in out[key] if i >= n]
    for i in range(n):
        if i in layers:
            continue
        if rng.random() < prob:
            layers.append(i)
            record.append(f"{inserted} {i}")
    out[key] = sorted(layers)
    return out, record


def mutate_adapters(
    hparams: dict[str, Any], prob: float, rng: np.random.Generator
) -> tuple[dict[str, Any], list[str]]:
    """Drop adapters above ``num_layers``; insert one before a free block with ``prob``."""
    return mutate_inserted(hparams, "adapter_layers", "adapter inserted before block", prob, rng)


def mutate_lowranks(
    hparams: dict[str, Any], prob: float, rng: np.random.Generator
) -> tuple[dict[str, Any], list[str]]:
    """Drop low-rank deltas above ``num_layers``; add one to a block without one with ``prob``
    (``search: extended``)."""
    return mutate_inserted(hparams, "lowrank_layers", "lowrank added to block", prob, rng)


def data_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ds_*`` entries of a hyperparameter dict."""
    return {k: v for k, v in hparams.items() if is_data_hparam(k)}
