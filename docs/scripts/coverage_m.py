from common import *
s, _ = load("phase_m")
d = default8("net.m", 10)
s = pd.concat([s, d[s.columns.intersection(d.columns)]], ignore_index=True)
sm, _ = load("more_features"); dL = default8("data.L", 2)
fig, ax = plt.subplots(figsize=(4.6, 3.2), constrained_layout=True)
pts = []
for m, g in s[s.method == "mrp"].groupby("net.m"):
    miss = 20 - g.features_captured
    pts.append(("L=2, m=%d" % m, m / 2, P.mean_ci(miss / 20), (1 - 1 / 20) ** (10 * m)))
sm = pd.concat([sm, dL[sm.columns.intersection(dL.columns)]], ignore_index=True)
for L, g in sm[sm.method == "mrp"].groupby("data.L"):
    if L == 2: continue
    miss = g.features_total - g.features_captured
    pts.append(("L=%d, m=10" % L, 10 / L, P.mean_ci(miss / (10 * L)), (1 - 1 / (10 * L)) ** 100))
for lab, x, (mm, lo, hi), th in pts:
    c = "#0072B2" if lab.startswith("L=2") else "#D55E00"
    if mm == 0:
        ax.annotate(f"{lab}: none missed\n(0 of 160; theory ~0.004%)", (x, 1.2e-3), fontsize=6.5, ha="center", color=c)
        continue
    ax.errorbar(x, mm, yerr=[[min(max(mm - lo, 0), mm * 0.95)], [max(hi - mm, 0)]], fmt="o", color=c, capsize=3)
    ax.annotate(lab, (x, mm), textcoords="offset points", xytext=(-58, -3) if lab.startswith("L=4") else (6, 4), fontsize=6.5, color=c)
    print(lab, x, mm, lo, hi, th)
xs = np.linspace(1, 100, 200)
ax.plot(xs, np.exp(-xs), color="grey", ls="--", lw=1, label="theory: $e^{-m/L}$ (no kernel wins the feature)")
ax.set_yscale("log"); ax.set_ylim(1e-3, 1)
ax.set_xlabel("encoder kernels per feature, $k m / (k L) = m/L$")
ax.set_ylabel("share of features MRP misses\n(mean over 8 seeds, 95% CI)")
ax.legend(fontsize=6.5)
ax.set_title("MRP coverage: a feature is missed when no kernel wins it", fontsize=8)
ax.set_xlim(0, 11)
fig.savefig(f"{FIG}/mrp_missing_vs_m.png", dpi=200)
