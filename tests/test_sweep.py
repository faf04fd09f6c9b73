"""The sweep's contract: bad input, results directory, resume after kill -9, chunk and device
invariance, no recompilation over float grids, divergence marking. Uses tests/tiny.toml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mvsim import store, sweep

TINY = str(Path(__file__).with_name("tiny.toml"))
ROOT = Path(__file__).resolve().parents[1]
NUMERIC = ["features_captured", "classes_all_captured", "lottery_agreement", "acc_train",
           "acc_multi", "acc_single", "final_loss"]


def run(out, *extra, seeds=4, chunk=2):
    argv = ["--config", TINY, "--seeds", str(seeds), "--out", str(out), "--quiet", "--no-plots"]
    if chunk:
        argv += ["--chunk", str(chunk)]
    return sweep.main(argv + list(extra))


def cli(*args, env=None, **kw):
    e = dict(os.environ, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "mvsim.sweep", *args], cwd=ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def numbers(out) -> pd.DataFrame:
    df = store.load(out)
    return df.set_index(["grid_point", "seed", "method"])[NUMERIC].sort_index()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-seed run with chunk 2."""
    out = tmp_path_factory.mktemp("ref")
    assert run(out, seeds=6, chunk=2) == 0
    return out


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, says", [
    (["--seeds", "0"], "--seeds 0"),
    (["--seeds", "-3"], "--seeds -3"),
    (["--chunk", "0"], "--chunk 0"),
    (["--set", "data.foo=1"], "data.foo"),
    (["--set", "data.mu=abc"], "data.mu"),
    (["--set", "data.mu=2"], "data.mu = 2.0"),
    (["--set", "net.m=1.5"], "net.m"),
    (["--set", "mrp.mask_keep=1"], "mrp.mask_keep"),
    (["--set", "mrp.target=pixels"], "mrp.target"),
    (["--set", "data.mu"], "KEY=VALUE"),
    (["--grid", "data.mu="], "empty grid"),
    (["--grid", "data.mu=0.1,abc"], "data.mu"),
    (["--grid", "data.d=4,8"], "data.d"),
    (["--config", "/nonexistent/x.toml"], "does not exist"),
])
def test_bad_input_one_clear_line(tmp_path, capsys, args, says):
    argv = ["--config", TINY, "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]
    assert sweep.main(argv + args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "o" / "summary").exists()


def test_malformed_config_and_unwritable_out(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nk = 3\n")
    assert sweep.main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert sweep.main(["--config", TINY, "--out", str(blocker / "sub")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_unknown_section_in_config(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[dataa]\nk = 3\n")
    assert sweep.main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "dataa" in capsys.readouterr().err


# ---------------------------------------------------------------- results directory


def test_results_directory_contract(reference):
    df = store.load(reference)
    assert set(df.method) == {"sl", "mrp", "mrp_ft"}
    assert len(df) == 6 * 3 and not df.duplicated(["seed", "method"]).any()
    for col in ["seed", "method", "features_total", "features_captured", "classes_all_captured",
                "classes_one_captured", "lottery_agreement", "acc_train", "acc_multi", "acc_single",
                "acc_test", "final_loss", "diverged"]:
        assert col in df.columns, col
    assert df[df.method == "sl"].lottery_agreement.notna().all()
    assert df[df.method != "sl"].lottery_agreement.isna().all()
    f = store.load_features(reference)
    for col in ["seed", "method", "step", "cls", "feature", "lam", "lam_init"]:
        assert col in f.columns
    # tiny.toml: k = 3, L = 2, logs at 0, 4, 8, 12 for SL
    sl0 = f[(f.method == "sl") & (f.seed == 0)]
    assert sorted(sl0.step.unique()) == [0, 4, 8, 12] and len(sl0) == 4 * 3 * 2
    first = sl0[sl0.step == 0]
    assert np.array_equal(first.lam.to_numpy(), first.lam_init.to_numpy())


def test_config_toml_repeats_the_run(reference, tmp_path):
    again = tmp_path / "again"
    assert sweep.main(["--config", str(reference / "config.toml"), "--out", str(again),
                       "--chunk", "3", "--quiet", "--no-plots"]) == 0  # seeds come from config.toml
    pd.testing.assert_frame_equal(numbers(again), numbers(reference), atol=1e-3, rtol=0)


def test_other_config_on_existing_dir_is_refused(reference, tmp_path, capsys):
    assert run(reference, "--set", "data.mu=0.2") == 2
    assert "different config" in capsys.readouterr().err


def test_rerun_of_finished_dir_adds_nothing(reference):
    before = numbers(reference)
    assert run(reference, seeds=6, chunk=2) == 0
    pd.testing.assert_frame_equal(numbers(reference), before)


# ---------------------------------------------------------------- invariance and resume


def test_chunk_size_does_not_change_numbers(reference, tmp_path):
    assert run(tmp_path / "c4", seeds=6, chunk=4) == 0  # last chunk padded
    pd.testing.assert_frame_equal(numbers(tmp_path / "c4"), numbers(reference), atol=1e-3, rtol=0)


def test_two_forced_cpu_devices_give_same_numbers(reference, tmp_path):
    out = tmp_path / "dev2"
    p = cli("--config", TINY, "--seeds", "6", "--chunk", "2", "--out", str(out), "--quiet", "--no-plots",
            env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    pd.testing.assert_frame_equal(numbers(out), numbers(reference), atol=1e-3, rtol=0)


def test_kill_9_then_resume_equals_uninterrupted(reference, tmp_path):
    out = tmp_path / "killed"
    p = cli("--config", TINY, "--seeds", "6", "--chunk", "2", "--out", str(out), "--quiet", "--no-plots",
            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "summary").glob("*.parquet")):
        assert p.poll() is None, p.communicate()[1]
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    finished = len(list((out / "summary").glob("*.parquet")))
    assert 1 <= finished < 3, "the kill should land after the first chunk"
    assert run(out, seeds=6, chunk=2) == 0
    pd.testing.assert_frame_equal(numbers(out), numbers(reference), atol=1e-3, rtol=0)


def test_more_seeds_resume_with_other_chunking(reference, tmp_path):
    out = tmp_path / "grow"
    assert run(out, seeds=3, chunk=2) == 0
    assert run(out, seeds=6, chunk=4) == 0
    df = store.load(out)
    assert not df.duplicated(["seed", "method"]).any() and len(df) == 18
    pd.testing.assert_frame_equal(numbers(out), numbers(reference), atol=1e-3, rtol=0)


# ---------------------------------------------------------------- grids


def test_float_grid_compiles_once_and_records_keys(tmp_path):
    from mvsim.experiment import make_run

    assert run(tmp_path / "warm", "--set", "data.mu=0.3", seeds=2, chunk=2) == 0
    compiled = make_run()._cache_size()
    assert run(tmp_path / "g", "--grid", "data.mu=0.1,0.5", "--grid", "mrp.mask_keep=0.3,0.7",
               seeds=2, chunk=2) == 0
    assert make_run()._cache_size() == compiled, "a float grid must reuse the compiled function"
    df = store.load(tmp_path / "g")
    assert sorted(df.grid_point.unique()) == [0, 1, 2, 3]
    assert set(zip(df["data.mu"], df["mrp.mask_keep"])) == {(0.1, 0.3), (0.1, 0.7), (0.5, 0.3), (0.5, 0.7)}


def test_divergence_is_marked_and_warned(tmp_path, capsys):
    # a learning rate at the edge of float32: the SL weights overflow to inf and the loss to NaN
    assert run(tmp_path / "nan", "--set", "train.sl_lr=3e38", seeds=2, chunk=2) == 0
    df = store.load(tmp_path / "nan")
    assert df[df.method == "sl"].diverged.all()
    assert not df[df.method == "mrp"].diverged.any()
    assert "diverged" in capsys.readouterr().err


def test_processes_split_the_chunks_and_together_equal_one_run(reference, tmp_path):
    out = tmp_path / "split"
    assert run(out, "--num-processes", "2", "--process-id", "1", seeds=6, chunk=2) == 0
    part = store.load(out)
    assert 0 < part.seed.nunique() < 6  # process 1 took only its share of the chunks
    assert run(out, "--num-processes", "2", "--process-id", "0", seeds=6, chunk=2) == 0
    pd.testing.assert_frame_equal(numbers(out), numbers(reference), atol=1e-3, rtol=0)


def test_bad_process_id(tmp_path, capsys):
    assert run(tmp_path / "o", "--num-processes", "2", "--process-id", "2") == 2
    assert "--process-id 2" in capsys.readouterr().err


def test_two_processes_with_jax_distributed(reference, tmp_path):
    """Two processes joined by jax.distributed (coordinator on localhost) share one --out."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dist"
    procs = [cli("--config", TINY, "--seeds", "6", "--chunk", "2", "--out", str(out), "--no-plots",
                 "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i))
             for i in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert "process 1 of 2" in errs[1]
    pd.testing.assert_frame_equal(numbers(out), numbers(reference), atol=1e-3, rtol=0)
