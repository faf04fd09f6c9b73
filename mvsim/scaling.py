"""The claims as k grows: `python -m mvsim.scaling --study DIR... [--map DIR...] --out DIR`.

Reads results directories of `mvsim.sweep` (one per k for the study, from experiments/k*.toml
and the k = 10 default; any grid for the map, from experiments/map_k*_q*.toml) and writes
scaling.md, seeds.csv, points.csv and trends.csv, and the figures k_claims.png and
k_window_map.png.

Per (results directory, grid point, seed), `seed_rows` reads on the GD clock:
  t_fit, t_erode, t_cap     SL's fit, the end of its lottery window, MRP's capture (windows.windows)
  sl_one_at_fit, sl_features_at_fit, agreement_at_fit, acc_single_at_fit   SL at t_fit
  sl_one_at_cap             SL's share of classes with exactly one feature at MRP's t_cap (the
                            same GD time, up to the losses' scales: predictions.SCALE_NOTE)
  ordered                   t_cap <= t_erode: MRP has all features while SL still has one per class
                            (NaN when the runs cannot tell: `ordered`); descriptive, as is sl_one_at_cap
  sl_features, mrp_features, ft_features, sl_single, ft_single   each method at its horizon
`points` aggregates them per point (geometric means of times, Student-t intervals of means,
Wilson intervals of shares of seeds); `trends` fits each quantity against log k over the study's
seeds (per-seed points, Student-t intervals of the slope).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mvsim import claims, predictions, windows
from mvsim.results import ResultsError, load_results
from mvsim.stats import fit_line, geometric_mean_ci, holm, mean_ci, wilson_ci

TIMES = ("t_fit", "t_erode", "t_cap")
SHARES = ("sl_one_at_fit", "sl_features_at_fit", "agreement_at_fit", "acc_single_at_fit", "sl_one_at_cap",
          "sl_features", "mrp_features", "ft_features", "sl_single", "ft_single")

# What each trend fits against log2 k; "log" quantities are fitted as log10 of the per-seed value.
TRENDS = {
    "t_fit": ("log", "SL's fit time t_fit (theory: ~ sigma_0^-(q-2) ~ k at q = 3)"),
    "t_erode": ("log", "end of SL's lottery window t_erode"),
    "window": ("log", "window length t_erode / t_fit"),
    "t_cap": ("log", "MRP's capture time t_cap (regime horizons scale like k^4 at q = 3)"),
    "cap_over_erode": ("log", "t_cap / t_erode: its level is a convention (the losses' scales), its slope is "
                              "not: falling = MRP gains on SL's window as k grows, the scale-free form of P1 vs P0"),
    "sl_one_at_fit": ("lin", "SL's share of classes with exactly one feature at t_fit (theory: -> 1)"),
    "agreement_at_fit": ("lin", "lottery agreement at t_fit (theory: -> 1)"),
    "acc_single_at_fit": ("lin", "SL's single-view accuracy at t_fit (theory: -> 1/2 at L = 2)"),
    "mrp_features": ("lin", "MRP's share of features at its horizon (theory: 1)"),
    "gap_at_fit": ("lin", "MRP+FT's single-view accuracy minus SL's at t_fit (theory: ~1/2)"),
    "gap_at_horizon": ("lin", "MRP+FT's single-view accuracy minus SL's, both at their horizons"),
}


def _at(traj: pd.DataFrame, t: float, column: str) -> float:
    """`column` of the trajectory's row at the first checkpoint reached at or after GD time t (NaN
    if t is not finite or no such checkpoint was logged)."""
    if not math.isfinite(t):
        return math.nan
    done = traj[traj["reached"]] if "reached" in traj else traj
    row = done[done["checkpoint"].to_numpy(float) >= t * (1 - 1e-6)].sort_values("checkpoint")
    return float(row[column].iloc[0]) if len(row) else math.nan


def ordered(t_cap: float, t_erode: float, sl_end: float, t_fit: float) -> float:
    """1.0 if t_cap <= t_erode (MRP has 95% of the features while SL still has one per class), 0.0
    if not, NaN if the runs cannot tell: also 1.0 when SL's window was still open at sl_end, its
    last checkpoint, after t_cap; NaN when it was open there and t_cap lies past it. Descriptive: it
    sets GD times of two losses side by side (predictions.SCALE_NOTE)."""
    open_at_end = math.isfinite(t_fit) and not math.isfinite(t_erode)  # inf, or NaN: stopped at max_steps
    if open_at_end and t_cap <= sl_end:
        return 1.0
    if math.isnan(t_cap) or math.isnan(t_erode) or math.isinf(t_erode):
        return math.nan
    return float(t_cap <= t_erode)


def seed_rows(out) -> pd.DataFrame:
    """One row per (grid point, seed) of a results directory: see the module docstring."""
    res = load_results(out)
    s, last = res.summary, res.last
    win = windows.windows(s, res.events, L=res.cfg.data.L)
    rows = []
    for (gp, seed), w in win.groupby(["grid_point", "seed"], sort=True):
        g = s[(s["grid_point"] == gp) & (s["seed"] == seed)]
        cfg = claims.point_config(res.cfg, g)
        sl = g[g["method"] == "sl"]
        end = last[(last["grid_point"] == gp) & (last["seed"] == seed)].set_index("method")
        w = w.iloc[0]

        def final(method, column):
            return float(end.loc[method, column]) if method in end.index else math.nan

        rows.append({
            "source": Path(out).name, "grid_point": gp, "seed": seed, "k": cfg.data.k, "q": cfg.net.q,
            "sigma_0": cfg.net.sigma_0, "n_train": cfg.data.n_train, "horizon": cfg.train.sl_time,
            "t_fit": w["t_fit"], "t_erode": w["t_erode"], "t_cap": w["t_cap"],
            "sl_one_at_fit": w["sl_one_at_fit"], "agreement_at_fit": w["agreement_at_fit"],
            "acc_single_at_fit": w["acc_single_at_fit"],
            "sl_features_at_fit": _at(sl, w["t_fit"], "share_features"),
            "sl_one_at_cap": _at(sl, w["t_cap"], "share_one"),
            "ordered": ordered(w["t_cap"], w["t_erode"], w["sl_end"], w["t_fit"]), "sl_end": w["sl_end"],
            "sl_features": final("sl", "share_features"), "mrp_features": final("mrp", "share_features"),
            "ft_features": final("mrp_ft", "share_features"), "sl_single": final("sl", "acc_single"),
            "ft_single": final("mrp_ft", "acc_single"),
        })
    df = pd.DataFrame(rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["window"] = df["t_erode"] / df["t_fit"]
        df["cap_over_erode"] = df["t_cap"] / df["t_erode"]
    df["gap_at_fit"] = df["ft_single"] - df["acc_single_at_fit"]
    df["gap_at_horizon"] = df["ft_single"] - df["sl_single"]
    return df


def points(seeds: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, grid point): k, q, sigma_0, seeds, and for each time X: X, X_lo, X_hi
    (geometric mean and 95% interval over the seeds where it is finite), X_inf (seeds where it is
    not within the horizon); for each share Y: Y, Y_lo, Y_hi (mean, 95% Student-t); ordered,
    ordered_lo, ordered_hi (share of seeds with t_cap <= t_erode, Wilson)."""
    rows = []
    for (src, gp), g in seeds.groupby(["source", "grid_point"], sort=False):
        row = {"source": src, "grid_point": gp, "k": int(g["k"].iloc[0]), "q": int(g["q"].iloc[0]),
               "sigma_0": float(g["sigma_0"].iloc[0]), "horizon": float(g["horizon"].iloc[0]), "seeds": len(g)}
        for t in TIMES + ("window", "cap_over_erode"):
            m, lo, hi, n_inf, _ = geometric_mean_ci(g[t])
            row.update({t: m, f"{t}_lo": lo, f"{t}_hi": hi, f"{t}_inf": n_inf})
        for y in SHARES + ("gap_at_fit", "gap_at_horizon"):
            bounds = (-1, 1) if y.startswith("gap") else (0, 1)
            row.update(dict(zip((y, f"{y}_lo", f"{y}_hi"), mean_ci(g[y], bounds=bounds))))
        known = g["ordered"].dropna()
        row.update(dict(zip(("ordered", "ordered_lo", "ordered_hi"),
                            wilson_ci(int(known.astype(bool).sum()), len(known)))))
        rows.append(row)
    return pd.DataFrame(rows)


def trends(seeds: pd.DataFrame) -> pd.DataFrame:
    """Slope of each TRENDS quantity against log2 k (per doubling of k) over the seeds, with its
    95% interval; log quantities in decades per doubling. Each point is one seed's run at one k
    (independent runs), so the seed is the unit of the fit. Seeds where a time is not finite (not
    within the horizon: censored) are left out of that fit and counted in `left_out`; such a trend
    is biased toward the seeds that finished and says so.

    The trends are read together, so each gets its two-sided p-value (slope = 0) and the Holm
    adjustment over the family of all trends fitted (`p_holm`): `direction` is rises / falls when
    p_holm < 0.05, else 'no trend shown'."""
    from scipy.stats import t as student_t

    rows = []
    x = np.log2(seeds["k"].to_numpy(float))
    for name, (kind, what) in TRENDS.items():
        y = seeds[name].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log10(y) if kind == "log" else y
        ok = np.isfinite(y)
        fit = fit_line(x[ok], y[ok])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = abs(fit["slope"]) / fit["se"] if fit["se"] > 0 else (math.inf if fit["slope"] else 0.0)
            p = float(2 * student_t.sf(z, fit["n"] - 2)) if fit["n"] > 2 else math.nan
        rows.append({"quantity": name, "scale": "log10" if kind == "log" else "linear", "what": what,
                     "slope_per_doubling": fit["slope"], "lo": fit["lo"], "hi": fit["hi"], "se": fit["se"], "n": fit["n"],
                     "p": p, "left_out": int((~ok).sum()), "ks": ",".join(str(k) for k in sorted(set(seeds["k"])))})
    df = pd.DataFrame(rows)
    df["p_holm"] = holm(df["p"].to_numpy(float)) if len(df) else []
    df["direction"] = [("rises" if r.slope_per_doubling > 0 else "falls") if r.p_holm < 0.05 else "no trend shown"
                       for r in df.itertuples()]
    return df


# ---------------------------------------------------------------- report


def _time_cell(p: pd.Series, t: str) -> str:
    n_fin = p["seeds"] - p[f"{t}_inf"]
    if math.isnan(p[t]):
        return f"> {p['horizon']:.0e} (all {p['seeds']})" if p[f"{t}_inf"] else "n/a"
    text = f"{p[t]:.2g} [{p[f'{t}_lo']:.2g}, {p[f'{t}_hi']:.2g}]" if not math.isnan(p[f"{t}_lo"]) else f"{p[t]:.2g}"
    return text + (f"; inf {p[f'{t}_inf']}/{p['seeds']}" if p[f"{t}_inf"] and n_fin else "")


def _share_cell(p: pd.Series, y: str) -> str:
    if math.isnan(p[y]):
        return "n/a"
    return f"{p[y]:.2f} [{p[f'{y}_lo']:.2f}, {p[f'{y}_hi']:.2f}]" if not math.isnan(p[f"{y}_lo"]) else f"{p[y]:.2f}"


POINT_TABLE = [("k", None), ("q", None), ("sigma_0", None), ("seeds", None), ("t_fit", "time"),
               ("t_erode", "time"), ("t_cap", "time"), ("sl_one_at_fit", "share"), ("agreement_at_fit", "share"),
               ("acc_single_at_fit", "share"), ("sl_one_at_cap", "share"), ("ordered", "share"),
               ("sl_features", "share"), ("mrp_features", "share"), ("ft_single", "share")]


def points_markdown(pts: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(c for c, _ in POINT_TABLE) + " |", "|" + "---|" * len(POINT_TABLE)]
    for _, p in pts.iterrows():
        cells = [_time_cell(p, c) if kind == "time" else _share_cell(p, c) if kind == "share" else f"{p[c]:g}"
                 for c, kind in POINT_TABLE]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def trends_markdown(tr: pd.DataFrame) -> list[str]:
    lines = ["| quantity | scale | slope per doubling of k [95% CI] | p (Holm) | direction | seeds fitted | "
             "left out (censored) | what |", "|---|---|---|---|---|---|---|---|"]
    for _, r in tr.iterrows():
        slope = "n/a" if math.isnan(r["slope_per_doubling"]) else \
            f"{r['slope_per_doubling']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
        lines.append(f"| {r['quantity']} | {r['scale']} | {slope} | {r['p']:.2g} ({r['p_holm']:.2g}) | "
                     f"{r['direction']} | {r['n']} | {r['left_out']} | {r['what']} |")
    return lines


def report(study: pd.DataFrame, study_pts: pd.DataFrame, tr: pd.DataFrame, map_pts: pd.DataFrame | None) -> str:
    lines = ["# The claims as k grows", "",
             "Times are GD times from the events table, at step resolution (geometric mean [95% CI] over the "
             "seeds where they are finite; inf: not within the horizon, counted and left out of the mean). "
             "sl_one_at_fit is read at t_fit from the events; the other values at fit at the first checkpoint "
             "after it. Shares: mean [95% Student-t CI]; ordered and sl_one_at_cap (described, not verdicts): "
             f"share of seeds with t_cap <= t_erode [Wilson], SL at MRP's t_cap. {predictions.SCALE_NOTE}", "",
             "## Study (configs carried to each k by mvsim/regime.py)",
             ""] + points_markdown(study_pts) + ["", "## Trends against k (per-seed fits on log2 k; p-values "
                                                 "Holm-adjusted over all the trends below)", ""]
    lines += trends_markdown(tr)
    if map_pts is not None and len(map_pts):
        lines += ["", "## Map over (k, q, sigma_0)", ""] + points_markdown(map_pts)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mvsim.scaling", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--study", nargs="+", required=True, metavar="DIR", help="results directories, one per k")
    p.add_argument("--map", nargs="*", default=[], metavar="DIR", help="results directories of the (k, q, sigma_0) map")
    p.add_argument("--out", required=True, help="where to write scaling.md, the CSVs and the figures")
    p.add_argument("--pdf", action="store_true", help="write PDF figures beside the PNGs")
    a = p.parse_args(argv)
    try:
        study = pd.concat([seed_rows(d) for d in a.study], ignore_index=True)
        mapped = pd.concat([seed_rows(d) for d in a.map], ignore_index=True) if a.map else None
    except ResultsError as e:
        print(f"mvsim.scaling: {e}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    study_pts, tr = points(study), trends(study)
    map_pts = points(mapped) if mapped is not None else None
    study.to_csv(out / "seeds.csv", index=False)
    study_pts.to_csv(out / "points.csv", index=False)
    tr.to_csv(out / "trends.csv", index=False)
    if map_pts is not None:
        map_pts.to_csv(out / "map_points.csv", index=False)
    text = report(study, study_pts, tr, map_pts)
    (out / "scaling.md").write_text(text)
    from mvsim import figs_k

    for path in figs_k.write_all(out, study_pts, map_pts, pdf=a.pdf):
        print(f"mvsim.scaling: wrote {path}", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
