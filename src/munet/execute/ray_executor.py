"""The Ray executor: the candidates of a generation batch train in parallel on Ray actors.

Each actor owns one CPU (one torch thread) or a share of a GPU, loads task data itself from the
task specs, and caches frozen components by id. The driver ``ray.put``s every frozen component
once (frozen components never change, so the references are cached across generation batches)
and sends each candidate's spec with its trainable initial tensors. A generation batch is split
into interleaved chunks, one per worker; each chunk replays the batch's deterministic stream of
training batches, so every candidate's result is bit-identical to the local executor's on CPU.

A job whose worker dies (killed, out of memory, node lost) is re-queued on a fresh worker, at
most ``max_retries`` times. Several threads may call :meth:`RayExecutor.train_generation` at
once (asynchronous task agents); they share the pool of idle workers.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from munet.errors import ConfigError, ExecutorError, MunetError
from munet.execute.worker import (
    CandidateSpec,
    TaskSource,
    WorkerCore,
    candidate_spec,
    frozen_components,
    with_device,
)
from munet.interrupts import raise_if_interrupted
from munet.system.evolve import CandidateResult
from munet.system.path import Path

Log = Callable[[str], None]

logger = logging.getLogger(__name__)

#: Environment variables forwarded to workers (cache folders, dataset locations, test hooks).
FORWARD_ENV_PREFIX = "MUNET_"


def plan_workers(resources: Mapping[str, float], workers: int, gpus_per_worker: float) -> int:
    """How many workers to start on a cluster with ``resources``; refuses what cannot fit.

    ``workers`` 0 means one per CPU, or per ``gpus_per_worker`` share of the GPUs. Every worker
    also takes one CPU.
    """
    cpus = int(resources.get("CPU", 0))
    gpus = float(resources.get("GPU", 0.0))
    if gpus_per_worker > 0:
        if gpus == 0:
            raise ConfigError(
                f"gpus_per_worker={gpus_per_worker:g} but the Ray cluster has no GPUs; "
                "use --gpus-per-worker 0 to train on CPUs"
            )
        fit = int(gpus / gpus_per_worker + 1e-9)
        if fit == 0:
            raise ConfigError(
                f"gpus_per_worker={gpus_per_worker:g} but the Ray cluster has only {gpus:g} "
                f"GPUs; use --gpus-per-worker {gpus:g} or less"
            )
        n = workers or min(fit, cpus)
        if n > fit:
            raise ConfigError(
                f"workers={n} x gpus_per_worker={gpus_per_worker:g} needs {n * gpus_per_worker:g}"
                f" GPUs but the Ray cluster has {gpus:g}; use --workers {fit} or fewer"
            )
    else:
        n = workers or cpus
    if n > cpus:
        raise ConfigError(
            f"workers={n} needs {n} CPUs (one per worker) but the Ray cluster has {cpus}; "
            f"use --workers {cpus} or fewer"
        )
    if n < 1:
        raise ConfigError("the Ray cluster has no CPUs for workers; add a node with CPUs")
    return n


def unreachable_address(address: str | None, timeout: float = 5.0) -> str | None:
    """Why a ``host:port`` Ray address cannot be reached, else None (Ray itself would retry
    a wrong address for minutes). ``auto`` and unset addresses are left to Ray."""
    if not address or address in ("auto", "local"):
        return None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        return str(err) or type(err).__name__
    return None


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARD_ENV_PREFIX)}


class _Worker:
    """The body of a Ray actor: a :class:`WorkerCore` plus fetching of frozen components."""

    def __init__(
        self,
        arch: Any,
        sources: Mapping[str, TaskSource],
        settings: Any,
        env: Mapping[str, str],
    ) -> None:
        import torch

        os.environ.update(env)  # the driver's MUNET_* settings (cheaper than a runtime_env)
        torch.set_num_threads(1)  # one CPU per worker; also what makes results bit-identical
        self.core = WorkerCore(arch, sources, settings)
        self.device = settings.device

    def ready(self) -> str:
        import socket

        return f"{socket.gethostname()}:{os.getpid()}:{self.device}"

    def train(
        self,
        task: str,
        specs: list[CandidateSpec],
        ds: dict[str, Any],
        seed: int,
        frozen: dict[int, Any],
    ) -> tuple[list[CandidateResult], list[str]]:
        self._fetch(frozen)
        return self.core.train(task, specs, ds, seed)

    def test(self, spec: CandidateSpec, frozen: dict[int, Any]) -> tuple[dict, list[str]]:
        self._fetch(frozen)
        return self.core.test(spec)

    def _fetch(self, refs: Mapping[int, Any]) -> None:
        import ray

        need = self.core.missing(list(refs))
        if need:
            self.core.add_frozen(dict(zip(need, ray.get([refs[i] for i in need]), strict=True)))


@dataclass
class _Actor:
    slot: int
    handle: Any


@dataclass
class _Job:
    kind: str  # "train" or "test"
    task: str
    specs: list[CandidateSpec]
    index: list[int]  # positions of the specs in the generation batch
    frozen: dict[int, Any]  # component id -> ObjectRef
    ds: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    tries: int = 0

    def label(self) -> str:
        ids = ",".join(str(s.path_id) for s in self.specs)
        return f"{self.task} path {ids}" if self.kind == "test" else f"{self.task} cand {ids}"


class RayExecutor:
    """Trains candidates on Ray actors; see the module docstring."""

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int = 0,
        gpus_per_worker: float = 0.0,
        log: Log | None = None,
        max_retries: int = 2,
        start_timeout: float = 300.0,
        keep_calls: int = 64,
    ) -> None:
        """Join (or start) the Ray cluster and check it can hold the workers; starts none."""
        import ray

        self._ray = ray
        self.log = log or logger.info
        self.warn = log or logger.warning
        self.detail = log or logger.debug  # workers' trainer lines (debug, as in-process)
        self.gpus_per_worker = gpus_per_worker
        self.max_retries = max_retries
        self.start_timeout = start_timeout
        self.keep_calls = keep_calls
        self._closed = False
        self._settings: Any = None
        self._lock = threading.Lock()
        self._refs: dict[int, Any] = {}
        self._ref_use: dict[int, int] = {}
        self._calls = 0
        self._actors: list[_Actor] = []
        self._idle: queue.Queue[_Actor] = queue.Queue()
        self._owns_ray = False
        if not ray.is_initialized():
            unreachable = unreachable_address(address)
            if unreachable:
                raise ConfigError(
                    f"cannot reach a Ray cluster at ray_address={address!r} ({unreachable}); "
                    "check the address, or start a cluster with `ray start --head`"
                )
            try:
                # a cluster of our own stays on loopback: no port opens on a network interface
                local = {"_node_ip_address": "127.0.0.1"} if address is None else {}
                ray.init(
                    address=address,
                    include_dashboard=False,
                    logging_level=logging.ERROR,
                    **local,
                )
            except (ConnectionError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ConfigError(
                    f"cannot start or reach a Ray cluster at ray_address={address!r} ({first}); "
                    "start one with `ray start --head`, or leave --ray-address out for a "
                    "local one"
                ) from None
            self._owns_ray = True
        try:
            self.workers = plan_workers(ray.cluster_resources(), workers, gpus_per_worker)
        except BaseException:
            self.close()
            raise
        self.split = self.workers  # chunks per generation batch

    def start(self, arch: Any, tasks: Mapping[str, Any], settings: Any) -> RayExecutor:
        """Start the workers; each loads ``tasks`` (name -> TaskData) itself from its spec."""
        ray = self._ray
        device = "cuda" if self.gpus_per_worker > 0 else "cpu"
        sources = {
            name: TaskSource(d.spec, d.split_info["fingerprint"]) for name, d in tasks.items()
        }
        self._cls = ray.remote(_Worker).options(
            num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=0
        )
        self._init_args = (arch, sources, with_device(settings, device), forwarded_env())
        self._screen_args = (arch, tasks, settings)
        self._settings = settings
        with self._lock:
            self._actors = [self._spawn(slot) for slot in range(self.workers)]
        where = self._wait_ready(self._actors)
        hosts = sorted({w.split(":")[0] for w in where})
        share = f", {self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else ""
        self.log(
            f"ray: {self.workers} workers on {len(hosts)} node(s) ({', '.join(hosts)}), "
            f"device {device}{share}"
        )
        for a in self._actors:
            self._idle.put(a)
        return self

    # ---- the Trainer protocol ----------------------------------------------------------------
    def train_generation(
        self, task: str, children: Sequence[Path], ds: Mapping[str, Any], seed: int
    ) -> list[CandidateResult]:
        """Train a generation batch in ``split`` interleaved chunks on parallel workers."""
        specs = [candidate_spec(c) for c in children]
        refs = self._frozen_refs(children)
        m = max(1, min(len(children), self.split))
        if self._settings.races(len(children)):
            m = 1  # a race compares every candidate of the batch mid-training: one job
        jobs = []
        for j in range(m):
            index = list(range(j, len(children), m))
            chunk = [specs[i] for i in index]
            frozen = {cid: refs[cid] for s in chunk for cid in s.frozen_ids()}
            jobs.append(_Job("train", task, chunk, index, frozen, dict(ds), seed))
        results: list[Any] = [None] * len(children)
        for job, out in zip(jobs, self._run(jobs), strict=True):
            for i, r in zip(job.index, out, strict=True):
                results[i] = r
        return results

    def test(self, path: Path) -> dict[str, Any]:
        spec = candidate_spec(path)
        refs = self._frozen_refs([path])
        (metrics,) = self._run([_Job("test", path.task, [spec], [0], refs)])
        return metrics

    def screen(self, task: str, paths: Sequence[Path]) -> list[float]:
        """Seed screening is a few forward passes over frozen features: it runs in the driver."""
        import torch

        from munet.train.trainer import screen_paths

        arch, tasks, settings = self._screen_args
        return screen_paths(arch, paths, tasks[task], settings, torch.device("cpu"))

    def set_concurrent_batches(self, n: int) -> None:
        """``n`` generation batches will train at once (task agents): split each over
        ``workers // n`` workers."""
        self.split = max(1, self.workers // max(1, n))

    def close(self) -> None:
        """Stop every worker (and the local Ray instance if this executor started it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            actors, self._actors = self._actors, []
            self._refs.clear()
        for a in actors:
            try:
                self._ray.kill(a.handle, no_restart=True)
            except Exception:  # already dead
                pass
        if self._owns_ray:
            self._ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- workers -----------------------------------------------------------------------------
    def _spawn(self, slot: int) -> _Actor:
        return _Actor(slot, self._cls.remote(*self._init_args))

    def _wait_ready(self, actors: Sequence[_Actor]) -> list[str]:
        ray = self._ray
        pending = [a.handle.ready.remote() for a in actors]
        done, _ = ray.wait(pending, num_returns=len(pending), timeout=self.start_timeout)
        if len(done) < len(pending):
            raise ConfigError(
                f"only {len(done)} of {len(pending)} Ray workers started within "
                f"{self.start_timeout:.0f} s; the cluster cannot place that many workers "
                "(one CPU each, plus their GPU share); ask for fewer with --workers"
            )
        return ray.get(pending)

    def _take_idle(self, wait: bool) -> _Actor | None:
        while True:
            if self._closed:
                raise ExecutorError("the Ray executor was closed while jobs were pending")
            try:
                return self._idle.get(timeout=0.2) if wait else self._idle.get_nowait()
            except queue.Empty:
                if not wait:
                    return None

    def _submit(self, actor: _Actor, job: _Job) -> Any:
        if job.kind == "train":
            return actor.handle.train.remote(job.task, job.specs, job.ds, job.seed, job.frozen)
        return actor.handle.test.remote(job.specs[0], job.frozen)

    def _run(self, jobs: list[_Job]) -> list[Any]:
        """Run jobs on idle workers as they free up; re-queue the jobs of workers that die."""
        ray = self._ray
        dead = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
        )
        out: list[Any] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        inflight: dict[Any, tuple[int, _Actor]] = {}
        while pending or inflight:
            while pending:
                actor = self._take_idle(wait=not inflight)
                if actor is None:
                    break
                i = pending.popleft()
                inflight[self._submit(actor, jobs[i])] = (i, actor)
            # a timeout, so that Ctrl-C reaches Python between waits
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2 if pending else 1.0)
            raise_if_interrupted()  # even if Ray's finalizers swallowed the KeyboardInterrupt
            for ref in ready:
                i, actor = inflight.pop(ref)
                try:
                    value, logs = ray.get(ref)
                except dead as err:
                    self._replace(actor, jobs[i], err)
                    pending.appendleft(i)
                    continue
                except ray.exceptions.RayTaskError as err:
                    if isinstance(err.cause, MunetError):  # a user mistake: its one line
                        raise err.cause from None
                    raise
                self._idle.put(actor)
                for line in logs:
                    self.detail(f"  worker {actor.slot} [{jobs[i].label()}] {line}")
                out[i] = value
        return out

    def _replace(self, actor: _Actor, job: _Job, err: BaseException) -> None:
        """Swap a dead worker for a fresh one; give up on a job after ``max_retries``."""
        job.tries += 1
        if self._closed:
            raise ExecutorError("the Ray executor was closed while jobs were running")
        retry = job.tries <= self.max_retries
        self.warn(
            f"  worker {actor.slot} died on [{job.label()}] ({type(err).__name__}); "
            + (f"re-queued (retry {job.tries}/{self.max_retries})" if retry else "giving up")
        )
        try:
            self._ray.kill(actor.handle, no_restart=True)
        except Exception:  # already gone
            pass
        fresh = self._spawn(actor.slot)
        with self._lock:
            self._actors = [fresh if a is actor else a for a in self._actors]
        self._wait_ready([fresh])
        self._idle.put(fresh)
        if not retry:
            raise ExecutorError(
                f"workers died {job.tries} times on [{job.label()}] (last: "
                f"{type(err).__name__}); see the Ray logs under /tmp/ray/session_latest/logs; "
                "re-run to resume"
            )

    # ---- frozen components -------------------------------------------------------------------
    def _frozen_refs(self, paths: Sequence[Path]) -> dict[int, Any]:
        """ObjectRefs of the paths' frozen components, each put once and cached by id."""
        with self._lock:
            self._calls += 1
            out = {}
            for cid, comp in frozen_components(paths).items():
                if cid not in self._refs:
                    self._refs[cid] = self._ray.put(comp.params)
                self._ref_use[cid] = self._calls
                out[cid] = self._refs[cid]
            for cid in [c for c, n in self._ref_use.items() if self._calls - n > self.keep_calls]:
                self._refs.pop(cid, None)
                self._ref_use.pop(cid)
            return out
