"""``task_schedule``: which task's iteration runs next (round robin, the spec; or headroom)."""

from __future__ import annotations

import pytest
from tiny import FakeTrainer, NullRecorder, pure_state

from munet.config import build_config, parse_overrides
from munet.errors import ConfigError
from munet.system.evolve import evolve, iterations_left, next_task
from munet.system.state import NullOps

#: validation quality of every candidate of a task: b has the most to learn, then c
QUALITY = {"a": 0.99, "b": 0.70, "c": 0.96, "d": 0.95}


def iteration_order(trainer, cands):
    """The task of each task iteration, in the order they ran."""
    return [c.task for c in trainer.trained[::cands]]


def run(schedule, tasks=("a", "b", "c"), iters=2, cands=2, cohorts=None, state=None, s=None):
    if state is None:
        state, s = pure_state(
            task_iterations=iters, candidates_per_iteration=cands, generation_batch_size=cands
        )
        s.task_schedule = schedule
    trainer = FakeTrainer(lambda c: QUALITY[c.task])
    evolve(state, {t: 3 for t in tasks}, s, trainer, NullRecorder(), NullOps(), cohorts=cohorts)
    return state, s, iteration_order(trainer, cands)


def test_round_robin_gives_every_task_its_iterations_in_turn():
    state, _, order = run("round_robin")
    assert order == ["a", "b", "c", "a", "b", "c"]
    assert state.iterations_done == {"a": 2, "b": 2, "c": 2}


def test_headroom_spends_the_same_total_on_the_task_with_most_error_per_iteration():
    state, _, order = run("headroom")
    # one each in list order; then b (0.30/1, 0.30/2, 0.30/3 all beat c's 0.04 and a's 0.01)
    assert order == ["a", "b", "c", "b", "b", "b"]
    assert state.iterations_done == {"a": 1, "b": 4, "c": 1}


def test_headroom_divides_error_by_the_iterations_a_task_already_had():
    # b's 0.30 per iteration beats c's 0.04 up to 7 iterations (0.30/8 = 0.0375 < 0.04): then c
    # once (0.04/2 = 0.02 < 0.0375), then b again; a (0.01) never gets a second one
    state, _, order = run("headroom", iters=4)
    assert order[3:] == ["b"] * 7 + ["c", "b"]
    assert state.iterations_done == {"a": 1, "b": 9, "c": 2}


def test_headroom_reads_only_the_state_so_a_resumed_run_picks_the_same_task():
    state, s = pure_state(task_iterations=2)
    s.task_schedule = "headroom"
    assert next_task(state, ["a", "b"], 2, "headroom") == "a"  # no iteration yet: list order
    _, _, order = run("headroom", iters=2)
    # replaying the first k choices from a fresh state reproduces the (k+1)-th
    for k in range(len(order)):
        state, s = pure_state(task_iterations=2, candidates_per_iteration=2)
        s.task_schedule = "headroom"
        trainer = FakeTrainer(lambda c: QUALITY[c.task])
        from munet.system.evolve import run_task_iteration

        for task in order[:k]:
            run_task_iteration(state, task, 3, s, trainer, NullRecorder(), NullOps())
        assert next_task(state, ["a", "b", "c"], 2, "headroom") == order[k]
    assert next_task(state, ["a", "b", "c"], 2, "round_robin") is not None  # rr: c owes one
    run_task_iteration(state, order[-1], 3, s, trainer, NullRecorder(), NullOps())
    assert next_task(state, ["a", "b", "c"], 2, "headroom") is None


def test_a_task_added_later_gets_its_own_budget_and_never_moves_the_earlier_tasks():
    state, s, _ = run("headroom")
    before = {t: state.retained(t) for t in "abc"}
    done = dict(state.iterations_done)
    cohorts = [["a", "b", "c"], ["d"]]
    assert iterations_left(state, "abcd", s, cohorts) == 2
    state, s, order = run("headroom", tasks="abcd", cohorts=cohorts, state=state, s=s)
    assert order == ["d", "d"]
    assert {t: state.retained(t) for t in "abc"} == before
    assert state.iterations_done == {**done, "d": 2}
    assert iterations_left(state, "abcd", s, cohorts) == 0


def test_without_cohorts_a_new_tasks_budget_could_go_to_an_earlier_task():
    # why evolve takes cohorts: as one group, d's second iteration goes to b (0.30/4 > 0.05/1)
    state, s, _ = run("headroom")
    state, s, order = run("headroom", tasks="abcd", state=state, s=s)
    assert order == ["d", "b"]


def test_round_robin_ignores_cohorts():
    state, s, _ = run("round_robin")
    state, s, order = run(
        "round_robin", tasks="abcd", cohorts=[["a", "b", "c"], ["d"]], state=state, s=s
    )
    assert order == ["d", "d"]
    assert iterations_left(state, "abcd", s) == 0


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["task_schedule=greedy"], "task_schedule='greedy' is unknown; use round_robin"),
        (
            ["task_schedule=headroom", "async_tasks=true", "executor=ray"],
            "set async_tasks=false or task_sch",
        ),
    ],
)
def test_bad_schedules_are_refused_in_one_line(overrides, needle):
    with pytest.raises(ConfigError) as info:
        build_config(overrides=parse_overrides(overrides))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_default_is_the_spec_and_a_stored_config_without_the_key_reads_as_it():
    from munet.config import Config, with_legacy

    assert Config().task_schedule == "round_robin"
    assert with_legacy({})["task_schedule"] == "round_robin"
