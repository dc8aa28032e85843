"""One damaged private blob makes only its task unusable; predict and serve keep the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tiny import stored

import munet
from munet.errors import StoreError
from munet.serve.app import ServeSettings, create_app


@pytest.fixture
def damaged_dir(tmp_path: Path, synthetic_dir: Path) -> tuple[Path, int]:
    d = tmp_path / "system"
    shutil.copytree(synthetic_dir, d)
    store, state = stored(d)
    head = state.population["beta"][0].component("head").id  # private to beta
    store.blobs.path(head).write_bytes(b"not a safetensors file")
    return d, head


def test_a_damaged_private_blob_disables_only_its_task(damaged_dir) -> None:
    d, head = damaged_dir
    system = munet.load(d)
    assert sorted(system.tasks) == ["alpha", "delta", "gamma"]
    assert f"{head}.safetensors is corrupt" in system.damaged["beta"]
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    assert len(system.predict("alpha", image)) == 1
    with pytest.raises(StoreError, match=f"task 'beta' cannot be used: .*{head}.safetensors"):
        system.predict("beta", image)


def test_serve_answers_503_for_the_damaged_task_only(damaged_dir) -> None:
    import base64
    import io

    from PIL import Image

    d, head = damaged_dir
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="PNG")
    body = {"images": [base64.b64encode(buf.getvalue()).decode()]}
    with TestClient(create_app(munet.load(d), ServeSettings(batch_wait_ms=1))) as client:
        assert client.post("/v1/tasks/alpha/predict", json=body).status_code == 200
        bad = client.post("/v1/tasks/beta/predict", json=body)
        assert bad.status_code == 503 and f"{head}.safetensors" in bad.json()["error"]


def test_every_task_damaged_is_one_store_error(damaged_dir) -> None:
    d, _ = damaged_dir
    for blob in (d / "components").iterdir():
        blob.write_bytes(b"x")
    with pytest.raises(StoreError, match="is corrupt"):
        munet.load(d)


def test_a_reader_racing_a_writer_reads_the_journal_again(
    damaged_dir, synthetic_dir, monkeypatch
) -> None:
    """A blob missing because a writer moved on (a newer snapshot, garbage collected) is no
    damage: the reader sees that the journal grew meanwhile and reads it again."""
    import munet.serve.system as serve_system

    d, head = damaged_dir
    good = (synthetic_dir / "components" / f"{head}.safetensors").read_bytes()
    calls: list[int] = []

    def journal_size(store: object) -> int:
        calls.append(1)
        if len(calls) == 2:  # checked after a failed load: the writer has appended meanwhile
            (d / "components" / f"{head}.safetensors").write_bytes(good)
        return 100 if len(calls) == 1 else 200

    monkeypatch.setattr(serve_system, "_journal_size", journal_size)
    system = munet.load(d)
    assert system.damaged == {} and "beta" in system.tasks and len(calls) == 3
