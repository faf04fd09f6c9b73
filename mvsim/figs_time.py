"""Figures over GD time (log x): `time.png` (the picture) and `trajectories.png`.

time.png       (a) share of features captured and (b) single-view test accuracy over GD time for
               SL, MRP and MRP+FT, mean with 95% band over seeds, markers at the checkpoints;
               SL's share of classes with exactly one feature (dashed); SL's lottery window
               [t_fit, t_erode] shaded and MRP's capture time t_cap as a vertical line, each the
               geometric mean over the seeds that reached it (`mvsim.windows.windows`).
trajectories.png  Lambda_{i,l} over GD time for a few classes of one seed, one panel per method.

Both show the reference grid point only (see `Results.ref`). Each method runs on its own clock
from 0: MRP+FT's x is its fine-tuning time (from the latest ft_from). GD times of SL
(cross-entropy) and MRP (squared error) compare only up to the scales of their losses.
Runs that diverged at any checkpoint are left out entirely; checkpoints a run did not reach
(train.max_steps) are left out of that checkpoint's mean.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mvsim.results import Results, n_seeds
from mvsim.tables import latest_ft
from mvsim.windows import windows
from mvsim.stats import diverged_mask, geo_mean, mean_ci
from mvsim.plotstyle import (FEATURE_STYLES, TIME_LABEL, WIDTH, fmt_time, below, method_colour, method_marker,
                             method_name, no_data, time_methods)

RUN = ["seed", "method", "ft_from"]
WINDOW_COLOUR = "#BBBBBB"  # SL's lottery window: neutral, so that SL's own 95% band stays visible


def good_runs(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Rows of the runs (seed, method, ft_from) that never diverged, and the diverged runs per method."""
    if not len(df):
        return df, pd.Series(dtype=int)
    bad = diverged_mask(df).groupby([df[c] for c in RUN], dropna=False).transform("any").astype(bool)
    counts = df[bad].drop_duplicates(RUN).groupby("method").size()
    return df[~bad], counts


def time_rows(res: Results, gp: int) -> tuple[pd.DataFrame, pd.Series, int]:
    """Summary rows at grid point gp for the time figure: SL, MRP, MRP+FT (latest ft_from), runs
    that never diverged, reached checkpoints > 0. Also the diverged runs per method and the count
    of unreached rows left out."""
    s = res.summary
    s = latest_ft(s[(s["grid_point"] == gp) & s["method"].isin(time_methods())])
    s, bad = good_runs(s)
    reached = s["reached"].astype(bool) if "reached" in s else pd.Series(True, s.index)
    unreached = int((~reached & (s["checkpoint"] > 0)).sum())
    return s[reached & (s["checkpoint"] > 0)], bad, unreached


def curve(df: pd.DataFrame, col: str, bounds=(0.0, 1.0)) -> pd.DataFrame:
    """Mean and 95% CI over seeds of `col` per checkpoint: columns t, mean, lo, hi, n."""
    rows = []
    for t, g in df.groupby("checkpoint", sort=True):
        vals = pd.to_numeric(g[col], errors="coerce").to_numpy(float)
        m, lo, hi = mean_ci(vals, bounds=bounds)
        rows.append((float(t), m, lo, hi, int(np.isfinite(vals).sum())))
    out = pd.DataFrame(rows, columns=["t", "mean", "lo", "hi", "n"])
    return out[out["n"] > 0]


def windows_at(res: Results, gp: int) -> pd.DataFrame | None:
    """`mvsim.windows.windows` for grid point gp over runs that never diverged (None if unavailable)."""
    s = res.summary[res.summary["grid_point"] == gp]
    s, _ = good_runs(s)
    if not len(s):
        return None
    L = int(res.point_cfg(gp).data.L)
    w = windows(s.reset_index(drop=True), res.events, L=L)
    if "grid_point" in w:
        w = w[w["grid_point"] == gp]
    return w


def window_marks(w: pd.DataFrame | None) -> dict[str, tuple[float, int, int]]:
    """{t_fit, t_erode, t_cap: (geometric mean over the seeds that reached it, seeds that reached it,
    seeds where it is defined)}. inf (not within the horizon) counts as defined, NaN (the method
    was not run; t_erode: SL never fitted) does not; a time defined for no seed is left out."""
    if w is None or not len(w):
        return {}
    out = {}
    for col in ("t_fit", "t_erode", "t_cap"):
        if col in w:
            vals = pd.to_numeric(w[col], errors="coerce")
            defined = int(vals.notna().sum())
            if defined:
                g, n = geo_mean(vals)
                out[col] = (g, n, defined)
    return out


def _band(ax, c: pd.DataFrame, colour, marker, ls="-", label=None, band=True, ms=3.5):
    if not len(c):
        return
    ax.plot(c["t"], c["mean"], ls=ls, color=colour, marker=marker, ms=ms, mec="none", label=label, zorder=3)
    if band:
        ok = np.isfinite(c["lo"]) & np.isfinite(c["hi"])
        ax.fill_between(c["t"][ok], c["lo"][ok], c["hi"][ok], color=colour, alpha=0.18, lw=0, zorder=2)


def _mark_windows(axes, marks, sl_horizon) -> list:
    """Shade SL's lottery window and draw MRP's t_cap on every axis; return legend handles."""
    handles = []
    fit = marks.get("t_fit")
    if fit and fit[1]:
        ero = marks.get("t_erode", (math.nan, 0, fit[2]))
        end = max(ero[0] if ero[1] else sl_horizon, fit[0])
        for ax in axes:
            ax.axvspan(fit[0], end, color=WINDOW_COLOUR, alpha=0.35, lw=0, zorder=0)
            for x in {fit[0], end}:  # edges, so that a window of zero width still shows
                ax.axvline(x, color="grey", lw=0.7, zorder=0)
        erode = (f"$t_{{erode}}$ {fmt_time(ero[0])} ({ero[1]}/{ero[2]})" if ero[1]
                 else f"the horizon (0/{ero[2]} eroded)")
        handles.append(Patch(color=WINDOW_COLOUR, alpha=0.35, label=(
            f"SL lottery window: $t_{{fit}}$ {fmt_time(fit[0])} ({fit[1]}/{fit[2]} seeds) to {erode}")))
    elif fit:
        handles.append(Patch(color="none", label=f"SL lottery window: SL never fits (0/{fit[2]} seeds)"))
    cap = marks.get("t_cap")
    if cap and cap[1]:
        for ax in axes:
            ax.axvline(cap[0], color=method_colour("mrp"), lw=1.4, ls="-.", zorder=1)
        handles.append(Line2D([], [], color=method_colour("mrp"), lw=1.4, ls="-.", label=(
            f"MRP captures all: $t_{{cap}}$ {fmt_time(cap[0])} ({cap[1]}/{cap[2]} seeds)")))
    elif cap:
        handles.append(Line2D([], [], color="none", label=f"MRP captures all: never (0/{cap[2]} seeds)"))
    return handles


def fig_time(res: Results):
    """The picture: features captured and single-view accuracy over GD time, SL vs MRP vs MRP+FT."""
    gp = res.ref
    s, bad, unreached = time_rows(res, gp)
    methods = [m for m in time_methods() if m in set(s["method"])]
    if not methods:
        return None
    cfg = res.point_cfg(gp)
    k, L = int(cfg.data.k), int(cfg.data.L)
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.5), sharex=True, constrained_layout=True)
    handles, notes = [], []
    ax = axes[0]
    for m in methods:
        rows = s[s["method"] == m]
        _band(ax, curve(rows, "share_features"), method_colour(m), method_marker(m))
        label = method_name(m) + (", x = fine-tuning time" if m == "mrp_ft" else "")
        handles.append(Line2D([], [], color=method_colour(m), marker=method_marker(m), ms=4,
                              label=f"{label} ({n_seeds(rows)} seeds)"))
        if m == "mrp_ft":
            notes.append(f"MRP+FT fine-tunes MRP's encoder from MRP's GD time "
                         f"{fmt_time(float(rows['ft_from'].max()))}; its x is the fine-tuning time.")
    if "sl" in methods:
        _band(ax, curve(s[s["method"] == "sl"], "share_one"), method_colour("sl"), None, ls="--", band=False)
        handles.append(Line2D([], [], color=method_colour("sl"), ls="--",
                              label="SL: classes with exactly one feature / $k$"))
    ax.axhline(1 / L, color="grey", ls=":", lw=0.9, zorder=1)
    ax.text(0.01, 1 / L, f" 1/L = {1 / L:.2g}", transform=ax.get_yaxis_transform(), ha="left",
            va="bottom", fontsize=7.5, color="dimgrey")
    ax.set_ylabel(f"features captured / total ($kL$ = {k * L})")
    ax.set_title("(a) Features captured ($\\Lambda \\geq \\varrho$, detector)")

    ax = axes[1]
    acc = [m for m in methods if np.isfinite(pd.to_numeric(s.loc[s["method"] == m, "acc_single"],
                                                           errors="coerce")).any()]
    for m in acc:
        _band(ax, curve(s[s["method"] == m], "acc_single"), method_colour(m), method_marker(m))
    if not acc:
        no_data(ax, "no single-view accuracy")
    ax.axhline(1 / k, color="grey", ls=":", lw=0.9, zorder=1)
    ax.text(0.99, 1 / k, f"chance 1/k = {1 / k:.2g} ", transform=ax.get_yaxis_transform(), ha="right",
            va="bottom", fontsize=7.5, color="dimgrey")
    ax.set_ylabel("single-view test accuracy")
    ax.set_title("(b) Single-view test accuracy")
    if "mrp" in methods:
        notes.append("MRP alone has no classifier, so no accuracy in (b).")

    sl_h = float(s.loc[s["method"] == "sl", "checkpoint"].max()) if "sl" in methods else float(
        s["checkpoint"].max())
    w = windows_at(res, gp)
    if w is None:
        notes.append("SL's lottery window and MRP's t_cap not drawn: mvsim.windows.windows unavailable.")
    else:
        notes.append("Marked GD times: geometric mean over the seeds that reached them.")
    handles += _mark_windows(axes, window_marks(w), sl_h)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel(TIME_LABEL)
    fig.suptitle(f"Features and single-view accuracy over GD time: mean, 95% band over seeds\n"
                 f"GD times of SL (cross-entropy) and MRP (squared error) compare only up to loss scales"
                 f"{res.where(gp)}",
                 fontsize=9.5)
    if len(bad):
        notes.append("Diverged runs left out: " + ", ".join(f"{method_name(m)}: {int(n)}" for m, n in bad.items())
                     + ".")
    if unreached:
        notes.append(f"{unreached} checkpoints not reached within train.max_steps left out.")
    below(fig, handles, notes, ncol=2)
    return fig


# ---------------------------------------------------------------- trajectories


def _panel(ax, table: pd.DataFrame, classes, floor, cmap) -> int:
    """Lambda over gd_time of `classes` (colour) and features (line style); returns the clipped count."""
    clipped = 0
    t = table[table["gd_time"] > 0]
    for (i, l), g in t.groupby(["cls", "feature"]):
        if int(i) not in classes:
            continue
        g = g.sort_values("gd_time").drop_duplicates("gd_time")
        y = g["lam"].to_numpy(float)
        if floor is not None:
            clipped += int((y < floor).sum())
            y = np.maximum(y, floor)
        ax.plot(g["gd_time"], y, color=cmap(classes.index(int(i))), lw=1.3, alpha=0.95,
                ls=FEATURE_STYLES[int(l) % len(FEATURE_STYLES)])
    return clipped


def fig_trajectories(res: Results, n_classes: int = 4):
    """Lambda_{i,l} over GD time for the first few classes of the first seed with no diverged run."""
    f = res.features
    if not len(f):
        return None
    gp = res.ref
    f = latest_ft(f[(f["grid_point"] == gp) & (f["gd_time"] > 0)])
    if not len(f):
        return None
    s = res.summary[res.summary["grid_point"] == gp]
    bad = set(s.loc[diverged_mask(s), "seed"].tolist())
    good = sorted(set(f["seed"].unique().tolist()) - bad)
    seed = int(good[0] if good else f["seed"].min())
    f = f[f["seed"] == seed]
    panels = [("sl", "SL (supervised)"), ("mrp", "MRP pretraining"), ("mrp_ft", "MRP+FT: fine-tuning")]
    if not any(len(f[f["method"] == m]) for m, _ in panels):
        return None
    cfg = res.point_cfg(gp)
    thr = res.threshold(gp)
    varrho = float(cfg.net.varrho)
    classes = sorted(int(c) for c in f["cls"].unique())[:n_classes]
    L = int(f["feature"].max()) + 1
    lam = f.loc[f["cls"].isin(classes), "lam"].to_numpy(float)
    lam = lam[np.isfinite(lam)]
    positive = lam[lam > 0]
    floor = max(float(positive.min()) / 2, 0.2 * float(np.quantile(positive, 0.02))) if positive.size else None
    top = max(float(lam.max()) if lam.size else thr, thr)
    cmap = plt.get_cmap("tab10")

    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 3.0), sharey=True, constrained_layout=True)
    clipped = 0
    for ax, (m, title) in zip(axes, panels):
        part = f[f["method"] == m]
        if not len(part):
            no_data(ax, f"no {method_name(m)} trajectory")
            ax.set_title(title)
            continue
        clipped += _panel(ax, part, classes, floor, cmap)
        ax.axhline(varrho, color="black", ls="--", lw=0.9, zorder=1)
        if not math.isclose(thr, varrho):
            ax.axhline(thr, color="grey", ls="--", lw=0.9, zorder=1)
        if m == "mrp_ft":
            title += f"\n(from MRP at GD time {fmt_time(float(part['ft_from'].max()))})"
        ax.set_title(title)
        ax.set_xscale("log")
        ax.set_xlabel(TIME_LABEL)
        ax.tick_params(labelleft=True)
        if floor is not None:
            ax.set_yscale("log")
            ax.set_ylim(floor / 1.3, top * 1.6)
    axes[0].set_ylabel("$\\Lambda_{i,l}(t)=\\max_r\\,\\langle w_r(t), v_{i,l}\\rangle$")

    handles = [Line2D([], [], color=cmap(j), lw=1.8, label=f"class {c + 1}") for j, c in enumerate(classes)]
    handles += [Line2D([], [], color="black", lw=1.2, ls=FEATURE_STYLES[l % len(FEATURE_STYLES)],
                       label=f"feature $l$ = {l + 1}") for l in range(L)]
    handles.append(Line2D([], [], color="black", ls="--", lw=0.9, label=f"$\\varrho$ = {varrho:g}"))
    if not math.isclose(thr, varrho):
        handles.append(Line2D([], [], color="grey", ls="--", lw=0.9, label=f"capture threshold {thr:g}"))
    k = int(cfg.data.k)
    shown = f"classes 1-{len(classes)} of {k}" if len(classes) < k else f"all {k} classes"
    flag = f" (seed {sorted(bad)[0]} diverged)" if bad and not good else ""
    fig.suptitle(f"Feature correlations over GD time, seed {seed}{flag}, {shown}{res.where(gp)}")
    note = (f"{clipped} values of $\\Lambda$ below {floor:.2g} (e.g. zero or negative) are drawn at "
            f"{floor:.2g} (log scale)." if clipped else "")
    below(fig, handles, [note], ncol=len(handles))
    return fig
