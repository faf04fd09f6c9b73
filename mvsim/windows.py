"""What the verdicts read on the GD clock: SL's lottery window, MRP's capture time, the race law.

From the events table (first GD times at step resolution, `mvsim.tables`), per (grid point, seed),
`windows` finds
  t_fit    when SL fits its training set (training accuracy >= metrics.FIT_ACC),
  t_erode  when SL stops having exactly one captured feature in most classes (its lottery
           window ends), from the capture times of its features,
  t_cap    when MRP has captured 95% of the features,
with np.inf for "not within the horizon" (right-censored: nothing past a horizon is reported
as measured) and NaN for "unknown" (the run stopped at train.max_steps first). `race_law` fits
the race's exponent from the hitting times; `single_view_gap` follows MRP+FT against SL over SL's
time. `mvsim.claims` turns them into verdicts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mvsim import tables
from mvsim.predictions import SCALE_NOTE, THRESHOLDS
from mvsim.stats import bootstrap_slope, geometric_mean_ci, mean_ci

WINDOW_COLUMNS = ["grid_point", "seed", "t_fit", "t_erode", "t_cap", "sl_one_at_fit", "acc_single_at_fit",
                  "agreement_at_fit", "fit_checkpoint", "sl_end"]

# ---------------------------------------------------------------- windows on the GD clock

REACHED_RTOL = tables.REACHED_RTOL


def _stopped(rows: pd.DataFrame) -> bool:
    """Did the run of these event rows stop at train.max_steps before its horizon?"""
    return bool(len(rows)) and bool((rows["t_end"] < rows["horizon"] * (1 - REACHED_RTOL)).any())


def _known(t: float, stopped: bool) -> float:
    """A first time, with 'not within the horizon' (inf) made unknown (NaN) for a run that stopped early."""
    return math.nan if math.isinf(t) and stopped else t


def capture_matrix(rows: pd.DataFrame, k: int, L: int, event: str = "capture") -> np.ndarray:
    """(k, L) first GD times of `event` from one run's event rows (inf: not within its horizon)."""
    e = rows[rows["event"] == event]
    out = np.full((k, L), math.inf)
    out[e["cls"].to_numpy(int), e["feature"].to_numpy(int)] = e["gd_time"].to_numpy(float)
    return out


def one_per_class(cap: np.ndarray, t: float) -> float:
    """Share of classes with exactly one feature captured by GD time t, from capture times (k, L)."""
    return float(((cap <= t).sum(axis=1) == 1).mean())


def erosion_time(cap: np.ndarray, t_fit: float) -> float:
    """The end of SL's lottery window: the first GD time >= t_fit at which fewer than half the classes
    have exactly one feature captured (THRESHOLDS sl_one_per_class), from the capture times (k, L).
    A feature counts as captured from its first capture on (SL's kernels serve their own class, and
    a captured Lambda keeps growing: tests check this against the checkpoints). inf: not within the
    horizon; NaN when t_fit is not finite (no window)."""
    if not math.isfinite(t_fit):
        return math.nan
    line = THRESHOLDS["sl_one_per_class"].value(0, 0, 0)
    later = cap[np.isfinite(cap) & (cap > t_fit)]
    for t in np.unique(np.concatenate([[t_fit], later])):
        if one_per_class(cap, t) < line:
            return float(t)
    return math.inf


def capture_time(cap: np.ndarray, share: float | None = None) -> float:
    """The first GD time at which `share` (default THRESHOLDS mrp_captures_all) of the features are
    captured, from capture times (k, L); inf: not within the horizon."""
    share = THRESHOLDS["mrp_captures_all"].value(0, 0, 0) if share is None else share
    need = math.ceil(share * cap.size - 1e-9)
    return float(np.sort(cap.ravel())[need - 1]) if need >= 1 else 0.0


def windows(summary: pd.DataFrame, events: pd.DataFrame, L: int = 2) -> pd.DataFrame:
    """The GD-time windows of each (grid_point, seed) of the summary, from the events of sl and mrp.

    Columns (GD times at step resolution; np.inf = not within the horizon; NaN = the method was not
    run, or stopped at train.max_steps before its horizon without the event):
      t_fit    SL's 'fit' event (training accuracy >= metrics.FIT_ACC),
      t_erode  `erosion_time`: the first time >= t_fit with exactly one feature captured in fewer than
               half the classes; NaN when t_fit is not finite (SL has no window),
      t_cap    `capture_time` of MRP's capture times: 95% of the features captured,
      sl_one_at_fit   share of classes with exactly one feature captured at t_fit (events),
      acc_single_at_fit, agreement_at_fit   SL's acc_single and lottery_agreement at fit_checkpoint,
               the first checkpoint at or after t_fit,
      sl_end   SL's last checkpoint reached (its horizon, or the last before max_steps stopped it).
    """
    rows = []
    ev = events.groupby(["grid_point", "seed"], sort=True)
    groups = dict(list(ev)) if len(events) else {}
    for (gp, seed), g in summary.groupby(["grid_point", "seed"], sort=True):
        k = int(round(float(g["features_total"].iloc[0]) / L))
        e = groups.get((gp, seed), pd.DataFrame(columns=["method", "event"]))
        sl_e, mrp_e = e[e["method"] == "sl"], e[e["method"] == "mrp"]
        fit = sl_e[sl_e["event"] == "fit"]["gd_time"]
        t_fit = _known(float(fit.iloc[0]), _stopped(sl_e)) if len(fit) else math.nan
        cap_sl = capture_matrix(sl_e, k, L)
        t_erode = _known(erosion_time(cap_sl, t_fit), _stopped(sl_e)) if len(sl_e) else math.nan
        t_cap = _known(capture_time(capture_matrix(mrp_e, k, L)), _stopped(mrp_e)) if len(mrp_e) else math.nan
        sl = g[(g["method"] == "sl")].sort_values("gd_time", kind="stable")
        done = sl[sl["reached"]] if "reached" in sl.columns else sl
        after = done[done["checkpoint"] >= t_fit * (1 - REACHED_RTOL)] if math.isfinite(t_fit) else done.iloc[:0]
        acc, agree, ckpt = ((after["acc_single"].iloc[0], after["lottery_agreement"].iloc[0],
                             after["checkpoint"].iloc[0]) if len(after) else (math.nan,) * 3)
        one = one_per_class(cap_sl, t_fit) if math.isfinite(t_fit) else math.nan
        sl_end = float(done["gd_time"].max()) if len(done) else math.nan
        rows.append((gp, seed, t_fit, t_erode, t_cap, one, acc, agree, ckpt, sl_end))
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


def fmt_times(times) -> str:
    """'mean [lo, hi]' of `geometric_mean_ci`, and how many seeds are censored at the horizon."""
    m, lo, hi, n_inf, n = geometric_mean_ci(times)
    text = "n/a" if math.isnan(m) else f"{m:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if not math.isnan(lo) else "")
    return text + (f"; not within the horizon in {n_inf} of {n} seeds" if n_inf else "")


def window_line(win: pd.DataFrame) -> str:
    """One line on a grid point's windows (rows of `windows`): geometric means over seeds, 95% CIs."""
    n_fit = int(np.isfinite(win["t_fit"]).sum())
    return (f"Windows in GD time at step resolution (geometric mean [95% CI] over {len(win)} seeds; times "
            f"not within the horizon are counted, not averaged): SL fits at t_fit = {fmt_times(win['t_fit'])}. "
            f"In the {n_fit} seeds that fit, SL keeps exactly one feature in most classes until t_erode = "
            f"{fmt_times(win['t_erode'])}. MRP captures 95% of the features at t_cap = "
            f"{fmt_times(win['t_cap'])}. {SCALE_NOTE}")


# ---------------------------------------------------------------- the race


def hitting_times(events: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per (grid_point, seed, cls, feature) of `method`: lam_init, t_hit (the GD time at which Lambda
    first reaches the capture line, at step resolution; inf: not within the horizon; 0: at
    initialisation) and winner (the first feature of its class to reach it)."""
    keys = ["grid_point", "seed", "cls", "feature"]
    e = events[(events["method"] == method) & (events["event"] == "reach")]
    if "ft_from" in e and e["ft_from"].notna().any():
        e = e[e["ft_from"] == e["ft_from"].max()]
    out = e[keys + ["lam_init", "gd_time"]].rename(columns={"gd_time": "t_hit"}).reset_index(drop=True)
    rank = out.groupby(keys[:-1])["t_hit"].rank(method="first")
    out["winner"] = (rank == 1) & np.isfinite(out["t_hit"])
    return out


def race_law(events: pd.DataFrame, method: str, q: int, winners: bool = False) -> dict:
    """Fit log t_hit = a + b log lam_init over the features of `method` that reach the capture line
    after time 0 (with winners=True only each class's first feature to reach it: see THRESHOLDS
    sl_race), with a 95% interval from a bootstrap over seeds (`stats.bootstrap_slope`).

    events: one grid point's rows. Theory (theory.md): b = -(q - 2) for SL, -(2q - 2) for MRP with a
    stop-gradient teacher. Returns {b, ci: (lo, hi), n: fitted features, censored: features that never
    reach the line, seeds, expected}.
    """
    hits = hitting_times(events, method)
    used = hits[hits["winner"]] if winners else hits
    ok = np.isfinite(used["t_hit"]) & (used["t_hit"] > 0) & (used["lam_init"] > 0)
    used = used[ok]
    b, lo, hi = bootstrap_slope(np.log(used["lam_init"].to_numpy(float)), np.log(used["t_hit"].to_numpy(float)),
                                used["seed"].to_numpy())
    expected = THRESHOLDS["sl_race" if method == "sl" else "mrp_race"].value(0, 0, q)
    return dict(b=b, ci=(lo, hi), n=int(len(used)), censored=int(np.isinf(hits["t_hit"]).sum()),
                seeds=int(used["seed"].nunique()), expected=float(expected))


# ---------------------------------------------------------------- single-view gap over SL's time


def single_view_gap(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (grid_point, SL checkpoint reached): MRP+FT's final acc_single (`tables.last`) minus SL's
    acc_single at that GD time, paired by seed. Columns: grid_point, gd_time (the checkpoint),
    mean, lo, hi (95% Student-t over seeds), n (seeds)."""
    final = tables.last(summary)
    ft = final.loc[final["method"] == "mrp_ft", ["grid_point", "seed", "acc_single"]]
    sl = summary[(summary["method"] == "sl") & summary["reached"]]
    both = sl[["grid_point", "seed", "checkpoint", "acc_single"]].merge(ft, on=["grid_point", "seed"],
                                                                        suffixes=("_sl", "_ft"))
    both["gap"] = both["acc_single_ft"] - both["acc_single_sl"]
    rows = [(gp, t, *mean_ci(g["gap"]), int(g["gap"].notna().sum()))
            for (gp, t), g in both.groupby(["grid_point", "checkpoint"], sort=True)]
    return pd.DataFrame(rows, columns=["grid_point", "gd_time", "mean", "lo", "hi", "n"])
