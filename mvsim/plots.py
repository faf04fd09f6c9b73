"""Figures from a results directory: `python -m mvsim.plots DIR [--pdf]` writes DIR/figures/*.png.

Figures (each made by one small function taking a `Results`, returning a Figure or None):
  trajectories.png       Lambda_{i,l}(t) of one seed: SL beside MRP pretraining then fine-tuning
  features_captured.png  share of features captured, classes with all / exactly one captured
  lottery.png            SL: initial gap between a class's features vs the gap at the end
  accuracy.png           train / multi-view / single-view / test accuracy per method, 95% CI
  grid_<key>.png         one grid key: the main metrics against it, 95% CI
  grid_<k1>_<k2>.png     two or more grid keys: heatmaps over the first two (mean over the rest)

Figures (a)-(d) show one grid point, the "reference point": the one whose grid values equal
the base config stored in DIR/config.toml, else the first. Rows with diverged == True are
left out of every mean and interval, and each figure says how many were left out.
Confidence intervals are 95% Student-t intervals over seeds (`mean_ci`).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import store  # noqa: E402

DPI = 200

# Okabe-Ito colours (colour-blind safe); one fixed colour and display name per method.
METHOD_STYLE = {
    "sl": ("SL", "#D55E00", "o"),
    "sl_ensemble": ("SL ensemble", "#E69F00", "D"),
    "kd": ("SL distilled from ensemble", "#CC79A7", "v"),
    "mrp": ("MRP (pretrained)", "#56B4E9", "s"),
    "mae": ("MAE (pretrained)", "#009E73", "P"),
    "mrp_ft": ("MRP+FT", "#0072B2", "^"),
    "mae_ft": ("MAE+FT", "#117733", "X"),
}
_EXTRA_COLOURS = ["#CC79A7", "#F0E442", "#999999", "#882255", "#44AA99", "#332288"]
_FEATURE_STYLES = ["-", (0, (1.2, 1.2)), "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1.5)), (0, (6, 2))]

STYLE = {
    "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5, "legend.fontsize": 7, "figure.titlesize": 9.5, "lines.linewidth": 1.2,
    "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": DPI,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5, "legend.frameon": False,
}

ACC_COLUMNS = [("acc_train", "train"), ("acc_multi", "test:\nmulti-view"),
               ("acc_single", "test:\nsingle-view"), ("acc_test", "test\n(mix, $\\mu$)")]


class ResultsError(Exception):
    """A results directory that cannot be plotted; the message is one line for the user."""


# ---------------------------------------------------------------- statistics


def _t_cdf(x: float, df: int) -> float:
    """CDF of Student's t with integer df (closed-form series in theta = atan(x / sqrt(df)))."""
    th = math.atan(abs(x) / math.sqrt(df))
    c2 = math.cos(th) ** 2
    if df % 2:
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for j in range(1, (df - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            total += term
        a = 2 / math.pi * (th + (math.sin(th) * math.cos(th) * total if df > 1 else 0.0))
    else:
        term, total = 1.0, 1.0
        for j in range(1, df // 2):
            term *= c2 * (2 * j - 1) / (2 * j)
            total += term
        a = math.sin(th) * total
    return 0.5 + math.copysign(a, x) / 2


def _t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t (integer df): Cornish-Fisher start, then Newton on the exact CDF.

    Written out so that plotting does not import scipy (a second of start-up)."""
    from statistics import NormalDist
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    x = (z + (z**3 + z) / 4 / df + (5 * z**5 + 16 * z**3 + 3 * z) / 96 / df**2
         + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384 / df**3)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    for _ in range(4):
        pdf = math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))
        x -= (_t_cdf(x, df) - p) / pdf
    return x


def mean_ci(values, level: float = 0.95, bounds=None) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (mean, lo, hi) of the finite values.

    NaN and inf are dropped. No values: all NaN; one value: (value, NaN, NaN).
    `bounds=(a, b)` clips the interval to the range the quantity can take (shares: (0, 1)).
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = float(x.mean())
    if n == 1:
        return (m, math.nan, math.nan)
    half = _t_quantile(0.5 + level / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (m, lo, hi)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Share and Wilson score interval of a binomial count (stays inside [0, 1])."""
    if n == 0:
        return (math.nan, math.nan, math.nan)
    from statistics import NormalDist
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def diverged_mask(df: pd.DataFrame) -> pd.Series:
    """True for rows whose run diverged (a missing column or value counts as not diverged)."""
    if "diverged" not in df:
        return pd.Series(False, index=df.index)
    return df["diverged"].astype("boolean").fillna(False).astype(bool)


def aggregate(df: pd.DataFrame, metric: str, by=("method",), level: float = 0.95,
              bounds=None) -> pd.DataFrame:
    """Mean and CI of `metric` per group, diverged rows excluded (`bounds` as in `mean_ci`).

    Columns: the `by` columns, mean, lo, hi, n (finite values used), n_diverged (rows left out).
    """
    by = list(by)
    cols = by + ["mean", "lo", "hi", "n", "n_diverged"]
    if metric not in df or not len(df):
        return pd.DataFrame(columns=cols)
    div = diverged_mask(df)
    rows = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ok = g[~div.loc[g.index]]
        vals = pd.to_numeric(ok[metric], errors="coerce").to_numpy(float)
        m, lo, hi = mean_ci(vals, level, bounds)
        rows.append((*key, m, lo, hi, int(np.isfinite(vals).sum()), int(div.loc[g.index].sum())))
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- loading


@dataclass
class Results:
    """A loaded results directory."""

    out: Path
    cfg: C.Config
    grid: dict[str, list]
    seeds: int | None
    summary: pd.DataFrame
    features: pd.DataFrame
    _ref: int | None = field(default=None, repr=False)

    @property
    def keys(self) -> list[str]:
        """Grid keys that take more than one value in the summary, in grid order."""
        return [k for k in self.grid if k in self.summary and self.summary[k].nunique(dropna=False) > 1]

    def point_values(self, gp: int) -> dict:
        rows = self.summary[self.summary["grid_point"] == gp]
        return {k: _py(rows[k].iloc[0]) for k in self.grid if k in rows and len(rows)}

    def point_cfg(self, gp: int) -> C.Config:
        """The config of grid point `gp` (the base config if its values cannot be applied)."""
        try:
            return C.with_values(self.cfg, self.point_values(gp))
        except C.ConfigError:
            return self.cfg

    def threshold(self, gp: int) -> float:
        cfg = self.point_cfg(gp)
        return float(cfg.metrics.capture_frac * cfg.net.varrho)

    @property
    def ref(self) -> int:
        """The reference grid point: the base config's values if in the grid, else the first."""
        if self._ref is None:
            points = sorted(int(g) for g in self.summary["grid_point"].unique())
            self._ref = points[0]
            for gp in points:
                vals = self.point_values(gp)
                if all(_same(v, C.get(self.cfg, k)) for k, v in vals.items()):
                    self._ref = gp
                    break
        return self._ref

    def point_label(self, gp: int) -> str:
        vals = self.point_values(gp)
        return ", ".join(f"{k} = {_fmt(v)}" for k, v in vals.items() if k in self.keys)

    def k_of(self, df: pd.DataFrame) -> pd.Series:
        """Classes per row (from a grid column data.k if there is one)."""
        return df["data.k"].astype(float) if "data.k" in df else pd.Series(float(self.cfg.data.k), df.index)

    def L_of(self, df: pd.DataFrame) -> pd.Series:
        return df["data.L"].astype(float) if "data.L" in df else pd.Series(float(self.cfg.data.L), df.index)


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def load_results(out) -> Results:
    """Config, grid, summary (with share columns added) and features of a results directory."""
    out = Path(out)
    if not out.is_dir():
        raise ResultsError(f"results directory '{out}' does not exist")
    if not (out / "config.toml").is_file():
        raise ResultsError(f"'{out}' has no config.toml (not a results directory of mvsim.sweep?)")
    cfg, grid, seeds = C.load_run_toml(out / "config.toml")
    summary = store.load(out)
    if not len(summary):
        raise ResultsError(f"'{out}' has no results yet (no rows in {out / store.SUMMARY}/*.parquet)")
    features = store.load_features(out)
    res = Results(out, cfg, grid, seeds, summary, features)
    s = summary
    total = pd.to_numeric(s["features_total"], errors="coerce")
    k = res.k_of(s)
    s["share_features"] = pd.to_numeric(s["features_captured"], errors="coerce") / total
    s["share_all"] = pd.to_numeric(s["classes_all_captured"], errors="coerce") / k
    s["share_one"] = pd.to_numeric(s["classes_one_captured"], errors="coerce") / k
    return res


# ---------------------------------------------------------------- helpers


def method_name(method: str) -> str:
    return METHOD_STYLE.get(method, (method,))[0]


def method_colour(method: str) -> str:
    if method in METHOD_STYLE:
        return METHOD_STYLE[method][1]
    return _EXTRA_COLOURS[sum(map(ord, method)) % len(_EXTRA_COLOURS)]


def method_marker(method: str) -> str:
    return METHOD_STYLE.get(method, (None, None, "o"))[2]


def ordered_methods(methods) -> list[str]:
    """Known methods in a fixed order (SL first, fine-tuned last), then others alphabetically."""
    methods = set(methods)
    known = [m for m in METHOD_STYLE if m in methods]
    return known + sorted(methods - set(known))


def _methods_with(df: pd.DataFrame, metric: str) -> list[str]:
    """Methods that have at least one finite value of `metric`."""
    if metric not in df:
        return []
    vals = pd.to_numeric(df[metric], errors="coerce")
    return ordered_methods(df.loc[np.isfinite(vals), "method"].unique())


def _diverged_note(fig, df: pd.DataFrame, methods=None, extra=()) -> None:
    """Footnotes under the figure: the diverged rows left out (by method), if any, and `extra` lines."""
    if methods is not None:
        df = df[df["method"].isin(methods)]
    div = diverged_mask(df)
    lines = list(extra)
    if div.any():
        counts = df[div].groupby("method").size()
        parts = ", ".join(f"{method_name(m)}: {int(counts[m])}" for m in ordered_methods(counts.index))
        lines.append(f"Diverged runs left out of all means and CIs: {int(div.sum())} ({parts}).")
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=6.5, color="#A00000")


def _strip_ci(ax, x: float, values, colour: str, marker: str = "o", width: float = 0.28,
              rng=None, label=None, bounds=(0.0, 1.0)) -> None:
    """Jittered points (one per seed) plus mean and 95% CI (clipped to `bounds`) at position x."""
    vals = np.asarray(values, float)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return
    rng = rng if rng is not None else np.random.default_rng(0)
    jitter = rng.uniform(-width / 2, width / 2, vals.size)
    ax.scatter(x + jitter, vals, s=6, color=colour, alpha=min(0.6, max(0.12, 8 / vals.size)),
               linewidths=0, zorder=2)
    m, lo, hi = mean_ci(vals, bounds=bounds)
    err = np.clip(np.nan_to_num([[m - lo], [hi - m]]), 0, None)
    ax.errorbar([x], [m], yerr=err, fmt=marker, color="black", mfc=colour, mec="black", ms=5,
                capsize=3, elinewidth=1.1, zorder=3, label=label)


def _no_data(ax, text="no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _where(res: Results, gp: int) -> str:
    label = res.point_label(gp)
    return f" at {label}" if label else ""


def _n_seeds(df: pd.DataFrame) -> int:
    return int(df["seed"].nunique()) if "seed" in df else 0


# ---------------------------------------------------------------- (a) trajectories


def _trajectory_panel(ax, tables, offsets, thr, k, L, floor):
    """Draw Lambda(t) of several consecutive phases (tables) on one axis; returns the clipped count."""
    cmap = plt.get_cmap("tab10") if k <= 10 else plt.get_cmap("turbo")
    clipped = 0
    for table, off in zip(tables, offsets):
        if table is None or not len(table):
            continue
        wide = table.pivot_table(index="step", columns=["cls", "feature"], values="lam", aggfunc="first")
        steps = wide.index.to_numpy(float) + off
        for (i, l), col in wide.items():
            y = col.to_numpy(float)
            if floor is not None:
                clipped += int((y < floor).sum())
                y = np.maximum(y, floor)
            colour = cmap(int(i) % 10) if k <= 10 else cmap(int(i) / max(k - 1, 1))
            ax.plot(steps, y, color=colour, ls=_FEATURE_STYLES[int(l) % len(_FEATURE_STYLES)], lw=1.0,
                    alpha=0.9)
    ax.axhline(thr, color="black", ls="--", lw=0.9, zorder=1)
    return clipped


def fig_trajectories(res: Results):
    """(a) Lambda_{i,l}(t) of one seed (the first with no diverged run): SL beside MRP then fine-tuning."""
    f = res.features
    if not len(f):
        return None
    gp = res.ref
    f = f[f["grid_point"] == gp]
    if not len(f):
        return None
    s = res.summary[res.summary["grid_point"] == gp]
    bad = set(s.loc[diverged_mask(s), "seed"].tolist())
    good = sorted(set(f["seed"].unique().tolist()) - bad)
    seed = int(good[0] if good else f["seed"].min())  # the first seed whose runs all converged
    f = f[f["seed"] == seed]
    parts = {m: f[f["method"] == m] for m in ("sl", "mrp", "mrp_ft")}
    if all(not len(p) for p in parts.values()):
        return None
    cfg = res.point_cfg(gp)
    thr = res.threshold(gp)
    k = int(f["cls"].max()) + 1
    L = int(f["feature"].max()) + 1
    lam = f["lam"].to_numpy(float)
    lam = lam[np.isfinite(lam)]
    positive = lam[lam > 0]
    log = positive.size > 0
    # Values below the floor (zero, negative, or far below the rest) are drawn at the floor.
    floor = max(float(positive.min()) / 2, 0.2 * float(np.quantile(positive, 0.02))) if log else None
    top = max(float(lam.max()) if lam.size else thr, thr)

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.1), sharey=True, constrained_layout=True)
    clipped = 0
    ax = axes[0]
    if len(parts["sl"]):
        clipped += _trajectory_panel(ax, [parts["sl"]], [0], thr, k, L, floor)
        ax.set_title(f"SL (supervised, {int(parts['sl']['step'].max())} GD steps)")
    else:
        _no_data(ax, "no SL trajectory")
    ax.set_xlabel("training step")
    ax.set_ylabel("$\\Lambda_{i,l}(t)=\\max_r\\,\\langle w_r(t), v_{i,l}\\rangle$")

    ax = axes[1]
    if len(parts["mrp"]) or len(parts["mrp_ft"]):
        last = float(parts["mrp"]["step"].max()) if len(parts["mrp"]) else 0.0
        clipped += _trajectory_panel(ax, [parts["mrp"], parts["mrp_ft"]], [0.0, last], thr, k, L, floor)
        if len(parts["mrp"]) and len(parts["mrp_ft"]):
            ax.axvline(last, color="grey", lw=0.9, ls="-", zorder=1)
            ax.text(last, 1.0, " fine-tuning \u2192", transform=ax.get_xaxis_transform(), ha="left",
                    va="top", fontsize=7, color="dimgrey")
            ax.text(last, 1.0, "\u2190 MRP pretraining ", transform=ax.get_xaxis_transform(), ha="right",
                    va="top", fontsize=7, color="dimgrey")
        ax.set_title("MRP pretraining, then fine-tuning (MRP+FT)")
    else:
        _no_data(ax, "no MRP trajectory")
    ax.set_xlabel("training step (MRP, then fine-tuning)")
    ax.tick_params(labelleft=True)

    for ax in axes:
        if log:
            ax.set_yscale("log")
            ax.set_ylim(floor / 1.3, top * 1.6)

    cmap = plt.get_cmap("tab10") if k <= 10 else plt.get_cmap("turbo")
    handles = []
    if k <= 10:
        handles += [Line2D([], [], color=cmap(i), lw=1.6, label=f"class {i + 1}") for i in range(k)]
    handles += [Line2D([], [], color="black", lw=1.0, ls=_FEATURE_STYLES[l % len(_FEATURE_STYLES)],
                       label=f"feature $l={l + 1}$") for l in range(L)]
    handles.append(Line2D([], [], color="black", ls="--", lw=0.9,
                          label=f"captured: $\\Lambda \\geq$ {thr:g}"))
    fig.legend(handles=handles, loc="outside right center", ncol=1, fontsize=6.5, handlelength=2.4)
    colour_note = "" if k <= 10 else " (colour: class, dark to bright)"
    div = res.summary[(res.summary["grid_point"] == gp) & (res.summary["seed"] == seed)]
    bad = ordered_methods(div.loc[diverged_mask(div), "method"])
    flag = f" ({', '.join(method_name(m) for m in bad)} diverged)" if bad else ""
    where = f"\n{res.point_label(gp)}" if res.point_label(gp) else ""
    fig.suptitle(f"Feature correlations $\\Lambda_{{i,l}}(t)$, seed {seed}{flag} "
                 f"(k = {k}, L = {L}, $\\varrho$ = {cfg.net.varrho:g}){colour_note}{where}")
    if clipped:
        _diverged_note(fig, div.iloc[:0], extra=[
            f"{clipped} values of $\\Lambda$ below {floor:.2g} (e.g. zero or negative) are drawn at "
            f"{floor:.2g} (log scale)."])
    return fig


# ---------------------------------------------------------------- (b) features captured


def fig_features_captured(res: Results):
    """(b) Share of features captured per method, and classes with all / exactly one captured."""
    gp = res.ref
    s = res.summary[res.summary["grid_point"] == gp]
    methods = _methods_with(s, "share_features")
    if not methods:
        return None
    ok = s[~diverged_mask(s)]
    L = int(res.L_of(s).iloc[0])
    k = int(res.k_of(s).iloc[0])
    panels = [("share_features", f"share of the $kL$ = {k * L} features captured",
               "Features captured"),
              ("share_all", f"share of the $k$ = {k} classes",
               "Classes: both captured" if L == 2 else f"Classes: all {L} captured"),
              ("share_one", f"share of the $k$ = {k} classes", "Classes: exactly one captured")]
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.7), constrained_layout=True)
    rng = np.random.default_rng(0)
    for ax, (col, ylabel, title) in zip(axes, panels):
        for x, m in enumerate(methods):
            _strip_ci(ax, x, ok.loc[ok["method"] == m, col], method_colour(m), method_marker(m), rng=rng)
        ax.set_xticks(range(len(methods)), [method_name(m).replace(" (", "\n(") for m in methods])
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylim(-0.04, 1.04)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="x", visible=False)
    axes[0].axhline(1 / L, color="grey", ls=":", lw=0.9)
    axes[0].text(len(methods) - 0.45, 1 / L, "one per class", ha="right", va="bottom", fontsize=6.5,
                 color="dimgrey")
    thr = res.threshold(gp)
    fig.suptitle(f"Captured features ($\\Lambda_{{i,l}} \\geq$ {thr:g} at the end of training)"
                 f"{_where(res, gp)}: "
                 f"dots = seeds ({_n_seeds(ok)}), marker = mean with 95% CI")
    _diverged_note(fig, s, methods)
    return fig


# ---------------------------------------------------------------- (c) lottery


def lottery_table(res: Results, gp: int | None = None) -> pd.DataFrame:
    """SL, per (seed, class): winner (feature largest at the end), initial and final gaps, agreement.

    init_gap = Lambda_{i,w}(0) - max_{l != w} Lambda_{i,l}(0) with w the final winner (so it is
    positive when the initial leader won); final_gap the same at the last step (>= 0).
    Diverged seeds are left out.
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
    last = f.groupby("seed")["step"].transform("max")
    fin = f[f["step"] == last].pivot_table(index=["seed", "cls"], columns="feature", values="lam",
                                           aggfunc="first")
    ini = f[f["step"] == last].pivot_table(index=["seed", "cls"], columns="feature", values="lam_init",
                                           aggfunc="first")
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
    """(c) SL lottery: initial gap of the feature SL ends with vs its final gap, and agreement vs gap."""
    gp = res.ref
    t = lottery_table(res, gp)
    if not len(t):
        return None
    cfg = res.point_cfg(gp)
    s = res.summary[(res.summary["grid_point"] == gp) & (res.summary["method"] == "sl")]
    per_seed = t.groupby("seed")["agree"].mean()
    m, lo, hi = mean_ci(per_seed.to_numpy(float), bounds=(0.0, 1.0))
    ci = f" [{lo:.0%}, {hi:.0%}]" if np.isfinite(lo) else ""

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.0), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1.35, 1]})
    ax = axes[0]
    alpha = min(0.8, max(0.15, 40 / len(t) ** 0.5 / 2))
    for agree, colour, label in [(True, "#0072B2", "initial leader won"),
                                 (False, "#D55E00", "initial leader lost")]:
        sub = t[t["agree"] == agree]
        ax.scatter(sub["init_gap"], sub["final_gap"], s=9, color=colour, alpha=alpha, linewidths=0,
                   label=f"{label} ({len(sub)} of {len(t)})")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("initial gap $\\Lambda_{i,w}(0) - \\max_{l\\neq w}\\Lambda_{i,l}(0)$\n"
                  "($w$ = feature with the largest $\\Lambda$ at the end)")
    ax.set_ylabel("final gap $\\Lambda_{i,w}(T) - \\max_{l\\neq w}\\Lambda_{i,l}(T)$")
    ax.set_title("Each dot: one class of one seed")
    leg = ax.legend(loc="best", markerscale=1.8, handletextpad=0.3, frameon=True, framealpha=0.9,
                    edgecolor="none")
    for h in leg.legend_handles:
        h.set_alpha(1)

    # Agreement against the size of the initial lead, in units of sigma_0 (binned by quantile).
    ax = axes[1]
    sigma0 = float(cfg.net.sigma_0)
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
    ax.text(ax.get_xlim()[1], 1 / cfg.data.L, "chance (1/L)", ha="right", va="bottom", fontsize=6.5,
            color="dimgrey")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("|initial gap| / $\\sigma_0$ (bins of equal count)")
    ax.set_ylabel("share where the initial leader won\n(95% Wilson CI)")
    ax.set_title("Agreement vs size of the initial lead")

    fig.suptitle(f"SL lottery ticket{_where(res, gp)}: the feature largest at initialisation wins\n"
                 f"in {m:.0%}{ci} of classes (mean over {len(per_seed)} seeds with 95% CI)")
    _diverged_note(fig, s)
    return fig


# ---------------------------------------------------------------- (d) accuracy


def fig_accuracy(res: Results):
    """(d) Train, multi-view, single-view and overall test accuracy per classifier, 95% CI over seeds."""
    gp = res.ref
    s = res.summary[res.summary["grid_point"] == gp]
    methods = ordered_methods(set().union(*[_methods_with(s, c) for c, _ in ACC_COLUMNS]))
    if not methods:
        return None
    ok = s[~diverged_mask(s)]
    k, L = int(res.k_of(s).iloc[0]), int(res.L_of(s).iloc[0])
    fig, ax = plt.subplots(figsize=(5.0, 3.0), constrained_layout=True)
    rng = np.random.default_rng(1)
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        rows = ok[ok["method"] == m]
        for g, (col, _) in enumerate(ACC_COLUMNS):
            x = g + (j - (len(methods) - 1) / 2) * width
            _strip_ci(ax, x, rows[col], method_colour(m), method_marker(m), width=width * 0.6, rng=rng,
                      label=method_name(m) if g == 0 else None)
    ax.axhline(1 / k, color="grey", ls=":", lw=0.9)
    ax.text(len(ACC_COLUMNS) - 0.5, 1 / k, f"chance (1/k = {1 / k:.2g})", ha="right", va="bottom",
            fontsize=6.5, color="dimgrey")
    g_single = [c for c, _ in ACC_COLUMNS].index("acc_single")
    ax.hlines(1 / L, g_single - 0.45, g_single + 0.45, color=method_colour("sl"), ls="--", lw=0.9)
    ax.text(g_single - 0.45, 1 / L, f"SL theory\n1/L = {1 / L:.2g}", ha="right", va="center", fontsize=6,
            color=method_colour("sl"))
    ax.set_xticks(range(len(ACC_COLUMNS)), [lab for _, lab in ACC_COLUMNS])
    ax.set_xlim(-0.5, len(ACC_COLUMNS) - 0.5)
    ax.set_ylim(-0.02, 1.04)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("accuracy")
    ax.legend(handles=[Line2D([], [], ls="none", marker=method_marker(m), mfc=method_colour(m), mec="black",
                              color="black", ms=5, label=method_name(m)) for m in methods],
              loc="lower left", ncol=len(methods))
    fig.suptitle(f"Accuracy by data kind{_where(res, gp)}\n"
                 f"dots = seeds ({_n_seeds(ok)}), marker = mean with 95% CI")
    _diverged_note(fig, s, methods)
    return fig


# ---------------------------------------------------------------- (e) grids


def _numeric(values) -> bool:
    return all(isinstance(_py(v), (int, float)) and not isinstance(_py(v), bool) for v in values)


def fig_grid_1d(res: Results, key: str):
    """(e) One grid key: captured shares, SL lottery agreement and accuracies against the key."""
    s = res.summary
    values = sorted(s[key].dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    numeric = _numeric(values)
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    fl = [float(v) for v in values] if numeric else []
    logx = numeric and min(fl) > 0 and max(fl) / min(fl) >= 20
    span = (math.log10(max(pos.values()) / min(pos.values())) if logx
            else (max(pos.values()) - min(pos.values())) or 1.0)
    panels = [
        ("share_features", _methods_with(s, "share_features"), "share of features captured",
         "Features captured ($\\Lambda \\geq$ threshold)"),
        ("lottery_agreement", [m for m in ("sl",) if m in _methods_with(s, "lottery_agreement")],
         "share of classes", "SL lottery agreement\n(final winner = initial leader)"),
        ("acc_single", _methods_with(s, "acc_single"), "accuracy", "Single-view test accuracy"),
        ("acc_multi", _methods_with(s, "acc_multi"), "accuracy", "Multi-view test accuracy"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 5.0), constrained_layout=True)
    for ax, (col, methods, ylabel, title) in zip(axes.ravel(), panels):
        if not methods:
            _no_data(ax, f"no {col}")
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
                        ms=4, capsize=2.5, lw=1.1, label=method_name(m))
        if logx:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(values)), [_fmt(v) for v in values])
            ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="best", fontsize=6.5)
    ok = s[~diverged_mask(s)]
    n = ok.groupby(key)["seed"].nunique()
    nseeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    fig.suptitle(f"Sweep over {key}: mean and 95% CI over {nseeds} seeds per value")
    _diverged_note(fig, s)
    return fig


def _heat(ax, table: pd.DataFrame, title: str, cmap, vmin, vmax, fmt="{:.2f}"):
    """One heatmap (rows: table.index, columns: table.columns) with its colour bar and cell values."""
    data = table.to_numpy(float)
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(table.shape[1]), [_fmt(_py(v)) for v in table.columns], rotation=0)
    ax.set_yticks(range(table.shape[0]), [_fmt(_py(v)) for v in table.index])
    ax.grid(False)
    ax.set_title(title)
    if data.size <= 100:
        for (r, c), v in np.ndenumerate(data):
            if not np.isfinite(v):
                ax.text(c, r, "no data", ha="center", va="center", fontsize=6, color="grey")
            else:
                rgba = im.cmap(im.norm(v))
                light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
                ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=6.5 if data.size <= 36 else 5,
                        color="black" if light else "white")
    plt.colorbar(im, ax=ax, shrink=0.9)


def grid_tables(res: Results, k1: str, k2: str) -> dict[str, pd.DataFrame]:
    """Heatmap tables (rows: k2 values, columns: k1 values), means over seeds and other grid keys.

    Diverged rows are left out; the single-view gap is paired by (grid point, seed).
    """
    s = res.summary[~diverged_mask(res.summary)]
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
    """(e) Two grid keys: heatmaps of the single-view accuracy gap, captured shares and SL lottery."""
    tabs = grid_tables(res, k1, k2)
    if not tabs:
        return None
    specs = {
        "gap": ("Single-view accuracy gap\nMRP+FT $-$ SL", "RdBu", None),
        "sl_features": ("SL: share of features captured", "viridis", (0, 1)),
        "mrp_features": ("MRP (pretrained): share of features captured", "viridis", (0, 1)),
        "sl_lottery": ("SL lottery agreement", "viridis", (0, 1)),
    }
    names = [n for n in specs if n in tabs]
    ncol = 2 if len(names) > 1 else 1
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.0 if ncol == 2 else 3.6, 2.7 * nrow + 0.4),
                             constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), names):
        title, cmap, lim = specs[name]
        t = tabs[name]
        if lim is None:
            a = float(np.nanmax(np.abs(t.to_numpy(float)))) or 1.0
            lim = (-a, a)
        _heat(ax, t, title, cmap, *lim, fmt="{:+.2f}" if name == "gap" else "{:.2f}")
        ax.set_xlabel(k1)
        ax.set_ylabel(k2)
    note = f"; averaged over {', '.join(rest)}" if rest else ""
    fig.suptitle(f"Sweep over {k1} $\\times$ {k2}: means over seeds{note}")
    _diverged_note(fig, res.summary)
    return fig


# ---------------------------------------------------------------- all


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name)


def figures(res: Results) -> list[tuple[str, object]]:
    """(file stem, figure-making function) for every figure this results directory supports."""
    todo = [("trajectories", fig_trajectories), ("features_captured", fig_features_captured),
            ("lottery", fig_lottery), ("accuracy", fig_accuracy)]
    keys = res.keys
    if len(keys) == 1:
        todo.append((f"grid_{_safe(keys[0])}", lambda r: fig_grid_1d(r, keys[0])))
    elif len(keys) >= 2:
        todo.append((f"grid_{_safe(keys[0])}_{_safe(keys[1])}",
                     lambda r: fig_grid_2d(r, keys[0], keys[1], keys[2:])))
    return todo


def make_all(out, pdf: bool = False, log=None, dpi: int = DPI) -> list[Path]:
    """Write every figure of results directory `out` to out/figures/ (PNG at `dpi`, and PDF if `pdf`).

    Returns the paths written. Raises ResultsError for a missing or empty directory.
    `log(msg)`, if given, is told about figures skipped for lack of data.
    """
    res = load_results(out)
    folder = res.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for stem, make in figures(res):
            fig = make(res)
            if fig is None:
                if log:
                    log(f"skipped {stem}: nothing to show in {res.out} "
                        f"(no rows for it, or all of them diverged)")
                continue
            try:
                for ext in ("png", "pdf") if pdf else ("png",):
                    path = folder / f"{stem}.{ext}"
                    fig.savefig(path, dpi=dpi)
                    written.append(path)
            finally:
                plt.close(fig)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mvsim.plots",
        description="Write the figures of an mvsim results directory to DIR/figures/: Lambda "
                    "trajectories, features captured, the SL lottery, accuracy by data kind, and "
                    "sweep figures when the run has a grid.")
    parser.add_argument("dir", metavar="DIR", help="results directory written by python -m mvsim.sweep")
    parser.add_argument("--pdf", action="store_true", help="also write each figure as PDF (vector)")
    parser.add_argument("--dpi", type=int, default=DPI, help=f"resolution of the PNG files (default {DPI})")
    args = parser.parse_args(argv)
    say = lambda msg: print(f"mvsim.plots: {msg}", file=sys.stderr)  # noqa: E731
    try:
        paths = make_all(args.dir, pdf=args.pdf, log=say, dpi=args.dpi)
    except (ResultsError, C.ConfigError) as e:
        print(f"mvsim.plots: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
