"""Training and evaluating candidates (spec §5): the hot loop.

The candidates of one generation batch train in lock-step on the same stream of batches: each
batch is augmented once and fed to every candidate, as the paper's 8 TPU cores did.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from munet.data.pipeline import TrainStream, prepare_eval, val_split, val_subset
from munet.data.task import TaskData
from munet.model.vit import PathModel, build_model, stage_keys
from munet.system.arch import HEAD, RootArch, timm_prefix
from munet.system.evolve import CandidateResult
from munet.system.hparams import peak_lr
from munet.system.noise import pack
from munet.system.path import Path
from munet.system.schedule import learning_rate

logger = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Training-length knobs of spec §5 (defaults sized for a 2-core CPU)."""

    batch_size: int = 64
    validations: int = 4  # V
    interval_cap: int = 40  # cap on I, in batches
    validation_batches: int = 10  # validation subset = batch_size × this
    eval_batch_size: int = 256
    device: str = "cpu"
    fuse: bool = True  # compute a frozen prefix once for the candidates that share it
    head_init: str = "zeros"  # zeros (spec) | probe: a new head starts as a ridge probe
    #: subset (spec): a candidate's quality is its best validation on the fixed subset; full:
    #: that best snapshot is scored once more on the whole validation split
    score_split: str = "subset"
    #: 0 (spec): every candidate of a generation batch trains V validation intervals. R > 0: a
    #: race: every candidate trains R intervals, then only the best so far (on the subset)
    #: trains on, for the intervals the others left unused (n·V − (n−1)·R in all), its learning
    #: rate scheduled over that whole length from the start
    race_validations: int = 0
    #: ``accept_z``: ``score_split: full`` also reports which validation examples each best
    #: snapshot got right (``CandidateResult.hits``), for the paired acceptance test
    hits: bool = False

    def race_length(self, candidates: int) -> int:
        """Validation intervals the longest candidate of a generation batch of ``candidates``
        trains: V, or with a race the winner's n·V − (n−1)·R."""
        r, v = self.race_validations, self.validations
        if r <= 0 or candidates < 2 or r >= v:
            return v
        return candidates * v - (candidates - 1) * r

    def races(self, candidates: int) -> bool:
        """Whether a generation batch of ``candidates`` races (its winner trains longer)."""
        return self.race_length(candidates) > self.validations

    def interval(self, num_train: int) -> int:
        """I = min(ceil(train examples / batch size), cap)."""
        return max(1, min(math.ceil(num_train / self.batch_size), self.interval_cap))


def make_optimizer(
    params: list[torch.nn.Parameter], hp: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """The path's ``opt_name``: SGD (the paper's; a path without ``opt_name`` too) with its
    momentum (None means none), optional Nesterov and no weight decay; or AdamW (``search:
    extended``) with torch's default betas and ``opt_weight_decay``."""
    if hp.get("opt_name", "sgd") == "adamw":
        return torch.optim.AdamW(params, lr=peak_lr(hp), weight_decay=float(hp["opt_weight_decay"]))
    momentum = float(hp["opt_momentum"] or 0.0)
    nesterov = bool(hp["opt_nesterov"]) and momentum > 0
    return torch.optim.SGD(params, lr=float(hp["opt_lr"]), momentum=momentum, nesterov=nesterov)


@torch.no_grad()
def accuracy_on(model: PathModel, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Exact top-1 accuracy over all examples (test evaluation)."""
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum())
    return correct / max(1, len(x))


def autocast(device: torch.device) -> Any:
    """bfloat16 autocast on CUDA (the spec's TPUs ran bf16); plain float32 on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def optimizer_step(run: Any, h: torch.Tensor, y: torch.Tensor, lr: float, step: int) -> None:
    """One optimizer step at ``lr`` of ``run`` (``model``, ``opt``, ``params``, ``status``) from
    ``h``, the output of its frozen prefix: cross-entropy, gradients clipped to norm 1; a
    non-finite loss marks the run diverged instead."""
    for group in run.opt.param_groups:
        group["lr"] = lr
    with autocast(h.device):
        loss = F.cross_entropy(run.model.forward_from(h, run.model.grad_from).float(), y)
    if not torch.isfinite(loss):
        run.status = f"diverged: loss {loss.item()} at step {step}"
        return
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.params, 1.0)
    run.opt.step()


class _Run:
    """One candidate's training state within a generation batch."""

    def __init__(self, path: Path, model: PathModel, hp: Mapping[str, Any]) -> None:
        self.path = path
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = make_optimizer(self.params, hp)
        self.hp = hp
        self.best = -1.0
        self.snapshot: dict[int, dict[str, torch.Tensor]] = {}
        self.history: list[float] = []
        self.status = "ok"
        #: False once a race (``race_validations``) has stopped it: it keeps its best snapshot
        self.racing = True
        self.seconds = 0.0
        self.images = 0
        keys = stage_keys(model, path.components, int(hp["ds_image_size"]))
        #: what the frozen stages compute; runs with equal keys share that work (fusion)
        self.prefix_key = tuple(keys[: model.grad_from])
        flops = [model.arch_flops(name) for name, _ in model.stages()]
        #: FLOPs per training image (frozen prefix forward, forward + backward above it) and per
        #: validation image (forward)
        self.train_flops = sum(flops[: model.grad_from]) + 3 * sum(flops[model.grad_from :])
        self.eval_flops = sum(flops)
        self.flops = 0.0
        self.hits: str | None = None  # packed validation hits of the best snapshot (``hits``)

    @property
    def training(self) -> bool:
        """Still taking steps: neither diverged nor stopped by a race."""
        return self.status == "ok" and self.racing

    def take_snapshot(self) -> None:
        """Copy the trainable components' current tensors to host memory."""
        named = dict(self.model.named_parameters())
        self.snapshot = {
            c.id: {
                k: named[timm_prefix(c.name) + k].detach().to("cpu", copy=True) for k in c.params
            }
            for c in self.path.trainable_components()
        }

    @torch.no_grad()
    def restore_snapshot(self) -> None:
        """Load the snapshot back into the trainable components (the inverse of
        :meth:`take_snapshot`)."""
        named = dict(self.model.named_parameters())
        for c in self.path.trainable_components():
            for k, t in self.snapshot[c.id].items():
                named[timm_prefix(c.name) + k].copy_(t)


def _end_race(runs: Sequence[_Run]) -> None:
    """Stop every run but the one with the best validation so far (the first of equals); the
    stopped ones keep their best snapshot and are scored like any candidate."""
    live = [i for i, run in enumerate(runs) if run.status == "ok"]
    if not live:
        return
    winner = max(live, key=lambda i: (runs[i].best, -i))
    for i in live:
        runs[i].racing = i == winner


class Trainer:
    """Implements ``munet.system.evolve.Trainer`` over in-memory task data."""

    def __init__(
        self,
        arch: RootArch,
        tasks: Mapping[str, TaskData],
        settings: TrainSettings,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.arch = arch
        self.tasks = tasks
        self.settings = settings
        self.log = log or logger.debug
        self._val_cache: dict[tuple[str, int, bool], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    # ---- data ------------------------------------------------------------------------------
    def _val_batches(
        self, task: str, size: int, full: bool = False
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The validation subset (or with ``full`` the whole split, in equal batches) at
        image ``size``, prepared once."""
        key = (task, size, full)
        if key not in self._val_cache:
            data, bs = self.tasks[task], self.settings.batch_size
            x, y, bs = (
                val_split(data, bs)
                if full
                else val_subset(data, bs, self.settings.validation_batches)
            )
            xf = prepare_eval(x, size)
            self._val_cache[key] = [
                (xf[i : i + bs], y[i : i + bs]) for i in range(0, bs * (len(x) // bs), bs)
            ]
        return self._val_cache[key]

    # ---- training --------------------------------------------------------------------------
    def train_generation(
        self, task: str, children: Sequence[Path], ds: Mapping[str, Any], seed: int
    ) -> list[CandidateResult]:
        """Train every child on the same batches; return best-snapshot results in order."""
        data = self.tasks[task]
        s = self.settings
        interval = s.interval(len(data.train_y))
        total = interval * s.race_length(len(children))
        rung = interval * s.race_validations if s.races(len(children)) else None
        device = torch.device(s.device)
        if s.head_init == "probe":
            for child in children:
                if _has_new_head(child):
                    init_head_from_probe(self.arch, child, data, s.eval_batch_size, device)
        runs = [
            _Run(c, build_model(self.arch, c.hparams, c.components).to(device), c.hparams)
            for c in children
        ]
        val = [
            (x.to(device), y.to(device))
            for x, y in self._val_batches(task, int(ds["ds_image_size"]))
        ]
        stream = iter(TrainStream(data, dict(ds), s.batch_size, seed, device=device))
        for step in range(total):
            x, y = next(stream)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            live = [run for run in runs if run.training]
            prefixes = self._prefixes(live, x)
            for run in live:
                t0 = time.perf_counter()
                self._step(run, prefixes[id(run)], y, step, total, interval)
                run.seconds += time.perf_counter() - t0
                run.images += len(y)
                run.flops += run.train_flops * len(y)
            if (step + 1) % interval == 0:
                live = [run for run in runs if run.training]
                for run, acc in zip(live, self._validate(live, val), strict=True):
                    run.history.append(acc)
                    if acc > run.best:
                        run.best = acc
                        run.take_snapshot()
            if step + 1 == rung:
                _end_race(runs)
        if s.score_split == "full":
            self._rescore(task, [run for run in runs if run.status == "ok"], ds, device)
        results = []
        for run in runs:
            if run.status != "ok":
                self.log(f"candidate {run.path.id} rejected: {run.status}")
                results.append(
                    CandidateResult(
                        None, {}, run.history, run.seconds, run.images, run.status, run.flops
                    )
                )
            else:
                results.append(
                    CandidateResult(
                        run.best,
                        run.snapshot,
                        run.history,
                        run.seconds,
                        run.images,
                        "ok",
                        run.flops,
                        run.hits,
                    )
                )
        return results

    def _rescore(
        self, task: str, runs: Sequence[_Run], ds: Mapping[str, Any], device: torch.device
    ) -> None:
        """``score_split: full``: each run's best snapshot, scored on the whole validation
        split, becomes its quality (the subset's max over V picked the snapshot; scoring it
        on more, partly fresh, examples takes most of that pick's luck out of selection)."""
        runs = [run for run in runs if run.snapshot]
        if not runs:
            return
        for run in runs:
            run.restore_snapshot()
        full = [
            (x.to(device), y.to(device))
            for x, y in self._val_batches(task, int(ds["ds_image_size"]), full=True)
        ]
        hits: dict[int, list[torch.Tensor]] | None = {} if self.settings.hits else None
        for run, acc in zip(runs, self._validate(runs, full, hits), strict=True):
            run.best = acc
            if hits is not None:
                run.hits = pack(torch.cat(hits[id(run)]).numpy())

    def _prefixes(self, runs: Sequence[_Run], x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Each run's input to its first trainable stage: the frozen prefix, computed once per
        distinct prefix (bit-identical to each run computing it: the same ops on the same
        tensors); its time is shared equally by the runs that use it."""
        out: dict[int, torch.Tensor] = {}
        groups: dict[Any, list[_Run]] = {}
        for run in runs:
            key = run.prefix_key if self.settings.fuse else id(run)
            groups.setdefault(key, []).append(run)
        for group in groups.values():
            t0 = time.perf_counter()
            with autocast(x.device):
                h = group[0].model.frozen_prefix(x)
            share = (time.perf_counter() - t0) / len(group)
            for run in group:
                out[id(run)] = h
                run.seconds += share
        return out

    def _validate(
        self,
        runs: Sequence[_Run],
        val: Sequence[tuple[torch.Tensor, torch.Tensor]],
        hits: dict[int, list[torch.Tensor]] | None = None,
    ) -> list[float]:
        """Validation quality of every run (the mean of per-batch accuracies, spec §5), with
        shared frozen prefixes computed once per batch. ``hits``, when given, collects each
        run's per-example correctness, one tensor per batch under ``id(run)``."""
        accs: dict[int, list[float]] = {id(run): [] for run in runs}
        with torch.no_grad():
            for x, y in val:
                prefixes = self._prefixes(runs, x)
                for run in runs:
                    t0 = time.perf_counter()
                    with autocast(x.device):
                        out = run.model.forward_from(prefixes[id(run)], run.model.grad_from)
                    right = out.argmax(-1) == y
                    accs[id(run)].append(float(right.float().mean()))
                    if hits is not None:
                        hits.setdefault(id(run), []).append(right.cpu())
                    run.seconds += time.perf_counter() - t0
                    run.flops += run.eval_flops * len(y)
        return [sum(accs[id(run)]) / len(accs[id(run)]) for run in runs]

    def _step(
        self, run: _Run, h: torch.Tensor, y: torch.Tensor, step: int, total: int, interval: int
    ) -> None:
        """One optimizer step of ``run`` from ``h``, the output of its frozen prefix."""
        optimizer_step(run, h, y, learning_rate(step, run.hp, total, interval), step)

    # ---- seed screening --------------------------------------------------------------------
    def screen(self, task: str, paths: Sequence[Path]) -> list[float]:
        """Linear-probe validation accuracy of each path's frozen features on ``task``."""
        return screen_paths(
            self.arch, paths, self.tasks[task], self.settings, torch.device(self.settings.device)
        )

    # ---- evaluation ------------------------------------------------------------------------
    def test(self, path: Path) -> dict[str, Any]:
        """Exact accuracy on the task's full test split, and a hash of the logits on a fixed
        batch (the first test images) that ``munet check`` compares bit for bit."""
        return evaluate_path(self.arch, path, self.tasks[path.task], self.settings.eval_batch_size)


FIXED_BATCH = 32

#: Training examples a seed path's linear probe is fit on (evenly spaced over the split).
SCREEN_EXAMPLES = 2048


def probe_features(
    arch: RootArch, path: Path, x_uint8: torch.Tensor, device: torch.device, batch: int = 256
) -> torch.Tensor:
    """The normalised class token of ``path`` (its head left out) on uint8 images, float64."""
    model = build_model(arch, path.hparams, path.components, trainable=False, head=False)
    size = int(path.hparams["ds_image_size"])
    out = []
    with torch.no_grad(), autocast(device):
        for i in range(0, len(x_uint8), batch):
            x = prepare_eval(x_uint8[i : i + batch], size).to(device)
            out.append(model.to(device)(x).float().cpu())
    return torch.cat(out).double()


def ridge_fit(
    train: torch.Tensor, train_y: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge regression of float64 features onto one-hot labels.

    Features are standardised on the training set; the penalty is 0.1 per unit of feature
    variance times the example count, a fixed rule so that no path is tuned more than another.
    Returns ``(weight, bias)`` acting on the *raw* features: ``scores = x @ weight.T + bias``.
    """
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    a = (train - mean) / std
    a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], 1)
    target = torch.nn.functional.one_hot(train_y, k).double()
    gram = a.T @ a + float(len(a)) * 1e-1 * torch.eye(a.shape[1], dtype=a.dtype)
    w = torch.linalg.solve(gram, a.T @ target)  # (d + 1, k) on standardised features
    weight = (w[:-1] / std[:, None]).T
    bias = w[-1] - (mean / std) @ w[:-1]
    return weight, bias


def ridge_probe_accuracy(
    train: torch.Tensor, train_y: torch.Tensor, val: torch.Tensor, val_y: torch.Tensor, k: int
) -> float:
    """Validation accuracy of :func:`ridge_fit` on ``train``."""
    weight, bias = ridge_fit(train, train_y, k)
    return float(((val @ weight.T + bias).argmax(1) == val_y).double().mean())


#: Temperatures tried when a ridge probe becomes a softmax head (logits = t × ridge scores).
HEAD_TEMPERATURES = tuple(2.0**i for i in range(8))


def _has_new_head(path: Path) -> bool:
    """Whether ``path`` ends in a head made for it (not yet trained): only those get a probe."""
    head = path.components[-1] if path.components else None
    return head is not None and head.name == HEAD and head.trainable and head.origin == "new"


def probe_head(
    train: torch.Tensor, train_y: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head weights from a ridge probe on float64 features (linear probing before fine-tuning,
    Kumar et al. 2022): the ridge scores scaled by the temperature in
    :data:`HEAD_TEMPERATURES` with the least training cross-entropy."""
    weight, bias = ridge_fit(train, train_y, k)
    scores = train @ weight.T + bias
    losses = [float(F.cross_entropy(t * scores, train_y)) for t in HEAD_TEMPERATURES]
    t = HEAD_TEMPERATURES[min(range(len(losses)), key=lambda i: (losses[i], i))]
    return t * weight, t * bias


def init_head_from_probe(
    arch: RootArch, path: Path, data: TaskData, batch: int, device: torch.device
) -> None:
    """Set the new head of ``path`` to a probe on its frozen features (in place): up to
    :data:`SCREEN_EXAMPLES` training examples, evenly spaced, without augmentation."""
    head = path.components[-1]
    n = len(data.train_y)
    idx = torch.linspace(0, n - 1, min(n, SCREEN_EXAMPLES)).round().long().unique()
    feats = probe_features(arch, path, data.train_x[idx], device, batch)
    weight, bias = probe_head(feats, data.train_y[idx], data.num_classes)
    dtype = head.params["weight"].dtype
    head.params = {"weight": weight.to(dtype).contiguous(), "bias": bias.to(dtype).contiguous()}


def screen_paths(
    arch: RootArch,
    paths: Sequence[Path],
    data: TaskData,
    settings: TrainSettings,
    device: torch.device,
) -> list[float]:
    """How well each path's frozen features serve ``data``: a linear probe's accuracy on the
    fixed validation subset, fit on up to :data:`SCREEN_EXAMPLES` training examples."""
    n = len(data.train_y)
    idx = torch.linspace(0, n - 1, min(n, SCREEN_EXAMPLES)).round().long().unique()
    vx, vy, _ = val_subset(data, settings.batch_size, settings.validation_batches)
    out = []
    for path in paths:
        tr = probe_features(arch, path, data.train_x[idx], device, settings.eval_batch_size)
        va = probe_features(arch, path, vx, device, settings.eval_batch_size)
        out.append(ridge_probe_accuracy(tr, data.train_y[idx], va, vy, data.num_classes))
    return out


def exact_test_accuracy(
    model: PathModel,
    data: TaskData,
    size: int,
    batch: int = 256,
    device: torch.device | None = None,
) -> float:
    """Accuracy of ``model`` on the task's whole test split at image ``size``, summed exactly
    (images prepared 4,096 at a time; on ``device`` when given)."""
    correct = 0
    for i in range(0, len(data.test_y), 4096):
        x = prepare_eval(data.test_x[i : i + 4096], size)
        y = data.test_y[i : i + 4096]
        if device is not None:
            x, y = x.to(device), y.to(device)
        correct += round(accuracy_on(model, x, y, batch) * len(x))
    return correct / max(1, len(data.test_y))


def evaluate_path(arch: RootArch, path: Path, data: TaskData, batch: int = 256) -> dict[str, Any]:
    """Test accuracy (summed exactly over the split) and the fixed-batch logits hash."""
    model = build_model(arch, path.hparams, path.components, trainable=False)
    size = int(path.hparams["ds_image_size"])
    with torch.no_grad():
        fixed = model(prepare_eval(data.test_x[:FIXED_BATCH], size))
    return {
        "test_quality": exact_test_accuracy(model, data, size, batch),
        "test_logits_sha256": tensor_sha256(fixed),
    }


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def logits(arch: RootArch, path: Path, images: torch.Tensor) -> torch.Tensor:
    """A path's logits on uint8 images (for checks and prediction)."""
    model = build_model(arch, path.hparams, path.components, trainable=False)
    with torch.no_grad():
        return model(prepare_eval(images, int(path.hparams["ds_image_size"])))
