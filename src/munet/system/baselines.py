"""Baselines as configurations of the same engine (spec §7.4).

A baseline method fixes which components a task model trains and does no evolution: every
candidate is a child of the root, built without mutation, with the method's fixed trainable set
and the default hyperparameters. The candidates of a task are *replicas* trained together as one
generation batch; the best by validation score is retained, exactly as muNet retains its best.

Compute is matched to muNet's evolution of a task: muNet trains ``task_iterations ×
candidates_per_iteration`` candidates of ``V`` validation intervals each; a baseline trains
``R`` replicas of ``V × task_iterations × candidates_per_iteration / R`` intervals each, so both
consume the same number of training images (the notebook's "V × task_iters × 64/8"). The config
key ``baseline_budget`` scales the intervals per replica (``bench/quality.py --match flops`` sets
it so that a baseline spends muNet's training FLOPs instead of its images).

Pure: plain Python over the core's data; tensor work goes through ``ParamOps``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from munet.system.arch import (
    ADAPTER_PREFIX,
    BLOCK_PREFIX,
    CLS,
    EMBEDDING,
    ENCODER_NORM,
    HEAD,
    POSEMBED,
    RootArch,
    layer_index,
)
from munet.system.path import Path
from munet.system.policy import MUNET_POLICY, CandidatePolicy
from munet.system.rng import derive_seed
from munet.system.state import ParamOps, Settings, SystemState

MUNET = "munet"
MUNET_NO_AUTOTUNE = "munet-no-autotune"
FINETUNE_ALL = "finetune-all"
FREEZE_BOTTOM = "freeze-bottom"
ADAPTERS = "adapters"

#: The accepted spellings, for error messages and ``--help``.
METHOD_USAGE = "munet, munet-no-autotune, finetune-all, freeze-bottom:N, adapters:D"


@dataclass(frozen=True)
class Method:
    """A parsed ``method`` config value: its kind and its integer argument (N or D)."""

    kind: str
    arg: int | None = None

    @property
    def evolves(self) -> bool:
        """muNet (with or without auto-tuning) evolves; the baselines do not."""
        return self.kind in (MUNET, MUNET_NO_AUTOTUNE)

    @property
    def auto_tune(self) -> bool:
        return self.kind != MUNET_NO_AUTOTUNE

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def parse_method(text: str) -> Method:
    """``munet`` | ``munet-no-autotune`` | ``finetune-all`` | ``freeze-bottom:N`` | ``adapters:D``.

    Raises ValueError with a one-line message naming the bad value and the accepted forms.
    """
    kind, sep, raw = str(text).partition(":")
    if kind in (MUNET, MUNET_NO_AUTOTUNE, FINETUNE_ALL) and not sep:
        return Method(kind)
    if kind in (FREEZE_BOTTOM, ADAPTERS) and sep:
        try:
            arg = int(raw)
        except ValueError:
            arg = -1
        least = 0 if kind == FREEZE_BOTTOM else 1
        if arg >= least and raw.strip() == str(arg):
            return Method(kind, arg)
        what = "a block count >= 0" if kind == FREEZE_BOTTOM else "an adapter size >= 1"
        raise ValueError(f"method={text!r}: {kind}:<n> needs {what}, e.g. {kind}:2")
    raise ValueError(f"method={text!r} is unknown; use one of {METHOD_USAGE}")


def check_method_fits(method: Method, depth: int) -> None:
    """freeze-bottom:N can freeze at most every block of the root."""
    if method.kind == FREEZE_BOTTOM and method.arg is not None and method.arg > depth:
        raise ValueError(
            f"method={method} freezes {method.arg} blocks but the root has {depth}; "
            f"use freeze-bottom:0..{depth}"
        )


def baseline_hparams(method: Method, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The method's architecture on top of default hyperparameters: adapters:D puts an adapter
    of size D before every block; the other baselines have none."""
    hp = dict(hparams)
    if method.kind == ADAPTERS:
        hp["adapter_layers"] = list(range(int(hp["num_layers"])))
        hp["adapter_dim"] = method.arg
    else:
        hp["adapter_layers"] = []
    if "lowrank_layers" in hp:  # search: extended; no baseline has a low-rank delta
        hp["lowrank_layers"] = []
    return hp


def trainable_names(method: Method, names: Sequence[str]) -> list[str]:
    """The components a baseline trains, in path order (spec §7.4).

    finetune-all: every component. freeze-bottom:N: blocks N..L-1, encoder_norm and head.
    adapters:D: every adapter, encoder_norm and head.
    """
    if method.kind == FINETUNE_ALL:
        return list(names)
    if method.kind == FREEZE_BOTTOM:
        assert method.arg is not None
        return [
            n
            for n in names
            if n in (ENCODER_NORM, HEAD)
            or (n.startswith(BLOCK_PREFIX) and (layer_index(n) or 0) >= method.arg)
        ]
    if method.kind == ADAPTERS:
        return [n for n in names if n in (ENCODER_NORM, HEAD) or n.startswith(ADAPTER_PREFIX)]
    raise ValueError(f"method {method} evolves; it has no fixed trainable set")


def assemble_baseline_child(
    state: SystemState,
    task: str,
    num_classes: int,
    ds: Mapping[str, Any],
    method: Method,
    ops: ParamOps,
    settings: Settings,
) -> tuple[Path, list[str]]:
    """A child of the root with the method's fixed trainable set (no mutation).

    Components in the trainable set are clones of the root's (or new, for the head and
    adapters); every other component is the root's frozen object, shared by every task.
    Returns the child and a one-line record of what it trains.
    """
    root = state.root
    hp = baseline_hparams(method, root.hparams)
    hp["num_classes"] = num_classes
    hp.update(ds)
    path_id = state.new_path_id()
    names = state.arch.component_names(hp)
    train = set(trainable_names(method, names))
    components = []
    for name in names:
        shapes = state.arch.shapes(name, hp)
        if name == POSEMBED:
            source = state.posembed_for(int(hp["ds_image_size"]), ops)
        else:
            source = root.component(name)
        if source is None:  # head or adapter: fresh initialisation
            seed = derive_seed(settings.seed, "init", path_id, name)
            comp = state.new_component(name, shapes, (), "new", ops.init(name, shapes, seed))
        elif name in train:
            comp = state.new_component(
                name, shapes, (), f"clone:{source.id}", ops.copy(source.params)
            )
        else:
            comp = source
        components.append(comp)
    child = Path(path_id, task, root, hp, components, generation=1)
    return child, [f"{method} trains {', '.join(n for n in names if n in train)}"]


@dataclass(frozen=True)
class BaselineBudget:
    """Replicas per task and validation intervals per replica, matched to muNet's compute."""

    replicas: int
    validations: int


def scaled_budget(budget: BaselineBudget, scale: float) -> BaselineBudget:
    """``scale`` × the validation intervals of each replica, rounded, at least one."""
    if scale == 1.0:
        return budget
    return replace(budget, validations=max(1, round(budget.validations * scale)))


@dataclass(frozen=True)
class Flops:
    """Forward (+ backward) FLOPs of one image: training it, and evaluating it."""

    train: float
    eval: float


def image_flops(arch: RootArch, hparams: Mapping[str, Any], trainable: Sequence[str]) -> Flops:
    """FLOPs per training image and per evaluated image of a model with the given trainable
    components, by the trainer's rule: the stages below the lowest trainable one run forward
    only; from there on a stage costs forward + backward (3 × forward)."""
    stages = [n for n in arch.component_names(hparams) if n not in (CLS, POSEMBED)]
    flops = [arch.stage_flops(n, hparams) for n in stages]
    names = set(trainable) | ({EMBEDDING} if {CLS, POSEMBED} & set(trainable) else set())
    grad_from = next((i for i, n in enumerate(stages) if n in names), len(stages))
    return Flops(sum(flops[:grad_from]) + 3 * sum(flops[grad_from:]), sum(flops))


def matched_budget(
    task_iterations: int,
    candidates_per_iteration: int,
    generation_batch_size: int,
    validations: int,
    replicas: int = 0,
) -> BaselineBudget:
    """R replicas (trained as one generation batch) of V × (candidates muNet trains) / R
    validation intervals each. R is the largest divisor of muNet's candidate count that fits in
    a generation batch, so the image counts match exactly; ``replicas`` > 0 sets R instead (1: a
    single run of all the images, as a fine-tuning or PEFT user trains), the intervals rounded
    to the nearest, at least one."""
    total = task_iterations * candidates_per_iteration
    if replicas > 0:
        return BaselineBudget(replicas, max(1, round(validations * total / replicas)))
    replicas = math.gcd(total, generation_batch_size)
    return BaselineBudget(replicas, validations * total // replicas)


@dataclass(frozen=True)
class BaselinePolicy:
    """Task iterations that train ``replicas`` fixed children of the root.

    The evolutionary loop runs unchanged: every candidate falls in the seed phase (its parent
    is the root, built without mutation, always accepted), and the best is retained and locked.
    """

    method: Method = Method(FINETUNE_ALL)
    replicas: int = 1

    def seeds(self, state: SystemState, task: str) -> list[Path]:
        state.begin_iteration(task)  # unlocks the task's retained path, if any
        return [state.root] * self.replicas

    def assemble(
        self,
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
        assert parent is state.root and not mutate, "baseline candidates are root children"
        return assemble_baseline_child(state, task, num_classes, ds, self.method, ops, settings)


def baseline_settings(settings: Settings, budget: BaselineBudget) -> Settings:
    """The loop's settings for a baseline: one task iteration of one generation batch, every
    replica trained (no seed screening: the replicas are all the root)."""
    return replace(
        settings,
        task_iterations=1,
        candidates_per_iteration=budget.replicas,
        generation_batch_size=budget.replicas,
        seed_keep=None,
    )


def configure_method(
    method: Method,
    settings: Settings,
    validations: int,
    budget_scale: float = 1.0,
    replicas: int = 0,
) -> tuple[CandidatePolicy, Settings, int]:
    """The candidate policy, loop settings and validations per candidate that run ``method``.

    muNet runs as configured. A baseline runs one task iteration of R replicas, each trained
    for the validations that match muNet's images (:func:`matched_budget`) times
    ``budget_scale`` (the config's ``baseline_budget``); ``replicas`` > 0 sets R (the config's
    ``baseline_replicas``).
    """
    if method.evolves:
        return MUNET_POLICY, settings, validations
    budget = scaled_budget(
        matched_budget(
            settings.task_iterations,
            settings.candidates_per_iteration,
            settings.generation_batch_size,
            validations,
            replicas,
        ),
        budget_scale,
    )
    return (
        BaselinePolicy(method, budget.replicas),
        baseline_settings(settings, budget),
        budget.validations,
    )
