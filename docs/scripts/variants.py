from common import *
import os
# (label, study, key, value)  -- default = stop-grad teacher, fixed diagonal decoder b=1, data2vec target
VARS = [("data2vec, stop-grad, diag b=1 fixed (default)", None, None, None),
        ("data2vec, EMA tau=0.9", "mrp_teacher", "mrp.ema_tau", 0.9),
        ("data2vec, EMA tau=0.99", "mrp_teacher", "mrp.ema_tau", 0.99),
        ("data2vec, EMA tau=0.9, 300 MRP steps", "mrp_teacher_long", "mrp.ema_tau", 0.9),
        ("data2vec, diag decoder learned (lr 0.1)", "mrp_decoder", "mrp.decoder", "diag"),
        ("data2vec, full decoder learned (lr 0.1)", "mrp_decoder", "mrp.decoder", "full"),
        ("MAE, decoder fixed (lr 0)", "mrp_mae", "mrp.decoder_lr", 0.0),
        ("MAE, decoder learned (lr 0.1)", "mrp_mae", "mrp.decoder_lr", 0.1)]

def get(study, key, val):
    if study is None:
        s = store.load(DEFAULT); f = store.load_features(DEFAULT)
        return s[s.seed < 8], f[f.seed < 8]
    if not os.path.isdir(f"{R}/studies/{study}/summary"):
        return None, None
    s, f = load(study)
    return s[s[key] == val], f[f[key] == val]

rows, curves = [], {}
for lab, st, k, v in VARS:
    s, f = get(st, k, v)
    if s is None: continue
    mrp, ft = s[s.method == "mrp"], s[s.method == "mrp_ft"]
    h = A.hitting_times(f, 1.0, "mrp")
    per_seed_t = h.groupby("seed").hit_step.median()
    r = dict(variant=lab,
             mrp_feat=fmt(*P.mean_ci(mrp.features_captured, bounds=(0, mrp.features_total.iloc[0])), d=1),
             mrp_both=fmt(*P.mean_ci(mrp.classes_all_captured, bounds=(0, 10)), d=1),
             ft_feat=fmt(*P.mean_ci(ft.features_captured, bounds=(0, ft.features_total.iloc[0])), d=1),
             ft_single=fmt(*P.mean_ci(ft.acc_single, bounds=(0, 1))),
             ft_multi=fmt(*P.mean_ci(ft.acc_multi, bounds=(0, 1))),
             t_hit_median=fmt(*P.mean_ci(per_seed_t), d=0) if per_seed_t.notna().any() else "never",
             censored=f"{h.censored.mean():.0%}", diverged=int(s.diverged.sum()),
             final_loss=f"{mrp.final_loss.mean():.3g}")
    rows.append(r)
    fm = f[f.method == "mrp"]
    c = fm.assign(cap=fm.lam >= 1.0).groupby(["seed", "step"]).agg(cap=("cap", "mean"), lam=("lam", "mean")).reset_index()
    curves[lab] = c.groupby("step").agg(cap=("cap", "mean"), lam=("lam", "mean"), lam_max=("lam", "max"))
df = pd.DataFrame(rows)
print(to_md(df))
open(f"{R}/studies/variants.md", "w").write(to_md(df))
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
cols = ["#000000", "#E69F00", "#D55E00", "#E69F00", "#56B4E9", "#0072B2", "#009E73", "#CC79A7"]
lss = ["-", "-", "-", "--", (0, (4, 2)), ":", "-", "-"]
lws = [2.4, 1.2, 1.2, 1.2, 1.4, 1.6, 1.2, 1.2]
for (lab, c), col, ls, lw in zip(curves.items(), cols, lss, lws):
    ax[0].plot(c.index, c.cap, color=col, ls=ls, lw=lw, label=lab)
    ax[1].plot(c.index, c.lam, color=col, ls=ls, lw=lw, label=lab)
ax[1].axhline(1.0, color="grey", lw=0.8, ls="--")
ax[0].set_xlabel("MRP step"); ax[0].set_ylabel("share of the 20 features with $\\Lambda\\geq\\varrho$\n(mean over 8 seeds)")
ax[1].set_xlabel("MRP step"); ax[1].set_ylabel("mean $\\Lambda_{i,l}$ over features and seeds"); ax[1].set_yscale("log")
ax[0].legend(fontsize=6, loc="center right")
fig.suptitle("Study 4: MRP variants -- feature capture during pretraining (8 seeds each; default, learned diag and learned full decoder overlap)")
fig.savefig(f"{FIG}/mrp_variants.png", dpi=200)
