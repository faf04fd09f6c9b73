from common import *
s, f = load("more_features")
d = default8("data.L", 2); d["grid_point"] = -1
s = pd.concat([s, d[s.columns.intersection(d.columns)]], ignore_index=True)
fd = store.load_features(DEFAULT); fd = fd[fd.seed < 8].assign(**{"data.L": 2, "grid_point": -1})
f = pd.concat([f, fd[f.columns.intersection(fd.columns)]], ignore_index=True)
rows = []
dist = {}
for L, g in s.groupby("data.L"):
    sl, mrp, ft = (g[g.method == m] for m in ("sl", "mrp", "mrp_ft"))
    ff = f[f["data.L"] == L]
    per = {}
    for m in ("sl", "mrp", "mrp_ft"):
        x = ff[ff.method == m]; x = x[x.step == x.step.max()]
        c = (x.lam >= 1.0).groupby([x.seed, x.cls]).sum()
        per[m] = c.value_counts(normalize=True).sort_index()
        # max Lambda over features in class per MRP, and mixture check
    dist[L] = per
    rows.append({"L": L, "P": 16 if L == 2 else 24,
                 "SL features": fmt(*P.mean_ci(sl.features_captured, bounds=(0, sl.features_total.iloc[0])), d=1) + f" /{10*L}",
                 "SL classes with exactly one": fmt(*P.mean_ci(sl.classes_one_captured, bounds=(0, 10)), d=1),
                 "SL classes with all": fmt(*P.mean_ci(sl.classes_all_captured, bounds=(0, 10)), d=1),
                 "SL lottery": fmt(*P.mean_ci(sl.lottery_agreement, bounds=(0, 1))),
                 "SL train acc": fmt(*P.mean_ci(sl.acc_train, bounds=(0, 1)), d=3),
                 "MRP features": fmt(*P.mean_ci(mrp.features_captured, bounds=(0, mrp.features_total.iloc[0])), d=1),
                 "MRP classes with all": fmt(*P.mean_ci(mrp.classes_all_captured, bounds=(0, 10)), d=1),
                 "MRP+FT features": fmt(*P.mean_ci(ft.features_captured, bounds=(0, ft.features_total.iloc[0])), d=1),
                 "single-view SL": fmt(*P.mean_ci(sl.acc_single, bounds=(0, 1))),
                 "single-view MRP+FT": fmt(*P.mean_ci(ft.acc_single, bounds=(0, 1))),
                 "SL theory 1/L+(1-1/L)/k": f"{1/L + (1-1/L)/10:.2f}"})
df = pd.DataFrame(rows); print(to_md(df)); open(f"{R}/studies/more.md", "w").write(to_md(df))
for L, per in dist.items():
    print(L, {m: per[m].round(3).to_dict() for m in per})
fig, ax = plt.subplots(1, 3, figsize=(9, 2.9), constrained_layout=True, sharey=True)
for a, m, t in zip(ax, ("sl", "mrp", "mrp_ft"), ("SL", "MRP (pretrained)", "MRP+FT")):
    Ls = sorted(dist)
    w = 0.25
    for j, L in enumerate(Ls):
        p = dist[L][m]
        a.bar(p.index + (j - 1) * w, p.values, width=w, label=f"L={L}", color=["#56B4E9", "#E69F00", "#009E73"][j])
    a.set_xlabel("features captured in a class"); a.set_title(t); a.set_xticks(range(0, 5))
ax[0].set_ylabel("share of classes (8 seeds x 10)"); ax[0].legend()
fig.suptitle("Study 6: features captured per class for L = 2, 3, 4 features per class")
fig.savefig(f"{FIG}/more_features.png", dpi=200)
