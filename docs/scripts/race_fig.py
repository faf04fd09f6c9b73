from common import *
from race import fits
s3, f3 = load("race_q3"); s4, f4 = load("race_q4_long")
fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
for a, m, title in [(ax[0], "sl", "SL (plain GD): winners' hitting time"), (ax[1], "mrp", "MRP (normalised steps): all features")]:
    for f, q, col in [(f3, 3, "#0072B2"), (f4, 4, "#D55E00")]:
        h, fit = fits(f, m, 1.0, "", winners_only=(m == "sl"))
        h = h[~h.censored]
        a.scatter(h.lam0, h.hit_step, s=9, alpha=0.6, color=col, lw=0)
        xs = np.geomspace(h.lam0.min(), h.lam0.max(), 20)
        a.plot(xs, np.exp(fit["intercept"]) * xs ** fit["slope"], color=col,
               label=f"q={q}: slope {fit['slope']:.2f} [{fit['lo']:.2f}, {fit['hi']:.2f}], n={fit['n']}")
        if m == "sl":
            xm = np.exp(np.log(h.lam0).mean()); ym = np.exp(np.log(h.hit_step).mean())
            a.plot(xs, ym * (xs / xm) ** (-(q - 2)), color=col, ls=":", lw=1)
    a.set_xscale("log"); a.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter, NullFormatter
    for axis in (a.xaxis, a.yaxis):
        axis.set_major_formatter(ScalarFormatter()); axis.set_minor_formatter(NullFormatter())
    a.set_xlabel("$\\Lambda_{i,l}(0)$ (max over kernels at initialisation)")
    a.set_ylabel("first logged step with $\\Lambda_{i,l}\\geq\\varrho$")
    a.set_title(title); a.legend(fontsize=6.5, loc="lower left")
ax[1].set_yticks([40, 50, 60, 70, 80]); ax[1].set_xticks([0.02, 0.05, 0.1, 0.2])
ax[0].text(0.98, 0.97, "dotted: theory slope $-(q-2)$", transform=ax[0].transAxes, ha="right", va="top", fontsize=6.5)
fig.suptitle("Study 8: the race -- hitting time vs initial correlation (q=3: $\\sigma_0$=0.01; q=4: $\\sigma_0$=0.05, 1000 SL steps; 8 seeds, logged every 2 steps)")
fig.savefig(f"{FIG}/race.png", dpi=200)
