"""Issue 5's user path: a timm root from a local weights file, an image folder and a torchvision
dataset on disk, evolved offline through the CLI."""

from __future__ import annotations

import struct

import numpy as np
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from tiny import stored

from munet.cli import main

TINY = [
    "task_iterations=1",
    "candidates_per_iteration=2",
    "generation_batch_size=2",
    "batch_size=16",
    "validations_per_candidate=1",
    "validation_interval_cap=4",
    "threads=1",
]


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def test_timm_root_with_weights_file_on_imagefolder_and_torchvision_tasks(tmp_path, capsys):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3)
    weights = tmp_path / "vit_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))

    rng = np.random.default_rng(0)
    folder = tmp_path / "shapes"
    for c, name in enumerate(["circle", "square", "star"]):
        (folder / name).mkdir(parents=True)
        for i in range(20):
            img = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
            img[4 + c * 5 : 10 + c * 5, 4:20] = 255  # a class-dependent bar
            Image.fromarray(img).save(folder / name / f"{i}.png")

    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 200), ("t10k", 40)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)

    d = tmp_path / "system"
    tasks = f"imagefolder:{folder},torchvision:MNIST:{tmp_path / 'tv'}"
    args = [
        "evolve",
        "--system",
        str(d),
        "--root",
        "timm:vit_tiny_patch16_224",
        "--root-weights",
        str(weights),
        "--tasks",
        tasks,
        *TINY,
    ]
    assert main(args) == 0, capsys.readouterr().err
    store, state = stored(d)
    assert set(state.population) == {"shapes", "mnist"}
    assert state.arch.depth == 12 and state.arch.embed_dim == 192
    # P_ref from the model itself: patch embed + cls + 5 positions + 12 blocks + norm + 2-way head
    assert state.p_ref == 147_648 + 192 + 5 * 192 + 12 * 444_864 + 384 + 386
    meta = store.tasks()
    assert meta["shapes"]["num_classes"] == 3 and meta["mnist"]["num_classes"] == 10
    # without weights and nothing cached: one line naming the flag
    capsys.readouterr()
    assert (
        main(
            [
                "evolve",
                "--system",
                str(tmp_path / "s2"),
                "--root",
                "timm:vit_small_patch16_224",
                "--tasks",
                f"imagefolder:{folder}",
                *TINY,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "--root-weights" in err and "\n" not in err
    assert not (tmp_path / "s2").exists()
