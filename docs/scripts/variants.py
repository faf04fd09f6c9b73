"""Study 4 on the GD clock: MRP variants against SL's lottery window.

Each variant's study trains SL, MRP and MRP+FT (SL does not read mrp.*: its windows equal race_q3's,
checked below). Per variant: how far MRP got (gd_time reached, steps; runs stop at train.max_steps),
features captured as detectors (Lambda >= varrho and cross <= purity_max) vs features reached
(Lambda alone) and cross_max at MRP's last row (`tables.last`) and at SL's t_erode, t_cap, and
whether t_cap <= t_erode (`windows.windows`). Writes results/studies/variants.md and
docs/figures/mrp_variants_gd.png.
"""
from common import *  # noqa: F401,F403

VARS = [("data2vec, stop-grad teacher, fixed diag decoder b = 1 (default, per-kernel clocks)", "race_q3", None, None),
        ("data2vec, EMA teacher, ema_time = 1e2 (horizon 1e9)", "mrp_teacher_ema1e2_1e9", "mrp.ema_time", 1e2),
        ("data2vec, EMA teacher, ema_time = 1e6", "mrp_teacher", "mrp.ema_time", 1e6),
        ("data2vec, learned diag decoder (rate 0.1)", "mrp_decoder", "mrp.decoder", "diag"),
        ("MAE, fixed decoder", "mrp_mae", "mrp.decoder_lr", 0.0),
        ("MAE, learned decoder (rate 0.1)", "mrp_mae", "mrp.decoder_lr", 0.1)]
STYLE = ["#000000", "#E69F00", "#D55E00", "#56B4E9", "#009E73", "#CC79A7"]


def point(name, key, value):
    if not (R / name / "summary").is_dir():
        return None
    res = study(name)
    s = res.summary
    if key is not None:
        s = s[np.isclose(s[key], value)] if isinstance(value, float) else s[s[key] == value]
    return (s, res.events[res.events["grid_point"].isin(s["grid_point"].unique())]) if len(s) else None


def at_or_before(mrp, seed, t):
    """MRP's last reached row of `seed` at a checkpoint <= t (t = inf: its last reached row)."""
    rows = mrp[(mrp["seed"] == seed) & mrp["reached"] & (mrp["checkpoint"] <= t)]
    return rows.sort_values("checkpoint").iloc[-1]


def row(label, s, events, ref_win):
    total = float(s["features_total"].iloc[0])
    win = windows.windows(s, events)
    if ref_win is not None:
        same = np.allclose(win[["t_fit", "t_erode"]].to_numpy(float), ref_win[["t_fit", "t_erode"]].to_numpy(float))
        print(f"{label}: SL windows equal race_q3's: {same}")
    last = tables.last(s)
    mrp_last = last[last["method"] == "mrp"]
    mrp = s[s["method"] == "mrp"]
    at_erode = pd.DataFrame([at_or_before(mrp, sd, te) for sd, te in zip(win["seed"], win["t_erode"])])
    peak = mrp[mrp["reached"]].groupby("seed")["features_captured"].max()
    past = (mrp_last.set_index("seed")["gd_time"].reindex(win["seed"]).to_numpy() >= win["t_erode"].to_numpy())
    in_window = np.isfinite(win["t_cap"]) & (win["t_cap"] <= win["t_erode"])
    n = len(win)
    return dict(
        variant=label,
        **{"MRP GD time reached": fmt_time(mrp_last["gd_time"]),
           "steps": f"{int(mrp_last['step'].min())}-{int(mrp_last['step'].max())}",
           "reached horizon": f"{int(mrp_last['reached'].sum())}/{n}",
           "MRP got past t_erode": f"{int(past.sum())}/{n}",
           "captured /20 at t_erode (or last reached before it)": fmt_mean(at_erode["features_captured"], 1, (0, total)),
           "reached /20 at t_erode (idem)": fmt_mean(at_erode["features_reached"], 1, (0, total)),
           "captured /20, last row": fmt_mean(mrp_last["features_captured"], 1, (0, total)),
           "reached /20, last row": fmt_mean(mrp_last["features_reached"], 1, (0, total)),
           "cross_max, last row": fmt_mean(mrp_last["cross_max"], 2),
           "most captured at a reached checkpoint": fmt_mean(peak, 1, (0, total)),
           "t_cap": fmt_time(win["t_cap"]),
           "t_cap <= t_erode": f"{int(in_window.sum())}/{n}",
           }), win


def curve(s, col):
    m = s[(s["method"] == "mrp") & s["reached"] & (s["gd_time"] > 0)]
    return (m[col] / m["features_total"]).groupby(m["checkpoint"]).mean()


if __name__ == "__main__":
    rows, curves, ref_win = [], {}, None
    for label, name, key, value in VARS:
        found = point(name, key, value)
        if found is None:
            print(f"{label}: no results in {R / name}")
            continue
        s, events = found
        r, win = row(label, s, events, ref_win)
        ref_win = win if ref_win is None else ref_win
        rows.append(r)
        curves[label] = (curve(s, "features_captured"), curve(s, "features_reached"))
    print("SL windows (race_q3):", windows.window_line(ref_win))
    text = to_md(pd.DataFrame(rows))
    print(text)
    (R / "variants.md").write_text(text + "\n")

    fig, ax = plt.subplots(figsize=(7.5, 3.8), constrained_layout=True)
    t_fit = stats.geometric_mean_ci(ref_win["t_fit"])[0]
    t_erode = stats.geometric_mean_ci(ref_win["t_erode"])[0]
    ax.axvspan(t_fit, t_erode, color="#BBBBBB", alpha=0.5, lw=0,
               label=f"SL lottery window t_fit {t_fit:.1e} .. t_erode {t_erode:.1e} (geometric means)")
    for (label, (cap, reach)), colour in zip(curves.items(), STYLE):
        ax.plot(cap.index, cap.values, color=colour, lw=1.6, marker="o", ms=2.5, label=label)
        ax.plot(reach.index, reach.values, color=colour, lw=1.0, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(1e3, 1.2e10)
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("MRP GD time (sum of step sizes)")
    ax.set_ylabel("share of the 20 features (mean over 4 seeds)")
    ax.set_title("MRP variants: features captured as detectors (solid) and reached, Lambda >= varrho (dashed)\n"
                 "variants to 5e7 (past SL's window), EMA 1e2 towards 1e9, <= 1000 steps; curves end at the last\n"
                 "checkpoint reached. SL and MRP GD times compare only up to loss scales", fontsize=8.5)
    ax.legend(fontsize=6.2, loc="upper left")
    fig.savefig(FIG / "mrp_variants_gd.png", dpi=110)
    print("wrote", FIG / "mrp_variants_gd.png")
