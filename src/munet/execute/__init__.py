"""Where candidates run: in this process (``local``, the default) or on Ray actors (``ray``).

An executor implements the evolution loop's ``Trainer`` protocol (``train_generation`` and
``test``) plus ``close``. The driver keeps the system state and is the only writer of the system
directory; an executor only turns candidates into trained tensors and metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from munet.errors import ConfigError
from munet.system.evolve import CandidateResult
from munet.system.path import Path

Log = Callable[[str], None]


class Executor(Protocol):
    """Where candidates train: the loop's ``Trainer`` plus a lifecycle.

    Implementations: :class:`LocalExecutor` and ``munet.execute.ray_executor.RayExecutor``,
    chosen by :func:`open_executor`. The runner opens one (its resources checked) before
    anything is written, calls ``start`` once the training settings are known, uses it as the
    loop's ``Trainer`` and calls ``close`` when the run ends or is interrupted.

    Besides the ``Trainer`` guarantees (inputs never changed, results a function of the
    arguments alone), an executor must give the same results, bit for bit, as the local one
    on the same machine with the same thread count: where a candidate trains never changes
    what it learns.
    """

    workers: int  # how many jobs (chunks of generation batches) can train at once

    def start(self, arch: Any, tasks: Mapping[str, Any], settings: Any) -> Executor:
        """Prepare training of ``tasks`` (name -> data) on a root of ``arch`` with the
        ``TrainSettings``; called once, before any other training call. Returns ``self``."""

    def train_generation(
        self, task: str, children: Sequence[Path], ds: Mapping[str, Any], seed: int
    ) -> list[CandidateResult]:
        """``Trainer.train_generation``."""

    def test(self, path: Path) -> dict[str, Any]:
        """``Trainer.test``."""

    def screen(self, task: str, paths: Sequence[Path]) -> list[float]:
        """``Trainer.screen``."""

    def set_concurrent_batches(self, n: int) -> None:
        """How many generation batches will train at once (task agents), so that workers
        can be shared among them; called before training starts."""

    def close(self) -> None:
        """Release the workers; called once, also after an interrupt. Idempotent."""


class LocalExecutor:
    """Trains every candidate in this process with :class:`munet.train.trainer.Trainer`."""

    workers = 1

    def __init__(self, log: Log | None = None) -> None:
        self.log = log  # None: the trainer's own logger
        self.trainer: Any = None

    def start(self, arch: Any, tasks: Mapping[str, Any], settings: Any) -> LocalExecutor:
        from munet.train.trainer import Trainer

        self.trainer = Trainer(arch, tasks, settings, log=self.log)
        return self

    def train_generation(
        self, task: str, children: Sequence[Path], ds: Mapping[str, Any], seed: int
    ) -> list[CandidateResult]:
        return self.trainer.train_generation(task, children, ds, seed)

    def test(self, path: Path) -> dict[str, Any]:
        return self.trainer.test(path)

    def screen(self, task: str, paths: Sequence[Path]) -> list[float]:
        return self.trainer.screen(task, paths)

    def set_concurrent_batches(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_executor(cfg: Any, log: Log | None = None) -> Executor:
    """The executor ``cfg.executor`` names, with its resources checked (Ray is imported only
    when asked for). Raises ConfigError for what the cluster cannot provide."""
    if cfg.executor == "local":
        return LocalExecutor(log)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "executor=ray needs Ray, which is not installed; pip install 'munet[ray]' "
            "(or 'ray>=2.9')"
        ) from None
    from munet.execute.ray_executor import RayExecutor

    return RayExecutor(
        address=cfg.ray_address,
        workers=cfg.workers,
        gpus_per_worker=cfg.gpus_per_worker,
        log=log,
    )
