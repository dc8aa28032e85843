"""imagefolder: layouts, seeded stratified splits, colour/size rules, unreadable files, cache,
and the runner refusing a task whose class count changed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from munet.data.load import load_task
from munet.errors import StoreError, TaskError


def pixel(c: int, i: int) -> int:
    """Every image is one flat gray value encoding (class, index): labels can be checked."""
    return 20 * c + i


def make_classes(folder: Path, counts: dict[str, int], size=(8, 8), start: int = 0) -> None:
    for c, (name, n) in enumerate(sorted(counts.items())):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.full(size, pixel(c, start + i), dtype=np.uint8)
            Image.fromarray(arr).save(folder / name / f"img{i:03d}.png")


def values(task, split: str) -> tuple[list[int], list[int]]:
    x, y = task.split(split)
    return x[:, 0, 0, 0].tolist(), y.tolist()


def check_labels(task) -> None:
    for s in ("train", "val", "test"):
        vals, labels = values(task, s)
        assert [v // 20 for v in vals] == labels


def test_decoding_on_first_use_reports_progress(tmp_path, caplog):
    make_classes(tmp_path / "pets", {"cat": 10, "dog": 10})
    caplog.set_level(logging.INFO, logger="munet")
    load_task(f"imagefolder:{tmp_path / 'pets'}")
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("task pets: decoding 20 images on first use (cached in ")
    assert said[-1].startswith("decode pets 20/20, ") and said[-1].endswith("ETA 00:00")
    caplog.clear()
    load_task(f"imagefolder:{tmp_path / 'pets'}")  # from the cache: nothing to report
    assert caplog.records == []


def test_class_folders_split_80_10_10_by_seed(tmp_path):
    make_classes(tmp_path / "Pets Set", {"dog": 10, "cat": 20, "emu": 10})
    (tmp_path / "Pets Set" / ".hidden").mkdir()
    (tmp_path / "Pets Set" / "cat" / "notes.txt").write_text("not an image")
    task = load_task(f"imagefolder:{tmp_path / 'Pets Set'}")
    assert task.name == "pets_set"
    assert task.class_names == ["cat", "dog", "emu"]
    assert task.image_shape == (1, 8, 8)  # all gray, all 8x8 <= 64: kept as they are
    sizes = {
        s: [task.split(s)[1].tolist().count(c) for c in range(3)] for s in ("train", "val", "test")
    }
    assert sizes == {"train": [16, 8, 8], "val": [2, 1, 1], "test": [2, 1, 1]}
    check_labels(task)
    every = sorted(v for s in ("train", "val", "test") for v in values(task, s)[0])
    assert every == sorted(
        [pixel(0, i) for i in range(20)] + [pixel(c, i) for c in (1, 2) for i in range(10)]
    )
    info = task.split_info
    assert (info["source"], info["layout"], info["seed"], info["skipped_unreadable"]) == (
        "imagefolder",
        "class-folders",
        0,
        0,
    )
    assert str(tmp_path) not in json.dumps(info)  # a moved folder is the same task
    again = load_task(f"imagefolder:{tmp_path / 'Pets Set'}")
    assert again.split_info["fingerprint"] == info["fingerprint"]
    other = load_task(f"imagefolder:{tmp_path / 'Pets Set'}?seed=1")
    assert values(other, "val")[0] != values(task, "val")[0]
    assert other.split_info["fingerprint"] != info["fingerprint"]


def test_spec_options(tmp_path):
    make_classes(tmp_path / "d", {"a": 20, "b": 20})
    task = load_task(f"imagefolder:{tmp_path / 'd'}?split=70,15,15&seed=3&name=mytask&size=16")
    assert task.name == "mytask" and task.image_shape == (1, 16, 16)
    assert [int(task.split(s)[1].numel()) for s in ("train", "val", "test")] == [28, 6, 6]
    assert task.split_info["seed"] == 3 and task.split_info["split"] == [0.7, 0.15, 0.15]
    capped = load_task(f"imagefolder:{tmp_path / 'd'}", max_per_class=5)
    assert capped.train_y.tolist().count(0) == 5
    for bad, match in (
        ("?bogus=1", "unknown option 'bogus'"),
        ("?split=80,20", "split='80,20'.*three positive"),
        ("?seed=-1", "seed='-1'"),
        ("?size=0", "size='0'"),
    ):
        with pytest.raises(TaskError, match=match):
            load_task(f"imagefolder:{tmp_path / 'd'}{bad}")
    with pytest.raises(TaskError, match="does not exist"):
        load_task(f"imagefolder:{tmp_path / 'missing'}")
    with pytest.raises(TaskError, match="no class folders"):
        load_task(f"imagefolder:{tmp_path / 'd' / 'a'}")


def test_split_folders_keep_their_splits_and_carve_the_missing_one(tmp_path):
    root = tmp_path / "ds"
    make_classes(root / "train", {"x": 10, "y": 10})
    make_classes(root / "validation", {"x": 2, "y": 3}, start=10)
    make_classes(root / "test", {"x": 4, "y": 4}, start=15)
    (root / "README").mkdir()  # other folders beside the splits are ignored
    task = load_task(f"imagefolder:{root}")
    assert [int(task.split(s)[1].numel()) for s in ("train", "val", "test")] == [20, 5, 8]
    assert sorted(values(task, "val")[0]) == [10, 11, 30, 31, 32]
    check_labels(task)
    assert task.split_info["layout"] == "split-folders"
    os.rename(root / "test", tmp_path / "test-away")
    carved = load_task(f"imagefolder:{root}")  # 10% of each train class -> test
    assert [int(carved.split(s)[1].numel()) for s in ("train", "val", "test")] == [18, 5, 2]
    assert "test carved from train/" in carved.split_info["policy"]
    check_labels(carved)


def test_class_lists_must_agree_across_split_folders(tmp_path):
    root = tmp_path / "ds"
    make_classes(root / "train", {"x": 4, "y": 4})
    make_classes(root / "val", {"x": 2, "z": 2})
    with pytest.raises(
        TaskError, match=r"val/ differ from train/ \(missing \['y'\], extra \['z'\]\)"
    ):
        load_task(f"imagefolder:{root}")


def test_unreadable_images_are_skipped_and_empty_classes_refused(tmp_path):
    root = tmp_path / "d"
    make_classes(root, {"a": 10, "b": 10})
    for i in range(4):
        (root / "a" / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(
        UserWarning, match=r"skipped 4 unreadable image\(s\): .*broken0\.jpg.*and 1 more"
    ):
        task = load_task(f"imagefolder:{root}")
    assert task.split_info["skipped_unreadable"] == 4
    assert int(task.train_y.numel() + task.val_y.numel() + task.test_y.numel()) == 20
    (root / "c").mkdir()
    with pytest.raises(TaskError, match=r"class folder .*c has no images"):
        load_task(f"imagefolder:{root}")
    (root / "c" / "x.png").write_bytes(b"corrupt png")
    with (
        pytest.warns(UserWarning),
        pytest.raises(TaskError, match="no readable image of class 'c'"),
    ):
        load_task(f"imagefolder:{root}")


def test_colour_modes_are_unified(tmp_path):
    root = tmp_path / "modes"
    (root / "gray").mkdir(parents=True)
    (root / "colour").mkdir()
    Image.fromarray(np.full((6, 6), 7, np.uint8), "L").save(root / "gray" / "l.png")
    Image.fromarray(np.full((6, 6, 3), 9, np.uint8), "RGB").save(root / "gray" / "rgb_gray.png")
    Image.fromarray(np.full((6, 6), 65535, np.uint16)).save(root / "gray" / "i16.png")
    Image.fromarray(np.full((6, 6), 255, np.uint8), "L").convert("1").save(root / "gray" / "bw.png")
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[...] = (200, 100, 50, 128)
    Image.fromarray(rgba, "RGBA").save(root / "colour" / "rgba.png")
    Image.fromarray(np.full((6, 6, 3), (255, 0, 0), np.uint8)).convert("P").save(
        root / "colour" / "p.gif"
    )
    la = np.zeros((6, 6, 2), np.uint8)
    la[...] = (255, 0)  # fully transparent white -> black
    Image.fromarray(la, "LA").save(root / "colour" / "la.png")
    task = load_task(f"imagefolder:{root}?split=34,33,33")
    x = torch.cat([task.split(s)[0] for s in ("train", "val", "test")])
    assert x.shape[1:] == (3, 6, 6)  # one colour image makes the task RGB
    firsts = sorted(tuple(v[:, 0, 0].tolist()) for v in x)
    assert firsts == sorted(
        [(7,) * 3, (9,) * 3, (255,) * 3, (255,) * 3, (100, 50, 25), (255, 0, 0), (0,) * 3]
    )
    (root / "colour" / "rgba.png").unlink()
    (root / "colour" / "p.gif").unlink()
    only_gray = load_task(f"imagefolder:{root}?split=34,33,33&name=g")
    assert only_gray.image_shape == (1, 6, 6)


def test_sizes_resize_to_64_unless_equal_and_small(tmp_path):
    root = tmp_path / "sizes"
    make_classes(root, {"a": 3, "b": 3}, size=(10, 12))
    assert load_task(f"imagefolder:{root}").image_shape == (1, 10, 12)
    make_classes(root, {"a": 1}, size=(20, 20), start=3)
    mixed = load_task(f"imagefolder:{root}")
    assert mixed.image_shape == (1, 64, 64)
    check_labels(mixed)  # flat images stay flat through resizing
    with pytest.raises(TaskError, match="different sizes .* size=keep"):
        load_task(f"imagefolder:{root}?size=keep")
    big = tmp_path / "big"
    make_classes(big, {"a": 3, "b": 3}, size=(100, 100))
    assert load_task(f"imagefolder:{big}").image_shape == (1, 64, 64)


def test_decoded_images_are_cached_until_a_file_changes(tmp_path, monkeypatch):
    import munet.data.imagefolder as imagefolder

    root = tmp_path / "d"
    make_classes(root, {"a": 5, "b": 5})
    first = load_task(f"imagefolder:{root}")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although nothing changed")

    monkeypatch.setattr(imagefolder, "decode_files", no_decoding)
    assert load_task(f"imagefolder:{root}").split_info == first.split_info
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(root / "a" / "img000.png")
    with pytest.raises(AssertionError, match="decoded again"):
        load_task(f"imagefolder:{root}")


def test_runner_refuses_a_task_whose_class_count_changed(tmp_path):
    """A third class folder appears between runs of one system: resume is refused."""
    import timm
    from safetensors.torch import save_file

    from munet.runner import evolve_system

    torch.manual_seed(0)
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0
    )
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "r.safetensors")
    sidecar = {
        "args": {
            "img_size": 16,
            "patch_size": 8,
            "embed_dim": 16,
            "depth": 1,
            "num_heads": 2,
            "mlp_ratio": 2.0,
        }
    }
    (tmp_path / "r.json").write_text(json.dumps(sidecar))
    data = tmp_path / "shapes"
    make_classes(data, {"a": 10, "b": 10})
    overrides = {
        "root": f"file:{tmp_path / 'r.safetensors'}",
        "tasks": [f"imagefolder:{data}"],
        "task_iterations": 1,
        "candidates_per_iteration": 1,
        "generation_batch_size": 1,
        "batch_size": 8,
        "validations_per_candidate": 1,
        "validation_interval_cap": 2,
        "validation_batches": 1,
        "threads": 1,
        "device": "cpu",
        "hparams": {"ds_image_size": 16},
    }
    system = tmp_path / "system"
    evolve_system(system, None, overrides, log=lambda m: None, show_progress=False)
    make_classes(data, {"c": 10}, start=0)
    with pytest.raises(StoreError, match=r"task 'shapes' changed since it was added \(num_classes"):
        evolve_system(system, None, overrides, log=lambda m: None, show_progress=False)
