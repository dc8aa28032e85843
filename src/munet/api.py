"""The Python API (``munet.evolve``, ``munet.add_tasks``, ...); the ``munet`` command calls these.

Every function takes a system directory and config keys as keyword arguments, exactly as the
command line takes ``key=value``::

    import munet

    outcome = munet.evolve("runs/demo", tasks=["builtin:digits"], task_iterations=1)
    munet.add_tasks("runs/demo", ["builtin:glyph_digits"])
    assert munet.check("runs/demo") == []
    munet.report("runs/demo")
    munet.export("runs/demo", task="digits", out="export/digits", format="timm")
    system = munet.load("runs/demo")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from munet.events import Callback

if TYPE_CHECKING:
    from munet.report import ReportOutcome
    from munet.runner import EvolveOutcome
    from munet.serve.system import MultitaskSystem

Log = Callable[[str], None]
PathLike = str | os.PathLike


def evolve(
    system: PathLike,
    config: PathLike | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    log: Log | None = None,
    show_progress: bool | None = None,
    **keys: Any,
) -> EvolveOutcome:
    """Create or resume the system in directory ``system`` and evolve it to its budget.

    ``config`` is a YAML file of config keys; ``keys`` override them (``task_iterations=3``,
    ``hparams={"opt_lr": 0.02}``; see ``munet config --explain``). Each callback receives the
    typed events of :mod:`munet.events`. Progress and notes go to the ``munet`` loggers
    (silent until logging is configured, e.g. ``logging.basicConfig(level=logging.INFO)``), or
    to ``log`` when given; ``show_progress`` forces the tqdm bar on or off (default: on when
    stderr is a terminal and progress is listened to).
    """
    from munet.runner import evolve_system

    return evolve_system(
        Path(system),
        None if config is None else str(config),
        keys,
        log=log,
        show_progress=show_progress,
        callbacks=callbacks,
    )


def add_tasks(
    system: PathLike,
    tasks: Sequence[str],
    config: PathLike | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    log: Log | None = None,
    show_progress: bool | None = None,
    **keys: Any,
) -> EvolveOutcome:
    """Add task specs to the existing system in ``system`` and evolve them (tasks it already
    has are kept, in their order; listing one again is harmless). Other arguments as for
    :func:`evolve`."""
    from munet.store.system import SystemStore

    if isinstance(tasks, str):
        tasks = [tasks]
    if "tasks" in keys:
        raise TypeError("add_tasks takes the new tasks as its `tasks` argument only")
    store = SystemStore(system)
    store.read()
    stored = list(store.stored_config()["tasks"])
    keys["tasks"] = stored + [t for t in tasks if t not in stored]
    return evolve(system, config, callbacks=callbacks, log=log, show_progress=show_progress, **keys)


def check(system: PathLike, *, evaluate: bool = True, log: Log | None = None) -> list[str]:
    """Verify the stored system: blobs, manifest, train locks and (``evaluate``) that every
    retained model still scores its recorded test accuracy. Returns one line per problem; an
    empty list means the system is intact and can resume. Progress goes to ``log`` when given,
    else to the ``munet`` loggers."""
    from munet.store.check import check_system
    from munet.train.recheck import reevaluate_retained

    return check_system(system, log=log, reevaluate=reevaluate_retained if evaluate else None)


def report(systems: PathLike | Sequence[PathLike], out: PathLike | None = None) -> ReportOutcome:
    """Write report.html, report.md, leaderboard.csv and PNG plots of one or more systems to
    ``out`` (default: DIR/report for one system, ./munet-report for several)."""
    from munet.report import write_report

    if isinstance(systems, (str, os.PathLike)):
        systems = [systems]
    return write_report([Path(s) for s in systems], None if out is None else Path(out))


def export(
    system: PathLike | MultitaskSystem,
    task: str,
    out: PathLike,
    format: str = "safetensors",
    *,
    device: str = "cpu",
) -> dict[str, Any]:
    """Export one task's model from a system directory (or a loaded system) to ``out``.

    ``format``: ``safetensors`` (one file + JSON), ``timm`` (a folder in timm's Hugging Face
    layout with a model card, loadable with ``timm.create_model("local-dir:OUT",
    pretrained=True)``; a path with residual adapters gets a munet-format folder) or ``onnx``.
    Returns the files written and the largest logit difference to the system's model.
    """
    from munet.serve.export import export_task

    if not hasattr(system, "model"):
        system = load(system, device=device)
    return export_task(system, task, out, format)


def load(system: PathLike, device: str = "cpu", batch_size: int | None = None) -> MultitaskSystem:
    """Open an evolved system for inference (read-only: it may be served while it evolves).

    ``device``: cpu, cuda, cuda:N or auto."""
    from munet.serve.system import DEFAULT_BATCH_SIZE
    from munet.serve.system import load as load_system
    from munet.train.device import resolve_device

    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    return load_system(system, device=resolve_device(device), batch_size=size)
