"""Phase diagrams on the GD clock (docs/figures/phase_windows.png), from the study sweeps:

    python docs/scripts/phase_fig.py phase_mask_keep phase_mu phase_rho phase_sigma0 phase_varrho phase_m phase_d

One row per study. Left: SL's window [t_fit, t_erode) and MRP's t_cap against the swept key
(geometric means over seeds, 95% intervals; `windows.windows`; a time not reached within the horizon
in some seeds is drawn from the seeds that reached it, hollow). Right: SL's share of classes with
exactly one feature and its single-view accuracy at t_fit, MRP's share of features captured at its
horizon and the paired single-view gap MRP+FT - SL over SL's window (`claims`: mrpft_beats_sl_in_window).
"""
from common import *  # noqa: F401,F403
from matplotlib.ticker import NullFormatter

from mvsim.plotstyle import WIDTH

TIMES = (("t_fit", "SL fits (t_fit)", "#D55E00", "o"), ("t_erode", "SL's window closes (t_erode)", "#E69F00", "D"),
         ("t_cap", "MRP captures 95% (t_cap)", "#56B4E9", "s"))
SHARES = (("sl_one_per_class", "SL: classes with one feature, t_fit", "#D55E00", "o"),
          ("sl_single_view_at_fit", "SL: single-view accuracy, t_fit", "#CC79A7", "v"),
          ("mrp_captures_all", "MRP: features captured, horizon", "#56B4E9", "s"),
          ("mrpft_beats_sl_in_window", "MRP+FT - SL single-view, SL's window", "#0072B2", "^"))


def rows(name):
    res = study(name)
    key = [k for k in res.grid if k in res.summary][0]
    t = claims.verdicts(res)
    out = []
    for gp, g in res.summary.groupby("grid_point", sort=True):
        L = res.point_cfg(gp).data.L
        win = windows.windows(g, res.events[res.events["grid_point"] == gp], L)
        row = {"x": float(res.point_values(int(gp))[key])}
        for col, *_ in TIMES:
            m, lo, hi, n_inf, n = stats.geometric_mean_ci(win[col])
            row.update({col: m, col + "_lo": lo, col + "_hi": hi, col + "_cens": n_inf})
        by = t[t["grid_point"] == gp].set_index("claim")
        for c, *_ in SHARES:
            row.update({c: by.loc[c, "measured"], c + "_lo": by.loc[c, "lo"], c + "_hi": by.loc[c, "hi"]})
        out.append(row)
    return key, pd.DataFrame(out)


def main(names):
    fig, axes = plt.subplots(len(names), 2, figsize=(WIDTH, 1.9 * len(names)), layout="constrained", squeeze=False)
    for (ax_t, ax_s), name in zip(axes, names):
        key, df = rows(name)
        logx = df["x"].max() / df["x"].min() > 8
        for col, label, colour, marker in TIMES:
            err = np.vstack([df[col] - df[col + "_lo"], df[col + "_hi"] - df[col]])
            ax_t.errorbar(df["x"], df[col], yerr=np.nan_to_num(err), color=colour, marker=marker, ms=4, capsize=2,
                          label=label)
            cens = df[df[col + "_cens"] > 0]
            ax_t.plot(cens["x"], cens[col], ls="none", marker=marker, ms=4, mfc="white", mec=colour, zorder=4)
        ax_t.set_yscale("log")
        ax_t.set_ylabel("GD time")
        for c, label, colour, marker in SHARES:
            err = np.vstack([df[c] - df[c + "_lo"], df[c + "_hi"] - df[c]])
            ax_s.errorbar(df["x"], df[c], yerr=np.nan_to_num(np.clip(err, 0, None)), color=colour, marker=marker,
                          ms=4, capsize=2, label=label)
        ax_s.set_ylim(-0.05, 1.05)
        for ax in (ax_t, ax_s):
            ax.set_xlabel(key)
            if logx:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
    h1, l1 = axes[0, 0].get_legend_handles_labels()
    h2, l2 = axes[0, 1].get_legend_handles_labels()
    plotstyle.below(fig, handles=h1 + h2, ncol=2, notes=[
        "8 seeds per point; geometric means (left) and means (right) with 95% intervals over seeds.",
        "Hollow: not reached within the horizon in some seeds (drawn from the seeds that reached it)."])
    FIG.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIG / "phase_windows.png", dpi=plotstyle.DPI)
    print(FIG / "phase_windows.png")


if __name__ == "__main__":
    main(sys.argv[1:])
