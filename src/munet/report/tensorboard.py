"""Optional TensorBoard scalars of an evolving system (written when tensorboard is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from munet.events import Progress


class TensorBoardLog:
    """Progress events -> scalars under ``DIR/tensorboard``; steps are stable across resumes."""

    def __init__(self, writer: Any, candidates_per_iteration: int) -> None:
        self.writer = writer
        self.per_iteration = candidates_per_iteration

    @classmethod
    def open(cls, directory: Path, candidates_per_iteration: int) -> TensorBoardLog | None:
        """None when tensorboard is not installed (it is an optional extra)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return cls(SummaryWriter(str(Path(directory) / "tensorboard")), candidates_per_iteration)

    def __call__(self, event: str, **info: Any) -> None:
        if event == Progress.CANDIDATE:
            r = info["record"]
            step = r.iteration * self.per_iteration + r.candidate
            if r.quality is not None:
                self.writer.add_scalar(f"{r.task}/candidate_val_accuracy", r.quality, step)
                self.writer.add_scalar(f"{r.task}/candidate_score", r.score, step)
            self.writer.add_scalar(f"{r.task}/accepted", float(r.accepted), step)
        elif event == Progress.ITERATION_END:
            best = info["best"]
            step = info["iteration"]
            self.writer.add_scalar(
                f"{info['task']}/best_val_accuracy", best.metrics["quality"], step
            )
            self.writer.add_scalar(
                f"{info['task']}/test_accuracy", best.metrics["test_quality"], step
            )
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
