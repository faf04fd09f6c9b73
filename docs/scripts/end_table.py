"""One study's table on the GD clock: `python docs/scripts/end_table.py STUDY [STUDY ...]`.

Per grid point: SL's windows (t_fit, t_erode) and MRP's t_cap (`windows.windows`, geometric means
over seeds), SL at t_fit and at its horizon, MRP and MRP+FT at their horizons (`tables.last`):
features captured as detectors, classes with exactly one feature, single-view accuracy, the paired
single-view gap MRP+FT - SL, and how many runs reached their horizon. Means over seeds with 95%
Student-t intervals. This replaces the per-study scripts of the old step clock (phase.py, more.py,
ft.py, coverage*.py, study2.py): run it on any study directory after its sweep.
"""
from common import *  # noqa: F401,F403


def at_fit(g, win, method, col):
    """Per seed: `col` of `method` at SL's fit checkpoint (the first checkpoint at or after t_fit)."""
    rows = g[g["method"] == method].merge(win[["seed", "fit_checkpoint"]], on="seed")
    rows = rows[np.isclose(rows["checkpoint"], rows["fit_checkpoint"], rtol=1e-9)]
    return rows.set_index("seed")[col]


def of(cell, total):
    """A count's cell with its total, '12.0 [11.0, 13.0] / 20'."""
    return f"{cell} / {total:.0f}"


def fewest(g, method):
    """Per seed: the fewest features `method` (latest ft_from) has captured at any of its checkpoints."""
    rows = tables.latest_ft(g[(g["method"] == method) & (g["checkpoint"] > 0)])
    return rows.groupby("seed")["features_captured"].min()


EXTRA = {"sl_ensemble": "ensemble", "kd": "KD"}  # methods beyond SL / MRP / MRP+FT, read at SL's t_fit and horizon


def table(name):
    res = study(name)
    s, keys = res.summary, [k for k in res.grid if k in res.summary]
    out = []
    for gp, g in s.groupby("grid_point", sort=True):
        L = res.point_cfg(gp).data.L
        total = float(g["features_total"].iloc[0])
        win = windows.windows(g, res.events[res.events["grid_point"] == gp], L)
        last = tables.last(g)
        by = {m: last[last["method"] == m].set_index("seed") for m in ("sl", "mrp", "mrp_ft")}
        gap = (by["mrp_ft"]["acc_single"] - by["sl"]["acc_single"]) if len(by["mrp_ft"]) else pd.Series(dtype=float)
        reached = {m: f"{int(d['reached'].sum())}/{len(d)}" for m, d in by.items() if len(d)}
        out.append({**{k: g[k].iloc[0] for k in keys},
                    "t_fit": fmt_time(win["t_fit"]), "t_erode": fmt_time(win["t_erode"]), "t_cap": fmt_time(win["t_cap"]),
                    "SL one/class at t_fit": fmt_mean(win["sl_one_at_fit"], 2, (0, 1)),
                    "SL single-view at t_fit": fmt_mean(win["acc_single_at_fit"], 2, (0, 1)),
                    "SL captured (of kL), horizon": of(fmt_mean(by["sl"]["features_captured"], 1, (0, total)), total),
                    "SL single-view, horizon": fmt_mean(by["sl"]["acc_single"], 2, (0, 1)),
                    "MRP captured (of kL)": of(fmt_mean(by["mrp"]["features_captured"], 1, (0, total)), total),
                    "MRP+FT captured (of kL)": of(fmt_mean(by["mrp_ft"]["features_captured"], 1, (0, total)), total),
                    "MRP+FT captured, fewest over its time": fmt_mean(fewest(g, "mrp_ft"), 1, (0, total)),
                    "MRP+FT single-view": fmt_mean(by["mrp_ft"]["acc_single"], 2, (0, 1)),
                    "gap at horizon (paired)": fmt_mean(gap, 2, (-1, 1)),
                    "runs at horizon (SL, MRP, FT)": ", ".join(reached.values())})
        for m, label in EXTRA.items():
            if (g["method"] == m).any():
                end = last[last["method"] == m].set_index("seed")
                out[-1].update({
                    f"{label} captured at t_fit": fmt_mean(at_fit(g, win, m, "features_captured"), 1, (0, total)),
                    f"{label} single-view at t_fit": fmt_mean(at_fit(g, win, m, "acc_single"), 2, (0, 1)),
                    f"{label} captured, horizon": fmt_mean(end["features_captured"], 1, (0, total)),
                    f"{label} single-view, horizon": fmt_mean(end["acc_single"], 2, (0, 1))})
    return pd.DataFrame(out)


VERDICT_CLAIMS = ("sl_one_per_class", "sl_lottery_window", "sl_single_view_at_fit", "mrp_captures_all",
                  "ft_keeps", "mrpft_beats_sl_in_window", "sl_race", "mrp_race")


def verdict_table(name):
    """Per grid point: the claims module's verdict on each prediction (measured value in brackets)."""
    res = study(name)
    t = claims.verdicts(res)
    keys = [k for k in res.grid if k in res.summary]
    out = []
    for gp, g in t.groupby("grid_point", sort=True):
        vals = res.point_values(int(gp))
        row = {k: vals.get(k) for k in keys}
        by = g.set_index("claim")
        for c in VERDICT_CLAIMS:
            if c in by.index:
                r = by.loc[c]
                row[c] = f"{r['verdict']} ({r['measured']:.2f})" if np.isfinite(r["measured"]) else r["verdict"]
        out.append(row)
    return pd.DataFrame(out)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        text = to_md(table(name)) + "\n\nVerdicts (`mvsim.claims`):\n\n" + to_md(verdict_table(name))
        print(f"## {name}\n\n{text}\n")
        (R / f"{name}_table.md").write_text(text + "\n")
