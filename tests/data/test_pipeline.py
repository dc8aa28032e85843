"""Batch pipeline: eval preparation, training augmentation, train streams, validation subsets."""

from __future__ import annotations

import itertools

import pytest
import torch

from munet.data.pipeline import (
    DS_DEFAULTS,
    TrainStream,
    augment_batch,
    eval_batches,
    prepare_eval,
    resolve_ds,
    sample_crop_boxes,
    val_subset,
)
from munet.data.task import TaskData
from munet.errors import ConfigError, TaskError

PLAIN = dict(ds_area_range_min=1.0, ds_flip_left_right=False)


def images(n: int = 8, c: int = 1, h: int = 28, w: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def toy_task(n_train: int = 10, n_val: int = 25) -> TaskData:
    """Train labels equal example indices, so batches reveal which examples they hold."""
    return TaskData(
        name="toy",
        spec="builtin:toy",
        class_names=[str(i) for i in range(max(n_train, n_val))],
        train_x=images(n_train, h=6, w=6),
        train_y=torch.arange(n_train),
        val_x=images(n_val, h=6, w=6, seed=1),
        val_y=torch.arange(n_val),
        test_x=images(2, h=6, w=6, seed=2),
        test_y=torch.tensor([0, 1]),
    )


def test_prepare_eval_values_and_gray_to_rgb() -> None:
    x = torch.tensor([0, 51, 255, 128], dtype=torch.uint8).view(1, 1, 2, 2)
    out = prepare_eval(x, 2)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    expected = torch.tensor([[-1.0, 51 / 127.5 - 1], [1.0, 128 / 127.5 - 1]])
    for ch in range(3):
        assert torch.allclose(out[0, ch], expected, atol=1e-6)
    big = prepare_eval(images(4), 32)
    assert big.shape == (4, 3, 32, 32)
    assert torch.equal(big[:, 0], big[:, 1]) and torch.equal(big[:, 1], big[:, 2])
    assert float(big.min()) >= -1.0 and float(big.max()) <= 1.0
    const = prepare_eval(torch.full((2, 1, 28, 28), 255, dtype=torch.uint8), 17)
    assert torch.allclose(const, torch.ones(2, 3, 17, 17))


def test_prepare_eval_keeps_rgb_channels() -> None:
    x = images(3, c=3, h=10, w=10)
    out = prepare_eval(x, 10)
    assert torch.allclose(out, x.float() / 127.5 - 1)


def test_prepare_eval_rejects_float_images() -> None:
    with pytest.raises(TaskError, match="uint8"):
        prepare_eval(torch.zeros(1, 1, 4, 4), 4)


@pytest.mark.parametrize(("size", "c"), [(28, 1), (32, 1), (16, 3), (40, 3)])
def test_plain_augment_equals_prepare_eval(size: int, c: int) -> None:
    x = images(6, c=c)
    ds = dict(PLAIN, ds_image_size=size)
    assert torch.equal(augment_batch(x, ds, gen()), prepare_eval(x, size))


def test_augment_shapes_range_and_determinism() -> None:
    x = images(64)
    ds = dict(ds_image_size=24, ds_brightness_delta=0.3, ds_contrast_delta=0.3)
    a = augment_batch(x, ds, gen(7))
    b = augment_batch(x, ds, gen(7))
    c = augment_batch(x, ds, gen(8))
    assert a.shape == (64, 3, 24, 24) and a.dtype == torch.float32
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, 0], a[:, 2])  # gray stays gray under brightness/contrast


def test_default_augment_crops() -> None:
    x = images(64)
    out = augment_batch(x, {}, gen())
    assert out.shape == (64, 3, 32, 32)
    assert not torch.allclose(out, prepare_eval(x, 32))


def test_crop_of_constant_image_is_constant() -> None:
    x = torch.full((16, 1, 28, 28), 100, dtype=torch.uint8)
    out = augment_batch(x, {"ds_area_range_min": 0.05}, gen())
    assert torch.allclose(out, torch.full_like(out, 100 / 127.5 - 1), atol=1e-5)


def test_crop_boxes_respect_area_and_aspect() -> None:
    boxes = sample_crop_boxes(500, 28, 20, 0.3, 0.5, gen())
    x0, y0, x1, y1 = boxes.unbind(1)
    assert torch.equal(boxes, boxes.round())
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 20).all() and (y1 <= 28).all()
    w, h = x1 - x0, y1 - y0
    assert (w >= 1).all() and (h >= 1).all()
    area = w * h / (28 * 20)
    assert float(area.min()) > 0.25 and float(area.max()) <= 1.0
    ratio = w / h
    assert float(ratio.min()) > 0.4 and float(ratio.max()) < 2.3
    assert float(area.std()) > 0.1  # areas spread over [0.3, 1]


def test_flip_is_half_of_batch() -> None:
    x = images(64, w=28)
    out = augment_batch(x, {"ds_area_range_min": 1.0, "ds_image_size": 28}, gen())
    plain = prepare_eval(x, 28)
    flipped = torch.tensor([torch.equal(o, p.flip(-1)) for o, p in zip(out, plain, strict=True)])
    same = torch.tensor([torch.equal(o, p) for o, p in zip(out, plain, strict=True)])
    assert bool((flipped ^ same).all())
    assert 16 <= int(flipped.sum()) <= 48


def test_brightness_range_on_constant_image() -> None:
    x = torch.full((256, 1, 8, 8), 128, dtype=torch.uint8)
    out = augment_batch(x, dict(PLAIN, ds_image_size=8, ds_brightness_delta=0.2), gen())
    per_image = out[:, 0, 0, 0]
    base = 128 / 127.5 - 1
    assert torch.allclose(out, per_image.view(-1, 1, 1, 1).expand_as(out))
    assert float((per_image - base).abs().max()) <= 0.4 + 1e-5
    assert float((per_image - base).abs().max()) > 0.3


def test_saturation_and_hue_keep_gray_images() -> None:
    x = images(16, c=1, h=8, w=8)
    ds = dict(PLAIN, ds_image_size=8, ds_saturation_delta=0.5, ds_hue_delta=0.3)
    assert torch.allclose(augment_batch(x, ds, gen()), prepare_eval(x, 8), atol=1e-4)


def test_hue_changes_color_images() -> None:
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    x[:, 0] = 200  # red
    out = augment_batch(x, dict(PLAIN, ds_image_size=8, ds_hue_delta=0.5), gen())
    assert not torch.allclose(out, prepare_eval(x, 8), atol=1e-2)
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0


def test_resolve_ds_defaults_and_errors() -> None:
    assert resolve_ds(None) == DS_DEFAULTS
    assert resolve_ds({"lr": 0.1, "ds_image_size": 64})["ds_image_size"] == 64
    with pytest.raises(ConfigError, match="ds_area_range_min=0"):
        resolve_ds({"ds_area_range_min": 0})
    with pytest.raises(ConfigError, match="unknown data hyperparameter 'ds_zoom'"):
        resolve_ds({"ds_zoom": 1})
    with pytest.raises(ConfigError, match="ds_hue_delta=0.7"):
        resolve_ds({"ds_hue_delta": 0.7})


def test_train_stream_epochs_cover_every_example() -> None:
    task = toy_task(n_train=10)
    batches = list(itertools.islice(TrainStream(task, {}, 4, seed=3), 5))
    assert all(x.shape == (4, 3, 32, 32) and y.shape == (4,) for x, y in batches)
    labels = torch.cat([y for _, y in batches])
    assert sorted(labels[:10].tolist()) == list(range(10))  # first epoch is a permutation
    assert sorted(labels[10:20].tolist()) == list(range(10))  # second epoch too


def test_train_stream_bit_identical_and_seeded() -> None:
    task = toy_task(n_train=10)
    ds = {"ds_image_size": 16, "ds_brightness_delta": 0.1}
    a = list(itertools.islice(TrainStream(task, ds, 3, seed=1), 6))
    stream = TrainStream(task, ds, 3, seed=1)
    b = list(itertools.islice(stream, 6))
    again = list(itertools.islice(stream, 6))  # every iteration restarts the stream
    c = list(itertools.islice(TrainStream(task, ds, 3, seed=2), 6))
    for (xa, ya), (xb, yb), (xr, yr) in zip(a, b, again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa, xr) and torch.equal(ya, yr)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c, strict=True))


def test_train_stream_batch_larger_than_dataset() -> None:
    task = toy_task(n_train=3)
    x, y = next(iter(TrainStream(task, {}, 8, seed=0)))
    assert x.shape[0] == 8 and sorted(y[:3].tolist()) == [0, 1, 2]


def test_val_subset_small_validation_set() -> None:
    task = toy_task(n_val=25)
    x, y, bs = val_subset(task, batch_size=8)
    # ceil(25 / 8) = 4 batches of floor(25 / 4) = 6: 24 examples, one dropped
    assert bs == 6 and x.shape[0] == 24 and y.tolist() == list(range(24))
    assert torch.equal(x, task.val_x[:24])
    x, y, bs = val_subset(task, batch_size=64)
    assert bs == 25 and x.shape[0] == 25


def test_val_subset_large_validation_set() -> None:
    task = toy_task(n_val=100)
    x, y, bs = val_subset(task, batch_size=8)
    assert bs == 8 and x.shape[0] == 80 and y.tolist() == list(range(80))
    x, y, bs = val_subset(task, batch_size=4, max_batches=3)
    assert bs == 4 and y.tolist() == list(range(12))
    x, y, bs = val_subset(task, batch_size=10)  # exactly 10 batches
    assert bs == 10 and x.shape[0] == 100


def test_eval_batches_cover_in_order() -> None:
    task = toy_task(n_val=25)
    got = list(eval_batches(task.val_x, task.val_y, 10, 12))
    assert [x.shape[0] for x, _ in got] == [10, 10, 5]
    assert torch.cat([y for _, y in got]).tolist() == list(range(25))
    assert got[0][0].shape == (10, 3, 12, 12)
