"""Input pipeline throughput vs the trainer's consumption: is training input-bound?

Two tables:

1. **pipeline**: images/s of ``TrainStream`` (the augmented training batches every candidate of
   a generation batch shares) for the default data hyperparameters and for heavier ones
   (colour jitter, 64 px RGB storage as ``imagefolder:`` produces, 224 px for timm roots);
2. **trainer**: one generation batch of ``Trainer.train_generation`` on the default config
   (root builtin:vit_ti3, task glyph_digits, and ``munet.config.Config``'s batch size,
   generation batch size, V and interval cap), with the time spent inside ``next(stream)``
   measured; "pipeline share" is that time over the generation's wall time (target < 5%).
   Three children bracket the compute: head + encoder norm only (cheapest: the pipeline's share
   is largest), a typical first-generation child (mutation probability 0.1), and every block
   fine-tuned.

    .venv/bin/python bench/pipeline.py                  # CPU (torch threads as munet sets them)
    .venv/bin/python bench/pipeline.py --device cuda    # trainer on the GPU, augmentation on CPU
    .venv/bin/python bench/pipeline.py --device cuda --augment-on device   # both on the GPU

The root's weights do not change timings: the cached ``builtin:vit_ti3`` is used when present
(``munet pretrain-root``), else random weights of the same architecture.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from munet.data.pipeline import DS_DEFAULTS, TrainStream
from munet.data.task import TaskData

BATCH = 64
JITTER = {f"ds_{k}_delta": 0.2 for k in ("brightness", "contrast", "saturation", "hue")}


def synthetic_task(n: int, channels: int, size: int, classes: int = 10) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % classes
    cut = n // 10
    return TaskData(
        name=f"synthetic_{channels}x{size}",
        spec="bench",
        class_names=[str(i) for i in range(classes)],
        train_x=x[2 * cut :],
        train_y=y[2 * cut :],
        val_x=x[:cut],
        val_y=y[:cut],
        test_x=x[cut : 2 * cut],
        test_y=y[cut : 2 * cut],
    )


def glyph_task() -> TaskData:
    from munet.data.load import load_task

    return load_task("builtin:glyph_digits")


def sync(device: str | None) -> None:
    if device is not None and device.startswith("cuda"):
        torch.cuda.synchronize()


def time_stream(task: TaskData, ds: dict[str, Any], batches: int, device: str | None) -> float:
    """Seconds per batch of ``TrainStream`` (after one warm-up batch)."""
    it = iter(TrainStream(task, ds, BATCH, seed=0, device=device))
    next(it)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    sync(device)
    return (time.perf_counter() - t0) / batches


def pipeline_table(batches: int, device: str | None) -> list[list[str]]:
    glyphs = glyph_task()
    rgb64 = synthetic_task(2000, 3, 64)
    cases = [
        ("glyph_digits 1x32x32", glyphs, {}),
        ("glyph_digits 1x32x32", glyphs, JITTER),
        ("imagefolder-like 3x64x64", rgb64, {}),
        ("imagefolder-like 3x64x64", rgb64, JITTER),
        ("imagefolder-like 3x64x64", rgb64, {"ds_image_size": 224}),
        ("imagefolder-like 3x64x64", rgb64, {"ds_image_size": 224, **JITTER}),
    ]
    rows = []
    for label, task, extra in cases:
        ds = {**DS_DEFAULTS, **extra}
        sec = time_stream(task, ds, batches, device)
        what = f"{ds['ds_image_size']} px" + (", jitter 0.2" if extra.get("ds_hue_delta") else "")
        rows.append([label, what, f"{sec * 1e3:.1f}", f"{BATCH / sec:,.0f}"])
    return rows


class TimedStream(TrainStream):
    """A TrainStream that adds the seconds spent producing each batch to ``TimedStream.spent``
    (augmenting on ``TimedStream.augment_on`` when set; synchronised so GPU work is counted)."""

    spent = 0.0
    batches = 0
    augment_on: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if TimedStream.augment_on is not None:
            kwargs["device"] = TimedStream.augment_on
        super().__init__(*args, **kwargs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        inner = super().__iter__()
        while True:
            t0 = time.perf_counter()
            batch = next(inner)
            sync(None if self.device is None else str(self.device))
            TimedStream.spent += time.perf_counter() - t0
            TimedStream.batches += 1
            yield batch


def root_for_bench() -> tuple[Any, dict, str]:
    from munet.model.root import (
        BUILTIN_ROOTS,
        builtin_paths,
        load_builtin,
        split_timm_state,
        timm_model,
    )

    weights, meta = builtin_paths("vit_ti3")
    if weights.is_file() and meta.is_file():
        root = load_builtin("vit_ti3")
        return root.arch, root.params, "builtin:vit_ti3 (cached)"
    arch = BUILTIN_ROOTS["vit_ti3"].arch
    torch.manual_seed(0)
    params = split_timm_state(timm_model(arch, 0).state_dict(), arch)
    return arch, params, "vit_ti3 architecture, random weights (not pretrained here)"


def trainer_table(device: str) -> tuple[list[list[str]], str]:
    import munet.train.trainer as trainer_mod
    from munet.config import Config
    from munet.model.ops import TorchOps
    from munet.system.assemble import assemble_child
    from munet.system.hparams import data_hparams, search_space_for
    from munet.system.state import Settings, make_root_state
    from munet.train.trainer import Trainer, TrainSettings

    cfg = Config()
    arch, params, root_note = root_for_bench()
    task = glyph_task()
    ops = TorchOps()
    variants = [
        ("head + encoder norm", dict(mutation_prob=0.0)),
        ("typical child (p=0.1)", dict(mutation_prob=cfg.mutation_prob)),
        ("all blocks fine-tuned", dict(mutation_prob=1.0, space={}, mutate_adapters=False)),
    ]
    trainer_mod.TrainStream = TimedStream  # type: ignore[misc]
    rows = []
    for label, kw in variants:
        state = make_root_state(arch, params, cfg.default_hparams(), ops)
        space = search_space_for(arch.depth, arch.patch_size)
        settings = Settings(**{"space": space, "defaults": cfg.default_hparams(), **kw})
        rng = np.random.default_rng(0)
        ds = data_hparams(cfg.default_hparams())
        children = [
            assemble_child(
                state, state.root, task.name, task.num_classes, ds, True, rng, ops, settings
            )[0]
            for _ in range(cfg.generation_batch_size)
        ]
        trainable = sum(c.size for c in children[0].components if c.trainable)
        trainer = Trainer(
            arch,
            {task.name: task},
            TrainSettings(
                batch_size=cfg.batch_size,
                validations=cfg.validations_per_candidate,
                interval_cap=cfg.validation_interval_cap,
                validation_batches=cfg.validation_batches,
                device=device,
            ),
        )
        TimedStream.spent, TimedStream.batches = 0.0, 0
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainer.train_generation(task.name, children, ds, seed=0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        steps = TimedStream.batches
        pipe = TimedStream.spent
        rows.append(
            [
                label,
                f"{trainable:,}",
                str(steps),
                f"{wall / steps * 1e3:.1f}",
                f"{pipe / steps * 1e3:.2f}",
                f"{steps * BATCH / wall:,.0f}",
                f"{100 * pipe / wall:.1f}%",
            ]
        )
    return rows, root_note


def markdown(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (the trainer's device)")
    p.add_argument("--batches", type=int, default=30, help="batches timed per pipeline case")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = munet's auto)")
    p.add_argument(
        "--augment-on",
        choices=["cpu", "device"],
        default="cpu",
        help="where TrainStream augments (cpu = what the trainer does today)",
    )
    args = p.parse_args(argv)
    aug = args.device if args.augment_on == "device" and args.device != "cpu" else None
    TimedStream.augment_on = aug
    from munet.train.device import configure_threads

    threads = configure_threads(args.threads)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "-"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {threads} threads, device {args.device} {gpu}\n"
    )
    print(f"## Input pipeline (TrainStream, batch 64, augmenting on {aug or 'cpu'})\n")
    table = pipeline_table(args.batches, aug)
    print(markdown(["task storage", "ds", "ms/batch", "images/s"], table))
    rows, note = trainer_table(args.device)
    print(f"\n## One generation batch of the default config on {args.device} ({note})\n")
    head = [
        "children",
        "trainable params",
        "steps",
        "ms/step (4 cand.)",
        "pipeline ms/step",
        "images/s consumed",
        "pipeline share",
    ]
    print(markdown(head, rows))
    worst = max(float(r[-1].rstrip("%")) for r in rows)
    verdict = "input-bound" if worst >= 5 else "not input-bound"
    print(f"\nlargest pipeline share {worst:.1f}% (target < 5%): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
