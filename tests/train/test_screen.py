"""Seed screening's linear probe: it ranks features by how well they separate a task."""

from __future__ import annotations

import torch
from tiny import micro_state

from munet.data.load import load_tasks
from munet.train.trainer import TrainSettings, probe_features, ridge_probe_accuracy, screen_paths


def blobs(n, k, d, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g, dtype=torch.float64) * 3
    y = torch.arange(n) % k
    return centres[y] + spread * torch.randn(n, d, generator=g, dtype=torch.float64), y


def test_the_probe_separates_separable_features_and_not_noise():
    x, y = blobs(400, 5, 16, 0.1, 0)
    vx, vy = blobs(200, 5, 16, 0.1, 0)  # same centres (same generator seed), new noise
    vx = vx + 0.01
    assert ridge_probe_accuracy(x, y, vx, vy, 5) == 1.0
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(400, 16, generator=g, dtype=torch.float64)
    vnoise = torch.randn(200, 16, generator=g, dtype=torch.float64)
    assert ridge_probe_accuracy(noise, y, vnoise, vy, 5) < 0.5  # chance is 0.2


def test_screen_scores_every_path_without_touching_it():
    root, state, _, _ = micro_state()
    data = load_tasks(["builtin:digits"])["digits"]
    before = {c.id: {k: v.clone() for k, v in c.params.items()} for c in state.root.components}
    settings = TrainSettings(batch_size=32, validation_batches=4)
    (acc,) = screen_paths(root.arch, [state.root], data, settings, torch.device("cpu"))
    assert 0.0 <= acc <= 1.0 and acc > 0.2  # frozen glyph features beat chance (0.1) on digits
    for c in state.root.components:
        assert all(torch.equal(v, before[c.id][k]) for k, v in c.params.items())
    feats = probe_features(root.arch, state.root, data.test_x[:5], torch.device("cpu"))
    assert feats.shape == (5, root.arch.embed_dim) and feats.dtype == torch.float64
