"""Figures: statistics helpers, figures from fabricated results directories (one summary row per
grid point, seed, method, ft_from and checkpoint) and from one real tiny sweep, the CLI."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from mvsim import config as C
from mvsim import figs_horizon, figs_grid, plots, plotstyle, results, stats, store, sweep, tables
from mvsim.figs_time import curve, good_runs, time_rows, window_marks, windows_at

ROOT = Path(__file__).resolve().parents[1]
TINY = str(Path(__file__).with_name("tiny.toml"))
BASE = {"data.k": 4, "train.sl_time": 1e4, "train.mrp_time": 1e5, "train.ft_time": 1e3,
        "train.checkpoints": (1.0, 10.0, 100.0, 1e3, 1e4), "train.ft_from": (1e5,)}
METHODS = ("sl", "mrp", "mrp_ft")


def _rise(t, start, end, log_mid, width=0.4):
    """A logistic rise in log10 GD time from `start` (t = 0) to `end`, centred on 10**log_mid."""
    lt = np.log10(np.maximum(t, 1e-30))
    return start + (end - start) / (1 + np.exp(-(lt - log_mid) / width))


def _seed_run(rng, pcfg, method, times, lam0):
    """(Lambda over times (T, k, L), accuracies over times) of one fabricated run."""
    k, L = pcfg.data.k, pcfg.data.L
    t = times[:, None, None]
    if method == "sl":  # one feature per class (the initial leader 85% of the time), fits at ~1e2
        win = lam0.argmax(axis=1)
        win = np.where(rng.random(k) < 0.15, (win + 1) % L, win)
        end = np.where(np.arange(L)[None, :] == win[:, None], rng.uniform(3, 6, (k, 1)), lam0 * 1.2)
        lam = _rise(t, lam0, end, rng.uniform(1.0, 2.0, (k, L)))
        acc = (_rise(times, 0.25, 1.0, 1.0), _rise(times, 0.25, 0.97, 1.5), _rise(times, 0.25, 0.5, 1.5))
    elif method == "mrp":  # every feature, around GD time 1e3
        lam = _rise(t, lam0, rng.uniform(1.2, 2.5, (k, L)), rng.uniform(2.5, 3.5, (k, L)))
        acc = (np.full(times.shape, np.nan),) * 3
    else:  # fine-tuning keeps them
        lam = lam0 * _rise(t, 1.0, 1.3, 1.0)
        acc = (_rise(times, 0.9, 1.0, 1.0), _rise(times, 0.9, 0.99, 1.0), _rise(times, 0.7, 0.9, 1.0))
    return lam, acc


def fabricate(out: Path, grid: dict | None = None, seeds: int = 4, diverged=(), methods=METHODS,
              rng_seed: int = 0, overrides: dict | None = None) -> Path:
    """A small results directory with plausible random values, laid out like mvsim.sweep's.

    `diverged` lists (grid_point, seed, method) runs marked diverged from their last checkpoint
    on, with absurd values there so that including them would show in any mean.
    """
    grid = grid or {}
    cfg = C.with_values(C.Config(), {**BASE, **(overrides or {})})
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(C.to_toml(cfg, grid, seeds=seeds))
    rng = np.random.default_rng(rng_seed)
    keys = list(grid)
    for gp, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        point = dict(zip(keys, combo))
        pcfg = C.with_values(cfg, point)
        k, L, thr = pcfg.data.k, pcfg.data.L, pcfg.metrics.capture_frac * pcfg.net.varrho
        summaries, features, events = [], [], []
        for seed in range(seeds):
            lam0 = {"sl": np.abs(rng.normal(0.02, 0.008, (k, L))), "mrp": np.abs(rng.normal(0.03, 0.01, (k, L)))}
            lam0["sl"][0, -1] = -0.004  # a non-positive Lambda: the log-scale plot must cope
            runs = {}
            for method in methods:
                times = tables.times_of(method, pcfg)
                start = runs["mrp"][0][-1] if method == "mrp_ft" and "mrp" in runs else lam0.get(method, lam0["mrp"])
                runs[method] = _seed_run(rng, pcfg, method, times, start)
                lam, (tr_acc, multi, single) = runs[method]
                cap = lam >= thr
                T = len(times)
                s = pd.DataFrame({
                    "seed": seed, "method": method, "grid_point": gp, **point,
                    "ft_from": pcfg.train.ft_from[-1] if method == "mrp_ft" else np.nan,
                    "features_total": float(k * L), "features_captured": cap.sum((1, 2)).astype(float),
                    "features_reached": cap.sum((1, 2)).astype(float),
                    "classes_all_captured": (cap.sum(2) == L).sum(1).astype(float),
                    "classes_one_captured": (cap.sum(2) == 1).sum(1).astype(float),
                    "lottery_agreement": ((lam.argmax(2) == lam[:1].argmax(2)).mean(1) if method == "sl"
                                          else np.nan),
                    "acc_train": tr_acc, "acc_multi": multi, "acc_single": single,
                    "acc_test": (1 - pcfg.data.mu) * multi + pcfg.data.mu * single,
                    "mem_single": 1.0 if method == "sl" else np.nan, "purity_min": 0.9, "cross_max": 0.1,
                    "final_loss": rng.uniform(0.01, 0.1, T), "diverged": False,
                    "gd_time": times, "step": np.arange(T) * 7, "checkpoint": times, "reached": True,
                    "is_last": np.arange(T) == T - 1,
                })
                if (gp, seed, method) in diverged:
                    s.loc[T - 1, ["diverged", "features_captured", "acc_multi", "acc_single",
                                  "lottery_agreement", "final_loss"]] = [True, -100.0, -100.0, -100.0, -100.0,
                                                                         np.nan]
                summaries.append(s)
                events.append(_events(seed, method, gp, point, s, lam, cap, times))
                idx = np.indices(lam.shape).reshape(3, -1)
                features.append(pd.DataFrame({
                    "seed": seed, "method": method, "grid_point": gp, **point,
                    "ft_from": s["ft_from"].iloc[0], "checkpoint": times[idx[0]], "gd_time": times[idx[0]],
                    "step": idx[0] * 7, "cls": idx[1], "feature": idx[2],
                    "lam": lam.reshape(-1).astype(np.float32),
                    "lam_init": np.broadcast_to(lam[:1], lam.shape).reshape(-1).astype(np.float32),
                    "purity": 0.9, "cross": 0.1, "mix": 0.0,
                }))
        name = store.chunk_name(gp, list(range(seeds)))
        store.write_chunk(out, name, pd.concat(summaries, ignore_index=True),
                          pd.concat(features, ignore_index=True), pd.concat(events, ignore_index=True))
    return out


def _events(seed, method, gp, point, s, lam, cap, times) -> pd.DataFrame:
    """Event rows like mvsim.tables' from a fabricated run: each event at the first checkpoint where it holds."""
    def first(hit):  # hit (T, ...) -> first time it holds, inf if never
        return np.where(hit.any(0), times[hit.argmax(0)], np.inf)

    k, L = lam.shape[1:]
    c, f = np.indices((k, L)).reshape(2, -1)
    t_cap = first(cap).ravel()
    rows = [pd.DataFrame({"event": e, "cls": c, "feature": f, "gd_time": t_cap, "lam_init": lam[0].ravel()})
            for e in ("reach", "capture")]
    if method != "mrp":
        rows.append(pd.DataFrame({"event": ["fit"], "cls": -1, "feature": -1,
                                  "gd_time": first(s["acc_train"].to_numpy() >= 0.99), "lam_init": np.nan}))
    ev = pd.concat(rows, ignore_index=True)
    return ev.assign(seed=seed, method=method, grid_point=gp, ft_from=s["ft_from"].iloc[0], t_end=times[-1],
                     horizon=times[-1], censored=np.where(np.isinf(ev["gd_time"]), "right", "none"), **point)


FAST_DPI = 50  # figures are laid out in inches; a low resolution keeps the tests quick
BASIC = ["time.png", "trajectories.png", "features_captured.png", "lottery.png", "accuracy.png"]


def _check_pngs(paths, expected, dpi=FAST_DPI):
    """The expected PNG files, each readable and at least 2.5 x 1.5 inches at `dpi`."""
    names = {p.name for p in paths}
    assert names == set(expected)
    for p in paths:
        assert p.stat().st_size > 2000
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 1.5 * dpi and img.shape[1] > 2.5 * dpi, (p.name, img.shape)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """One real tiny sweep over a 2-point grid (data.mu), shared by the tests that need one."""
    out = tmp_path_factory.mktemp("plots") / "real"
    assert sweep.main(["--config", TINY, "--seeds", "2", "--chunk", "2", "--out", str(out), "--quiet", "--no-plots",
                       "--grid", "data.mu=0.03,0.1"]) == 0
    return out


# ---------------------------------------------------------------- statistics


def test_mean_ci_matches_t_interval():
    m, lo, hi = stats.mean_ci([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # t_{0.975, 3}
    assert m == pytest.approx(2.5) and lo == pytest.approx(2.5 - half) and hi == pytest.approx(2.5 + half)
    assert stats.mean_ci([1.0, np.nan, 3.0, np.inf])[0] == pytest.approx(2.0)
    assert all(math.isnan(v) for v in stats.mean_ci([]))
    m, lo, hi = stats.mean_ci([0.7])
    assert m == 0.7 and math.isnan(lo) and math.isnan(hi)
    assert stats.mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    m, lo, hi = stats.mean_ci([1.0, 1.0, 0.9], bounds=(0.0, 1.0))  # shares stay within [0, 1]
    assert lo < m < hi == 1.0 and stats.mean_ci([1.0, 1.0, 0.9])[2] > 1.0
    for df, q in [(1, 12.706204736174698), (2, 4.302652729749464), (9, 2.2621571628540993),
                  (30, 2.0422724563012373)]:
        assert stats.mean_ci(np.arange(df + 1.0))[2] - df / 2 == pytest.approx(
            q * np.std(np.arange(df + 1.0), ddof=1) / math.sqrt(df + 1), rel=1e-9)


def test_aggregate_excludes_diverged_rows():
    df = pd.DataFrame({
        "method": ["sl"] * 4 + ["mrp_ft"] * 3,
        "acc_single": [0.4, 0.6, 0.5, -100.0, 0.9, 0.8, 1e9],
        "diverged": [False, False, False, True, False, False, True],
    })
    agg = stats.aggregate(df, "acc_single").set_index("method")
    assert agg.loc["sl", "mean"] == pytest.approx(0.5)
    assert agg.loc["mrp_ft", "mean"] == pytest.approx(0.85)
    assert agg.loc["sl", "n"] == 3 and agg.loc["sl", "n_diverged"] == 1
    assert agg.loc["sl", "lo"] < 0.5 < agg.loc["sl", "hi"]
    assert stats.diverged_mask(df.drop(columns="diverged")).sum() == 0


def test_wilson_interval_stays_in_unit_range():
    p, lo, hi = stats.wilson_ci(10, 10)
    assert p == 1.0 and 0.6 < lo < 1.0 and hi == 1.0
    for n in range(1, 60):  # the interval always contains the share (no negative error bars)
        for s in (0, 1, n // 2, n - 1, n):
            p, lo, hi = stats.wilson_ci(s, n)
            assert 0.0 <= lo <= p <= hi <= 1.0


def test_geometric_mean_of_reached_times():
    assert stats.geo_mean([1e2, 1e4, np.inf, np.nan]) == (pytest.approx(1e3), 2)
    g, n = stats.geo_mean([np.inf, np.nan])
    assert math.isnan(g) and n == 0
    w = pd.DataFrame({"grid_point": 0, "seed": [0, 1, 2], "t_fit": [1e2, 1e4, np.inf],
                      "t_erode": [np.inf, np.inf, np.nan], "t_cap": [10.0, 1000.0, 100.0]})
    marks = window_marks(w)
    assert marks["t_fit"] == (pytest.approx(1e3), 2, 3)
    assert marks["t_erode"][1:] == (0, 2)  # NaN: SL never fitted, so seed 2 has no window
    assert marks["t_cap"] == (pytest.approx(100.0), 3, 3)
    assert window_marks(None) == {} and "t_cap" not in window_marks(w.assign(t_cap=np.nan))  # no MRP run


def test_curve_is_mean_and_ci_per_checkpoint():
    df = pd.DataFrame({"checkpoint": [1.0, 1.0, 1.0, 10.0, 10.0], "x": [0.2, 0.4, np.nan, 1.0, 1.0]})
    c = curve(df, "x").set_index("t")
    assert c.loc[1.0, "mean"] == pytest.approx(0.3) and c.loc[1.0, "n"] == 2
    assert c.loc[1.0, "lo"] == pytest.approx(stats.mean_ci([0.2, 0.4], bounds=(0, 1))[1])
    assert c.loc[10.0, "mean"] == 1.0 and c.loc[10.0, "hi"] == 1.0


# ---------------------------------------------------------------- data selection


def test_end_figures_use_each_methods_horizon(tmp_path):
    out = fabricate(tmp_path / "r", seeds=3)
    res = results.load_results(out)
    assert len(res.summary) > len(res.last) == 3 * len(METHODS)
    assert res.last.groupby(["seed", "method"]).size().eq(1).all()
    assert res.last["is_last"].all()
    pd.testing.assert_frame_equal(res.last, tables.last(res.summary))
    h = res.last.set_index("method")["checkpoint"].groupby(level=0).max()
    assert h["sl"] == 1e4 and h["mrp"] == 1e5 and h["mrp_ft"] == 1e3
    sl = res.last[res.last["method"] == "sl"]
    assert (sl["share_one"] == 1.0).all() and (sl["share_features"] == 0.5).all()  # one feature per class
    assert (res.last.loc[res.last["method"] == "mrp", "share_features"] == 1.0).all()


def test_time_rows_drop_diverged_runs_and_unreached_checkpoints(tmp_path):
    out = fabricate(tmp_path / "r", seeds=4, diverged={(0, 2, "sl")})
    res = results.load_results(out)
    s = res.summary
    s.loc[(s["seed"] == 1) & (s["method"] == "mrp") & (s["checkpoint"] == 1e3), "reached"] = False
    rows, bad, unreached = time_rows(res, 0)
    assert bad.to_dict() == {"sl": 1} and unreached == 1
    sl = rows[rows["method"] == "sl"]
    assert 2 not in set(sl["seed"]) and set(sl["seed"]) == {0, 1, 3}  # every checkpoint of the run goes
    assert (rows["checkpoint"] > 0).all() and rows["reached"].all()
    assert not ((rows["seed"] == 1) & (rows["method"] == "mrp") & (rows["checkpoint"] == 1e3)).any()
    c = curve(sl, "acc_single")
    assert (c["mean"].between(0, 1)).all()  # the absurd diverged values stay out
    kept, _ = good_runs(s[s["method"] == "mrp"])
    assert len(kept) == (s["method"] == "mrp").sum()


def test_windows_of_the_time_figure(tmp_path):
    pytest.importorskip("mvsim.claims")
    out = fabricate(tmp_path / "r", seeds=3)
    res = results.load_results(out)
    w = windows_at(res, 0)
    assert w is not None and len(w) == 3
    marks = window_marks(w)
    assert marks["t_fit"] == (pytest.approx(1e3), 3, 3)  # SL fits (acc_train >= 0.99) at 1e3
    assert marks["t_cap"][1] == 3 and 1e2 <= marks["t_cap"][0] <= 1e5  # MRP captures every feature


def test_lottery_table_and_shares_skip_diverged(tmp_path):
    out = fabricate(tmp_path / "r", seeds=5, diverged={(0, 2, "sl"), (0, 3, "mrp_ft")})
    res = results.load_results(out)
    t = figs_horizon.lottery_table(res)
    assert set(t["seed"]) == {0, 1, 3, 4}  # seed 2's SL run diverged
    sl = res.last[(res.last["method"] == "sl") & ~res.last["diverged"]]
    assert t.groupby("seed")["agree"].mean().to_numpy() == pytest.approx(sl["lottery_agreement"].to_numpy())
    assert (t["final_gap"] >= 0).all() and ((t["init_gap"] > 0) == t["agree"]).all()
    agg = stats.aggregate(res.last, "share_features").set_index("method")
    assert agg.loc["sl", "mean"] == pytest.approx(0.5) and agg.loc["sl", "n_diverged"] == 1
    assert agg.loc["mrp_ft", "mean"] == pytest.approx(1.0) and agg.loc["mrp_ft", "n_diverged"] == 1


def test_reference_point_is_the_base_config(tmp_path):
    out = fabricate(tmp_path / "r", grid={"data.mu": [0.01, 0.03]}, seeds=1)  # base mu is 0.03
    res = results.load_results(out)
    assert res.ref == 1 and res.point_label(1) == "data.mu = 0.03"
    assert "reference grid point: data.mu = 0.03" in res.where(1) and res.where(1).startswith("\n")


# ---------------------------------------------------------------- figures


def test_make_all_one_point(tmp_path):
    out = fabricate(tmp_path / "r", diverged={(0, 1, "sl")})
    paths = plots.make_all(out, pdf=True)  # the default resolution, as in the README
    pngs = [p for p in paths if p.suffix == ".png"]
    _check_pngs(pngs, BASIC, dpi=plotstyle.DPI)
    assert {p.name for p in paths if p.suffix == ".pdf"} == {n.replace(".png", ".pdf") for n in BASIC}
    assert all(p.parent == out / "figures" for p in paths)


def test_make_all_two_and_three_key_grids(tmp_path):
    out = fabricate(tmp_path / "two", grid={"data.mu": [0.03, 0.2], "mrp.mask_keep": [0.3, 0.5, 0.7]},
                    seeds=2, diverged={(1, 0, "mrp_ft")})
    _check_pngs(plots.make_all(out, dpi=FAST_DPI), BASIC + ["grid_data.mu_mrp.mask_keep.png"])
    base_m = C.Config().net.m  # the base config is grid point 2: (0.03, base_m, "full")
    three = {"data.mu": [0.03, 0.2], "net.m": [3, base_m], "ft.mode": ["full", "head"]}
    out = fabricate(tmp_path / "three", grid=three, seeds=1)
    res = results.load_results(out)
    assert res.ref == 2 and res.keys == ["data.mu", "net.m", "ft.mode"]
    assert [name for name, _ in plots.figures(res)][-1] == "grid_data.mu_net.m"
    tabs = figs_grid.grid_tables(res, "data.mu", "net.m")
    assert tabs["mrp_features"].shape == (2, 2) and (tabs["mrp_features"] == 1.0).all().all()


def test_real_sweep_two_point_grid(real):
    res = results.load_results(real)
    assert res.keys == ["data.mu"] and res.ref == 0
    assert len(res.last) == 2 * 2 * 3  # grid points x seeds x methods
    _check_pngs(plots.make_all(real, dpi=FAST_DPI), BASIC + ["grid_data.mu.png"])


# ---------------------------------------------------------------- CLI


def test_cli_missing_dir_fails_with_one_line(tmp_path):
    missing = tmp_path / "nope"
    proc = subprocess.run([sys.executable, "-m", "mvsim.plots", str(missing)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and str(missing) in lines[0]


def test_cli_empty_old_dir_and_help(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert plots.main([str(tmp_path / "empty")]) != 0
    (tmp_path / "empty" / "config.toml").write_text(C.to_toml(C.Config()))
    assert plots.main([str(tmp_path / "empty")]) != 0
    old = fabricate(tmp_path / "old", seeds=1)
    for f in (old / "summary").glob("*.parquet"):  # a results directory of the step-based schema
        store.write_atomic(pd.read_parquet(f).drop(columns=["checkpoint", "is_last"]), f)
    assert plots.main([str(old)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "no config.toml" in err[0] and "no results" in err[1] and "older" in err[2]
    with pytest.raises(SystemExit) as e:
        plots.main(["--help"])
    assert e.value.code == 0 and "--pdf" in capsys.readouterr().out


def test_cli_writes_figures_and_skips_missing_methods(tmp_path, capsys):
    out = fabricate(tmp_path / "r", methods=("sl",), seeds=3)  # no MRP, no fine-tuning
    assert plots.main([str(out), "--dpi", str(FAST_DPI)]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    _check_pngs(printed, BASIC)
