"""The user configuration: one dataclass, YAML load/save, ``key=value`` overrides, validation.

Every mistake raises :class:`munet.errors.ConfigError` with one line naming the key, the bad
value and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from munet.data.catalog import DEFAULT_TASKS
from munet.errors import ConfigError
from munet.system.baselines import parse_method
from munet.system.evolve import SCHEDULES
from munet.system.hparams import (
    AUGMENT_DEFAULTS,
    BASE_DEFAULTS,
    BASE_SEARCH_SPACE,
    EXTENDED_DEFAULTS,
    EXTENDED_SEARCH_SPACE,
    EXTENDED_STARTS,
    SEARCHES,
    index_of,
)
from munet.system.hparams import default_hparams as starting_hparams
from munet.system.select import FALLBACKS

#: Where and how a run executes, not what the system is: never taken from a stored config.
EXECUTION_KEYS = ("executor", "ray_address", "workers", "gpus_per_worker", "async_tasks")

#: Keys whose change would make stored results inconsistent (refused on resume).
FROZEN_KEYS = (
    "root",
    "seed",
    "batch_size",
    "validations_per_candidate",
    "validation_interval_cap",
    "validation_batches",
    "hparams",
    "search_space",
    "auto_tune",
    "mutation_prob",
    "scale_factor",
    "mutate_adapters",
    "force_finetune",
    "generation_batch_size",
    "method",
    "baseline_budget",
    "baseline_replicas",
    "augment_defaults",
    "seed_phase",
    "seed_keep",
    "parent_fallback",
    "screen_incumbent",
    "transfer_lowrank",
    "min_patches",
    "head_init",
    "search",
    "extended_start",
    "score_split",
    "race_validations",
    "accept_z",
    "max_private_params",
)

#: Keys added after systems were first stored, with the value that reproduces such a system's
#: earlier behaviour; a stored config without the key is read as having this value.
LEGACY_VALUES: dict[str, Any] = {
    "augment_defaults": "spec",
    "seed_phase": "all",
    "parent_fallback": "uniform",
    "screen_incumbent": False,
    "transfer_lowrank": False,
    "min_patches": 1,
    "head_init": "zeros",
    "baseline_budget": 1.0,
    "baseline_replicas": 0,
    "search": "paper",
    "extended_start": "head",
    "score_split": "subset",
    "race_validations": 0,
    "task_schedule": "round_robin",
    "accept_z": 0.0,
    "max_private_params": 0,
}


def with_legacy(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config completed with :data:`LEGACY_VALUES` for keys it predates."""
    return {**LEGACY_VALUES, **stored}


def _key(default: Any, help: str) -> Any:
    """A config field with its one-line ``help`` (shown by ``munet config --explain``); a list or
    dict default is copied for each Config."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class Config:
    """Everything a run depends on. ``munet config --explain`` shows each key's help (the
    ``help`` metadata of its field), default and whether a resume may change it."""

    root: str = _key(
        "builtin:vit_ti3", "root model spec: builtin:<name> | timm:<model>[.<tag>] | file:<weights>"
    )
    root_weights: str | None = _key(None, "weights file of a timm: root (not frozen: it may move)")
    tasks: list[str] = _key(
        DEFAULT_TASKS,
        "task specs, evolved round-robin in this order (see munet tasks); a resume keeps the "
        "stored ones first and may add more",
    )
    seed: int = _key(
        0, "system seed; every random choice derives from (seed, task, task iteration, candidate)"
    )
    method: str = _key(
        "munet", "munet | munet-no-autotune | finetune-all | freeze-bottom:N | adapters:D"
    )
    baseline_budget: float = _key(
        1.0,
        "a baseline trains this multiple of the images muNet's budget trains (1 = the spec's "
        "match; bench/quality.py --match flops sets it to match FLOPs)",
    )
    baseline_replicas: int = _key(
        0,
        "replicas a baseline trains, sharing its images: 0 = the largest divisor of muNet's "
        "candidate count that fits a generation batch | N (1 = one run of all the images)",
    )
    task_iterations: int = _key(2, "task iterations per task (round-robin)")
    task_schedule: str = _key(
        "round_robin",
        "round_robin: every task gets task_iterations (the spec) | headroom: the same total, "
        "every task at least one, the rest each to the task with the most validation error per "
        "iteration it had",
    )
    candidates_per_iteration: int = _key(3, "candidates trained per task iteration")
    generation_batch_size: int = _key(3, "candidates trained together on the same batches")
    scale_factor: float = _key(
        1.0, "s in score = quality × s^(params/P_ref); 1.0 = no size pressure"
    )
    mutation_prob: float = _key(0.1, "probability of each mutation decision (paper: fixed 0.1)")
    auto_tune: bool = _key(
        True, "mutate optimizer/data/adapter hyperparameters (else num_layers only)"
    )
    mutate_adapters: bool = _key(True, "residual-adapter insertion")
    search: str = _key(
        "extended",
        "paper: the spec's search space | extended: also low-rank components and AdamW "
        "(beyond the paper)",
    )
    extended_start: str = _key(
        "lowrank",
        "search=extended: lowrank: a task's path from the root starts with a low-rank delta on "
        "every block and AdamW (PEFT's LoRA recipe) | head: head only, SGD (the paper's start)",
    )
    force_finetune: list[str] = _key(
        ["encoder_norm"], "components always cloned in mutated children"
    )
    batch_size: int = _key(64, "training batch (paper: 512 for characters)")
    validations_per_candidate: int = _key(8, "V: validations per candidate (paper: 5)")
    validation_interval_cap: int = _key(40, "cap on the validation interval I, in batches")
    validation_batches: int = _key(10, "validation subset = batch_size × this")
    score_split: str = _key(
        "full",
        "full: a candidate's best snapshot (picked on the validation subset) is scored on the "
        "whole validation split | subset: the spec (its best subset validation)",
    )
    race_validations: int = _key(
        0,
        "0: every candidate of a generation batch trains V validation intervals (the spec) | R "
        "(1 <= R < V): each trains R, then only the best so far trains on for the intervals "
        "the others leave unused (R >= V: no race)",
    )
    accept_z: float = _key(
        0.0,
        "0: a child replaces its parent when its score is higher (the spec) | z > 0: only when "
        "it is still higher with its validation quality lowered by z paired standard errors "
        "(sqrt(disagreements) / examples; needs score_split=full); the same for replacing a "
        "task's retained path",
    )
    max_private_params: int | str = _key(
        0,
        "0: no cap (the spec) | N: a mutated child holding more than N private parameters "
        "(clones, adapters, low-rank deltas, head) is drawn again | start: N is the task's "
        "start from the root (search=extended: a LoRA run's private parameters)",
    )
    hparams: dict[str, Any] = _key(
        {}, "default hyperparameters, e.g. {opt_lr: 0.02} (each must be in its candidate list)"
    )
    augment_defaults: str = _key(
        "safe", "safe: start without flip or crop | spec: the spec's defaults"
    )
    seed_phase: str = _key(
        "screen", "screen: linear-probe the seed paths, train the best | all: spec"
    )
    seed_keep: int = _key(1, "seed_phase=screen: seed paths trained per task iteration")
    parent_fallback: str = _key(
        "uniform",
        "where a parent walk that accepts nothing ends: uniform (the spec: any seed or task "
        "path) | best (the task's best path)",
    )
    screen_incumbent: bool = _key(
        False,
        "seed_phase=screen: the task's retained path is probed too, and only seed paths whose "
        "probe beats it are trained (from its second iteration on, possibly none)",
    )
    transfer_lowrank: bool = _key(
        False,
        "search=extended: a path a task starts from another task's path trains private low-rank "
        "deltas on extended_start's blocks, copies of that path's own where it has them | false: "
        "it shares them frozen (the spec's reuse: a seed child trains its head only)",
    )
    min_patches: int = _key(2, "image sizes leaving the root fewer patches per side are invalid")
    head_init: str = _key(
        "zeros",
        "zeros: the spec | probe: a new head starts as a ridge probe on its frozen features",
    )
    search_space: dict[str, list[Any]] = _key(
        {}, "candidate-list overrides, e.g. {opt_lr: [0.005, 0.01, 0.02]}"
    )
    device: str = _key("auto", "auto (CUDA when visible) | cpu | cuda | cuda:N")
    threads: int = _key(0, "torch CPU threads; 0 = auto (torch's default: one per core)")
    executor: str = _key("local", "local (in this process) | ray (parallel workers)")
    ray_address: str | None = _key(None, "Ray cluster to join, e.g. auto; None = start a local one")
    workers: int = _key(0, "ray workers; 0 = one per CPU (or per GPU share) of the cluster")
    gpus_per_worker: float = _key(0.0, "ray: GPU share of each worker (e.g. 0.5); 0 = CPU workers")
    async_tasks: bool = _key(
        False, "ray: evolve several tasks at once (not reproducible bit for bit)"
    )

    # ---- derived ---------------------------------------------------------------------------
    def default_hparams(self, depth: int | None = None) -> dict[str, Any]:
        """Starting hyperparameters: the spec's, with :attr:`augment_defaults`, the extended
        search's and :attr:`extended_start`'s, then the user's ``hparams``. ``depth`` (the
        root's blocks) resolves ``extended_start=lowrank``'s blocks: every one."""
        # a baseline (finetune-all, freeze-bottom, adapters) keeps the paper's start: SGD, its
        # fine-tuning recipe; the LoRA recipe is muNet's starting point, not theirs
        start = self.extended_start if parse_method(self.method).evolves else "head"
        hp = starting_hparams(self.augment_defaults, self.search, start, depth)
        hp.update(self.hparams)
        return hp

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- validation ------------------------------------------------------------------------
    def validate(self) -> Config:
        """Check every value; returns self so calls chain."""
        _positive(
            self,
            "task_iterations",
            "candidates_per_iteration",
            "generation_batch_size",
            "batch_size",
            "validations_per_candidate",
            "validation_interval_cap",
            "validation_batches",
            "seed_keep",
            "min_patches",
        )
        if self.seed_phase not in ("screen", "all"):
            raise ConfigError(
                f"seed_phase={self.seed_phase!r} is unknown; use screen (rank seed paths by a "
                "linear probe, train the best seed_keep) or all (the spec: train every seed)"
            )
        if self.task_schedule not in SCHEDULES:
            raise ConfigError(
                f"task_schedule={self.task_schedule!r} is unknown; use round_robin (the spec: "
                "task_iterations each) or headroom (the same total, more to the tasks with more "
                "validation error)"
            )
        if self.parent_fallback not in FALLBACKS:
            raise ConfigError(
                f"parent_fallback={self.parent_fallback!r} is unknown; use uniform (the spec: a "
                "random seed or task path) or best (the task's best path)"
            )
        if self.score_split not in ("full", "subset"):
            raise ConfigError(
                f"score_split={self.score_split!r} is unknown; use full (score the best snapshot "
                "on the whole validation split) or subset (the spec)"
            )
        if self.race_validations < 0:
            raise ConfigError(
                f"race_validations={self.race_validations} is out of range; use 0 (no race) or "
                "R >= 1 (a race at R validation intervals, when R < validations_per_candidate)"
            )
        if not (math.isfinite(self.accept_z) and self.accept_z >= 0.0):
            raise ConfigError(
                f"accept_z={self.accept_z} is out of range; use 0 (the spec) or z > 0 (e.g. 1: "
                "a child must win by one paired standard error)"
            )
        if self.accept_z > 0.0 and self.score_split != "full":
            raise ConfigError(
                f"accept_z={self.accept_z} compares paths example by example on the whole "
                "validation split; set score_split=full or accept_z=0"
            )
        cap = self.max_private_params
        if cap != "start" and (isinstance(cap, (str, bool)) or cap < 0):
            raise ConfigError(
                f"max_private_params={cap!r} is not a cap; use 0 (none, the spec), a number of "
                "parameters N > 0, or start (the task's start from the root)"
            )
        if self.head_init not in ("probe", "zeros"):
            raise ConfigError(
                f"head_init={self.head_init!r} is unknown; use probe (a new head starts as a "
                "linear probe on its frozen features) or zeros (the spec)"
            )
        if not 0.0 < self.scale_factor <= 1.0:
            raise ConfigError(f"scale_factor={self.scale_factor} is out of range; use 0 < s <= 1")
        if self.baseline_replicas < 0:
            raise ConfigError(
                f"baseline_replicas={self.baseline_replicas} must be >= 0 (0 = as many as fit a "
                "generation batch, 1 = one run)"
            )
        if not self.baseline_budget > 0.0:
            raise ConfigError(
                f"baseline_budget={self.baseline_budget} must be > 0 (1 = muNet's images)"
            )
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"mutation_prob={self.mutation_prob} is out of range; use 0..1")
        if self.search not in SEARCHES:
            raise ConfigError(
                f"search={self.search!r} is unknown; use paper (the spec's search space) or "
                "extended (also low-rank components and AdamW)"
            )
        if self.extended_start not in EXTENDED_STARTS:
            raise ConfigError(
                f"extended_start={self.extended_start!r} is unknown; use lowrank (low-rank "
                "deltas on every block and AdamW) or head (head only, SGD)"
            )
        if self.augment_defaults not in AUGMENT_DEFAULTS:
            raise ConfigError(
                f"augment_defaults={self.augment_defaults!r} is unknown; use safe (no flip or "
                "crop to start) or spec (the paper's flip and 5 % crop)"
            )
        if self.threads < 0:
            raise ConfigError(f"threads={self.threads} must be >= 0 (0 = torch's default)")
        self._validate_executor()
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device={self.device!r} is unknown; use auto, cpu or cuda")
        try:
            method = parse_method(self.method)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if self.async_tasks and not method.evolves:
            raise ConfigError(
                f"method={self.method} is a baseline and runs only in the ordinary loop; "
                "set async_tasks=false"
            )
        if self.async_tasks and self.task_schedule != "round_robin":
            raise ConfigError(
                f"task_schedule={self.task_schedule} picks each next task from the others' "
                "finished iterations, so tasks cannot evolve at once; set async_tasks=false or "
                "task_schedule=round_robin"
            )
        if not self.tasks:
            raise ConfigError("tasks is empty; give at least one task, e.g. tasks=builtin:digits")
        for task in self.tasks:
            if not isinstance(task, str) or not task.strip():
                raise ConfigError(
                    f"tasks entry {task!r} is not a task spec; use e.g. builtin:digits"
                )
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks lists a task twice: {self.tasks}; list each task once")
        self._validate_bounds()
        self._validate_hparams()
        self._validate_force_finetune()
        return self

    def _validate_bounds(self) -> None:
        """Upper bounds: a value past them is a typo that would run for hours or exhaust memory."""
        for name, top in UPPER_BOUNDS.items():
            if getattr(self, name) > top:
                raise ConfigError(f"{name}={getattr(self, name)} is too large; use at most {top:,}")
        most = max_threads()
        if not isinstance(self.threads, int) or not 0 <= self.threads <= most:
            raise ConfigError(
                f"threads={self.threads!r} is out of range; use 0 (auto) to {most} "
                f"(4 per CPU core of this machine)"
            )
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ConfigError(
                f"seed={self.seed!r} is out of range; use an integer 0 <= seed < 2**63"
            )

    def _validate_hparams(self) -> None:
        """Each override has the right type and range, and every starting value (after overrides)
        is in its (overridden) candidate list: mutation steps along that list."""
        known = {**BASE_SEARCH_SPACE, **EXTENDED_SEARCH_SPACE}
        known.update(num_layers=[], ds_image_size=[])
        for key, values in self.search_space.items():
            if key not in known:
                raise ConfigError(
                    f"search_space.{key} is not a hyperparameter; known: {', '.join(sorted(known))}"
                )
            self._check_search("search_space", key)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"search_space.{key}={values!r} must be a non-empty list")
            for value in values:
                _check_hparam(f"search_space.{key}", key, value)
        for key, value in self.hparams.items():
            if key not in BASE_DEFAULTS and key not in EXTENDED_DEFAULTS:
                raise ConfigError(
                    f"hparams.{key} is not a hyperparameter; known: "
                    f"{', '.join(sorted({**BASE_DEFAULTS, **EXTENDED_DEFAULTS}))}"
                )
            self._check_search("hparams", key)
            _check_hparam(f"hparams.{key}", key, value)
        defaults = self.default_hparams()
        extended = EXTENDED_SEARCH_SPACE if self.search == "extended" else {}
        for key, space in {**BASE_SEARCH_SPACE, **extended, **self.search_space}.items():
            # the default image size is fitted to the root's patch first (validate_for_root)
            if key in defaults and (key != "ds_image_size" or key in self.hparams):
                _check_in_list(key, defaults[key], space, key in self.hparams)

    def _check_search(self, where: str, key: str) -> None:
        """The paper's search space has no hyperparameter of the extended one."""
        if self.search == "paper" and key in EXTENDED_DEFAULTS:
            raise ConfigError(
                f"{where}.{key} belongs to the extended search space (beyond the paper); set "
                f"search=extended or remove {where}.{key}"
            )

    def _validate_force_finetune(self) -> None:
        if not isinstance(self.force_finetune, list):
            raise ConfigError(f"force_finetune={self.force_finetune!r} must be a list of names")
        for name in self.force_finetune:
            if not isinstance(name, str) or not _is_component_name(name):
                raise ConfigError(
                    f"force_finetune entry {name!r} is not a component name; use "
                    f"{', '.join(FIXED_COMPONENTS)}, encoderblock_<i>, residual_adapter_<i> "
                    "or lowrank_<i>"
                )

    def validate_for_root(self, arch: Any, device: str = "cpu") -> None:
        """Checks that need the root's dimensions (``arch``: a ``RootArch``); call it after
        the root is loaded and before anything is written."""
        from munet.system.hparams import image_sizes_for

        depth, patch = arch.depth, arch.patch_size
        sizes = image_sizes_for(patch, min_patches=self.min_patches)
        if not sizes or sizes[0] > IMAGE_SIZE_RANGE[1]:
            raise ConfigError(
                f"min_patches={self.min_patches} leaves no image size <= "
                f"{IMAGE_SIZE_RANGE[1]} for a root of patch {patch}; lower min_patches"
            )
        layers = self.search_space.get("num_layers")
        if layers is not None:
            for n in layers:
                if not 1 <= n <= depth:
                    raise ConfigError(
                        f"search_space.num_layers value {n} is out of range for a root of "
                        f"{depth} blocks; use values in 1..{depth}"
                    )
            _check_in_list("num_layers", depth, layers, False)
        image = self.search_space.get("ds_image_size")
        if image is not None:
            for size in image:
                if size % patch or size < patch * self.min_patches:
                    raise ConfigError(
                        f"search_space.ds_image_size value {size} is not a multiple of the "
                        f"root's patch {patch} with >= {self.min_patches} patches per side; "
                        f"use values from {sizes[:6]}"
                    )
            size = self.default_hparams()["ds_image_size"]
            _check_in_list("ds_image_size", size, image, "ds_image_size" in self.hparams)
        for name in self.force_finetune:
            index = _layer_index(name)
            if index is not None and index >= depth:
                raise ConfigError(
                    f"force_finetune entry {name!r} names block {index} but the root has "
                    f"{depth} blocks (0..{depth - 1}); fix the index"
                )
        for key in ("adapter_layers", "lowrank_layers"):
            for index in self.default_hparams().get(key, []):
                if index >= depth:
                    raise ConfigError(
                        f"hparams.{key} entry {index} is out of range for a root of "
                        f"{depth} blocks; use 0..{depth - 1}"
                    )
        self._validate_memory(arch, device)

    def _validate_memory(self, arch: Any, device: str) -> None:
        """Refuse a start whose candidate's estimated peak memory exceeds the device's. Checked
        at the starting image size (larger sizes are reached only by mutation, one step at a
        time, and may never be)."""
        size = self.default_hparams()["ds_image_size"]
        need = peak_memory_estimate(
            arch, size, self.batch_size, self.validation_batches, self._adapter_dim_max()
        )
        limit, what = memory_limit(device)
        if limit is not None and need > limit:
            raise ConfigError(
                f"a candidate at image size {size} with batch_size={self.batch_size} and "
                f"validation_batches={self.validation_batches} needs about {_size(need)}, "
                f"more than the {_size(limit)} of {what}; lower batch_size, "
                "validation_batches or hparams.ds_image_size"
            )

    def _adapter_dim_max(self) -> int:
        dims = self.search_space.get("adapter_dim", BASE_SEARCH_SPACE["adapter_dim"])
        return max([int(self.default_hparams()["adapter_dim"]), *dims])

    def _validate_executor(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"executor={self.executor!r} is unknown; use local or ray")
        if self.ray_address is not None and not isinstance(self.ray_address, str):
            raise ConfigError(f"ray_address={self.ray_address!r} must be a string, e.g. auto")
        if self.workers < 0:
            raise ConfigError(f"workers={self.workers} must be >= 0 (0 = one per CPU or GPU)")
        g = self.gpus_per_worker
        if g < 0 or (g > 1 and g != int(g)):
            raise ConfigError(
                f"gpus_per_worker={g:g} is invalid; use 0 (CPU), a fraction up to 1, or a whole "
                "number"
            )
        gpu = self.device.startswith("cuda")
        if self.executor == "ray" and ((self.device == "cpu" and g > 0) or (gpu and g == 0)):
            raise ConfigError(
                f"device={self.device} but gpus_per_worker={g:g}; with executor=ray the "
                "workers' device follows --gpus-per-worker (0 = CPU), so leave device=auto"
            )
        if self.executor == "local":
            for key, bad in (
                ("ray_address", self.ray_address is not None),
                ("workers", self.workers > 1),
                ("gpus_per_worker", g > 0),
                ("async_tasks", self.async_tasks),
            ):
                if bad:
                    raise ConfigError(
                        f"{key}={getattr(self, key)!r} needs executor=ray (the local executor "
                        "trains one candidate at a time in this process); add --executor ray"
                    )


def resume_rule(key: str) -> str:
    """Whether a resumed run may change ``key`` (from :data:`FROZEN_KEYS` and
    :data:`EXECUTION_KEYS`)."""
    if key in FROZEN_KEYS:
        return "frozen (fixed when the system is created; a resume refuses a change)"
    if key in EXECUTION_KEYS:
        return "per run (never taken from the stored config)"
    return "may change on resume"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def explain(cfg: Config) -> str:
    """``cfg`` as YAML with each key's help, default and :func:`resume_rule` in comments above
    it (``munet config --explain``); still a valid config file."""
    lines = []
    defaults = Config()
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        if lines:
            lines.append("")
        lines.append(f"# {f.metadata.get('help', '(no help)')}")
        lines.append(f"# default {_flow(getattr(defaults, f.name))}; {resume_rule(f.name)}")
        lines.append(yaml.safe_dump({f.name: value}, sort_keys=False, allow_unicode=True).rstrip())
    return "\n".join(lines) + "\n"


#: Largest sane value of a count; beyond it a run would take hours per step or exhaust memory.
UPPER_BOUNDS = {
    "batch_size": 4096,
    "generation_batch_size": 256,
    "validations_per_candidate": 1000,
    "validation_interval_cap": 1_000_000,
    "validation_batches": 10_000,
    "seed_keep": 10_000,
    "min_patches": 24,
}

#: The spec's image sizes (§3): 16 to 384 pixels.
IMAGE_SIZE_RANGE = (16, 384)

#: Component names without a block index (``munet.system.arch``).
FIXED_COMPONENTS = ("embedding", "cls", "posembed_input", "encoder_norm", "head")
INDEXED_COMPONENTS = ("encoderblock_", "residual_adapter_", "lowrank_")


def max_threads() -> int:
    """Largest accepted ``threads``: 4 per CPU core of this machine."""
    return 4 * max(1, os.cpu_count() or 1)


def _layer_index(name: str) -> int | None:
    for prefix in INDEXED_COMPONENTS:
        if name.startswith(prefix):
            return int(name[len(prefix) :])
    return None


def _is_component_name(name: str) -> bool:
    if name in FIXED_COMPONENTS:
        return True
    return any(
        name.startswith(p) and name[len(p) :].isdigit() and name[len(p) :].isascii()
        for p in INDEXED_COMPONENTS
    )


def _number(lo: float, hi: float, low_open: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (lo < v if low_open else lo <= v) and v <= hi

    return ok, f"a number in {'(' if low_open else '['}{lo:g}, {hi:g}]"


def _integer(lo: int, hi: int) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    return ok, f"an integer in {lo}..{hi}"


_BOOL = (lambda v: isinstance(v, bool), "true or false")

_LAYERS = (
    lambda v: (
        isinstance(v, list)
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 10_000 for i in v)
        and len(set(v)) == len(v)
    ),
    "a list of distinct block indices (integers >= 0)",
)

#: What each hyperparameter's value may be: a check and its one-line description.
HPARAM_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "opt_lr": _number(0, 10, low_open=True),
    "opt_lr_schedule": (
        lambda v: v in ("constant", "cosine", "restarts") and isinstance(v, str),
        "one of constant, cosine, restarts",
    ),
    "opt_lr_warmup_ratio": _number(0, 1),
    "opt_momentum": (
        lambda v: v is None or _number(0, 1)[0](v) and v < 1,
        "null (no momentum) or a number in [0, 1)",
    ),
    "opt_nesterov": _BOOL,
    "adapter_dim": _integer(1, 4096),
    "adapter_layers": _LAYERS,
    "opt_name": (lambda v: v in ("sgd", "adamw") and isinstance(v, str), "sgd or adamw"),
    "opt_adamw_lr": _number(0, 1, low_open=True),
    "opt_weight_decay": _number(0, 1),
    "lowrank_rank": _integer(1, 4096),
    "lowrank_layers": _LAYERS,
    "num_layers": _integer(1, 10_000),
    "ds_image_size": _integer(*IMAGE_SIZE_RANGE),
    "ds_area_range_min": _number(0, 1, low_open=True),
    "ds_aspect_ratio_range_min": _number(0, 1, low_open=True),
    "ds_flip_left_right": _BOOL,
    "ds_brightness_delta": _number(0, 1),
    "ds_contrast_delta": _number(0, 1),
    "ds_saturation_delta": _number(0, 1),
    "ds_hue_delta": _number(0, 0.5),
}


def _check_hparam(where: str, key: str, value: Any) -> None:
    ok, what = HPARAM_VALUES[key]
    if not ok(value):
        raise ConfigError(f"{where}={value!r} is invalid; {key} must be {what}")


def _check_in_list(key: str, value: Any, space: list[Any], set_by_user: bool) -> None:
    try:
        index_of(space, value)
    except ValueError:
        origin = "" if set_by_user else " (the default)"
        raise ConfigError(
            f"hparams.{key}={value!r}{origin} is not in its candidate list {space}; add it to "
            f"search_space.{key} or set hparams.{key} to one of those"
        ) from None


def peak_memory_estimate(
    arch: Any, image_size: int, batch_size: int, validation_batches: int, adapter_dim: int = 0
) -> int:
    """Bytes one candidate needs at its peak, roughly: the activations a training step keeps for
    the backward pass (per block: ~12 vectors of the width, 2 of the MLP's, 2 of an adapter's,
    one attention map per head), the augmented batch (a few float copies) and the validation
    subset, all float32."""
    tokens = (image_size // arch.patch_size) ** 2 + 1
    width, hidden, heads = arch.embed_dim, arch.mlp_hidden_dim, arch.num_heads
    per_block = tokens * (12 * width + 2 * hidden + 2 * adapter_dim) + heads * tokens**2
    activations = batch_size * arch.depth * per_block
    pixels = 3 * image_size**2
    batch = 4 * batch_size * pixels
    validation = batch_size * validation_batches * pixels
    return 4 * (activations + batch + validation)


def _size(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{max(1, round(n / 2**20))} MiB"


def memory_limit(device: str) -> tuple[int | None, str]:
    """Memory available to a candidate on ``device`` and its name (None when unknown)."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        return torch.cuda.get_device_properties(index).total_memory, f"GPU memory on {device}"
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM on this machine"
    except (ValueError, OSError):
        return None, "RAM"


def _positive(cfg: Config, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer")


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(key: str, value: Any) -> Any:
    """Check a top-level value's type against the dataclass field (YAML gives plain types)."""
    f = FIELDS[key]
    kind = f.type if isinstance(f.type, str) else str(f.type)
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"{key}={value!r} must be an integer")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} must be a number")
        return float(value)
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    if kind == "int | str" and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise ConfigError(f"{key}={value!r} must be an integer or a word")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be a string")
    if kind == "str | None" and value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be a string or null")
    if kind.startswith("list") and key == "tasks" and isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if kind.startswith("list") and not isinstance(value, list):
        raise ConfigError(f"{key}={value!r} must be a list")
    if kind.startswith("dict") and not isinstance(value, dict):
        raise ConfigError(f"{key}={value!r} must be a mapping")
    return value


def apply(cfg: Config, values: dict[str, Any], source: str) -> Config:
    """Set fields from a mapping; unknown keys are errors naming ``source``."""
    for key, value in values.items():
        if key not in FIELDS:
            raise ConfigError(
                f"unknown config key {key!r} in {source}; known keys: {', '.join(FIELDS)}"
            )
        setattr(cfg, key, _coerce(key, value))
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; check the path given to --config")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = "is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "cannot be read"
        raise ConfigError(f"config file {p} {why} ({err}); save it as UTF-8 YAML") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(
            f"config file {p} is not valid YAML ({err.__class__.__name__}); fix its syntax"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values")
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as YAML); ``hparams.opt_lr=0.02`` sets one entry."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value; e.g. task_iterations=3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if "." in key:
            top, sub = key.split(".", 1)
            if top not in ("hparams", "search_space"):
                raise ConfigError(
                    f"override {key!r}: only hparams.<name> and "
                    "search_space.<name> take a dotted key"
                )
            out.setdefault(top, {})[sub] = value
        else:
            out[key] = value
    return out


def build_config(
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """base (e.g. a stored config) ← YAML file ← overrides, then validate."""
    cfg = Config()
    if base:
        apply(cfg, base, "the stored config")
    if config_file:
        apply(cfg, load_yaml(config_file), str(config_file))
    for key, value in (overrides or {}).items():
        if key in ("hparams", "search_space") and isinstance(value, dict):
            merged = dict(getattr(cfg, key))
            merged.update(value)
            value = merged
        apply(cfg, {key: value}, "the command line")
    return cfg.validate()
