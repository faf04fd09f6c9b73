from common import *
import json
# key, study, default value, which methods come from results/default for all points
PHASES = [
    ("mrp.mask_keep", "phase_mask_keep", None, ["sl"]),
    ("data.mu", "phase_mu", 0.03, []),
    ("data.rho", "phase_rho", 0.05, []),
    ("net.sigma_0", "phase_sigma0", 0.01, []),
    ("net.varrho", "phase_varrho", 1.0, []),
    ("train.sl_lr", "phase_sl_lr", 10.0, ["mrp", "mrp_ft"]),
    ("net.m", "phase_m", 10, []),
    ("data.d", "phase_d", 256, []),
]
NAMES = {"sl": "SL", "mrp": "MRP", "mrp_ft": "MRP+FT"}

def phase_summary(key, study, dval, subst):
    import os
    if not os.path.isdir(f"{R}/studies/{study}/summary"):
        return None
    s, _ = load(study)
    if dval is not None:
        d = default8(key, dval)
        d["grid_point"] = -1
        s = pd.concat([s, d[s.columns.intersection(d.columns)]], ignore_index=True)
    for m in subst:
        s = A.substitute_method(s, store.load(DEFAULT), m, grid_cols=[key])
    s["share"] = s.features_captured / s.features_total
    return s

def table(s, key):
    rows = []
    for v, g in s.groupby(key):
        r = {key: v}
        for m in ["sl", "mrp", "mrp_ft"]:
            gm = g[g.method == m]
            tot = float(g.features_total.iloc[0])
            r[f"{m}_feat"] = P.mean_ci(gm.features_captured, bounds=(0, tot))
            r[f"{m}_both"] = P.mean_ci(gm.classes_all_captured, bounds=(0, 10))
        sl = g[g.method == "sl"]
        r["sl_agree"] = P.mean_ci(sl.lottery_agreement, bounds=(0, 1))
        r["sl_train"] = P.mean_ci(sl.acc_train, bounds=(0, 1))
        r["sl_single"] = P.mean_ci(sl.acc_single, bounds=(0, 1))
        r["ft_single"] = P.mean_ci(g[g.method == "mrp_ft"].acc_single, bounds=(0, 1))
        r["sl_multi"] = P.mean_ci(sl.acc_multi)
        pdiff = A.paired_diff(g, "acc_single")
        r["gap"] = tuple(pdiff.loc[0, ["mean", "lo", "hi"]])
        r["n"] = sl.seed.nunique()
        r["total"] = int(g.features_total.iloc[0])
        r["div"] = int(g.diverged.sum())
        rows.append(r)
    return rows

def md(rows, key):
    out = [f"| {key} | SL features | SL classes with both | SL lottery | SL train acc | MRP features | MRP+FT features | single-view acc SL | single-view acc MRP+FT | gap (paired) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda t, d=2: fmt(*t, d=d)
        out.append(f"| {r[key]} | {f(r['sl_feat'],1)} /{r['total']} | {f(r['sl_both'],1)} | {f(r['sl_agree'])} | {f(r['sl_train'],3)} | "
                   f"{f(r['mrp_feat'],1)} | {f(r['mrp_ft_feat'],1)} | {f(r['sl_single'])} | {f(r['ft_single'])} | {f(r['gap'])} |"
                   + (f" ({r['div']} diverged)" if r['div'] else ""))
    return "\n".join(out)

def panel_row(axes, s, key, label):
    vals = sorted(s[key].unique())
    x = np.arange(len(vals))
    ax = axes[0]
    for j, m in enumerate(["sl", "mrp", "mrp_ft"]):
        a = A.ci_table(s[s.method == m], "share", by=[key], bounds=(0, 1)).set_index(key).loc[vals]
        ax.errorbar(x + (j - 1) * 0.08, a["mean"], yerr=np.clip([a["mean"] - a["lo"], a["hi"] - a["mean"]], 0, None),
                    fmt=P.method_marker(m) + "-", color=P.method_colour(m), ms=4, capsize=2, label=NAMES[m])
    ax.set_ylim(-0.03, 1.05); ax.set_ylabel("share of features\ncaptured")
    ax = axes[1]
    sl = s[s.method == "sl"]
    for col, c, lab, mk in [("lottery_agreement", "#D55E00", "SL lottery agreement", "o"), ("acc_train", "#999999", "SL train accuracy", "s")]:
        a = A.ci_table(sl, col, by=[key], bounds=(0, 1)).set_index(key).loc[vals]
        ax.errorbar(x, a["mean"], yerr=np.clip([a["mean"] - a["lo"], a["hi"] - a["mean"]], 0, None), fmt=mk + "-", color=c, ms=4, capsize=2, label=lab)
    ax.set_ylim(-0.03, 1.05); ax.set_ylabel("share")
    ax = axes[2]
    for j, m in enumerate(["sl", "mrp_ft"]):
        a = A.ci_table(s[s.method == m], "acc_single", by=[key], bounds=(0, 1)).set_index(key).loc[vals]
        ax.errorbar(x + (j - 0.5) * 0.08, a["mean"], yerr=np.clip([a["mean"] - a["lo"], a["hi"] - a["mean"]], 0, None),
                    fmt=P.method_marker(m) + "-", color=P.method_colour(m), ms=4, capsize=2, label=NAMES[m])
    ax.axhline(0.5 + 0.5 / 10, ls=":", color="grey", lw=0.8)
    ax.set_ylim(-0.03, 1.05); ax.set_ylabel("single-view\ntest accuracy")
    for ax in axes:
        ax.set_xticks(x, [f"{v:g}" for v in vals]); ax.set_xlabel(label)

if __name__ == "__main__":
    avail = [(k, st, dv, sb) for k, st, dv, sb in PHASES if phase_summary(k, st, dv, sb) is not None]
    fig, axes = plt.subplots(len(avail), 3, figsize=(10, 2.3 * len(avail)), constrained_layout=True, squeeze=False)
    text = []
    for i, (k, st, dv, sb) in enumerate(avail):
        s = phase_summary(k, st, dv, sb)
        rows = table(s, k)
        text.append(f"### {k}\n\n" + md(rows, k) + "\n")
        panel_row(axes[i], s, k, k + (" (default %g)" % dv if dv is not None else " (default 0.5)"))
        if i == 0:
            for a in axes[i]: a.legend(fontsize=6.5)
    axes[0, 0].set_title("features captured ($\\Lambda\\geq\\varrho$)")
    axes[0, 1].set_title("SL: lottery agreement, train accuracy")
    axes[0, 2].set_title("single-view test accuracy (dotted: 0.55)")
    fig.suptitle("Study 1: one-dimensional phase diagrams (8 seeds per value, mean and 95% t-CI)")
    fig.savefig(f"{FIG}/phase_diagrams.png", dpi=170)
    open(f"{R}/studies/phase_tables.md", "w").write("\n".join(text))
    print("\n".join(text))
