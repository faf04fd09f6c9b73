"""End-of-training figures: every method at its horizon (`Results.last`, i.e. `mvsim.tables.last`).

features_captured.png  share of features captured, classes with all / exactly one captured
lottery.png            SL: initial gap between a class's features vs the gap at the horizon
accuracy.png           train / multi-view / single-view / test accuracy per method, 95% CI

Each shows the reference grid point (`Results.ref`). Diverged rows are left out of every mean
and interval, and each figure says how many were left out.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from mvsim.results import Results, n_seeds
from mvsim.stats import diverged_mask, mean_ci, wilson_ci
from mvsim.plotstyle import (WIDTH, below, diverged_lines, diverged_note, fmt_time, method_colour, method_marker,
                             method_name, methods_with, ordered_methods, strip_ci)

ACC_COLUMNS = [("acc_train", "train"), ("acc_multi", "test:\nmulti-view"),
               ("acc_single", "test:\nsingle-view"), ("acc_test", "test\n(mix, $\\mu$)")]


def _horizons(s: pd.DataFrame) -> str:
    """'GD time 1e10' when every method stops there, else 'GD time: sl 1e4, mrp 1e5, mrp_ft 1e3'."""
    h = s.groupby("method")["checkpoint"].max()
    if h.nunique() == 1:
        return f"GD time {fmt_time(float(h.iloc[0]))}"
    return "GD time: " + ", ".join(f"{m} {fmt_time(float(h[m]))}" for m in ordered_methods(h.index))


def fig_features_captured(res: Results):
    """Share of features captured per method at its horizon, and classes with all / exactly one captured."""
    gp = res.ref
    s = res.last[res.last["grid_point"] == gp]
    methods = methods_with(s, "share_features")
    if not methods:
        return None
    ok = s[~diverged_mask(s)]
    L = int(res.L_of(s).iloc[0])
    k = int(res.k_of(s).iloc[0])
    panels = [("share_features", f"share of the $kL$ = {k * L} features", "Features captured"),
              ("share_all", f"share of the $k$ = {k} classes",
               "Classes: both captured" if L == 2 else f"Classes: all {L} captured"),
              ("share_one", f"share of the $k$ = {k} classes", "Classes: exactly one")]
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 3.0), constrained_layout=True)
    rng = np.random.default_rng(0)
    for ax, (col, ylabel, title) in zip(axes, panels):
        for x, m in enumerate(methods):
            strip_ci(ax, x, ok.loc[ok["method"] == m, col], method_colour(m), method_marker(m), rng=rng)
        ax.set_xticks(range(len(methods)), [method_name(m).replace(" (", "\n(") for m in methods])
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylim(-0.04, 1.04)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="x", visible=False)
    axes[0].axhline(1 / L, color="grey", ls=":", lw=0.9)
    axes[0].text(len(methods) - 0.45, 1 / L, "one per class", ha="right", va="bottom", fontsize=7.5,
                 color="dimgrey")
    thr = res.threshold(gp)
    fig.suptitle(f"Features captured ($\\Lambda_{{i,l}} \\geq$ {thr:g}, detector) at each method's horizon"
                 f"\n{_horizons(s)}; dots = seeds ({n_seeds(ok)}), marker = mean with 95% CI{res.where(gp)}")
    diverged_note(fig, s, methods)
    return fig


def lottery_table(res: Results, gp: int | None = None) -> pd.DataFrame:
    """SL, per (seed, class): winner (feature largest at the horizon), initial and final gaps, agreement.

    init_gap = Lambda_{i,w}(0) - max_{l != w} Lambda_{i,l}(0) with w the final winner (so it is
    positive when the initial leader won); final_gap the same at SL's horizon (>= 0).
    Seeds whose SL run diverged are left out.
    """
    gp = res.ref if gp is None else gp
    cols = ["seed", "cls", "winner", "init_leader", "init_gap", "final_gap", "agree"]
    f = res.features
    if not len(f):
        return pd.DataFrame(columns=cols)
    f = f[(f["grid_point"] == gp) & (f["method"] == "sl")]
    s = res.summary[(res.summary["grid_point"] == gp) & (res.summary["method"] == "sl")]
    bad = set(s.loc[diverged_mask(s), "seed"].tolist())
    f = f[~f["seed"].isin(bad)]
    if not len(f):
        return pd.DataFrame(columns=cols)
    end = f[f["checkpoint"] == f.groupby("seed")["checkpoint"].transform("max")]
    fin = end.pivot_table(index=["seed", "cls"], columns="feature", values="lam", aggfunc="first")
    ini = end.pivot_table(index=["seed", "cls"], columns="feature", values="lam_init", aggfunc="first")
    ini = ini.reindex(index=fin.index, columns=fin.columns)
    idx = fin.index
    fin, ini = fin.to_numpy(float), ini.to_numpy(float)
    ok = np.isfinite(fin).all(axis=1) & np.isfinite(ini).all(axis=1)
    fin, ini, idx = fin[ok], ini[ok], idx[ok]
    if not len(fin):
        return pd.DataFrame(columns=cols)
    rows = np.arange(len(fin))
    w = fin.argmax(axis=1)
    lead = ini.argmax(axis=1)

    def gap(a, ref):
        others = a.copy()
        others[rows, ref] = -np.inf
        return a[rows, ref] - others.max(axis=1)

    return pd.DataFrame({
        "seed": idx.get_level_values(0).to_numpy(), "cls": idx.get_level_values(1).to_numpy(),
        "winner": w, "init_leader": lead, "init_gap": gap(ini, w), "final_gap": gap(fin, w),
        "agree": w == lead,
    })


def fig_lottery(res: Results):
    """SL lottery: initial gap of the feature SL ends with vs its final gap, and agreement vs gap."""
    gp = res.ref
    t = lottery_table(res, gp)
    if not len(t):
        return None
    cfg = res.point_cfg(gp)
    s = res.last[(res.last["grid_point"] == gp) & (res.last["method"] == "sl")]
    per_seed = t.groupby("seed")["agree"].mean()
    m, lo, hi = mean_ci(per_seed.to_numpy(float), bounds=(0.0, 1.0))
    ci = f" [{lo:.0%}, {hi:.0%}]" if np.isfinite(lo) else ""

    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.3), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1.35, 1]})
    sigma0 = float(cfg.net.sigma_0)
    ax = axes[0]
    alpha = min(0.8, max(0.15, 40 / len(t) ** 0.5 / 2))
    for agree, colour, label in [(True, "#0072B2", "initial leader won"),
                                 (False, "#D55E00", "initial leader lost")]:
        sub = t[t["agree"] == agree]
        ax.scatter(sub["init_gap"] / sigma0, sub["final_gap"], s=12, color=colour, alpha=alpha, linewidths=0,
                   label=f"{label} ({len(sub)} of {len(t)})")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("initial gap $(\\Lambda_{i,w}(0) - \\max_{l\\neq w}\\Lambda_{i,l}(0))\\,/\\,\\sigma_0$\n"
                  "($w$ = feature with the largest $\\Lambda$ at the horizon)")
    ax.set_ylabel("final gap $\\Lambda_{i,w}(T) - \\max_{l\\neq w}\\Lambda_{i,l}(T)$")
    ax.set_title("Each dot: one class of one seed")
    leg = ax.legend(loc="best", markerscale=1.6, handletextpad=0.3, frameon=True, framealpha=0.9,
                    edgecolor="none")
    for h in leg.legend_handles:
        h.set_alpha(1)

    # Agreement against the size of the initial lead, in units of sigma_0 (binned by quantile).
    ax = axes[1]
    gap = t["init_gap"].abs().to_numpy(float) / sigma0
    agree = t["agree"].to_numpy(bool)
    nb = int(min(6, max(1, len(t) // 15)))
    edges = np.unique(np.quantile(gap, np.linspace(0, 1, nb + 1)))
    if edges.size >= 2:
        which = np.clip(np.searchsorted(edges, gap, side="right") - 1, 0, edges.size - 2)
        xs, ms, los, his = [], [], [], []
        for b in range(edges.size - 1):
            sel = which == b
            if not sel.any():
                continue
            p, plo, phi = wilson_ci(int(agree[sel].sum()), int(sel.sum()))
            xs.append(float(np.median(gap[sel])))
            ms.append(p)
            los.append(max(p - plo, 0.0))
            his.append(max(phi - p, 0.0))
        ax.errorbar(xs, ms, yerr=[los, his], fmt="o-", color=method_colour("sl"), capsize=3, ms=4)
    ax.axhline(1 / cfg.data.L, color="grey", ls=":", lw=0.9)
    ax.text(ax.get_xlim()[1], 1 / cfg.data.L, "chance (1/L)", ha="right", va="bottom", fontsize=7.5,
            color="dimgrey")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("|initial gap| / $\\sigma_0$ (bins of equal count)")
    ax.set_ylabel("share where the initial leader won\n(95% Wilson CI)")
    ax.set_title("Agreement vs size of the initial lead")

    horizon = fmt_time(float(s["checkpoint"].max())) if len(s) else "?"
    fig.suptitle(f"SL lottery ticket: at GD time {horizon} the feature largest at initialisation wins\n"
                 f"in {m:.0%}{ci} of classes (mean over {len(per_seed)} seeds with 95% CI){res.where(gp)}")
    diverged_note(fig, s)
    return fig


def fig_accuracy(res: Results):
    """Train, multi-view, single-view and overall test accuracy per classifier at its horizon, 95% CI."""
    gp = res.ref
    s = res.last[res.last["grid_point"] == gp]
    methods = ordered_methods(set().union(*[methods_with(s, c) for c, _ in ACC_COLUMNS]))
    if not methods:
        return None
    ok = s[~diverged_mask(s)]
    k, L = int(res.k_of(s).iloc[0]), int(res.L_of(s).iloc[0])
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 3.4), constrained_layout=True)
    rng = np.random.default_rng(1)
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        rows = ok[ok["method"] == m]
        for g, (col, _) in enumerate(ACC_COLUMNS):
            x = g + (j - (len(methods) - 1) / 2) * width
            strip_ci(ax, x, rows[col], method_colour(m), method_marker(m), width=width * 0.6, rng=rng,
                     label=method_name(m) if g == 0 else None)
    ax.axhline(1 / k, color="grey", ls=":", lw=0.9)
    ax.text(len(ACC_COLUMNS) - 0.5, 1 / k, f"chance (1/k = {1 / k:.2g})", ha="right", va="bottom",
            fontsize=7.5, color="dimgrey")
    g_single = [c for c, _ in ACC_COLUMNS].index("acc_single")
    ax.hlines(1 / L, g_single - 0.45, g_single + 0.45, color=method_colour("sl"), ls="--", lw=0.9)
    ax.text(g_single - 0.45, 1 / L, f"SL theory\n1/L = {1 / L:.2g}", ha="right", va="center", fontsize=7,
            color=method_colour("sl"))
    ax.set_xticks(range(len(ACC_COLUMNS)), [lab for _, lab in ACC_COLUMNS])
    ax.set_xlim(-0.5, len(ACC_COLUMNS) - 0.5)
    ax.set_ylim(-0.02, 1.04)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("accuracy")
    handles = [Line2D([], [], ls="none", marker=method_marker(m), mfc=method_colour(m), mec="black",
                      color="black", ms=6, label=method_name(m)) for m in methods]
    fig.suptitle(f"Accuracy by data kind at each method's horizon\n"
                 f"dots = seeds ({n_seeds(ok)}), marker = mean with 95% CI{res.where(gp)}")
    below(fig, handles, diverged_lines(s, methods), ncol=len(methods))
    return fig
