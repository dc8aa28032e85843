"""LoRA through PEFT as a baseline: zero-B start, what trains, accounting, FLOPs, resume."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("peft")

from munet.data.task import TaskData  # noqa: E402
from munet.model.ops import TorchOps  # noqa: E402
from munet.model.root import load_root  # noqa: E402
from munet.model.vit import build_model  # noqa: E402
from munet.runner import run_lora  # noqa: E402
from munet.system.arch import RootArch  # noqa: E402
from munet.system.baselines import (  # noqa: E402
    BaselineBudget,
    Method,
    assemble_baseline_child,
    image_flops,
)
from munet.system.hparams import BASE_DEFAULTS  # noqa: E402
from munet.system.state import Settings, make_root_state  # noqa: E402
from munet.train.peft_lora import (  # noqa: E402
    LoraRecipe,
    learning_rate,
    lora_image_flops,
    param_counts,
    parse_lora,
    train_lora_task,
    wrap_lora,
)

ROOT = "builtin:vit_micro"  # d=48, depth 2, mlp 96, patch 8


def task_data(n=96, k=3, seed=0):
    """Small separable images: class c is a bright band at rows 8c..8c+8."""
    g = torch.Generator().manual_seed(seed)

    def split(m):
        y = torch.arange(m) % k
        x = torch.randint(0, 60, (m, 1, 32, 32), generator=g, dtype=torch.uint8)
        for i, c in enumerate(y.tolist()):
            x[i, :, 8 * c : 8 * c + 8] += 150
        return x, y

    (a, b), (c, d), (e, f) = split(n), split(48), split(48)
    return TaskData("bands", "test:bands", [str(i) for i in range(k)], a, b, c, d, e, f)


@pytest.fixture(scope="module")
def root():
    return load_root(ROOT)


def hp():
    return {**BASE_DEFAULTS, "ds_image_size": 32}


def child_model(root, classes=3):
    state = make_root_state(root.arch, root.params, hp(), TorchOps())
    s = Settings(space={}, defaults=hp())
    method = Method("freeze-bottom", root.arch.depth)
    c, _ = assemble_baseline_child(
        state, "t", classes, {"ds_image_size": 32}, method, TorchOps(), s
    )
    torch.nn.init.normal_(c.components[-1].params["weight"], generator=torch.Generator())
    return state, build_model(root.arch, c.hparams, c.components)


def test_parse_lora():
    assert parse_lora("lora:8") == LoraRecipe(rank=8)
    assert parse_lora("lora:4").lora_alpha == 4.0
    for bad in ("lora", "lora:0", "lora:x", "lora:-2"):
        with pytest.raises(ValueError, match="lora:R"):
            parse_lora(bad)


def test_b_starts_at_zero_so_the_wrapped_model_computes_the_frozen_model_plus_head(root):
    _, model = child_model(root)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    peft_model = wrap_lora(model, LoraRecipe(rank=4), seed=1)
    lora_b = [p for n, p in model.named_parameters() if ".lora_B." in n]
    assert len(lora_b) == 2 * 4 and all(bool((p == 0).all()) for p in lora_b)
    with torch.no_grad():
        assert torch.equal(peft_model(x), before)
        assert torch.equal(model(x), before)


def test_lora_targets_the_four_block_linears_only_and_the_counts_are_exact(root):
    _, model = child_model(root, classes=3)
    wrap_lora(model, LoraRecipe(rank=4), seed=0)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    want = {f"blocks.{i}.{m}" for i in range(2) for m in ("attn.qkv", "attn.proj")}
    want |= {f"blocks.{i}.mlp.{m}" for i in range(2) for m in ("fc1", "fc2")}
    assert adapted == want  # not patch_embed.proj
    d, h, r = 48, 96, 4
    lora = 2 * r * ((d + 3 * d) + (d + d) + (d + h) + (h + d))
    norm_head = 2 * d + (d * 3 + 3)
    counts = param_counts(model)
    assert counts["lora"] == lora and counts["private"] == lora + norm_head
    root_size = sum(
        t.numel() for n, c in root.params.items() if n != "encoder_norm" for t in c.values()
    )
    assert counts["frozen"] == root_size  # the root at its own image size, less its norm


def test_lora_flops_add_the_low_rank_products_to_the_engines_count(root):
    arch: RootArch = root.arch
    h = {**hp(), "num_classes": 3, "num_layers": 2}
    base = image_flops(arch, h, ["encoderblock_0"])
    tokens = 1 + 16
    extra = 2 * tokens * 2 * 8 * (8 * 48 + 2 * 96)
    got = lora_image_flops(arch, h, 8)
    assert got.train == base.train + 3 * extra
    assert got.eval == base.eval + extra


def test_schedule_warms_up_then_decays_linearly_to_zero():
    r = LoraRecipe(lr=1.0, warmup_ratio=0.1)
    lrs = [learning_rate(s, 100, r) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[99] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))


def test_training_changes_only_lora_norm_and_head_and_keeps_the_best_replica(root):
    state, _ = child_model(root)
    frozen = {n: {k: t.clone() for k, t in c.items()} for n, c in root.params.items()}
    res = train_lora_task(
        root.arch,
        state,
        "bands",
        task_data(),
        LoraRecipe(rank=2, lr=5e-3),
        BaselineBudget(replicas=2, validations=3),
        seed=0,
        defaults=hp(),
        batch_size=16,
        interval_cap=2,
        validation_batches=2,
        tasks_in_system=4,
        head_init="zeros",
    )
    for n, c in root.params.items():  # the shared root is untouched
        for k, t in c.items():
            assert torch.equal(t, frozen[n][k]), (n, k)
    assert res.images == 2 * 3 * 2 * 16 and len(res.history) == 3
    assert res.val_accuracy == max(res.history) and 0.0 <= res.test_accuracy <= 1.0
    assert res.lora_params == 2 * 2 * (8 * 48 + 2 * 96)
    assert res.private_params == res.lora_params + 2 * 48 + 48 * 3 + 3
    assert res.accounted_params == res.private_params + res.frozen_params / 4
    f = lora_image_flops(root.arch, {**hp(), "num_layers": 2, "num_classes": 3}, 2)
    assert res.flops == res.images * f.train + 2 * 3 * 32 * f.eval  # 2 val batches of 16


def test_training_moves_lora_b_norm_and_head_but_not_base_weights(root):
    state, model = child_model(root)
    wrap_lora(model, LoraRecipe(rank=2), seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trainable if ".lora_" not in n} == {
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    }
    model.grad_from = 1
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 3
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable


def test_run_lora_writes_one_json_per_task_and_resumes(tmp_path, monkeypatch):
    import munet.runner
    import munet.train.peft_lora as mod

    calls = []
    monkeypatch.setattr(munet.runner, "load_tasks", lambda specs: {"bands": task_data()})
    real = mod.train_lora_task

    def counted(*a, **k):
        calls.append(a[2])
        return real(*a, **k)

    monkeypatch.setattr(mod, "train_lora_task", counted)
    over = {
        "root": ROOT,
        "tasks": ["builtin:digits"],
        "task_iterations": 1,
        "candidates_per_iteration": 2,
        "generation_batch_size": 2,
        "validations_per_candidate": 1,
        "validation_interval_cap": 2,
        "validation_batches": 2,
        "batch_size": 16,
        "threads": 1,
        "device": "cpu",
    }
    first = run_lora(tmp_path, LoraRecipe(rank=2), over)
    assert calls == ["bands"] and (tmp_path / "bands.json").exists()
    data = json.loads((tmp_path / "bands.json").read_text())
    assert data["replicas"] == 2 and data["validations"] == 1
    assert data["accounted_params"] == data["private_params"] + data["frozen_params"]
    again = run_lora(tmp_path, LoraRecipe(rank=2), over)
    assert calls == ["bands"] and again[0].test_accuracy == first[0].test_accuracy
    with pytest.raises(ValueError, match="another configuration"):
        run_lora(tmp_path, LoraRecipe(rank=4), over)
