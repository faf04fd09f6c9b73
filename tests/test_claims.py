"""mvsim.claims on small hand-made DataFrames with exact expectations; one real tiny sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mvsim import claims as K
from mvsim import config as C
from mvsim import store

TIMES = [0.0, 1.0, 10.0, 100.0, 1000.0]  # SL's and MRP+FT's checkpoints; MRP adds 1e4 (its horizon)
K10 = 20.0  # features_total at k = 10, L = 2


def method_rows(method, seed, times, gp=0, ft_from=math.nan, **cols):
    """Rows of one method and seed: every column in `cols` is a list over `times` (or a scalar)."""
    n = len(times)
    rows = pd.DataFrame({"seed": seed, "method": method, "grid_point": gp, "ft_from": ft_from,
                         "checkpoint": times, "gd_time": times, "reached": True,
                         "is_last": np.arange(n) == n - 1, "features_total": K10,
                         "classes_all_captured": 0.0})
    for key, value in cols.items():
        rows[key] = value
    return rows


def seed_rows(seed, gp=0, sl=None, mrp=None, ft=None):
    """A seed that follows the theory: SL fits at 10 with one feature per class until 1000, MRP
    captures 19 of 20 features at 1000 and all at 1e4, MRP+FT keeps them and is right on single view."""
    sl = dict(acc_train=[0.1, 0.5, 0.995, 1.0, 1.0], classes_one_captured=[0, 2, 8, 8, 3],
              acc_single=[0.2, 0.4, 0.55, 0.6, 0.6], lottery_agreement=1.0, features_captured=0.0) | (sl or {})
    mrp = dict(features_captured=[0, 0, 5, 10, 19, 20], acc_single=math.nan, acc_train=math.nan,
               classes_one_captured=0, lottery_agreement=math.nan) | (mrp or {})
    ft = dict(features_captured=20, acc_single=[0.5, 0.8, 0.95, 0.97, 0.98], acc_train=1.0,
              classes_one_captured=0, lottery_agreement=math.nan) | (ft or {})
    return pd.concat([method_rows("sl", seed, TIMES, gp, **sl),
                      method_rows("mrp", seed, TIMES + [1e4], gp, **mrp),
                      method_rows("mrp_ft", seed, TIMES, gp, ft_from=1e4, **ft)], ignore_index=True)


def theory_run(n_seeds=4, gp=0):
    """n seeds that follow the theory, with a little seed-to-seed spread."""
    return pd.concat([seed_rows(s, gp, sl=dict(lottery_agreement=0.9 + 0.02 * s,
                                               classes_one_captured=[0, 2, 8 + (s % 2), 8, 3]))
                      for s in range(n_seeds)], ignore_index=True)


# ---------------------------------------------------------------- windows


def test_windows_exact_times_and_values_at_fit():
    w = K.windows(seed_rows(0), L=2).iloc[0]
    assert (w["t_fit"], w["t_erode"], w["t_cap"]) == (10.0, 1000.0, 1000.0)
    assert w["sl_one_at_fit"] == pytest.approx(0.8)
    assert w["acc_single_at_fit"] == pytest.approx(0.55)
    assert w["agreement_at_fit"] == 1.0


def test_windows_erode_by_single_view_accuracy_and_at_t_fit_itself():
    w = K.windows(seed_rows(0, sl=dict(acc_single=[0.2, 0.4, 0.55, 0.8, 0.8])), L=2).iloc[0]
    assert w["t_erode"] == 100.0
    w = K.windows(seed_rows(0, sl=dict(classes_one_captured=[0, 2, 4, 8, 8])), L=2).iloc[0]
    assert w["t_erode"] == w["t_fit"] == 10.0  # an empty window: eroded when it opens


def test_windows_unknown_when_a_run_stopped_before_its_horizon():
    """An MRP run that hit train.max_steps before its horizon without capturing: t_cap is NaN
    (unknown), not inf (not within the horizon)."""
    rows = seed_rows(0, mrp=dict(features_captured=[0, 0, 0, 0, 0, 0]))
    last_mrp = (rows["method"] == "mrp") & (rows["checkpoint"] == 1e4)
    rows.loc[last_mrp, ["gd_time", "reached"]] = [3000.0, False]
    assert math.isnan(K.windows(rows, L=2).iloc[0]["t_cap"])
    rows.loc[last_mrp, "reached"] = True
    assert K.windows(rows, L=2).iloc[0]["t_cap"] == math.inf


def test_windows_inf_when_not_within_the_horizon():
    open_window = K.windows(seed_rows(0, sl=dict(classes_one_captured=8)), L=2).iloc[0]
    assert open_window["t_fit"] == 10.0 and open_window["t_erode"] == math.inf
    never = K.windows(seed_rows(0, sl=dict(acc_train=0.9), mrp=dict(features_captured=18)), L=2).iloc[0]
    assert never["t_fit"] == math.inf and never["t_cap"] == math.inf
    assert math.isnan(never["t_erode"]) and math.isnan(never["sl_one_at_fit"])


def test_windows_k_from_L():
    # k = 20 / 4 = 5 classes at L = 4: 3 of 5 with one feature is above half, 2 is below
    rows = seed_rows(0, sl=dict(classes_one_captured=[0, 2, 3, 2, 2]))
    assert K.windows(rows, L=4).iloc[0]["t_erode"] == 100.0
    assert K.windows(rows, L=2).iloc[0]["t_erode"] == 10.0


def test_windows_nan_without_the_method():
    rows = seed_rows(0)
    w = K.windows(rows[rows["method"] != "mrp"], L=2).iloc[0]
    assert math.isnan(w["t_cap"]) and w["t_fit"] == 10.0


def test_geometric_mean_ci_counts_inf():
    m, lo, hi, n_inf, n = K.geometric_mean_ci([10.0, 1000.0, math.inf, math.nan])
    assert m == pytest.approx(100.0) and lo < 100.0 < hi and (n_inf, n) == (1, 3)


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize("lo, hi, thr, sense, seeds, rival, expected", [
    (0.8, 0.9, 0.75, ">=", 4, None, "holds"),
    (0.75, 0.9, 0.75, ">=", 4, None, "holds"),
    (0.5, 0.7, 0.75, ">=", 4, None, "fails"),
    (0.7, 0.8, 0.75, ">=", 4, None, "inconclusive"),
    (0.5, 0.7, 0.75, "<=", 4, None, "holds"),
    (0.8, 0.9, 0.75, "<=", 4, None, "fails"),
    (0.7, 0.8, 0.75, "<=", 4, None, "inconclusive"),
    (-1.3, -0.7, -1.0, "=", 4, -4.0, "holds"),
    (-4.5, -0.5, -1.0, "=", 4, -4.0, "inconclusive"),
    (-3.0, -2.0, -1.0, "=", 4, -4.0, "fails"),
    (0.8, 0.9, 0.75, ">=", 1, None, "inconclusive"),
    (math.nan, math.nan, 0.75, ">=", 4, None, "inconclusive"),
])
def test_verdict(lo, hi, thr, sense, seeds, rival, expected):
    assert K.verdict(lo, hi, thr, sense, seeds, rival) == expected


def test_claims_hold_on_a_theory_like_run():
    t = K.claims(theory_run(4)).set_index("claim")
    assert list(t.index) == [c for c in K.THRESHOLDS if not c.endswith("_race")]
    assert (t["verdict"] == "holds").all(), t[t["verdict"] != "holds"][["measured", "lo", "hi"]]
    assert t.loc["mrpft_beats_sl_at_fit", "measured"] == pytest.approx(0.98 - 0.55)
    assert t.loc["sl_lottery_agreement", "threshold"] == 0.75
    assert t.loc["mrpft_beats_sl_at_fit", "threshold"] == pytest.approx(0.5 * 0.9 / 2)
    assert (t["seeds"] == 4).all()


def test_claims_fail_when_sl_never_fits_and_mrp_misses_features():
    bad = pd.concat([seed_rows(s, sl=dict(acc_train=0.6), mrp=dict(features_captured=10),
                               ft=dict(features_captured=5, acc_single=0.6)) for s in range(4)])
    t = K.claims(bad).set_index("claim")["verdict"]
    for claim in ("sl_fits", "sl_lottery_window", "mrp_captures_all", "mrp_capture_time", "ft_keeps"):
        assert t[claim] == "fails", claim
    assert t["sl_one_per_class"] == "inconclusive"  # defined at t_fit: no seed fits
    assert t["mrp_in_window"] == "inconclusive"  # no seed has an SL window to compare with


def test_claims_with_one_seed_are_all_inconclusive():
    t = K.claims(theory_run(1))
    assert (t["verdict"] == "inconclusive").all()
    assert (t["seeds"] <= 1).all()


def test_claims_per_grid_point_use_the_grid_L():
    rows = pd.concat([theory_run(3, gp=0).assign(**{"data.L": 2}),
                      theory_run(3, gp=1).assign(**{"data.L": 4})], ignore_index=True)
    t = K.claims(rows)
    thr = t[t["claim"] == "sl_lottery_agreement"].set_index("grid_point")["threshold"]
    assert thr[0] == 0.75 and thr[1] == pytest.approx(0.25 + 0.75 / 2)


def test_single_view_gap_paired_by_seed():
    g = K.single_view_gap(theory_run(3)).set_index("gd_time")
    assert list(g.index) == TIMES
    assert g.loc[10.0, "mean"] == pytest.approx(0.98 - 0.55)
    assert g.loc[10.0, "n"] == 3


# ---------------------------------------------------------------- the race


def race_features(exponent, n_seeds=4, classes=10, noise=0.05, seed=0):
    """Features whose Lambda reaches 1 at T = 1e3 (lam0 / 0.03)^exponent (times a log-normal factor),
    growing as a power of t so that log-log interpolation between checkpoints is exact. Feature 1
    of every class never reaches 1 (a loser)."""
    rng = np.random.default_rng(seed)
    times = np.r_[0.0, 10.0 ** np.arange(0, 9.5, 0.5)]
    rows = []
    for s in range(n_seeds):
        for c in range(classes):
            lam0 = rng.uniform(0.01, 0.05)
            t_hit = 1e3 * (lam0 / 0.03) ** exponent * math.exp(noise * rng.standard_normal())
            lam = np.where(times > 0, np.maximum(lam0, (np.maximum(times, 1e-30) / t_hit) ** 0.7), lam0)
            for feature, traj in ((0, lam), (1, np.full_like(times, lam0 / 2))):
                rows.append(pd.DataFrame({"seed": s, "method": "sl", "grid_point": 0, "cls": c,
                                          "feature": feature, "gd_time": times, "lam": traj,
                                          "lam_init": traj[0], "t_true": t_hit}))
    return pd.concat(rows, ignore_index=True)


def test_hitting_gd_times_interpolate_exactly_and_mark_winners():
    f = race_features(-1.0, n_seeds=1, classes=3, noise=0.0)
    h = K.hitting_gd_times(f, "sl", 1.0).merge(f.groupby(["seed", "cls", "feature"])["t_true"].first()
                                               .reset_index(), on=["seed", "cls", "feature"])
    won = h[h["feature"] == 0]
    assert won["t_hit"].to_numpy() == pytest.approx(won["t_true"].to_numpy(), rel=1e-9)
    assert (h.loc[h["feature"] == 1, "t_hit"] == math.inf).all()
    assert h["winner"].tolist() == [True, False] * 3


@pytest.mark.parametrize("exponent", [-1.0, -4.0])
def test_race_law_recovers_a_known_exponent(exponent):
    law = K.race_law(race_features(exponent), "sl", 1.0, q=3, winners=True)
    lo, hi = law["ci"]
    assert lo <= exponent <= hi and hi - lo < 0.5
    assert (law["n"], law["censored"], law["seeds"], law["expected"]) == (40, 40, 4, -1.0)


def test_claims_report_the_race_with_features():
    f = race_features(-1.0)
    t = K.claims(theory_run(4), pd.concat([f, f.assign(method="mrp")]), C.Config()).set_index("claim")
    assert t.loc["sl_race", "verdict"] == "holds"
    assert t.loc["mrp_race", "verdict"] == "fails"  # MRP's slope is -(2q - 2) = -4 in theory
    ema = C.with_values(C.Config(), {"mrp.teacher": "ema", "mrp.step": "adaptive"})
    assert "mrp_race" not in K.claims(theory_run(4), f, ema)["claim"].tolist()


# ---------------------------------------------------------------- report and CLI


def results_dir(path: Path, summary: pd.DataFrame, features: pd.DataFrame | None = None) -> Path:
    (path / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (path / "config.toml").write_text(C.to_toml(C.Config()))
    feats = features if features is not None else pd.DataFrame({"grid_point": pd.Series(dtype=int)})
    store.write_chunk(path, "g0000.parquet", summary, feats)
    return path


def no_constants(name):
    raise ValueError(f"invalid JSON constant {name}")


def test_report_writes_valid_json_and_markdown(tmp_path):
    rows = theory_run(3)
    rows.loc[rows["method"] == "mrp", "features_captured"] = 10.0  # t_cap = inf in every seed
    out = results_dir(tmp_path / "r", rows, race_features(-1.0, n_seeds=3))
    text = K.report(out)
    records = json.loads((out / "claims.json").read_text(), parse_constant=no_constants)
    assert [r["claim"] for r in records] == list(K.THRESHOLDS)  # mrp_race with no MRP features: NaN
    assert {r["verdict"] for r in records} <= {"holds", "fails", "inconclusive"}
    assert (out / "claims.md").read_text() == text
    assert "## Thresholds" in text and "inf in 3 of 3 seeds" in text and "scales of the two losses" in text


def test_report_json_turns_nan_into_null(tmp_path):
    out = results_dir(tmp_path / "r", theory_run(1))
    K.report(out)
    records = json.loads((out / "claims.json").read_text(), parse_constant=no_constants)
    assert records[0]["lo"] is None and records[0]["verdict"] == "inconclusive"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mvsim.claims", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)


def test_cli_missing_dir_exits_2_with_one_line(tmp_path):
    proc = run_cli(str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "does not exist" in proc.stderr
    assert K.main([str(tmp_path)]) == 2  # a directory without results


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        K.main(["--help"])
    assert e.value.code == 0 and "claims.md" in capsys.readouterr().out


def test_cli_on_a_tiny_sweep(tmp_path):
    out = tmp_path / "tiny"
    root = Path(__file__).resolve().parents[1]
    # chunk 2 as in test_sweep's reference run: in a full test session the compiled programs are shared
    subprocess.run([sys.executable, "-m", "mvsim.sweep", "--config", "tests/tiny.toml", "--seeds", "2",
                    "--chunk", "2", "--out", str(out), "--no-plots", "--quiet"], check=True, cwd=root, timeout=300)
    proc = run_cli(str(out))
    assert proc.returncode == 0, proc.stderr
    assert "## Grid point 0" in proc.stdout and "sl_race" in proc.stdout
    records = json.loads((out / "claims.json").read_text(), parse_constant=no_constants)
    assert {r["claim"] for r in records} == set(K.THRESHOLDS)


def test_claims_leave_out_diverged_rows():
    rows = theory_run(4).assign(diverged=False)
    bad = (rows["seed"] == 3) & (rows["method"] == "sl")
    rows.loc[bad, "diverged"] = True
    rows.loc[bad, "acc_train"] = 0.0
    t = K.claims(rows).set_index("claim")
    assert t.loc["sl_fits", "seeds"] == 3 and t.loc["sl_fits", "verdict"] == "holds"
    assert t.loc["mrp_captures_all", "seeds"] == 4


def test_in_window_is_unknown_when_sl_was_not_run_past_t_cap():
    inf, nan = math.inf, math.nan
    assert K._in_window(1e3, 1e4, 1e5, 1e2) == 1.0 and K._in_window(1e5, 1e4, 1e6, 1e2) == 0.0
    assert K._in_window(1e3, inf, 1e4, 1e2) == 1.0  # window open at SL's horizon, MRP done before it
    assert math.isnan(K._in_window(1e5, inf, 1e4, 1e2))  # MRP done after SL's horizon: SL's state unknown
    assert math.isnan(K._in_window(inf, inf, 1e4, 1e2))  # neither happened
    assert K._in_window(inf, 1e4, 1e5, 1e2) == 0.0  # SL eroded, MRP never captured
    assert math.isnan(K._in_window(nan, 1e4, 1e5, 1e2)) and math.isnan(K._in_window(1e3, nan, 1e5, t_fit=nan))
    # SL stopped at max_steps with its window open (t_erode NaN) after MRP had captured: known
    assert K._in_window(1e3, nan, 1e4, t_fit=1e2) == 1.0 and math.isnan(K._in_window(1e5, nan, 1e4, t_fit=1e2))
