"""The command line around the library: --version, tasks without torch, add-task's forms,
config --explain from field metadata, consistent --device defaults."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys

import pytest
import yaml

import munet
from munet.cli import DEFAULT_SYSTEM, add_task_arguments, build_parser, main
from munet.config import EXECUTION_KEYS, FROZEN_KEYS, Config
from munet.errors import MunetError


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    want = importlib.metadata.version("munet")
    assert capsys.readouterr().out.strip() == f"munet {want}"
    assert munet.__version__ == want


def _python(*lines: str) -> str:
    """stdout of a fresh interpreter running ``lines`` (a module cache would hide imports)."""
    run = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_tasks_command_does_not_import_torch():
    out = _python(
        "import sys",
        "from munet.cli import main",
        "assert main(['tasks']) == 0",
        "heavy = [m for m in ('torch', 'numpy', 'timm') if m in sys.modules]",
        "assert not heavy, heavy",
    )
    lines = out.splitlines()
    assert lines[0].startswith("built-in tasks")
    assert [ln.split()[:2] for ln in lines[1:3]] == [["*", "fashion_mnist"], ["*", "digits"]]
    assert len(lines) == 7  # six listed tasks; the pretraining corpus is hidden


def test_import_munet_is_lazy():
    out = _python(
        "import sys, munet",
        "assert 'torch' not in sys.modules",
        "assert callable(munet.evolve) and callable(munet.export) and munet.Config",
        "print(sorted(munet.__all__))",
    )
    names = set(eval(out))
    assert {"evolve", "add_tasks", "check", "report", "export", "load", "Config"} <= names


def _add_task(*argv: str):
    return add_task_arguments(build_parser().parse_args(["add-task", *argv]))


def test_add_task_takes_the_system_option_and_overrides():
    got = _add_task(
        "--system", "s", "--tasks", "builtin:a,builtin:b", "task_iterations=1", "hparams.x=2"
    )
    assert got == ("s", ["builtin:a", "builtin:b"], ["task_iterations=1", "hparams.x=2"])
    # a spec whose options hold '=' is a task, not an override
    got = _add_task("--system", "s", "imagefolder:/d?val=0.1", "seed_keep=3")
    assert got == ("s", ["imagefolder:/d?val=0.1"], ["seed_keep=3"])


def test_add_task_keeps_the_positional_form():
    assert _add_task("sys", "builtin:a", "builtin:b") == ("sys", ["builtin:a", "builtin:b"], [])
    assert _add_task("--tasks", "builtin:a") == (DEFAULT_SYSTEM, ["builtin:a"], [])
    with pytest.raises(MunetError, match="needs the tasks to add"):
        _add_task("--system", "s")


def test_add_task_accepts_evolve_execution_options():
    args = build_parser().parse_args(
        ["add-task", "--system", "s", "--tasks", "builtin:a", "--executor", "ray", "--workers", "2"]
    )
    assert (args.executor, args.workers, args.config) == ("ray", 2, None)


def test_add_task_on_a_missing_system_is_one_line(tmp_path, capsys):
    code = main(["add-task", "--system", str(tmp_path / "none"), "--tasks", "builtin:digits"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("munet: error:") and "holds no munet system" in err
    assert "\n" not in err


@pytest.mark.parametrize("verb", ["predict", "export", "serve", "evolve"])
def test_device_defaults_to_auto_everywhere(verb):
    extra = {"predict": ["--task", "t", "x.png"], "export": ["--task", "t", "--out", "o"]}
    args = build_parser().parse_args([verb, *extra.get(verb, [])])
    assert getattr(args, "device", None) in ("auto", None)
    if verb == "evolve":
        assert Config().device == "auto"


def test_every_config_key_has_help():
    for f in dataclasses.fields(Config):
        assert f.metadata.get("help"), f"Config.{f.name} has no help metadata"


def test_config_explain_comments_each_key_and_stays_valid_yaml(capsys):
    assert main(["config", "--explain", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == {**Config().to_dict(), "seed": 7}
    blocks = out.strip().split("\n\n")
    assert len(blocks) == len(dataclasses.fields(Config))
    by_key = {b.splitlines()[2].split(":")[0]: b for b in blocks}
    assert "# default 0; frozen" in by_key["seed"]
    assert "seed: 7" in by_key["seed"]
    assert "# default 2; may change on resume" in by_key["task_iterations"]
    for key in FROZEN_KEYS:
        assert "frozen" in by_key[key].splitlines()[1], key
    for key in EXECUTION_KEYS:
        assert "per run" in by_key[key].splitlines()[1], key
    help_ = {f.name: f.metadata["help"] for f in dataclasses.fields(Config)}
    assert by_key["batch_size"].splitlines()[0] == f"# {help_['batch_size']}"


def test_config_of_a_missing_system_directory_uses_the_defaults(tmp_path, capsys):
    assert main(["config", "--system", str(tmp_path / "none")]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == Config().to_dict()
