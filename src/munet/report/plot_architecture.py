"""The architecture map: tasks × components, coloured by how each task's model holds each one."""

from __future__ import annotations

from pathlib import Path

from munet.report import figure
from munet.report.summary import (
    ABSENT,
    ADAPTER,
    INHERITED,
    OWN,
    ROLE_LEGEND,
    ROOT,
    SystemSummary,
    component_columns,
    component_roles,
)
from munet.system.arch import layer_index

ROLE_COLOURS = {
    ROOT: "#c9c9c9",
    INHERITED: "#f4a259",
    OWN: "#5b8def",
    ADAPTER: "#6cc28a",
    ABSENT: "#ffffff",
}

SHORT = {
    "embedding": "patch\nembed",
    "cls": "class\ntoken",
    "posembed_input": "pos\nembed",
    "encoder_norm": "final\nnorm",
    "head": "task\nhead",
}


def column_label(name: str) -> str:
    if name in SHORT:
        return SHORT[name]
    i = layer_index(name)
    if name.startswith("residual_adapter_"):
        return f"adapter\n{i}"
    return f"lowrank\n{i}" if name.startswith("lowrank_") else f"block\n{i}"


def plot_architecture(summary: SystemSummary, path: Path) -> Path:
    """Rows are tasks, columns components; each cell says where the task's copy comes from."""
    from matplotlib.patches import Patch, Rectangle

    plt = figure.pyplot()
    roles = component_roles(summary)
    columns = component_columns(summary.state)
    tasks = list(roles)
    fig_w = 1.5 + 0.95 * max(1, len(columns))
    fig_h = 1.9 + 0.62 * max(1, len(tasks))
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.grid(False)
    for r, task in enumerate(tasks):
        for c, name in enumerate(columns):
            role = roles[task].get(name)
            kind = role.kind if role else ABSENT
            ax.add_patch(
                Rectangle(
                    (c, r),
                    1,
                    1,
                    facecolor=ROLE_COLOURS[kind],
                    edgecolor="white",
                    linewidth=2,
                )
            )
            if role is None:
                text = "–"
            else:
                text = f"from\n{role.text}" if role.kind == INHERITED else role.text
                text += f"\n{role.users} tasks" if role.users > 1 else ""
            ax.text(c + 0.5, r + 0.5, text, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(tasks), 0)
    ax.set_xticks([c + 0.5 for c in range(len(columns))])
    ax.set_xticklabels([column_label(n) for n in columns], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([r + 0.5 for r in range(len(tasks))])
    ax.set_yticklabels(tasks)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(
        f"Architecture map of {summary.name} ({summary.label}): which copy of each component "
        "every task's model uses\n(cell text: where the copy comes from; 'N tasks' = the models "
        "of N tasks share this copy)",
        pad=34,
    )
    used = {roles[t][n].kind for t in tasks for n in columns if n in roles[t]}
    if any(n not in roles[t] for t in tasks for n in columns):
        used.add(ABSENT)
    handles = [
        Patch(facecolor=ROLE_COLOURS[k], edgecolor="0.6", label=ROLE_LEGEND[k])
        for k in ROLE_LEGEND
        if k in used
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=2,
        frameon=False,
    )
    return figure.save(fig, path)
