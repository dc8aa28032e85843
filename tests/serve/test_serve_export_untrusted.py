"""An export is untrusted input: its JSON's counts and shapes are checked against the
safetensors header before any model is built, and every malformed file is one ExportError."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from munet.serve.errors import ExportError
from munet.serve.export import export_task, load_exported


@pytest.fixture(scope="module")
def exported(synthetic, tmp_path_factory) -> Path:
    """gamma (a residual adapter before block 1, 5 classes) exported as safetensors + JSON."""
    out = tmp_path_factory.mktemp("untrusted") / "gamma.safetensors"
    export_task(synthetic, "gamma", out)
    return out


def _edit(exported: Path, tmp_path: Path, change) -> Path:
    out = tmp_path / exported.name
    shutil.copy(exported, out)
    cfg = json.loads(exported.with_suffix(".json").read_text())
    change(cfg)
    out.with_suffix(".json").write_text(json.dumps(cfg))
    return out


def _set(path: str, value):
    def change(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value

    return change


CASES = [
    ("num_layers", _set("munet.hparams.num_layers", 200_000), "num_layers=200000"),
    ("num_layers vs blocks", _set("munet.hparams.num_layers", 1), "hold 2 blocks"),
    ("adapters", _set("munet.hparams.adapter_layers", list(range(200_000))), "adapter_layers"),
    ("adapter moved", _set("munet.hparams.adapter_layers", [0]), "adapters at [1]"),
    ("embed_dim", _set("munet.arch.embed_dim", 2**20), "arch.embed_dim=1048576"),
    ("depth", _set("munet.arch.depth", "deep"), "arch.depth='deep'"),
    ("short class_names", _set("class_names", ["a", "b"]), "2 class_names"),
    ("class_names type", _set("class_names", "abc"), "class_names is not a list"),
    ("channels", _set("preprocess.channels", 7), "preprocess.channels=7"),
    ("channels text", _set("preprocess.channels", "x"), "preprocess.channels='x'"),
    ("image size", _set("munet.hparams.ds_image_size", 48), "needs 37 position embeddings"),
    ("no munet", lambda cfg: cfg.pop("munet"), 'no "munet"'),
    ("no preprocess", lambda cfg: cfg.pop("preprocess"), '"preprocess"'),
    ("arch incomplete", lambda cfg: cfg["munet"]["arch"].pop("num_heads"), "incomplete"),
    ("heads", _set("munet.arch.num_heads", 5), "buildable"),
    ("format", _set("format", ["x"]), "not a munet export"),
]


@pytest.mark.parametrize("name,change,message", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_export_is_one_export_error_before_any_model_is_built(
    exported, tmp_path, monkeypatch, name, change, message
):
    import munet.model.vit

    built = []
    real = munet.model.vit.PathModel.__init__

    def spy(self, *args, **kwargs):
        built.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(munet.model.vit.PathModel, "__init__", spy)
    with pytest.raises(ExportError, match=re.escape(message)) as err:
        load_exported(_edit(exported, tmp_path, change))
    assert "\n" not in str(err.value)
    assert built == [] or name == "heads"  # only a shape the header cannot show gets built


def test_unreadable_export_files_are_one_export_error(exported, tmp_path):
    out = tmp_path / exported.name
    shutil.copy(exported, out)
    out.with_suffix(".json").write_text("[" * 100_000)
    with pytest.raises(ExportError, match="cannot read export"):
        load_exported(out)
    out.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ExportError, match="is not a JSON object"):
        load_exported(out)
    shutil.copy(exported.with_suffix(".json"), out.with_suffix(".json"))
    out.write_bytes(exported.read_bytes()[:100])
    with pytest.raises(ExportError, match="cannot read export"):
        load_exported(out)
    out.write_bytes(exported.read_bytes())
    assert (
        load_exported(out).classes
        == json.loads(out.with_suffix(".json").read_text())["class_names"]
    )


def test_export_to_a_read_only_place_is_one_export_error(synthetic, tmp_path, monkeypatch):
    import errno

    if Path("/proc").is_dir():  # not writable even by root
        with pytest.raises(ExportError, match="cannot write export") as err:
            export_task(synthetic, "alpha", "/proc/alpha.safetensors")
        assert "\n" not in str(err.value)

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(ExportError, match="alpha.json: Permission denied; choose a writable"):
        export_task(synthetic, "alpha", tmp_path / "alpha.safetensors")
    with pytest.raises(ExportError, match="Permission denied"):
        export_task(synthetic, "alpha", tmp_path / "folder", "timm")
