"""Fuzz harness (hypothesis): random config values, random journal truncations and bit flips,
random HTTP bodies. Each must end in success or one one-line munet error: never another
exception, never a 500, and a journal read that succeeds never yields a changed history."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from munet.config import Config, build_config
from munet.errors import ConfigError, StoreError

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky failures
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = [f.name for f in dataclasses.fields(Config)]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["builtin:vit_micro", "timm:", "file:/nope", "cpu", "in_process", "screen"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
HPARAMS = st.dictionaries(
    st.sampled_from(["lr", "num_layers", "adapter_dim", "ds_image_size", "dropout", "bogus"]),
    VALUES,
    max_size=3,
)


def _one_line(err: Exception) -> None:
    msg = str(err)
    assert msg and "\n" not in msg, repr(msg)


@FUZZ
@given(
    overrides=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), VALUES, max_size=4),
    hparams=HPARAMS,
)
def test_random_config_values_give_a_config_or_a_one_line_config_error(overrides, hparams):
    if hparams:
        overrides["hparams"] = hparams
    try:
        cfg = build_config(overrides=overrides)
    except ConfigError as err:
        _one_line(err)
    else:
        assert isinstance(cfg, Config)


@pytest.fixture(scope="module")
def journal_copy(two_task_system, tmp_path_factory):
    """A copy of the tiny stored system (the fuzz only rewrites its journal)."""
    d = tmp_path_factory.mktemp("fuzz") / "system"
    shutil.copytree(two_task_system, d)
    return d, (d / "journal.jsonl").read_bytes()


@FUZZ
@given(data=st.data())
def test_journal_truncations_and_bit_flips_are_success_or_one_line_store_error(journal_copy, data):
    from munet.store.system import SystemStore

    d, original = journal_copy
    raw = bytearray(original)
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw)), label="length")]
    for _ in range(data.draw(st.integers(0, 3), label="flips")):
        if raw:
            i = data.draw(st.integers(0, len(raw) - 1), label="byte")
            raw[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    (d / "journal.jsonl").write_bytes(bytes(raw))
    try:
        logging.disable(logging.WARNING)  # a dropped torn line is logged, not an error
        store = SystemStore(d)
        store.read()
        state = store.load_state(load_tensors=False)
    except StoreError as err:
        _one_line(err)
        return
    finally:
        logging.disable(logging.NOTSET)
        (d / "journal.jsonl").write_bytes(original)
    # Success: what was read is the history up to some event, never an altered one.
    reference = SystemStore(d)
    reference.read()
    k = len(store.events)
    assert store.events == reference.events[:k]
    assert state is not None


@pytest.fixture(scope="module")
def fuzz_client(two_task_system):
    from fastapi.testclient import TestClient

    import munet
    from munet.serve.app import ServeSettings, create_app

    s = ServeSettings(batch_wait_ms=0, max_images=4, max_upload_bytes=64 * 1024, max_pixels=4096)
    with TestClient(create_app(munet.load(two_task_system), s)) as client:
        yield client


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "text/plain",
        "",
        "application/json; charset=latin-1",
    ]
)
JSON_BODIES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["images", "top_k", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    body=st.binary(max_size=512)
    | JSON_BODIES.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 200_000).map(lambda n: b"[" * n),
    content_type=CONTENT_TYPES,
    task=st.sampled_from(["digits", "glyph_digits", "nope"]),
    query=st.sampled_from(["", "?top_k=2", "?top_k=1e999", "?top_k=-1", "?top_k=%00"]),
)
@example(b"[" * 100_000, "application/json", "digits", "")
@example(b'{"images": ["AAAA"], "top_k": Infinity}', "application/json", "digits", "")
def test_random_http_bodies_never_get_a_500(fuzz_client, body, content_type, task, query):
    if content_type.startswith("multipart") and body[:1] != b"-":
        body = b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n' + body
    headers = {"content-type": content_type} if content_type else {}
    r = fuzz_client.post(f"/v1/tasks/{task}/predict{query}", content=body, headers=headers)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        message = r.json()["error"]
        assert message and "\n" not in message
