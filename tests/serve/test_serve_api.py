"""The Python API and ``munet predict``: agreement with the trainer, inputs, errors, read-only."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import munet
from munet.cli import main
from munet.data.load import load_tasks
from munet.errors import TaskError
from munet.serve.errors import ImageError
from munet.serve.system import MultitaskSystem
from munet.store.lock import SystemLock
from munet.train.trainer import logits


@pytest.fixture(scope="module")
def task_data():
    return load_tasks(["builtin:digits", "builtin:glyph_digits"])


def test_load_is_lazy_and_lists_tasks(evolved, two_task_system):
    assert isinstance(evolved, MultitaskSystem)
    assert evolved.tasks == ["digits", "glyph_digits"]
    assert evolved.classes("digits") == [str(i) for i in range(10)]
    info = evolved.info("glyph_digits")
    assert info["test_accuracy"] == evolved.path("glyph_digits").metrics["test_quality"]
    assert info["params"] == sum(c.size for c in evolved.path("glyph_digits").components)
    assert 0 < info["accounted_params"] < info["params"]
    assert info["channels"] == 1 and info["image_size"] == 32 and info["num_classes"] == 10


def test_predict_agrees_with_trainer_logits(evolved, task_data):
    for task, data in task_data.items():
        x = data.test_x[:48]
        ref = logits(evolved.arch, evolved.path(task), x)
        preds = evolved.predict(task, x, top_k=3)
        assert [p["label"] for p in preds] == ref.argmax(1).tolist()
        probs = torch.softmax(ref, dim=1)
        for p, row in zip(preds, probs, strict=True):
            assert p["probability"] == pytest.approx(float(row.max()), abs=1e-6)
            assert p["class_name"] == evolved.classes(task)[p["label"]]
            assert [t["label"] for t in p["top_k"]] == row.topk(3).indices.tolist()
            assert p["top_k"][0] == {k: p[k] for k in ("label", "class_name", "probability")}
        # the logits themselves agree to float rounding (batching differs)
        torch.testing.assert_close(evolved.logits(task, x), ref, rtol=0, atol=1e-5)


def test_top_k_is_capped_at_the_class_count_and_validated(evolved, task_data):
    x = task_data["digits"].test_x[:2]
    assert len(evolved.predict("digits", x, top_k=50)[0]["top_k"]) == 10
    with pytest.raises(ValueError, match="top_k=0"):
        evolved.predict("digits", x, top_k=0)


def test_every_input_form_gives_the_same_logits(evolved, task_data, tmp_path):
    gray = task_data["digits"].test_x[:3]  # uint8 [3, 1, 8, 8]
    want = evolved.logits("digits", gray)
    pil = [Image.fromarray(g[0].numpy()) for g in gray]
    files = []
    for i, img in enumerate(pil):
        files.append(tmp_path / f"{i}.png")
        img.save(files[-1])
    rgb = gray.expand(-1, 3, -1, -1)  # gray replicated to RGB: its luma is the gray exactly
    forms = {
        "uint8 batch": gray,
        "uint8 [C,H,W] list": list(gray),
        "PIL gray": pil,
        "PIL RGB": [p.convert("RGB") for p in pil],
        "paths": [str(f) for f in files],
        "pathlib": files,
        "bytes": [f.read_bytes() for f in files],
        "numpy HxW": [g[0].numpy() for g in gray],
        "uint8 RGB batch": rgb,
        "prepared float": evolved.prepare("digits", gray),
    }
    for name, images in forms.items():
        assert torch.equal(evolved.logits("digits", images), want), name
    one = evolved.predict("digits", pil[0])
    assert len(one) == 1 and one == evolved.predict("digits", gray[:1])


def test_rgb_to_gray_matches_pil_luma(evolved):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    via_pil = evolved.logits("digits", Image.fromarray(rgb))
    via_tensor = evolved.logits("digits", torch.from_numpy(rgb).permute(2, 0, 1))
    via_gray = evolved.logits("digits", Image.fromarray(rgb).convert("L"))
    assert torch.equal(via_pil, via_tensor) and torch.equal(via_pil, via_gray)


def test_alpha_is_composited_onto_black_and_16_bit_is_scaled(synthetic):
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, size=(16, 16, 4), dtype=np.uint8)
    rgba[:8, :, 3] = 0  # the top half is transparent
    flat = rgba[:, :, :3].astype(np.float32) * (rgba[:, :, 3:] / np.float32(255.0))
    over_black = np.round(flat).astype(np.uint8)
    want = synthetic.logits("alpha", Image.fromarray(over_black))
    assert torch.equal(synthetic.logits("alpha", Image.fromarray(rgba)), want)
    assert torch.equal(synthetic.logits("alpha", torch.from_numpy(rgba).permute(2, 0, 1)), want)
    gray16 = (rng.integers(0, 256, size=(16, 16)) * 257).astype(np.uint16)
    scaled = Image.fromarray((gray16 // 257).astype(np.uint8))
    assert torch.equal(
        synthetic.logits("alpha", Image.fromarray(gray16)), synthetic.logits("alpha", scaled)
    )


def test_bad_inputs_raise_one_line_errors(evolved, tmp_path):
    (tmp_path / "note.txt").write_text("not an image")
    cases = [
        ("digits", tmp_path / "missing.png", "does not exist"),
        ("digits", tmp_path / "note.txt", "not a readable image"),
        ("digits", torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8 or float"),
        ("digits", torch.full((1, 3, 8, 8), 200.0), r"\[-1, 1\]"),
        ("digits", torch.zeros(8, 8, dtype=torch.uint8), r"\[C, H, W\]"),
        ("digits", 3.5, "cannot use a float"),
        ("digits", [], "no images"),
    ]
    for task, images, message in cases:
        with pytest.raises(ImageError, match=message) as info:
            evolved.predict(task, images)
        assert "\n" not in str(info.value)
    with pytest.raises(TaskError, match="unknown task 'nope'; this system has: digits, glyph"):
        evolved.predict("nope", torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


def test_model_is_frozen_and_in_eval_mode(evolved, task_data):
    model = evolved.model("digits")
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    x = evolved.prepare("digits", task_data["digits"].test_x[:5])
    with torch.no_grad():
        torch.testing.assert_close(model(x), evolved.logits("digits", x), rtol=0, atol=1e-5)


def test_load_is_read_only_and_takes_no_lock(two_task_system, task_data):
    def snapshot():
        return {
            str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(two_task_system.rglob("*"))
            if p.is_file() and p.name != "lock"
        }

    before = snapshot()
    with SystemLock(two_task_system):  # a writer holds the system: readers still load
        system = munet.load(two_task_system)
        system.predict("digits", task_data["digits"].test_x[:4])
    assert snapshot() == before


def test_cli_predict_prints_one_line_per_image(
    two_task_system, evolved, task_data, tmp_path, capsys
):
    x = task_data["digits"].test_x[:6]
    for i, img in enumerate(x):
        Image.fromarray(img[0].numpy()).save(tmp_path / f"img{i}.png")
    (tmp_path / "readme.txt").write_text("skipped: not an image suffix")
    ref = logits(evolved.arch, evolved.path("digits"), x).argmax(1).tolist()
    args = ["predict", "--system", str(two_task_system), "--task", "digits"]
    assert main([*args, str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [os.path.basename(line.split("\t")[0]) for line in lines] == [
        f"img{i}.png" for i in range(6)
    ]
    assert [int(line.split("\t")[1]) for line in lines] == ref
    assert all(0 < float(line.split("\t")[2]) <= 1 for line in lines)

    assert main([*args, "--json", "--top-k", "3", str(tmp_path / "img0.png")]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"].endswith("img0.png") and row["label"] == ref[0]
    assert len(row["top_k"]) == 3

    assert main([*args[:-1], "nope", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "munet: error: unknown task 'nope'; this system has: digits, glyph_digits"
    assert main([*args, str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
