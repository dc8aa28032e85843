"""LoRA through Hugging Face PEFT: a peer library's method as a baseline on muNet's terms.

Each task gets the root, frozen, with LoRA of rank R on the four linear layers of every block
(``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``), plus its own encoder norm and head. The
recipe is the one PEFT users run: AdamW (lr 2e-3, weight decay 0.01 on matrices, none on
biases and norms, as Hugging Face's Trainer does), linear warm-up over 10 % of the steps then
linear decay to 0, gradients clipped to norm 1, ``lora_alpha = R`` (scaling 1), no LoRA dropout
(the engine's models have none either).

Everything else is the engine's baseline (spec §7.4, :mod:`munet.system.baselines`): the same
R replicas × intervals per task, matched to muNet's images (times ``baseline_budget``), the same
stream of augmented batches (same seed and data hyperparameters), the same head initialisation
(``head_init``), validation on the same subset, the best replica at its best validation kept.
Parameters are counted as :mod:`munet.system.score` does: private = LoRA A/B + norm + head, and
the frozen root is shared by the tasks of the run (each counts ``root / T``).

``peft`` is an optional dependency (``pip install munet[bench]``); it is imported lazily.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from munet.data.pipeline import TrainStream, prepare_eval, val_subset
from munet.data.task import TaskData
from munet.model.vit import PathModel, build_model
from munet.system.arch import BLOCK_PREFIX, RootArch
from munet.system.baselines import (
    FREEZE_BOTTOM,
    BaselineBudget,
    Flops,
    Method,
    assemble_baseline_child,
    image_flops,
)
from munet.system.hparams import data_hparams
from munet.system.rng import derive_seed
from munet.system.state import ParamOps, Settings, SystemState
from munet.train.trainer import (
    autocast,
    exact_test_accuracy,
    init_head_from_probe,
    optimizer_step,
)

LORA = "lora"

#: The linear layers of every timm block that get LoRA (the patch embedding's ``proj`` is a
#: convolution outside the blocks: a regex, not PEFT's suffix list, keeps it out).
TARGET_MODULES = r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"


@dataclass(frozen=True)
class LoraRecipe:
    """The PEFT recipe's knobs; ``alpha`` None means ``alpha = rank``."""

    rank: int = 8
    alpha: float | None = None
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    dropout: float = 0.0

    @property
    def lora_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)


def parse_lora(text: str) -> LoraRecipe:
    """``lora:R`` → the recipe of rank R; ValueError names the bad value."""
    kind, sep, raw = str(text).partition(":")
    if kind == LORA and sep and raw.strip().isdigit() and int(raw) >= 1:
        return LoraRecipe(rank=int(raw))
    raise ValueError(f"method={text!r}: use lora:R with a rank R >= 1, e.g. lora:8")


def is_lora(text: str) -> bool:
    return str(text).partition(":")[0] == LORA


def learning_rate(step: int, total: int, recipe: LoraRecipe) -> float:
    """Linear warm-up from 0 over ``warmup_ratio × total`` steps, then linear decay to 0
    (``transformers.get_linear_schedule_with_warmup``)."""
    warm = int(recipe.warmup_ratio * total)
    if step < warm:
        return recipe.lr * (step + 1) / warm
    return recipe.lr * max(0.0, (total - step) / max(1, total - warm))


def lora_image_flops(arch: RootArch, hparams: Mapping[str, Any], rank: int) -> Flops:
    """FLOPs per training and per evaluated image: the engine's count for a model trained from
    the first block up (:func:`munet.system.baselines.image_flops`) plus the LoRA products,
    2·R·(in + out) per token and adapted layer (qkv, proj, fc1, fc2)."""
    blocks = [f"{BLOCK_PREFIX}{i}" for i in range(int(hparams["num_layers"]))]
    base = image_flops(arch, hparams, blocks[:1])
    d, h = arch.embed_dim, arch.mlp_hidden_dim
    tokens = 1 + arch.num_patches(int(hparams["ds_image_size"]))
    extra = len(blocks) * tokens * 2 * rank * ((d + 3 * d) + (d + d) + (d + h) + (h + d))
    return Flops(base.train + 3 * extra, base.eval + extra)


def wrap_lora(model: PathModel, recipe: LoraRecipe, seed: int) -> torch.nn.Module:
    """``peft.get_peft_model`` on ``model`` (changed in place: LoRA layers replace the targeted
    linears), then the encoder norm and head made trainable again; returns the PeftModel.

    PEFT draws LoRA A from torch's global generator: it runs under a forked RNG seeded with
    ``seed``, so the result depends on ``seed`` only. B starts at zero (PEFT's default), so the
    wrapped model computes exactly what ``model`` did."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.lora_alpha,
        target_modules=TARGET_MODULES,
        lora_dropout=recipe.dropout,
        bias="none",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    for module in (model.norm, model.head):
        module.requires_grad_(True)
    # LoRA reaches into every block: autograd from the first block on (the embedding is frozen)
    names = [n for n, _ in model.stages()]
    model.grad_from = next(i for i, n in enumerate(names) if n.startswith(BLOCK_PREFIX))
    return peft_model


def param_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable (private: LoRA A/B, norm, head), of which LoRA, and frozen (the root's)."""
    out = {"private": 0, "lora": 0, "frozen": 0}
    for name, p in model.named_parameters():
        if p.requires_grad:
            out["private"] += p.numel()
            out["lora"] += p.numel() if ".lora_" in name else 0
        else:
            out["frozen"] += p.numel()
    return out


@dataclass
class LoraTaskResult:
    """One task's LoRA baseline: the retained replica and what the task's training cost."""

    task: str
    seed: int
    rank: int
    alpha: float
    test_accuracy: float
    val_accuracy: float
    history: list[float]  # the retained replica's validation accuracies
    replica: int
    replicas: int
    validations: int
    interval: int
    images: int
    seconds: float
    flops: float
    private_params: int
    lora_params: int
    frozen_params: int
    tasks_in_system: int
    key: dict[str, Any] = field(default_factory=dict)  # what the result depends on (resume)

    @property
    def accounted_params(self) -> float:
        """Spec §6 accounting: private in full, the frozen root shared by the run's tasks."""
        return self.private_params + self.frozen_params / max(1, self.tasks_in_system)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "accounted_params": self.accounted_params}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoraTaskResult:
        return cls(**{k: v for k, v in data.items() if k != "accounted_params"})


class _Replica:
    def __init__(self, model: PathModel, peft_model: torch.nn.Module, recipe: LoraRecipe):
        self.model = model
        self.peft_model = peft_model
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        self.params = params
        self.opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": recipe.weight_decay},
                {"params": rest, "weight_decay": 0.0},
            ],
            lr=recipe.lr,
        )
        self.best = -1.0
        self.history: list[float] = []
        self.snapshot: dict[str, torch.Tensor] = {}
        self.status = "ok"

    def take_snapshot(self) -> None:
        self.snapshot = {
            n: p.detach().to("cpu", copy=True)
            for n, p in self.model.named_parameters()
            if p.requires_grad
        }

    def restore(self) -> None:
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for n, t in self.snapshot.items():
                named[n].copy_(t)


def build_lora_replica(
    arch: RootArch,
    state: SystemState,
    task: str,
    data: TaskData,
    ds: Mapping[str, Any],
    recipe: LoraRecipe,
    seed: int,
    settings: Settings,
    ops: ParamOps,
    head_init: str = "probe",
    device: torch.device | None = None,
) -> tuple[PathModel, torch.nn.Module]:
    """A root child with its own norm and head (``freeze-bottom:L``'s), head initialised as
    the engine's baselines are, wrapped in LoRA: (the PathModel, its PeftModel)."""
    device = device or torch.device("cpu")
    child, _ = assemble_baseline_child(
        state, task, data.num_classes, ds, Method(FREEZE_BOTTOM, arch.depth), ops, settings
    )
    if head_init == "probe":  # the child's head is new, as a baseline replica's is
        init_head_from_probe(arch, child, data, 256, device)
    model = build_model(arch, child.hparams, child.components).to(device)
    return model, wrap_lora(model, recipe, seed)


def train_lora_task(
    arch: RootArch,
    state: SystemState,
    task: str,
    data: TaskData,
    recipe: LoraRecipe,
    budget: BaselineBudget,
    *,
    seed: int,
    defaults: Mapping[str, Any],
    batch_size: int,
    interval_cap: int,
    validation_batches: int,
    tasks_in_system: int,
    head_init: str = "probe",
    device: str = "cpu",
    ops: ParamOps | None = None,
) -> LoraTaskResult:
    """Train ``budget.replicas`` LoRA replicas of one task in lock-step on the stream the
    engine's baselines see; keep the best at its best validation; test it."""
    from munet.model.ops import TorchOps

    dev = torch.device(device)
    ops = ops or TorchOps()
    ds = data_hparams(defaults)
    size = int(ds["ds_image_size"])
    settings = Settings(space={}, seed=seed, defaults=dict(defaults))
    replicas = []
    for r in range(budget.replicas):
        model, peft_model = build_lora_replica(
            arch,
            state,
            task,
            data,
            ds,
            recipe,
            derive_seed(seed, "lora", task, r),
            settings,
            ops,
            head_init,
            dev,
        )
        replicas.append(_Replica(model, peft_model, recipe))
    counts = param_counts(replicas[0].model)
    interval = max(1, min(-(-len(data.train_y) // batch_size), interval_cap))
    total = interval * budget.validations
    vx, vy, vbs = val_subset(data, batch_size, validation_batches)
    vxf = prepare_eval(vx, size)
    val = [(vxf[i : i + vbs].to(dev), vy[i : i + vbs].to(dev)) for i in range(0, len(vy), vbs)]
    # the engine's baselines train on derive_seed(seed, task, iteration 0, batch 0, "train")
    stream = iter(TrainStream(data, ds, batch_size, derive_seed(seed, task, 0, 0, "train"), dev))
    t0 = time.perf_counter()
    for step in range(total):
        x, y = next(stream)
        x, y = x.to(dev), y.to(dev)
        lr = learning_rate(step, total, recipe)
        live = [r for r in replicas if r.status == "ok"]
        with autocast(dev):
            h = replicas[0].model.frozen_prefix(x)  # the embedding: every replica shares it
        for rep in live:
            optimizer_step(rep, h, y, lr, step)
        if (step + 1) % interval == 0:
            for rep in (r for r in replicas if r.status == "ok"):
                acc = _validate(rep.model, val, dev)
                rep.history.append(acc)
                if acc > rep.best:
                    rep.best = acc
                    rep.take_snapshot()
    seconds = time.perf_counter() - t0
    best = max(range(len(replicas)), key=lambda i: (replicas[i].best, -i))
    winner = replicas[best]
    winner.restore()
    flops = lora_image_flops(arch, replicas[0].model.hparams, recipe.rank)
    val_images = sum(len(yb) for _, yb in val)
    images = budget.replicas * total * batch_size
    return LoraTaskResult(
        task=task,
        seed=seed,
        rank=recipe.rank,
        alpha=recipe.lora_alpha,
        test_accuracy=exact_test_accuracy(winner.model, data, size, 256, dev),
        val_accuracy=winner.best,
        history=winner.history,
        replica=best,
        replicas=budget.replicas,
        validations=budget.validations,
        interval=interval,
        images=images,
        seconds=seconds,
        flops=images * flops.train + budget.replicas * budget.validations * val_images * flops.eval,
        private_params=counts["private"],
        lora_params=counts["lora"],
        frozen_params=counts["frozen"],
        tasks_in_system=tasks_in_system,
    )


@torch.no_grad()
def _validate(
    model: PathModel, val: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> float:
    """The engine's validation quality: the mean of per-batch accuracies (spec §5)."""
    accs = []
    for x, y in val:
        with autocast(device):
            out = model(x)
        accs.append(float((out.argmax(-1) == y).float().mean()))
    return sum(accs) / len(accs)
