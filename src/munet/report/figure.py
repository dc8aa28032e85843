"""Matplotlib set-up shared by the report's plots (imported only when a plot is drawn)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), with the report's style."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def colours(n: int) -> list[Any]:
    """n distinct colours (tab10, then tab20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def human(x: float) -> str:
    """1234567 -> '1.23M', 45600 -> '45.6k'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def log_x_axis(ax: Any, values: Iterable[float]) -> None:
    """A log x axis whose few tick labels stay readable even over a narrow range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    vals = [v for v in values if v and v > 0]
    ax.set_xscale("log")
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    if hi / lo < 1.05:  # one value (or nearly): pad around it
        lo, hi = lo / 1.5, hi * 1.5
    pad = (hi / lo) ** 0.12
    ax.set_xlim(lo / pad, hi * pad)
    ticks = nice_log_ticks(lo / pad, hi * pad)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def nice_log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values (1, 2, 5 × 10^k) inside [lo, hi], at most ``most`` of them."""
    out: list[float] = []
    for mant in ([1.0], [1.0, 2.0, 5.0], [1.0, 1.5, 2.0, 3.0, 5.0, 7.0]):
        out = [
            m * 10.0**k
            for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for m in mant
            if lo <= m * 10.0**k <= hi
        ]
        if len(out) >= 3:
            break
    if len(out) < 2:  # a very narrow range: evenly spaced in log, rounded to 3 digits
        out = [float(f"{lo * (hi / lo) ** (i / 3):.3g}") for i in range(1, 3)]
    step = max(1, math.ceil(len(out) / most))
    return out[::step]


def grid(n: int, cols: int = 3) -> tuple[int, int]:
    """Rows and columns of a panel grid for n panels."""
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def hide_unused(axes: Sequence[Any], used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)
