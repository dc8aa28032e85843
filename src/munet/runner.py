"""Library entry points behind the CLI: evolve a system, open one, describe its tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from munet.config import EXECUTION_KEYS, FROZEN_KEYS, Config, build_config, with_legacy
from munet.data.load import load_tasks, task_meta
from munet.errors import ConfigError, StoreError
from munet.events import Callback, RunEnded
from munet.train.device import configure_threads, resolve_device

if TYPE_CHECKING:
    from munet.train.peft_lora import LoraRecipe, LoraTaskResult

Log = Callable[[str], None]

logger = logging.getLogger(__name__)


def fit_image_size(cfg: Config, patch_size: int) -> None:
    """The default image size must be in the root's size list (a multiple of its patch, e.g. 14
    for some ViTs, with at least ``min_patches`` patches per side): pick the smallest valid size
    >= the default unless the user set one explicitly."""
    from munet.system.hparams import image_sizes_for

    size = cfg.default_hparams()["ds_image_size"]
    sizes = image_sizes_for(patch_size, min_patches=cfg.min_patches)
    if size in sizes:
        return
    if "ds_image_size" in cfg.hparams:
        raise ConfigError(
            f"hparams.ds_image_size={size} is not a valid image size for a root of patch "
            f"size {patch_size} (a multiple of it, >= {cfg.min_patches} patches per side); "
            f"use one of {sizes[:6]}"
        )
    cfg.hparams["ds_image_size"] = next((s for s in sizes if s >= size), sizes[-1])


def _check_resume(
    stored: dict[str, Any], cfg: Config, stored_tasks: dict[str, Any], tasks: dict[str, Any]
) -> None:
    changed = [k for k in FROZEN_KEYS if stored.get(k) != cfg.to_dict().get(k)]
    if changed:
        raise StoreError(
            "this system was created with different values for: "
            + ", ".join(changed)
            + "; keep them as stored (see config.yaml) or use a new --system directory"
        )
    missing = [t for t in stored_tasks if t not in tasks]
    if missing:
        raise StoreError(
            f"tasks {missing} of this system are missing from --tasks; list every "
            "existing task (new ones may be added after them)"
        )
    for name, meta in stored_tasks.items():
        now = task_meta(tasks[name])
        for key in ("num_classes", "split"):
            if meta[key] != now[key]:
                raise StoreError(
                    f"task {name!r} changed since it was added ({key} differs); "
                    "restore its data or add it under a new name"
                )


def effective_config(
    directory: str | Path | None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """The config ``munet evolve`` would run with: the stored config of the system in
    ``directory`` (if there is one; execution keys are never taken from it) <- ``config_file``
    <- ``overrides``."""
    from munet.store.system import SystemStore

    base: dict[str, Any] = {}
    if directory is not None and SystemStore.exists(Path(directory)):
        store = SystemStore(directory)
        store.read()
        stored = with_legacy(store.stored_config())
        base = {k: v for k, v in stored.items() if k not in EXECUTION_KEYS}
    return build_config(config_file, overrides, base=base)


@dataclass
class EvolveOutcome:
    """What ``munet.evolve`` did: the per-task rows of tasks.csv after the run."""

    directory: Path
    rows: list[dict[str, Any]]
    seconds: float
    trained: int

    def summary(self) -> dict[str, Any]:
        """The document ``munet evolve --json`` prints: the run and one entry per task (the
        columns of tasks.csv; ``shared_with`` and ``private`` as lists)."""
        n = max(1, len(self.rows))
        tested = [r["test_accuracy"] for r in self.rows if r["test_accuracy"] is not None]
        return {
            "system": str(self.directory),
            "seconds": round(self.seconds, 1),
            "candidates_trained": self.trained,
            "mean_test_accuracy": sum(tested) / len(tested) if tested else None,
            "params_per_task": sum(r["accounted_params"] for r in self.rows) / n,
            "tasks": [
                {
                    **r,
                    "shared_with": [t for t in r["shared_with"].split(",") if t],
                    "private": [c for c in r["private"].split(",") if c],
                }
                for r in self.rows
            ],
        }


def evolve_system(
    directory: str | Path,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    log: Log | None = None,
    show_progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
) -> EvolveOutcome:
    """Create or resume the system in ``directory`` and evolve it to its budget; each of
    ``callbacks`` receives the typed events of :mod:`munet.events`. Progress goes to ``log``
    when given, else to the ``munet`` loggers; ``show_progress`` forces the tqdm bar on or off
    (default: on when stderr is a terminal and progress is listened to)."""

    from munet.execute import open_executor
    from munet.execute.agents import SkipAgentReplays, evolve_async, reserve_agent_ids
    from munet.model.ops import TorchOps
    from munet.model.root import load_root
    from munet.report.progress import ProgressPrinter
    from munet.report.rows import TasksCsv, task_rows
    from munet.report.tensorboard import TensorBoardLog
    from munet.store.lock import SystemLock
    from munet.store.system import SystemStore
    from munet.system.baselines import check_method_fits, configure_method, parse_method
    from munet.system.evolve import evolve
    from munet.system.hparams import search_space_for
    from munet.system.state import Settings, make_root_state
    from munet.train.trainer import TrainSettings

    say = log or logger.info
    t0 = time.time()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"--system {directory} is a file, not a directory; give a directory")
    store = SystemStore(directory)
    resuming = SystemStore.exists(directory)
    stored_cfg: dict[str, Any] | None = None
    if resuming:
        store.read()
        stored_cfg = with_legacy(store.stored_config())
    overrides = dict(overrides or {})
    base = {k: v for k, v in (stored_cfg or {}).items() if k not in EXECUTION_KEYS}
    cfg = build_config(config_file, overrides, base=base)
    configure_threads(cfg.threads)
    # with executor=ray the workers' device follows gpus_per_worker, not the driver's GPUs
    device = resolve_device(cfg.device) if cfg.executor == "local" else "cpu"
    logger.debug("effective config: %s", cfg.to_dict())
    logger.debug("driver device %s, executor %s", device, cfg.executor)
    tasks = load_tasks(cfg.tasks)
    if resuming:
        assert stored_cfg is not None
        _check_resume(stored_cfg, cfg, store.tasks(), tasks)
    root = load_root(cfg.root, log=log, weights=cfg.root_weights)
    fit_image_size(cfg, root.arch.patch_size)
    cfg.validate_for_root(root.arch, device)
    method = parse_method(cfg.method)
    try:
        check_method_fits(method, root.arch.depth)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    ops = TorchOps()
    executor = open_executor(cfg, log)  # checks the cluster's resources before any write
    directory.parent.mkdir(parents=True, exist_ok=True)
    if not resuming:
        directory.mkdir(exist_ok=True)
    with executor, SystemLock(directory):
        # another run may have created a system here between the check above and the lock
        if not resuming and SystemStore.exists(directory):
            raise StoreError(
                f"another munet evolve created a system in {directory} while this one was "
                "starting; use a new --system directory, or run again to resume that one"
            )
        if resuming:
            store.read()
            state = store.load_state()
            reserve_agent_ids(state, store.candidate_rows())
            new = {n: task_meta(d) for n, d in tasks.items() if n not in store.tasks()}
            if new:
                store.record_tasks(new)
            if cfg.to_dict() != stored_cfg:
                store.record_config(cfg.to_dict())
            done = sum(state.iterations_done.values())
            say(f"resuming {directory}: {done} task iterations done")
        else:
            state = make_root_state(root.arch, root.params, cfg.default_hparams(), ops)
            store.create(
                cfg.to_dict(),
                {"spec": root.spec, **root.info},
                state,
                {n: task_meta(d) for n, d in tasks.items()},
            )
            say(f"created system {directory} (root {root.spec}, P_ref {state.p_ref:,})")
        settings = Settings(
            space=search_space_for(
                root.arch.depth,
                root.arch.patch_size,
                cfg.auto_tune and method.auto_tune,
                cfg.search_space,
                min_patches=cfg.min_patches,
                search=cfg.search,
            ),
            mutation_prob=cfg.mutation_prob,
            scale_factor=cfg.scale_factor,
            force_finetune=tuple(cfg.force_finetune),
            mutate_adapters=cfg.mutate_adapters,
            mutate_lowranks=cfg.search == "extended",
            seed=cfg.seed,
            defaults=cfg.default_hparams(root.arch.depth),
            task_iterations=cfg.task_iterations,
            task_schedule=cfg.task_schedule,
            candidates_per_iteration=cfg.candidates_per_iteration,
            generation_batch_size=cfg.generation_batch_size,
            seed_keep=cfg.seed_keep if cfg.seed_phase == "screen" else None,
            parent_fallback=cfg.parent_fallback,
            screen_incumbent=cfg.screen_incumbent,
            transfer_lowrank=cfg.transfer_lowrank and cfg.search == "extended",
            accept_z=cfg.accept_z if method.evolves else 0.0,
            max_private_params=cfg.max_private_params or None,
        )
        policy, settings, validations = configure_method(
            method,
            settings,
            cfg.validations_per_candidate,
            cfg.baseline_budget,
            cfg.baseline_replicas,
        )
        trainer = executor.start(
            root.arch,
            tasks,
            TrainSettings(
                batch_size=cfg.batch_size,
                validations=validations,
                interval_cap=cfg.validation_interval_cap,
                validation_batches=cfg.validation_batches,
                device=device,
                head_init=cfg.head_init,
                score_split=cfg.score_split,
                # a baseline's replicas all train their whole budget
                race_validations=cfg.race_validations if method.evolves else 0,
                hits=cfg.accept_z > 0.0 and method.evolves,
            ),
        )
        cohorts = store.task_cohorts()
        progress = ProgressPrinter(state, settings, list(tasks), log, show_progress, cohorts)
        progress.callbacks = list(callbacks)
        progress.tensorboard = TensorBoardLog.open(directory, settings.candidates_per_iteration)
        classes = {n: d.num_classes for n, d in tasks.items()}
        recorder = TasksCsv(store)
        if cfg.async_tasks:
            agents = min(executor.workers, len(tasks))
            executor.set_concurrent_batches(agents)
            progress.tag_tasks = True
            say(f"async task agents: up to {agents} tasks evolve at once")
            evolve_async(state, classes, settings, trainer, recorder, ops, progress, agents, policy)
        else:
            evolve(
                state,
                classes,
                settings,
                trainer,
                SkipAgentReplays(recorder),
                ops,
                progress,
                policy,
                cohorts,
            )
        progress.close()
    order = {name: i for i, name in enumerate([*store.tasks(), *tasks])}
    rows = sorted(task_rows(state), key=lambda r: order.get(r["task"], len(order)))
    outcome = EvolveOutcome(directory, rows, time.time() - t0, progress.trained)
    end = RunEnded(directory, tuple(rows), outcome.seconds, outcome.trained)
    for callback in callbacks:
        callback(end)
    return outcome


def run_lora(
    directory: str | Path,
    recipe: LoraRecipe,
    overrides: dict[str, Any] | None = None,
    log: Log | None = None,
) -> list[LoraTaskResult]:
    """The LoRA baseline (:mod:`munet.train.peft_lora`) for every task of the config that
    ``overrides`` describe (the keys of ``munet evolve``: root, tasks, seed, budget, batch
    size, ``baseline_budget`` …).

    One ``<task>.json`` per task under ``directory``: a rerun skips the tasks already done, so a
    killed run resumes; a file written under a different configuration is an error."""
    import json
    from dataclasses import asdict

    from munet.fileio.atomic import atomic_write_json
    from munet.model.ops import TorchOps
    from munet.model.root import load_root
    from munet.system.baselines import matched_budget, scaled_budget
    from munet.system.state import make_root_state
    from munet.train.peft_lora import LoraTaskResult, train_lora_task

    say = log or logger.info
    directory = Path(directory)
    cfg = build_config(None, {**(overrides or {}), "method": "finetune-all"})
    configure_threads(cfg.threads)
    device = resolve_device(cfg.device)
    root = load_root(cfg.root, log=log, weights=cfg.root_weights)
    fit_image_size(cfg, root.arch.patch_size)
    budget = scaled_budget(
        matched_budget(
            cfg.task_iterations,
            cfg.candidates_per_iteration,
            cfg.generation_batch_size,
            cfg.validations_per_candidate,
            cfg.baseline_replicas,
        ),
        cfg.baseline_budget,
    )
    key = {
        "recipe": asdict(recipe),
        "root": cfg.root,
        "tasks": list(cfg.tasks),
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "replicas": budget.replicas,
        "validations": budget.validations,
        "validation_interval_cap": cfg.validation_interval_cap,
        "validation_batches": cfg.validation_batches,
        "hparams": cfg.default_hparams(),
        "head_init": cfg.head_init,
    }
    directory.mkdir(parents=True, exist_ok=True)
    tasks = load_tasks(cfg.tasks)
    ops = TorchOps()
    state = make_root_state(root.arch, root.params, cfg.default_hparams(), ops)
    results = []
    for name, data in tasks.items():
        file = directory / f"{_file_name(name)}.json"
        if file.exists():
            done = LoraTaskResult.from_json(json.loads(file.read_text()))
            if json.loads(json.dumps(done.key)) != json.loads(json.dumps(key)):
                raise ValueError(
                    f"{file} was written under another configuration; use a new directory"
                )
            results.append(done)
            continue
        say(
            f"lora:{recipe.rank} {name}: {budget.replicas} replicas × {budget.validations} "
            "validation intervals"
        )
        res = train_lora_task(
            root.arch,
            state,
            name,
            data,
            recipe,
            budget,
            seed=cfg.seed,
            defaults=cfg.default_hparams(),
            batch_size=cfg.batch_size,
            interval_cap=cfg.validation_interval_cap,
            validation_batches=cfg.validation_batches,
            tasks_in_system=len(tasks),
            head_init=cfg.head_init,
            device=device,
            ops=ops,
        )
        res.key = key
        atomic_write_json(file, res.to_json())
        results.append(res)
    return results


def _file_name(task: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in task)
