"""The multitask system's state and the pure operations on it (spec §1.3, §1.4, §4).

Everything here is plain Python over plain data. Tensor work (copying, initialising and
resizing parameters) goes through a :class:`ParamOps` object supplied by the torch layer; pure
tests pass one whose methods return ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from munet.system.arch import (
    POSEMBED,
    RootArch,
    Shapes,
)
from munet.system.component import NOT_TRAINABLE, Component
from munet.system.graph import copy_component
from munet.system.noise import HITS_KEY, margin
from munet.system.path import Path
from munet.system.score import accounted_params, path_score, score


class ParamOps(Protocol):
    """Tensor operations the algorithm needs, so that the core never touches a tensor.

    Implementations: :class:`munet.model.ops.TorchOps` (torch tensors) and :class:`NullOps`
    (no tensors, for pure tests). The core treats parameters as opaque values: what a method
    returns becomes a new component's ``params`` as is.

    Called while a child is assembled (``munet.system.assemble``) and when the root state is
    made. An implementation must guarantee:

    - each method returns new parameters and never changes the ones it is given: they
      belong to components that other paths share, some locked by other tasks;
    - the result depends only on the arguments (``init`` on ``seed``, never on global RNG
      state) and has the given ``shapes``.
    """

    def copy(self, params: Any) -> Any:
        """An independent copy of a component's parameters (a clone to fine-tune)."""

    def init(self, name: str, shapes: Shapes, seed: int) -> Any:
        """Fresh parameters of component ``name`` (a head, an adapter or a low-rank delta),
        from ``seed`` only."""

    def resize_posembed(self, params: Any, shapes: Shapes) -> Any:
        """The root's position embeddings resized to ``shapes`` (another image size)."""


class NullOps:
    """ParamOps for pure tests: no tensors."""

    def copy(self, params: Any) -> Any:
        return params

    def init(self, name: str, shapes: Shapes, seed: int) -> Any:
        return None

    def resize_posembed(self, params: Any, shapes: Shapes) -> Any:
        return None


@dataclass
class Settings:
    """The algorithm's knobs (a subset of the user config)."""

    space: dict[str, list[Any]]
    mutation_prob: float = 0.1
    scale_factor: float = 1.0
    force_finetune: tuple[str, ...] = ("encoder_norm",)
    mutate_adapters: bool = True
    #: beyond the paper (``search: extended``): mutations add low-rank deltas to blocks
    mutate_lowranks: bool = False
    seed: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    task_iterations: int = 2
    #: ``round_robin`` (spec) or ``headroom`` (beyond the paper): see ``evolve.next_task``
    task_schedule: str = "round_robin"
    candidates_per_iteration: int = 8
    generation_batch_size: int = 4
    #: seed paths trained per task iteration, chosen by the trainer's ``screen``; None = every
    #: seed path (the spec's seed phase)
    seed_keep: int | None = None
    #: where PPDecay's walk ends when it accepts nothing: ``uniform`` (spec) or ``best``
    parent_fallback: str = "uniform"
    #: seed screening also probes the task's retained path; only seeds that beat it are trained
    screen_incumbent: bool = False
    #: beyond the paper: a path a task starts from another task's path trains private low-rank
    #: deltas on the blocks of ``defaults["lowrank_layers"]`` (copies of that path's own where it
    #: has them); False: it shares them frozen like any inherited component (the spec's reuse)
    transfer_lowrank: bool = False
    #: beyond the paper: a path replaces its parent, or the task's retained path, only when its
    #: score wins with its quality lowered by this many paired standard errors
    #: (``munet.system.noise``); 0 = the spec (any win)
    accept_z: float = 0.0
    #: beyond the paper: a cap on a mutated child's private parameters (``assemble_child``):
    #: None (the spec), a number, or ``"start"`` (the task's start from the root)
    max_private_params: int | str | None = None


class SharedIds(Protocol):
    """Where a copy of the system takes new ids and resized position embeddings from, so that
    they stay unique across copies.

    Implementation: the shared state behind the task agents' views (``munet.execute.agents``),
    set as :attr:`SystemState.shared`; a state without one uses its own counters. Several
    agents call it at once from their threads, so an implementation must be thread-safe and
    must never hand out an id twice.
    """

    def component_id(self) -> int:
        """A new component id, never handed out before; called by
        :meth:`SystemState.new_component`."""

    def path_id(self) -> int:
        """A new path id, never handed out before; called by :meth:`SystemState.new_path_id`."""

    def posembed_for(self, image_size: int, ops: ParamOps) -> Component:
        """The shared state's position embeddings resized to ``image_size`` (made once,
        NOT_TRAINABLE); the caller keeps a copy and must not change it."""


@dataclass
class SystemState:
    """Components, paths and counters of one multitask system.

    ``population[task]`` holds the task's retained best path first, followed during a task
    iteration by every candidate accepted in it. ``posembed_cache`` maps an image size to the
    root's position embeddings resized to it (NOT_TRAINABLE).
    """

    arch: RootArch
    root: Path
    p_ref: int
    population: dict[str, list[Path]] = field(default_factory=dict)
    posembed_cache: dict[int, Component] = field(default_factory=dict)
    iterations_done: dict[str, int] = field(default_factory=dict)
    next_component_id: int = 0
    next_path_id: int = 0
    #: None: ids and resized position embeddings come from this state's own counters and
    #: cache; else from the shared state (never snapshotted)
    shared: SharedIds | None = field(default=None, repr=False, compare=False)

    # ---- creation -------------------------------------------------------------------------
    def new_component(
        self, name: str, shapes: Shapes, locks: Iterable[str], origin: str, params: Any
    ) -> Component:
        if self.shared is not None:
            cid = self.shared.component_id()
        else:
            cid = self.next_component_id
            self.next_component_id += 1
        return Component(cid, name, dict(shapes), set(locks), origin, params)

    def new_path_id(self) -> int:
        if self.shared is not None:
            return self.shared.path_id()
        self.next_path_id += 1
        return self.next_path_id - 1

    # ---- queries --------------------------------------------------------------------------
    def retained(self, task: str) -> Path | None:
        paths = self.population.get(task)
        return paths[0] if paths else None

    def live_paths(self) -> list[Path]:
        """The root and every task's retained path."""
        return [self.root] + [p for t in self.population if (p := self.retained(t)) is not None]

    def all_paths(self) -> list[Path]:
        return [self.root] + [p for paths in self.population.values() for p in paths]

    def live_components(self) -> dict[int, Component]:
        comps = {c.id: c for p in self.all_paths() for c in p.components}
        comps.update({c.id: c for c in self.posembed_cache.values()})
        return comps

    def score(self, path: Path, settings: Settings) -> float:
        return path_score(path, self.p_ref, settings.scale_factor)

    def ranked(self, task: str, settings: Settings) -> list[Path]:
        """The task's paths sorted by current score, high to low (stable on ties)."""
        return sorted(self.population.get(task, []), key=lambda p: -self.score(p, settings))

    # ---- task iteration -------------------------------------------------------------------
    def begin_iteration(self, task: str) -> list[Path]:
        """Unlock the task's retained components and return the seed paths (spec §4.2)."""
        best = self.retained(task)
        if best is not None:
            for c in best.components:
                c.locks.discard(task)
        seeds = [
            p for t, paths in self.population.items() if t != task and paths for p in paths[:1]
        ]
        return sorted(seeds + [self.root], key=lambda p: -p.id)

    def accept(self, path: Path) -> None:
        self.population.setdefault(path.task, []).append(path)

    def end_iteration(self, task: str, settings: Settings) -> Path:
        """Keep only the best-scoring path, lock its components, relink parents (spec §4.3).

        With ``settings.accept_z`` and a path retained by an earlier iteration (the first of
        the population), only paths that beat that one beyond noise (their quality lowered by
        ``accept_z`` paired standard errors, as in ``_judge``) may replace it."""
        paths = self.population[task]
        rivals = paths
        if settings.accept_z > 0.0 and self.iterations_done.get(task, 0) > 0:
            held = paths[0]
            held_score = self.score(held, settings)
            hits = held.metrics.get(HITS_KEY)
            rivals = [held] + [
                p
                for p in paths[1:]
                if self.lowered_score(
                    p, margin(p.metrics.get(HITS_KEY), hits, settings.accept_z), settings
                )
                > held_score
            ]
        best = rivals[0]
        best_score = self.score(best, settings)
        for p in rivals[1:]:
            s = self.score(p, settings)
            if s > best_score:
                best, best_score = p, s
        for c in best.components:
            c.locks.add(task)
        self.population[task] = [best]
        self.iterations_done[task] = self.iterations_done.get(task, 0) + 1
        self.relink()
        return best

    def lowered_score(self, path: Path, give: float, settings: Settings) -> float:
        """The path's current score with ``give`` taken off its validation quality
        (``accept_z``); ``give = 0`` is :meth:`score`."""
        return score(
            path.metrics["quality"] - give,
            accounted_params(path),
            self.p_ref,
            settings.scale_factor,
        )

    def relink(self) -> None:
        """Point every live path's parent to its nearest live ancestor (the root at worst)."""
        live = {id(p) for p in self.live_paths()}
        for p in self.live_paths():
            if p is self.root:
                continue
            q = p.parent
            while q is not None and id(q) not in live:
                q = q.parent
            p.parent = q if q is not None else self.root

    # ---- child assembly -------------------------------------------------------------------
    def posembed_for(self, image_size: int, ops: ParamOps) -> Component:
        """The root's position embeddings resized to ``image_size`` (cached, NOT_TRAINABLE)."""
        if image_size not in self.posembed_cache and self.shared is not None:
            self.posembed_cache[image_size] = copy_component(
                self.shared.posembed_for(image_size, ops)
            )
        if image_size not in self.posembed_cache:
            hp = {"ds_image_size": image_size}
            shapes = self.arch.shapes(POSEMBED, hp)
            source = self.posembed_cache[self.arch.image_size]
            params = ops.resize_posembed(source.params, shapes)
            self.posembed_cache[image_size] = self.new_component(
                POSEMBED, shapes, {NOT_TRAINABLE}, f"resized:{image_size}", params
            )
        return self.posembed_cache[image_size]


def make_root_state(
    arch: RootArch,
    root_params: Mapping[str, Any],
    default_hparams: Mapping[str, Any],
    ops: ParamOps,
) -> SystemState:
    """A new system holding only the root path (pseudo-task NOT_TRAINABLE, all frozen).

    ``root_params`` maps component names (embedding, cls, posembed_input at the root's native
    image size, encoderblock_i, encoder_norm) to parameters. The root path uses the position
    embeddings resized to the default image size.
    """
    hp = dict(default_hparams)
    hp["num_layers"] = arch.depth
    hp["adapter_layers"] = []
    if "lowrank_layers" in hp:  # search: extended
        hp["lowrank_layers"] = []
    hp.setdefault("num_classes", 0)
    root = Path(0, NOT_TRAINABLE, None, hp, [])
    state = SystemState(arch=arch, root=root, p_ref=arch.reference_params(), next_path_id=1)
    native = {"ds_image_size": arch.image_size}
    state.posembed_cache[arch.image_size] = state.new_component(
        POSEMBED, arch.shapes(POSEMBED, native), {NOT_TRAINABLE}, "root", root_params[POSEMBED]
    )
    for name in arch.component_names(hp)[:-1]:  # no head: heads are never shared
        if name == POSEMBED:
            root.components.append(state.posembed_for(hp["ds_image_size"], ops))
            continue
        shapes = arch.shapes(name, hp)
        root.components.append(
            state.new_component(name, shapes, {NOT_TRAINABLE}, "root", root_params[name])
        )
    return state
