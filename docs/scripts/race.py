from common import *
import os
def fits(f, method, thr, label, winners_only=False):
    h = A.hitting_times(f, thr, method)
    if winners_only:
        t = A.lottery_gaps(f, method)
        h = h.merge(t[["grid_point", "seed", "cls", "winner"]], on=["grid_point", "seed", "cls"])
        h = h[h.feature == h.winner]
    fit = A.fit_power_law(h.hit_step, h.lam0)
    return h, fit

def report(name, f, thr, q, methods=("sl", "mrp")):
    out = []
    for m in methods:
        for w in ([True, False] if m == "sl" else [False]):
            h, fit = fits(f, m, thr, name, winners_only=w)
            out.append(dict(run=name, q=q, method=m, subset="winners" if w else "all features",
                            n=fit["n"], censored=int(h.censored.sum()), total=len(h),
                            slope=fit["slope"], lo=fit["lo"], hi=fit["hi"], r2=fit["r2"],
                            lam0_range=(h.lam0.min(), h.lam0.max()),
                            t_med=h.hit_step.median()))
    return out

if __name__ == "__main__":
    rows = []
    f = store.load_features(DEFAULT)
    rows += report("default (16 seeds, log 10)", f, 1.0, 3)
    for name, q in [("race_q3", 3), ("race_q4", 4), ("race_q4_long", 4)]:
        p = f"{R}/studies/{name}"
        if os.path.isdir(p + "/summary"):
            ff = store.load_features(p)
            if "net.sigma_0" in ff and name == "race_q4":
                for sg, g in ff.groupby("net.sigma_0"):
                    rows += report(f"{name} sigma_0={sg}", g, 1.0, q)
            else:
                rows += report(name, ff, 1.0, q)
    p = f"{R}/studies/phase_sigma0"
    if os.path.isdir(p + "/summary"):
        ff = store.load_features(p)
        d = f[f.seed < 8].copy(); d["net.sigma_0"] = 0.01
        ff = pd.concat([ff, d], ignore_index=True)
        ff["grid_point"] = ff["net.sigma_0"].rank(method="dense").astype(int)
        for lab, sel in [("pooled sigma_0 0.01-0.1", ff["net.sigma_0"] >= 0.01), ("pooled sigma_0 0.01-0.03", (ff["net.sigma_0"] >= 0.01) & (ff["net.sigma_0"] <= 0.03))]:
            rows += report(f"phase_sigma0 {lab}", ff[sel], 1.0, 3)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(df.to_string())
    df.to_pickle(f"{R}/studies/race.pkl")
