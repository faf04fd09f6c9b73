"""The k study's analysis (mvsim.scaling) and figures (mvsim.figs_k)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mvsim import claims, results, scaling, sweep

TINY = str(Path(__file__).with_name("tiny.toml"))


@pytest.fixture(scope="module")
def over_k(tmp_path_factory):
    """A tiny sweep over data.k = 3, 4: each point carried to its k by the scaling rules."""
    out = tmp_path_factory.mktemp("scaling") / "k"
    assert sweep.main(["--config", TINY, "--seeds", "2", "--chunk", "2", "--out", str(out), "--quiet",
                       "--no-plots", "--no-claims", "--grid", "data.k=3,4"]) == 0
    return out


def test_seed_rows_read_each_point_at_its_k(over_k):
    rows = scaling.seed_rows(over_k)
    assert sorted(rows["k"].unique()) == [3, 4] and len(rows) == 4
    assert rows["ft_single"].notna().all()  # fine-tuned from each point's own MRP horizon
    four = rows[rows["k"] == 4].iloc[0]
    assert four["sigma_0"] == pytest.approx(0.1 * 3 / 4) and four["n_train"] == round(40 * (4 / 3) ** 1.2)
    for col in ("sl_features", "mrp_features", "ft_single", "sl_one_at_fit"):
        assert rows[col].dropna().between(0, 1).all(), col  # NaN: e.g. a tiny SL that never fit
    assert set(rows["ordered"].dropna().unique()) <= {0.0, 1.0}


def test_figures_and_claims_read_a_k_grid_point_at_its_scaled_config(over_k):
    """One grid-point config for everyone: the figures' `point_cfg` carries data.k = 4 through the
    scaling rules, as the sweep and the claims do (sigma_0 = 0.1 * 3 / 4, not the base's 0.1)."""
    res = results.load_results(over_k)
    for gp in sorted(res.summary["grid_point"].unique()):
        rows = res.summary[res.summary["grid_point"] == gp]
        assert res.point_cfg(gp) == claims.point_config(res.cfg, rows)
    four = [gp for gp in res.summary["grid_point"].unique() if res.point_cfg(gp).data.k == 4]
    assert four and res.point_cfg(four[0]).net.sigma_0 == pytest.approx(0.1 * 3 / 4)


def test_cli_writes_tables_figures_and_report(over_k, tmp_path, capsys):
    out = tmp_path / "study"
    assert scaling.main(["--study", str(over_k), "--map", str(over_k), "--out", str(out)]) == 0
    for name in ("scaling.md", "seeds.csv", "points.csv", "trends.csv", "map_points.csv", "k_claims.png",
                 "k_window_map.png"):
        assert (out / name).is_file(), name
    text = (out / "scaling.md").read_text()
    assert "| 3 |" in text and "| 4 |" in text and "t_erode / t_fit" in text
    assert scaling.main(["--study", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _synthetic(ks=(10, 20, 40), seeds=8, slope=1.0, seed=0) -> pd.DataFrame:
    """Per-seed rows with t_fit = 3e3 (k/10)^slope times log-normal noise, and shares that fall
    by 0.1 per doubling of k."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        for s in range(seeds):
            t_fit = 3e3 * (k / 10) ** slope * 10 ** rng.normal(0, 0.1)
            share = 0.9 - 0.1 * math.log2(k / 10) + rng.normal(0, 0.03)
            rows.append({"source": f"k{k}", "grid_point": 0, "seed": s, "k": k, "q": 3, "sigma_0": 0.01,
                         "n_train": 500, "horizon": 1e10, "t_fit": t_fit, "t_erode": 100 * t_fit,
                         "t_cap": math.inf if s == 0 else 1e9, "sl_one_at_fit": share, "ordered": [0.0, 1.0, math.nan][s % 3],
                         **{c: 0.5 for c in scaling.SHARES if c != "sl_one_at_fit"}})
    df = pd.DataFrame(rows)
    df["window"] = df["t_erode"] / df["t_fit"]
    df["cap_over_erode"] = df["t_cap"] / df["t_erode"]
    df["gap_at_fit"] = df["ft_single"] - df["acc_single_at_fit"]
    df["gap_at_horizon"] = df["ft_single"] - df["sl_single"]
    return df


def test_trends_recover_known_slopes():
    """Within 4 standard errors of the slope (a miss has probability ~1e-4 per check)."""
    tr = scaling.trends(_synthetic()).set_index("quantity")
    t_fit = tr.loc["t_fit"]
    assert abs(t_fit["slope_per_doubling"] - math.log10(2)) <= 4 * t_fit["se"] and t_fit["n"] == 24
    assert t_fit["lo"] < t_fit["slope_per_doubling"] < t_fit["hi"]
    one = tr.loc["sl_one_at_fit"]
    assert abs(one["slope_per_doubling"] + 0.1) <= 4 * one["se"]
    window = tr.loc["window"]
    assert window["slope_per_doubling"] == pytest.approx(0.0, abs=1e-9)  # t_erode / t_fit is 100 in every seed
    assert tr.loc["t_cap", "left_out"] == 3  # one seed per k never caps: left out of the fit, counted


def test_points_use_geometric_means_and_count_the_seeds_that_never_got_there():
    pts = scaling.points(_synthetic()).set_index("k")
    assert pts.loc[10, "t_cap"] == pytest.approx(1e9) and pts.loc[10, "t_cap_inf"] == 1
    assert pts.loc[10, "t_fit_lo"] < pts.loc[10, "t_fit"] < pts.loc[10, "t_fit_hi"]
    # ordered: seeds 0..7 give 0, 1, nan, 0, 1, nan, 0, 1 -> 3 of the 6 known
    assert pts.loc[10, "ordered"] == pytest.approx(0.5)
