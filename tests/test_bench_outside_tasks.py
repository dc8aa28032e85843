"""bench/outside_tasks.py draws what its classes say, deterministically, as munet image folders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny import bench_module


@pytest.fixture(scope="module")
def o():
    return bench_module("outside_tasks")


def test_counting_images_hold_as_many_blobs_as_their_class_says(o):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for n in range(1, 9):
        for _ in range(5):
            x = o.TASKS["counting"][f"{n}_dots"](rng)
            assert x.shape == (32, 32)
            assert ndimage.label(x > 0.3)[1] == n


def test_gratings_run_across_their_orientation_and_a_flip_maps_k_to_8_minus_k(o):
    def angle(x: np.ndarray) -> float:
        """Direction of the intensity gradient (structure tensor), in degrees mod 180."""
        gy, gx = np.gradient(x.astype(np.float64))
        a = 0.5 * math.atan2(2 * (gx * gy).sum(), ((gx**2) - (gy**2)).sum())
        return math.degrees(a) % 180

    def close(a: float, b: float, tol: float) -> bool:
        return min(abs(a - b), 180 - abs(a - b)) <= tol

    rng = np.random.default_rng(0)
    for k in range(8):
        x = o.TASKS["orientations"][f"{22.5 * k:05.1f}deg"](rng)
        assert close(angle(x), 22.5 * k, 6.5)
        assert close(angle(x[:, ::-1]), 22.5 * ((8 - k) % 8), 6.5)


def test_write_tasks_is_an_image_folder_tree_and_deterministic(o, tmp_path):
    from munet.data.load import load_task

    a = o.write_tasks(tmp_path / "a", per_class=10, seed=1, names=("shapes",))
    b = o.write_tasks(tmp_path / "b", per_class=10, seed=1, names=("shapes",))
    files = sorted(p.relative_to(a[0]) for p in a[0].rglob("*.png"))
    assert len(files) == 9 * 10 and {f.parts[0] for f in files} == set(o.SHAPES)
    assert all((a[0] / f).read_bytes() == (b[0] / f).read_bytes() for f in files)
    c = o.write_tasks(tmp_path / "c", per_class=10, seed=2, names=("shapes",))
    assert any((a[0] / f).read_bytes() != (c[0] / f).read_bytes() for f in files)
    task = load_task(f"imagefolder:{a[0]}", tmp_path / "cache")
    assert task.num_classes == 9 and len(task.train_y) + len(task.val_y) + len(task.test_y) == 90
