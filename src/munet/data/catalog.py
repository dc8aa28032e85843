"""The built-in tasks as plain data: names, one-line descriptions, the default run's tasks.

Importable without torch or numpy, so ``munet tasks`` starts in a fraction of a second; the
loaders live in :mod:`munet.data.builtin`, which pairs each name here with one.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The tasks of the default run (``Config.tasks``).
DEFAULT_TASKS = [
    "builtin:glyph_digits",
    "builtin:glyph_latin",
    "builtin:glyph_greek",
    "builtin:glyph_symbols",
    "builtin:digits",
    "builtin:fashion_mnist",
]


@dataclass(frozen=True)
class TaskEntry:
    """A built-in task's name and description; ``listed=False`` hides it from users."""

    name: str
    description: str
    listed: bool = True


_GLYPH_STYLE = "32x32 gray, random font/size/rotation/shift/stroke/blur"

#: Every built-in task, in the order ``munet tasks`` lists them.
CATALOG: dict[str, TaskEntry] = {
    t.name: t
    for t in (
        TaskEntry(
            "fashion_mnist",
            "Fashion-MNIST: 10 clothing classes, 28x28 gray (Debian dataset-fashion-mnist)",
        ),
        TaskEntry("digits", "scikit-learn handwritten digits: 10 classes, 8x8 gray, 1797 images"),
        TaskEntry("glyph_digits", f"rendered digits 0-9 from matplotlib's fonts, {_GLYPH_STYLE}"),
        TaskEntry("glyph_latin", f"rendered Latin capitals A-Z (26 classes), {_GLYPH_STYLE}"),
        TaskEntry("glyph_greek", f"rendered Greek lowercase letters (24 classes), {_GLYPH_STYLE}"),
        TaskEntry(
            "glyph_symbols", f"rendered math symbols and arrows (20 classes), {_GLYPH_STYLE}"
        ),
        TaskEntry(
            "pretrain_glyphs",
            "root-pretraining corpus: 175 glyph classes disjoint from all built-in tasks",
            listed=False,
        ),
    )
}


def list_builtin_tasks() -> list[tuple[str, str]]:
    """(name, one-line description) of the built-in tasks offered to users, in a fixed order."""
    return [(t.name, t.description) for t in CATALOG.values() if t.listed]
