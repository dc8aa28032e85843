"""BlobStore: round-trip, integrity checks, write-once semantics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from munet.errors import StoreError
from munet.store.blobs import BlobStore


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "weight": torch.randn(8, 4, generator=g),
        "bias": torch.randn(4, generator=g).to(torch.bfloat16),
        "index": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "scalar": torch.tensor(3.5),
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def test_put_get_round_trip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    tensors = _tensors()
    record = store.put(3, tensors)
    path = tmp_path / "components" / "3.safetensors"
    assert path.is_file()
    assert record == {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "shapes": {"bias": [4], "index": [2, 3], "scalar": [], "weight": [8, 4]},
        "dtypes": {"bias": "bfloat16", "index": "int64", "scalar": "float32", "weight": "float32"},
        "numel": 32 + 4 + 6 + 1,
    }
    _assert_same(store.get(3), tensors)
    _assert_same(store.get(3, record), tensors)
    assert store.verify(3, record) is None
    assert store.exists(3) and not store.exists(4)
    assert store.ids() == {3}
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle


def test_put_handles_views_shared_storage_and_noncontiguous(tmp_path: Path) -> None:
    base = torch.randn(6, 6)
    tensors = {
        "full": base,
        "tied": base,  # same storage twice
        "row": base[2],  # view into a bigger storage
        "t": base.t(),  # non-contiguous
        "grad": torch.ones(3, requires_grad=True) * 2,
    }
    store = BlobStore(tmp_path)
    record = store.put(0, tensors)
    got = store.get(0, record)
    _assert_same(got, {k: v.detach() for k, v in tensors.items()})
    got["full"].add_(1)  # loaded tensors are independent
    assert not torch.equal(got["full"], got["tied"])


def test_tampered_byte_fails_sha(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    record = store.put(7, _tensors())
    path = store.path(7)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # flip a bit in tensor data: still parses, but content changed
    path.write_bytes(bytes(data))
    store.get(7)  # without a record, a parseable file loads
    with pytest.raises(StoreError) as info:
        store.get(7, record)
    assert str(path) in str(info.value) and "sha256" in str(info.value)
    problem = store.verify(7, record)
    assert problem is not None and str(path) in problem and "corrupt" in problem


@pytest.mark.parametrize("keep", [0, 5, 40, -3])
def test_truncated_file_raises_store_error(tmp_path: Path, keep: int) -> None:
    store = BlobStore(tmp_path)
    store.put(1, _tensors())
    path = store.path(1)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(StoreError, match=r"components/1\.safetensors is truncated"):
        store.get(1)
    problem = store.verify(1, {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    assert problem is not None and "1.safetensors is truncated" in problem


def test_missing_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(StoreError, match=r"components/9\.safetensors is missing"):
        store.get(9)
    assert "is missing" in (store.verify(9, {"sha256": "0" * 64}) or "")


def test_record_shape_mismatch(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    record = store.put(2, _tensors())
    bad = {**record, "shapes": {**record["shapes"], "weight": [4, 8]}}
    problem = store.verify(2, bad)
    assert problem is not None and "shapes" in problem and "2.safetensors" in problem
    with pytest.raises(StoreError, match="does not match its record"):
        store.get(2, bad)


def test_write_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.put(5, _tensors())
    path = store.path(5)
    mtime = path.stat().st_mtime_ns
    assert store.put(5, _tensors()) == first  # identical: no-op
    assert path.stat().st_mtime_ns == mtime
    changed = _tensors()
    changed["weight"][0, 0] += 1
    with pytest.raises(StoreError, match="component 5 already exists .* write-once"):
        store.put(5, changed)
    assert store.get(5, first)["weight"][0, 0] == _tensors()["weight"][0, 0]


def test_delete_and_ids(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert store.ids() == set()
    for cid in (1, 2, 10):
        store.put(cid, {"w": torch.full((2,), float(cid))})
    (store.directory / ".tmp-4.safetensors.abc").write_bytes(b"x")
    (store.directory / "notes.txt").write_bytes(b"x")
    assert store.ids() == {1, 2, 10}
    assert store.delete([2, 10, 99]) == [2, 10]
    assert store.ids() == {1}
    assert store.delete([]) == []


@pytest.mark.parametrize("bad_id", [-1, 1.0, "3", True, None])
def test_bad_ids_rejected(tmp_path: Path, bad_id: object) -> None:
    with pytest.raises(StoreError, match="non-negative int"):
        BlobStore(tmp_path).put(bad_id, {"w": torch.zeros(1)})  # type: ignore[arg-type]


def test_bad_tensors_rejected(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(StoreError, match="'w' is a list"):
        store.put(0, {"w": [1.0]})  # type: ignore[dict-item]
    assert not store.exists(0)
