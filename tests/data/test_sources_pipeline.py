"""Augmentation on the trainer's device: the same random draws, the same batches."""

from __future__ import annotations

import pytest
import torch

from munet.data.pipeline import DS_DEFAULTS, TrainStream, augment_batch
from munet.data.task import TaskData

JITTER = {f"ds_{k}_delta": 0.1 for k in ("brightness", "contrast", "saturation", "hue")}


def rgb_task(n: int = 40) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 20, 20), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 4
    return TaskData("rgb", "test", list("abcd"), x, y, x[:8], y[:8], x[:8], y[:8])


@pytest.mark.parametrize("extra", [{}, JITTER, {"ds_area_range_min": 1.0, "ds_image_size": 48}])
def test_device_argument_on_cpu_is_bit_identical(extra):
    x = rgb_task().train_x[:16]
    ds = {**DS_DEFAULTS, **extra}
    plain = augment_batch(x, ds, torch.Generator().manual_seed(5))
    on_cpu = augment_batch(x, ds, torch.Generator().manual_seed(5), device="cpu")
    assert torch.equal(plain, on_cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stream_on_gpu_matches_cpu():
    task = rgb_task()
    ds = {**DS_DEFAULTS, **JITTER}
    cpu = iter(TrainStream(task, ds, 16, seed=3))
    gpu = iter(TrainStream(task, ds, 16, seed=3, device="cuda"))
    for _ in range(3):
        (xc, yc), (xg, yg) = next(cpu), next(gpu)
        assert xg.is_cuda and yg.is_cuda
        assert torch.equal(yc, yg.cpu())
        assert torch.allclose(xc, xg.cpu(), atol=1e-4)
