"""Shared loading and formatting for the docs scripts (run from the repository root after the sweeps).

Every number is read on the GD clock: `gd_time` (the sum of step sizes), a method's end-of-training
row is `mvsim.tables.last`, and the windows (t_fit, t_erode, t_cap) are `mvsim.windows.windows`.
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

from mvsim import claims, predictions, store, tables, windows  # noqa: E402,F401
from mvsim import plotstyle, results, stats  # noqa: E402

plt.rcParams.update(plotstyle.STYLE)
R = ROOT / "results" / "studies"
FIG = ROOT / "docs" / "figures"


def study(name):
    """A study's results (mvsim.results.Results: summary, features, events, config, grid)."""
    return results.load_results(R / name)


def fmt(m, lo=math.nan, hi=math.nan, d=2):
    """'m [lo, hi]' (or 'm' when the interval is undefined)."""
    if m is None or not np.isfinite(m):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{m:.{d}f}"
    return f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def fmt_mean(values, d=2, bounds=None):
    """Mean over seeds with its 95% Student-t interval."""
    return fmt(*stats.mean_ci(values, bounds=bounds), d=d)


def fmt_time(times):
    """Geometric mean of GD times with its 95% interval over seeds, and how many are inf."""
    m, lo, hi, n_inf, n = stats.geometric_mean_ci(times)
    if not np.isfinite(m):
        return f"inf ({n_inf}/{n} seeds)" if n_inf else "n/a"
    text = f"{m:.2g}" + (f" [{lo:.2g}, {hi:.2g}]" if np.isfinite(lo) else "")
    return text + (f"; inf in {n_inf}/{n}" if n_inf else "")


def to_md(df):
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(out)


def hitting_at_line(features, method, threshold):
    """Per (seed, cls, feature) of `method`: lam_init, t_hit and winner at any line `threshold`, read from
    the checkpoints (interpolated in log-log between the last one below and the first at or above). The
    events table times the capture line itself at step resolution (`windows.hitting_times`); this reading
    serves the other lines (0.2, 0.5 varrho), at checkpoint resolution."""
    keys = ["seed", "cls", "feature"]
    f = features[features["method"] == method].sort_values(keys + ["gd_time"], kind="stable")
    rows = []
    for key, g in f.groupby(keys, sort=True):
        t, lam = g["gd_time"].to_numpy(float), g["lam"].to_numpy(float)
        above = np.flatnonzero(lam >= threshold)
        hit = np.inf
        if above.size:
            i = above[0]
            hit = t[i]
            if i > 0 and t[i - 1] > 0 and lam[i - 1] > 0:
                frac = np.log(threshold / lam[i - 1]) / np.log(lam[i] / lam[i - 1])
                hit = float(np.exp(np.log(t[i - 1]) + frac * np.log(t[i] / t[i - 1])))
        rows.append((*key, float(lam[0]), hit))
    out = pd.DataFrame(rows, columns=keys + ["lam_init", "t_hit"])
    rank = out.groupby(["seed", "cls"])["t_hit"].rank(method="first")
    out["winner"] = (rank == 1) & np.isfinite(out["t_hit"])
    return out


def race_at_line(features, method, threshold, q, winners=False):
    """`windows.race_law`'s fit (bootstrap over seeds) on `hitting_at_line`'s times."""
    from mvsim.stats import bootstrap_slope

    hits = hitting_at_line(features, method, threshold)
    used = hits[hits["winner"]] if winners else hits
    used = used[np.isfinite(used["t_hit"]) & (used["t_hit"] > 0) & (used["lam_init"] > 0)]
    b, lo, hi = bootstrap_slope(np.log(used["lam_init"]), np.log(used["t_hit"]), used["seed"].to_numpy())
    expected = -(q - 2) if method == "sl" else -(2 * q - 2)
    return dict(b=b, ci=(lo, hi), n=len(used), censored=int(np.isinf(hits["t_hit"]).sum()),
                seeds=int(used["seed"].nunique()), expected=expected)
