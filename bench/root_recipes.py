"""Root-recipe experiments: pretrain builtin-root variants and record held-out accuracy and time.

    python bench/root_recipes.py --out bench/root_runs   # resumable: finished recipes are skipped

Each recipe's weights and sidecar go to ``OUT/<label>.{safetensors,json}``. The held-out split
is the same for every recipe (its seed does not depend on the training count), so accuracies
compare. Results go to ``bench/RESULTS-root.md`` by hand, with the machine and whether the other
core was busy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from munet.model.root import BUILTIN_ROOTS, pretrain
from munet.system.arch import RootArch

TI3 = BUILTIN_ROOTS["vit_ti3"].arch
TI3_P8 = RootArch(
    embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=8, image_size=32
)

RECIPES = {
    "ti3-7200-c200": dict(arch=TI3, steps=7200, train_per_class=200),
    "ti3-7200-c600": dict(arch=TI3, steps=7200, train_per_class=600),
    "ti3-12000-c600": dict(arch=TI3, steps=12000, train_per_class=600),
    "ti3p8-2400-c600": dict(arch=TI3_P8, steps=2400, train_per_class=600),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/root_runs")
    ap.add_argument("--only", nargs="*", default=None, help="labels to run (default: all)")
    args = ap.parse_args()
    from munet.train.device import configure_threads

    configure_threads(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = BUILTIN_ROOTS["vit_ti3"]
    for label, fields in RECIPES.items():
        if args.only and label not in args.only:
            continue
        meta = out / f"{label}.json"
        if meta.is_file():
            print(f"{label}: done, {json.loads(meta.read_text())['val_accuracy']:.4f}")
            continue
        spec = dataclasses.replace(base, **fields)
        state, info = pretrain(spec, seed=0, name=label, log=lambda m: print(m, flush=True))
        from safetensors.torch import save_file

        save_file(state, str(out / f"{label}.safetensors"))
        meta.write_text(json.dumps(info, indent=1))
        print(
            f"{label}: held-out {info['val_accuracy']:.4f} in {info['seconds']:.0f} s", flush=True
        )


if __name__ == "__main__":
    main()
