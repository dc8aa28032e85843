"""Glyph rendering, glyph tasks, the render cache, and the pretraining corpus."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

from munet.data import builtin, charsets, glyphs
from munet.data.builtin import (
    FASHION_MNIST_CLASSES,
    GLYPH_TASKS,
    glyph_cache_path,
    load_pretrain_corpus,
    render_glyph_task,
)
from munet.data.load import load_task

TASK_GLYPHS = ("glyph_digits", "glyph_latin", "glyph_greek", "glyph_symbols")


def test_fonts_are_found_and_cover_every_class() -> None:
    names = {f.name for f in glyphs.available_fonts()}
    assert {"DejaVuSans", "DejaVuSerif-Bold", "STIXGeneral", "cmr10"} <= names
    assert not any("Display" in n or n.startswith(("LastResort", "STIXSiz")) for n in names)
    for ch in "7Qα∑":
        assert len(glyphs.fonts_for_char(ch)) >= 12
    # cm fonts use TeX encodings: only ASCII letters/digits may come from them.
    assert all(not f.ascii_only for f in glyphs.fonts_for_char("+"))
    assert any(f.name == "cmr10" for f in glyphs.fonts_for_char("A"))


def test_render_split_shape_balance_and_determinism() -> None:
    chars = ("A", "B", "∑")
    x, y = glyphs.render_split(chars, 7, [0, 1, 2])
    assert x.shape == (21, 1, 32, 32) and x.dtype == np.uint8
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [7, 7, 7]
    assert (x.reshape(21, -1).max(axis=1) >= 150).all()  # every image has bright ink
    assert (x[:, 0, 0, :].max() <= 60) and (x[:, 0, :, 0].max() <= 60)  # dark borders
    x2, y2 = glyphs.render_split(chars, 7, [0, 1, 2])
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = glyphs.render_split(chars, 7, [0, 1, 3])
    assert not np.array_equal(x, x3)
    assert len({img.tobytes() for img in x}) == 21  # all renders differ


def test_glyph_task_small_render(cache_dir: Path) -> None:
    task = load_task("builtin:glyph_latin", max_per_class=4)
    assert task.name == "glyph_latin" and task.num_classes == 26
    assert task.class_names == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert task.split_info["sizes"] == {"train": 104, "val": 104, "test": 104}
    assert task.split_info["per_class"] == {"train": 4, "val": 4, "test": 4}
    for s in ("train", "val", "test"):
        x, y = task.split(s)
        assert x.shape[1:] == (1, 32, 32) and x.dtype == torch.uint8
        assert torch.bincount(y, minlength=26).tolist() == [4] * 26
    # splits are independent renders: no image appears in two splits
    seen = [{img.numpy().tobytes() for img in task.split(s)[0]} for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    data = cache_dir / "data"  # the data cache inside $MUNET_CACHE_DIR
    path = glyph_cache_path(data, "glyph_latin", 0, (4, 4, 4), charsets.GLYPH_LATIN)
    assert path.is_file() and f"-r{glyphs.RENDER_VERSION}-s0-" in path.name
    assert not list(data.glob("*.tmp"))


def test_glyph_cache_reused_and_seeded(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    a = render_glyph_task("glyph_digits", tmp_path, seed=5, max_per_class=3)

    def boom(*args, **kwargs):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(glyphs, "render_split", boom)
    b = render_glyph_task("glyph_digits", tmp_path, seed=5, max_per_class=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.split_info["fingerprint"] == b.split_info["fingerprint"]
    monkeypatch.undo()
    c = render_glyph_task("glyph_digits", tmp_path, seed=6, max_per_class=3)
    assert not torch.equal(a.train_x, c.train_x)
    assert c.split_info["seed"] == 6 and a.split_info["seed"] == 5
    fresh = render_glyph_task("glyph_digits", tmp_path / "other", seed=5, max_per_class=3)
    assert fresh.split_info["fingerprint"] == a.split_info["fingerprint"]


def test_rendering_on_first_use_reports_progress_and_a_cache_hit_does_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="munet")
    render_glyph_task("glyph_digits", tmp_path, seed=3, max_per_class=2)
    said = [r.getMessage() for r in caplog.records if r.name == "munet.data.builtin"]
    assert said[0].startswith("task glyph_digits: rendering 60 glyphs on first use (cached in ")
    # piped (pytest's stderr is no terminal): the final count, with nothing left to wait for
    assert said[-1].startswith("render glyph_digits 60/60, ") and said[-1].endswith("ETA 00:00")
    caplog.clear()
    render_glyph_task("glyph_digits", tmp_path, seed=3, max_per_class=2)
    (hit,) = [r for r in caplog.records if r.name == "munet.data.builtin"]
    assert hit.levelno == logging.DEBUG and "read from the cache" in hit.getMessage()


def test_corrupt_cache_is_rerendered(tmp_path: Path) -> None:
    a = render_glyph_task("glyph_symbols", tmp_path, max_per_class=2)
    path = glyph_cache_path(tmp_path, "glyph_symbols", 0, (2, 2, 2), charsets.GLYPH_SYMBOLS)
    path.write_bytes(b"not a zip")
    b = render_glyph_task("glyph_symbols", tmp_path, max_per_class=2)
    assert torch.equal(a.val_x, b.val_x)
    assert path.stat().st_size > 1000


def test_glyph_task_sizes_and_classes() -> None:
    assert GLYPH_TASKS["glyph_digits"].chars == tuple("0123456789")
    assert len(GLYPH_TASKS["glyph_greek"].chars) == 24
    assert len(GLYPH_TASKS["glyph_symbols"].chars) == 20
    for name in TASK_GLYPHS:
        train, val, test = GLYPH_TASKS[name].per_class
        assert 300 <= train <= 600 and val == 60 and test == 60
        assert len(set(GLYPH_TASKS[name].chars)) == len(GLYPH_TASKS[name].chars)


def test_symbols_have_no_mirror_pairs() -> None:
    mirrors = {"→": "←", "≤": "≥", "<": ">", "⊂": "⊃", "∈": "∋", "(": ")"}
    syms = set(charsets.GLYPH_SYMBOLS)
    assert not any(a in syms and b in syms for a, b in mirrors.items())


def test_pretrain_classes_disjoint_from_every_builtin_task() -> None:
    pre = set(charsets.PRETRAIN_GLYPHS)
    assert 150 <= len(pre) == len(charsets.PRETRAIN_GLYPHS) <= 180
    task_classes: set[str] = set(FASHION_MNIST_CLASSES) | {str(i) for i in range(10)}
    for name, entry in builtin.BUILTIN_TASKS.items():
        if entry.listed and name in GLYPH_TASKS:
            task_classes |= set(GLYPH_TASKS[name].chars)
    assert {n for n, _ in builtin.list_builtin_tasks()} >= set(TASK_GLYPHS)
    assert pre.isdisjoint(task_classes)
    assert pre.isdisjoint(charsets.PRETRAIN_EXCLUDED)  # screened look-alikes stay out
    assert not any(unicodedata.category(ch) == "Nd" for ch in pre)  # no digits of any script
    assert not any("A" <= ch <= "Z" for ch in pre)
    assert not any(unicodedata.name(ch).startswith("GREEK") for ch in pre)
    for ch in pre:
        assert len(glyphs.fonts_for_char(ch)) >= 2, ch


def test_load_pretrain_corpus_small() -> None:
    corpus = load_pretrain_corpus(max_per_class=2, seed=3)
    assert corpus.name == "pretrain_glyphs" and corpus.spec == "builtin:pretrain_glyphs"
    assert corpus.num_classes == 175
    assert corpus.split_info["sizes"] == {"train": 350, "val": 350, "test": 350}
    assert GLYPH_TASKS["pretrain_glyphs"].per_class == (200, 20, 20)
    assert torch.bincount(corpus.train_y, minlength=175).tolist() == [2] * 175
