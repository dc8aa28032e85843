"""Where munet caches: MUNET_CACHE_DIR, else XDG_CACHE_HOME/munet, else ~/.cache/munet."""

from __future__ import annotations

from pathlib import Path

from munet.data.cache import cache_root, default_cache_dir
from munet.model.root import cache_dir as root_cache_dir


def test_munet_cache_dir_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MUNET_CACHE_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "m"
    assert default_cache_dir() == tmp_path / "m" / "data"
    assert root_cache_dir() == tmp_path / "m"


def test_xdg_cache_home_is_next(monkeypatch, tmp_path):
    monkeypatch.delenv("MUNET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "munet"
    assert default_cache_dir() == tmp_path / "x" / "munet" / "data"
    assert root_cache_dir() == tmp_path / "x" / "munet"


def test_home_cache_is_last(monkeypatch, tmp_path):
    monkeypatch.delenv("MUNET_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    for xdg in (None, "", "relative/cache"):  # unset, empty or relative: ignored (XDG spec)
        if xdg is None:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        assert cache_root() == Path(tmp_path) / ".cache" / "munet"
