"""Section 2 of docs/results.md, the lottery at initialisation, from a results directory's events:

    python docs/scripts/lottery.py results/default

Per (seed, class) of SL: the winner is the class's first feature to be captured (event times at
step resolution), the initial leader is the argmax of Lambda(0). Prints the share of classes whose
winner is the initial leader (mean over seeds, 95% t-interval; pooled, Wilson), the same against
the initial gap between the top two Lambda(0) in units of sigma_0, and the GD time by which the
winner is captured relative to t_fit.
"""
from common import *  # noqa: F401,F403
from mvsim.stats import mean_ci, wilson_ci

BINS = [0, 0.05, 0.1, 0.2, 0.4, 0.8, np.inf]


def races(res):
    """One row per (seed, class) of SL: winner, initial leader, initial gap / sigma_0, winner's capture time."""
    ev = res.events
    cap = ev[(ev["method"] == "sl") & (ev["event"] == "capture") & (ev["grid_point"] == res.ref)]
    sigma_0 = res.point_cfg(res.ref).net.sigma_0
    rows = []
    for (seed, cls), g in cap.groupby(["seed", "cls"], sort=True):
        g = g.sort_values("feature")
        lam0, t = g["lam_init"].to_numpy(float), g["gd_time"].to_numpy(float)
        top = np.sort(lam0)[::-1]
        rows.append({"seed": seed, "cls": cls, "leader": int(np.argmax(lam0)),
                     "winner": int(np.argmin(t)) if np.isfinite(t).any() else -1,
                     "gap": (top[0] - top[1]) / sigma_0, "t_win": float(np.min(t))})
    return pd.DataFrame(rows)


def main(out):
    res = results.load_results(out)
    r = races(res)
    r = r[r["winner"] >= 0]
    r["agree"] = r["winner"] == r["leader"]
    per_seed = r.groupby("seed")["agree"].mean()
    m, lo, hi = mean_ci(per_seed, bounds=(0, 1))
    p, plo, phi = wilson_ci(int(r["agree"].sum()), len(r))
    print(f"{out}: {len(r)} classes with a captured feature in {r['seed'].nunique()} seeds")
    print(f"winner = initial leader: {m:.3f} [{lo:.3f}, {hi:.3f}] (per seed); pooled {int(r['agree'].sum())}/{len(r)} "
          f"= {p:.3f} [{plo:.3f}, {phi:.3f}] (Wilson)\n")
    r["bin"] = pd.cut(r["gap"], BINS, right=False)
    lines = ["| initial gap / sigma_0 | classes | initial leader won | P(agree) [95% Wilson] |", "|---|---|---|---|"]
    for b, g in r.groupby("bin", observed=True):
        n, k = len(g), int(g["agree"].sum())
        p, plo, phi = wilson_ci(k, n)
        lines.append(f"| {b.left:g}-{b.right:g} | {n} | {k} | {p:.2f} [{plo:.2f}, {phi:.2f}] |")
    print("\n".join(lines))
    win = windows.windows(res.summary[res.summary["grid_point"] == res.ref], res.events[res.events["grid_point"] == res.ref],
                          res.point_cfg(res.ref).data.L).set_index("seed")
    ratio = r.join(win["t_fit"], on="seed").eval("t_win / t_fit")
    print(f"\nwinner captured at {stats.geometric_mean_ci(ratio)[0]:.2f} x t_fit (geometric mean over classes; "
          f"range {ratio.min():.2f}-{ratio.max():.2f})")
    figure(r.assign(ratio=ratio))


def figure(r):
    """docs/figures/lottery_gap.png: P(winner = initial leader) against the initial gap, and when the
    winner is captured (relative to t_fit) against the gap, leader-won and leader-lost classes apart."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(plotstyle.WIDTH, 2.6), layout="constrained")
    rows = []
    for bin_, g in r.groupby("bin", observed=True):
        p, lo, hi = wilson_ci(int(g["agree"].sum()), len(g))
        rows.append((np.sqrt(max(bin_.left, 0.02) * min(bin_.right, 2.0)), p, lo, hi))
    x, p, lo, hi = map(np.array, zip(*rows))
    a.errorbar(x, p, yerr=[p - lo, hi - p], fmt="o-", color="#D55E00", capsize=3, ms=4)
    a.axhline(0.5, color="grey", lw=0.8, ls=":")
    a.set(xscale="log", ylim=(0, 1.05), xlabel="initial gap between the top two Lambda(0) / sigma_0",
          ylabel="P(winner = initial leader)")
    for agree, colour, label in ((True, "#0072B2", "leader won"), (False, "#D55E00", "leader lost")):
        g = r[r["agree"] == agree]
        b.scatter(np.maximum(g["gap"], 1e-3), g["ratio"], s=9, color=colour, label=label, alpha=0.7, linewidths=0)
    b.set(xscale="log", yscale="log", xlabel="initial gap / sigma_0", ylabel="winner captured at (x t_fit)")
    b.legend(loc="lower left")
    fig.suptitle("SL's lottery at initialisation (default run; winner = first feature captured, at step resolution)")
    fig.savefig(FIG / "lottery_gap.png", dpi=plotstyle.DPI)
    print(FIG / "lottery_gap.png")


if __name__ == "__main__":
    for out in sys.argv[1:]:
        main(out)
