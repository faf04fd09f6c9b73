"""Fresh masks against the expected-over-masks loss on the tiny config (tests/tiny.toml), 8 seeds:
captured share at GD times 1e2, 1e3, 1e4 and agreement with plain GD on the expected loss.

    .venv/bin/python docs/scripts/masks.py
"""
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import test_flow as T  # noqa: E402  (the validation helpers: tiny data, one method batched over seeds)

from mvsim import config as C  # noqa: E402

RUNS = {
    "expected, plain GD lr 1": {"mrp.step": "gd", "train.lr": 1.0},
    "fresh, plain GD lr 1": {"mrp.step": "gd", "mrp.masks": "fresh", "train.lr": 1.0},
    "expected, adaptive": {"mrp.step": "adaptive"},
    "fresh, adaptive": {"mrp.step": "adaptive", "mrp.masks": "fresh"},
}
lams = {}
for name, sets in RUNS.items():
    lam, n = T._lams("mrp", C.with_values(T.TINY, {**sets, "train.max_steps": 20000}), T.MRP_TIMES, 8)
    lams[name] = lam
    agree = ((lam >= T.THR) == (lams["expected, plain GD lr 1"] >= T.THR)).mean()
    print(f"{name:26s} steps {n[:, -1].mean():8.0f}  captured share {(lam >= T.THR).mean(axis=(0, 2, 3)).round(3)}"
          f"  agreement with expected GD {agree:.3f}")
