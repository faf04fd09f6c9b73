"""Figures module: statistics helpers, figures from fabricated results directories, the CLI."""

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
from mvsim import plots, store
from mvsim.train import log_steps

BASE = {"data.k": 4, "train.sl_steps": 60, "train.mrp_steps": 40, "train.ft_steps": 20,
        "train.log_every": 10}


def _curve(steps, start, end, t_mid, width):
    """A logistic rise from `start` to `end` centred on step t_mid."""
    return start + (end - start) / (1 + np.exp(-(steps - t_mid) / width))


def fabricate(out: Path, grid: dict | None = None, seeds: int = 4, diverged=(),
              methods=("sl", "mrp", "mrp_ft"), rng_seed: int = 0, overrides: dict | None = None) -> Path:
    """A small results directory with plausible random values, laid out like mvsim.sweep's.

    SL captures one feature per class (the initial leader 85% of the time), MRP all of them,
    fine-tuning keeps them; `diverged` lists (grid_point, seed, method) rows marked diverged
    (their values are set absurdly so that including them would show in any mean).
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
        tr = pcfg.train
        summaries, features = [], []
        for seed in range(seeds):
            lam = {}
            init = np.abs(rng.normal(0.02, 0.008, (k, L)))
            init[0, -1] = -0.004  # a non-positive Lambda: the log-scale plot must cope
            steps = log_steps(tr.sl_steps, tr.log_every)[:, None, None]
            win = init.argmax(axis=1)
            flip = rng.random(k) < 0.15
            win = np.where(flip, (win + 1) % L, win)
            end = np.where(np.arange(L)[None, :] == win[:, None], rng.uniform(3, 6, (k, 1)), init * 1.2)
            lam["sl"] = _curve(steps, init, end, rng.uniform(20, 40, (k, L)), 4.0)
            steps = log_steps(tr.mrp_steps, tr.log_every)[:, None, None]
            init_m = np.abs(rng.normal(0.03, 0.01, (k, L)))
            mid = rng.uniform(10, 30, (k, L))
            lam["mrp"] = _curve(steps, init_m, rng.uniform(0.8, 2.0, (k, L)), mid, 3.0)
            steps = log_steps(tr.ft_steps, tr.log_every)[:, None, None]
            lam["mrp_ft"] = _curve(steps, lam["mrp"][-1], lam["mrp"][-1] * 1.3, 10.0, 3.0)
            acc = {"sl": (1.0, rng.uniform(0.93, 1.0), rng.uniform(0.35, 0.65)),
                   "mrp": (np.nan, np.nan, np.nan),
                   "mrp_ft": (rng.uniform(0.97, 1.0), rng.uniform(0.95, 1.0), rng.uniform(0.8, 0.95))}
            for method in methods:
                traj = lam[method]
                cap = traj[-1] >= thr
                tr_acc, multi, single = acc[method]
                row = {
                    "seed": seed, "method": method, "grid_point": gp, **point,
                    "features_total": float(k * L), "features_captured": float(cap.sum()),
                    "classes_all_captured": float((cap.sum(1) == L).sum()),
                    "classes_one_captured": float((cap.sum(1) == 1).sum()),
                    "lottery_agreement": float((traj[-1].argmax(1) == traj[0].argmax(1)).mean())
                    if method == "sl" else np.nan,
                    "acc_train": tr_acc, "acc_multi": multi, "acc_single": single,
                    "acc_test": (1 - pcfg.data.mu) * multi + pcfg.data.mu * single,
                    "mem_single": 1.0 if method == "sl" else np.nan,
                    "final_loss": rng.uniform(0.01, 0.1), "diverged": False,
                }
                if (gp, seed, method) in diverged:
                    row.update(diverged=True, features_captured=0.0, acc_multi=-100.0, acc_single=-100.0,
                               lottery_agreement=-100.0, final_loss=np.nan)
                summaries.append(row)
                T = traj.shape[0]
                idx = np.indices(traj.shape).reshape(3, -1)
                stepv = log_steps({"sl": tr.sl_steps, "mrp": tr.mrp_steps, "mrp_ft": tr.ft_steps}[method],
                                  tr.log_every)
                features.append(pd.DataFrame({
                    "seed": seed, "method": method, "grid_point": gp, **point,
                    "step": stepv[idx[0]], "cls": idx[1], "feature": idx[2],
                    "lam": traj.reshape(-1).astype(np.float32),
                    "lam_init": np.broadcast_to(traj[:1], traj.shape).reshape(-1).astype(np.float32),
                }))
                assert T == len(stepv)
        name = store.chunk_name(gp, list(range(seeds)))
        store.write_chunk(out, name, pd.DataFrame(summaries), pd.concat(features, ignore_index=True))
    return out


FAST_DPI = 60  # figures are laid out in inches; a low resolution keeps the tests quick


def _check_pngs(paths, expected, dpi=FAST_DPI):
    """The expected PNG files, each readable and at least 2.5 x 1.5 inches at `dpi`."""
    names = {p.name for p in paths}
    assert names == set(expected)
    for p in paths:
        assert p.stat().st_size > 2000
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 1.5 * dpi and img.shape[1] > 2.5 * dpi, (p.name, img.shape)


BASIC = ["trajectories.png", "features_captured.png", "lottery.png", "accuracy.png"]


# ---------------------------------------------------------------- statistics


def test_mean_ci_matches_t_interval():
    m, lo, hi = plots.mean_ci([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # t_{0.975, 3}
    assert m == pytest.approx(2.5) and lo == pytest.approx(2.5 - half) and hi == pytest.approx(2.5 + half)
    assert plots.mean_ci([1.0, np.nan, 3.0, np.inf])[0] == pytest.approx(2.0)
    assert all(math.isnan(v) for v in plots.mean_ci([]))
    m, lo, hi = plots.mean_ci([0.7])
    assert m == 0.7 and math.isnan(lo) and math.isnan(hi)
    assert plots.mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    m, lo, hi = plots.mean_ci([1.0, 1.0, 0.9], bounds=(0.0, 1.0))  # shares stay within [0, 1]
    assert lo < m < hi == 1.0 and plots.mean_ci([1.0, 1.0, 0.9])[2] > 1.0


def test_aggregate_excludes_diverged_rows():
    df = pd.DataFrame({
        "method": ["sl"] * 4 + ["mrp_ft"] * 3,
        "acc_single": [0.4, 0.6, 0.5, -100.0, 0.9, 0.8, 1e9],
        "diverged": [False, False, False, True, False, False, True],
    })
    agg = plots.aggregate(df, "acc_single").set_index("method")
    assert agg.loc["sl", "mean"] == pytest.approx(0.5)
    assert agg.loc["mrp_ft", "mean"] == pytest.approx(0.85)
    assert agg.loc["sl", "n"] == 3 and agg.loc["sl", "n_diverged"] == 1
    assert agg.loc["sl", "lo"] < 0.5 < agg.loc["sl", "hi"]


def test_wilson_interval_stays_in_unit_range():
    p, lo, hi = plots.wilson_ci(10, 10)
    assert p == 1.0 and 0.6 < lo < 1.0 and hi == 1.0
    for n in range(1, 60):  # the interval always contains the share (no negative error bars)
        for s in (0, 1, n // 2, n - 1, n):
            p, lo, hi = plots.wilson_ci(s, n)
            assert 0.0 <= lo <= p <= hi <= 1.0


def test_lottery_table_and_shares_skip_diverged(tmp_path):
    out = fabricate(tmp_path / "r", seeds=5, diverged={(0, 2, "sl"), (0, 3, "mrp_ft")})
    res = plots.load_results(out)
    t = plots.lottery_table(res)
    assert set(t["seed"]) == {0, 1, 3, 4}  # seed 2's SL run diverged
    sl = res.summary[(res.summary["method"] == "sl") & ~res.summary["diverged"]]
    assert t.groupby("seed")["agree"].mean().to_numpy() == pytest.approx(sl["lottery_agreement"].to_numpy())
    assert (t["final_gap"] >= 0).all() and ((t["init_gap"] > 0) == t["agree"]).all()
    agg = plots.aggregate(res.summary, "share_features").set_index("method")
    assert agg.loc["sl", "mean"] == pytest.approx(0.5) and agg.loc["sl", "n_diverged"] == 1
    assert agg.loc["mrp_ft", "mean"] == pytest.approx(1.0)


# ---------------------------------------------------------------- figures


def test_make_all_without_grid(tmp_path):
    out = fabricate(tmp_path / "r", diverged={(0, 1, "sl")})
    paths = plots.make_all(out, pdf=True)  # the default resolution, as in the README
    pngs = [p for p in paths if p.suffix == ".png"]
    _check_pngs(pngs, BASIC, dpi=plots.DPI)
    assert {p.name for p in paths if p.suffix == ".pdf"} == {n.replace(".png", ".pdf") for n in BASIC}
    assert all(p.parent == out / "figures" for p in paths)


def test_make_all_one_key_grid(tmp_path):
    out = fabricate(tmp_path / "r", grid={"data.mu": [0.01, 0.03, 0.3]}, seeds=3,
                    diverged={(1, 0, "mrp_ft")})
    _check_pngs(plots.make_all(out, dpi=FAST_DPI), BASIC + ["grid_data.mu.png"])


def test_make_all_two_and_three_key_grids(tmp_path):
    out = fabricate(tmp_path / "two", grid={"data.mu": [0.03, 0.2], "mrp.mask_keep": [0.3, 0.5, 0.7]},
                    seeds=2)
    _check_pngs(plots.make_all(out, dpi=FAST_DPI), BASIC + ["grid_data.mu_mrp.mask_keep.png"])
    base_m = C.Config().net.m  # the base config is grid point 2: (0.03, base_m, "data2vec")
    three = {"data.mu": [0.03, 0.2], "net.m": [3, base_m], "mrp.target": ["data2vec", "mae"]}
    out = fabricate(tmp_path / "three", grid=three, seeds=2)
    res = plots.load_results(out)
    assert res.ref == 2 and res.keys == ["data.mu", "net.m", "mrp.target"]
    assert [name for name, _ in plots.figures(res)][-1] == "grid_data.mu_net.m"


def test_reference_point_is_the_base_config(tmp_path):
    out = fabricate(tmp_path / "r", grid={"data.mu": [0.01, 0.03]}, seeds=1)  # base mu is 0.03
    res = plots.load_results(out)
    assert res.ref == 1 and res.point_label(1) == "data.mu = 0.03"


# ---------------------------------------------------------------- CLI


def test_cli_missing_dir_fails_with_one_line(tmp_path):
    missing = tmp_path / "nope"
    proc = subprocess.run([sys.executable, "-m", "mvsim.plots", str(missing)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and str(missing) in lines[0]


def test_cli_empty_dir_and_help(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert plots.main([str(tmp_path / "empty")]) != 0
    (tmp_path / "empty" / "config.toml").write_text(C.to_toml(C.Config()))
    assert plots.main([str(tmp_path / "empty")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no config.toml" in err[0] and "no results" in err[1]
    with pytest.raises(SystemExit) as e:
        plots.main(["--help"])
    assert e.value.code == 0 and "--pdf" in capsys.readouterr().out


def test_cli_writes_figures_and_skips_missing_methods(tmp_path, capsys):
    out = fabricate(tmp_path / "r", methods=("sl",), seeds=3)  # no MRP, no fine-tuning
    assert plots.main([str(out), "--dpi", str(FAST_DPI)]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    _check_pngs(printed, BASIC)
