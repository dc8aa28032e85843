"""Three image-folder tasks that are not munet's: small grey images a user might bring.

    python bench/outside_tasks.py --out /tmp/outside            # writes three class-folder trees
    python bench/quality.py --tasks imagefolder:/tmp/outside/shapes,\\
        imagefolder:/tmp/outside/orientations,imagefolder:/tmp/outside/counting ...

None of them is a built-in task, none is drawn by munet's glyph renderer, and none shares a
class with the root's pretraining corpus (characters):

* ``shapes``: 9 filled or outlined geometric shapes (circle, ring, square, frame, triangle,
  pentagon, hexagon, star, plus) at random scale, position, rotation (±25°) and contrast;
* ``orientations``: sinusoidal gratings at 8 orientations (0°, 22.5°, ..., 157.5°, ±4°) with
  random period, phase and contrast. A left-right flip maps orientation k onto 8 − k: the
  augmentation that a default must not switch on blindly;
* ``counting``: 1 to 8 non-overlapping dots; the class is the count.

Images are 32×32 greyscale PNGs with Gaussian pixel noise, ``--per-class`` of them per class
(300 by default: munet's 80/10/10 per-class split gives 240/30/30). Everything is drawn from
``numpy.random.default_rng(--seed)``: the same arguments write the same bytes.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32
SUPER = 4  # shapes and dots are drawn at 4x and downsampled (anti-aliasing)

Draw = Callable[[np.random.Generator], np.ndarray]  # one image, float32 in [0, 1]


def _polygon(n: int, r: float, cx: float, cy: float, rot: float, inner: float = 0.0):
    """Vertices of a regular n-gon (or a 2n-pointed star when ``inner`` > 0)."""
    pts, k = [], 2 * n if inner else n
    for i in range(k):
        rad = r if not inner or i % 2 == 0 else r * inner
        a = rot + 2 * math.pi * i / k - math.pi / 2
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _rotated(pts, cx: float, cy: float, rot: float):
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in pts]


def _shape(kind: str) -> Draw:
    def draw(rng: np.random.Generator) -> np.ndarray:
        big = SIZE * SUPER
        img = Image.new("L", (big, big), 0)
        d = ImageDraw.Draw(img)
        r = big * rng.uniform(0.2, 0.42)
        cx, cy = (big / 2 + rng.uniform(-1, 1) * (big / 2 - r - SUPER) for _ in range(2))
        rot = math.radians(rng.uniform(-25, 25))
        width = max(SUPER, int(r * rng.uniform(0.18, 0.3)))
        box = [cx - r, cy - r, cx + r, cy + r]
        if kind == "circle":
            d.ellipse(box, fill=255)
        elif kind == "ring":
            d.ellipse(box, outline=255, width=width)
        elif kind in ("square", "frame"):
            pts = _rotated(
                [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)],
                cx,
                cy,
                rot,
            )
            d.polygon(
                pts,
                fill=255 if kind == "square" else None,
                outline=255,
                width=1 if kind == "square" else width,
            )
        elif kind in ("triangle", "pentagon", "hexagon"):
            n = {"triangle": 3, "pentagon": 5, "hexagon": 6}[kind]
            d.polygon(_polygon(n, r, cx, cy, rot), fill=255)
        elif kind == "star":
            d.polygon(_polygon(5, r, cx, cy, rot, inner=0.45), fill=255)
        elif kind == "plus":
            arm = r * 0.32
            for pts in (
                [(cx - r, cy - arm), (cx + r, cy - arm), (cx + r, cy + arm), (cx - r, cy + arm)],
                [(cx - arm, cy - r), (cx + arm, cy - r), (cx + arm, cy + r), (cx - arm, cy + r)],
            ):
                d.polygon(_rotated(pts, cx, cy, rot), fill=255)
        else:
            raise ValueError(kind)
        return np.asarray(img.resize((SIZE, SIZE), Image.BOX), np.float32) / 255.0

    return draw


def _grating(k: int) -> Draw:
    def draw(rng: np.random.Generator) -> np.ndarray:
        a = math.radians(22.5 * k + rng.uniform(-4, 4))
        period = rng.uniform(4.0, 9.0)
        y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) - (SIZE - 1) / 2
        # orientation of the stripes: the wave runs across them
        u = x * math.cos(a) + y * math.sin(a)
        return (0.5 + 0.5 * np.sin(2 * math.pi * u / period + rng.uniform(0, 2 * math.pi))).astype(
            np.float32
        )

    return draw


def _dots(count: int) -> Draw:
    def draw(rng: np.random.Generator) -> np.ndarray:
        big = SIZE * SUPER
        img = Image.new("L", (big, big), 0)
        d = ImageDraw.Draw(img)
        centres: list[tuple[float, float, float]] = []
        while len(centres) < count:
            r = SUPER * rng.uniform(1.3, 2.4)
            x, y = (rng.uniform(r + SUPER, big - r - SUPER) for _ in range(2))
            # a gap of at least two output pixels keeps every dot its own blob
            if all(math.hypot(x - a, y - b) > r + s + 2 * SUPER for a, b, s in centres):
                centres.append((x, y, r))
                d.ellipse([x - r, y - r, x + r, y + r], fill=255)
        return np.asarray(img.resize((SIZE, SIZE), Image.BOX), np.float32) / 255.0

    return draw


SHAPES = ("circle", "ring", "square", "frame", "triangle", "pentagon", "hexagon", "star", "plus")
TASKS: dict[str, dict[str, Draw]] = {
    "shapes": {k: _shape(k) for k in SHAPES},
    "orientations": {f"{22.5 * k:05.1f}deg": _grating(k) for k in range(8)},
    "counting": {f"{n}_dots": _dots(n) for n in range(1, 9)},
}


def finish(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random background and foreground levels (contrast at least 0.35, either polarity) and
    Gaussian noise, as uint8."""
    lo = rng.uniform(0.0, 0.65)
    hi = rng.uniform(lo + 0.35, 1.0)
    if rng.random() < 0.5:
        lo, hi = hi, lo
    x = lo + (hi - lo) * x + rng.normal(0.0, 0.04, x.shape)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_tasks(out: Path, per_class: int = 300, seed: int = 0, names=tuple(TASKS)) -> list[Path]:
    """Write ``out/<task>/<class>/<i>.png`` for every task in ``names``; returns the task dirs."""
    dirs = []
    for t, name in enumerate(names):
        rng = np.random.default_rng([seed, t])
        for cls, draw in TASKS[name].items():
            folder = out / name / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(finish(draw(rng), rng), "L").save(folder / f"{i:04d}.png")
        dirs.append(out / name)
    return dirs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="where the task folders go")
    p.add_argument("--per-class", type=int, default=300, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    dirs = write_tasks(args.out, args.per_class, args.seed)
    print(",".join(f"imagefolder:{d}" for d in dirs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
