"""Mechanism ablations (docs/results.md, "Why the predictions fail where they fail"): per grid point
of a results directory, the race exponents (bootstrap over seeds) and the lottery at t_fit.

    python docs/scripts/ablate.py results/ablate/sigma_bg_q3 [more dirs]
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


from mvsim import assumptions, claims, windows  # noqa: E402
from mvsim.results import load_results  # noqa: E402


def table(out) -> list[str]:
    res = load_results(out)
    t = claims.claims(res.summary, res.events, res.cfg)
    lines = [f"`{out}` ({res.summary['seed'].nunique()} seeds)", "",
             "| grid point | SL race [95% CI] | MRP race [95% CI] | SL one feature per class at t_fit | "
             "t_fit | t_erode | t_cap | memorisation load |", "|---|---|---|---|---|---|---|---|"]
    for gp, s in res.summary.groupby("grid_point"):
        rows = t[t["grid_point"] == gp].set_index("claim")
        cell = lambda c, d=2: (f"{rows.loc[c, 'measured']:.{d}f} [{rows.loc[c, 'lo']:.{d}f}, {rows.loc[c, 'hi']:.{d}f}]"
                               if c in rows.index else "n/a")
        win = windows.windows(s, res.events[res.events["grid_point"] == gp], claims.point_config(res.cfg, s).data.L)
        label = ", ".join(f"{k} = {s[k].iloc[0]}" for k in res.grid if k in s)
        lines.append(f"| {label} | {cell('sl_race')} | {cell('mrp_race')} | {cell('sl_one_per_class')} | "
                     f"{windows.fmt_times(win['t_fit'])} | {windows.fmt_times(win['t_erode'])} | "
                     f"{windows.fmt_times(win['t_cap'])} | "
                     f"{assumptions.memorisation_load(claims.point_config(res.cfg, s)):.2f} |")
    return lines


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print("\n".join(table(d)) + "\n")
