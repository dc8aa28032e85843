"""The record of one trained candidate: what was built, how it trained, how it was judged.

:func:`munet.system.evolve.run_task_iteration` plans a record per candidate (who it is, where it
came from, what it is made of), ``_judge`` returns it filled with the outcome, and the store
journals :meth:`CandidateRecord.to_json`. The JSON form is the journal's on-disk format: change
it only with a new store format version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from munet.system.noise import HITS_KEY, unpack

#: The JSON key that marks a record written by an asynchronous task agent (never replayed).
ASYNC_KEY = "async"


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate path of a generation batch (spec §4); one row of candidates.csv."""

    # ---- planned: who the candidate is and what it is made of ------------------------------
    task: str
    iteration: int  # the task's task iteration
    batch: int  # generation batch within the task iteration
    candidate: int  # index within the task iteration
    path_id: int
    parent_id: int
    parent_task: str
    seed_phase: bool  # an unmutated child of a seed path
    mutations: list[str]
    hparams: dict[str, Any]
    component_ids: list[int]
    trainable_ids: list[int]
    # ---- outcome: filled by ``_judge`` -----------------------------------------------------
    quality: float | None = None  # best validation accuracy; None when training diverged
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0
    flops: float | None = 0.0  # None: written by a munet that did not count FLOPs
    status: str = ""
    accounted_params: float = 0.0
    baseline: float | None = None  # the same-task parent's score; None for another task's
    score: float | None = None
    accepted: bool = False
    #: ``accept_z``: which validation examples the candidate got right (``noise.pack``) and the
    #: quality it gave up before its score was compared with its parent's
    hits: str | None = None
    margin: float = 0.0
    agent: bool = False  # written by an asynchronous task agent (timing-dependent)

    def to_json(self) -> dict[str, Any]:
        """The journal's dict of this record (without the store's blob bookkeeping)."""
        out: dict[str, Any] = {
            "task": self.task,
            "iteration": self.iteration,
            "batch": self.batch,
            "candidate": self.candidate,
            "path_id": self.path_id,
            "parent_id": self.parent_id,
            "parent_task": self.parent_task,
            "seed_phase": self.seed_phase,
            "mutations": self.mutations,
            "hparams": self.hparams,
            "component_ids": self.component_ids,
            "trainable_ids": self.trainable_ids,
            "quality": self.quality,
            "history": self.history,
            "seconds": self.seconds,
            "images": self.images,
            "flops": self.flops,
            "status": self.status,
            "accounted_params": self.accounted_params,
            "baseline": self.baseline,
            "score": self.score,
            "accepted": self.accepted,
        }
        if self.hits is not None:  # only with accept_z: spec-mode journals stay as they were
            out[HITS_KEY] = self.hits
            out["margin"] = self.margin
        if self.agent:
            out[ASYNC_KEY] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidateRecord:
        """A record from its journal dict; keys that older systems lack take their defaults.

        Raises KeyError for a dict without the planned keys and ValueError for malformed
        validation hits (a damaged journal).
        """
        hits = data.get(HITS_KEY)
        if hits is not None:
            unpack(hits)  # a malformed value is a damaged journal: ValueError
        return cls(
            task=data["task"],
            iteration=data["iteration"],
            batch=data["batch"],
            candidate=data["candidate"],
            path_id=data["path_id"],
            parent_id=data["parent_id"],
            parent_task=data["parent_task"],
            seed_phase=data["seed_phase"],
            mutations=data["mutations"],
            hparams=data["hparams"],
            component_ids=data["component_ids"],
            trainable_ids=data.get("trainable_ids", []),
            quality=data["quality"],
            history=data["history"],
            seconds=data["seconds"],
            images=data["images"],
            flops=data.get("flops"),
            status=data["status"],
            accounted_params=data["accounted_params"],
            baseline=data.get("baseline"),
            score=data["score"],
            accepted=data["accepted"],
            hits=hits,
            margin=float(data.get("margin", 0.0)),
            agent=bool(data.get(ASYNC_KEY, False)),
        )
