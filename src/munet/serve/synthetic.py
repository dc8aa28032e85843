"""Synthetic systems: a random root and tasks assembled from it without training.

For benchmarks and tests of inference, where only the structure matters: which components the
tasks' paths share. Every task path is assembled as a child of the root without mutation
(sharing the root's frozen embedding, blocks and norm) and gets a random head; optionally its
top ``private_layers`` blocks and the encoder norm are replaced by perturbed private clones (as
if fine-tuned), and residual adapters and low-rank deltas (random, not zero) are inserted. The
result is written as a normal system directory that :func:`munet.serve.load` opens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from munet.data.pipeline import DS_DEFAULTS
from munet.model.ops import TorchOps
from munet.system.arch import ENCODER_NORM, HEAD, RootArch, block_name, is_inserted
from munet.system.assemble import assemble_child
from munet.system.path import Path as SystemPath
from munet.system.state import Settings, SystemState, make_root_state

#: ViT-Ti/16 at 32 px with 3 blocks: the dimensions of the builtin ``vit_ti3`` root.
VIT_TI3 = RootArch(
    embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
)


def _random(shapes: Mapping[str, tuple[int, ...]], gen: torch.Generator) -> dict:
    out = {}
    for key, shape in shapes.items():
        if key.endswith("norm.weight") or key == "weight" and len(shape) == 1:
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)  # LayerNorm scales
        else:
            out[key] = 0.05 * torch.randn(shape, generator=gen)
    return out


def _per_task(value: int | Mapping[str, int] | None, task: str, default: int) -> int:
    if isinstance(value, Mapping):
        return int(value.get(task, default))
    return default if value is None else int(value)


def synthetic_state(
    arch: RootArch,
    tasks: Mapping[str, int],
    private_layers: int | Mapping[str, int] = 0,
    adapter_layers: Mapping[str, Sequence[int]] | None = None,
    image_size: int | Mapping[str, int] | None = None,
    seed: int = 0,
    lowrank_layers: Mapping[str, Sequence[int]] | None = None,
) -> SystemState:
    """A SystemState: random root, one retained path per task (``{name: num_classes}``).

    ``private_layers`` and ``image_size`` are one value for every task or ``{task: value}``;
    ``adapter_layers`` and ``lowrank_layers`` (rank 4) map a task to its blocks.
    """
    gen = torch.Generator().manual_seed(seed)
    size = arch.image_size if isinstance(image_size, Mapping) else int(image_size or 0)
    size = size or arch.image_size
    defaults = {**DS_DEFAULTS, "ds_image_size": size, "adapter_dim": 16, "adapter_layers": []}
    root_hp = {**defaults, "num_layers": arch.depth, "ds_image_size": arch.image_size}
    names = arch.component_names(root_hp)[:-1]  # no head
    root_params = {n: _random(arch.shapes(n, root_hp), gen) for n in names}
    ops = TorchOps()
    state = make_root_state(arch, root_params, defaults, ops)
    settings = Settings(space={})
    rng = np.random.default_rng(seed)
    for task, num_classes in tasks.items():
        top = _per_task(private_layers, task, 0)
        private = {ENCODER_NORM} | {block_name(arch.depth - 1 - i) for i in range(top)}
        ds = {"ds_image_size": _per_task(image_size, task, size)}
        inserted = {
            "adapter_layers": sorted((adapter_layers or {}).get(task, ())),
            "lowrank_layers": sorted((lowrank_layers or {}).get(task, ())),
        }
        parent = state.root
        if any(inserted.values()):  # a stand-in parent whose hparams ask for them
            parent = SystemPath(-1, parent.task, None, dict(parent.hparams), parent.components)
            parent.hparams.update(inserted)
            if inserted["lowrank_layers"]:
                parent.hparams["lowrank_rank"] = 4
        child, _ = assemble_child(state, parent, task, num_classes, ds, False, rng, ops, settings)
        child.parent = state.root
        for i, comp in enumerate(child.components):
            if comp.name in private and top:
                noise = {
                    k: v + 0.01 * torch.randn(v.shape, generator=gen)
                    for k, v in comp.params.items()
                }
                child.components[i] = state.new_component(
                    comp.name, comp.shapes, (), f"clone:{comp.id}", noise
                )
            elif comp.name == HEAD or is_inserted(comp.name):
                comp.params = _random(comp.shapes, gen)
        child.metrics.update(quality=0.0, test_quality=None)
        state.accept(child)
        state.end_iteration(task, settings)
    return state


def make_synthetic_system(
    directory: str | os.PathLike,
    arch: RootArch = VIT_TI3,
    tasks: Mapping[str, int] | None = None,
    private_layers: int | Mapping[str, int] = 0,
    adapter_layers: Mapping[str, Sequence[int]] | None = None,
    image_size: int | Mapping[str, int] | None = None,
    channels: int = 3,
    seed: int = 0,
    lowrank_layers: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write a synthetic system to ``directory`` (see the module doc); returns its path."""
    from munet.store.system import SystemStore

    tasks = dict(tasks or {f"task{i}": 10 for i in range(4)})
    state = synthetic_state(
        arch, tasks, private_layers, adapter_layers, image_size, seed, lowrank_layers
    )
    meta = {
        t: {
            "spec": f"synthetic:{t}",
            "num_classes": n,
            "class_names": [f"{t}_{c}" for c in range(n)],
            "split": {"image_shape": [channels, 32, 32], "source": "synthetic"},
        }
        for t, n in tasks.items()
    }
    store = SystemStore(directory)
    config = {"synthetic": True, "seed": seed}
    store.create(config, {"spec": "synthetic", "arch": arch.to_dict()}, state, meta)
    return Path(directory)
