"""The sweep's contract: bad input, memory and disk checks before compiling, results directory,
claims report, resume after kill -9, chunk and device invariance, no recompilation over float
grids, divergence marking. Uses tests/tiny.toml.

No test waits on a clock: the kill -9 is the sweep's own testing hook (MVSIM_STOP_AFTER_CHUNKS),
subprocesses are awaited to their end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import json

import numpy as np
import pandas as pd
import pytest

from mvsim import config as C
from mvsim import store, resources, sweep, tables

TINY = str(Path(__file__).with_name("tiny.toml"))
ROOT = Path(__file__).resolve().parents[1]
NUMERIC = ["features_captured", "classes_all_captured", "lottery_agreement", "acc_train",
           "acc_multi", "acc_single", "final_loss"]


def run(out, *extra, seeds=4, chunk=2, claims=False):
    argv = ["--config", TINY, "--seeds", str(seeds), "--out", str(out), "--quiet", "--no-plots"]
    if not claims:
        argv.append("--no-claims")
    if chunk:
        argv += ["--chunk", str(chunk)]
    return sweep.main(argv + list(extra))


def cli(*args, env=None, **kw):
    e = dict(os.environ, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "mvsim.sweep", *args], cwd=ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


KEYS = ["grid_point", "seed", "method", "ft_from", "checkpoint"]  # one summary row each


def numbers(out) -> pd.DataFrame:
    df = store.load(out)
    return df.set_index(KEYS)[NUMERIC + ["gd_time", "step"]].sort_index()


def same(out, ref) -> None:
    """The same numbers from the same compiled program (same chunk shape): bit for bit."""
    pd.testing.assert_frame_equal(numbers(out), numbers(ref), check_exact=True)


def close(out, ref) -> None:
    """The same numbers from another chunk shape or device count: XLA may sum in another order, and
    the adaptive steps carry the last bits into the step counts, so compare the measurements. A path
    of other steps is another approximation of the same flow within the solver's tolerance, which can
    move a test point that sits on a decision boundary: an accuracy may differ by one sample (seen:
    SL's multi-view accuracy of seed 0 at 1e4, 0.85 against 0.825, with the predictive controller)."""
    a, b = numbers(out)[NUMERIC], numbers(ref)[NUMERIC]
    cfg, _, _ = C.load_run_toml(TINY)
    one = {"acc_train": 1 / cfg.data.n_train, "acc_multi": 1 / cfg.data.n_test, "acc_single": 1 / cfg.data.n_test}
    for col in NUMERIC:
        pd.testing.assert_series_equal(a[col], b[col], atol=one.get(col, 0.0) + 1e-3, rtol=0)


def tiny_rows_per_seed() -> int:
    cfg, _, _ = C.load_run_toml(TINY)
    return resources.rows_per_seed(cfg)[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-seed run with chunk 2 (with its claims report)."""
    out = tmp_path_factory.mktemp("ref")
    assert run(out, seeds=6, chunk=2, claims=True) == 0
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
    argv = ["--config", TINY, "--out", str(tmp_path / "o"), "--quiet", "--no-plots", "--no-claims"]
    assert sweep.main(argv + args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "o" / "summary").exists()


# ---------------------------------------------------------------- memory and disk, before compiling


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if the sweep gets as far as running (and so compiling) a chunk."""
    def refuse(*a, **k):
        raise AssertionError("the sweep ran a chunk")
    monkeypatch.setattr(sweep, "run_work", refuse)


@pytest.mark.parametrize("key", ["data.n_train=100000000", "data.n_test=100000000"])
def test_seed_too_large_for_memory_is_refused_in_one_line(tmp_path, capsys, no_compile, key):
    out = tmp_path / "o"
    assert sweep.main(["--set", key, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "memory" in err and key.replace("=", " = ") in err, err
    for k in resources.MEMORY_KEYS:
        assert k in err, (k, err)
    assert not out.exists(), "a refused run leaves no results directory behind"


def test_memory_estimate_grows_with_the_keys_that_drive_it():
    base = C.Config()
    b0 = resources.bytes_per_seed(base)
    assert 100 * 2**20 < b0 < 400 * 2**20  # XLA counts 166 MiB at the default
    for key, value in [("data.n_train", 1000), ("data.n_pretrain", 1000), ("data.n_test", 2000),
                       ("data.P", 32), ("data.d", 512), ("net.m", 20), ("data.k", 20)]:
        assert resources.bytes_per_seed(C.with_values(base, {key: value})) > b0, key
    # the encoder logged at every MRP log time
    more_logs = C.with_values(base, {"train.checkpoints": [float(t) for t in range(1, 200)]})
    assert resources.bytes_per_seed(more_logs) > b0


def test_results_too_large_for_disk_are_refused_in_one_line(tmp_path, capsys, monkeypatch, no_compile):
    out = tmp_path / "o"
    need = resources.results_bytes(sweep.resolve_plan(TINY, seeds=4))
    monkeypatch.setattr(resources, "free_disk", lambda path: need - 1)
    assert run(out, seeds=4) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "free" in err and "--seeds" in err, err
    assert not out.exists()
    monkeypatch.setattr(resources, "free_disk", lambda path: need)  # just enough: no refusal
    resources.check_disk(sweep.resolve_plan(TINY, seeds=4), out)


def test_disk_estimate_counts_logged_rows(tmp_path):
    plan = sweep.resolve_plan(TINY, seeds=3, grid={"data.mu": [0.1, 0.2]})
    s_rows, f_rows = resources.rows_per_seed(plan.cfg)
    assert s_rows == 6 + 7 + 5 and f_rows == s_rows * 3 * 2  # SL, MRP, MRP+FT log times; k L = 6
    assert resources.results_bytes(plan) == 2 * 3 * (s_rows * resources.SUMMARY_ROW_BYTES + f_rows * resources.FEATURES_ROW_BYTES)
    assert resources.results_bytes(plan, done={0: {0, 1, 2}}) == resources.results_bytes(plan) // 2


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
    assert len(df) == 6 * tiny_rows_per_seed() and not df.duplicated(KEYS).any()
    for col in ["seed", "method", "features_total", "features_captured", "classes_all_captured",
                "classes_one_captured", "lottery_agreement", "acc_train", "acc_multi", "acc_single",
                "acc_test", "final_loss", "diverged", "gd_time", "step", "checkpoint", "is_last"]:
        assert col in df.columns, col
    # tiny.toml: SL logged at GD times 0, 1, 10, 100, 1e3 and its horizon 1e4
    sl0 = df[(df.method == "sl") & (df.seed == 0)]
    assert sl0.checkpoint.tolist() == [0.0, 1.0, 10.0, 100.0, 1e3, 1e4]
    assert sl0.is_last.tolist() == [False] * 5 + [True]
    assert (np.diff(sl0.gd_time) >= 0).all() and (np.diff(sl0.step) >= 0).all() and sl0.step.iloc[0] == 0
    last = tables.last(df)
    assert len(last) == 6 * 3 and not last.duplicated(["seed", "method"]).any()
    assert last[last.method == "sl"].lottery_agreement.notna().all()
    assert last[last.method != "sl"].lottery_agreement.isna().all()
    f = store.load_features(reference)
    for col in ["seed", "method", "step", "gd_time", "checkpoint", "cls", "feature", "lam", "lam_init"]:
        assert col in f.columns, col
    f_sl0 = f[(f.method == "sl") & (f.seed == 0)]  # k = 3, L = 2
    assert sorted(f_sl0.checkpoint.unique()) == sl0.checkpoint.tolist() and len(f_sl0) == 6 * 3 * 2
    first = f_sl0[f_sl0.checkpoint == 0]
    assert np.array_equal(first.lam.to_numpy(), first.lam_init.to_numpy())
    assert len(f) == 6 * tiny_rows_per_seed() * 3 * 2
    # claims report: written beside the results
    assert (reference / "claims.md").read_text().startswith("# Claims")
    assert isinstance(json.loads((reference / "claims.json").read_text())["claims"], list)


def test_claims_report_printed_at_the_end(reference, capsys):
    # a finished directory: nothing to run, then the end of the sweep (figures off, report on)
    assert sweep.main(["--config", TINY, "--seeds", "6", "--out", str(reference), "--no-plots"]) == 0
    assert "# Claims" in capsys.readouterr().out


def test_failing_claims_report_loses_nothing(reference, capsys, monkeypatch):
    import mvsim.claims

    def broken(out):
        raise RuntimeError("boom")

    monkeypatch.setattr(mvsim.claims, "report", broken)
    before = numbers(reference)
    assert sweep.main(["--config", TINY, "--seeds", "6", "--out", str(reference), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "claims report failed (RuntimeError: boom)" in err and "python -m mvsim.claims" in err
    pd.testing.assert_frame_equal(numbers(reference), before, check_exact=True)


def test_config_toml_repeats_the_run(reference, tmp_path):
    again = tmp_path / "again"
    # seeds come from config.toml; chunk 2 as the reference's: the same program, so bit for bit
    assert sweep.main(["--config", str(reference / "config.toml"), "--out", str(again), "--chunk", "2",
                       "--quiet", "--no-plots", "--no-claims"]) == 0
    same(again, reference)


def test_other_config_on_existing_dir_is_refused(reference, tmp_path, capsys):
    assert run(reference, "--set", "data.mu=0.2") == 2
    assert "different config" in capsys.readouterr().err


def test_rerun_of_finished_dir_adds_nothing(reference):
    before = numbers(reference)
    assert run(reference, seeds=6, chunk=2) == 0
    pd.testing.assert_frame_equal(numbers(reference), before, check_exact=True)


# ---------------------------------------------------------------- invariance and resume


def test_two_forced_cpu_devices_and_another_chunk_size_give_same_numbers(reference, tmp_path):
    """Chunks of 2 seeds over 2 devices: one seed per device where the reference ran two on one,
    so this checks both the device count and the chunk size (each new chunk shape is a compile
    of ~25 s, so the suite checks them together)."""
    out = tmp_path / "dev2"
    p = cli("--config", TINY, "--seeds", "6", "--chunk", "2", "--out", str(out), "--quiet", "--no-plots",
            "--no-claims", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    close(out, reference)


def test_kill_9_then_resume_equals_uninterrupted(reference, tmp_path):
    out = tmp_path / "killed"
    p = cli("--config", TINY, "--seeds", "6", "--chunk", "2", "--out", str(out), "--quiet", "--no-plots",
            "--no-claims", env={sweep.STOP_AFTER_CHUNKS: "1"})
    _, err = p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL, (p.returncode, err)
    assert len(list((out / "summary").glob("*.parquet"))) == 1  # killed right after its first chunk
    assert len(store.load(out)) == 2 * tiny_rows_per_seed()
    assert run(out, seeds=6, chunk=2) == 0
    assert len(list((out / "summary").glob("*.parquet"))) == 3
    same(out, reference)


def test_resume_drops_a_features_file_whose_summary_was_never_written(reference, tmp_path):
    """A kill between a chunk's two files (features first, then summary) redoes that chunk."""
    out = tmp_path / "half"
    assert run(out, seeds=2, chunk=2) == 0
    name = store.chunk_name(0, [0, 1])
    (out / "summary" / name).unlink()  # as if killed after the features file
    assert run(out, seeds=6, chunk=2) == 0
    assert len(store.load_features(out)) == 6 * tiny_rows_per_seed() * 3 * 2
    same(out, reference)


def test_a_damaged_chunk_is_named_then_moved_aside_and_recomputed(reference, tmp_path, capsys):
    """A truncated part file (a disk fault, a copy cut short): the claims and the loaders name it in one
    line; resuming moves the chunk to DIR/damaged/ and recomputes its seeds, losing nothing else."""
    from mvsim import claims

    out = tmp_path / "damaged"
    assert run(out, seeds=4, chunk=2) == 0
    hit = out / "events" / store.chunk_name(0, [2, 3])
    hit.write_bytes(hit.read_bytes()[:100])
    capsys.readouterr()
    assert claims.main([str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(hit) in err[0] and "damaged" in err[0]
    with pytest.raises(store.DamagedFile, match="damaged"):
        store.load_events(out)
    assert run(out, seeds=6, chunk=2) == 0
    assert f"{hit} is damaged" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "damaged").iterdir()) == sorted(
        f"{part}_{hit.name}" for part in ("summary", "features", "events"))
    same(out, reference)
    assert len(store.load_events(out)) == len(store.load_events(reference))


def test_provenance_is_recorded_and_other_code_is_refused(reference, tmp_path, capsys, monkeypatch):
    import json as _json

    from mvsim import provenance

    runs = _json.loads((reference / "provenance.json").read_text())["runs"]
    assert runs[0]["code_hash"] == provenance.code_hash() and runs[0]["end"] and runs[0]["backend"] == "cpu"
    assert {"mvsim", "commit", "dirty", "jax", "jaxlib", "devices", "start"} <= set(runs[0])
    out = tmp_path / "other"
    assert run(out, seeds=2, chunk=2) == 0
    monkeypatch.setattr(provenance, "code_hash", lambda: "0123456789abcdef")  # as if the code changed
    capsys.readouterr()
    assert run(out, seeds=4, chunk=2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other code" in err[0] and "--allow-code-change" in err[0]
    assert len(store.load(out)) == 2 * tiny_rows_per_seed()  # nothing added
    assert run(out, "--allow-code-change", seeds=4, chunk=2) == 0
    assert len(_json.loads((out / "provenance.json").read_text())["runs"]) == 2


def test_more_seeds_resume_with_partial_chunks(reference, tmp_path):
    out = tmp_path / "grow"
    assert run(out, seeds=3, chunk=2) == 0  # chunks {0, 1}, {2} (padded)
    assert run(out, seeds=6, chunk=2) == 0  # {2, 3} has 2 done: runs {3} (padded), then {4, 5}
    df = store.load(out)
    assert not df.duplicated(KEYS).any() and len(df) == 6 * tiny_rows_per_seed()
    same(out, reference)


# ---------------------------------------------------------------- grids


def test_float_grid_compiles_once_and_records_keys(tmp_path):
    from mvsim.methods import make_run

    assert run(tmp_path / "warm", "--set", "data.mu=0.3", seeds=2, chunk=2) == 0
    compiled = make_run()._cache_size()
    assert run(tmp_path / "g", "--grid", "data.mu=0.1,0.5", "--grid", "mrp.mask_keep=0.3,0.7",
               seeds=2, chunk=2) == 0
    assert make_run()._cache_size() == compiled, "a float grid must reuse the compiled function"
    df = store.load(tmp_path / "g")
    assert sorted(df.grid_point.unique()) == [0, 1, 2, 3]
    assert set(zip(df["data.mu"], df["mrp.mask_keep"])) == {(0.1, 0.3), (0.1, 0.7), (0.5, 0.3), (0.5, 0.7)}


def test_divergence_is_marked_and_warned(tmp_path, capsys):
    # a decoder scale of 1e30: MRP's squared error overflows float32 at the first step, its kernels
    # turn NaN and so does fine-tuning from them; SL does not use the decoder. A float: no recompile.
    assert run(tmp_path / "nan", "--set", "mrp.decoder_init=1e30", seeds=2, chunk=2) == 0
    last = tables.last(store.load(tmp_path / "nan"))
    assert last[last.method.isin(["mrp", "mrp_ft"])].diverged.all()
    assert not last[last.method == "sl"].diverged.any()
    err = capsys.readouterr().err
    assert "4 (seed, method) runs diverged" in err, err  # counted per run, not per checkpoint


def test_processes_split_the_chunks_and_together_equal_one_run(reference, tmp_path):
    out = tmp_path / "split"
    assert run(out, "--num-processes", "2", "--process-id", "1", seeds=6, chunk=2) == 0
    part = store.load(out)
    assert 0 < part.seed.nunique() < 6  # process 1 took only its share of the chunks
    assert run(out, "--num-processes", "2", "--process-id", "0", seeds=6, chunk=2) == 0
    same(out, reference)


def test_bad_process_id(tmp_path, capsys):
    assert run(tmp_path / "o", "--num-processes", "2", "--process-id", "2") == 2
    assert "--process-id 2" in capsys.readouterr().err


def test_two_processes_with_jax_distributed(reference, tmp_path):
    """Two processes joined by jax.distributed (coordinator on localhost) share one --out."""
    for attempt in range(3):  # the free port found here may be taken before the coordinator binds it
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = tmp_path / f"dist{attempt}"
        procs = [cli("--config", TINY, "--seeds", "6", "--chunk", "2", "--out", str(out), "--no-plots",
                     "--no-claims", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                     "--process-id", str(i))
                 for i in range(2)]
        errs = [p.communicate(timeout=300)[1] for p in procs]
        if not any("in use" in e.lower() for e in errs):
            break
    assert [p.returncode for p in procs] == [0, 0], errs
    assert "process 1 of 2" in errs[1]
    same(out, reference)
