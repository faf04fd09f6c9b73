"""Look of the figures: matplotlib style, one colour / marker / name per method, small drawing helpers.

Sizes are for a 7-inch (two-column) paper figure: fonts of 8-10 pt stay readable when the
figure is printed at that width; PNGs are written at DPI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvsim.methods import METHODS
from mvsim.stats import diverged_mask, mean_ci

DPI = 150
WIDTH = 7.0  # inches: the width of a two-column paper figure

STYLE = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "legend.fontsize": 8, "figure.titlesize": 10, "lines.linewidth": 1.4,
    "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": DPI,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5, "legend.frameon": False,
    "pdf.fonttype": 42,  # TrueType in PDFs (editable text, accepted by publishers)
}

TIME_LABEL = "GD time (sum of step sizes)"

# One fixed colour, display name and marker per method, declared with the method (mvsim.methods);
# a method name the table does not know (an older results directory) gets a colour from this list.
_EXTRA_COLOURS = ["#CC79A7", "#F0E442", "#999999", "#882255", "#44AA99", "#332288"]
FEATURE_STYLES = ["-", (0, (1.2, 1.2)), "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1.5)), (0, (6, 2))]
NOTE_COLOUR = "#A00000"


def method_name(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def method_colour(method: str) -> str:
    if method in METHODS:
        return METHODS[method].colour
    return _EXTRA_COLOURS[sum(map(ord, method)) % len(_EXTRA_COLOURS)]


def method_marker(method: str) -> str:
    return METHODS[method].marker if method in METHODS else "o"


def time_methods() -> list[str]:
    """The methods drawn in the time figure (`Method.on_time_figure`), in table order."""
    return [m.name for m in METHODS.values() if m.on_time_figure]


def ordered_methods(methods) -> list[str]:
    """Methods in the table's order (mvsim.methods.METHODS), then unknown ones alphabetically."""
    methods = set(methods)
    known = [m for m in METHODS if m in methods]
    return known + sorted(methods - set(known))


def methods_with(df: pd.DataFrame, metric: str) -> list[str]:
    """Methods that have at least one finite value of `metric`."""
    if metric not in df or not len(df):
        return []
    vals = pd.to_numeric(df[metric], errors="coerce")
    return ordered_methods(df.loc[np.isfinite(vals), "method"].unique())


def fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def fmt_time(t: float) -> str:
    """A GD time for a label: 3e+04 -> '3e4', 1 -> '1'."""
    if not np.isfinite(t):
        return "never"
    s = f"{t:.2g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def diverged_lines(df: pd.DataFrame, methods=None) -> list[str]:
    """A footnote on the diverged rows left out (by method), or no line if there are none."""
    if methods is not None:
        df = df[df["method"].isin(methods)]
    div = diverged_mask(df)
    if not div.any():
        return []
    counts = df[div].groupby("method").size()
    parts = ", ".join(f"{method_name(m)}: {int(counts[m])}" for m in ordered_methods(counts.index))
    return [f"Diverged runs left out of all means and CIs: {int(div.sum())} ({parts})."]


def diverged_note(fig, df: pd.DataFrame, methods=None, extra=()) -> None:
    """Footnotes under the figure: the diverged rows left out (by method), if any, and `extra` lines."""
    below(fig, notes=[*diverged_lines(df, methods), *extra])


LEGEND_SIZE, NOTE_SIZE = 8, 7.5


def below(fig, handles=(), notes=(), ncol: int = 1) -> None:
    """A legend and footnotes under the axes of a constrained-layout figure.

    The figure grows by the height they need and the layout keeps the axes above them, so that
    neither covers data nor each other (constrained layout's own 'outside' legend overlaps a
    multi-line supxlabel)."""
    handles = list(handles)
    notes = [n for n in notes if n]
    if not handles and not notes:
        return
    w, h = fig.get_size_inches()
    rows = -(-len(handles) // ncol) if handles else 0
    leg_h = rows * LEGEND_SIZE * 1.55 / 72 + (0.12 if rows else 0)
    note_h = len(notes) * NOTE_SIZE * 1.3 / 72 + (0.08 if notes else 0)
    extra = leg_h + note_h
    fig.set_size_inches(w, h + extra)
    frac = extra / (h + extra)
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, frac, 1, 1 - frac))
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, frac), ncol=ncol,
                   fontsize=LEGEND_SIZE, handlelength=2.2, columnspacing=1.5, borderaxespad=0.2)
    if notes:
        fig.text(0.5, 0.04 / (h + extra), "\n".join(notes),
                 ha="center", va="bottom", fontsize=NOTE_SIZE, color=NOTE_COLOUR)


def footnote(fig, lines) -> None:
    """Lines of small print under the figure."""
    below(fig, notes=lines)


def strip_ci(ax, x: float, values, colour: str, marker: str = "o", width: float = 0.28,
             rng=None, label=None, bounds=(0.0, 1.0)) -> None:
    """Jittered points (one per seed) plus mean and 95% CI (clipped to `bounds`) at position x."""
    vals = np.asarray(values, float)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return
    rng = rng if rng is not None else np.random.default_rng(0)
    jitter = rng.uniform(-width / 2, width / 2, vals.size)
    ax.scatter(x + jitter, vals, s=8, color=colour, alpha=min(0.6, max(0.12, 8 / vals.size)),
               linewidths=0, zorder=2)
    m, lo, hi = mean_ci(vals, bounds=bounds)
    err = np.clip(np.nan_to_num([[m - lo], [hi - m]]), 0, None)
    ax.errorbar([x], [m], yerr=err, fmt=marker, color="black", mfc=colour, mec="black", ms=6,
                capsize=3, elinewidth=1.1, zorder=3, label=label)


def no_data(ax, text="no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
