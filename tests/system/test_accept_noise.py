"""``accept_z``: acceptance beyond validation noise (a paired sign test on the validation
examples a child and its parent disagree on)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tiny import FakeTrainer, NullRecorder, pure_state

from munet.system.assemble import assemble_child
from munet.system.evolve import CandidateResult, _judge, evolve, plan_record
from munet.system.noise import HITS_KEY, margin, pack, paired_se, unpack
from munet.system.record import CandidateRecord
from munet.system.score import accounted_params, score
from munet.system.state import NullOps

N = 100  # validation examples of the tests' task


def hits_of(right: set[int], n: int = N) -> str:
    """Packed hits of a path that gets exactly the examples ``right`` right."""
    return pack([i in right for i in range(n)])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 240])
def test_pack_round_trips_any_length(n):
    bits = np.random.default_rng(n).random(n) < 0.5
    packed = pack(bits)
    assert packed.startswith(f"{n}:") and np.array_equal(unpack(packed), bits)


@pytest.mark.parametrize("bad", ["9:ff", "3:ffff", "x:00", "8:zz"])
def test_malformed_hits_are_refused(bad):
    with pytest.raises(ValueError):
        unpack(bad)


def test_paired_standard_error_counts_only_disagreements():
    parent = hits_of(set(range(50)))
    child = hits_of(set(range(3, 56)))  # loses 0..2, wins 50..55: 9 disagreements
    assert paired_se(child, parent) == pytest.approx(3 / N)
    assert paired_se(parent, parent) == 0.0
    assert margin(child, parent, 2.0) == pytest.approx(6 / N)
    # no paired test: z = 0, a path without hits, or another set of examples
    assert margin(child, parent, 0.0) == 0.0
    assert margin(child, None, 1.0) == margin(None, parent, 1.0) == 0.0
    assert paired_se(child, hits_of(set(), N + 1)) is None


def family(**settings):
    """A state with task a's path ``p`` (quality 0.5: examples 0..49 right) and a mutated
    child of it, not yet judged."""
    state, s = pure_state(**settings)
    rng = np.random.default_rng(0)
    p, _ = assemble_child(state, state.root, "a", 3, {}, False, rng, NullOps(), s)
    p.metrics.update(quality=0.5, **{HITS_KEY: hits_of(set(range(50)))})
    state.accept(p)
    child, _ = assemble_child(state, p, "a", 3, {}, True, rng, NullOps(), s)
    return state, s, p, child


def judge(state, s, child, right: set[int]):
    """The verdict on ``child`` trained to get ``right`` right."""
    res = CandidateResult(
        len(right) / N,
        {c.id: None for c in child.trainable_components()},
        hits=hits_of(right),
    )
    return _judge(state, s, child, plan_record(child, 0, 0, 1, False, []), res)


@pytest.mark.parametrize(
    ("right", "z", "accepted"),
    [
        (set(range(51)), 0.0, True),  # one more example: the spec accepts it
        (set(range(51)), 1.0, False),  # ... but it is one standard error (1/100), not more
        (set(range(3, 54)), 1.0, False),  # 4 wins, 3 losses: +1 < sqrt(7)
        (set(range(4, 59)), 1.0, True),  # 9 wins, 4 losses: +5 > sqrt(13)
        (set(range(62)), 1.0, True),  # 12 wins, no loss: +12 > sqrt(12)
        (set(range(62)), 3.5, False),  # ... but not by 3.5 standard errors (12.1)
    ],
)
def test_a_child_must_beat_its_parent_beyond_z_paired_standard_errors(right, z, accepted):
    state, s, p, child = family(accept_z=z)
    rec = judge(state, s, child, right)
    assert rec.accepted is accepted and (child in state.population["a"]) is accepted
    assert rec.score == pytest.approx(len(right) / N)  # the reported score is not lowered
    assert rec.hits == child.metrics[HITS_KEY] == hits_of(right)
    wins, losses = len(right - set(range(50))), len(set(range(50)) - right)
    assert rec.margin == pytest.approx(z * np.sqrt(wins + losses) / N)


def test_the_margin_lowers_the_quality_inside_the_scale_controlled_score():
    # with size pressure the child (it clones more than its parent) needs more accuracy than
    # the parent to win; the margin comes on top, in accuracy, before the size factor
    verdicts = {}
    for gain in range(0, 25):
        for z in (0.0, 1.0):
            state, s, p, child = family(accept_z=z, scale_factor=0.9)
            rec = judge(state, s, child, set(range(50 + gain)))
            lowered = score(
                (50 + gain) / N - z * np.sqrt(gain) / N,
                accounted_params(child),
                state.p_ref,
                0.9,
            )
            assert rec.accepted is (lowered > state.score(p, s))
            verdicts[gain, z] = rec.accepted
    assert not verdicts[0, 0.0] and verdicts[24, 1.0]  # size costs accuracy; 24 examples pay
    noise_only = [g for g in range(25) if verdicts[g, 0.0] and not verdicts[g, 1.0]]
    assert noise_only  # gains the spec accepts at s = 0.9 and the margin does not


def test_another_tasks_parent_is_no_baseline_and_gets_no_margin():
    state, s, p, child = family(accept_z=1.0)
    b, _ = assemble_child(state, p, "b", 3, {}, True, np.random.default_rng(1), NullOps(), s)
    rec = judge(state, s, b, set(range(10)))
    assert rec.accepted and rec.margin == 0.0 and rec.baseline is None


def test_replacing_the_retained_path_also_needs_a_win_beyond_noise():
    state, s, p, _ = family(accept_z=1.0)
    state.population["a"] = [p]
    state.end_iteration("a", s)  # p is the retained path of iteration 0
    state.begin_iteration("a")
    rng = np.random.default_rng(3)
    # paths from another task's path: judged without a baseline, so accepted either way
    lucky, _ = assemble_child(state, state.root, "a", 3, {}, True, rng, NullOps(), s)
    lucky.metrics.update(quality=0.51, **{HITS_KEY: hits_of(set(range(51)))})
    state.accept(lucky)
    assert state.end_iteration("a", replace(s, accept_z=0.0)) is lucky  # the spec takes it
    state.population["a"] = [p, lucky]
    state.iterations_done["a"] = 1
    assert state.end_iteration("a", s) is p  # one example is noise: p stays
    real, _ = assemble_child(state, state.root, "a", 3, {}, True, rng, NullOps(), s)
    real.metrics.update(quality=0.6, **{HITS_KEY: hits_of(set(range(60)))})
    state.population["a"] = [p, lucky, real]
    state.iterations_done["a"] = 1
    assert state.end_iteration("a", s) is real


class HitsTrainer(FakeTrainer):
    """A FakeTrainer whose children get right their parent's examples plus one more."""

    def train_generation(self, task, children, ds, seed):
        out = []
        for c in children:
            par = c.parent
            if par.task == c.task and HITS_KEY in par.metrics:
                right = unpack(par.metrics[HITS_KEY]).copy()
                right[int(np.flatnonzero(~right)[-1])] = True  # one more example
            else:
                right = np.arange(N) < 40
            self.trained.append(c)
            out.append(
                CandidateResult(
                    float(right.mean()),
                    {x.id: None for x in c.trainable_components()},
                    hits=pack(right),
                )
            )
        return out


class Journal(NullRecorder):
    def __init__(self):
        self.records: list[CandidateRecord] = []

    def generation_done(self, task, iteration, batch, ds, records, children):
        self.records += records


@pytest.mark.parametrize("z", [0.0, 1.0])
def test_evolution_with_one_example_gains_accepts_them_only_without_a_margin(z):
    state, s = pure_state(
        accept_z=z, task_iterations=3, candidates_per_iteration=4, generation_batch_size=2
    )
    journal = Journal()
    evolve(state, {"a": 3, "b": 2}, s, HitsTrainer(), journal, NullOps())
    same_task = [r for r in journal.records if r.parent_task == r.task]
    assert same_task  # the test would prove nothing without children of a task's own paths
    assert all(r.accepted is (z == 0.0) for r in same_task)
    assert all(r.hits is not None for r in journal.records)
    best = state.population["a"][0]
    assert (best.metrics["quality"] > 0.4) is (z == 0.0)
