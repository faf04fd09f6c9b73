"""Section 3: SL ensembles and distillation over GD time (docs/figures/ensemble.png), from the study
`ensemble` (grid ensemble.size = 2, 4, 8; distillation into a fresh SL model at temperature 4) or
another study directory under results/studies (this round: ensemble_nokd, without distillation):

    python docs/scripts/ensemble_fig.py [STUDY]

Left: features captured as detectors (share of kL) over GD time; right: single-view test accuracy.
Means over seeds. SL and MRP+FT (at its horizon, dashed) are the same at every grid point (paired
seeds); SL's lottery window [t_fit, t_erode) is shaded (geometric means over seeds).
"""
from common import *  # noqa: F401,F403
from mvsim.plotstyle import WIDTH, method_colour

NAME = sys.argv[1] if len(sys.argv) > 1 else "ensemble"
SIZES = {2: ":", 4: "--", 8: "-"}


def main():
    res = study(NAME)
    s = res.summary[res.summary["checkpoint"] > 0]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.8), layout="constrained")
    win = windows.windows(s[s["grid_point"] == 0], res.events[res.events["grid_point"] == 0], res.cfg.data.L)
    t_fit, t_erode = stats.geometric_mean_ci(win["t_fit"])[0], stats.geometric_mean_ci(win["t_erode"])[0]
    for ax, col, label in zip(axes, ("share_features", "acc_single"), ("features captured (share of kL)",
                                                                         "single-view test accuracy")):
        ax.axvspan(t_fit, t_erode, color="#BBBBBB", alpha=0.35, lw=0)
        sl = s[(s["method"] == "sl") & (s["grid_point"] == 0)].groupby("checkpoint")[col].mean()
        ax.plot(sl.index, sl.values, color=method_colour("sl"), label="SL")
        for gp, g in s.groupby("grid_point"):
            size = int(res.point_values(int(gp))["ensemble.size"])
            for m in ("sl_ensemble", "kd"):
                c = g[g["method"] == m].groupby("checkpoint")[col].mean()
                if not len(c):
                    continue
                ax.plot(c.index, c.values, color=method_colour(m), ls=SIZES[size],
                        label=f"{'ensemble' if m == 'sl_ensemble' else 'distilled'} of {size}")
        ft = res.last[(res.last["method"] == "mrp_ft") & (res.last["grid_point"] == 0)][col].mean()
        ax.axhline(ft, color=method_colour("mrp_ft"), ls="--", lw=1, label="MRP+FT (horizon)")
        ax.set(xscale="log", xlabel="GD time", ylabel=label, ylim=(0, 1.02))
    h, lab = axes[0].get_legend_handles_labels()
    plotstyle.below(fig, handles=h, ncol=4, notes=[
        f"8 seeds; means. Shaded: SL's lottery window [t_fit, t_erode) = [{t_fit:.2g}, {t_erode:.2g}] (geometric means)."])
    fig.savefig(FIG / "ensemble.png", dpi=plotstyle.DPI)
    print(FIG / "ensemble.png")


if __name__ == "__main__":
    main()
