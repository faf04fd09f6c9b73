"""Shared loading and formatting for the docs scripts (run from the repository root after the sweeps).

Every number is read on the GD clock: `gd_time` (the sum of step sizes), a method's end-of-training
row is `mvsim.tables.last`, and the windows (t_fit, t_erode, t_cap) are `mvsim.claims.windows`.
"""
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mvsim import claims, store, tables  # noqa: E402,F401
from mvsim import plots as P  # noqa: E402

plt.rcParams.update(P.STYLE)
R = ROOT / "results" / "studies"
FIG = ROOT / "docs" / "figures"


def study(name):
    """A study's results (mvsim.plots.Results: summary, features, config, grid)."""
    return P.load_results(R / name)


def fmt(m, lo=math.nan, hi=math.nan, d=2):
    """'m [lo, hi]' (or 'm' when the interval is undefined)."""
    if m is None or not np.isfinite(m):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{m:.{d}f}"
    return f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def fmt_mean(values, d=2, bounds=None):
    """Mean over seeds with its 95% Student-t interval."""
    return fmt(*P.mean_ci(values, bounds=bounds), d=d)


def fmt_time(times):
    """Geometric mean of GD times with its 95% interval over seeds, and how many are inf."""
    m, lo, hi, n_inf, n = claims.geometric_mean_ci(times)
    if not np.isfinite(m):
        return f"inf ({n_inf}/{n} seeds)" if n_inf else "n/a"
    text = f"{m:.2g}" + (f" [{lo:.2g}, {hi:.2g}]" if np.isfinite(lo) else "")
    return text + (f"; inf in {n_inf}/{n}" if n_inf else "")


def to_md(df):
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(out)
