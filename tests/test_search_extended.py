"""The ``search`` switch: paper (the value of systems stored before the key) keeps the spec's
search space; extended (the default) adds low-rank components and AdamW. A tiny extended evolve
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

#: the head start (as the paper starts), so mutations add the low-rank components
EXTENDED = (
    "search=extended",
    "extended_start=head",
    "mutation_prob=0.5",
    "hparams.opt_name=adamw",
)


def test_extended_is_the_default_paper_the_legacy_value_and_both_are_frozen():
    assert Config().search == "extended" and with_legacy({})["search"] == "paper"
    assert "search" in FROZEN_KEYS
    paper, extended = Config(search="paper").default_hparams(), Config().default_hparams()
    assert "opt_name" not in paper and "lowrank_layers" not in paper
    assert extended["opt_name"] == "adamw" and extended["lowrank_layers"] == []  # no depth yet
    assert Config(search="extended").default_hparams(3)["lowrank_layers"] == [0, 1, 2]
    head = Config(search="extended", extended_start="head").default_hparams(3)
    assert head["opt_name"] == "sgd" and head["lowrank_layers"] == []
    for baseline in ("finetune-all", "freeze-bottom:2", "adapters:16"):  # their own recipe: SGD
        hp = Config(method=baseline).default_hparams(3)
        assert hp["opt_name"] == "sgd" and hp["lowrank_layers"] == []
    assert {k: v for k, v in extended.items() if k in paper} == paper
    # systems stored before the key started like the paper; a resume may not change it
    assert with_legacy({})["extended_start"] == "head" and "extended_start" in FROZEN_KEYS


def test_a_resume_may_not_change_search_and_a_legacy_system_is_paper():
    legacy = {k: v for k, v in Config().to_dict().items() if k != "search"}
    _check_resume(with_legacy(legacy), Config(search="paper"), {}, {})  # saved before the key
    with pytest.raises(StoreError, match="different values for: search;"):
        _check_resume(with_legacy(legacy), Config(), {}, {})


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["search=lora"], "search='lora' is unknown; use paper"),
        (["search=paper", "hparams.opt_name=adamw"], "hparams.opt_name belongs to the extended"),
        (["search=paper", "search_space.lowrank_rank=[4]"], "set search=extended or remove"),
        (["search=extended", "hparams.opt_name=adam"], "opt_name must be sgd or adamw"),
        (["search=extended", "hparams.opt_adamw_lr=0.7"], "hparams.opt_adamw_lr=0.7 is not in"),
        (["search=extended", "hparams.lowrank_layers=[1, 1]"], "lowrank_layers=[1, 1] is invalid"),
        (["search=extended", "force_finetune=[lowrank_x]"], "or lowrank_<i>"),
        (["search=extended", "extended_start=lora"], "use lowrank (low-rank deltas"),
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


def test_the_default_extended_start_trains_a_delta_on_every_block_with_adamw(tmp_path):
    d = tmp_path / "s"
    assert main(tiny_args(d, "builtin:digits", "search=extended", "task_iterations=1")) == 0
    rows = list(csv.DictReader(open(d / "candidates.csv")))
    from_root = [r for r in rows if r["parent_task"] == "NOT_TRAINABLE"]
    assert from_root and all(
        "lowrank_layers=[0, 1] " in r["hparams"] and "opt_name=adamw " in r["hparams"]
        for r in from_root
    )
