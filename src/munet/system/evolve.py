"""The evolutionary loop (spec §4): task iterations, generation batches, acceptance.

The loop is plain Python: training goes through a :class:`Trainer`, persistence through a
:class:`Recorder`. Every random choice comes from a stream keyed by (seed, task, task
iteration, candidate), so a resumed run replays exactly what an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from munet.errors import ResumeDivergedError
from munet.events import Progress as Event
from munet.interrupts import raise_if_interrupted
from munet.system.hparams import data_hparams, mutate_hparams
from munet.system.noise import HITS_KEY, margin
from munet.system.path import Path
from munet.system.policy import MUNET_POLICY, CandidatePolicy
from munet.system.record import CandidateRecord
from munet.system.rng import derive_seed, rng_for
from munet.system.score import accounted_params, score
from munet.system.select import select_parent
from munet.system.state import ParamOps, Settings, SystemState


@dataclass
class CandidateResult:
    """What training one candidate produced."""

    quality: float | None  # best validation accuracy; None when training diverged
    params: dict[int, Any] = field(default_factory=dict)  # best snapshot of trainable comps
    history: list[float] = field(default_factory=list)  # validation accuracy at each interval
    seconds: float = 0.0
    images: int = 0  # training images consumed
    status: str = "ok"  # "ok" or "diverged: <why>"
    flops: float = 0.0  # training (frozen prefix forward; forward + backward above) + validation
    #: which validation examples the best snapshot got right (``noise.pack``); only when the
    #: trainer is asked for them (``accept_z``)
    hits: str | None = None


class Trainer(Protocol):
    """Turns candidates into trained tensors and metrics.

    Implementations: :class:`munet.train.trainer.Trainer` (in this process) and the executors
    of :mod:`munet.execute` (local, Ray), which also satisfy ``munet.execute.Executor``; the
    tests' fakes make qualities up without training.

    The loop calls, per task iteration: ``screen`` (only with ``Settings.seed_keep`` set and
    more seed paths than that, before the first generation batch), ``train_generation`` once
    per generation batch that is not replayed from the journal, and ``test`` once for the
    retained best path. Calls come from one thread, except under ``munet.execute.agents``
    where several task iterations call at once: a trainer used there must be thread-safe.

    An implementation must guarantee:

    - it only reads paths and components: their ``params``, ``locks``, ``hparams`` and
      ``metrics`` are never changed. New tensors go back in :class:`CandidateResult` and the
      loop decides (in ``_judge``) which become a component's parameters;
    - a result depends only on the arguments (``seed`` fixes every random choice; no global
      RNG state), so a resumed or distributed run reproduces an uninterrupted local one.
    """

    def train_generation(
        self, task: str, children: Sequence[Path], ds: Mapping[str, Any], seed: int
    ) -> list[CandidateResult]:
        """Train one generation batch: one result per child, in order. Called after the
        batch's children are assembled, for batches that are not replayed.

        Each result's ``params`` maps the id of every trainable component of its child to the
        trained parameters (the best validation snapshot); ``quality`` is None when training
        diverged (the candidate is then rejected). Frozen components must come out unchanged.
        """

    def screen(self, task: str, paths: Sequence[Path]) -> list[float]:
        """A cheap estimate, one per path and higher is better, of how well each path's
        frozen features serve ``task``. Called before a task iteration's first generation
        batch when ``Settings.seed_keep`` is set (never for a resumed iteration that recorded
        its seeds). Must not change any path or component."""

    def test(self, path: Path) -> dict[str, Any]:
        """Test metrics of a retained path, including ``test_quality``. Called once per task
        iteration, after ``end_iteration``, for a best path not tested yet; the loop merges
        the metrics into ``path.metrics``. Must not change the path."""


class Recorder(Protocol):
    """Persists the loop's progress and replays it on resume.

    Implementations: :class:`munet.store.system.SystemStore` (the journal and blobs of a
    system directory), wrapped by ``munet.report.rows.TasksCsv`` (which also rewrites
    ``tasks.csv``) and by the task agents' recorders in :mod:`munet.execute.agents`. A
    recorder whose ``replay`` always returns None keeps nothing (no resume).

    The loop calls it in this order per task iteration: for each generation batch ``replay``
    (then ``load_result`` per record if replayed, else ``generation_done``), then
    ``iteration_done``. An implementation must guarantee:

    - it only reads the records, paths and state it gets (and writes blobs of the tensors
      they hold); it never changes them;
    - what ``generation_done`` and ``iteration_done`` persist is durable when they return,
      and ``replay`` gives back exactly the records that ``generation_done`` got, so a
      resumed run judges them to the same verdicts.
    """

    def replay(self, task: str, iteration: int, batch: int) -> list[CandidateRecord] | None:
        """Records of a generation batch already trained (resume), else None; called before
        the batch trains. The loop checks that they name the candidates it rebuilt."""

    def load_result(self, record: CandidateRecord, child: Path) -> CandidateResult:
        """The stored outcome of a replayed candidate (tensors of accepted ones included),
        so judging it again gives the recorded verdict without training."""

    def generation_done(
        self,
        task: str,
        iteration: int,
        batch: int,
        ds: Mapping[str, Any],
        records: list[CandidateRecord],
        children: Sequence[Path],
    ) -> None:
        """A batch that was trained (not replayed) is judged: persist its records and the
        tensors of its accepted children before the loop drops the rejected ones' tensors."""

    def iteration_done(self, state: SystemState, task: str, iteration: int) -> None:
        """The task iteration ended and its best path is tested: persist a snapshot of
        ``state`` (the point a resume restarts from)."""


Progress = Callable[..., None]


#: How :func:`next_task` spends the task iterations (``task_schedule``).
SCHEDULES = ("round_robin", "headroom")


def next_task(
    state: SystemState,
    tasks: Sequence[str],
    task_iterations: int,
    schedule: str = "round_robin",
) -> str | None:
    """The task whose iteration runs next, None when the budget is spent.

    ``round_robin`` (the spec): the first task in list order with the fewest iterations, below
    ``task_iterations``. ``headroom`` (beyond the paper): the same total of
    ``task_iterations × len(tasks)`` iterations, every task at least one, then each goes to the
    task with the most validation error per iteration it had, ``(1 - quality) / iterations``
    (ties: list order), so a task that still has much to learn gets the budget a solved one
    would waste.
    """
    done = {t: state.iterations_done.get(t, 0) for t in tasks}
    if schedule == "round_robin":
        todo = [t for t in tasks if done[t] < task_iterations]
        if not todo:
            return None
        least = min(done[t] for t in todo)
        return next(t for t in todo if done[t] == least)
    if sum(done.values()) >= task_iterations * len(tasks):
        return None
    fresh = [t for t in tasks if done[t] == 0]
    if fresh:
        return fresh[0]
    return max(tasks, key=lambda t: (1.0 - headroom_quality(state, t)) / done[t])


def headroom_quality(state: SystemState, task: str) -> float:
    """The validation quality of the task's retained path (0 when it has none or diverged)."""
    best = state.retained(task)
    q = best.metrics.get("quality") if best is not None else None
    return float(q) if q is not None else 0.0


def generation_ds(
    state: SystemState, task: str, settings: Settings, mutate: bool, rng: Any
) -> tuple[dict[str, Any], list[str]]:
    """Data hyperparameters of a generation batch: defaults ← task's best path ← mutation."""
    ds = data_hparams(settings.defaults)
    ranked = state.ranked(task, settings)
    if ranked:
        ds.update(data_hparams(ranked[0].hparams))
    if not mutate:
        return ds, []
    return mutate_hparams(ds, settings.space, settings.mutation_prob, rng, data=True)


def run_task_iteration(
    state: SystemState,
    task: str,
    num_classes: int,
    settings: Settings,
    trainer: Trainer,
    recorder: Recorder,
    ops: ParamOps,
    progress: Progress | None = None,
    policy: CandidatePolicy = MUNET_POLICY,
) -> Path:
    """Evolve one task for one iteration; returns its retained best path."""
    say = progress or (lambda *a, **k: None)
    it = state.iterations_done.get(task, 0)
    incumbent = state.retained(task) if settings.screen_incumbent else None
    seeds = choose_seeds(
        policy.seeds(state, task), task, it, settings, trainer, recorder, say, incumbent
    )
    n, g = settings.candidates_per_iteration, settings.generation_batch_size
    say(Event.ITERATION_START, task=task, iteration=it, seeds=[p.id for p in seeds])
    for b, start in enumerate(range(0, n, g)):
        ds, ds_record = generation_ds(
            state, task, settings, start >= len(seeds), rng_for(settings.seed, task, it, b, "data")
        )
        children, records = [], []
        for k in range(start, min(start + g, n)):
            rng = rng_for(settings.seed, task, it, k, "child")
            if k < len(seeds):
                parent, mutate = seeds[k], False
            else:
                parent = select_parent(
                    state.ranked(task, settings), seeds, rng, settings.parent_fallback
                )
                mutate = True
            child, mutations = policy.assemble(
                state, parent, task, num_classes, ds, mutate, rng, ops, settings
            )
            if parent.task == task:
                parent.offspring += 1  # PPDecay prefers paths with fewer children (spec §4.2)
            children.append(child)
            records.append(plan_record(child, it, b, k, not mutate, ds_record + mutations))
        replayed = recorder.replay(task, it, b)
        if replayed is not None:
            _check_replay(replayed, records)
            results = [recorder.load_result(r, c) for r, c in zip(replayed, children, strict=True)]
        else:
            raise_if_interrupted()  # a Ctrl-C swallowed on its way stops the run here
            seed = derive_seed(settings.seed, task, it, b, "train")
            results = trainer.train_generation(task, children, ds, seed)
        judged = []
        for child, planned, res in zip(children, records, results, strict=True):
            judged.append(_judge(state, settings, child, planned, res))
            say(Event.CANDIDATE, record=judged[-1])
        records = judged
        if replayed is None:
            recorder.generation_done(task, it, b, ds, records, children)
        for child, rec in zip(children, records, strict=True):
            if not rec.accepted:
                for c in child.trainable_components():
                    c.params = None
    best = state.end_iteration(task, settings)
    if "test_quality" not in best.metrics:
        best.metrics.update(trainer.test(best))
    recorder.iteration_done(state, task, it)
    say(Event.ITERATION_END, task=task, iteration=it, best=best)
    return best


def choose_seeds(
    seeds: list[Path],
    task: str,
    iteration: int,
    settings: Settings,
    trainer: Trainer,
    recorder: Recorder,
    say: Progress,
    incumbent: Path | None = None,
) -> list[Path]:
    """The seed paths a task iteration trains: all of them (the spec), or with
    ``settings.seed_keep`` the best ``seed_keep`` by the trainer's screen, in screen order.
    With an ``incumbent`` (the task's retained path, ``screen_incumbent``) it is screened too,
    and only seeds whose probe beats its own are kept: possibly none.

    A resumed iteration takes its seeds from the recorded seed-phase candidates, so a resume
    never depends on recomputing the screen's floats.
    """
    keep = settings.seed_keep
    if keep is None or (len(seeds) <= keep and incumbent is None):
        return seeds
    by_id = {p.id: p for p in seeds}
    recorded: list[Path] = []
    for b in range(math.ceil(keep / settings.generation_batch_size)):
        batch = recorder.replay(task, iteration, b)
        if batch is None:
            break
        recorded += [by_id[r.parent_id] for r in batch if r.seed_phase]
        if len(recorded) == keep or not all(r.seed_phase for r in batch):
            return recorded  # the seed phase ended inside the recorded batches
    rivals = [incumbent] if incumbent is not None else []
    scores = trainer.screen(task, [*seeds, *rivals])
    ranking = sorted(range(len(seeds)), key=lambda i: (-scores[i], i))
    order = ranking[:keep]
    if incumbent is not None:
        order = [i for i in order if scores[i] > scores[-1]]
    say(
        Event.SEEDS_SCREENED,
        task=task,
        iteration=iteration,
        scores={seeds[i].id: scores[i] for i in ranking},
        kept=[seeds[i].id for i in order],
        incumbent=(incumbent.id, scores[-1]) if incumbent is not None else None,
    )
    return [seeds[i] for i in order]


def plan_record(
    child: Path, iteration: int, batch: int, candidate: int, seed_phase: bool, mutations: list[str]
) -> CandidateRecord:
    """The record of a child before training: who it is and what it is made of."""
    parent = child.parent
    assert parent is not None
    return CandidateRecord(
        task=child.task,
        iteration=iteration,
        batch=batch,
        candidate=candidate,
        path_id=child.id,
        parent_id=parent.id,
        parent_task=parent.task,
        seed_phase=seed_phase,
        mutations=mutations,
        hparams=dict(child.hparams),
        component_ids=[c.id for c in child.components],
        trainable_ids=[c.id for c in child.trainable_components()],
    )


def _judge(
    state: SystemState,
    settings: Settings,
    child: Path,
    planned: CandidateRecord,
    res: CandidateResult,
) -> CandidateRecord:
    """Accept the child if its score strictly beats its same-task parent's (spec §4.3), with
    ``settings.accept_z`` after its quality is lowered by that many paired standard errors of
    its difference from the parent (``munet.system.noise``); returns ``planned`` filled with
    the outcome."""
    parent = child.parent
    assert parent is not None
    same_task = parent.task == child.task
    baseline = state.score(parent, settings) if same_task else -math.inf
    params = accounted_params(child)
    rec = replace(
        planned,
        quality=res.quality,
        history=list(res.history),
        seconds=round(res.seconds, 3),
        images=res.images,
        flops=res.flops,
        status=res.status,
        accounted_params=params,
        baseline=None if math.isinf(baseline) else baseline,
        score=None,
        accepted=False,
        hits=res.hits,
    )
    if res.quality is None:
        return rec
    child.metrics.update(
        quality=res.quality, history=list(res.history), seconds=res.seconds, images=res.images
    )
    if res.hits is not None:
        child.metrics[HITS_KEY] = res.hits
    child_score = score(res.quality, params, state.p_ref, settings.scale_factor)
    give = margin(res.hits, parent.metrics.get(HITS_KEY), settings.accept_z) if same_task else 0.0
    accepted = state.lowered_score(child, give, settings) > baseline
    if accepted:
        for c in child.trainable_components():
            c.params = res.params[c.id]
        state.accept(child)
    return replace(rec, score=child_score, accepted=accepted, margin=give)


def _check_replay(replayed: list[CandidateRecord], records: list[CandidateRecord]) -> None:
    """A resumed batch must rebuild the same candidates, or the stored system is inconsistent."""
    for old, new in zip(replayed, records, strict=True):
        for key in ("path_id", "parent_id", "component_ids"):
            if getattr(old, key) != getattr(new, key):
                raise ResumeDivergedError(
                    f"resume diverged at task {new.task} iteration {new.iteration} candidate "
                    f"{new.candidate}: the journal has {key}={getattr(old, key)} but this run "
                    f"rebuilt {getattr(new, key)}; the config or code changed since the batch "
                    "was trained: resume with the munet version and config that wrote it, or "
                    "use a new --system directory"
                )


def evolve(
    state: SystemState,
    tasks: Mapping[str, int],
    settings: Settings,
    trainer: Trainer,
    recorder: Recorder,
    ops: ParamOps,
    progress: Progress | None = None,
    policy: CandidatePolicy = MUNET_POLICY,
    cohorts: Sequence[Sequence[str]] | None = None,
) -> None:
    """Run task iterations in :func:`next_task`'s order until the budget is spent.

    ``tasks`` maps task names, in schedule order, to their class counts. ``cohorts``: the
    tasks grouped as they were added to the system, oldest first (None: one group). Under
    ``task_schedule: headroom`` each cohort spends its own budget in turn, so the iterations of
    tasks added later never go to earlier ones (and adding a task never changes them); round
    robin is the same either way.
    """
    for group in schedule_groups(tasks, settings.task_schedule, cohorts):
        while (
            task := next_task(state, group, settings.task_iterations, settings.task_schedule)
        ) is not None:
            run_task_iteration(
                state, task, tasks[task], settings, trainer, recorder, ops, progress, policy
            )


def schedule_groups(
    tasks: Iterable[str], schedule: str, cohorts: Sequence[Sequence[str]] | None
) -> list[list[str]]:
    """The groups :func:`evolve` schedules one after another: every task at once under round
    robin; under headroom each cohort's tasks of ``tasks``, then any task no cohort names."""
    names = list(tasks)
    if schedule == "round_robin" or not cohorts:
        return [names]
    groups = [[t for t in c if t in names] for c in cohorts]
    named = {t for g in groups for t in g}
    groups.append([t for t in names if t not in named])
    return [g for g in groups if g]


def iterations_left(
    state: SystemState,
    tasks: Iterable[str],
    settings: Settings,
    cohorts: Sequence[Sequence[str]] | None = None,
) -> int:
    """Task iterations :func:`evolve` will still run."""
    n = settings.task_iterations
    done = state.iterations_done
    groups = schedule_groups(tasks, settings.task_schedule, cohorts)
    if settings.task_schedule == "round_robin":
        return sum(max(0, n - done.get(t, 0)) for g in groups for t in g)
    return sum(max(0, n * len(g) - sum(done.get(t, 0) for t in g)) for g in groups)
