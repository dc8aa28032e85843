"""The worker side without Ray: rebuilt candidates train bit-identically to the local Trainer,
whatever chunks a generation batch is split into; resource planning; config checks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from tiny import micro_state, root_children

from munet.config import build_config
from munet.data.load import load_tasks
from munet.errors import ConfigError, TaskError
from munet.execute.ray_executor import plan_workers, unreachable_address
from munet.execute.worker import (
    TaskCache,
    TaskSource,
    WorkerCore,
    candidate_spec,
    crash_once,
    frozen_components,
)
from munet.system.rng import rng_for
from munet.train.trainer import Trainer, TrainSettings


@pytest.fixture(scope="module")
def generation():
    """A root state and four digits candidates: one seed-phase child, three mutated."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root, state, s, ds = micro_state(mutation_prob=0.5, seed=3)
    tasks = load_tasks(["builtin:digits"])
    children = root_children(
        state, s, ds, 4, mutate=lambda k: k > 0, rng=lambda k: rng_for(3, "digits", k)
    )
    ts = TrainSettings(batch_size=32, validations=2, interval_cap=6, validation_batches=2)
    yield root.arch, tasks, ts, children, ds
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("head_init", "score_split"), [("zeros", "subset"), ("probe", "full")])
def test_chunks_on_a_worker_equal_the_local_trainer_bit_for_bit(generation, head_init, score_split):
    arch, tasks, ts, children, ds = generation
    ts = replace(ts, head_init=head_init, score_split=score_split)
    assert any(c.components[-1].origin == "new" for c in children)  # probe has a head to fit
    data = tasks["digits"]
    sources = {"digits": TaskSource(data.spec, data.split_info["fingerprint"])}
    core = WorkerCore(arch, sources, ts)
    specs = [candidate_spec(c) for c in children]
    before = {c.id: {k: v.clone() for k, v in c.params.items()} for c in children[1].components}
    core.add_frozen({i: c.params for i, c in frozen_components(children).items()})
    assert core.missing(list(frozen_components(children))) == []
    remote = [None] * 4
    for chunk in ([0, 2], [3], [1]):  # any split, any order
        results, logs = core.train("digits", [specs[i] for i in chunk], ds, seed=11)
        assert logs == []
        for i, r in zip(chunk, results, strict=True):
            remote[i] = r
    # the worker trained copies: the driver's tensors are untouched
    for c in children[1].components:
        assert all(torch.equal(v, before[c.id][k]) for k, v in c.params.items())
    local = Trainer(arch, tasks, ts).train_generation("digits", children, ds, seed=11)
    for a, b in zip(remote, local, strict=True):
        assert (a.quality, a.history, a.images, a.status) == (b.quality, b.history, b.images, "ok")
        assert a.params.keys() == b.params.keys() and a.params
        for cid in a.params:
            for k, v in a.params[cid].items():
                assert torch.equal(v, b.params[cid][k]), (cid, k)


def test_a_worker_refuses_task_data_that_differs_from_the_drivers(generation):
    cache = TaskCache({"digits": TaskSource("builtin:digits", "0" * 64)})
    with pytest.raises(TaskError, match="digits.*same data"):
        cache["digits"]


def test_crash_hook_exits_once(tmp_path):
    marker = tmp_path / "crashed"
    exits = []
    crash_once(str(marker), exits.append)
    crash_once(str(marker), exits.append)
    crash_once(None, exits.append)
    assert exits == [1] and marker.exists()


@pytest.mark.parametrize(
    ("resources", "workers", "gpus", "want"),
    [
        ({"CPU": 2.0}, 0, 0.0, 2),
        ({"CPU": 2.0}, 1, 0.0, 1),
        ({"CPU": 16.0, "GPU": 2.0}, 0, 0.5, 4),
        ({"CPU": 2.0, "GPU": 4.0}, 0, 0.5, 2),  # one CPU per worker too
        ({"CPU": 2.0}, 3, 0.0, "workers=3 needs 3 CPUs (one per worker) but the Ray cluster has 2"),
        ({"CPU": 2.0}, 0, 1.0, "gpus_per_worker=1 but the Ray cluster has no GPUs"),
        ({"CPU": 8.0, "GPU": 2.0}, 0, 3.0, "has only 2 GPUs"),
        ({"CPU": 8.0, "GPU": 2.0}, 5, 0.5, "needs 2.5 GPUs but the Ray cluster has 2"),
    ],
)
def test_plan_workers(resources, workers, gpus, want):
    if isinstance(want, int):
        assert plan_workers(resources, workers, gpus) == want
    else:
        with pytest.raises(ConfigError, match=want.replace("(", r"\(").replace(")", r"\)")):
            plan_workers(resources, workers, gpus)


def test_an_unreachable_ray_address_is_named_without_waiting_for_ray():
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "refused" in unreachable_address(f"127.0.0.1:{port}").lower()
    assert "refused" in unreachable_address(f"ray://127.0.0.1:{port}").lower()
    assert unreachable_address("auto") is None and unreachable_address(None) is None


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"executor": "spark"}, "executor='spark' is unknown"),
        ({"workers": 2}, "workers=2 needs executor=ray"),
        ({"async_tasks": True}, "async_tasks=True needs executor=ray"),
        ({"ray_address": "auto"}, "ray_address='auto' needs executor=ray"),
        ({"executor": "ray", "gpus_per_worker": 1.5}, "gpus_per_worker=1.5 is invalid"),
        ({"executor": "ray", "workers": -1}, "workers=-1 must be >= 0"),
        ({"executor": "ray", "device": "cuda"}, "device=cuda but gpus_per_worker=0"),
    ],
)
def test_executor_config_errors_are_one_line(overrides, needle):
    with pytest.raises(ConfigError) as err:
        build_config(None, overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)
