"""muNet data hyperparameters -> model-ready batches, computed batch-wise on tensors.

Images stay uint8 until a batch is drawn. Training batches get the muNet transform (random crop
like ``tf.image.sample_distorted_bounding_box``, optional flip and color jitter, resize, scale to
[-1, 1]); validation and test batches are only resized and scaled (``prepare_eval``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from munet.data.task import TaskData
from munet.errors import ConfigError, TaskError

DS_DEFAULTS: dict[str, Any] = dict(
    ds_image_size=32,
    ds_area_range_min=0.05,
    ds_aspect_ratio_range_min=0.75,
    ds_flip_left_right=True,
    ds_brightness_delta=0.0,
    ds_contrast_delta=0.0,
    ds_saturation_delta=0.0,
    ds_hue_delta=0.0,
)
_CROP_ATTEMPTS = 10

# RGB <-> YIQ (hue rotation = rotation of the I/Q chroma plane).
_RGB2YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


def resolve_ds(ds: Mapping[str, Any] | None) -> dict[str, Any]:
    """``DS_DEFAULTS`` updated with the ``ds_*`` keys of ``ds`` (other keys ignored), validated."""
    out = dict(DS_DEFAULTS)
    for key, value in (ds or {}).items():
        if not key.startswith("ds_"):
            continue
        if key not in DS_DEFAULTS:
            raise ConfigError(
                f"unknown data hyperparameter {key!r}; known: {', '.join(DS_DEFAULTS)}"
            )
        out[key] = value
    size = out["ds_image_size"]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"ds_image_size={size!r} is invalid; use a positive integer")
    out["ds_image_size"] = int(size)
    for key, lo, hi in (
        ("ds_area_range_min", 0.0, 1.0),
        ("ds_aspect_ratio_range_min", 0.0, 1.0),
    ):
        if not lo < float(out[key]) <= hi:
            raise ConfigError(f"{key}={out[key]!r} is out of range; use a value in (0, 1]")
        out[key] = float(out[key])
    for key, hi in (
        ("ds_brightness_delta", 1.0),
        ("ds_contrast_delta", 1.0),
        ("ds_saturation_delta", 1.0),
        ("ds_hue_delta", 0.5),
    ):
        if not 0.0 <= float(out[key]) <= hi:
            raise ConfigError(f"{key}={out[key]!r} is out of range; use a value in [0, {hi}]")
        out[key] = float(out[key])
    out["ds_flip_left_right"] = bool(out["ds_flip_left_right"])
    return out


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        raise TaskError("images must be a uint8 tensor [N, C, H, W]; convert them before batching")
    if x.shape[1] not in (1, 3):
        raise TaskError(f"images have {x.shape[1]} channels; use 1 (gray) or 3 (RGB)")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to size x size, antialiased when shrinking; no-op at that size."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    shrink = size < max(h, w)
    return F.interpolate(
        x, size=(size, size), mode="bilinear", antialias=shrink, align_corners=False
    )


def _finish(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 255] batch -> float32 [B, 3, S, S] in [-1, 1]."""
    x = (x / 127.5 - 1.0).clamp_(-1.0, 1.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def prepare_eval(x_uint8: torch.Tensor, image_size: int) -> torch.Tensor:
    """Evaluation transform: resize to ``image_size`` and scale to float32 [-1, 1], 3 channels."""
    _check_images(x_uint8)
    return _finish(_resize(x_uint8.float(), int(image_size)))


def sample_crop_boxes(
    n: int, h: int, w: int, area_min: float, ratio_min: float, generator: torch.Generator
) -> torch.Tensor:
    """Integer crop boxes [n, 4] (x0, y0, x1, y1) like ``sample_distorted_bounding_box``.

    Area fraction ~ U[area_min, 1], aspect ratio w/h ~ U[ratio_min, 1/ratio_min]; the first of
    ``_CROP_ATTEMPTS`` draws that fits is used, else the whole image.
    """
    u = torch.rand(n, _CROP_ATTEMPTS, 2, generator=generator, dtype=torch.float64)
    pos = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    area = (area_min + (1.0 - area_min) * u[..., 0]) * (h * w)
    aspect = ratio_min + (1.0 / ratio_min - ratio_min) * u[..., 1]
    cw = torch.round(torch.sqrt(area * aspect))
    ch = torch.round(torch.sqrt(area / aspect))
    ok = (cw >= 1) & (ch >= 1) & (cw <= w) & (ch <= h)
    first = ok.to(torch.int8).argmax(dim=1, keepdim=True)
    found = ok.any(dim=1)
    cw = torch.where(found, cw.gather(1, first)[:, 0], torch.full_like(found, w, dtype=cw.dtype))
    ch = torch.where(found, ch.gather(1, first)[:, 0], torch.full_like(found, h, dtype=ch.dtype))
    x0 = torch.minimum(torch.floor(pos[:, 0] * (w - cw + 1)), w - cw)
    y0 = torch.minimum(torch.floor(pos[:, 1] * (h - ch + 1)), h - ch)
    return torch.stack([x0, y0, x0 + cw, y0 + ch], dim=1)


def _uniform(
    n: int, lo: float, hi: float, generator: torch.Generator, device: torch.device | None = None
) -> torch.Tensor:
    out = lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=generator)
    return out if device is None else out.to(device)


def _color_jitter(x: torch.Tensor, ds: dict[str, Any], g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation, hue jitter of an RGB batch in [0, 1]."""
    n, dev = x.shape[0], x.device
    if (d := ds["ds_brightness_delta"]) > 0:
        x = x + _uniform(n, -d, d, g, dev)
    if (d := ds["ds_contrast_delta"]) > 0:
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * _uniform(n, 1 - d, 1 + d, g, dev) + mean
    if (d := ds["ds_saturation_delta"]) > 0:
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
        x = gray + (x - gray) * _uniform(n, 1 - d, 1 + d, g, dev)
    if (d := ds["ds_hue_delta"]) > 0:
        angle = 2 * math.pi * _uniform(n, -d, d, g).view(n).double()
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot = torch.zeros(n, 3, 3, dtype=torch.float64)
        rot[:, 0, 0] = 1.0
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        mat = (_YIQ2RGB @ rot @ _RGB2YIQ).float().to(dev)
        x = torch.einsum("nij,njhw->nihw", mat, x)
    return x


def augment_batch(
    x_uint8: torch.Tensor,
    ds: Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Training transform of one batch -> float32 [B, 3, S, S] in [-1, 1].

    Random crop (skipped when ds_area_range_min == 1), 50% horizontal flip, brightness /
    contrast / saturation / hue jitter (each only when its delta > 0), resize to ds_image_size,
    scale to [-1, 1], clip. All randomness comes from ``generator`` (a CPU generator, so the
    random draws are the same on every device); with ``device`` the pixel work runs there and
    only the uint8 batch and a few per-image numbers cross to it.
    """
    _check_images(x_uint8)
    ds = resolve_ds(ds)
    size = ds["ds_image_size"]
    b, c, h, w = x_uint8.shape
    x = (x_uint8 if device is None else x_uint8.to(device, non_blocking=True)).float()
    if ds["ds_area_range_min"] < 1.0 and b > 0:
        boxes = sample_crop_boxes(
            b, h, w, ds["ds_area_range_min"], ds["ds_aspect_ratio_range_min"], generator
        )
        rois = torch.cat([torch.arange(b, dtype=torch.float64)[:, None], boxes], 1).float()
        x = roi_align(
            x, rois.to(x.device), output_size=(size, size), sampling_ratio=-1, aligned=True
        )
    else:
        x = _resize(x, size)
    if ds["ds_flip_left_right"]:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    jitter = any(ds[k] > 0 for k in DS_DEFAULTS if k.endswith("_delta"))
    if jitter:
        x = x.expand(-1, 3, -1, -1) / 255.0
        x = _color_jitter(x, ds, generator) * 255.0
    return _finish(x)


def derive_seed(seed: int, *tags: int) -> int:
    """A 63-bit seed derived from (seed, tags) via numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), *tags]).generate_state(1, np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


class TrainStream:
    """Deterministic, infinite stream of augmented training batches (x float32, y int64).

    Examples are visited in epoch-wise permutations drawn from ``torch.Generator(seed)``; a
    batch that crosses an epoch boundary continues into the next permutation. Every iteration
    restarts the stream, so equal (task, ds, batch_size, seed) give bit-identical batches.

    With ``device`` (e.g. the trainer's GPU) the augmentation runs there: the random draws are
    unchanged, only the pixel arithmetic moves, so a GPU is not left waiting on the CPU.
    """

    def __init__(
        self,
        task: TaskData,
        ds: Mapping[str, Any] | None,
        batch_size: int,
        seed: int,
        device: torch.device | str | None = None,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} is invalid; use a positive integer")
        if task.train_y.numel() == 0:
            raise TaskError(f"task {task.name!r} has no training examples")
        self.task = task
        self.ds = resolve_ds(ds)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = None if device is None or str(device) == "cpu" else torch.device(device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order_gen = torch.Generator().manual_seed(derive_seed(self.seed, 0))
        aug_gen = torch.Generator().manual_seed(derive_seed(self.seed, 1))
        n = self.task.train_y.shape[0]
        pending = torch.empty(0, dtype=torch.int64)
        while True:
            while pending.numel() < self.batch_size:
                pending = torch.cat([pending, torch.randperm(n, generator=order_gen)])
            idx, pending = pending[: self.batch_size], pending[self.batch_size :]
            x = augment_batch(self.task.train_x[idx], self.ds, aug_gen, self.device)
            y = self.task.train_y[idx]
            yield x, (y if self.device is None else y.to(self.device, non_blocking=True))


def val_subset(
    task: TaskData, batch_size: int, max_batches: int = 10
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The fixed validation subset: (x uint8, y, eval_batch_size).

    The first ``batch_size * max_batches`` validation examples; with fewer examples N, the batch
    count is ceil(N / batch_size) and the batch size floor(N / batch_count) (a few dropped).
    """
    if batch_size < 1 or max_batches < 1:
        raise ConfigError(
            f"batch_size={batch_size}, max_batches={max_batches} are invalid; use positive ints"
        )
    n = int(task.val_y.shape[0])
    if n == 0:
        raise TaskError(f"task {task.name!r} has an empty validation split")
    if n >= batch_size * max_batches:
        eval_bs, count = batch_size, max_batches
    else:
        count = math.ceil(n / batch_size)
        eval_bs = n // count
    keep = eval_bs * count
    return task.val_x[:keep], task.val_y[:keep], eval_bs


def val_split(task: TaskData, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The whole validation split as :func:`val_subset` batches it: (x uint8, y,
    eval_batch_size), a few examples dropped so that every batch has the same size."""
    return val_subset(task, batch_size, max(1, math.ceil(int(task.val_y.shape[0]) / batch_size)))


def eval_batches(
    x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int, image_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Prepared (``prepare_eval``) evaluation batches in order; the last may be smaller."""
    for lo in range(0, x_uint8.shape[0], batch_size):
        yield prepare_eval(x_uint8[lo : lo + batch_size], image_size), y[lo : lo + batch_size]
