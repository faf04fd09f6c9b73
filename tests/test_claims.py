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
from mvsim import predictions as PR
from mvsim import stats
from mvsim import windows as WIN
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


ONE, TWO = [5.0, math.inf], [5.0, 5.0]  # a class's capture times: exactly one feature, or both


def seed_events(seed, gp=0, fit=10.0, sl_cap=None, mrp_cap=None, sl_end=1000.0, mrp_end=1e4, lam_init=None):
    """Event rows of one seed (k = 10, L = 2) that follow the theory: SL fits at 10 with exactly one
    feature in 8 classes until 1000, when 5 of them gain their second (3 left: the window closes);
    MRP has 19 of 20 features at 1000 and the last at 5000. sl_end / mrp_end: the GD time each run
    reached (below its horizon 1000 / 1e4: stopped at max_steps)."""
    sl_cap = np.asarray(sl_cap if sl_cap is not None else
                        [[5.0, 1000.0]] * 5 + [ONE] * 3 + [TWO] * 2, float)
    mrp_cap = np.asarray(mrp_cap if mrp_cap is not None else np.r_[[500.0] * 18, 1000.0, 5000.0],
                         float).reshape(sl_cap.shape)
    lam0 = np.full(sl_cap.shape, 0.01) if lam_init is None else np.asarray(lam_init, float)
    rows = []
    for method, cap, end, horizon in (("sl", sl_cap, sl_end, 1000.0), ("mrp", mrp_cap, mrp_end, 1e4)):
        c, f = np.indices(cap.shape).reshape(2, -1)
        for event in ("reach", "capture"):
            rows.append(pd.DataFrame({"seed": seed, "method": method, "grid_point": gp, "event": event, "cls": c,
                                      "feature": f, "gd_time": cap.ravel(), "t_end": end, "horizon": horizon,
                                      "lam_init": lam0.ravel()}))
    rows.append(pd.DataFrame({"seed": [seed], "method": "sl", "grid_point": gp, "event": "fit", "cls": -1,
                              "feature": -1, "gd_time": fit, "t_end": sl_end, "horizon": 1000.0,
                              "lam_init": math.nan}))
    return pd.concat(rows, ignore_index=True)


def theory_run(n_seeds=4, gp=0):
    """n seeds that follow the theory, with a little seed-to-seed spread: (summary, events)."""
    summary = pd.concat([seed_rows(s, gp, sl=dict(lottery_agreement=0.9 + 0.02 * s)) for s in range(n_seeds)],
                        ignore_index=True)
    events = pd.concat([seed_events(s, gp, sl_cap=[[5.0, 1000.0]] * 5 + [ONE] * (3 + s % 2) + [TWO] * (2 - s % 2))
                        for s in range(n_seeds)], ignore_index=True)
    return summary, events


def window(summary=None, events=None, L=2):
    return WIN.windows(seed_rows(0) if summary is None else summary,
                     seed_events(0) if events is None else events, L=L).iloc[0]


# ---------------------------------------------------------------- windows


def test_windows_exact_times_and_values_at_fit():
    w = window()
    assert (w["t_fit"], w["t_erode"], w["t_cap"]) == (10.0, 1000.0, 1000.0)
    assert w["sl_one_at_fit"] == pytest.approx(0.8)
    assert w["acc_single_at_fit"] == pytest.approx(0.55) and w["fit_checkpoint"] == 10.0
    assert w["agreement_at_fit"] == 1.0


def test_windows_times_between_checkpoints():
    """Event times are not tied to the checkpoints: values at fit come from the first checkpoint after."""
    w = window(events=seed_events(0, fit=17.0, sl_cap=[[5.0, 333.0]] * 5 + [ONE] * 3 + [TWO] * 2,
                                  mrp_cap=np.r_[[50.0] * 18, 777.0, 5000.0]))
    assert (w["t_fit"], w["t_erode"], w["t_cap"]) == (17.0, 333.0, 777.0)
    assert w["fit_checkpoint"] == 100.0 and w["acc_single_at_fit"] == pytest.approx(0.6)


def test_windows_erode_at_t_fit_itself():
    w = window(events=seed_events(0, sl_cap=[TWO] * 6 + [ONE] * 4))
    assert w["t_erode"] == w["t_fit"] == 10.0  # an empty window: eroded when it opens
    assert w["sl_one_at_fit"] == pytest.approx(0.4)


def test_erosion_time_counts_each_capture():
    cap = np.array([[1.0, 50.0], [1.0, 60.0], [1.0, np.inf], [2.0, 70.0]])
    assert WIN.erosion_time(cap, 3.0) == 70.0  # one feature in 4, 3, 2 (not below half), then 1 of 4 classes
    cap[3, 1] = 55.0
    assert WIN.erosion_time(cap, 3.0) == 60.0
    assert math.isnan(WIN.erosion_time(cap, math.inf))
    assert WIN.capture_time(np.array([[1.0, 2.0], [3.0, math.inf]]), share=0.75) == 3.0
    assert WIN.capture_time(np.array([[1.0, 2.0], [3.0, math.inf]]), share=1.0) == math.inf


def test_windows_unknown_when_a_run_stopped_before_its_horizon():
    """A run that hit train.max_steps before its horizon without the event: unknown (NaN), not inf."""
    never = np.full(20, math.inf)
    assert math.isnan(window(events=seed_events(0, mrp_cap=never, mrp_end=3000.0))["t_cap"])
    assert window(events=seed_events(0, mrp_cap=never))["t_cap"] == math.inf
    w = window(events=seed_events(0, sl_cap=[ONE] * 10, sl_end=500.0))
    assert w["t_fit"] == 10.0 and math.isnan(w["t_erode"])


def test_windows_inf_when_not_within_the_horizon():
    open_window = window(events=seed_events(0, sl_cap=[ONE] * 10))
    assert open_window["t_fit"] == 10.0 and open_window["t_erode"] == math.inf
    never = window(events=seed_events(0, fit=math.inf, mrp_cap=np.r_[[1.0] * 18, math.inf, math.inf]))
    assert never["t_fit"] == math.inf and never["t_cap"] == math.inf
    assert math.isnan(never["t_erode"]) and math.isnan(never["sl_one_at_fit"])


def test_windows_k_from_L():
    # k = 20 / 4 = 5 classes at L = 4
    cap = np.array([[1.0, np.inf, np.inf, np.inf]] * 3 + [[1.0, 2.0, np.inf, np.inf]] * 2)
    cap[0, 1] = 100.0
    ev = seed_events(0, sl_cap=cap, mrp_cap=np.full(20, 1.0))
    assert window(events=ev, L=4)["t_erode"] == 100.0  # 3 of 5 with one feature until 100, then 2
    ev = seed_events(0, sl_cap=cap.reshape(10, 2), mrp_cap=np.full(20, 1.0))
    assert window(events=ev, L=2)["t_erode"] == 10.0


def test_windows_nan_without_the_method():
    ev = seed_events(0)
    w = window(events=ev[ev["method"] != "mrp"])
    assert math.isnan(w["t_cap"]) and w["t_fit"] == 10.0


def test_geometric_mean_ci_counts_inf():
    m, lo, hi, n_inf, n = stats.geometric_mean_ci([10.0, 1000.0, math.inf, math.nan])
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
    t = K.claims(*theory_run(4)).set_index("claim")
    verdicts = {c: r.sense for c, r in PR.THRESHOLDS.items()}
    assert list(t.index) == list(PR.THRESHOLDS)
    judged = t[[verdicts[c] != "describe" for c in t.index]]
    judged = judged.drop(["sl_race", "mrp_race"])  # constant Lambda(0): no race to fit (test_race_* below)
    assert (judged["verdict"] == "holds").all(), judged[judged["verdict"] != "holds"]
    assert (t.loc[["mrpft_vs_sl_at_horizon", "cap_over_erode"], "verdict"] == "describes").all()
    assert t.loc["mrpft_beats_sl_at_fit", "measured"] == pytest.approx(0.98 - 0.55)
    assert t.loc["mrpft_beats_sl_in_window", "measured"] == pytest.approx(0.98 - 0.6)  # SL's best in [10, 1000)
    assert t.loc["cap_over_erode", "measured"] == pytest.approx(1.0)  # t_cap = t_erode = 1000 in every seed
    assert t.loc["sl_lottery_agreement", "threshold"] == 0.75
    assert t.loc["mrpft_beats_sl_at_fit", "threshold"] == pytest.approx(0.5 * 0.9 / 2)
    assert (t.drop(["sl_race", "mrp_race"])["seeds"] == 4).all()


def test_claims_fail_when_sl_never_fits_and_mrp_misses_features():
    summary = pd.concat([seed_rows(s, sl=dict(acc_train=0.6), mrp=dict(features_captured=10),
                                   ft=dict(features_captured=5, acc_single=0.6)) for s in range(4)])
    events = pd.concat([seed_events(s, fit=math.inf, mrp_cap=np.r_[[1.0] * 10, [math.inf] * 10]) for s in range(4)])
    t = K.claims(summary, events).set_index("claim")["verdict"]
    for claim in ("sl_fits", "sl_lottery_window", "mrp_captures_all", "mrp_capture_time", "ft_keeps"):
        assert t[claim] == "fails", claim
    assert t["sl_one_per_class"] == "inconclusive"  # defined at t_fit: no seed fits


def test_claims_with_one_seed_are_all_inconclusive():
    t = K.claims(*theory_run(1))
    assert set(t["verdict"]) <= {"inconclusive", "describes"}
    assert (t["seeds"] <= 1).all()


def test_claims_with_two_seeds_are_labelled_existence_results():
    t = K.claims(*theory_run(2)).set_index("claim")
    assert "existence result" in t.loc["sl_one_per_class", "statement"]


def test_claims_need_the_events_table():
    with pytest.raises(K.ResultsError, match="events"):
        K.claims(theory_run(2)[0], None)


def test_claims_per_grid_point_use_the_grid_L():
    (s0, e0), (s1, _) = theory_run(3, gp=0), theory_run(3, gp=1)
    e1 = pd.concat([seed_events(s, 1, sl_cap=[[5.0, 1000.0, np.inf, np.inf]] * 5) for s in range(3)])
    rows = pd.concat([s0.assign(**{"data.L": 2}), s1.assign(**{"data.L": 4})], ignore_index=True)
    t = K.claims(rows, pd.concat([e0, e1], ignore_index=True))
    thr = t[t["claim"] == "sl_lottery_agreement"].set_index("grid_point")["threshold"]
    assert thr[0] == 0.75 and thr[1] == pytest.approx(0.25 + 0.75 / 2)


def test_single_view_gap_paired_by_seed():
    g = WIN.single_view_gap(theory_run(3)[0]).set_index("gd_time")
    assert list(g.index) == TIMES
    assert g.loc[10.0, "mean"] == pytest.approx(0.98 - 0.55)
    assert g.loc[10.0, "n"] == 3


# ---------------------------------------------------------------- the race


def race_events(exponent, n_seeds=4, classes=10, noise=0.05, seed=0, seed_effect=0.0):
    """SL events whose feature 0 reaches the line at T = 1e3 (lam0 / 0.03)^exponent times a log-normal
    factor (and a factor shared by all features of a seed, `seed_effect`); feature 1 never does."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        shift = math.exp(seed_effect * rng.standard_normal())
        lam0 = rng.uniform(0.01, 0.05, classes)
        t_hit = 1e3 * (lam0 / 0.03) ** exponent * np.exp(noise * rng.standard_normal(classes)) * shift
        cap = np.stack([t_hit, np.full(classes, math.inf)], axis=1)
        lam = np.stack([lam0, lam0 / 2], axis=1)
        ev = seed_events(s, sl_cap=np.pad(cap, ((0, 10 - classes), (0, 0)), constant_values=math.inf),
                         lam_init=np.pad(lam, ((0, 10 - classes), (0, 0)), constant_values=0.01))
        rows.append(ev[(ev["method"] == "sl") & (ev["cls"] < classes)])
    return pd.concat(rows, ignore_index=True)


def test_hitting_times_mark_winners():
    h = WIN.hitting_times(race_events(-1.0, n_seeds=1, classes=3, noise=0.0), "sl")
    assert (h.loc[h["feature"] == 1, "t_hit"] == math.inf).all()
    assert h["winner"].tolist() == [True, False] * 3


@pytest.mark.parametrize("exponent", [-1.0, -4.0])
def test_race_law_recovers_a_known_exponent(exponent):
    law = WIN.race_law(race_events(exponent), "sl", q=3, winners=True)
    lo, hi = law["ci"]
    assert lo <= exponent <= hi and hi - lo < 0.5
    assert (law["n"], law["censored"], law["seeds"], law["expected"]) == (40, 40, 4, -1.0)


def test_race_interval_counts_seeds_not_features():
    """Features of one seed share its data and init: with a shift of log t shared by a seed's features
    (and Lambda(0)'s scale varying between seeds), pooling 1,000 features as independent gives an
    interval several times too narrow; the bootstrap over the 8 seeds (`stats.bootstrap_slope`)
    is wider by about sqrt(features per seed)."""
    from mvsim.stats import fit_line
    from mvsim.stats import bootstrap_slope

    rng = np.random.default_rng(1)
    G, n = 8, 125
    x = rng.uniform(-4.0, -3.0, G)[:, None] + 0.05 * rng.standard_normal((G, n))
    y = -1.0 * x + 0.3 * rng.standard_normal(G)[:, None] + 0.05 * rng.standard_normal((G, n))
    b, lo, hi = bootstrap_slope(x.ravel(), y.ravel(), np.repeat(np.arange(G), n))
    pooled = fit_line(x.ravel(), y.ravel())
    assert hi - lo > 3 * (pooled["hi"] - pooled["lo"])
    assert lo < b < hi


def test_claims_report_the_race_from_events():
    summary, events = theory_run(4)
    sl = race_events(-1.0)
    ev = pd.concat([events[events["method"] != "sl"], sl, sl.assign(method="mrp")], ignore_index=True)
    fit = events[(events["method"] == "sl") & (events["event"] == "fit")]
    t = K.claims(summary, pd.concat([ev, fit], ignore_index=True), C.Config()).set_index("claim")
    assert t.loc["sl_race", "verdict"] == "holds"
    assert t.loc["mrp_race", "verdict"] == "fails"  # MRP's slope is -(2q - 2) = -4 in theory
    ema = C.with_values(C.Config(), {"mrp.teacher": "ema", "mrp.step": "adaptive"})
    assert "mrp_race" not in K.claims(summary, ev, ema)["claim"].tolist()


# ---------------------------------------------------------------- report and CLI


def results_dir(path: Path, summary: pd.DataFrame, events: pd.DataFrame) -> Path:
    (path / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (path / "config.toml").write_text(C.to_toml(C.Config()))
    store.write_chunk(path, "g0000.parquet", summary, pd.DataFrame({"grid_point": pd.Series(dtype=int)}), events)
    return path


def no_constants(name):
    raise ValueError(f"invalid JSON constant {name}")


def test_report_writes_valid_json_and_markdown(tmp_path):
    rows, _ = theory_run(3)
    rows.loc[rows["method"] == "mrp", "features_captured"] = 10.0  # mrp_captures_all fails
    events = pd.concat([seed_events(s, mrp_cap=np.r_[[1.0] * 10, [math.inf] * 10]) for s in range(3)])
    out = results_dir(tmp_path / "r", rows, events)  # t_cap not within MRP's horizon in every seed
    text = K.report(out)
    data = json.loads((out / "claims.json").read_text(), parse_constant=no_constants)
    records = data["claims"]
    assert [r["claim"] for r in records] == list(PR.THRESHOLDS)
    assert {r["verdict"] for r in records} <= {"holds", "fails", "inconclusive", "describes"}
    assert {"d / N", "P / k^2", "memorisation load"} <= {r["name"] for r in data["assumptions"]}
    assert "Failing here: " in text and "departs from the theorems' assumptions in: " in text and "P / k^2" in text
    assert (out / "claims.md").read_text() == text
    assert "## Thresholds" in text and "not within the horizon in 3 of 3 seeds" in text
    assert "scales of the two losses" in text


def test_report_json_turns_nan_into_null(tmp_path):
    out = results_dir(tmp_path / "r", *theory_run(1))
    K.report(out)
    records = json.loads((out / "claims.json").read_text(), parse_constant=no_constants)["claims"]
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
    records = json.loads((out / "claims.json").read_text(), parse_constant=no_constants)["claims"]
    assert {r["claim"] for r in records} == set(PR.THRESHOLDS)


def test_claims_leave_out_diverged_rows():
    rows, events = theory_run(4)
    rows = rows.assign(diverged=False)
    bad = (rows["seed"] == 3) & (rows["method"] == "sl")
    rows.loc[bad, "diverged"] = True
    rows.loc[bad, "acc_train"] = 0.0
    t = K.claims(rows, events).set_index("claim")
    assert t.loc["sl_fits", "seeds"] == 3 and t.loc["sl_fits", "verdict"] == "holds"
    assert t.loc["mrp_captures_all", "seeds"] == 4


def test_verdicts_do_not_depend_on_mrp_loss_scale(tmp_path):
    """The well-posedness test: MRP at rate 1e3 and 1e-3 (its loss multiplied by 1e3 and 1e-3), with its
    horizon and fine-tuning start divided by the rate, is the same dynamics in other units of GD time.
    Every verdict must be the same; MRP's event times move by the factor 1e6 between the two runs, and
    its race exponent stays. Checkpoints are decades from 1e-6 to 1e11 (a grid that
    the factor maps onto itself); SL and fine-tuning are untouched."""
    import mvsim

    base = {"train.checkpoints": [10.0**e for e in range(-6, 12)], "train.dt_max": 1e16, "train.max_steps": 2000}
    runs = {}
    for rate in (1e3, 1e-3):
        runs[rate] = mvsim.simulate("tests/tiny.toml", seeds=3, chunk=3, plots=False,
                                    set={**base, "train.mrp_rate": rate, "train.mrp_time": 1e5 / rate,
                                         "train.ft_from": [1e5 / rate]})
    fast, slow = (K.verdicts(runs[r]).set_index("claim") for r in (1e3, 1e-3))
    assert (fast["verdict"] == slow["verdict"]).all(), pd.concat([fast["verdict"], slow["verdict"]], axis=1)
    assert {"holds", "fails"} & set(fast["verdict"])  # the verdicts compared are real ones
    ev = {r: runs[r].events for r in runs}
    mrp = [e[(e["method"] == "mrp") & (e["event"] == "capture")].sort_values(["seed", "cls", "feature"])["gd_time"]
           .to_numpy() for e in (ev[1e3], ev[1e-3])]
    assert np.isfinite(mrp[0]).sum() >= 3
    np.testing.assert_allclose(mrp[1], mrp[0] * 1e6, rtol=0.02)
    sl = [e[e["method"] == "sl"]["gd_time"].to_numpy() for e in (ev[1e3], ev[1e-3])]
    np.testing.assert_array_equal(sl[0], sl[1])
    # a race exponent is a slope in log time, so a change of time unit leaves it as it is (the tiny
    # config never reaches t_cap, so the described t_cap / t_erode has no value here to compare)
    b = fast.loc["mrp_race", "measured"], slow.loc["mrp_race", "measured"]
    assert np.isfinite(b).all() and b[1] == pytest.approx(b[0], abs=0.02)
