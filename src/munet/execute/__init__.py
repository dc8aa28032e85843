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
    """Opened (and its resources checked) before anything is written, started once the
    training settings are known, closed when the run ends or is interrupted."""

    workers: int  # how many jobs (chunks of generation batches) can train at once

    def start(self, arch: Any, tasks: Mapping[str, Any], settings: Any) -> Executor: ...

    def train_generation(
        self, task: str, children: Sequence[Path], ds: Mapping[str, Any], seed: int
    ) -> list[CandidateResult]: ...

    def test(self, path: Path) -> dict[str, Any]: ...

    def screen(self, task: str, paths: Sequence[Path]) -> list[float]: ...

    def set_concurrent_batches(self, n: int) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Trains every candidate in this process with :class:`munet.train.trainer.Trainer`."""

    workers = 1

    def __init__(self, log: Log | None = None) -> None:
        self.log = log or (lambda m: None)
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
