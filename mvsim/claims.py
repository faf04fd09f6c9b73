"""Verdicts on the theory's predictions: `python -m mvsim.claims DIR` writes DIR/claims.md and DIR/claims.json.

Every method runs on one gradient-descent clock, so a prediction is read at a GD time
(theory.md, "Time is part of the claims"). Per (grid point, seed) `windows` finds:
  t_fit    when SL fits its training set,
  t_erode  when SL stops having one feature per class (its lottery window ends),
  t_cap    when MRP has captured (almost) all features,
with np.inf for "not within the horizon" (the method's last logged GD time). `claims` then
turns per-seed values into one row per prediction: the mean (or the share of seeds) with a
95% interval over seeds, the threshold from THRESHOLDS and a verdict:
  holds         the interval lies on the theory's side of the threshold,
  fails         it lies on the other side,
  inconclusive  it straddles the threshold, or fewer than 2 seeds.
Means use Student-t intervals (`mvsim.plots.mean_ci`), shares of seeds Wilson intervals.

GD times of SL (cross-entropy) and MRP (squared error) compare only up to the two losses'
scales: a statement that sets t_cap beside t_erode says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from mvsim import config as C
from mvsim import regime
from mvsim import tables
from mvsim.analysis import fit_power_law
from mvsim.plots import ResultsError, diverged_mask, load_results, mean_ci, wilson_ci

SEEDS_MAJORITY = 0.5  # shares of seeds: "w.h.p. over the initialisation" read as "in most seeds"
SCALE_NOTE = ("GD times of SL (cross-entropy) and MRP (squared error) compare only up to the scales of "
              "the two losses.")


@dataclass(frozen=True)
class Rule:
    """One prediction: the side the theory is on, the theory's value, the threshold and why."""

    sense: str  # ">=": holds above the threshold; "<=": below; "=": the interval contains the value
    expected: str  # what the theory says, as text
    formula: str  # the threshold, as text in k (classes), L (features per class), q (sReLU power)
    value: Callable[[float, float, int], float]  # (k, L, q) -> the threshold
    reason: str


def _midway(k, L, q):
    """Halfway between chance over a class's features (1/L) and certainty (1)."""
    return 1 / L + (1 - 1 / L) / 2


def _half_gap(k, L, q):
    """Half the predicted single-view gap between MRP+FT (~1) and SL (~1/L + (1 - 1/L)/k)."""
    return (1 - 1 / L) * (1 - 1 / k) / 2


THRESHOLDS: dict[str, Rule] = {
    "sl_fits": Rule(
        ">=", "1", "0.99", lambda k, L, q: 0.99,
        "P0 Thm 1: SL reaches 100% training accuracy (memorising the single-view points); 0.99 leaves "
        "a few points unfitted at a finite horizon. The same line defines t_fit."),
    "sl_lottery_window": Rule(
        ">=", "every seed (w.h.p.)", "1/2 of seeds", lambda k, L, q: SEEDS_MAJORITY,
        "P0: the lottery holds w.h.p. over the initialisation for every T after fitting: t_fit < t_erode "
        "in a majority of seeds (Wilson interval: 4 of 4 seeds hold, 0 of 4 fail)."),
    "sl_one_per_class": Rule(
        ">=", "~1 (almost every class)", "1/2", lambda k, L, q: 0.5,
        "P0 Thm 1: exactly one feature captured for almost every class; 'almost every' is asymptotic in "
        "k, so at k ~ 10 a majority of classes. Falling below it is one way t_erode ends the window."),
    "sl_lottery_agreement": Rule(
        ">=", "~1 (winner = initial argmax)", "1/L + (1 - 1/L)/2", _midway,
        "P0 Thm 1: the feature with the largest Lambda(0) wins. Chance agreement is 1/L, so the winner "
        "must agree with the initial argmax at least halfway from chance to certainty."),
    "sl_single_view_at_fit": Rule(
        "<=", "~1/L + (1 - 1/L)/k", "1/L + (1 - 1/L)/2", _midway,
        "P0: SL is right on a single-view point when its strong feature is the class's winner (1/L), "
        "else guesses; a model with every feature is right (1). Reaching the midpoint is the other way "
        "t_erode ends the window."),
    "mrp_captures_all": Rule(
        ">=", "1 (every feature)", "0.95", lambda k, L, q: 0.95,
        "P1: MRP captures every feature of every class; 0.95 allows one feature in twenty (k L = 20 at "
        "the default). The same line defines t_cap."),
    "mrp_capture_time": Rule(
        ">=", "every seed, by T = poly(k)/eta", "1/2 of seeds", lambda k, L, q: SEEDS_MAJORITY,
        "P1: capture by T = poly(k)/eta, i.e. within MRP's horizon: t_cap finite in a majority of seeds."),
    "mrp_in_window": Rule(
        ">=", "every seed", "1/2 of seeds", lambda k, L, q: SEEDS_MAJORITY,
        "P1 against P0: MRP has all features while SL still has one per class (t_cap <= t_erode; a "
        "window still open at the last checkpoint SL reached counts as inf when t_cap is within it, else the "
        "seed is unknown) in a majority of seeds. " + SCALE_NOTE),
    "ft_keeps": Rule(
        ">=", "1 (all kept)", "0.95", lambda k, L, q: 0.95,
        "P1: fine-tuning keeps the captured features: min(1, captured after fine-tuning / MRP's "
        "captured at ft_from), with the same allowance as mrp_captures_all."),
    "mrpft_beats_sl_at_fit": Rule(
        ">=", "(1 - 1/L)(1 - 1/k)", "(1 - 1/L)(1 - 1/k)/2", _half_gap,
        "P1: MRP+FT is right on single-view data (~1), SL at t_fit only ~1/L + (1 - 1/L)/k; the paired "
        "gap in acc_single must reach half the predicted gap."),
    "mrpft_beats_sl_at_horizon": Rule(
        ">=", "(1 - 1/L)(1 - 1/k)", "(1 - 1/L)(1 - 1/k)/2", _half_gap,
        "As mrpft_beats_sl_at_fit, with SL at its horizon (P0: the lottery holds for every T after "
        "fitting, so the gap persists)."),
    "sl_race": Rule(
        "=", "-(q - 2)", "-(q - 2)", lambda k, L, q: -(q - 2),
        "P0: near 0 SL's gradient on a feature ~ Lambda^(q-1), so its hitting time ~ Lambda(0)^-(q-2), "
        "while the class is unfitted: fitted over each class's first feature to reach the capture line "
        "(a loser's later rise comes after the class fits and is not the race). Holds when the 95% CI "
        "of the log-log slope contains it and excludes MRP's -(2q - 2); fails when it excludes it."),
    "mrp_race": Rule(
        "=", "-(2q - 2)", "-(2q - 2)", lambda k, L, q: -(2 * q - 2),
        "P1, data2vec with a stop-gradient teacher: the gradient ~ Lambda^(2q-1), hitting time ~ "
        "Lambda(0)^-(2q-2), for every feature (no class race in MRP); same verdict rule against SL's "
        "-(q - 2). Not reported for other MRP variants (the theory gives no exponent for them)."),
}

CLAIM_COLUMNS = ["grid_point", "claim", "statement", "measured", "lo", "hi", "expected", "threshold",
                 "verdict", "seeds"]
WINDOW_COLUMNS = ["grid_point", "seed", "t_fit", "t_erode", "t_cap", "sl_one_at_fit", "acc_single_at_fit",
                  "agreement_at_fit", "sl_end", "in_window"]


# ---------------------------------------------------------------- windows on the GD clock


def _trajectory(rows: pd.DataFrame, method: str) -> pd.DataFrame:
    return rows[rows["method"] == method].sort_values("gd_time", kind="stable")


def _first_time(traj: pd.DataFrame, condition: pd.Series) -> float:
    """GD time of traj's first row where condition holds: inf if none (not within the horizon),
    NaN if there is no trajectory at all (the method was not run) or if it never holds but the
    run stopped at train.max_steps before its horizon (unknown, not 'never')."""
    if not len(traj):
        return math.nan
    hit = traj.loc[condition, "gd_time"]
    if len(hit):
        return float(hit.min())
    stopped = "reached" in traj.columns and not bool(traj["reached"].iloc[-1])
    return math.nan if stopped else math.inf


def windows(summary: pd.DataFrame, L: int = 2) -> pd.DataFrame:
    """The GD-time windows of each (grid_point, seed), from the summary's sl and mrp rows.

    summary: rows of grid points sharing L (features per class); k = features_total / L.
    Columns (GD times; np.inf = not within the horizon, NaN = the method was not run, or stopped
    at train.max_steps before its horizon without the event):
      t_fit    first SL gd_time with acc_train >= THRESHOLDS sl_fits (0.99),
      t_erode  first SL gd_time >= t_fit with classes_one_captured < k/2 or acc_single >= the
               sl_single_view_at_fit line (0.75 at L = 2); inf: the window is open at the horizon;
               NaN when t_fit is inf (SL never fits, so it has no window),
      t_cap    first MRP gd_time with features_captured >= 0.95 features_total,
      sl_one_at_fit, acc_single_at_fit, agreement_at_fit: SL's classes_one_captured / k,
               acc_single and lottery_agreement at t_fit,
      sl_end   SL's last checkpoint reached (its horizon, or the last before max_steps stopped it),
      in_window  t_cap <= t_erode: MRP has 95% of the features while SL still has one per class
               (1.0 / 0.0; also 1.0 when SL fit, its window was still open at sl_end and t_cap <=
               sl_end); NaN when unknown: either time NaN otherwise, or SL's window still open at
               sl_end while t_cap lies past it (SL was not run that long), or MRP never captured
               while SL's window is still open.
    """
    rows = []
    for (gp, seed), g in summary.groupby(["grid_point", "seed"], sort=True):
        sl, mrp = _trajectory(g, "sl"), _trajectory(g, "mrp")
        k = float(g["features_total"].iloc[0]) / L
        t_fit = _first_time(sl, sl["acc_train"] >= THRESHOLDS["sl_fits"].value(k, L, 0))
        eroded = ((sl["classes_one_captured"] < THRESHOLDS["sl_one_per_class"].value(k, L, 0) * k)
                  | (sl["acc_single"] >= THRESHOLDS["sl_single_view_at_fit"].value(k, L, 0)))
        t_erode = _first_time(sl, (sl["gd_time"] >= t_fit) & eroded) if math.isfinite(t_fit) else math.nan
        t_cap = _first_time(mrp, mrp["features_captured"]
                            >= THRESHOLDS["mrp_captures_all"].value(k, L, 0) * mrp["features_total"])
        at_fit = sl[sl["gd_time"] == t_fit].head(1)
        one, acc, agree = ((at_fit["classes_one_captured"].iloc[0] / k, at_fit["acc_single"].iloc[0],
                            at_fit["lottery_agreement"].iloc[0]) if len(at_fit) else (math.nan,) * 3)
        done = sl[sl["reached"]] if "reached" in sl.columns else sl
        sl_end = float(done["gd_time"].max()) if len(done) else math.nan
        rows.append((gp, seed, t_fit, t_erode, t_cap, one, acc, agree, sl_end,
                     _in_window(t_cap, t_erode, sl_end, t_fit)))
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


def _in_window(t_cap: float, t_erode: float, sl_end: float, t_fit: float) -> float:
    """1.0 if t_cap <= t_erode, 0.0 if not, NaN if the runs cannot tell (see `windows`)."""
    open_at_end = math.isfinite(t_fit) and not math.isfinite(t_erode)  # inf, or NaN: stopped at max_steps
    if open_at_end and t_cap <= sl_end:
        return 1.0  # SL's window was still open at the last time it reached, after MRP had captured
    if math.isnan(t_cap) or math.isnan(t_erode):
        return math.nan
    if math.isinf(t_erode):
        return math.nan  # SL's window is open at its horizon, MRP caps later (or never): unknown
    return float(t_cap <= t_erode)


def geometric_mean_ci(times) -> tuple[float, float, float, int, int]:
    """Geometric mean of the positive finite times with the 95% Student-t interval of their log:
    (mean, lo, hi, n_inf, n). NaN times are left out; n_inf counts the inf ones (not in the mean)."""
    t = np.asarray(times, float)
    t = t[~np.isnan(t)]
    finite = t[np.isfinite(t) & (t > 0)]
    m, lo, hi = mean_ci(np.log10(finite))
    return 10.0**m, 10.0**lo, 10.0**hi, int(np.isinf(t).sum()), int(t.size)


def _fmt_time(times) -> str:
    """'mean [lo, hi]' of `geometric_mean_ci`, and how many seeds are inf."""
    m, lo, hi, n_inf, n = geometric_mean_ci(times)
    text = "n/a" if math.isnan(m) else f"{m:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if not math.isnan(lo) else "")
    return text + (f"; inf in {n_inf} of {n} seeds" if n_inf else "")


def window_line(win: pd.DataFrame) -> str:
    """One line on a grid point's windows (rows of `windows`): geometric means over seeds, 95% CIs."""
    n_fit = int(np.isfinite(win["t_fit"]).sum())
    return (f"Windows in GD time (geometric mean [95% CI] over {len(win)} seeds; inf: not within the "
            f"horizon): SL fits at t_fit = {_fmt_time(win['t_fit'])}. In the {n_fit} seeds that fit, SL "
            f"keeps one feature per class until t_erode = {_fmt_time(win['t_erode'])} (inf: the window is "
            f"open at the horizon). MRP captures 95% of the features at t_cap = {_fmt_time(win['t_cap'])}. "
            f"{SCALE_NOTE}")


# ---------------------------------------------------------------- the race


def hitting_gd_times(features: pd.DataFrame, method: str, threshold: float) -> pd.DataFrame:
    """Per (grid_point, seed, cls, feature) of `method`: lam_init, t_hit (the GD time at which
    Lambda first reaches `threshold`) and winner (the first feature of its class to reach it).

    t_hit is interpolated linearly in (log gd_time, log Lambda) between the last logged time
    below the threshold and the first at or above it (the first logged time itself when the one
    before is at time 0 or has Lambda <= 0); inf when Lambda never reaches it within the horizon.
    Columns: grid_point, seed, cls, feature, lam_init, t_hit, winner.
    """
    keys = [c for c in ("grid_point", "seed", "cls", "feature") if c in features.columns]
    f = features[features["method"] == method].sort_values(keys + ["gd_time"], kind="stable")
    grouped = f.groupby(keys, sort=True)
    above = f["lam"] >= threshold
    first = above & (above.astype(int).groupby([f[c] for c in keys]).cumsum() == 1)
    t0, lam0 = grouped["gd_time"].shift()[first], grouped["lam"].shift()[first]
    t1, lam1 = f.loc[first, "gd_time"], f.loc[first, "lam"]
    usable = (t0 > 0) & (lam0 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.log(threshold / lam0) / np.log(lam1 / lam0)
        t_interp = np.exp(np.log(t0) + frac * np.log(t1 / t0))
    hits = f.loc[first, keys].assign(t_hit=np.where(usable, t_interp, t1))
    out = grouped["lam_init"].first().reset_index().merge(hits, on=keys, how="left")
    out["t_hit"] = out["t_hit"].fillna(math.inf)
    rank = out.groupby(keys[:-1])["t_hit"].rank(method="first")
    out["winner"] = (rank == 1) & np.isfinite(out["t_hit"])
    return out


def race_law(features: pd.DataFrame, method: str, threshold: float, q: int, winners: bool = False) -> dict:
    """Fit log t_hit = a + b log lam_init over the features of `method` that reach `threshold`
    (with winners=True only each class's first feature to reach it: see THRESHOLDS sl_race).

    features: one grid point's rows (features DataFrame). Theory (theory.md): b = -(q - 2) for
    SL, -(2q - 2) for MRP with a stop-gradient teacher. Returns {b, ci: (lo, hi) 95%, n: fitted
    features, censored: features that never reach the threshold, seeds, expected}.
    """
    hits = hitting_gd_times(features, method, threshold)
    used = hits[hits["winner"]] if winners else hits
    fit = fit_power_law(used["t_hit"], used["lam_init"])
    expected = THRESHOLDS["sl_race" if method == "sl" else "mrp_race"].value(0, 0, q)
    return dict(b=fit["slope"], ci=(fit["lo"], fit["hi"]), n=fit["n"],
                censored=int(np.isinf(hits["t_hit"]).sum()), seeds=int(hits["seed"].nunique()),
                expected=float(expected))


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


# ---------------------------------------------------------------- verdicts


def verdict(lo: float, hi: float, threshold: float, sense: str = ">=", seeds: int = 2,
            rival: float | None = None) -> str:
    """holds / fails / inconclusive for an interval [lo, hi] against a threshold.

    sense ">=": holds if lo >= threshold, fails if hi < threshold; "<=": mirrored. sense "=":
    holds if the interval contains the threshold and not `rival` (the other method's value),
    fails if it excludes the threshold. Fewer than 2 seeds or a NaN bound: inconclusive.
    """
    if seeds < 2 or math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if sense == ">=":
        return "holds" if lo >= threshold else "fails" if hi < threshold else "inconclusive"
    if sense == "<=":
        return "holds" if hi <= threshold else "fails" if lo > threshold else "inconclusive"
    if not lo <= threshold <= hi:
        return "fails"
    return "holds" if rival is None or not lo <= rival <= hi else "inconclusive"


def point_config(cfg: C.Config, rows: pd.DataFrame) -> C.Config:
    """The config of the grid point whose rows these are: cfg with the rows' grid-key columns
    (dotted config keys such as net.q) applied as the sweep applied them (`regime.point`: a
    data.k column carries the other keys to that k); cfg itself if they do not apply."""
    keys = [c for c in rows.columns if c in C.all_keys()]
    values = {c: rows[c].iloc[0].item() if isinstance(rows[c].iloc[0], np.generic) else rows[c].iloc[0]
              for c in keys}
    try:
        return regime.point(cfg, values)
    except C.ConfigError:
        return cfg


class _Point:
    """Makes a grid point's claim rows: the rule's threshold at this point's k, L, q."""

    def __init__(self, gp: int, k: float, L: int, q: int):
        self.gp, self.k, self.L, self.q = gp, k, L, q

    def row(self, claim: str, statement: str, m: float, lo: float, hi: float, seeds: int,
            rival: float | None = None) -> dict:
        rule = THRESHOLDS[claim]
        thr = float(rule.value(self.k, self.L, self.q))
        value = "" if rule.formula == f"{thr:g}" else f" = {thr:.3g}"
        test = (f"the 95% CI contains {rule.formula}{value}, not {rival:g}" if rule.sense == "=" else
                f"{rule.sense} {rule.formula}{value}")
        return dict(grid_point=self.gp, claim=claim, statement=statement, measured=m, lo=lo, hi=hi,
                    expected=f"theory {rule.expected}; holds if {test}", threshold=thr,
                    verdict=verdict(lo, hi, thr, rule.sense, seeds, rival), seeds=seeds)

    def mean(self, claim: str, statement: str, values, bounds=None) -> dict:
        """Mean of per-seed values with its Student-t interval."""
        v = np.asarray(values, float)
        return self.row(claim, statement, *mean_ci(v, bounds=bounds), int(np.isfinite(v).sum()))

    def share(self, claim: str, statement: str, success, defined) -> dict:
        """Share of seeds (those where `defined`) with `success`, with its Wilson interval."""
        success, defined = np.asarray(success, bool), np.asarray(defined, bool)
        n = int(defined.sum())
        return self.row(claim, statement, *wilson_ci(int((success & defined).sum()), n), n)


def _per_seed(rows: pd.DataFrame, method: str, column: str, seeds) -> np.ndarray:
    """`column` of `method`'s row per seed (NaN where missing), in the order of `seeds`."""
    by_seed = rows[rows["method"] == method].drop_duplicates("seed").set_index("seed")[column]
    return by_seed.reindex(seeds).to_numpy(float)


def _mrp_at_ft_from(s: pd.DataFrame, final: pd.DataFrame, seeds) -> np.ndarray:
    """MRP's features_captured at the GD time its final fine-tuning started from, per seed."""
    ft_from = final.loc[final["method"] == "mrp_ft", "ft_from"]
    if not len(ft_from):
        return np.full(len(seeds), math.nan)
    mrp = s[(s["method"] == "mrp") & np.isclose(s["checkpoint"], ft_from.iloc[0])]
    return _per_seed(mrp, "mrp", "features_captured", seeds)


def _point_claims(p: _Point, s: pd.DataFrame, win: pd.DataFrame, final: pd.DataFrame) -> list[dict]:
    """The summary claims of one grid point: s its summary rows, win its windows, final its horizon rows."""
    seeds = win["seed"].to_numpy()
    t_fit, t_erode, t_cap = (win[c].to_numpy(float) for c in ("t_fit", "t_erode", "t_cap"))
    fit_known, fitted = ~np.isnan(t_fit), np.isfinite(t_fit)
    n_fit = f"{int(fitted.sum())} of {int(fit_known.sum())} seeds fit"
    sl_single_final = _per_seed(final, "sl", "acc_single", seeds)
    ft_single = _per_seed(final, "mrp_ft", "acc_single", seeds)
    before = _mrp_at_ft_from(s, final, seeds)
    kept = np.minimum(1.0, _per_seed(final, "mrp_ft", "features_captured", seeds)
                      / np.where(before > 0, before, np.nan))
    mrp_share = (_per_seed(final, "mrp", "features_captured", seeds)
                 / _per_seed(final, "mrp", "features_total", seeds))
    return [
        p.mean("sl_fits", "SL fits its training set: acc_train at SL's horizon",
               _per_seed(final, "sl", "acc_train", seeds), bounds=(0, 1)),
        p.share("sl_lottery_window", f"SL has a lottery window, t_fit < t_erode (share of seeds); t_fit = "
                f"{_fmt_time(t_fit)}, t_erode = {_fmt_time(t_erode)}", t_fit < t_erode, fit_known),
        p.mean("sl_one_per_class", f"SL at t_fit: share of classes with exactly one feature captured ({n_fit})",
               win["sl_one_at_fit"], bounds=(0, 1)),
        p.mean("sl_lottery_agreement", f"SL at t_fit: share of classes whose leading feature is the initial "
               f"argmax ({n_fit})", win["agreement_at_fit"], bounds=(0, 1)),
        p.mean("sl_single_view_at_fit", f"SL at t_fit: single-view test accuracy ({n_fit})",
               win["acc_single_at_fit"], bounds=(0, 1)),
        p.mean("mrp_captures_all", "MRP at its horizon: share of all features captured", mrp_share, bounds=(0, 1)),
        p.share("mrp_capture_time", f"MRP captures 95% of the features within its horizon (share of seeds); "
                f"t_cap = {_fmt_time(t_cap)}", np.isfinite(t_cap), ~np.isnan(t_cap)),
        p.share("mrp_in_window", f"MRP captures before SL's window closes, t_cap <= t_erode (share of the "
                f"seeds where SL fits); t_cap = {_fmt_time(t_cap)}, t_erode = {_fmt_time(t_erode)}. {SCALE_NOTE}",
                win["in_window"].to_numpy(float) == 1, ~np.isnan(win["in_window"].to_numpy(float))),
        p.mean("ft_keeps", "MRP+FT at its horizon: share of MRP's captured features (at ft_from) still "
               "captured, min(1, after / before)", kept, bounds=(0, 1)),
        p.mean("mrpft_beats_sl_at_fit", f"single-view accuracy, MRP+FT at its horizon minus SL at t_fit, "
               f"paired by seed ({n_fit})", ft_single - win["acc_single_at_fit"].to_numpy(float), bounds=(-1, 1)),
        p.mean("mrpft_beats_sl_at_horizon", "single-view accuracy, MRP+FT at its horizon minus SL at its "
               "horizon, paired by seed", ft_single - sl_single_final, bounds=(-1, 1)),
    ]


def _race_claims(p: _Point, features: pd.DataFrame, cfg: C.Config) -> list[dict]:
    """The race-law rows of one grid point: SL over each class's winner, MRP (only for a
    stop-gradient data2vec teacher) over every feature; each statement also gives the other fit."""
    threshold = cfg.metrics.capture_frac * cfg.net.varrho
    methods = ["sl"] + (["mrp"] if cfg.mrp.target == "data2vec" and cfg.mrp.teacher == "stopgrad" else [])
    rows = []
    for method in methods:
        winners = method == "sl"
        law, other = (race_law(features, method, threshold, p.q, w) for w in (winners, not winners))
        rival = THRESHOLDS["mrp_race" if method == "sl" else "sl_race"].value(p.k, p.L, p.q)
        used, unused = ("each class's first feature", "all features") if winners else \
            ("all features", "each class's first feature")
        statement = (f"{method.upper()} race: slope b of log t_hit on log Lambda(0), t_hit = first GD time with "
                     f"Lambda >= {threshold:g}, over {used} ({law['n']} fitted; {law['censored']} of all never "
                     f"reach it); over {unused}: b = {other['b']:.3g} [{other['ci'][0]:.3g}, {other['ci'][1]:.3g}]")
        rows.append(p.row(f"{method}_race", statement, law["b"], *law["ci"], law["seeds"], rival))
    return rows


def claims(summary: pd.DataFrame, features: pd.DataFrame | None = None, cfg: C.Config | None = None
           ) -> pd.DataFrame:
    """One row per (grid point, prediction): columns CLAIM_COLUMNS (measured = mean or share of
    seeds, lo/hi its 95% interval, threshold and verdict from THRESHOLDS).

    cfg: the run's base config (default: Config()); grid-key columns of the summary are applied
    to it per grid point (for L, q, varrho, the MRP variant). With `features`, also the race laws.
    Rows of diverged runs (diverged == True) are left out, as in the figures.
    """
    cfg = cfg or C.Config()
    summary = summary[~diverged_mask(summary)]
    final = tables.last(summary)
    rows = []
    for gp, s in summary.groupby("grid_point", sort=True):
        pcfg = point_config(cfg, s)
        L, q = pcfg.data.L, pcfg.net.q
        p = _Point(int(gp), float(s["features_total"].iloc[0]) / L, L, q)
        rows += _point_claims(p, s, windows(s, L), final[final["grid_point"] == gp])
        if features is not None and len(features):
            rows += _race_claims(p, features[features["grid_point"] == gp], pcfg)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# ---------------------------------------------------------------- report and CLI


def _json_value(v):
    """A JSON-safe scalar: NaN -> None, +-inf -> "inf" / "-inf", numpy scalars -> Python."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3g}"
    return str(v).replace("|", "\\|")


def _md_table(df: pd.DataFrame, columns) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df[columns].itertuples(index=False)]
    return lines


def _point_label(rows: pd.DataFrame, grid: dict) -> str:
    values = [f"{key} = {rows[key].iloc[0]}" for key in grid if key in rows]
    return f" ({', '.join(values)})" if values else ""


def markdown(table: pd.DataFrame, summary: pd.DataFrame, cfg: C.Config, grid: dict | None = None) -> str:
    """The claims report as markdown: per grid point its windows line and claims table, then THRESHOLDS."""
    diverged = diverged_mask(summary)
    lines = ["# Claims: the theory's predictions on the GD clock", "",
             "Verdicts: holds / fails when the 95% interval over seeds lies on one side of the threshold, "
             "inconclusive when it straddles it (or with fewer than 2 seeds). Times are GD times "
             f"(sums of step sizes); inf = not within the horizon. Rows of diverged runs left out: "
             f"{int(diverged.sum())}. " + SCALE_NOTE, ""]
    for gp, s in summary[~diverged].groupby("grid_point", sort=True):
        L = point_config(cfg, s).data.L
        lines += [f"## Grid point {gp}{_point_label(s, grid or {})}", "", window_line(windows(s, L)), ""]
        lines += _md_table(table[table["grid_point"] == gp],
                           ["claim", "verdict", "measured", "lo", "hi", "threshold", "seeds", "expected",
                            "statement"])
        lines.append("")
    rules = pd.DataFrame([(claim, r.sense, r.formula, r.expected, r.reason) for claim, r in THRESHOLDS.items()],
                         columns=["claim", "sense", "threshold", "theory", "reason"])
    lines += ["## Thresholds", ""] + _md_table(rules, list(rules.columns)) + [""]
    return "\n".join(lines)


def report(out_dir) -> str:
    """Claims of a results directory: writes DIR/claims.json (a list of CLAIM_COLUMNS dicts; NaN ->
    null, inf -> "inf") and DIR/claims.md, and returns the markdown. Raises ResultsError or
    ConfigError (one-line messages) for a directory without results."""
    res = load_results(out_dir)
    table = claims(res.summary, res.features, res.cfg)
    records = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
    (res.out / "claims.json").write_text(json.dumps(records, indent=1, allow_nan=False) + "\n")
    text = markdown(table, res.summary, res.cfg, res.grid)
    (res.out / "claims.md").write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mvsim.claims",
        description="Test the theory's predictions on a results directory: SL's lottery window (t_fit, "
                    "t_erode), MRP's capture time t_cap, fine-tuning, MRP+FT against SL, and the race "
                    "laws, each with a 95%% interval over seeds and a verdict (holds / fails / "
                    "inconclusive). Writes DIR/claims.md and DIR/claims.json and prints the markdown.")
    parser.add_argument("dir", metavar="DIR", help="results directory written by python -m mvsim.sweep")
    args = parser.parse_args(argv)
    try:
        print(report(args.dir))
    except (ResultsError, C.ConfigError) as e:
        print(f"mvsim.claims: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
