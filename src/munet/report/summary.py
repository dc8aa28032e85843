"""What a report shows, read from a stored system: per-task rows, lineage, component roles.

Everything here is plain data computed from the journal and the last state snapshot (no
tensors are loaded); the tables and plots only format it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from munet.report.rows import path_facts, task_compute
from munet.system.arch import is_inserted
from munet.system.baselines import parse_method
from munet.system.component import NOT_TRAINABLE
from munet.system.path import Path
from munet.system.record import CandidateRecord
from munet.system.score import path_score
from munet.system.state import SystemState

ROOT_LABEL = "root"


@dataclass
class TaskRow:
    """One task's retained path and what it cost to find it."""

    task: str
    path_id: int
    test_accuracy: float | None
    val_accuracy: float | None
    score: float | None
    accounted_params: float
    private_params: int
    num_layers: int
    adapters: int
    image_size: int
    lineage: list[tuple[int, str]]  # (path id, task) from the root down to the retained path
    candidates: int  # candidates trained for the task
    accepted: int
    images: int  # training images consumed by those candidates
    seconds: float  # their training + validation seconds
    flops: float  # their training + validation FLOPs (0 for systems that did not count them)

    @property
    def lineage_tasks(self) -> list[str]:
        """The tasks along the lineage, consecutive repeats collapsed: root, …, this task."""
        out: list[str] = []
        for _, task in self.lineage:
            if not out or out[-1] != task:
                out.append(task)
        return out

    @property
    def lineage_text(self) -> str:
        return " → ".join(self.lineage_tasks)

    @property
    def transferred_from(self) -> list[str]:
        """Other tasks whose models this path descends from (cross-task transfer)."""
        return [t for t in self.lineage_tasks if t not in (ROOT_LABEL, self.task)]


@dataclass
class SystemSummary:
    """A stored system, reduced to what the report shows."""

    name: str
    directory: FsPath
    config: dict[str, Any]
    root_spec: str
    state: SystemState
    rows: list[TaskRow]
    candidates: list[CandidateRecord]  # the journal's candidate records, in training order
    creators: dict[int, str] = field(default_factory=dict)  # component id -> task that made it

    @property
    def method(self) -> str:
        return str(self.config.get("method", "munet"))

    @property
    def evolves(self) -> bool:
        """muNet evolves; a baseline trains fixed children of the root."""
        return parse_method(self.method).evolves

    @property
    def scale_factor(self) -> float:
        return float(self.config.get("scale_factor", 1.0))

    @property
    def label(self) -> str:
        """The method, with the scale factor when it applies pressure: ``munet s=0.5``."""
        if self.method.startswith("munet") and self.scale_factor != 1.0:
            return f"{self.method} s={self.scale_factor:g}"
        return self.method

    @property
    def params_per_task(self) -> float:
        """Σ accounted parameters of the retained paths ÷ number of tasks (spec §6)."""
        return sum(r.accounted_params for r in self.rows) / max(1, len(self.rows))

    @property
    def mean_test_accuracy(self) -> float | None:
        accs = [r.test_accuracy for r in self.rows if r.test_accuracy is not None]
        return sum(accs) / len(accs) if accs else None

    @property
    def mean_val_accuracy(self) -> float | None:
        accs = [r.val_accuracy for r in self.rows if r.val_accuracy is not None]
        return sum(accs) / len(accs) if accs else None

    @property
    def images(self) -> int:
        return sum(int(r.images or 0) for r in self.candidates)

    @property
    def seconds(self) -> float:
        return sum(float(r.seconds or 0.0) for r in self.candidates)

    @property
    def flops(self) -> float:
        """Training + validation FLOPs of every candidate (the compute muNet is matched on)."""
        return sum(float(r.flops or 0.0) for r in self.candidates)

    def task_candidates(self, task: str) -> list[CandidateRecord]:
        return [r for r in self.candidates if r.task == task]


def load_summary(directory: str | FsPath, name: str | None = None) -> SystemSummary:
    """Read a system directory (read-only; a running writer is not disturbed)."""
    from munet.store.system import SystemStore

    directory = FsPath(directory)
    store = SystemStore(directory)
    store.read()
    state = store.load_state(load_tensors=False)
    records = store.candidate_rows()
    config = store.stored_config()
    scale = float(config.get("scale_factor", 1.0))
    rows = [task_row(state, p, records, scale) for p in retained_paths(state)]
    return SystemSummary(
        name=name or directory.name,
        directory=directory,
        config=config,
        root_spec=str(store.created()["root"].get("spec", "")),
        state=state,
        rows=rows,
        candidates=records,
        creators=component_creators(records),
    )


def load_summaries(directories: Sequence[str | FsPath]) -> list[SystemSummary]:
    names = display_names([FsPath(d) for d in directories])
    return [load_summary(d, n) for d, n in zip(directories, names, strict=True)]


def display_names(dirs: Sequence[FsPath]) -> list[str]:
    """The shortest trailing parts of each path that tell the systems apart."""
    parts = [d.resolve().parts for d in dirs]
    for k in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["/".join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(d) for d in dirs]


def retained_paths(state: SystemState) -> list[Path]:
    """Each task's retained path, in the order tasks were first evolved."""
    return [paths[0] for paths in state.population.values() if paths]


def component_creators(records: Sequence[CandidateRecord]) -> dict[int, str]:
    """Component id -> the task whose candidate created it (cloned or newly initialised).

    A candidate's trainable components are always fresh objects (inherited trainable
    components are cloned), so each id appears in exactly one record's ``trainable_ids``.
    """
    return {cid: r.task for r in records for cid in r.trainable_ids}


def lineage(path_id: int, records: Sequence[CandidateRecord]) -> list[tuple[int, str]]:
    """(path id, task) from the root down to ``path_id``, following the candidates'
    recorded parents (the stored parent pointers skip discarded ancestors)."""
    by_id = {r.path_id: r for r in records}
    chain: list[tuple[int, str]] = []
    pid: int | None = path_id
    seen: set[int] = set()
    while pid is not None and pid not in seen:
        seen.add(pid)
        rec = by_id.get(pid)
        if rec is None:  # the root (or a path trained before the journal began)
            chain.append((pid, ROOT_LABEL))
            break
        chain.append((pid, rec.task))
        pid = rec.parent_id
    return chain[::-1]


def task_row(
    state: SystemState, path: Path, records: Sequence[CandidateRecord], scale_factor: float
) -> TaskRow:
    """The report's row for a retained path; accounting is the state's current (dynamic) one."""
    mine = [r for r in records if r.task == path.task]
    facts = path_facts(path)
    compute = task_compute(mine).get(path.task, {})
    return TaskRow(
        **facts | {"num_layers": int(facts["num_layers"]), "image_size": int(facts["image_size"])},
        score=path_score(path, state.p_ref, scale_factor)
        if facts["val_accuracy"] is not None
        else None,
        lineage=lineage(path.id, records),
        candidates=len(mine),
        accepted=sum(bool(r.accepted) for r in mine),
        images=int(compute.get("images", 0)),
        seconds=float(compute.get("seconds", 0.0)),
        flops=float(compute.get("flops", 0.0)),
    )


# ---- the architecture map ---------------------------------------------------------------------
ROOT, INHERITED, OWN, ADAPTER, ABSENT = "root", "inherited", "own", "adapter", "absent"

#: Legend text of each role, in legend order.
ROLE_LEGEND = {
    ROOT: "pretrained root layer (frozen)",
    INHERITED: "inherited: trained for the named task, reused frozen",
    OWN: "trained for this task (a clone of an ancestor's, or new)",
    ADAPTER: "residual adapter (or low-rank delta) trained for this task",
    ABSENT: "not in this task's model",
}


@dataclass(frozen=True)
class Role:
    """How a task's model holds one component: the colour class and the cell text."""

    kind: str
    text: str
    users: int = 1  # real tasks whose retained models use the component


def component_columns(state: SystemState) -> list[str]:
    """Names used by any retained path, in forward order (each adapter before its block, each
    low-rank delta after it)."""
    paths = retained_paths(state)
    if not paths:
        return []
    hp: dict[str, Any] = {
        "num_layers": max(int(p.hparams["num_layers"]) for p in paths),
    }
    for key in ("adapter_layers", "lowrank_layers"):
        hp[key] = sorted({i for p in paths for i in p.hparams.get(key, [])})
    used = {c.name for p in paths for c in p.components}
    return [n for n in state.arch.component_names(hp) if n in used]


def component_roles(summary: SystemSummary) -> dict[str, dict[str, Role]]:
    """task -> component name -> Role, for every retained path."""
    out: dict[str, dict[str, Role]] = {}
    for p in retained_paths(summary.state):
        roles: dict[str, Role] = {}
        for c in p.components:
            users = len(c.user_tasks() | {p.task})
            creator = summary.creators.get(c.id)
            if NOT_TRAINABLE in c.locks:
                roles[c.name] = Role(ROOT, ROOT_LABEL, users)
            elif creator is not None and creator != p.task:
                roles[c.name] = Role(INHERITED, creator, users)
            else:
                kind = ADAPTER if is_inserted(c.name) else OWN
                roles[c.name] = Role(kind, "new" if c.origin == "new" else "clone", users)
        out[p.task] = roles
    return out
