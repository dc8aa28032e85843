"""Bad input gets one line naming the bad value and the fix, exit 2, and nothing written."""

from __future__ import annotations

import pytest
from tiny import tiny_args

from munet.cli import main


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--tasks", "builtin:nope"], "nope"),
        (["--tasks", "weird:thing"], "weird"),
        (["--root", "builtin:vit_giant"], "vit_giant"),
        (["--root", "nowhere:x"], "nowhere"),
        (["no_such_key=3"], "no_such_key"),
        (["scale_factor=1.5"], "scale_factor"),
        (["mutation_prob=-0.1"], "mutation_prob"),
        (["batch_size=0"], "batch_size"),
        (["task_iterations=two"], "task_iterations"),
        (["hparams.opt_lr=0.3"], "opt_lr"),
        (["hparams.bogus=1"], "bogus"),
        (["search_space.bogus=[1]"], "bogus"),
        (["device=tpu"], "device"),
        (["justaword"], "key=value"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, needle):
    d = tmp_path / "system"
    args = tiny_args(d, "builtin:digits")
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("munet: error:") and "\n" not in err
    assert needle in err
    assert not d.exists()


def test_missing_fashion_mnist_names_the_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUNET_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    d = tmp_path / "system"
    assert main(tiny_args(d, "builtin:fashion_mnist")) == 2
    err = capsys.readouterr().err.strip()
    assert "apt-get install -y dataset-fashion-mnist" in err and "\n" not in err
    assert not d.exists()


def test_bad_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task_iterations: [1, 2\n")
    assert main(["evolve", "--system", str(tmp_path / "s"), "--config", str(cfg)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    cfg.write_text("candidates_per_iteration: 4\nunknown_thing: 1\n")
    assert main(["evolve", "--system", str(tmp_path / "s"), "--config", str(cfg)]) == 2
    assert "unknown_thing" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_config_verb_prints_the_effective_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("candidates_per_iteration: 4\n")
    assert main(["config", "--config", str(cfg), "seed=7", "hparams.opt_lr=0.02"]) == 0
    out = capsys.readouterr().out
    assert "candidates_per_iteration: 4" in out and "seed: 7" in out and "opt_lr: 0.02" in out


def test_check_on_a_missing_system_is_one_line(tmp_path, capsys):
    assert main(["check", "--system", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no munet system" in err and "\n" not in err
