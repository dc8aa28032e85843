"""The report's tables: one table model, rendered as plain text, Markdown, HTML or CSV rows."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from munet.report.summary import SystemSummary


@dataclass
class Table:
    """Headers and already formatted cells; ``numeric`` columns are right-aligned."""

    headers: list[str]
    rows: list[list[str]]
    numeric: set[int]

    def text(self) -> str:
        widths = [
            max([len(h)] + [len(r[i]) for r in self.rows]) for i, h in enumerate(self.headers)
        ]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                c.rjust(w) if i in self.numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        return "\n".join(
            [line(self.headers), line(["-" * w for w in widths])] + [line(r) for r in self.rows]
        )

    def markdown(self) -> str:
        def esc(c: str) -> str:
            return c.replace("|", "\\|")

        align = ["---:" if i in self.numeric else "---" for i in range(len(self.headers))]
        out = ["| " + " | ".join(esc(h) for h in self.headers) + " |"]
        out.append("| " + " | ".join(align) + " |")
        out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self.rows]
        return "\n".join(out)

    def html(self) -> str:
        def cell(tag: str, i: int, c: str) -> str:
            cls = ' class="num"' if i in self.numeric else ""
            return f"<{tag}{cls}>{html.escape(c)}</{tag}>"

        head = "".join(cell("th", i, h) for i, h in enumerate(self.headers))
        body = "".join(
            "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def acc(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-task table printed at the end of ``munet evolve`` (rows of tasks.csv)."""
    table = Table(
        [
            "task",
            "test acc",
            "val acc",
            "accounted",
            "private",
            "layers",
            "adapt",
            "img",
            "shared with",
        ],
        [
            [
                r["task"],
                acc(r["test_accuracy"]),
                acc(r["val_accuracy"]),
                f"{r['accounted_params']:,}",
                f"{r['private_params']:,}",
                str(r["num_layers"]),
                str(r["adapters"]),
                str(r["image_size"]),
                r["shared_with"] or "-",
            ]
            for r in rows
        ],
        numeric=set(),
    )
    out = [table.text()]
    if rows:
        mean = sum(r["test_accuracy"] or 0 for r in rows) / len(rows)
        ppt = sum(r["accounted_params"] for r in rows) / len(rows)
        out.append(f"mean test accuracy {mean:.4f}; parameters per task {ppt:,.0f}")
        out.append("components (shared with root / other tasks, or private):")
        out += [f"  {r['task']}: {r['components']}" for r in rows]
    return "\n".join(out)


def count(x: float) -> str:
    return f"{round(x):,}"


def tflops(x: float) -> str:
    """FLOPs in TFLOPs: three significant digits, whole numbers from 100 up."""
    t = x / 1e12
    return f"{t:,.0f}" if t >= 100 else f"{t:.3g}"


def leaderboard(summary: SystemSummary) -> Table:
    """Per task: accuracy, parameters, lineage and compute of the retained path."""
    headers = [
        "task",
        "test acc",
        "val acc",
        "accounted params",
        "private params",
        "lineage (root → … → task)",
        "candidates",
        "accepted",
        "train images",
        "train TFLOPs",
        "seconds",
    ]
    rows = [
        [
            r.task,
            acc(r.test_accuracy),
            acc(r.val_accuracy),
            count(r.accounted_params),
            count(r.private_params),
            r.lineage_text,
            str(r.candidates),
            str(r.accepted),
            count(r.images),
            tflops(r.flops),
            f"{r.seconds:.1f}",
        ]
        for r in summary.rows
    ]
    return Table(headers, rows, {1, 2, 3, 4, 6, 7, 8, 9, 10})


def system_line(s: SystemSummary) -> str:
    """One sentence under a system's table: its averages and totals."""
    return (
        f"mean test accuracy {acc(s.mean_test_accuracy)}; parameters per task "
        f"{count(s.params_per_task)}; {len(s.candidates)} candidates, "
        f"{count(s.images)} training images, {tflops(s.flops)} TFLOPs and {s.seconds:.0f} s of "
        "training"
    )


def comparison(summaries: Sequence[SystemSummary]) -> Table:
    """One row per system: the quality / size / compute trade-off at a glance."""
    headers = [
        "system",
        "method",
        "tasks",
        "mean test acc",
        "mean val acc",
        "params per task",
        "candidates",
        "train images",
        "train TFLOPs",
        "seconds",
    ]
    rows = [
        [
            s.name,
            s.label,
            str(len(s.rows)),
            acc(s.mean_test_accuracy),
            acc(s.mean_val_accuracy),
            count(s.params_per_task),
            str(len(s.candidates)),
            count(s.images),
            tflops(s.flops),
            f"{s.seconds:.0f}",
        ]
        for s in summaries
    ]
    return Table(headers, rows, {2, 3, 4, 5, 6, 7, 8, 9})


def csv_rows(summaries: Sequence[SystemSummary]) -> list[dict[str, Any]]:
    """Unformatted leaderboard rows (leaderboard.csv) for scripts and tests."""
    return [
        {
            "system": s.name,
            "method": s.label,
            "task": r.task,
            "path_id": r.path_id,
            "test_accuracy": r.test_accuracy,
            "val_accuracy": r.val_accuracy,
            "accounted_params": r.accounted_params,
            "private_params": r.private_params,
            "system_params_per_task": s.params_per_task,
            "lineage": r.lineage_text,
            "candidates": r.candidates,
            "accepted": r.accepted,
            "images": r.images,
            "flops": r.flops,
            "seconds": round(r.seconds, 3),
        }
        for s in summaries
        for r in s.rows
    ]


def leaderboard_text(summaries: Sequence[SystemSummary]) -> str:
    """What ``munet report`` prints: each system's table, then the comparison if several."""
    parts = []
    for s in summaries:
        parts.append(f"== {s.name} ({s.label}, root {s.root_spec})")
        parts.append(leaderboard(s).text() if s.rows else "(no task evolved yet)")
        parts.append(system_line(s))
    if len(summaries) > 1:
        parts.append("== comparison")
        parts.append(comparison(summaries).text())
    return "\n".join(parts)
