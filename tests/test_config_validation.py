"""The whole config is validated before anything is written: a bad value is one line, exit 2,
and no system directory, never a traceback mid-run that every resume would repeat."""

from __future__ import annotations

import pytest
from tiny import tiny_args

import munet.config as config
from munet.cli import main
from munet.config import Config, build_config, parse_overrides, peak_memory_estimate
from munet.errors import ConfigError
from munet.system.arch import RootArch


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["search_space.opt_lr=[0.5, 0.6]"], "hparams.opt_lr=0.01 (the default) is not in"),
        (["hparams.adapter_dim=abc"], "hparams.adapter_dim='abc' is invalid"),
        (
            ["search_space.adapter_dim=[a, b]", "hparams.adapter_dim=a"],
            "search_space.adapter_dim='a' is invalid",
        ),
        (["hparams.ds_image_size=4096"], "hparams.ds_image_size=4096 is invalid"),
        (["search_space.ds_image_size=[8, 32]"], "search_space.ds_image_size=8 is invalid"),
        (["hparams.opt_lr_schedule=linear"], "opt_lr_schedule must be one of"),
        (["hparams.opt_momentum=1.5"], "opt_momentum=1.5 is invalid"),
        (["hparams.ds_hue_delta=.nan"], "ds_hue_delta=nan is invalid"),
        (["hparams.adapter_layers=[1, 1]"], "adapter_layers=[1, 1] is invalid"),
        (["search_space.num_layers=[0, 1]"], "search_space.num_layers=0 is invalid"),
        (["search_space.opt_lr=[]"], "search_space.opt_lr=[] must be a non-empty list"),
        (["batch_size=1000000000000"], "batch_size=1000000000000 is too large"),
        (["validation_batches=99999999"], "validation_batches=99999999 is too large"),
        (["threads=100000"], "threads=100000 is out of range"),
        (["seed=-1"], "seed=-1 is out of range"),
        (["force_finetune=[bogus]"], "force_finetune entry 'bogus' is not a component name"),
        (["force_finetune=[encoderblock_x]"], "'encoderblock_x' is not a component name"),
        (["force_finetune=[3]"], "force_finetune entry 3"),
        (["tasks=[1]"], "tasks entry 1 is not a task spec"),
        (["parent_fallback=first"], "parent_fallback='first' is unknown; use uniform"),
    ],
)
def test_bad_values_are_refused_before_the_root_is_loaded(overrides, needle):
    with pytest.raises(ConfigError) as info:
        build_config(overrides=parse_overrides(overrides))
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_valid_overrides_pass():
    cfg = build_config(
        overrides=parse_overrides(
            [
                "search_space.opt_lr=[0.5, 0.6]",
                "hparams.opt_lr=0.5",
                "search_space.adapter_dim=[4, 8]",
                "hparams.adapter_dim=8",
                "hparams.opt_momentum=null",
                "force_finetune=[encoder_norm, encoderblock_1, residual_adapter_0, head]",
                "threads=2",
            ]
        )
    )
    assert cfg.default_hparams()["opt_lr"] == 0.5 and cfg.force_finetune[1] == "encoderblock_1"


MICRO = RootArch(embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=8, image_size=32)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["search_space.num_layers=[99]"], "search_space.num_layers value 99 is out of range"),
        (["search_space.num_layers=[1]"], "num_layers=2 (the default) is not in"),
        (["search_space.ds_image_size=[20, 32]"], "ds_image_size value 20 is not a multiple"),
        (["search_space.ds_image_size=[64]"], "ds_image_size=32 (the default) is not in"),
        (["force_finetune=[encoderblock_7]"], "names block 7 but the root has 2 blocks"),
        (["hparams.adapter_layers=[5]"], "adapter_layers entry 5 is out of range"),
    ],
)
def test_values_that_need_the_root_are_refused(overrides, needle):
    cfg = build_config(overrides=parse_overrides(overrides))
    with pytest.raises(ConfigError) as info:
        cfg.validate_for_root(MICRO)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_min_patches_leaving_no_image_size_is_refused():
    b32 = RootArch(
        embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=32, image_size=224
    )
    cfg = build_config(overrides={"min_patches": 13})
    with pytest.raises(ConfigError) as info:
        cfg.validate_for_root(b32)
    needle = "min_patches=13 leaves no image size <= 384 for a root of patch 32"
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_memory_estimate_grows_with_batch_and_image_and_is_refused_over_the_limit(monkeypatch):
    small = peak_memory_estimate(MICRO, 32, 32, 10, adapter_dim=128)
    assert peak_memory_estimate(MICRO, 64, 32, 10, 128) > small
    assert peak_memory_estimate(MICRO, 32, 64, 10, 128) > small
    # tokens 17, width 48, hidden 96, adapter 128, 3 heads, 2 blocks: 32 x 2 x (17 x 1024 +
    # 3 x 289) floats of activations, 4 x 32 x 3072 of batch, 32 x 10 x 3072 of validation
    assert small == 4 * (32 * 2 * (17 * 1024 + 3 * 289) + 4 * 32 * 3072 + 320 * 3072)
    monkeypatch.setattr(config, "memory_limit", lambda device: (small - 1, "RAM on this machine"))
    cfg = Config(batch_size=32).validate()
    with pytest.raises(ConfigError, match="MiB of RAM on this machine; lower batch_size"):
        cfg.validate_for_root(MICRO)
    monkeypatch.setattr(config, "memory_limit", lambda device: (small, "RAM on this machine"))
    cfg.validate_for_root(MICRO)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["search_space.num_layers=[99]"], "num_layers value 99"),
        (["force_finetune=[bogus]"], "bogus"),
        (["hparams.ds_image_size=4096"], "ds_image_size=4096"),
    ],
)
def test_evolve_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, extra, needle):
    d = tmp_path / "system"
    assert main(tiny_args(d, "builtin:digits") + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("munet: error:") and "\n" not in err and needle in err
    assert not d.exists()


def test_evolve_refuses_over_the_memory_limit_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(config, "memory_limit", lambda device: (2**20, "RAM on this machine"))
    d = tmp_path / "system"
    assert main(tiny_args(d, "builtin:digits")) == 2
    err = capsys.readouterr().err.strip()
    assert "more than the 1 MiB of RAM on this machine" in err and "\n" not in err
    assert not d.exists()


def test_a_system_path_that_is_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(tiny_args(f, "builtin:digits")) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file, not a directory" in err and "\n" not in err
    assert f.read_text() == "x"


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"seed: 1\nroot: \xff\xfe\n")
    assert main(["evolve", "--system", str(tmp_path / "s"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not UTF-8 text" in err and "\n" not in err
    assert not (tmp_path / "s").exists()
