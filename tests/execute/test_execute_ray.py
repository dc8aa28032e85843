"""The Ray executor on a real local Ray cluster (2 CPUs, started once for the module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from test_resume import fingerprint
from tiny import tiny_args

from munet.cli import main
from munet.execute.agents import ASYNC_KEY
from munet.execute.worker import CRASH_ONCE_ENV
from munet.store.system import SystemStore

ray = pytest.importorskip("ray", reason="the Ray executor tests need Ray: pip install 'munet[ray]'")

TASKS = "builtin:digits,builtin:glyph_digits"
RAY = ("--executor", "ray")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        _node_ip_address="127.0.0.1",  # test traffic stays on loopback
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The tiny two-task system evolved by the local executor."""
    d = tmp_path_factory.mktemp("local") / "system"
    # Ray workers run 1 torch thread (munet's auto on small machines); the bit-for-bit
    # comparisons need the reference to use the same count whatever MUNET_TEST_THREADS says
    assert main(tiny_args(d, TASKS, "threads=1")) == 0
    return fingerprint(d)


def without_agent_marks(fp: dict) -> dict:
    for rec in fp["candidates"]:
        assert rec.pop(ASYNC_KEY)
    return fp


def test_ray_gives_the_local_system_bit_for_bit_even_when_a_worker_dies(
    tmp_path, reference, capsys, monkeypatch
):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))  # the first job's worker exits abruptly
    d = tmp_path / "system"
    assert main(tiny_args(d, TASKS, *RAY, "--workers", "2")) == 0
    err = capsys.readouterr().err  # progress and notes: on stderr
    assert "ray: 2 workers on 1 node(s)" in err
    assert marker.exists()
    assert "died on [digits cand" in err and "re-queued (retry 1/2)" in err
    assert fingerprint(d) == reference  # the retried candidates trained exactly the same


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--gpus-per-worker", "1"), "gpus_per_worker=1 but the Ray cluster has no GPUs"),
        (("--gpus-per-worker", "0.25"), "gpus_per_worker=0.25 but the Ray cluster has no GPUs"),
        (("--workers", "3"), "workers=3 needs 3 CPUs (one per worker) but the Ray cluster has 2"),
    ],
)
def test_resources_the_cluster_lacks_are_refused_in_one_line(tmp_path, capsys, flags, needle):
    d = tmp_path / "system"
    assert main(tiny_args(d, TASKS, *RAY, *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("munet: error:") and "\n" not in err and needle in err
    assert not d.exists()  # refused before anything was written


def test_a_racing_generation_batch_trains_on_one_worker_as_it_does_locally(tmp_path):
    # the tiny config's V = 2: a race at R = 1 gives the winner 3 × 2 − 2 × 1 = 4 intervals
    local, remote = tmp_path / "local", tmp_path / "ray"
    race = ("race_validations=1", "threads=1")
    assert main(tiny_args(local, TASKS, *race)) == 0
    assert main(tiny_args(remote, TASKS, *race, *RAY, "--workers", "2")) == 0
    fp = fingerprint(remote)
    assert fp == fingerprint(local)
    histories = [len(rec["history"]) for rec in fp["candidates"]]
    assert histories.count(4) == len(histories) // 3 and histories.count(1) == 2 * histories.count(
        4
    )


def test_one_async_agent_at_a_time_equals_round_robin(tmp_path, reference):
    d = tmp_path / "system"
    assert main(tiny_args(d, TASKS, *RAY, "--workers", "1", "--async-tasks")) == 0
    assert without_agent_marks(fingerprint(d)) == reference


def test_async_agents_evolve_tasks_at_once_and_keep_the_system_intact(tmp_path, capsys):
    d = tmp_path / "system"
    assert main(tiny_args(d, TASKS, *RAY, "--workers", "2", "--async-tasks")) == 0
    err = capsys.readouterr().err  # progress and notes: on stderr
    assert "up to 2 tasks evolve at once" in err
    # both first iterations started before either ended: each saw only the root
    assert "== task digits iteration 0 (seeds: paths [0])" in err
    assert "== task glyph_digits iteration 0 (seeds: paths [0])" in err
    assert main(["check", "--system", str(d)]) == 0
    store = SystemStore(d)
    store.read()
    assert store.load_state(load_tensors=False).iterations_done == {
        "digits": 2,
        "glyph_digits": 2,
    }
    assert len(store.candidate_rows()) == 2 * 2 * 3


def test_ctrl_c_stops_the_workers_and_leaves_a_resumable_system(tmp_path, cluster):
    d = tmp_path / "system"
    args = tiny_args(d, TASKS, *RAY, "--ray-address", cluster)
    proc = subprocess.Popen(
        [sys.executable, "-m", "munet.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines = []
    for line in proc.stdout:  # interrupt while the first generation batch trains
        lines.append(line.decode())
        if "== task digits iteration 0" in lines[-1]:
            break
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, out[-2000:]
    assert "re-run to resume" in out
    deadline = time.time() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2  # the driver's workers are gone
    assert main(tiny_args(d, TASKS)) == 0  # resumed (by the local executor)
    assert main(["check", "--system", str(d)]) == 0
