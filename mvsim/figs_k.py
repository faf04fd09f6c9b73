"""Figures of the claims against k (from `mvsim.scaling.points` tables).

k_claims.png      (a) SL's window [t_fit, t_erode] and MRP's t_cap against k (GD time, log-log),
                  (b) SL at its fit: share of classes with exactly one feature, lottery agreement and
                  single-view accuracy (theory: 1, 1 and 1/2), (c) at the horizons: shares of features
                  of SL, MRP and MRP+FT and single-view accuracy of SL and MRP+FT, (d) the share of
                  seeds where MRP captures inside SL's window (t_cap <= t_erode).
k_window_map.png  one panel per q: log10(t_cap / t_erode) over (k, sigma_0), each cell annotated with
                  it and the share of ordered seeds (negative: MRP captures inside SL's window).

Means with 95% intervals over seeds; times are geometric means over the seeds where they are
finite, with a triangle at the horizon where no seed reached them. GD times of SL and MRP
compare only up to the scales of their losses.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvsim.plotstyle import STYLE, WIDTH, method_colour

TIME_STYLE = {"t_fit": ("SL fits (t_fit)", method_colour("sl"), "o", "--"),
              "t_erode": ("SL's window ends (t_erode)", method_colour("sl"), "v", "-"),
              "t_cap": ("MRP captures 95% (t_cap)", method_colour("mrp"), "s", "-")}
SL_AT_FIT = {"sl_one_at_fit": ("one feature per class", "o", "-"),
             "agreement_at_fit": ("lottery agreement", "D", "--"),
             "acc_single_at_fit": ("single-view accuracy", "^", ":")}
AT_HORIZON = {"sl_features": ("SL features", "sl", "o", "-"), "mrp_features": ("MRP features", "mrp", "s", "-"),
              "ft_features": ("MRP+FT features", "mrp_ft", "^", "-"),
              "sl_single": ("SL single-view acc.", "sl", "o", ":"),
              "ft_single": ("MRP+FT single-view acc.", "mrp_ft", "^", ":")}


def _errorbar(ax, x, p: pd.DataFrame, col: str, colour, marker, ls, label):
    y, lo, hi = (p[c].to_numpy(float) for c in (col, f"{col}_lo", f"{col}_hi"))
    err = np.vstack([np.where(np.isnan(lo), 0, y - lo), np.where(np.isnan(hi), 0, hi - y)])
    ax.errorbar(x, y, yerr=err, color=colour, marker=marker, ls=ls, ms=4, capsize=2, label=label)


def _times(ax, p: pd.DataFrame):
    x = p["k"].to_numpy(float)
    for t, (label, colour, marker, ls) in TIME_STYLE.items():
        _errorbar(ax, x, p, t, colour, marker, ls, label)
        none = p[p[t].isna() & (p[f"{t}_inf"] > 0)]
        ax.scatter(none["k"], none["horizon"], marker="^", facecolors="none", edgecolors=colour, s=30)
    top = np.nanmax(p[["t_fit", "t_erode", "t_cap", "horizon"]].to_numpy(float))
    ax.set(xscale="log", yscale="log", xlabel="k (classes)", ylabel="GD time",
           title="(a) SL's window and MRP's capture time")
    ax.set_ylim(top=top * 1e4)  # room for the legend above the data
    ax.legend(loc="upper left", fontsize=7)


def _sl_at_fit(ax, p: pd.DataFrame):
    x = p["k"].to_numpy(float)
    for col, (label, marker, ls) in SL_AT_FIT.items():
        _errorbar(ax, x, p, col, method_colour("sl"), marker, ls, label)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(xscale="log", ylim=(0, 1.05), xlabel="k (classes)", title="(b) SL at its fit t_fit")
    ax.legend(loc="lower left")


def _at_horizon(ax, p: pd.DataFrame):
    x = p["k"].to_numpy(float)
    for col, (label, method, marker, ls) in AT_HORIZON.items():
        _errorbar(ax, x, p, col, method_colour(method), marker, ls, label)
    ax.set(xscale="log", ylim=(0, 1.05), xlabel="k (classes)", title="(c) each method at its horizon")
    ax.legend(loc="lower left", ncol=2)


def _ordered(ax, p: pd.DataFrame):
    x = p["k"].to_numpy(float)
    _errorbar(ax, x, p, "ordered", method_colour("mrp"), "s", "-", "t_cap <= t_erode")
    _errorbar(ax, x, p, "sl_one_at_cap", method_colour("sl"), "o", "--", "SL: one feature per class at t_cap")
    ax.set(xscale="log", ylim=(-0.03, 1.05), xlabel="k (classes)", ylabel="share",
           title="(d) MRP done inside SL's window?")
    ax.legend(loc="upper left")


def fig_claims(p: pd.DataFrame):
    p = p.sort_values("k")
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 5.6), constrained_layout=True)
    _times(axes[0, 0], p)
    _sl_at_fit(axes[0, 1], p)
    _at_horizon(axes[1, 0], p)
    _ordered(axes[1, 1], p)
    for ax in axes.flat:
        ax.set_xticks(sorted(set(p["k"])))
        ax.set_xticklabels([str(k) for k in sorted(set(p["k"]))])
        ax.minorticks_off()
    fig.suptitle(f"The claims as k grows ({int(p['seeds'].min())}-{int(p['seeds'].max())} seeds per k, "
                 "95% intervals)\nGD times of SL and MRP compare only up to the scales of their losses",
                 fontsize=9)
    return fig


def _cell_value(row) -> float:
    """log10(t_cap / t_erode) of a point, or +/-inf when one of them is never within the horizon."""
    if row["t_cap_inf"] == row["seeds"]:
        return math.inf
    if row["t_erode_inf"] == row["seeds"]:
        return -math.inf
    return math.log10(row["cap_over_erode"]) if row["cap_over_erode"] > 0 else math.nan


def fig_map(p: pd.DataFrame):
    p = p.sort_values("seeds", ascending=False).drop_duplicates(["k", "q", "sigma_0"])  # one run per cell
    qs = sorted(set(p["q"]))
    fig, axes = plt.subplots(1, len(qs), figsize=(WIDTH, 2.9), constrained_layout=True, squeeze=False)
    ks, sigmas = sorted(set(p["k"])), sorted(set(p["sigma_0"]))
    for ax, q in zip(axes[0], qs):
        z = np.full((len(sigmas), len(ks)), np.nan)
        for _, row in p[p["q"] == q].iterrows():
            i, j = sigmas.index(row["sigma_0"]), ks.index(row["k"])
            v = _cell_value(row)
            z[i, j] = np.clip(v, -4, 4) if not math.isnan(v) else np.nan
            text = ("never caps" if v == math.inf else "window open" if v == -math.inf
                    else "t_erode unknown" if math.isnan(v) else f"{v:+.1f}")
            order = "order unknown" if math.isnan(row["ordered"]) else f"{row['ordered']:.0%} ordered"
            ax.text(j, i, f"{text}\n{order}\n({row['seeds']} seeds)", ha="center", va="center", fontsize=7)
        im = ax.imshow(z, cmap="RdBu_r", vmin=-4, vmax=4, origin="lower", aspect="auto")
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set_yticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
        ax.set(xlabel="k (classes)", ylabel="sigma_0", title=f"q = {q}: log10(t_cap / t_erode)")
        ax.grid(False)
    fig.colorbar(im, ax=axes[0, -1], label="< 0: MRP inside SL's window")
    return fig


def write_all(out, study: pd.DataFrame, mapped: pd.DataFrame | None, pdf: bool = False) -> list[Path]:
    out = Path(out)
    written = []
    todo = [("k_claims", fig_claims, study)] + ([("k_window_map", fig_map, mapped)] if mapped is not None
                                                and len(mapped) else [])
    with plt.rc_context(STYLE):
        for stem, make, table in todo:
            fig = make(table)
            try:
                for ext in ("png", "pdf") if pdf else ("png",):
                    fig.savefig(out / f"{stem}.{ext}")
                    written.append(out / f"{stem}.{ext}")
            finally:
                plt.close(fig)
    return written
