"""The system directory: config, manifest, journal of events, one safetensors blob per component.

Layout::

    DIR/config.yaml        effective config (rewritten when the budget grows)
    DIR/manifest.json      format version, munet version, root, tasks
    DIR/journal.jsonl      append-only events: created, tasks, generation, iteration_end
    DIR/components/<id>.safetensors   write-once component tensors
    DIR/candidates.csv     one row per trained candidate
    DIR/tasks.csv          one row per retained path (written by munet.report.rows.TasksCsv)
    DIR/lock               held by the one writer

State is event-sourced: every ``iteration_end`` (and ``created``) event carries a snapshot of
the population; ``generation`` events after the last snapshot are replayed on resume, so a kill
at any moment loses at most the generation batch being trained.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path as FsPath
from typing import Any

from munet import __version__
from munet.errors import StoreError
from munet.fileio.atomic import atomic_write_json, atomic_write_text, cleanup_temp_files
from munet.store.journal import CREATED, Journal
from munet.system.arch import RootArch
from munet.system.component import Component
from munet.system.evolve import CandidateResult
from munet.system.graph import PathRow, link_paths
from munet.system.noise import HITS_KEY, unpack
from munet.system.path import Path
from munet.system.record import CandidateRecord
from munet.system.state import SystemState

FORMAT_VERSION = 1


class EventKind:
    """The ``type`` of each journal event: names of the on-disk format, never rename them."""

    CREATED = CREATED  # the first line: config, root, snapshot of the root-only state
    TASKS = "tasks"  # tasks added (spec, classes, split)
    CONFIG = "config"  # the config changed on resume (e.g. a larger budget)
    GENERATION = "generation"  # one generation batch's candidate records and blob records
    ITERATION_END = "iteration_end"  # a task iteration ended: snapshot of the state


SNAPSHOT_EVENTS = (EventKind.CREATED, EventKind.ITERATION_END)


# ---- state <-> JSON ---------------------------------------------------------------------------
def snapshot(state: SystemState, blob_records: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    """A JSON-able snapshot of the live state (root, populations, position-embedding cache)."""
    comps = state.live_components()
    paths = state.all_paths()
    return {
        "arch": state.arch.to_dict(),
        "p_ref": state.p_ref,
        "next_component_id": state.next_component_id,
        "next_path_id": state.next_path_id,
        "iterations_done": dict(state.iterations_done),
        "root": state.root.id,
        "population": {t: [p.id for p in ps] for t, ps in state.population.items()},
        "posembed_cache": {str(k): c.id for k, c in state.posembed_cache.items()},
        "components": [
            {
                "id": c.id,
                "name": c.name,
                "shapes": {k: list(v) for k, v in c.shapes.items()},
                "locks": sorted(c.locks),
                "origin": c.origin,
                "blob": blob_records[c.id],
            }
            for c in sorted(comps.values(), key=lambda c: c.id)
        ],
        "paths": [
            {
                "id": p.id,
                "task": p.task,
                "parent": p.parent.id if p.parent else None,
                "hparams": p.hparams,
                "components": [c.id for c in p.components],
                # generation and offspring are journaled among the metrics (format 1)
                "metrics": {**p.metrics, "generation": p.generation, "offspring": p.offspring},
            }
            for p in paths
        ],
    }


def checked_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A snapshot path's metrics without the journaled counters; its validation hits
    (``accept_z``) are decoded once so a damaged value is a damaged snapshot (ValueError)."""
    if metrics.get(HITS_KEY) is not None:
        unpack(metrics[HITS_KEY])
    return {k: v for k, v in metrics.items() if k not in ("generation", "offspring")}


def restore(snap: Mapping[str, Any], load_params: Any) -> SystemState:
    """Rebuild a SystemState from a snapshot; ``load_params(id, blob_record)`` gives tensors."""
    comps = {
        c["id"]: Component(
            c["id"],
            c["name"],
            {k: tuple(v) for k, v in c["shapes"].items()},
            set(c["locks"]),
            c["origin"],
            load_params(c["id"], c["blob"]),
        )
        for c in snap["components"]
    }
    paths = link_paths(
        (
            PathRow(
                p["id"],
                p["task"],
                p["parent"],
                p["hparams"],
                p["components"],
                checked_metrics(p["metrics"]),
                int(p["metrics"].get("generation", 0)),
                int(p["metrics"].get("offspring", 0)),
            )
            for p in snap["paths"]
        ),
        comps,
    )
    state = SystemState(
        arch=RootArch.from_dict(snap["arch"]),
        root=paths[snap["root"]],
        p_ref=int(snap["p_ref"]),
        population={t: [paths[i] for i in ids] for t, ids in snap["population"].items()},
        posembed_cache={int(k): comps[i] for k, i in snap["posembed_cache"].items()},
        iterations_done={k: int(v) for k, v in snap["iterations_done"].items()},
        next_component_id=int(snap["next_component_id"]),
        next_path_id=int(snap["next_path_id"]),
    )
    return state


# ---- the store --------------------------------------------------------------------------------
class SystemStore:
    """Reads and writes one system directory; implements ``munet.system.evolve.Recorder``."""

    def __init__(self, directory: str | FsPath) -> None:
        from munet.store.blobs import BlobStore

        self.dir = FsPath(directory)
        self.journal = Journal(self.dir / "journal.jsonl")
        self.blobs = BlobStore(self.dir)
        self.events: list[dict[str, Any]] = []
        self.blob_records: dict[int, dict[str, Any]] = {}
        self._replay: dict[tuple[str, int, int], list[CandidateRecord]] = {}
        # blob records (by component id, as in the journal) of each replayed candidate's
        # accepted components, keyed by (task, iteration, batch, candidate)
        self._replay_blobs: dict[tuple[str, int, int, int], dict[str, dict[str, Any]]] = {}

    # ---- creation / opening ------------------------------------------------------------------
    @staticmethod
    def exists(directory: str | FsPath) -> bool:
        return (FsPath(directory) / "journal.jsonl").is_file()

    def create(
        self,
        config: dict[str, Any],
        root_info: dict[str, Any],
        state: SystemState,
        tasks: dict[str, dict[str, Any]],
    ) -> None:
        """Write a new system: blobs of the root components, then the ``created`` event.

        Call it holding the system lock; a directory that already holds a system is refused
        before anything is written (and the journal refuses a second ``created`` event).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.exists(self.dir):
            raise StoreError(
                f"{self.dir} already holds a munet system; resume it or use a new --system "
                "directory"
            )
        self._put_missing_blobs(state)
        self.save_config(config)
        self._append(
            {
                "type": EventKind.CREATED,
                "format": FORMAT_VERSION,
                "munet": __version__,
                "config": config,
                "root": root_info,
                "state": snapshot(state, self.blob_records),
            }
        )
        self._append({"type": EventKind.TASKS, "tasks": tasks})
        self._write_manifest()

    def save_config(self, config: dict[str, Any]) -> None:
        import yaml

        atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def read(self) -> None:
        """Load the journal (dropping a torn last line) and index it."""
        if not self.exists(self.dir):
            raise StoreError(
                f"{self.dir} holds no munet system (no journal.jsonl); run "
                f"`munet evolve --system {self.dir}` to create one"
            )
        self.events = self.journal.read()
        if not self.events or self.events[0].get("type") != EventKind.CREATED:
            raise StoreError(
                f"{self.journal.path} does not start with a 'created' event; "
                "the system directory is damaged"
            )
        fmt = self.events[0].get("format")
        if fmt != FORMAT_VERSION:
            raise StoreError(
                f"{self.dir} has format {fmt}, this munet reads {FORMAT_VERSION}; "
                "use the munet version that wrote it"
            )

    def created(self) -> dict[str, Any]:
        return self.events[0]

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Recorded task metadata (spec, classes, split info), in the order tasks were added."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.events:
            if e["type"] == EventKind.TASKS:
                out.update(e["tasks"])
        return out

    def task_cohorts(self) -> list[list[str]]:
        """The task names grouped as they were added (the ``created`` run's, then each
        ``add-task``'s), oldest first."""
        return [list(e["tasks"]) for e in self.events if e["type"] == EventKind.TASKS]

    def stored_config(self) -> dict[str, Any]:
        cfg = dict(self.events[0]["config"])
        for e in self.events:
            if e["type"] == EventKind.CONFIG:
                cfg = dict(e["config"])
        return cfg

    def load_state(self, load_tensors: bool = True) -> SystemState:
        """The state as of the last snapshot; generation events after it become the replay.

        A journal whose events lack keys or hold values of the wrong kind (a crafted or
        damaged file with valid CRCs) raises :class:`~munet.errors.StoreError`.
        """
        try:
            last = max(i for i, e in enumerate(self.events) if e["type"] in SNAPSHOT_EVENTS)
            snap = self.events[last]["state"]
            self.blob_records = {c["id"]: c["blob"] for c in snap["components"]}
            self._replay = {}
            self._replay_blobs = {}
            for e in self.events[last + 1 :]:
                if e["type"] == EventKind.GENERATION:
                    key = (e["task"], e["iteration"], e["batch"])
                    self._replay[key] = [CandidateRecord.from_json(r) for r in e["candidates"]]
                    for rec in e["candidates"]:
                        self._replay_blobs[(*key, rec["candidate"])] = rec["blobs"]
                        self.blob_records.update({int(k): v for k, v in rec["blobs"].items()})

            def load(cid: int, record: dict[str, Any]) -> Any:
                return self.blobs.get(cid, record) if load_tensors else None

            return restore(snap, load)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, AssertionError) as e:
            raise StoreError(
                f"{self.journal.path} holds a malformed event ({type(e).__name__}: {e!s:.80}); "
                "restore the system directory from backup"
            ) from None

    def replay_blobs(self) -> list[tuple[tuple[str, int, int], int, dict[str, Any]]]:
        """``((task, iteration, batch), component id, blob record)`` of every blob that the
        generation batches replayed on resume load (after :meth:`load_state`)."""
        return [
            (key, int(cid), record)
            for key, records in sorted(self._replay.items())
            for rec in records
            for cid, record in sorted(self._replay_blobs[(*key, rec.candidate)].items())
        ]

    def candidate_rows(self) -> list[CandidateRecord]:
        """Every journaled candidate, in training order."""
        return [
            CandidateRecord.from_json(rec)
            for e in self.events
            if e["type"] == EventKind.GENERATION
            for rec in e["candidates"]
        ]

    # ---- Recorder ----------------------------------------------------------------------------
    def replay(self, task: str, iteration: int, batch: int) -> list[CandidateRecord] | None:
        return self._replay.get((task, iteration, batch))

    def load_result(self, record: CandidateRecord, child: Path) -> CandidateResult:
        key = (record.task, record.iteration, record.batch, record.candidate)
        blobs = self._replay_blobs[key]
        params = {int(cid): self.blobs.get(int(cid), rec) for cid, rec in blobs.items()}
        return CandidateResult(
            record.quality,
            params,
            list(record.history),
            float(record.seconds),
            int(record.images),
            record.status,
            float(record.flops or 0.0),  # older systems did not count FLOPs
            record.hits,
        )

    def generation_done(
        self,
        task: str,
        iteration: int,
        batch: int,
        ds: Mapping[str, Any],
        records: list[CandidateRecord],
        children: Sequence[Path],
    ) -> None:
        """Blobs of accepted candidates first, then one journal line for the whole batch;
        each journaled candidate carries the blob records of its accepted components."""
        journaled = []
        for rec, child in zip(records, children, strict=True):
            blobs: dict[str, dict[str, Any]] = {}
            if rec.accepted:
                for c in child.trainable_components():
                    if c.id not in self.blob_records and self.blobs.exists(c.id):
                        self.blobs.delete([c.id])  # orphan of a run killed mid-save
                    self.blob_records[c.id] = self.blobs.put(c.id, c.params)
                    blobs[str(c.id)] = self.blob_records[c.id]
            journaled.append({**rec.to_json(), "blobs": blobs})
        self._append(
            {
                "type": EventKind.GENERATION,
                "task": task,
                "iteration": iteration,
                "batch": batch,
                "ds": dict(ds),
                "candidates": journaled,
            }
        )
        self.write_candidates_csv()

    def iteration_done(self, state: SystemState, task: str, iteration: int) -> None:
        """Snapshot the state, then delete blobs no live component uses."""
        self._put_missing_blobs(state)
        best = state.retained(task)
        self._append(
            {
                "type": EventKind.ITERATION_END,
                "task": task,
                "iteration": iteration,
                "best": best.id if best else None,
                "test_quality": best.metrics.get("test_quality") if best else None,
                "state": snapshot(state, self.blob_records),
            }
        )
        self.collect_garbage(state, keep=self._trailing_ids())
        self._write_manifest(state)

    # ---- housekeeping ------------------------------------------------------------------------
    def _trailing_ids(self) -> set[int]:
        """Blobs the previous snapshot and the generation batches after it use: a reader that
        read the journal just before the newest snapshot, or a resume after that snapshot's
        line is lost, still finds every blob it needs."""
        snaps = [i for i, e in enumerate(self.events) if e["type"] in SNAPSHOT_EVENTS]
        if len(snaps) < 2:
            return set()
        previous, newest = snaps[-2], snaps[-1]
        ids = {int(c["id"]) for c in self.events[previous]["state"]["components"]}
        for e in self.events[previous + 1 : newest]:
            if e["type"] == EventKind.GENERATION:
                ids.update(int(k) for rec in e["candidates"] for k in rec["blobs"])
        return ids

    def collect_garbage(self, state: SystemState, keep: set[int] | None = None) -> list[int]:
        """Delete blobs that neither a live component nor ``keep`` uses."""
        live = set(state.live_components()) | (keep or set())
        dead = sorted(self.blobs.ids() - live)
        self.blobs.delete(dead)
        for cid in dead:
            self.blob_records.pop(cid, None)
        cleanup_temp_files(self.dir)
        cleanup_temp_files(self.blobs.directory)
        return dead

    def _put_missing_blobs(self, state: SystemState) -> None:
        for cid, comp in state.live_components().items():
            if cid not in self.blob_records:
                self.blob_records[cid] = self.blobs.put(cid, comp.params)

    def _append(self, event: dict[str, Any]) -> None:
        self.journal.append(event)
        self.events.append(event)

    def record_tasks(self, tasks: dict[str, dict[str, Any]]) -> None:
        self._append({"type": EventKind.TASKS, "tasks": tasks})

    def record_config(self, config: dict[str, Any]) -> None:
        self._append({"type": EventKind.CONFIG, "config": config})
        self.save_config(config)

    def _write_manifest(self, state: SystemState | None = None) -> None:
        created = self.events[0]
        manifest = {
            "format": FORMAT_VERSION,
            "munet": __version__,
            "root": created["root"].get("spec"),
            "tasks": list(self.tasks()),
            "events": len(self.events),
        }
        if state is not None:
            manifest["iterations_done"] = dict(state.iterations_done)
        atomic_write_json(self.dir / "manifest.json", manifest)

    def write_candidates_csv(self) -> None:
        cols = [
            "task",
            "iteration",
            "batch",
            "candidate",
            "path_id",
            "parent_id",
            "parent_task",
            "seed_phase",
            "mutations",
            "quality",
            "score",
            "baseline",
            "margin",
            "accepted",
            "accounted_params",
            "seconds",
            "images",
            "flops",
            "status",
            "hparams",
        ]
        buf = io.StringIO()
        w = csv.DictWriter(buf, cols, extrasaction="ignore")
        w.writeheader()
        for rec in self.candidate_rows():
            row = rec.to_json()
            row["mutations"] = "; ".join(rec.mutations)
            row["hparams"] = " ".join(f"{k}={v}" for k, v in sorted(rec.hparams.items()))
            w.writerow(row)
        atomic_write_text(self.dir / "candidates.csv", buf.getvalue())

    def write_tasks_csv(self, rows: list[dict[str, Any]]) -> None:
        """tasks.csv: one row per retained path (:func:`munet.report.rows.task_rows`)."""
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        atomic_write_text(self.dir / "tasks.csv", buf.getvalue())
