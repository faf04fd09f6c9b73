from common import *
s, f = load("ft_keep")
d = default8("train.ft_kernel_lr", 1.0); d["grid_point"] = -1
fd = store.load_features(DEFAULT); fd = fd[fd.seed < 8].copy(); fd["train.ft_kernel_lr"] = 1.0; fd["grid_point"] = -1
s = pd.concat([s, d[s.columns.intersection(d.columns)]], ignore_index=True)
f = pd.concat([f, fd[f.columns.intersection(fd.columns)]], ignore_index=True)
sh, fh = load("ft_head")
sh = sh.assign(**{"train.ft_kernel_lr": 0.0}); fh = fh.assign(**{"train.ft_kernel_lr": 0.0})
S = pd.concat([s, sh], ignore_index=True); F = pd.concat([f, fh], ignore_index=True)
rows = []
for v, g in S.groupby("train.ft_kernel_lr"):
    mrp, ft = g[g.method == "mrp"], g[g.method == "mrp_ft"]
    both = mrp.merge(ft, on="seed", suffixes=("_m", "_f"))
    lost = (both.features_captured_f < both.features_captured_m)
    ff = F[(F["train.ft_kernel_lr"] == v) & (F.method == "mrp_ft")]
    last = ff[ff.step == ff.step.max()]
    dl = (last.lam - last.lam_init)
    lost_feat = ((last.lam < 1.0) & (last.lam_init >= 1.0)).sum()
    rows.append({"ft": "head only" if v == 0 else f"full, kernel lr {v:g}",
                 "MRP features": fmt(*P.mean_ci(mrp.features_captured, bounds=(0, mrp.features_total.iloc[0])), d=1),
                 "MRP+FT features": fmt(*P.mean_ci(ft.features_captured, bounds=(0, ft.features_total.iloc[0])), d=1),
                 "seeds losing a feature": f"{int(lost.sum())}/{len(both)}",
                 "features lost (all seeds)": int(lost_feat),
                 "mean change of Lambda in FT": fmt(*P.mean_ci(last.groupby('seed').apply(lambda x: (x.lam - x.lam_init).mean())), d=3),
                 "min Lambda after FT": f"{last.lam.min():.2f}",
                 "train acc": fmt(*P.mean_ci(ft.acc_train, bounds=(0, 1)), d=3),
                 "single-view acc": fmt(*P.mean_ci(ft.acc_single, bounds=(0, 1)), d=3),
                 "multi-view acc": fmt(*P.mean_ci(ft.acc_multi, bounds=(0, 1)), d=3),
                 "diverged": int(ft.diverged.sum())})
df = pd.DataFrame(rows); print(to_md(df)); open(f"{R}/studies/ft.md", "w").write(to_md(df))
# figure: Lambda change per feature vs kernel lr
fig, ax = plt.subplots(1, 2, figsize=(8.5, 3.1), constrained_layout=True)
vals = sorted(F["train.ft_kernel_lr"].unique())
lab = ["head" if v == 0 else f"{v:g}" for v in vals]
for i, v in enumerate(vals):
    ff = F[(F["train.ft_kernel_lr"] == v) & (F.method == "mrp_ft")]
    last = ff[ff.step == ff.step.max()]
    ax[0].scatter(np.full(len(last), i) + np.random.default_rng(i).uniform(-0.25, 0.25, len(last)), last.lam, s=5, alpha=0.4, color="#0072B2", lw=0)
    traj = ff.groupby("step").lam.agg(["mean", "min"])
    ax[1].plot(traj.index, traj["min"], label=("head only" if vals[i] == 0 else f"kernel lr {lab[i]}"))
ax[0].axhline(1.0, color="grey", ls="--", lw=0.8); ax[0].text(-0.4, 1.05, "$\\varrho$ (capture threshold)", fontsize=6.5, color="grey")
ax[0].set_xticks(range(len(vals)), lab); ax[0].set_xlabel("fine-tuning kernel learning rate (train.ft_kernel_lr; 'head' = head only)")
ax[0].set_ylabel("$\\Lambda_{i,l}$ after fine-tuning\n(one dot per feature and seed)"); ax[0].set_yscale("log")
ax[1].set_xlabel("fine-tuning step"); ax[1].set_ylabel("smallest $\\Lambda_{i,l}$ over features and seeds"); ax[1].set_yscale("log")
ax[1].axhline(1.0, color="grey", ls="--", lw=0.8); ax[1].legend(fontsize=6.5)
fig.suptitle("Study 7: does fine-tuning keep the pretrained features? (8 seeds per rate)")
fig.savefig(f"{FIG}/ft_keep.png", dpi=200)
