"""Mixed-task batches: shared stages run once, results bit-identical to per-task predict."""

from __future__ import annotations

import pytest
import torch

import munet
from munet.errors import TaskError
from munet.runner import load_tasks


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


def test_shared_stages_run_once_for_the_same_images(two_task_system):
    system = munet.load(two_task_system, batch_size=8)
    assert system.shared_stages("digits", "glyph_digits") == 4  # all but the heads
    x = _images(16, 1, 8, seed=3)
    requests = [(t, img) for img in x for t in ("digits", "glyph_digits")]
    before = system.runner.stage_runs
    system.logits_mixed(requests)
    # 16 images = 2 chunks of 8: 4 shared stages once + 2 heads, vs 2 x 5 stages per task
    assert system.runner.stage_runs - before == 2 * (4 + 2)
    before = system.runner.stage_runs
    for task in system.tasks:
        system.logits(task, x)
    assert system.runner.stage_runs - before == 2 * (5 + 5)


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
