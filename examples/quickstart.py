"""Quickstart: run a small sweep from Python and read its results.

    python examples/quickstart.py

Runs SL, MRP pretraining and MRP + fine-tuning on 2 seeds of a tiny config (the test suite's
plumbing config, tests/tiny.toml: seconds, not the theory's regime), then prints each method's
final row and the verdicts on the theory's predictions. For real runs start from the calibrated
default: mvsim.simulate(seeds=16) or mvsim.simulate("experiments/default.toml", out="results/x").
"""

import pandas as pd

import mvsim

# Tiny shapes and short horizons (GD times) so that this runs in seconds on a laptop.
TINY = {
    "data.k": 3, "data.L": 2, "data.d": 16, "data.P": 8,
    "data.n_train": 40, "data.n_pretrain": 40, "data.n_test": 40,
    "net.m": 2, "net.sigma_0": 0.1, "net.varrho": 0.3,
    "train.sl_time": 1e4, "train.mrp_time": 1e5, "train.ft_time": 1e3,
    "train.checkpoints": [1.0, 10.0, 100.0, 1e3, 1e4], "train.ft_from": [1e5], "train.max_steps": 400,
}

# Overrides: a dict of dotted keys, or keywords with "__" for the dot (data__mu=0.05).
res = mvsim.simulate(seeds=2, set=TINY, data__mu=0.05)

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 12)
print("Each method's final row (res.last):")
print(res.last[["seed", "method", "gd_time", "step", "features_captured", "acc_train", "acc_single",
                  "acc_test", "diverged"]].to_string(index=False))
print()
print("Claims (mvsim.verdicts(res)):")
print(mvsim.verdicts(res)[["claim", "verdict", "measured", "lo", "hi", "threshold", "seeds"]].to_string(index=False))
