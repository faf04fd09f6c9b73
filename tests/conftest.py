"""Suite-wide settings: no hypothesis deadline (first calls compile with XLA), float32 JAX, and the
heaviest test files first."""

import os
import tempfile

import jax
from hypothesis import settings

settings.register_profile("mvsim", deadline=None)
settings.load_profile("mvsim")

jax.config.update("jax_enable_x64", False)

# Sweeps started by the tests (in-process and as subprocesses) share one compilation cache
# for the session, so the same tiny shapes compile once; the user's cache is left alone.
os.environ["MVSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="mvsim-test-jax-cache-")

# `make test` hands whole files to its workers (pytest-xdist --dist loadfile --no-loadscope-reorder)
# in collection order. The files below take most of the suite (per-file totals of
# `pytest --durations=0`, 2 workers: methods 321 s, flow + flow_mrp 511 s, theory 252 s, sweep 241 s,
# claims 209 s; the other ten 330 s together), so they start first and the short files fill the end;
# in name order the long ones started last and one worker ran alone for minutes.
HEAVY_FIRST = ("test_methods.py", "test_flow.py", "test_theory.py", "test_sweep.py", "test_flow_mrp.py",
               "test_claims.py", "test_scaling.py", "test_nets.py", "test_plots.py", "test_train.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
