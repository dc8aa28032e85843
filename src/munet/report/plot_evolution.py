"""How evolution went: score and accuracy per candidate, acceptance, hyperparameter lineages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from munet.report import figure
from munet.report.summary import ROOT_LABEL, SystemSummary
from munet.system.record import CandidateRecord

#: (hyperparameter, axis label, kind) panels of the lineage plot; kind: lin | log | cat | count
HP_PANELS = [
    ("opt_lr", "peak learning rate", "log"),
    ("opt_momentum", "momentum", "lin"),
    ("opt_lr_warmup_ratio", "warm-up fraction", "lin"),
    ("opt_lr_schedule", "LR schedule", "cat"),
    ("num_layers", "blocks used", "lin"),
    ("adapter_layers", "adapters", "count"),
    ("adapter_dim", "adapter size", "lin"),
    ("ds_image_size", "image size (px)", "lin"),
    ("ds_area_range_min", "min crop area", "lin"),
]
SCHEDULES = ["constant", "cosine", "restarts"]


SEED = "seed-phase child (always accepted)"
CANDIDATE_STYLES: dict[str, dict[str, Any]] = {
    SEED: {"marker": "^", "color": "tab:olive"},
    "mutated child, accepted": {"marker": "o", "color": "tab:green"},
    "mutated child, rejected": {"marker": "x", "color": "tab:red"},
}


def candidate_kind(record: CandidateRecord) -> str:
    if record.seed_phase:
        return SEED
    return "mutated child, " + ("accepted" if record.accepted else "rejected")


def _running_max(values: list[float | None]) -> list[float | None]:
    out: list[float | None] = []
    best: float | None = None
    for v in values:
        if v is not None and (best is None or v > best):
            best = v
        out.append(best)
    return out


def _panel_legend(fig: Any, axes: list[Any], n: int, ncol: int) -> None:
    legend: dict[str, Any] = {}
    for ax in axes[:n]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    for lab in [x for x in legend if x.startswith("path of another task")]:
        legend[lab] = legend.pop(lab)  # notes after the per-task entries
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=ncol,
        frameon=False,
    )


def plot_evolution(summary: SystemSummary, path: Path) -> Path:
    """Per task: muNet's candidates with the best score / accuracy so far, or, for a baseline,
    each replica's validation accuracy over its (long) training run."""
    plt = figure.pyplot()
    tasks = [r.task for r in summary.rows]
    rows, cols = figure.grid(max(1, len(tasks)))
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.1 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, row in zip(flat, summary.rows, strict=False):
        if summary.evolves:
            _candidates_panel(ax, summary.task_candidates(row.task), row.task)
        else:
            _replicas_panel(ax, summary.task_candidates(row.task), row)
    figure.hide_unused(flat, len(tasks))
    what = "Evolution" if summary.evolves else "Baseline training curves"
    fig.suptitle(f"{what} of {summary.name} ({summary.label})", y=1.0)
    fig.tight_layout()
    _panel_legend(fig, flat, len(tasks), ncol=3)
    return figure.save(fig, path)


def _candidates_panel(ax: Any, recs: list[CandidateRecord], task: str) -> None:
    from matplotlib.ticker import MaxNLocator

    xs = list(range(1, len(recs) + 1))
    for kind, style in CANDIDATE_STYLES.items():
        pts = [
            (x, r.quality)
            for x, r in zip(xs, recs, strict=True)
            if r.quality is not None and candidate_kind(r) == kind
        ]
        if pts:
            ax.scatter(
                [x for x, _ in pts], [y for _, y in pts], s=24, zorder=3, label=kind, **style
            )
    best_score = _running_max([r.score for r in recs])
    ax.step(xs, best_score, where="post", color="tab:blue", label="best score so far")
    ax.step(
        xs,
        _running_max([r.quality for r in recs]),
        where="post",
        color="tab:purple",
        linestyle="--",
        label="best val accuracy so far",
    )
    starts = [
        x
        for x, r, prev in zip(xs[1:], recs[1:], recs, strict=False)
        if r.iteration != prev.iteration
    ]
    for x in starts:
        ax.axvline(x - 0.5, color="0.5", linestyle=":", linewidth=1)
    if starts:
        ax.plot([], [], color="0.5", linestyle=":", label="new task iteration")
    ax.set_title(f"{task}: {len(recs)} candidates")
    ax.set_xlabel("candidates trained for this task")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy / score")


def _replicas_panel(ax: Any, recs: list[CandidateRecord], row: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for r in recs:
        hist = r.history or []
        kept = r.path_id == row.path_id
        ax.plot(
            range(1, len(hist) + 1),
            hist,
            marker="o" if kept else ".",
            linewidth=2 if kept else 1,
            color="tab:blue" if kept else "0.6",
            zorder=3 if kept else 2,
            label="retained replica (best validation)" if kept else "other replicas",
        )
    n_val = max((len(r.history or []) for r in recs), default=0)
    ax.set_title(f"{row.task}: {len(recs)} replicas × {n_val} validations")
    ax.set_xlabel("validation interval")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy")


def acceptance(summary: SystemSummary) -> dict[str, list[tuple[int, int]]]:
    """task -> per iteration (accepted, trained) among evolved (mutated) candidates.

    Seed-phase children are left out: their baseline is -inf, so they are always accepted.
    """
    out: dict[str, list[tuple[int, int]]] = {}
    for r in summary.rows:
        recs = [x for x in summary.task_candidates(r.task) if not x.seed_phase]
        iters = sorted({x.iteration for x in summary.task_candidates(r.task)})
        out[r.task] = [
            (
                sum(bool(x.accepted) for x in recs if x.iteration == it),
                sum(1 for x in recs if x.iteration == it),
            )
            for it in iters
        ]
    return out


def plot_acceptance(summary: SystemSummary, path: Path) -> Path:
    """Acceptance rate of evolved candidates, per task and task iteration."""
    plt = figure.pyplot()
    data = acceptance(summary)
    tasks = list(data)
    n_iter = max((len(v) for v in data.values()), default=0)
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(tasks) + 2), 3.6))
    width = 0.8 / max(1, n_iter)
    shades = figure.colours(max(1, n_iter))
    for it in range(n_iter):
        xs, ys, notes = [], [], []
        for t_i, task in enumerate(tasks):
            if it >= len(data[task]):
                continue
            k, n = data[task][it]
            xs.append(t_i - 0.4 + width * (it + 0.5))
            ys.append(k / n if n else 0.0)
            notes.append(f"{k}/{n}" if n else "none")
        bars = ax.bar(xs, ys, width * 0.92, color=shades[it], label=f"task iteration {it}")
        for bar, note in zip(bars, notes, strict=True):
            ax.annotate(
                note,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=20, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("accepted / trained")
    evolved = sum(n for v in data.values() for _, n in v)
    title = f"Acceptance rate of mutated candidates: {summary.name} ({summary.label})"
    if not evolved:
        title += "\n(no mutated candidates: this method trains fixed root children only)"
    else:
        title += "\n(seed-phase children are always accepted and left out; text = accepted/trained)"
    ax.set_title(title)
    if n_iter:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure.save(fig, path)


def lineage_hparams(summary: SystemSummary, task: str) -> list[dict[str, Any]]:
    """Hyperparameters along the task's retained lineage, root defaults first."""
    row = next(r for r in summary.rows if r.task == task)
    by_id = {r.path_id: r for r in summary.candidates}
    out = []
    for pid, _ in row.lineage:
        rec = by_id.get(pid)
        out.append(dict(rec.hparams) if rec else dict(summary.state.root.hparams))
    return out


def _hp_value(name: str, kind: str, hp: dict[str, Any]) -> float | None:
    v = hp.get(name)
    if kind == "count":
        return float(len(v or []))
    if kind == "cat":
        return float(SCHEDULES.index(v)) if v in SCHEDULES else None
    if name == "opt_momentum" and v is None:
        return 0.0
    return None if v is None else float(v)


def plot_hparams(summary: SystemSummary, path: Path) -> Path:
    """Each hyperparameter along every task's retained lineage (root → … → retained path)."""
    from matplotlib.ticker import MaxNLocator

    plt = figure.pyplot()
    tasks = [r.task for r in summary.rows]
    lineages = {t: lineage_hparams(summary, t) for t in tasks}
    owners = {r.task: [t for _, t in r.lineage] for r in summary.rows}
    rows, cols = figure.grid(len(HP_PANELS))
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.7 * rows), squeeze=False)
    flat = list(axes.flat)
    palette = figure.colours(max(1, len(tasks)))
    markers = "osD^vP*Xh<>"
    for ax, (name, label, kind) in zip(flat, HP_PANELS, strict=False):
        for t_i, task in enumerate(tasks):
            hps = lineages[task]
            shift = (t_i - (len(tasks) - 1) / 2) * 0.06  # keep identical lines visible
            xs = [i + shift for i in range(len(hps))]
            ys = [_hp_value(name, kind, hp) for hp in hps]
            ax.plot(
                xs,
                ys,
                marker=markers[t_i % len(markers)],
                markersize=4,
                color=palette[t_i],
                label=task,
            )
            other = [i for i, t in enumerate(owners[task]) if t not in (task, ROOT_LABEL)]
            ax.scatter(
                [xs[i] for i in other],
                [ys[i] for i in other],
                s=70,
                facecolors="none",
                edgecolors="black",
                linewidths=1,
                zorder=4,
                label="path of another task (transfer)" if other else None,
            )
        if kind == "log":
            ax.set_yscale("log")
        elif kind == "count" or name in ("num_layers", "adapter_dim", "ds_image_size"):
            values = [
                v
                for t in tasks
                for hp in lineages[t]
                if (v := _hp_value(name, kind, hp)) is not None
            ]
            if values:
                ax.set_ylim(min(values) - 0.6, max(values) + 0.6)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if kind == "cat":
            ax.set_yticks(range(len(SCHEDULES)))
            ax.set_yticklabels(SCHEDULES)
            ax.set_ylim(-0.5, len(SCHEDULES) - 0.5)
        ax.set_title(label)
        ax.set_xlabel("lineage step (0 = root)")
        longest = max((len(v) for v in lineages.values()), default=1)
        ax.set_xticks(range(longest))
    figure.hide_unused(flat, len(HP_PANELS))
    fig.suptitle(
        f"Hyperparameters along each task's retained lineage: {summary.name} ({summary.label})",
        y=1.0,
    )
    fig.tight_layout()
    _panel_legend(fig, flat, len(HP_PANELS), ncol=min(6, max(1, len(tasks))))
    return figure.save(fig, path)
