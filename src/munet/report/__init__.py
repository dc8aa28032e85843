"""Tables and plots of stored systems (``munet report``).

* :mod:`munet.report.summary` -- what is shown, read from a system directory (plain data).
* :mod:`munet.report.tables` -- leaderboard and comparison tables (text, Markdown, HTML, CSV).
* :mod:`munet.report.plot_tradeoff`, :mod:`~munet.report.plot_architecture`,
  :mod:`~munet.report.plot_evolution` -- one PNG each; matplotlib is imported only to draw.
* :mod:`munet.report.write` -- report.html (self-contained), report.md and the PNGs.
"""

from __future__ import annotations

from munet.report.write import ReportOutcome, write_report

__all__ = ["ReportOutcome", "write_report"]
