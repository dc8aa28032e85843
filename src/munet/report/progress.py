"""Progress of ``munet evolve``: a count of candidates (a tqdm bar on a TTY, ``k/N`` and ETA on
each line when piped), one line per candidate and per task iteration, and the optional
TensorBoard scalars and user callbacks fed from the same events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from munet.events import Callback, Progress, typed_event
from munet.progress import Progress as Count

Log = Callable[[str], None]

logger = logging.getLogger("munet.evolve")


class ProgressPrinter:
    """The evolution loop's progress callable: lines to ``log`` (else the ``munet.evolve``
    logger), the candidate count as a bar or on each candidate's line (``show`` forces the
    bar on or off)."""

    def __init__(
        self,
        state: Any,
        settings: Any,
        tasks: list[str],
        log: Log | None,
        show: bool | None,
        cohorts: list[list[str]] | None = None,
    ) -> None:
        from munet.system.evolve import iterations_left

        todo = iterations_left(state, tasks, settings, cohorts) * settings.candidates_per_iteration
        self.count = Count(todo, "evolve", unit="cand", log=log, logger=logger, show=show)
        self.say = self.count.say
        self.trained = 0
        self.tag_tasks = False  # name the task on candidate lines (tasks evolving at once)
        self.tensorboard: Any = None  # optional scalars (munet.report.tensorboard)
        self.callbacks: list[Callback] = []  # user callbacks of typed events (munet.events)

    def __call__(self, event: str, **info: Any) -> None:
        if self.tensorboard is not None:
            self.tensorboard(event, **info)
        typed = typed_event(event, info) if self.callbacks else None
        if typed is not None:
            for callback in self.callbacks:
                callback(typed)
        if event == Progress.ITERATION_START:
            self.say(
                f"== task {info['task']} iteration {info['iteration']} "
                f"(seeds: paths {info['seeds']})"
            )
        elif event == Progress.CANDIDATE:
            r = info["record"]
            self.trained += 1
            q = "diverged" if r.quality is None else f"val {r.quality:.4f}"
            sc = "-" if r.score is None else f"{r.score:.4f}"
            verdict = "accepted" if r.accepted else "rejected"
            if r.margin:  # accept_z: the quality it gave up before the comparison
                verdict += f" (margin {r.margin:.4f})"
            muts = "; ".join(r.mutations) or "no mutation"
            tag = f"{r.task} " if self.tag_tasks else ""
            self.count.advance(
                line=f"  {tag}cand {r.candidate:>2} path {r.path_id:>4} <- {r.parent_id:>4}"
                f" ({r.parent_task}) {q} score {sc} {verdict} "
                f"[{r.seconds:.1f}s] {muts}"
            )
        elif event == Progress.SEEDS_SCREENED:
            scores = ", ".join(f"{pid}: {v:.3f}" for pid, v in info["scores"].items())
            own = info.get("incumbent")
            rival = f"; own path {own[0]}: {own[1]:.3f}" if own else ""
            self.say(
                f"  seed screen (linear probe, val acc): {scores}{rival}; training {info['kept']}"
            )
        elif event == Progress.ITERATION_END:
            best = info["best"]
            self.say(
                f"== {info['task']}: best path {best.id} val "
                f"{best.metrics['quality']:.4f} test {best.metrics['test_quality']:.4f}"
            )

    def close(self) -> None:
        self.count.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
