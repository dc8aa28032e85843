"""Seed screening (``seed_phase: screen``): which seed paths a task iteration trains."""

from __future__ import annotations

from tiny import FakeTrainer, NullRecorder, pure_state

from munet.system.evolve import choose_seeds, evolve
from munet.system.hparams import image_sizes_for, search_space_for
from munet.system.path import Path
from munet.system.record import CandidateRecord
from munet.system.state import NullOps


class ScreeningTrainer(FakeTrainer):
    """Screen score: a fixed preference per seed task (the root scores lowest)."""

    def __init__(self, prefer):
        super().__init__()
        self.prefer = prefer
        self.screened = []

        self.parents = []  # (task, parent task) when trained: relinking changes .parent later

    def train_generation(self, task, children, ds, seed):
        self.parents += [(c.task, c.parent.task) for c in children]
        return super().train_generation(task, children, ds, seed)

    def screen(self, task, paths):
        self.screened.append((task, [p.task for p in paths]))
        return [self.prefer.get(p.task, 0.0) for p in paths]


def run(keep, prefer, tasks=4, cands=6):
    state, s = pure_state(
        seed=1, task_iterations=2, candidates_per_iteration=cands, generation_batch_size=3
    )
    s.seed_keep = keep
    trainer = ScreeningTrainer(prefer)
    evolve(state, {f"t{i}": 3 for i in range(tasks)}, s, trainer, NullRecorder(), NullOps())
    return state, trainer


def first_parents(trainer, task, n):
    return [p for t, p in trainer.parents if t == task][:n]


def test_without_seed_keep_every_seed_path_is_trained_and_nothing_is_screened():
    state, trainer = run(None, {})
    assert trainer.screened == []
    # t3's first iteration: root, t0, t1, t2 as seeds, then 2 mutated children
    assert first_parents(trainer, "t3", 4) == ["t2", "t1", "t0", "NOT_TRAINABLE"]


def test_screening_trains_only_the_best_seeds_in_screen_order():
    state, trainer = run(2, {"t0": 0.9, "t1": 0.2, "t2": 0.5})
    first = first_parents(trainer, "t3", 6)
    assert first[:2] == ["t0", "t2"]  # the best two by the screen, then mutated children
    assert set(first[2:]) <= {"t0", "t2", "t3"}  # of the kept seeds or t3's accepted paths
    # tasks with at most 2 seeds are not screened: t0 (root), t1 (root, t0)
    assert [t for t, _ in trainer.screened][:2] == ["t2", "t3"]
    assert ("t3", ["t2", "t1", "t0", "NOT_TRAINABLE"]) in trainer.screened


def test_ties_keep_the_spec_order_newest_first():
    state, trainer = run(1, {})  # every seed scores 0: keep the first (newest) seed
    assert first_parents(trainer, "t3", 1) == ["t2"]


class ReplayRecorder(NullRecorder):
    def __init__(self, batches):
        self.batches = batches

    def replay(self, task, iteration, batch):
        return self.batches.get((task, iteration, batch))


def test_a_resumed_iteration_takes_its_seeds_from_the_record_not_a_new_screen():
    state, s = pure_state(generation_batch_size=2)
    s.seed_keep = 2
    seeds = [Path(i, f"x{i}", state.root, dict(state.root.hparams), [], {}) for i in (13, 12, 11)]
    seeds.append(state.root)
    recorded = {
        ("t", 0, 0): [
            CandidateRecord("t", 0, 0, 0, 20, 11, "x11", True, [], {}, [], []),
            CandidateRecord("t", 0, 0, 1, 21, 0, "root", True, [], {}, [], []),
        ]
    }
    trainer = ScreeningTrainer({"x13": 1.0})
    got = choose_seeds(seeds, "t", 0, s, trainer, ReplayRecorder(recorded), lambda *a, **k: 0)
    assert [p.id for p in got] == [11, 0] and trainer.screened == []
    got = choose_seeds(seeds, "t", 1, s, trainer, ReplayRecorder(recorded), lambda *a, **k: 0)
    assert [p.id for p in got][0] == 13 and len(trainer.screened) == 1


def test_min_patches_drops_degenerate_image_sizes():
    assert image_sizes_for(16, min_patches=2)[:2] == [32, 48]
    assert image_sizes_for(16, min_patches=1)[:2] == [16, 32]  # the spec's list
    assert image_sizes_for(8, min_patches=2)[0] == 16
    space = search_space_for(3, 16, min_patches=2)
    assert 16 not in space["ds_image_size"] and space["ds_image_size"][0] == 32


def test_parent_fallback_best_keeps_every_later_mutated_child_in_its_task():
    """``parent_fallback: best``: once a task has a path, a walk that accepts nothing ends at
    the task's best path instead of a random seed path (the spec's uniform fallback)."""

    def mutated_parents(fallback):
        state, s = pure_state(
            seed=3, task_iterations=3, candidates_per_iteration=6, generation_batch_size=6
        )
        s.seed_keep, s.parent_fallback = 1, fallback
        trainer = ScreeningTrainer({"t0": 0.9, "t1": 0.2, "t2": 0.5})
        evolve(state, {f"t{i}": 3 for i in range(4)}, s, trainer, NullRecorder(), NullOps())
        # one generation batch per task iteration: the screened seed, then 5 mutated children
        by_task = {}
        for task, parent in trainer.parents:
            by_task.setdefault(task, []).append(parent)
        return {t: [ps[i * 6 + 1 : i * 6 + 6] for i in (1, 2)] for t, ps in by_task.items()}

    best, uniform = mutated_parents("best"), mutated_parents("uniform")
    assert all(p == t for t, its in best.items() for it in its for p in it)
    assert any(p != t for t, its in uniform.items() for it in its for p in it)


def test_screen_incumbent_trains_a_seed_only_when_its_probe_beats_the_task_path():
    def first_candidates(own_score):
        state, s = pure_state(
            seed=1, task_iterations=2, candidates_per_iteration=3, generation_batch_size=3
        )
        s.seed_keep, s.screen_incumbent = 1, True
        trainer = ScreeningTrainer({"t0": 0.5, "t1": 0.5, "t2": 0.5, "t3": own_score})
        events = []
        evolve(
            state,
            {f"t{i}": 3 for i in range(4)},
            s,
            trainer,
            NullRecorder(),
            NullOps(),
            lambda e, **info: events.append((e, info)),
        )
        return first_parents(trainer, "t3", 6), trainer.screened, events

    # iteration 0: t3 has no path, so the best seed (t2, newest of the ties) is trained first;
    # iteration 1: its own path probes 0.9 > 0.5, so no seed: 3 mutated children of t3
    parents, screened, events = first_candidates(0.9)
    assert parents[0] == "t2" and parents[3:] == ["t3"] * 3
    assert screened[-1] == ("t3", ["t2", "t1", "t0", "NOT_TRAINABLE", "t3"])  # the rival last
    last = [i for e, i in events if e == "seeds_screened" and i["task"] == "t3"][-1]
    assert last["kept"] == [] and last["incumbent"][1] == 0.9
    # its own path probes worse than every other task's: the best seed is trained again
    parents, _, _ = first_candidates(0.1)
    assert parents[3] in ("t0", "t1", "t2")


def test_a_resumed_iteration_whose_seed_phase_was_empty_does_not_screen_again():
    state, s = pure_state(generation_batch_size=3)
    s.seed_keep = 1
    seeds = [Path(i, f"x{i}", state.root, dict(state.root.hparams), [], {}) for i in (13, 12)]
    recorded = {("t", 1, 0): [CandidateRecord("t", 1, 0, 0, 30, 7, "t", False, [], {}, [], [])]}
    trainer = ScreeningTrainer({"x13": 1.0})
    own = Path(7, "t", state.root, dict(state.root.hparams), [], {})
    say = lambda *a, **k: 0  # noqa: E731
    got = choose_seeds(seeds, "t", 1, s, trainer, ReplayRecorder(recorded), say, own)
    assert got == [] and trainer.screened == []
