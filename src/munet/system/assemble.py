"""Child assembly (spec §1.4): a child path of a parent for a task, with inherited, cloned,
mutated and new components.

Pure: plain Python over the core's data; tensor work goes through ``ParamOps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from munet.system.arch import HEAD, INSERTED_LAYERS, LOWRANK_PREFIX, POSEMBED, Shapes, is_inserted
from munet.system.component import Component
from munet.system.hparams import mutate_adapters, mutate_hparams, mutate_lowranks
from munet.system.path import Path
from munet.system.rng import derive_seed
from munet.system.state import ParamOps, Settings, SystemState


def assemble_child(
    state: SystemState,
    parent: Path,
    task: str,
    num_classes: int,
    ds: Mapping[str, Any],
    mutate: bool,
    rng: np.random.Generator,
    ops: ParamOps,
    settings: Settings,
) -> tuple[Path, list[str]]:
    """Build a child of ``parent`` for ``task`` (spec §1.4). Returns it and its mutations;
    the parent is not changed (the loop counts its offspring)."""
    hp = dict(parent.hparams)
    hp["num_classes"] = num_classes
    hp.update(ds)
    if parent.id == state.root.id:
        # the root path has no inserted component; its children start with the config's
        for key in INSERTED_LAYERS.values():
            if key in settings.defaults:
                hp[key] = list(settings.defaults[key])
    # transfer_lowrank: a path started from another task's path trains low-rank deltas as the
    # root's children do, continuing that path's own (a transfer initialisation)
    transfer = settings.transfer_lowrank and parent.task != task and parent.id != state.root.id
    if transfer:
        hp["lowrank_layers"] = sorted(
            set(hp.get("lowrank_layers", ())) | set(settings.defaults.get("lowrank_layers", ()))
        )
    record: list[str] = []
    if mutate:
        hp, rec = mutate_hparams(hp, settings.space, settings.mutation_prob, rng, data=False)
        record += rec
        if settings.mutate_adapters:
            hp, rec = mutate_adapters(hp, settings.mutation_prob, rng)
            record += rec
        if settings.mutate_lowranks:
            hp, rec = mutate_lowranks(hp, settings.mutation_prob, rng)
            record += rec
    for key in INSERTED_LAYERS.values():
        if key in hp:
            hp[key] = sorted(i for i in hp[key] if i < hp["num_layers"])
    path_id = state.new_path_id()
    lineage = [parent] + parent.ancestors()
    components: list[Component] = []
    for name in state.arch.component_names(hp):
        shapes = state.arch.shapes(name, hp)
        found = find_in_ancestry(lineage, name, shapes)
        if found is None and name == POSEMBED:
            found = state.posembed_for(hp["ds_image_size"], ops)
        if found is not None:
            if found.trainable:
                clone, why = True, None
            elif transfer and name.startswith(LOWRANK_PREFIX):
                clone, why = True, "transfer"
            elif not mutate:
                clone, why = False, None
            elif name in settings.force_finetune:
                clone, why = True, "forced"
            else:
                clone = bool(rng.random() < settings.mutation_prob)
                why = "mutation" if clone else None
            if clone:
                comp = state.new_component(
                    name, shapes, (), f"clone:{found.id}", ops.copy(found.params)
                )
                if why:
                    record.append(f"clone {name} ({why})")
                components.append(comp)
            else:
                components.append(found)
            continue
        if name != HEAD and not is_inserted(name):
            raise ValueError(f"no ancestor of path {parent.id} provides component {name!r}")
        seed = derive_seed(settings.seed, "init", path_id, name)
        components.append(
            state.new_component(name, shapes, (), "new", ops.init(name, shapes, seed))
        )
    child = Path(path_id, task, parent, hp, components, generation=parent.generation + 1)
    return child, record


def find_in_ancestry(lineage: Sequence[Path], name: str, shapes: Shapes) -> Component | None:
    """First ancestor component of that name and shape; frozen heads are never inherited, and
    an inserted component of another size (adapter size, rank) is passed over."""
    for anc in lineage:
        c = anc.component(name)
        if c is None:
            continue
        if name == HEAD and not c.trainable:
            continue
        if c.shapes != shapes:
            if name == POSEMBED or is_inserted(name):
                continue
            raise ValueError(
                f"component {name!r} of path {anc.id} has shapes {c.shapes}, expected {shapes}"
            )
        return c
    return None
