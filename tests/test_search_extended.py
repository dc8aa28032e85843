"""The ``search`` switch: paper (default, and the value of systems stored before the key) keeps
the spec's search space; extended adds low-rank components and AdamW. A tiny extended evolve
runs end to end, reloads and predicts the same; a resume may not change ``search``."""

from __future__ import annotations

import csv

import pytest
import torch
from tiny import tiny_args

import munet
from munet.cli import main
from munet.config import FROZEN_KEYS, Config, build_config, parse_overrides, with_legacy
from munet.data.load import load_tasks
from munet.errors import ConfigError, StoreError
from munet.runner import _check_resume
from munet.store.check import check_locks
from munet.store.system import SystemStore
from munet.train.trainer import logits

EXTENDED = ("search=extended", "mutation_prob=0.5", "hparams.opt_name=adamw")


def test_paper_is_the_default_and_the_legacy_value_and_is_frozen():
    assert Config().search == "paper" and with_legacy({})["search"] == "paper"
    assert "search" in FROZEN_KEYS
    paper, extended = Config().default_hparams(), Config(search="extended").default_hparams()
    assert "opt_name" not in paper and "lowrank_layers" not in paper
    assert extended["opt_name"] == "sgd" and extended["lowrank_layers"] == []
    assert {k: v for k, v in extended.items() if k in paper} == paper


def test_a_resume_may_not_change_search_and_a_legacy_system_is_paper():
    legacy = {k: v for k, v in Config().to_dict().items() if k != "search"}
    _check_resume(with_legacy(legacy), Config(), {}, {})  # saved before the key: paper
    with pytest.raises(StoreError, match="different values for: search;"):
        _check_resume(with_legacy(legacy), Config(search="extended"), {}, {})


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["search=lora"], "search='lora' is unknown; use paper"),
        (["hparams.opt_name=adamw"], "hparams.opt_name belongs to the extended search space"),
        (["search_space.lowrank_rank=[4]"], "set search=extended or remove"),
        (["search=extended", "hparams.opt_name=adam"], "opt_name must be sgd or adamw"),
        (["search=extended", "hparams.opt_adamw_lr=0.7"], "hparams.opt_adamw_lr=0.7 is not in"),
        (["search=extended", "hparams.lowrank_layers=[1, 1]"], "lowrank_layers=[1, 1] is invalid"),
        (["search=extended", "force_finetune=[lowrank_x]"], "or lowrank_<i>"),
    ],
)
def test_search_mistakes_are_one_line_errors(overrides, needle):
    with pytest.raises(ConfigError) as err:
        build_config(overrides=parse_overrides(overrides))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_extended_accepts_its_hyperparameters():
    cfg = build_config(
        overrides=parse_overrides(
            ["search=extended", "hparams.opt_name=adamw", "search_space.lowrank_rank=[4, 8]"]
        )
    )
    assert cfg.default_hparams()["opt_name"] == "adamw"


def test_tiny_extended_evolve_refuses_a_paper_resume_then_reloads_and_predicts_the_same(
    tmp_path, capsys
):
    d = tmp_path / "s"
    tasks = "builtin:digits,builtin:glyph_digits"
    assert main(tiny_args(d, tasks, *EXTENDED)) == 0
    capsys.readouterr()
    journal = (d / "journal.jsonl").read_bytes()
    assert main(tiny_args(d, tasks, "task_iterations=3", "search=paper")) == 2
    err = capsys.readouterr().err  # its stored hparams.opt_name needs search=extended
    assert "search=extended" in err and err.count("\n") == 1
    assert (d / "journal.jsonl").read_bytes() == journal  # nothing written
    assert main(tiny_args(d, tasks, "task_iterations=3")) == 0  # resumes extended
    store = SystemStore(d)
    store.read()
    state = store.load_state()
    assert state.iterations_done == {"digits": 3, "glyph_digits": 3}
    assert check_locks(state) == []
    rows = list(csv.DictReader(open(d / "candidates.csv")))
    # the search did propose low-rank components and both optimizers
    assert any("lowrank added to block" in r["mutations"] for r in rows)
    assert {"opt_name=adamw", "opt_name=sgd"} <= {
        w for r in rows for w in r["hparams"].split() if w.startswith("opt_name=")
    }
    system = munet.load(d)
    data = load_tasks(tasks.split(","))
    for task, (path,) in state.population.items():
        x = data[task].test_x[:8]
        torch.testing.assert_close(
            system.logits(task, x), logits(state.arch, path, x), rtol=0, atol=1e-5
        )
    assert main(["check", "--system", str(d)]) == 0
