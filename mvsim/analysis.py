"""Analyses of sweep results for the studies in docs/results.md: small pure functions over the
features (`mvsim.store.load_features`) and summary (`mvsim.store.load`) DataFrames.

(a) lottery:  `lottery_gaps`, `agreement_by_gap` -- per (seed, class) of SL the gap between the
    top two initial Lambda and whether the final argmax is the initial argmax; P(agree) binned by
    gap with Wilson intervals.
(b) winner:   `winner_fixed_time` -- first logged step after which argmax_l Lambda_{i,l} never
    changes again, beside the step at which the winner reaches the capture threshold.
(c) race:     `hitting_times`, `fit_power_law` -- first logged step at which each feature's
    Lambda reaches a threshold, against Lambda(0), and a log-log least-squares fit of hitting
    time on Lambda(0) with a 95% interval on the exponent (theory: -(q - 2) near 0).
(d) CIs:      `ci_table` (mean and Student-t CI per group, via `mvsim.plots.aggregate`),
    `paired_diff` (per-seed difference of two methods, with its CI), `substitute_method`.

Every function takes and returns pandas DataFrames (or dicts of floats) and has no side effects.
Groups are identified by `grid_point` plus any grid-key columns present; missing columns are
tolerated so that hand-made frames stay small.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mvsim.plotstats import aggregate, mean_ci, t_quantile, wilson_ci

BASE_COLS = ("grid_point", "seed", "cls")


def _keys(df: pd.DataFrame, extra=()) -> list[str]:
    """Grouping columns present in df: grid_point, any `extra` columns, seed, cls."""
    cols = [c for c in ("grid_point", *extra) if c in df.columns]
    return cols + [c for c in ("seed", "cls") if c in df.columns]


def _method(features: pd.DataFrame, method: str | None) -> pd.DataFrame:
    if method is None or "method" not in features.columns:
        return features
    return features[features["method"] == method]


# ---------------------------------------------------------------- (a) lottery


def lottery_gaps(features: pd.DataFrame, method: str = "sl", extra=()) -> pd.DataFrame:
    """Per (grid_point, extra..., seed, cls): the initial top-two gap and whether the winner was the leader.

    Uses each row's `lam_init` (Lambda at step 0) and `lam` at the last logged step.
    Columns: keys, init_leader, winner, lam0_top, lam0_second, init_gap (top - second >= 0),
    rel_gap (init_gap / lam0_top), final_gap (final Lambda of the winner minus the best other
    feature's, >= 0), agree (winner == init_leader).
    """
    f = _method(features, method)
    keys = _keys(f, extra)
    if not len(f):
        return pd.DataFrame(columns=keys + ["init_leader", "winner", "lam0_top", "lam0_second",
                                            "init_gap", "rel_gap", "final_gap", "agree"])
    last = f.groupby(keys)["step"].transform("max")
    fin = f[f["step"] == last].pivot_table(index=keys, columns="feature", values="lam", aggfunc="first")
    ini = f[f["step"] == last].pivot_table(index=keys, columns="feature", values="lam_init", aggfunc="first")
    ini = ini.reindex(index=fin.index, columns=fin.columns)
    a_fin, a_ini = fin.to_numpy(float), ini.to_numpy(float)
    srt = np.sort(a_ini, axis=1)
    srt_fin = np.sort(a_fin, axis=1)
    lead, win = a_ini.argmax(axis=1), a_fin.argmax(axis=1)
    out = fin.index.to_frame(index=False)
    out["init_leader"] = fin.columns.to_numpy()[lead]
    out["winner"] = fin.columns.to_numpy()[win]
    out["lam0_top"] = srt[:, -1]
    out["lam0_second"] = srt[:, -2]
    out["init_gap"] = srt[:, -1] - srt[:, -2]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rel_gap"] = out["init_gap"] / out["lam0_top"]
    out["final_gap"] = srt_fin[:, -1] - srt_fin[:, -2]
    out["agree"] = lead == win
    return out


def agreement_by_gap(table: pd.DataFrame, gap: str = "init_gap", edges=None, n_bins: int = 5,
                     level: float = 0.95) -> pd.DataFrame:
    """P(agree) in bins of `gap` with Wilson intervals.

    `edges`: explicit bin edges (left-closed, the last bin right-closed); default: `n_bins`
    quantile bins of equal count. Columns: bin_lo, bin_hi, gap_median, n, agree, p, lo, hi.
    """
    cols = ["bin_lo", "bin_hi", "gap_median", "n", "agree", "p", "lo", "hi"]
    g = table[gap].to_numpy(float)
    a = table["agree"].to_numpy(bool)
    ok = np.isfinite(g)
    g, a = g[ok], a[ok]
    if not g.size:
        return pd.DataFrame(columns=cols)
    if edges is None:
        edges = np.unique(np.quantile(g, np.linspace(0, 1, n_bins + 1)))
    edges = np.asarray(edges, float)
    if edges.size < 2:
        edges = np.array([g.min(), g.max()])
    which = np.clip(np.searchsorted(edges, g, side="right") - 1, 0, edges.size - 2)
    inside = (g >= edges[0]) & (g <= edges[-1])
    rows = []
    for b in range(edges.size - 1):
        sel = inside & (which == b)
        n = int(sel.sum())
        k = int(a[sel].sum())
        p, lo, hi = wilson_ci(k, n, level)
        rows.append((edges[b], edges[b + 1], float(np.median(g[sel])) if n else math.nan, n, k, p, lo, hi))
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- (b) when the winner is fixed


def winner_fixed_time(features: pd.DataFrame, method: str = "sl", threshold=None, extra=()) -> pd.DataFrame:
    """Per (grid_point, extra..., seed, cls): the step from which argmax_l Lambda_{i,l} never changes.

    fixed_step: the first logged step t such that the argmax at every logged step >= t equals
    the final argmax (the first logged step, usually 0, if it never changes). Ties go to the
    lowest feature index (numpy argmax). With `threshold` (a number, or a column name such as
    a grid key holding varrho) also hit_step: the first logged step at which the final winner's
    Lambda >= threshold (NaN if never). Columns: keys, winner, fixed_step, n_changes, hit_step.
    """
    f = _method(features, method)
    keys = _keys(f, extra)
    cols = keys + ["winner", "fixed_step", "n_changes", "hit_step"]
    if not len(f):
        return pd.DataFrame(columns=cols)
    wide = f.pivot_table(index=keys + ["step"], columns="feature", values="lam", aggfunc="first").sort_index()
    thr_of = None
    if isinstance(threshold, str):
        thr_of = f.groupby(keys)[threshold].first()
    rows = []
    for key, g in wide.groupby(level=list(range(len(keys)))):
        steps = g.index.get_level_values("step").to_numpy()
        lam = g.to_numpy(float)
        am = lam.argmax(axis=1)
        w = am[-1]
        differs = np.nonzero(am != w)[0]
        fixed = steps[differs[-1] + 1] if differs.size else steps[0]
        n_changes = int((am[1:] != am[:-1]).sum())
        hit = math.nan
        if threshold is not None:
            thr = float(thr_of.loc[key]) if thr_of is not None else float(threshold)
            reached = np.nonzero(lam[:, w] >= thr)[0]
            hit = float(steps[reached[0]]) if reached.size else math.nan
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, g.columns.to_numpy()[w], int(fixed), n_changes, hit))
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- (c) hitting times and the race


def hitting_times(features: pd.DataFrame, threshold, method: str | None = None, extra=()) -> pd.DataFrame:
    """Per (grid_point, extra..., seed, cls, feature): Lambda(0) and the first logged step with Lambda >= threshold.

    `threshold`: a number, or the name of a column holding it per row (e.g. a swept varrho).
    lam0 is the Lambda at the first logged step of `method` (its `lam_init`). hit_step is NaN
    (and censored True) when the feature never reaches the threshold in the logged run.
    Columns: keys, feature, lam0, hit_step, censored, last_step.
    """
    f = _method(features, method)
    keys = _keys(f, extra) + ["feature"]
    cols = keys + ["lam0", "hit_step", "censored", "last_step"]
    if not len(f):
        return pd.DataFrame(columns=cols)
    thr = f[threshold].to_numpy(float) if isinstance(threshold, str) else float(threshold)
    f = f.assign(_hit=np.where(f["lam"].to_numpy(float) >= thr, f["step"].to_numpy(float), np.inf))
    g = f.groupby(keys, sort=True)
    out = g.agg(lam0=("lam_init", "first"), hit_step=("_hit", "min"), last_step=("step", "max")).reset_index()
    out["censored"] = ~np.isfinite(out["hit_step"].to_numpy(float))
    out.loc[out["censored"], "hit_step"] = math.nan
    return out[cols]


def fit_line(x, y, level: float = 0.95) -> dict:
    """Least-squares fit y = a + b x over the pairs where both are finite.

    Returns slope b with its `level` Student-t interval (n - 2 degrees of freedom), intercept a,
    n, r2 and the slope's standard error se. Fewer than 3 usable pairs or constant x: NaNs."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(ok.sum())
    nan = dict(slope=math.nan, lo=math.nan, hi=math.nan, intercept=math.nan, n=n, r2=math.nan, se=math.nan)
    if n < 3 or np.ptp(x) == 0:
        return nan
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - ym)).sum() / sxx)
    a = float(ym - b * xm)
    sse = float(((y - (a + b * x)) ** 2).sum())
    sst = float(((y - ym) ** 2).sum())
    se = math.sqrt(sse / (n - 2) / sxx)
    half = t_quantile(0.5 + level / 2, n - 2) * se
    return dict(slope=b, lo=b - half, hi=b + half, intercept=a, n=n,
                r2=1.0 - sse / sst if sst > 0 else math.nan, se=se)


def fit_power_law(t, x, level: float = 0.95) -> dict:
    """`fit_line` of log t on log x over pairs with finite positive t and x: t ~ x^slope.

    (Theory for the tensor-power race near 0: t ~ x^-(q-2), i.e. slope -(q - 2), with x = Lambda(0).)
    """
    t = np.asarray(t, float)
    x = np.asarray(x, float)
    ok = (t > 0) & (x > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return fit_line(np.where(ok, np.log(np.where(ok, x, 1.0)), np.nan),
                        np.where(ok, np.log(np.where(ok, t, 1.0)), np.nan), level)


# ---------------------------------------------------------------- (d) intervals


def ci_table(summary: pd.DataFrame, metric: str, by=("method",), bounds=None, level: float = 0.95) -> pd.DataFrame:
    """Mean and Student-t CI of `metric` per group over seeds (diverged rows left out): mvsim.plots.aggregate."""
    return aggregate(summary, metric, by=list(by), level=level, bounds=bounds)


def paired_diff(summary: pd.DataFrame, metric: str, a: str = "mrp_ft", b: str = "sl", by=(),
                level: float = 0.95) -> pd.DataFrame:
    """Per-seed difference metric(a) - metric(b), paired on (grid_point, seed), with its CI per group.

    Columns: the `by` columns, mean, lo, hi, n.
    """
    by = list(by)
    on = [c for c in ("grid_point", "seed") if c in summary.columns]
    keep = on + [c for c in by if c not in on] + [metric]
    A = summary[summary["method"] == a][keep]
    B = summary[summary["method"] == b][keep]
    both = A.merge(B, on=[c for c in keep if c != metric], suffixes=("_a", "_b"))
    both["diff"] = both[f"{metric}_a"] - both[f"{metric}_b"]
    rows = []
    groups = both.groupby(by, sort=True) if by else [((), both)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        vals = g["diff"].to_numpy(float)
        m, lo, hi = mean_ci(vals, level)
        rows.append((*key, m, lo, hi, int(np.isfinite(vals).sum())))
    return pd.DataFrame(rows, columns=by + ["mean", "lo", "hi", "n"])


def substitute_method(summary: pd.DataFrame, donor: pd.DataFrame, method: str, grid_cols=()) -> pd.DataFrame:
    """Replace the `method` rows of every grid point of `summary` by the donor's rows of the same seed.

    For sweeps over keys that cannot affect `method` (e.g. mrp.* keys for SL), where the method
    was not retrained (0 steps): the donor (e.g. the default run) supplies it, seed by seed.
    Grid points keep their own grid_point and grid-key values; seeds absent from the donor drop.
    """
    grid_cols = list(grid_cols)
    rest = summary[summary["method"] != method]
    points = summary[["grid_point", *grid_cols]].drop_duplicates()
    seeds = summary[["grid_point", "seed"]].drop_duplicates()
    d = donor[donor["method"] == method].drop(columns=["grid_point", *[c for c in grid_cols if c in donor]])
    new = seeds.merge(points, on="grid_point").merge(d, on="seed")
    return pd.concat([rest, new[summary.columns.intersection(new.columns)]], ignore_index=True) \
        .sort_values(["grid_point", "seed", "method"], ignore_index=True)
