"""mvsim.analysis on small hand-made DataFrames with exact expectations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mvsim import analysis as A


def traj(rows):
    """Features frame from (seed, cls, feature, [lam at steps 0, 10, 20, ...]) tuples, method 'sl'."""
    out = []
    for seed, cls, feat, lams in rows:
        for j, lam in enumerate(lams):
            out.append(dict(seed=seed, method="sl", grid_point=0, step=10 * j, cls=cls, feature=feat,
                            lam=lam, lam_init=lams[0]))
    return pd.DataFrame(out)


# seed 0 class 0: feature 0 leads at 0 and wins; class 1: feature 1 leads at 0, feature 0 wins.
F = traj([
    (0, 0, 0, [0.03, 0.10, 0.50, 1.20]),
    (0, 0, 1, [0.01, 0.02, 0.02, 0.03]),
    (0, 1, 0, [0.02, 0.01, 0.30, 1.10]),
    (0, 1, 1, [0.025, 0.04, 0.05, 0.06]),
])


def test_lottery_gaps_exact():
    t = A.lottery_gaps(F).set_index("cls")
    assert list(t["init_leader"]) == [0, 1]
    assert list(t["winner"]) == [0, 0]
    assert list(t["agree"]) == [True, False]
    assert t.loc[0, "init_gap"] == pytest.approx(0.02)
    assert t.loc[1, "init_gap"] == pytest.approx(0.005)
    assert t.loc[0, "rel_gap"] == pytest.approx(0.02 / 0.03)
    assert t.loc[0, "final_gap"] == pytest.approx(1.20 - 0.03)
    assert t.loc[1, "final_gap"] == pytest.approx(1.10 - 0.06)


def test_lottery_gaps_ignores_other_methods():
    other = F.assign(method="mrp", lam=0.0)
    t = A.lottery_gaps(pd.concat([F, other]))
    assert len(t) == 2


def test_agreement_by_gap_counts_and_wilson():
    tab = pd.DataFrame({"init_gap": [0.1, 0.2, 0.3, 1.1, 1.2, 1.3, 1.4],
                        "agree": [True, False, False, True, True, True, True]})
    b = A.agreement_by_gap(tab, edges=[0.0, 1.0, 2.0])
    assert list(b["n"]) == [3, 4]
    assert list(b["agree"]) == [1, 4]
    assert b["p"].tolist() == pytest.approx([1 / 3, 1.0])
    assert b.loc[1, "hi"] == 1.0 and 0.0 < b.loc[1, "lo"] < 1.0
    # Wilson interval of 1/3 at 95%: centre (p + z^2/2n) / (1 + z^2/n)
    z = 1.959963984540054
    n, p = 3, 1 / 3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert b.loc[0, "lo"] == pytest.approx(centre - half)
    assert b.loc[0, "hi"] == pytest.approx(centre + half)
    # the top edge is included in the last bin
    b2 = A.agreement_by_gap(tab.assign(init_gap=tab["init_gap"].clip(upper=2.0)), edges=[0.0, 1.0, 1.4])
    assert b2["n"].sum() == 7


def test_agreement_by_gap_quantile_bins_cover_all():
    tab = pd.DataFrame({"init_gap": np.arange(10.0), "agree": [True] * 10})
    b = A.agreement_by_gap(tab, n_bins=2)
    assert b["n"].sum() == 10 and (b["p"] == 1.0).all()


def test_winner_fixed_time():
    # class 0: argmax 0 throughout -> fixed at step 0; class 1: argmax 1,1,0,0 -> fixed at 20
    w = A.winner_fixed_time(F, threshold=1.0).set_index("cls")
    assert w.loc[0, "fixed_step"] == 0 and w.loc[0, "n_changes"] == 0
    assert w.loc[1, "fixed_step"] == 20 and w.loc[1, "n_changes"] == 1
    assert w.loc[0, "hit_step"] == 30 and w.loc[1, "hit_step"] == 30
    assert list(w["winner"]) == [0, 0]


def test_winner_fixed_time_flip_back():
    # argmax 0,1,0,1 -> last change at index 3: fixed at step 30
    f = traj([(0, 0, 0, [0.2, 0.1, 0.3, 0.1]), (0, 0, 1, [0.1, 0.2, 0.2, 0.4])])
    w = A.winner_fixed_time(f, threshold=10.0)
    assert w.loc[0, "fixed_step"] == 30 and w.loc[0, "n_changes"] == 3
    assert math.isnan(w.loc[0, "hit_step"])


def test_hitting_times_and_censoring():
    h = A.hitting_times(F, threshold=0.3, method="sl").set_index(["cls", "feature"])
    assert h.loc[(0, 0), "hit_step"] == 20 and h.loc[(0, 0), "lam0"] == pytest.approx(0.03)
    assert h.loc[(1, 0), "hit_step"] == 20
    assert h.loc[(0, 1), "censored"] and math.isnan(h.loc[(0, 1), "hit_step"])
    assert h["last_step"].eq(30).all()


def test_hitting_times_threshold_column():
    f = F.assign(varrho=np.where(F["cls"] == 0, 1.0, 0.2))
    h = A.hitting_times(f, threshold="varrho", method="sl").set_index(["cls", "feature"])
    assert h.loc[(0, 0), "hit_step"] == 30
    assert h.loc[(1, 0), "hit_step"] == 20


def test_fit_power_law_exact():
    x = np.array([0.01, 0.02, 0.04, 0.08])
    t = 5.0 * x**-1.0
    fit = A.fit_power_law(t, x)
    assert fit["slope"] == pytest.approx(-1.0) and fit["n"] == 4
    assert fit["intercept"] == pytest.approx(math.log(5.0))
    assert fit["lo"] == pytest.approx(-1.0) and fit["hi"] == pytest.approx(-1.0)
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_power_law_ci_and_filtering():
    x = np.array([1.0, 2.0, 4.0, 8.0, np.nan, 3.0])
    t = np.array([1.0, 2.0, 4.0, 16.0, 1.0, np.nan])  # log2 t = 0, 1, 2, 4 against log2 x = 0..3
    fit = A.fit_power_law(t, x)
    assert fit["n"] == 4
    # slope of (0,1,2,4) on (0,1,2,3): 1.3; residuals -> se
    lx, lt = np.arange(4.0), np.array([0, 1, 2, 4.0])
    b = np.polyfit(lx, lt, 1)[0]
    assert fit["slope"] == pytest.approx(b)
    res = lt - np.polyval(np.polyfit(lx, lt, 1), lx)
    se = math.sqrt((res**2).sum() / 2 / ((lx - lx.mean()) ** 2).sum())
    half = 4.302652729911275 * se  # t quantile 0.975, 2 df
    assert fit["lo"] == pytest.approx(b - half) and fit["hi"] == pytest.approx(b + half)
    assert math.isnan(A.fit_power_law([1, 2], [1, 2])["slope"])


def summary_frame():
    rows = []
    for gp, mu in [(0, 0.01), (1, 0.1)]:
        for seed in range(3):
            rows.append(dict(grid_point=gp, **{"data.mu": mu}, seed=seed, method="sl",
                             acc_single=0.5 + 0.1 * seed, features_captured=10.0, diverged=False))
            rows.append(dict(grid_point=gp, **{"data.mu": mu}, seed=seed, method="mrp_ft",
                             acc_single=1.0, features_captured=20.0, diverged=False))
    return pd.DataFrame(rows)


def test_paired_diff_and_ci_table():
    s = summary_frame()
    d = A.paired_diff(s, "acc_single", by=["data.mu"])
    assert d["mean"].tolist() == pytest.approx([0.4, 0.4])
    assert d["n"].tolist() == [3, 3]
    # differences 0.5, 0.4, 0.3: sd 0.1, t(0.975, 2) = 4.3027
    assert d.loc[0, "hi"] - d.loc[0, "mean"] == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3), rel=1e-6)
    c = A.ci_table(s, "features_captured", by=["method", "data.mu"])
    assert c[c["method"] == "sl"]["mean"].tolist() == [10.0, 10.0]


def test_substitute_method():
    s = summary_frame()
    s.loc[s["method"] == "sl", "acc_single"] = -1.0  # not retrained
    donor = pd.DataFrame([dict(grid_point=0, seed=seed, method=m, acc_single=0.6 + seed / 100,
                               features_captured=11.0, diverged=False)
                          for seed in range(5) for m in ("sl", "mrp_ft")])
    out = A.substitute_method(s, donor, "sl", grid_cols=["data.mu"])
    sl = out[out["method"] == "sl"]
    assert len(sl) == 6 and (sl["acc_single"] >= 0.6).all()
    assert sorted(sl["grid_point"].unique()) == [0, 1]
    assert sl.groupby("grid_point")["data.mu"].first().tolist() == [0.01, 0.1]
    assert (out[out["method"] == "mrp_ft"]["acc_single"] == 1.0).all()
