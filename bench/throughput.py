"""Candidate-training throughput: munet's Trainer against a plain timm fine-tuning loop.

Both train the same root (one candidate, same batches, same SGD + momentum, global-norm
clipping, learning-rate schedule and validation batches) for three trainable sets:

* all trainable          munet: finetune-all child      timm: every parameter
* bottom half frozen     munet: freeze-bottom:L//2      timm: patch/pos/cls + blocks < L//2 frozen
* head only              munet: a seed-phase child      timm: only ``head``

Images/s counts the training steps and validations only (both sides get their batches from the
same pre-generated ``TrainStream``, whose augmentation cost is shown separately). Each
measurement is repeated; the median is reported and the two loops alternate so background load
hits both alike.

    .venv/bin/python bench/throughput.py [--root builtin:vit_ti3] [--task builtin:glyph_digits]
        [--batch 64] [--steps 80] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F


def munet_candidate(state: Any, kind: str, depth: int, num_classes: int, settings: Any) -> Any:
    import numpy as np

    from munet.model.ops import TorchOps
    from munet.system.assemble import assemble_child
    from munet.system.baselines import Method, assemble_baseline_child

    if kind == "head only":  # a seed-phase child: shares every root component, new head
        child, _ = assemble_child(
            state,
            state.root,
            "t",
            num_classes,
            {},
            False,
            np.random.default_rng(0),
            TorchOps(),
            settings,
        )
        return child
    method = (
        Method("finetune-all") if kind == "all trainable" else Method("freeze-bottom", depth // 2)
    )
    child, _ = assemble_baseline_child(state, "t", num_classes, {}, method, TorchOps(), settings)
    return child


def frozen_in_timm(kind: str, name: str, depth: int) -> bool:
    if kind == "all trainable":
        return False
    if kind == "head only":
        return not name.startswith("head.")
    if name.startswith("blocks."):
        return int(name.split(".")[1]) < depth // 2
    return name.startswith(("patch_embed.", "pos_embed", "cls_token"))


def timm_loop(
    root: Any,
    kind: str,
    num_classes: int,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    val: list[tuple[torch.Tensor, torch.Tensor]],
    interval: int,
    hp: dict[str, Any],
    device: torch.device,
) -> tuple[float, int]:
    """A plain fine-tuning loop on timm's VisionTransformer; returns (seconds, images)."""
    from munet.model.root import timm_model
    from munet.system.arch import timm_prefix
    from munet.system.schedule import learning_rate

    model = timm_model(root.arch, num_classes)
    state = {timm_prefix(n) + k: v for n, comp in root.params.items() for k, v in comp.items()}
    state["head.weight"] = torch.zeros(num_classes, root.arch.embed_dim)
    state["head.bias"] = torch.zeros(num_classes)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()  # dropout is 0; munet also runs in eval mode
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(not frozen_in_timm(kind, name, root.arch.depth))
        if p.requires_grad:
            params.append(p)
    opt = torch.optim.SGD(params, lr=hp["opt_lr"], momentum=hp["opt_momentum"])
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    total = len(batches)
    seconds, images = 0.0, 0
    for step, (x, y) in enumerate(batches):
        x, y = x.to(device), y.to(device)
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, hp, total, interval)
        with torch.autocast(**amp):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % interval == 0:
            with torch.no_grad(), torch.autocast(**amp):
                accs = [float((model(vx).argmax(-1) == vy).float().mean()) for vx, vy in val]
            assert accs
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        images += len(y)
    return seconds, images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="builtin:vit_ti3")
    p.add_argument("--task", default="builtin:glyph_digits")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=80, help="training steps per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = munet's auto)")
    p.add_argument(
        "--fusion", action="store_true", help="also time fused vs unfused generation batches"
    )
    args = p.parse_args(argv)

    from munet.data.load import load_task
    from munet.data.pipeline import TrainStream, prepare_eval, val_subset
    from munet.model.ops import TorchOps
    from munet.model.root import load_root
    from munet.system.hparams import BASE_DEFAULTS, search_space_for
    from munet.system.state import Settings, make_root_state
    from munet.train.device import configure_threads
    from munet.train.trainer import Trainer, TrainSettings

    threads = configure_threads(args.threads)
    device = torch.device(args.device)
    root = load_root(args.root, log=lambda _: None)
    data = load_task(args.task)
    hp = dict(BASE_DEFAULTS)
    interval = max(1, args.steps // 2)  # two validations, as a short candidate
    steps = 2 * interval
    ds = {k: v for k, v in hp.items() if k.startswith("ds_")}
    seed = 7
    t0 = time.perf_counter()
    stream = iter(TrainStream(data, ds, args.batch, seed))
    batches = [next(stream) for _ in range(steps)]
    aug_rate = steps * args.batch / (time.perf_counter() - t0)
    vx, vy, vbs = val_subset(data, args.batch, 1)
    val = [(prepare_eval(vx, hp["ds_image_size"])[:vbs].to(device), vy[:vbs].to(device))]
    settings = Settings(space=search_space_for(root.arch.depth, root.arch.patch_size), defaults=hp)
    trainer = Trainer(
        root.arch,
        {"t": data},
        TrainSettings(
            batch_size=args.batch,
            validations=2,
            interval_cap=interval,
            validation_batches=1,
            device=args.device,
        ),
    )
    assert trainer.settings.interval(len(data.train_y)) == interval, "--steps too large for task"

    kinds = ["all trainable", "bottom half frozen", "head only"]
    rows = []
    for kind in kinds:
        m_rates, t_rates = [], []
        trainable = 0
        for rep in range(args.repeats + 1):  # the first round warms up and is dropped
            state = make_root_state(root.arch, root.params, hp, TorchOps())
            child = munet_candidate(state, kind, root.arch.depth, data.num_classes, settings)
            trainable = sum(c.size for c in child.trainable_components())
            order = ("munet", "timm") if rep % 2 == 0 else ("timm", "munet")
            for side in order:
                if side == "munet":
                    (res,) = trainer.train_generation("t", [child], ds, seed)
                    if rep:
                        m_rates.append(res.images / res.seconds)
                else:
                    sec, imgs = timm_loop(
                        root, kind, data.num_classes, batches, val, interval, hp, device
                    )
                    if rep:
                        t_rates.append(imgs / sec)
        m, t = statistics.median(m_rates), statistics.median(t_rates)
        rows.append((kind, trainable, m, t, m / t))
        print(f"{kind}: munet {m:.0f} img/s, timm {t:.0f} img/s", flush=True)

    print()
    print(
        f"root {args.root}, task {args.task}, batch {args.batch}, {steps} steps + 2 "
        f"validations per measurement, median of {args.repeats}, device {args.device}, "
        f"{threads} torch thread(s); augmentation alone: {aug_rate:.0f} img/s"
    )
    print()
    print(
        "| trainable set | trainable params | munet Trainer img/s | plain timm loop img/s | "
        "munet / timm |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, n, m, t, r in rows:
        print(f"| {kind} | {n:,} | {m:.0f} | {t:.0f} | {r:.2f} |")
    if args.fusion:
        fusion_table(root, data, hp, ds, settings, trainer, seed, args.repeats)
    return 0


def fusion_table(root, data, hp, ds, settings, trainer, seed, repeats) -> None:
    """Fused vs unfused generation batches of 4: seed-phase (head-only children of the root)
    and mutated (children with cloned components / adapters, mutation_prob 0.3)."""
    import numpy as np

    from munet.model.ops import TorchOps
    from munet.system.assemble import assemble_child
    from munet.system.state import make_root_state

    def batch(mutate: bool):
        state = make_root_state(root.arch, root.params, hp, TorchOps())
        s = replace(settings, mutation_prob=0.3)
        return [
            assemble_child(
                state,
                state.root,
                "t",
                data.num_classes,
                ds,
                mutate,
                np.random.default_rng(i),
                TorchOps(),
                s,
            )[0]
            for i in range(4)
        ]

    print()
    print("| generation batch (4 candidates) | unfused s | fused s | fused speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for label, mutate in (("seed phase (head-only)", False), ("mutated", True)):
        times = {True: [], False: []}
        for rep in range(repeats + 1):
            for fuse in (True, False) if rep % 2 else (False, True):
                trainer.settings.fuse = fuse
                kids = batch(mutate)
                t0 = time.perf_counter()
                trainer.train_generation("t", kids, ds, seed)
                if rep:
                    times[fuse].append(time.perf_counter() - t0)
        u, f = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {label} | {u:.2f} | {f:.2f} | {u / f:.2f}x |", flush=True)
    trainer.settings.fuse = True


if __name__ == "__main__":
    sys.exit(main())
