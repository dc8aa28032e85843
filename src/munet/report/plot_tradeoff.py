"""Quality vs size: test accuracy against parameters per task, with the Pareto front."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from munet.report import figure
from munet.report.summary import SystemSummary


@dataclass(frozen=True)
class TradeoffPoint:
    """One system (or one method's mean over seeds) on the quality / size plane."""

    label: str  # legend text
    group: str  # colour group, e.g. the method
    params: float
    accuracy: float
    accuracy_std: float | None = None
    params_std: float | None = None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (params, accuracy) points that no other point dominates, by params.

    A point dominates another if it has no more parameters and no lower accuracy, and is
    strictly better in one of the two.
    """
    front = []
    for i, (p, a) in enumerate(points):
        dominated = any(
            (q <= p and b >= a) and (q < p or b > a) for j, (q, b) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def system_points(summaries: Sequence[SystemSummary]) -> list[TradeoffPoint]:
    """Mean test accuracy against parameters per task, one point per system."""
    return [
        TradeoffPoint(f"{s.name} ({s.label})", s.label, s.params_per_task, s.mean_test_accuracy)
        for s in summaries
        if s.mean_test_accuracy is not None
    ]


def draw(ax: Any, points: Sequence[TradeoffPoint], groups: list[str]) -> bool:
    """Points coloured by group, error bars where given, and the front when there are several.

    Points at the same place are spread sideways by a few typographic points so each stays
    visible; returns whether that happened (the caller says so in the title).
    """
    from matplotlib.transforms import ScaledTranslation

    palette = dict(zip(groups, figure.colours(len(groups)), strict=True))
    markers = "osD^vP*Xh<>"
    seen: dict[str, int] = {}
    spots: dict[tuple[float, float], list[int]] = {}
    for i, pt in enumerate(points):
        spots.setdefault((round(pt.params, 6), round(pt.accuracy, 6)), []).append(i)
    for i, pt in enumerate(points):
        k = seen.get(pt.group, 0)
        seen[pt.group] = k + 1
        same = spots[(round(pt.params, 6), round(pt.accuracy, 6))]
        dx = (same.index(i) - (len(same) - 1) / 2) * 9 / 72  # inches
        ax.errorbar(
            pt.params,
            pt.accuracy,
            yerr=pt.accuracy_std,
            xerr=pt.params_std,
            fmt=markers[k % len(markers)],
            color=palette[pt.group],
            markersize=7,
            capsize=3,
            label=pt.label,
            zorder=3,
            transform=ax.transData + ScaledTranslation(dx, 0, ax.figure.dpi_scale_trans),
        )
    if len(points) > 1:
        idx = pareto_front([(p.params, p.accuracy) for p in points])
        xs = [points[i].params for i in idx]
        ys = [points[i].accuracy for i in idx]
        ax.plot(xs, ys, "--", color="0.35", linewidth=1, zorder=2, label="Pareto front")
        ax.scatter(xs, ys, s=190, facecolors="none", edgecolors="0.35", linewidths=1.2, zorder=4)
    # offset artists do not extend the data limits by themselves
    ax.update_datalim(
        [
            (p.params, p.accuracy + sign * (p.accuracy_std or 0.0))
            for p in points
            for sign in (-1, 1)
        ]
    )
    ax.autoscale_view()
    figure.log_x_axis(ax, [p.params for p in points])
    ax.margins(y=0.18)
    return any(len(v) > 1 for v in spots.values())


def plot_tradeoff(
    points: Sequence[TradeoffPoint],
    path: Path,
    title: str = "Test accuracy vs parameters per task",
    xlabel: str = "parameters per task (log scale)",
    ylabel: str = "mean test accuracy over tasks",
) -> Path:
    """The system-level trade-off plot (also used by bench/quality.py with error bars)."""
    plt = figure.pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    groups = list(dict.fromkeys(p.group for p in points))
    notes = []
    if len(points) > 1:
        notes.append("front points ringed: nothing is both smaller and better")
    if draw(ax, points, groups):
        notes.append("equal points drawn side by side")
    ax.set_title(title + (f"\n({'; '.join(notes)})" if notes else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    return figure.save(fig, path)


def plot_task_tradeoffs(summaries: Sequence[SystemSummary], path: Path) -> Path:
    """One panel per task: that task's test accuracy against its accounted parameters."""
    plt = figure.pyplot()
    tasks = list(dict.fromkeys(r.task for s in summaries for r in s.rows))
    rows, cols = figure.grid(len(tasks))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = list(axes.flat)
    groups = list(dict.fromkeys(s.label for s in summaries))
    spread = False
    for ax, task in zip(flat, tasks, strict=False):
        pts = [
            TradeoffPoint(f"{s.name} ({s.label})", s.label, r.accounted_params, r.test_accuracy)
            for s in summaries
            for r in s.rows
            if r.task == task and r.test_accuracy is not None
        ]
        spread = draw(ax, pts, groups) or spread
        ax.set_title(task)
        ax.set_xlabel("accounted parameters (log scale)")
        ax.set_ylabel("test accuracy")
    figure.hide_unused(flat, len(tasks))
    legend: dict[str, object] = {}
    for ax in flat[: len(tasks)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    handles, labels = list(legend.values()), list(legend)
    note = " (equal points drawn side by side)" if spread else ""
    fig.suptitle(f"Per task: test accuracy vs the task's accounted parameters{note}", y=1.0)
    fig.tight_layout()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(3, len(labels)),
        frameon=False,
    )
    return figure.save(fig, path)
