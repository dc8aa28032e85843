"""Child assembly (spec §1.4): a child path of a parent for a task, with inherited, cloned,
mutated and new components.

Pure: plain Python over the core's data; tensor work goes through ``ParamOps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from munet.system.arch import (
    HEAD,
    INSERTED_LAYERS,
    LOWRANK_PREFIX,
    POSEMBED,
    Shapes,
    is_inserted,
    numel,
)
from munet.system.component import Component
from munet.system.hparams import mutate_adapters, mutate_hparams, mutate_lowranks
from munet.system.path import Path
from munet.system.rng import derive_seed
from munet.system.state import ParamOps, Settings, SystemState

#: Mutated children drawn per candidate before a child over ``max_private_params`` gives way to
#: the parent's unmutated child.
CAP_DRAWS = 16


@dataclass
class _Entry:
    """One component of a planned child: its name and shapes, the ancestor it comes from (None:
    a new one, or the resized position embeddings) and whether it is cloned, and why."""

    name: str
    shapes: Shapes
    found: Component | None
    clone: bool
    why: str | None


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
    the parent is not changed (the loop counts its offspring).

    With ``settings.max_private_params`` (beyond the paper) a mutated child whose private
    parameters would exceed the task's cap is drawn again from the same random stream, up to
    :data:`CAP_DRAWS` times, then replaced by the parent's unmutated child."""
    hp, record, plan = plan_child(state, parent, task, num_classes, ds, mutate, rng, settings)
    cap = private_cap(state, task, num_classes, ds, settings) if mutate else None
    if cap is not None:
        draws = 1
        while planned_private(plan) > cap and draws < CAP_DRAWS:
            hp, record, plan = plan_child(state, parent, task, num_classes, ds, True, rng, settings)
            draws += 1
        if planned_private(plan) > cap:
            hp, record, plan = plan_child(
                state, parent, task, num_classes, ds, False, rng, settings
            )
            record = [f"unmutated: {CAP_DRAWS} draws over max_private_params {cap:,}", *record]
        elif draws > 1:
            record = [*record, f"drawn {draws}x: max_private_params {cap:,}"]
    return build_child(state, parent, task, hp, plan, ops, settings), record


def plan_child(
    state: SystemState,
    parent: Path,
    task: str,
    num_classes: int,
    ds: Mapping[str, Any],
    mutate: bool,
    rng: np.random.Generator | None,
    settings: Settings,
) -> tuple[dict[str, Any], list[str], list[_Entry]]:
    """A child's hyperparameters, mutation record and components, drawn from ``rng`` but not
    yet made: nothing in ``state`` changes (``rng`` may be None when ``mutate`` is False)."""
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
        assert rng is not None
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
    lineage = [parent] + parent.ancestors()
    plan: list[_Entry] = []
    for name in state.arch.component_names(hp):
        shapes = state.arch.shapes(name, hp)
        found = find_in_ancestry(lineage, name, shapes)
        frozen = found is not None and not found.trainable
        if found is None and name == POSEMBED:
            frozen = True  # the root's, resized (state.posembed_for when the child is made)
        elif found is None:
            if name != HEAD and not is_inserted(name):
                raise ValueError(f"no ancestor of path {parent.id} provides component {name!r}")
            plan.append(_Entry(name, shapes, None, False, None))
            continue
        if not frozen:
            clone, why = True, None
        elif transfer and name.startswith(LOWRANK_PREFIX):
            clone, why = True, "transfer"
        elif not mutate:
            clone, why = False, None
        elif name in settings.force_finetune:
            clone, why = True, "forced"
        else:
            assert rng is not None
            clone = bool(rng.random() < settings.mutation_prob)
            why = "mutation" if clone else None
        if clone and why:
            record.append(f"clone {name} ({why})")
        plan.append(_Entry(name, shapes, found, clone, why))
    return hp, record, plan


def planned_private(plan: Sequence[_Entry]) -> int:
    """Parameters a planned child holds privately: its clones and new components."""
    return sum(numel(e.shapes) for e in plan if e.clone or (e.found is None and e.name != POSEMBED))


def private_cap(
    state: SystemState, task: str, num_classes: int, ds: Mapping[str, Any], settings: Settings
) -> int | None:
    """The task's cap on a mutated child's private parameters (``max_private_params``): None
    (off), a number, or with ``"start"`` the private parameters of the task's mutated child of
    the root under the default hyperparameters with no random change (its inserted deltas,
    forced clones and head: under ``search: extended`` exactly a PEFT LoRA run's private
    parameters at the default rank)."""
    cap = settings.max_private_params
    if cap == "start":
        _, _, plan = plan_child(state, state.root, task, num_classes, ds, False, None, settings)
        forced = sum(
            numel(e.shapes) for e in plan if not e.clone and e.name in settings.force_finetune
        )
        return planned_private(plan) + forced
    return int(cap) if cap else None


def build_child(
    state: SystemState,
    parent: Path,
    task: str,
    hp: dict[str, Any],
    plan: Sequence[_Entry],
    ops: ParamOps,
    settings: Settings,
) -> Path:
    """Make a planned child: a new path id, then its clones and new components in order."""
    path_id = state.new_path_id()
    components: list[Component] = []
    for e in plan:
        found = e.found
        if found is None and e.name == POSEMBED:
            found = state.posembed_for(hp["ds_image_size"], ops)
        if found is None:
            seed = derive_seed(settings.seed, "init", path_id, e.name)
            components.append(
                state.new_component(e.name, e.shapes, (), "new", ops.init(e.name, e.shapes, seed))
            )
        elif e.clone:
            components.append(
                state.new_component(
                    e.name, e.shapes, (), f"clone:{found.id}", ops.copy(found.params)
                )
            )
        else:
            components.append(found)
    return Path(path_id, task, parent, hp, components, generation=parent.generation + 1)


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
