"""``munet report``: tables and plots of stored systems as report.html, report.md and PNGs."""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from munet.errors import ReportError
from munet.fileio.atomic import atomic_write_text
from munet.progress import Progress
from munet.report import tables
from munet.report.summary import SystemSummary, load_summaries
from munet.system.baselines import matched_budget, scaled_budget

logger = logging.getLogger(__name__)


@dataclass
class ReportOutcome:
    out: Path
    html: Path
    markdown: Path
    csv: Path
    images: list[Path]
    leaderboard: str
    summaries: list[SystemSummary]

    def summary(self) -> dict[str, Any]:
        """The document ``munet report --json`` prints: the files written and, per system, its
        totals and leaderboard rows (the columns of leaderboard.csv)."""
        return {
            "out": str(self.out),
            "html": str(self.html),
            "markdown": str(self.markdown),
            "csv": str(self.csv),
            "images": [str(p) for p in self.images],
            "systems": [
                {
                    "name": s.name,
                    "directory": str(s.directory),
                    "method": s.label,
                    "root": s.root_spec,
                    "mean_test_accuracy": s.mean_test_accuracy,
                    "mean_val_accuracy": s.mean_val_accuracy,
                    "params_per_task": s.params_per_task,
                    "candidates": len(s.candidates),
                    "train_images": s.images,
                    "seconds": round(s.seconds, 3),
                    "tasks": [
                        {k: v for k, v in row.items() if k not in ("system", "method")}
                        for row in tables.csv_rows([s])
                    ],
                }
                for s in self.summaries
            ],
        }


# A document is a list of blocks rendered twice: as Markdown and as HTML.
Block = tuple[str, object]  # ("h1" | "h2" | "h3" | "p", str), ("table", Table), ("img", Path)


BASELINE_NOTE = (
    "{method} is a baseline (spec §7.4): every candidate is a replica built from the root with "
    "the method's fixed trainable set and the default hyperparameters, trained for the same "
    "number of images muNet's evolution of the task uses; nothing mutates, so there is no "
    "acceptance rate or hyperparameter lineage to plot."
)


def default_out(systems: Sequence[Path]) -> Path:
    """DIR/report for one system, ./munet-report for several."""
    return systems[0] / "report" if len(systems) == 1 else Path("munet-report")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "system"


def write_report(
    systems: Sequence[str | Path] | str | Path, out: str | Path | None = None
) -> ReportOutcome:
    """Read the systems, draw every plot, write the documents; returns what was written."""
    dirs = [Path(systems)] if isinstance(systems, (str, Path)) else [Path(d) for d in systems]
    summaries = load_summaries(dirs)
    out_dir = Path(out) if out else default_out(dirs)
    try:
        return _write(dirs, summaries, out_dir)
    except OSError as err:
        raise ReportError(
            f"cannot write the report to {out_dir} ({err.strerror or err.__class__.__name__}); "
            "pass a writable folder with --out"
        ) from None


def _write(dirs: list[Path], summaries: list[SystemSummary], out_dir: Path) -> ReportOutcome:
    from munet.report.plot_architecture import plot_architecture
    from munet.report.plot_evolution import plot_acceptance, plot_evolution, plot_hparams
    from munet.report.plot_tradeoff import plot_task_tradeoffs, plot_tradeoff, system_points

    out_dir.mkdir(parents=True, exist_ok=True)
    evolved = [s for s in summaries if s.rows]
    blocks: list[Block] = [
        ("h1", "munet report"),
        (
            "p",
            f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} from "
            + ", ".join(str(d) for d in dirs)
            + ". Parameters per task = Σ accounted parameters of the retained paths ÷ tasks; "
            "a component shared by k tasks counts 1/k for each (spec §6). Lineage follows "
            "each candidate's recorded parent from the root to the retained path.",
        ),
    ]
    if len(summaries) > 1:
        blocks += [("h2", "Comparison"), ("table", tables.comparison(summaries))]
    blocks.append(("h2", "Leaderboards"))
    for s in summaries:
        blocks += [("h3", f"{s.name} ({s.label})"), ("p", describe(s))]
        blocks += [("p", tables.system_line(s)), ("table", tables.leaderboard(s))]
    images: list[Path] = []
    plots_total = sum(4 if s.evolves else 2 for s in evolved) + (2 if evolved else 0)
    count = Progress(plots_total, "report plots", unit="plot", logger=logger)
    if evolved:
        blocks.append(("h2", "Quality vs size"))
        for draw in (
            lambda: plot_tradeoff(system_points(evolved), out_dir / "tradeoff.png"),
            lambda: plot_task_tradeoffs(evolved, out_dir / "tradeoff-tasks.png"),
        ):
            img = draw()
            count.advance()
            images.append(img)
            blocks.append(("img", img))
    for s in evolved:
        blocks.append(("h2", f"{s.name} ({s.label})"))
        name = slug(s.name)
        plots = [
            ("Architecture map", plot_architecture, f"architecture-{name}.png"),
            ("Evolution", plot_evolution, f"evolution-{name}.png"),
        ]
        if s.evolves:
            plots += [
                ("Acceptance", plot_acceptance, f"acceptance-{name}.png"),
                ("Hyperparameter lineages", plot_hparams, f"hparams-{name}.png"),
            ]
        for title, plot, file in plots:
            img = plot(s, out_dir / file)
            count.advance()
            images.append(img)
            blocks += [("h3", title), ("img", img)]
        if not s.evolves:
            blocks.append(("p", BASELINE_NOTE.format(method=s.method)))
    count.close()
    md = out_dir / "report.md"
    page = out_dir / "report.html"
    table_csv = out_dir / "leaderboard.csv"
    atomic_write_text(md, render_markdown(blocks, out_dir))
    atomic_write_text(page, render_html(blocks))
    atomic_write_text(table_csv, leaderboard_csv(summaries))
    return ReportOutcome(
        out_dir, page, md, table_csv, images, tables.leaderboard_text(summaries), summaries
    )


def describe(s: SystemSummary) -> str:
    """The configuration a reader needs to interpret a system's numbers."""
    c = s.config
    t, n, v = (
        c.get("task_iterations"),
        c.get("candidates_per_iteration"),
        c.get("validations_per_candidate"),
    )
    budget = f"{t} task iterations × {n} candidates × {v} validation intervals"
    if not s.evolves:
        scale = float(c.get("baseline_budget", 1.0))
        replicas = int(c.get("baseline_replicas", 0))
        b = scaled_budget(matched_budget(t, n, c.get("generation_batch_size"), v, replicas), scale)
        times = "=" if scale == 1.0 else f"{scale:g} ×"
        budget = (
            f"{b.replicas} replicas × {b.validations} validation intervals ({times} muNet's "
            f"{budget})"
        )
    return (
        f"Directory {s.directory}; root {s.root_spec}; method {s.method}; scale factor "
        f"{s.scale_factor:g}; seed {c.get('seed')}; budget per task: {budget}; batch "
        f"{c.get('batch_size')}, validation interval ≤ {c.get('validation_interval_cap')} batches."
    )


def leaderboard_csv(summaries: Sequence[SystemSummary]) -> str:
    rows = tables.csv_rows(summaries)
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def render_markdown(blocks: Sequence[Block], out_dir: Path) -> str:
    parts = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + f" {value}")
        elif kind == "p":
            parts.append(str(value))
        elif kind == "table":
            parts.append(value.markdown())  # type: ignore[attr-defined]
        elif kind == "img":
            rel = Path(value).relative_to(out_dir)  # type: ignore[arg-type]
            parts.append(f"![{rel.stem}]({rel.as_posix()})")
    return "\n\n".join(parts) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { border-bottom: 2px solid #ddd; } h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f5f5f5; } td.num, th.num { text-align: right;
       font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0 1em; }
p { line-height: 1.45; }
"""


def render_html(blocks: Sequence[Block]) -> str:
    """A self-contained page: the PNGs are embedded as base64 data URIs."""
    parts = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{html.escape(str(value))}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(str(value))}</p>")
        elif kind == "table":
            parts.append(value.html())  # type: ignore[attr-defined]
        elif kind == "img":
            data = base64.b64encode(Path(value).read_bytes()).decode()  # type: ignore[arg-type]
            alt = html.escape(Path(value).stem)  # type: ignore[arg-type]
            parts.append(f'<img alt="{alt}" src="data:image/png;base64,{data}">')
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>munet report</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
