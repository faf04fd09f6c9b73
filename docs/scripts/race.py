"""Study 8: hitting-time exponents on GD time (mvsim.windows.race_law) for race_q3 and race_q4.

SL is fitted over each class's first feature to reach the line (its winner), MRP over every feature;
theory: SL -(q - 2), MRP (stop-gradient data2vec) -(2q - 2). Also the same fits at lower lines
(0.2 and 0.5 varrho), to show the exponent is not set by the approach to varrho.
Writes results/studies/race.md and prints it.
"""
from common import *  # noqa: F401,F403


def rows_for(name):
    res = study(name)
    cfg = res.cfg
    q, varrho = cfg.net.q, cfg.net.varrho
    f = res.features[res.features["method"].isin(["sl", "mrp"])]
    out = []
    for frac in (1.0, 0.5, 0.2):
        thr = frac * cfg.metrics.capture_frac * varrho
        for method, winners, subset in [("sl", True, "each class's winner"), ("sl", False, "all features"),
                                        ("mrp", False, "all features")]:
            law = race_at_line(f, method, thr, q, winners=winners)
            out.append(dict(run=f"{name} (q = {q}, sigma_0 = {cfg.net.sigma_0})", line=f"{frac:g} varrho",
                            method=method.upper(), subset=subset, fitted=law["n"], never=law["censored"],
                            seeds=law["seeds"], b=fmt(law["b"], *law["ci"]),
                            theory=f"{law['expected']:g}" if method == "mrp" or winners else ""))
    lam0 = hitting_at_line(f, "mrp", varrho)["lam_init"]
    print(f"{name}: MRP Lambda(0) range {lam0.min():.3f}-{lam0.max():.3f} (median {lam0.median():.3f})")
    return out


if __name__ == "__main__":
    df = pd.DataFrame(rows_for("race_q3") + rows_for("race_q4"))
    text = to_md(df)
    print(text)
    (R / "race.md").write_text(text + "\n")
