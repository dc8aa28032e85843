"""head_init=probe: a new head starts as a temperature-scaled ridge probe on frozen features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tiny import micro_state, root_children

from munet.data.load import load_tasks
from munet.train.trainer import (
    HEAD_TEMPERATURES,
    Trainer,
    TrainSettings,
    _has_new_head,
    init_head_from_probe,
    probe_features,
    probe_head,
    ridge_probe_accuracy,
)


def clusters(n=600, d=12, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g, dtype=torch.float64) * 3
    y = torch.arange(n) % k
    x = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64) + 5.0
    return x, y


def test_probe_head_predicts_like_the_ridge_probe_with_a_fitted_temperature():
    x, y = clusters()
    w, b = probe_head(x, y, 4)
    acc = float(((x @ w.T + b).argmax(1) == y).double().mean())
    assert acc == ridge_probe_accuracy(x, y, x, y, 4)
    assert acc > 0.9
    # the temperature is the grid's best: scaling the head up or down costs cross-entropy
    loss = float(F.cross_entropy(x @ w.T + b, y))
    t = min(HEAD_TEMPERATURES, key=lambda t: float(F.cross_entropy(t * (x @ w.T + b) / 1, y)))
    assert t == 1.0 or loss <= float(F.cross_entropy(x @ w.T + b, y)) + 1e-12
    assert loss < float(F.cross_entropy(torch.zeros(len(y), 4, dtype=x.dtype), y))


def generation():
    root, state, s, ds = micro_state()
    (kid,) = root_children(state, s, ds, 1)
    return root, kid, ds


def test_a_new_head_becomes_the_probe_on_its_frozen_features():
    tasks = load_tasks(["builtin:digits"])
    data = tasks["digits"]
    root, kid, ds = generation()
    assert _has_new_head(kid)
    head = kid.components[-1]
    assert all(torch.equal(v, torch.zeros_like(v)) for v in head.params.values())
    init_head_from_probe(root.arch, kid, data, 256, torch.device("cpu"))
    n = len(data.train_y)
    idx = torch.linspace(0, n - 1, min(n, 2048)).round().long().unique()
    feats = probe_features(root.arch, kid, data.train_x[idx], torch.device("cpu"))
    w, b = probe_head(feats, data.train_y[idx], 10)
    assert torch.equal(head.params["weight"], w.float())
    assert torch.equal(head.params["bias"], b.float())


def test_the_trainer_probes_new_heads_only_with_head_init_probe():
    tasks = load_tasks(["builtin:digits"])
    quality = {}
    for init in ("zeros", "probe"):
        root, kid, ds = generation()
        settings = TrainSettings(batch_size=16, validations=1, interval_cap=1, head_init=init)
        res = Trainer(root.arch, tasks, settings).train_generation("digits", [kid], ds, seed=3)
        quality[init] = res[0].quality
    # one SGD step of 16 images from a zero head is near chance; the probe starts far above it
    assert quality["probe"] > quality["zeros"] + 0.2


def test_trained_or_inherited_heads_are_not_new():
    root, kid, ds = generation()
    kid.components[-1].origin = "clone:5"
    assert not _has_new_head(kid)
