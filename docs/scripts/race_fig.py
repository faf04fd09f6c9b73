"""docs/figures/race_gd.png: hitting GD time against Lambda(0), SL (each class's winner) and MRP (every
feature), q = 3 (race_q3) and q = 4 (race_q4); solid: least-squares fit, dotted: the theory's slope
through the points' centre."""
from common import *  # noqa: F401,F403
from matplotlib.ticker import LogLocator, NullFormatter

runs = [("race_q3", "#0072B2"), ("race_q4", "#D55E00")]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
for ax, method, title in [(axes[0], "sl", "SL: each class's winner"), (axes[1], "mrp", "MRP (stop-grad data2vec): every feature")]:
    for name, colour in runs:
        res = study(name)
        q, thr = res.cfg.net.q, res.cfg.metrics.capture_frac * res.cfg.net.varrho
        h = windows.hitting_times(res.events, method)
        if method == "sl":
            h = h[h["winner"]]
        h = h[np.isfinite(h["t_hit"])]
        law = windows.race_law(res.events, method, q, winners=method == "sl")
        x, y = h["lam_init"].to_numpy(), h["t_hit"].to_numpy()
        ax.scatter(x, y, s=9, alpha=0.6, color=colour, lw=0)
        xs = np.geomspace(x.min(), x.max(), 20)
        xm, ym = np.exp(np.log(x).mean()), np.exp(np.log(y).mean())
        ax.plot(xs, ym * (xs / xm) ** law["b"], color=colour,
                label=f"q = {q}: b = {law['b']:.2f} [{law['ci'][0]:.2f}, {law['ci'][1]:.2f}] (theory {law['expected']:g}), n = {law['n']}")
        ax.plot(xs, ym * (xs / xm) ** law["expected"], color=colour, ls=":", lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_locator(LogLocator(subs="all"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("$\\Lambda_{i,l}(0)$ (max over kernels at initialisation)")
    ax.set_ylabel("GD time at which $\\Lambda_{i,l}$ first reaches $\\varrho$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.3, loc="lower left")
fig.suptitle("The race on the GD clock (4 seeds each; q = 3: $\\sigma_0$ = 0.01, q = 4: $\\sigma_0$ = 0.05). "
             "Solid: fit; dotted: theory slope", fontsize=9)
fig.savefig(FIG / "race_gd.png", dpi=110)
print("wrote", FIG / "race_gd.png")
