"""The performance-profile plot (PNG and PDF).

matplotlib is imported here only, on first use. The figure is drawn on its own Agg canvas, without
pyplot, so plotting needs no display and leaves the backend of the calling process untouched
(the plugin calls this inside a user's pytest session).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_performance_profiles(profiles: pd.DataFrame, scores: pd.Series | None,
                              path_stem: Path, title: str = "") -> list[Path]:
    """Draw rho_s(tau) for every submission; write ``<path_stem>.png`` and ``.pdf``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6))
    FigureCanvasAgg(figure)
    # Fixed margins: an automatic layout engine would double the drawing time.
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.93)
    axes = figure.add_subplot()
    taus = profiles.columns.to_numpy(dtype=float)
    order = scores.sort_values(ascending=False).index if scores is not None else profiles.index
    for submission in order:
        label = str(submission)
        if scores is not None and pd.notna(scores.get(submission)):
            label += f" ({scores[submission]:.4f})"
        # The profile as sampled for the score (the trapezoid integrates these very points).
        axes.plot(taus, profiles.loc[submission].to_numpy(dtype=float), label=label, linewidth=2)
    axes.set_xlim(taus.min(), taus.max())
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("tau: time to target relative to the fastest submission")
    axes.set_ylabel("fraction of base workloads within tau")
    axes.grid(alpha=0.4)
    axes.legend(loc="lower right", title="submission (score)" if scores is not None else None)
    if title:
        axes.set_title(title)
    written = []
    for suffix in (".png", ".pdf"):
        path = path_stem.with_suffix(suffix)
        figure.savefig(path, dpi=150)
        written.append(path)
    return written
