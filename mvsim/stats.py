"""Statistics: Student-t and Wilson intervals, per-group means, geometric means, bootstrap slopes,
Holm's adjustment. numpy/pandas, and scipy's t quantile on first use; no matplotlib. The claims,
the scaling study and the figures import it directly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with df degrees of freedom (scipy, which jax depends on; imported on
    first use so that loading results stays light; scipy.special, not scipy.stats: 0.08 s against
    0.56 s to import, a sweep's claims need no more)."""
    from scipy.special import stdtrit
    return float(stdtrit(df, p))


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
    half = t_quantile(0.5 + level / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
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


def geometric_mean_ci(times) -> tuple[float, float, float, int, int]:
    """Geometric mean of the positive finite times with the 95% Student-t interval of their log:
    (mean, lo, hi, n_inf, n). NaN times are left out; n_inf counts the inf ones (censored at the
    horizon: not in the mean, never reported as measured)."""
    t = np.asarray(times, float)
    t = t[~np.isnan(t)]
    finite = t[np.isfinite(t) & (t > 0)]
    m, lo, hi = mean_ci(np.log10(finite))
    return 10.0**m, 10.0**lo, 10.0**hi, int(np.isinf(t).sum()), int(t.size)


def geo_mean(values) -> tuple[float, int]:
    """`geometric_mean_ci`'s mean alone, with the number of finite positive values it averages
    ((NaN, 0) if none); for times, where np.inf means "not reached" and is left out."""
    x = np.asarray(values, dtype=float).ravel()
    n = int((np.isfinite(x) & (x > 0)).sum())
    return (geometric_mean_ci(x)[0] if n else math.nan, n)


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


def bootstrap_slope(x, y, groups, level: float = 0.95, n_boot: int = 2000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """Least-squares slope of y on x with a percentile interval from a bootstrap over groups.

    x, y, groups (n,): the points and the unit of independence each belongs to (a seed: the features
    of one seed share its data and initialisation, so they are not independent draws). Each
    bootstrap sample draws the groups with replacement and keeps all their points. Returns
    (slope, lo, hi); the interval is NaN with fewer than 2 groups, NaN throughout with fewer than
    3 points or constant x."""
    x, y, groups = (np.asarray(a) for a in (x, y, groups))
    ok = np.isfinite(x.astype(float)) & np.isfinite(y.astype(float))
    x, y, groups = x[ok].astype(float), y[ok].astype(float), groups[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return (math.nan, math.nan, math.nan)
    xm, ym = x.mean(), y.mean()
    b = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    _, codes = np.unique(groups, return_inverse=True)
    G = int(codes.max()) + 1
    if G < 2:
        return (b, math.nan, math.nan)
    counts = np.random.default_rng(seed).multinomial(G, np.full(G, 1.0 / G), size=n_boot)  # (B, G)
    w = counts[:, codes].astype(float)  # (B, n): each point weighted by its group's draws
    sw = w.sum(axis=1, keepdims=True)
    dx = x[None] - (w * x).sum(axis=1, keepdims=True) / sw
    dy = y[None] - (w * y).sum(axis=1, keepdims=True) / sw
    sxx = (w * dx * dx).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        bs = np.where(sxx > 0, (w * dx * dy).sum(axis=1) / sxx, np.nan)
    lo, hi = np.nanpercentile(bs, [50 * (1 - level), 50 * (1 + level)])
    return (b, float(lo), float(hi))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error control over several tests);
    NaN p-values are left out of the family and stay NaN."""
    p = np.asarray(p_values, float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out
