"""Verdicts on the theory's predictions: `python -m mvsim.claims DIR` writes DIR/claims.md and DIR/claims.json.

Every method runs on one gradient-descent clock, so a prediction is read at a GD time
(theory.md, "Time is part of the claims"). Per (grid point, seed), `mvsim.windows` reads SL's
window [t_fit, t_erode) and MRP's t_cap from the events table (first GD times at step resolution;
inf: not within the horizon, never reported as measured), and the race laws. `claims` then
turns per-seed values into one row per prediction (`mvsim.predictions.THRESHOLDS`): the mean (or
the share of seeds) with a 95% interval over seeds, the threshold and a verdict:
  holds         the interval lies on the theory's side of the threshold,
  fails         it lies on the other side,
  inconclusive  it straddles the threshold, or fewer than 2 seeds,
  describes     a descriptive row with no verdict (see below).
Means use Student-t intervals, shares of seeds Wilson intervals, race exponents a bootstrap
over seeds (the seed is the unit of independence, not the feature).

Well-posed verdicts only. A loss multiplied by c is the same flow at rate c, with GD times
divided by c (`train.sl_rate`, `train.mrp_rate`), and the theorems fix neither constant. So
every verdict compares quantities of one method, or each method at its own horizon
(invariant to the rates when the horizons move with them; tests/test_claims.py checks it at
mrp_rate 1e3 and 1e-3). GD times of SL and MRP set side by side are reported as a description
with the factor by which one loss would have to be rescaled to change the picture; their trend
in k, in which the factor cancels, is read by `mvsim.scaling`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pandas as pd

from mvsim import assumptions
from mvsim import config as C
from mvsim import tables
from mvsim.results import Results, ResultsError, config_at, load_results
from mvsim.stats import diverged_mask, geometric_mean_ci, mean_ci, wilson_ci
from mvsim.predictions import SCALE_NOTE, THRESHOLDS
from mvsim.windows import fmt_times, race_law, window_line, windows

CLAIM_COLUMNS = ["grid_point", "claim", "statement", "measured", "lo", "hi", "expected", "threshold",
                 "verdict", "seeds"]
# ---------------------------------------------------------------- verdicts


def verdict(lo: float, hi: float, threshold: float, sense: str = ">=", seeds: int = 2,
            rival: float | None = None) -> str:
    """holds / fails / inconclusive for an interval [lo, hi] against a threshold.

    sense ">=": holds if lo >= threshold, fails if hi < threshold; "<=": mirrored. sense "=":
    holds if the interval contains the threshold and not `rival` (the other method's value),
    fails if it excludes the threshold. sense "describe": "describes" (no verdict). Fewer than 2 seeds
    or a NaN bound: inconclusive.
    """
    if sense == "describe":
        return "describes"
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
    return config_at(cfg, values)


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
                "described, no verdict" if rule.sense == "describe" else f"{rule.sense} {rule.formula}{value}")
        if seeds == 2:
            statement += " [2 seeds: an existence result, not a rate]"
        return dict(grid_point=self.gp, claim=claim, statement=statement, measured=m, lo=lo, hi=hi,
                    expected=f"theory {rule.expected}; {'' if rule.sense == 'describe' else 'holds if '}{test}",
                    threshold=thr,
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


def _in_window_best(s: pd.DataFrame, win: pd.DataFrame) -> np.ndarray:
    """Per seed (win's order): SL's highest acc_single at a checkpoint reached inside its lottery
    window [t_fit, t_erode), or at fit_checkpoint when no checkpoint lies inside."""
    sl = s[(s["method"] == "sl") & s["reached"]]
    out = []
    for w in win.itertuples(index=False):
        rows = sl[sl["seed"] == w.seed]
        inside = rows[(rows["checkpoint"] >= w.t_fit * (1 - tables.REACHED_RTOL)) & (rows["checkpoint"] < w.t_erode)]
        out.append(inside["acc_single"].max() if len(inside) else w.acc_single_at_fit)
    return np.asarray(out, float)


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
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = t_cap / t_erode
    both = np.isfinite(ratio) & (ratio > 0)
    factor = float(np.median(ratio[both])) if both.any() else math.nan
    return [
        p.mean("sl_fits", "SL fits its training set: acc_train at SL's horizon",
               _per_seed(final, "sl", "acc_train", seeds), bounds=(0, 1)),
        p.share("sl_lottery_window", f"SL has a lottery window, t_fit < t_erode (share of seeds); t_fit = "
                f"{fmt_times(t_fit)}, t_erode = {fmt_times(t_erode)}", t_fit < t_erode, fit_known),
        p.mean("sl_one_per_class", f"SL at t_fit: share of classes with exactly one feature captured ({n_fit})",
               win["sl_one_at_fit"], bounds=(0, 1)),
        p.mean("sl_lottery_agreement", f"SL at the first checkpoint at or after t_fit: share of classes whose "
               f"leading feature is the initial argmax ({n_fit})", win["agreement_at_fit"], bounds=(0, 1)),
        p.mean("sl_single_view_at_fit", f"SL at the first checkpoint at or after t_fit: single-view test "
               f"accuracy ({n_fit})", win["acc_single_at_fit"], bounds=(0, 1)),
        p.mean("mrp_captures_all", "MRP at its horizon: share of all features captured", mrp_share, bounds=(0, 1)),
        p.share("mrp_capture_time", f"MRP captures 95% of the features within its horizon (share of seeds); "
                f"t_cap = {fmt_times(t_cap)}", np.isfinite(t_cap), ~np.isnan(t_cap)),
        p.mean("ft_keeps", "MRP+FT at its horizon: share of MRP's captured features (at ft_from) still "
               "captured, min(1, after / before)", kept, bounds=(0, 1)),
        p.mean("mrpft_beats_sl_at_fit", f"single-view accuracy, MRP+FT at its horizon minus SL at t_fit, "
               f"paired by seed ({n_fit})", ft_single - win["acc_single_at_fit"].to_numpy(float), bounds=(-1, 1)),
        p.mean("mrpft_beats_sl_in_window", f"single-view accuracy, MRP+FT at its horizon minus SL's best in its "
               f"lottery window [t_fit, t_erode), paired by seed ({n_fit})",
               ft_single - _in_window_best(s, win), bounds=(-1, 1)),
        p.mean("mrpft_vs_sl_at_horizon", "single-view accuracy, MRP+FT at its horizon minus SL at its "
               "horizon (a choice of SL's horizon), paired by seed", ft_single - sl_single_final, bounds=(-1, 1)),
        p.row("cap_over_erode", f"t_cap / t_erode per seed, geometric mean over the {int(both.sum())} seeds "
              f"where both are measured ({int(np.sum(np.isfinite(t_erode) & np.isinf(t_cap)))} more with t_cap "
              f"not within MRP's horizon). Rescaling: MRP's loss multiplied by c = {factor:.3g} (the median "
              f"ratio) puts half of them inside SL's window. {SCALE_NOTE}",
              *geometric_mean_ci(ratio[both])[:3], int(both.sum())),
    ]


def _race_claims(p: _Point, events: pd.DataFrame, cfg: C.Config) -> list[dict]:
    """The race-law rows of one grid point: SL over each class's winner, MRP (only for a
    stop-gradient data2vec teacher) over every feature; each statement also gives the other fit."""
    threshold = cfg.metrics.capture_frac * cfg.net.varrho
    methods = ["sl"] + (["mrp"] if cfg.mrp.target == "data2vec" and cfg.mrp.teacher == "stopgrad" else [])
    rows = []
    for method in methods:
        winners = method == "sl"
        law, other = (race_law(events, method, p.q, w) for w in (winners, not winners))
        rival = THRESHOLDS["mrp_race" if method == "sl" else "sl_race"].value(p.k, p.L, p.q)
        used, unused = ("each class's first feature", "all features") if winners else \
            ("all features", "each class's first feature")
        statement = (f"{method.upper()} race: slope b of log t_hit on log Lambda(0), t_hit = first GD time with "
                     f"Lambda >= {threshold:g} (step resolution), over {used} ({law['n']} fitted in {law['seeds']} "
                     f"seeds, interval by bootstrap over seeds; {law['censored']} of all never reach it); over "
                     f"{unused}: b = {other['b']:.3g} [{other['ci'][0]:.3g}, {other['ci'][1]:.3g}]")
        rows.append(p.row(f"{method}_race", statement, law["b"], *law["ci"], law["seeds"], rival))
    return rows


def claims(summary: pd.DataFrame, events: pd.DataFrame, cfg: C.Config | None = None) -> pd.DataFrame:
    """One row per (grid point, prediction): columns CLAIM_COLUMNS (measured = mean or share of
    seeds, lo/hi its 95% interval, threshold and verdict from THRESHOLDS).

    summary, events: a results directory's tables (mvsim.load, mvsim.load_events); the events give
    the windows and race laws at step resolution. cfg: the run's base config (default: Config());
    grid-key columns of the summary are applied to it per grid point (for L, q, varrho, the MRP
    variant). Rows of diverged runs (diverged == True) are left out, as in the figures.
    """
    if events is None or not {"event", "gd_time"} <= set(events.columns):
        raise ResultsError("the claims need the events table (mvsim.load_events(DIR)); results written "
                           "without it come from an older mvsim: rerun the sweep")
    cfg = cfg or C.Config()
    summary = summary[~diverged_mask(summary)]
    final = tables.last(summary)
    rows = []
    for gp, s in summary.groupby("grid_point", sort=True):
        pcfg = point_config(cfg, s)
        L, q = pcfg.data.L, pcfg.net.q
        p = _Point(int(gp), float(s["features_total"].iloc[0]) / L, L, q)
        e = events[events["grid_point"] == gp]
        rows += _point_claims(p, s, windows(s, e, L), final[final["grid_point"] == gp])
        rows += _race_claims(p, e, pcfg)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdicts(res: Results) -> pd.DataFrame:
    """The claims table of a sweep's `Results` (`mvsim.simulate`'s or `mvsim.load_results`'s): `claims`
    on its summary and events, with its base config."""
    return claims(res.summary, res.events, res.cfg)


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


def markdown(table: pd.DataFrame, summary: pd.DataFrame, events: pd.DataFrame, cfg: C.Config,
             grid: dict | None = None) -> str:
    """The claims report as markdown: per grid point its windows line and claims table, then THRESHOLDS."""
    diverged = diverged_mask(summary)
    lines = ["# Claims: the theory's predictions on the GD clock", "",
             "Verdicts: holds / fails when the 95% interval over seeds lies on one side of the threshold, "
             "inconclusive when it straddles it (or with fewer than 2 seeds); 'describes' rows carry no "
             "verdict. Times are GD times (sums of step sizes) at step resolution; inf = not within the "
             f"horizon. Rows of diverged runs left out: "
             f"{int(diverged.sum())}. " + SCALE_NOTE, ""]
    for gp, s in summary[~diverged].groupby("grid_point", sort=True):
        pcfg = point_config(cfg, s)
        rows = table[table["grid_point"] == gp]
        lines += [f"## Grid point {gp}{_point_label(s, grid or {})}", "",
                  window_line(windows(s, events[events["grid_point"] == gp], pcfg.data.L)), ""]
        lines += _md_table(rows, ["claim", "verdict", "measured", "lo", "hi", "threshold", "seeds", "expected",
                                  "statement"])
        failing = rows.loc[rows["verdict"] == "fails", "claim"].tolist()
        away = assumptions.departures(pcfg)
        if failing:
            lines += ["", f"Failing here: {', '.join(failing)}. The config departs from the theorems' assumptions "
                          f"in: {'; '.join(away) if away else 'none of those checked'}."]
        lines += ["", "Assumption report (mvsim/assumptions.py):", ""] + assumptions.markdown(pcfg) + [""]
    rules = pd.DataFrame([(claim, r.sense, r.formula, r.expected, r.reason) for claim, r in THRESHOLDS.items()],
                         columns=["claim", "sense", "threshold", "theory", "reason"])
    lines += ["## Thresholds", ""] + _md_table(rules, list(rules.columns)) + [""]
    return "\n".join(lines)


def report(out_dir) -> str:
    """Claims of a results directory: writes DIR/claims.json ({"claims": a list of CLAIM_COLUMNS dicts,
    "assumptions": a list of the assumption report's rows of each grid point}; NaN -> null, inf ->
    "inf") and DIR/claims.md, and returns the markdown. Raises ResultsError or ConfigError (one-line
    messages) for a directory without results."""
    res = load_results(out_dir)
    table = claims(res.summary, res.events, res.cfg)
    records = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
    report_rows = [{"grid_point": int(gp), **{k: _json_value(v) for k, v in r.items()}}
                   for gp, s in res.summary.groupby("grid_point", sort=True)
                   for r in assumptions.report(point_config(res.cfg, s))]
    (res.out / "claims.json").write_text(json.dumps({"claims": records, "assumptions": report_rows}, indent=1,
                                                    allow_nan=False) + "\n")
    text = markdown(table, res.summary, res.events, res.cfg, res.grid)
    (res.out / "claims.md").write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mvsim.claims",
        description="Test the theory's predictions on a results directory: SL's lottery window (t_fit, "
                    "t_erode), MRP's capture time t_cap, fine-tuning, MRP+FT against SL, and the race "
                    "laws, each with a 95%% interval over seeds and a verdict (holds / fails / "
                    "inconclusive; 'describes' for comparisons across the two losses' clocks), and the "
                    "assumption report of each grid point's config. Writes DIR/claims.md and "
                    "DIR/claims.json and prints the markdown.")
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

