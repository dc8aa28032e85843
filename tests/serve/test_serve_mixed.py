"""Mixed-task batches: shared stages run once, results bit-identical to per-task predict."""

from __future__ import annotations

import pytest
import torch

import munet
from munet.data.load import load_tasks
from munet.errors import TaskError


def _images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)


def assert_mixed_equals_per_task(system, requests):
    """Mixed logits and predictions equal per-task calls on each task's requests, bit for bit."""
    logits, preds = {}, {}
    for task in dict.fromkeys(t for t, _ in requests):
        images = [img for t, img in requests if t == task]
        logits[task] = iter(system.logits(task, images))
        preds[task] = iter(system.predict(task, images, top_k=3))
    want_logits = [next(logits[t]) for t, _ in requests]
    want_preds = [next(preds[t]) for t, _ in requests]
    got = system.logits_mixed(requests)
    assert all(torch.equal(a, b) for a, b in zip(got, want_logits, strict=True))
    assert system.predict_mixed(requests, top_k=3) == want_preds


def test_mixed_batch_equals_per_task_predict_on_the_evolved_system(evolved):
    data = load_tasks(["builtin:digits", "builtin:glyph_digits"])
    digits, glyphs = data["digits"].test_x[:40], data["glyph_digits"].test_x[:40]
    requests = []
    for i in range(40):
        requests.append(("digits" if i % 3 else "glyph_digits", digits[i]))
        requests.append(("glyph_digits", glyphs[i]))
        if i % 4 == 0:  # the same image for both tasks, and an RGB image for a gray task
            requests.append(("digits", glyphs[i]))
            requests.append(("glyph_digits", glyphs[i].expand(3, -1, -1)))
    assert_mixed_equals_per_task(evolved, requests)


def test_mixed_batch_equals_per_task_predict_across_sharing_patterns(synthetic):
    assert synthetic.shared_stages("alpha", "beta") == 2  # embedding, block 0
    assert synthetic.shared_stages("alpha", "gamma") == 2  # then gamma's adapter
    assert synthetic.shared_stages("alpha", "delta") == 0  # 16 px: another embedding
    x = _images(30, 3, 32, seed=1)
    g = torch.Generator().manual_seed(2)
    order = torch.randint(0, 4, (90,), generator=g).tolist()
    picks = torch.randint(0, 30, (90,), generator=g).tolist()
    requests = [(synthetic.tasks[t], x[i]) for t, i in zip(order, picks, strict=True)]
    assert_mixed_equals_per_task(synthetic, requests)


def _stage_runs(system, requests=None, per_task=None):
    before = system.runner.stage_runs
    if requests is not None:
        system.logits_mixed(requests)
    for task, x in (per_task or {}).items():
        system.logits(task, x)
    return system.runner.stage_runs - before


def test_shared_stages_run_once_for_the_same_images(synthetic_dir):
    # built, not evolved, so the sharing is known: alpha and beta share embedding and block 0
    system = munet.load(synthetic_dir, batch_size=8)
    assert system.shared_stages("alpha", "beta") == 2
    stages = {t: len(system._routes[t].keys) for t in ("alpha", "beta")}
    assert stages == {"alpha": 5, "beta": 5}  # embedding, 2 blocks, norm, head
    x = _images(16, 3, 32, seed=3)
    requests = [(t, img) for img in x for t in ("alpha", "beta")]
    # 16 images = 2 chunks of 8: the 2 shared stages once, then 3 + 3 private ones
    assert _stage_runs(system, requests) == 2 * (2 + 3 + 3)
    assert _stage_runs(system, per_task={"alpha": x, "beta": x}) == 2 * (5 + 5)


def test_mixed_batches_of_the_evolved_system_count_shared_stages_once(two_task_system):
    # whatever evolution retained, stages shared by the two paths run once per chunk
    system = munet.load(two_task_system, batch_size=8)
    shared = system.shared_stages("digits", "glyph_digits")
    n = {t: len(system._routes[t].keys) for t in system.tasks}
    x = _images(16, 1, 8, seed=3)
    requests = [(t, img) for img in x for t in ("digits", "glyph_digits")]
    want = 2 * (shared + (n["digits"] - shared) + (n["glyph_digits"] - shared))
    assert _stage_runs(system, requests) == want
    assert _stage_runs(system, per_task={t: x for t in system.tasks}) == 2 * sum(n.values())


def test_logits_do_not_depend_on_the_rest_of_the_batch(synthetic):
    x = _images(37, 3, 20, seed=4)
    for task in synthetic.tasks:
        full = synthetic.logits(task, x)
        assert torch.equal(synthetic.logits(task, x[5:6]), full[5:6])
        assert torch.equal(synthetic.logits(task, x[30:]), full[30:])


def test_mixed_errors_and_edge_cases(synthetic):
    assert synthetic.predict_mixed([]) == []
    with pytest.raises(TaskError, match="unknown task 'nope'; this system has: alpha"):
        synthetic.predict_mixed([("alpha", _images(1, 3, 8, 0)[0]), ("nope", None)])
    with pytest.raises(TaskError, match="one image"):
        synthetic.predict_mixed([("alpha", _images(2, 3, 8, 0))])
