"""Sweep figures from each method's row at its horizon (`Results.last`).

grid_<key>.png        one grid key: the main metrics against it, mean and 95% CI over seeds
grid_<k1>_<k2>.png    two or more grid keys: heatmaps over the first two (mean over the rest)

Diverged rows are left out of every mean and interval.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvsim.results import Results, py
from mvsim.stats import aggregate, diverged_mask
from mvsim.plotstyle import (WIDTH, diverged_note, fmt, method_colour, method_marker, method_name,
                             methods_with, no_data)


def _numeric(values) -> bool:
    return all(isinstance(py(v), (int, float)) and not isinstance(py(v), bool) for v in values)


def fig_grid_1d(res: Results, key: str):
    """One grid key: captured shares, SL lottery agreement and accuracies (at the horizon) against it."""
    s = res.last
    values = sorted(s[key].dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    numeric = _numeric(values)
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    fl = [float(v) for v in values] if numeric else []
    logx = numeric and min(fl) > 0 and max(fl) / min(fl) >= 20
    span = (math.log10(max(pos.values()) / min(pos.values())) if logx
            else (max(pos.values()) - min(pos.values())) or 1.0)
    panels = [
        ("share_features", methods_with(s, "share_features"), "share of features captured",
         "Features captured ($\\Lambda \\geq \\varrho$ and detector)"),
        ("lottery_agreement", [m for m in ("sl",) if m in methods_with(s, "lottery_agreement")],
         "share of classes", "SL lottery agreement\n(final winner = initial leader)"),
        ("acc_single", methods_with(s, "acc_single"), "accuracy", "Single-view test accuracy"),
        ("acc_multi", methods_with(s, "acc_multi"), "accuracy", "Multi-view test accuracy"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 5.4), constrained_layout=True)
    for ax, (col, methods, ylabel, title) in zip(axes.ravel(), panels):
        if not methods:
            no_data(ax, f"no {col}")
            ax.set_title(title)
            continue
        agg = aggregate(s[s["method"].isin(methods)], col, by=["method", key], bounds=(0.0, 1.0))
        for j, m in enumerate(methods):
            a = agg[agg["method"] == m]
            a = a.assign(x=a[key].map(pos)).sort_values("x")
            x = a["x"].to_numpy(float)
            shift = (j - (len(methods) - 1) / 2) * 0.012 * span  # dodge so that equal values stay visible
            x = x * 10**shift if logx else x + shift
            err = np.clip(np.nan_to_num([a["mean"] - a["lo"], a["hi"] - a["mean"]]), 0, None)
            ax.errorbar(x, a["mean"], yerr=err, fmt=method_marker(m) + "-", color=method_colour(m),
                        ms=4.5, capsize=2.5, lw=1.2, label=method_name(m))
        if logx:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(values)), [fmt(v) for v in values])
            ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="best", fontsize=7.5)
    ok = s[~diverged_mask(s)]
    n = ok.groupby(key)["seed"].nunique()
    nseeds = f"{n.min()}" if len(n) and n.min() == n.max() else (f"{n.min()}-{n.max()}" if len(n) else "0")
    fig.suptitle(f"Sweep over {key}, each method at its horizon: mean and 95% CI over {nseeds} seeds per value")
    diverged_note(fig, s)
    return fig


def _heat(ax, table: pd.DataFrame, title: str, cmap, vmin, vmax, fmt_cell="{:.2f}"):
    """One heatmap (rows: table.index, columns: table.columns) with its colour bar and cell values."""
    data = table.to_numpy(float)
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(table.shape[1]), [fmt(py(v)) for v in table.columns], rotation=0)
    ax.set_yticks(range(table.shape[0]), [fmt(py(v)) for v in table.index])
    ax.grid(False)
    ax.set_title(title)
    if data.size <= 100:
        for (r, c), v in np.ndenumerate(data):
            if not np.isfinite(v):
                ax.text(c, r, "no data", ha="center", va="center", fontsize=7, color="grey")
            else:
                rgba = im.cmap(im.norm(v))
                light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
                ax.text(c, r, fmt_cell.format(v), ha="center", va="center",
                        fontsize=8 if data.size <= 36 else 6, color="black" if light else "white")
    plt.colorbar(im, ax=ax, shrink=0.9)


def grid_tables(res: Results, k1: str, k2: str) -> dict[str, pd.DataFrame]:
    """Heatmap tables (rows: k2 values, columns: k1 values), means over seeds and other grid keys,
    from each method's row at its horizon.

    Diverged rows are left out; the single-view gap is paired by (grid point, seed).
    """
    s = res.last[~diverged_mask(res.last)]
    out = {}

    def table(rows, col):
        if not len(rows):
            return None
        t = rows.pivot_table(index=k2, columns=k1, values=col, aggfunc="mean")
        return t.sort_index().sort_index(axis=1)

    sl, ft = s[s["method"] == "sl"], s[s["method"] == "mrp_ft"]
    if len(sl) and len(ft):
        both = sl.merge(ft, on=["grid_point", "seed", k1, k2], suffixes=("_sl", "_ft"))
        both["gap"] = both["acc_single_ft"] - both["acc_single_sl"]
        out["gap"] = table(both, "gap")
    out["sl_features"] = table(sl, "share_features")
    out["mrp_features"] = table(s[s["method"] == "mrp"], "share_features")
    out["sl_lottery"] = table(sl, "lottery_agreement")
    return {k: v for k, v in out.items() if v is not None and v.notna().to_numpy().any()}


def fig_grid_2d(res: Results, k1: str, k2: str, rest: list[str]):
    """Two grid keys: heatmaps of the single-view accuracy gap, captured shares and SL lottery."""
    tabs = grid_tables(res, k1, k2)
    if not tabs:
        return None
    specs = {
        "gap": ("Single-view accuracy gap\nMRP+FT $-$ SL", "RdBu", None),
        "sl_features": ("SL: share of features captured", "viridis", (0, 1)),
        "mrp_features": ("MRP (pretrained):\nshare of features captured", "viridis", (0, 1)),
        "sl_lottery": ("SL lottery agreement", "viridis", (0, 1)),
    }
    names = [n for n in specs if n in tabs]
    ncol = 2 if len(names) > 1 else 1
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(WIDTH if ncol == 2 else 3.8, 2.9 * nrow + 0.5),
                             constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), names):
        title, cmap, lim = specs[name]
        t = tabs[name]
        if lim is None:
            a = float(np.nanmax(np.abs(t.to_numpy(float)))) or 1.0
            lim = (-a, a)
        _heat(ax, t, title, cmap, *lim, fmt_cell="{:+.2f}" if name == "gap" else "{:.2f}")
        ax.set_xlabel(k1)
        ax.set_ylabel(k2)
    note = f"; averaged over {', '.join(rest)}" if rest else ""
    fig.suptitle(f"Sweep over {k1} $\\times$ {k2}, each method at its horizon: means over seeds{note}")
    diverged_note(fig, res.last)
    return fig
