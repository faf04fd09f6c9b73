"""The notebook API (mvsim.simulate, mvsim.load_results, mvsim.verdicts) against the CLI, and the quickstart
example. Uses tests/tiny.toml with 2 seeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import mvsim
from mvsim import config as C
from mvsim import results, store, sweep

TINY = str(Path(__file__).with_name("tiny.toml"))
ROOT = Path(__file__).resolve().parents[1]


def files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The CLI's 2-seed run of tiny.toml (no figures, with the claims report)."""
    out = tmp_path_factory.mktemp("cli")
    assert sweep.main(["--config", TINY, "--seeds", "2", "--chunk", "2", "--out", str(out), "--quiet",
                       "--no-plots"]) == 0
    return out


@pytest.fixture(scope="module")
def in_memory():
    return mvsim.simulate(TINY, seeds=2, chunk=2)


def test_simulate_gives_the_cli_numbers_exactly(cli_run, in_memory):
    """In memory and on disk, one class (mvsim.results.Results) and the same tables, to the bit."""
    loaded = mvsim.load_results(cli_run)
    assert type(in_memory) is type(loaded) is results.Results
    pd.testing.assert_frame_equal(in_memory.summary, loaded.summary, check_exact=True)
    pd.testing.assert_frame_equal(in_memory.features, store.load_features(cli_run), check_exact=True)
    pd.testing.assert_frame_equal(in_memory.events, store.load_events(cli_run), check_exact=True)
    assert in_memory.out is None and in_memory.cfg == C.load_toml(TINY)[0] == loaded.cfg


def test_simulate_with_out_writes_what_the_cli_writes(cli_run, tmp_path):
    out = tmp_path / "api"
    res = mvsim.simulate(TINY, seeds=2, chunk=2, out=out, plots=False)
    assert files(out) == files(cli_run)
    assert (out / "config.toml").read_text() == (cli_run / "config.toml").read_text()
    assert (out / "claims.md").read_text() == (cli_run / "claims.md").read_text()
    pd.testing.assert_frame_equal(res.summary, mvsim.load_results(cli_run).summary, check_exact=True)
    pd.testing.assert_frame_equal(mvsim.load(out), store.load(cli_run), check_exact=True)
    pd.testing.assert_frame_equal(mvsim.load_features(out), store.load_features(cli_run), check_exact=True)
    assert res.out == out


def test_events_agree_with_the_checkpoints(in_memory):
    """Events are first crossings at step resolution, so at every logged checkpoint: Lambda at or above
    the capture line, a captured feature (its best kernel a detector) or a fitted training set means
    the event came at or before that GD time, and below it means the event came after."""
    cfg, keys = in_memory.cfg, ["seed", "method", "ft_from", "cls", "feature"]
    thr = cfg.metrics.capture_frac * cfg.net.varrho
    ev = in_memory.events.set_index(["event"] + keys)["gd_time"]
    f = in_memory.features
    for event, done in (("reach", f["lam"] >= thr),
                        ("capture", (f["lam"] >= thr) & (f["cross"] <= cfg.metrics.purity_max))):
        t_ev = ev.loc[event].reindex(pd.MultiIndex.from_frame(f[keys])).to_numpy()
        t = f["gd_time"].to_numpy()
        assert (t_ev[done.to_numpy()] <= t[done.to_numpy()] * (1 + 1e-5)).all(), event
        if event == "reach":
            assert (t_ev[~done.to_numpy()] > t[~done.to_numpy()] * (1 - 1e-5)).all()
    s = in_memory.summary[in_memory.summary["method"].isin(["sl", "mrp_ft"])]
    t_fit = ev.loc["fit"].droplevel(["cls", "feature"]).reindex(pd.MultiIndex.from_frame(s[keys[:3]])).to_numpy()
    fitted = (s["acc_train"] >= 0.99).to_numpy()
    assert (t_fit[fitted] <= s["gd_time"].to_numpy()[fitted] * (1 + 1e-5)).all()
    assert (t_fit[~fitted] > s["gd_time"].to_numpy()[~fitted] * (1 - 1e-5)).all()


def test_results_last_and_claims(in_memory):
    last = in_memory.last
    assert len(last) == 2 * 3 and not last.duplicated(["seed", "method"]).any()
    table = mvsim.verdicts(in_memory)
    assert len(table) and {"claim", "verdict", "grid_point"} <= set(table.columns)
    assert set(table.verdict) <= {"holds", "fails", "inconclusive", "describes"}
    from mvsim.claims import claims

    pd.testing.assert_frame_equal(claims(in_memory.summary, in_memory.events, in_memory.cfg), table)


def test_overrides_and_grid(in_memory):
    res = mvsim.simulate(TINY, seeds=2, chunk=2, data__mu=0.1, set={"mrp.mask_keep": 0.4},
                         grid={"data.s": [1.0, 2.0]})
    assert res.cfg.data.mu == 0.1 and res.cfg.mrp.mask_keep == 0.4 and res.grid == {"data.s": [1.0, 2.0]}
    assert sorted(res.summary.grid_point.unique()) == [0, 1]
    assert sorted(res.summary["data.s"].unique()) == [1.0, 2.0]
    assert not res.summary.diverged.any()
    # the same seeds at another mu give other numbers
    assert not res.summary[res.summary.grid_point == 1].acc_test.equals(in_memory.summary.acc_test)


def test_config_object_and_keyword_spelling():
    cfg = C.load_toml(TINY)[0]
    plan = sweep.resolve_plan(cfg, {"data.mu": 0.2}, seeds=3)
    assert plan.cfg.data.mu == 0.2 and plan.seeds == 3 and len(plan.points) == 1
    from mvsim.api import _values

    assert _values({"net.m": 3}, {"data__mu": 0.2}) == {"net.m": 3, "data.mu": 0.2}


@pytest.mark.parametrize("kwargs, says", [
    ({"data__foo": 1}, "data.foo"),
    ({"data__mu": 2.0}, "data.mu"),
    ({"mu": 0.1}, "data__mu"),
    ({"seeds": 0}, "--seeds 0"),
    ({"chunk": 0}, "--chunk 0"),
    ({"grid": {"data.mu": []}}, "empty grid"),
    ({"grid": {"data.mu": 0.1}}, "list of values"),
    ({"data__n_train": 100_000_000}, "memory"),
])
def test_bad_arguments_raise_config_error_before_running(kwargs, says, monkeypatch):
    monkeypatch.setattr(sweep, "run_work", lambda *a, **k: pytest.fail("ran a chunk"))
    with pytest.raises(C.ConfigError, match=says.replace("[", r"\[")):
        mvsim.simulate(TINY, **{"seeds": 2, **kwargs})


def test_import_mvsim_is_light_and_its_submodules_are_plain_modules():
    code = ("import sys, types, mvsim; assert 'jax' not in sys.modules and 'pandas' not in sys.modules, 'heavy'; "
            "import mvsim.claims; assert isinstance(mvsim.claims, types.ModuleType); "
            "assert mvsim.verdicts is mvsim.claims.verdicts and mvsim.load_results is mvsim.results.load_results")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_quickstart_example_runs():
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=ROOT, env=dict(os.environ),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "final row" in p.stdout and "mrp_ft" in p.stdout and "verdict" in p.stdout, p.stdout
