from common import *
s = store.load(DEFAULT); f = store.load_features(DEFAULT)
sig0 = 0.01
t = A.lottery_gaps(f)
per_seed = t.groupby("seed")["agree"].mean()
print("seeds", per_seed.size, "agree per-seed mean CI", P.mean_ci(per_seed, bounds=(0,1)))
print("pooled Wilson", P.wilson_ci(int(t.agree.sum()), len(t)))
t["gap_s"] = t.init_gap / sig0
edges = [0, 0.05, 0.1, 0.2, 0.4, 0.8, t.gap_s.max()]
b = A.agreement_by_gap(t, gap="gap_s", edges=edges)
print(b.to_string())
b2 = A.agreement_by_gap(t, gap="rel_gap", n_bins=5); print(b2.to_string())
w = A.winner_fixed_time(f, "sl", threshold=1.0)
print(w[["fixed_step","hit_step","n_changes"]].describe().to_string())
print("share fixed at step 0:", (w.fixed_step==0).mean(), "fixed before hit:", (w.fixed_step < w.hit_step).mean())
print("hit_step CI over seeds", P.mean_ci(w.groupby("seed").hit_step.mean()))
print("fixed CI over seeds", P.mean_ci(w.groupby("seed").fixed_step.mean()))
changed = w[w.n_changes>0].merge(t, on=["grid_point","seed","cls"])
print(changed[["seed","cls","fixed_step","hit_step","init_gap","agree"]])
# losers that crept up: final lam of second feature
print("SL features captured", P.mean_ci(s[s.method=="sl"].features_captured))
fig, ax = plt.subplots(1, 3, figsize=(10, 3.1), constrained_layout=True)
a = ax[0]
for ag, c, lab in [(True, "#0072B2", "initial leader won"), (False, "#D55E00", "initial leader lost")]:
    u = t[t.agree == ag]
    a.scatter(u.gap_s, u.final_gap, s=10, color=c, alpha=0.7, lw=0, label=f"{lab} ({len(u)})")
a.set_xscale("log"); a.set_xlabel("initial gap top1 $-$ top2 of $\\Lambda_{i,\\cdot}(0)$ / $\\sigma_0$")
a.set_ylabel("final gap of the winner"); a.legend(); a.set_title("(a) one dot per class and seed")
a = ax[1]
err = np.clip([b.p - b.lo, b.hi - b.p], 0, None)
a.errorbar(b.gap_median, b.p, yerr=err, fmt="o-", color="#D55E00", capsize=3)
for _, r in b.iterrows():
    a.text(r.gap_median, 0.03, f"n={int(r.n)}", ha="center", fontsize=6.5)
a.axhline(0.5, ls=":", color="grey"); a.text(0.3, 0.52, "chance (1/L)", fontsize=6.5, color="grey")
a.set_xscale("log"); a.set_ylim(0, 1.05)
a.set_xlabel("initial gap / $\\sigma_0$ (bins, median shown)")
a.set_ylabel("P(final winner = initial argmax)\n95% Wilson CI"); a.set_title("(b) agreement vs initial gap")
a = ax[2]
jit = np.random.default_rng(0).uniform(-3, 3, len(w))
a.scatter(w.hit_step + jit, w.fixed_step + jit, s=10, alpha=0.6, color="#0072B2", lw=0)
lim = [0, 300]; a.plot(lim, lim, color="grey", lw=0.8, ls="--"); a.text(200, 215, "fixed = hit", fontsize=6.5, color="grey", rotation=45)
a.set_xlabel("step at which the winner's $\\Lambda$ reaches $\\varrho$")
a.set_ylabel("step from which argmax$_l\\,\\Lambda_{i,l}$ never changes")
a.set_title("(c) winner fixed vs winner captured")
fig.suptitle("Study 2: SL lottery at initialisation (default regime, 16 seeds x 10 classes)")
fig.savefig(f"{FIG}/lottery_gap.png", dpi=200)
