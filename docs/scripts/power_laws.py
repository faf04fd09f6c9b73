"""Power laws of the windows in a swept key (docs/results.md, section 1):

    python docs/scripts/power_laws.py phase_sigma0 phase_varrho

Per seed, the least-squares slope of log t against log x over the grid points (t = t_fit, t_erode,
t_cap from `windows.windows`; a seed enters a time's fit only when that time is finite at every grid
point); the mean slope over seeds with its 95% t-interval (the seed is the unit of independence: the
same seed's data and initialisation at every grid point, so the fits are paired).
"""
from common import *  # noqa: F401,F403


def slopes(name):
    res = study(name)
    key = [k for k in res.grid if k in res.summary][0]
    wins = []
    for gp, g in res.summary.groupby("grid_point", sort=True):
        w = windows.windows(g, res.events[res.events["grid_point"] == gp], res.point_cfg(gp).data.L)
        wins.append(w.assign(x=float(res.point_values(int(gp))[key])))
    w = pd.concat(wins, ignore_index=True)
    out = {}
    for col in ("t_fit", "t_erode", "t_cap"):
        per_seed = []
        for _, g in w.groupby("seed"):
            if len(g) > 1 and np.isfinite(g[col]).all():
                per_seed.append(np.polyfit(np.log(g["x"]), np.log(g[col]), 1)[0])
        out[col] = (*stats.mean_ci(per_seed), len(per_seed))
    return key, out


if __name__ == "__main__":
    for name in sys.argv[1:]:
        key, out = slopes(name)
        cells = ", ".join(f"{c} ~ {key}^{fmt(m, lo, hi)} ({n} seeds)" for c, (m, lo, hi, n) in out.items())
        print(f"{name}: {cells}")
