"""Plain small-step gradient descent as the reference for the GD clock's shortcuts
(tests/test_flow.py: SL and fine-tuning; tests/test_flow_mrp.py: MRP).

Validation regime: tests/tiny.toml (k = 3, d = 16, sigma_0 = 0.1, varrho = 0.3), where plain GD
reaches the interesting times (captures) in ~1e4 steps. The reference is plain GD at a step
whose halving changes Lambda by < 1% (lr 0.1 for SL, lr 1 for MRP: measured 0.8% and 0.7% max).
Tolerances follow from the rules: Euler's global error is first order in the step, and the
controller keeps each step's motion <= delta x the kernel's norm, so Lambda should be within
O(delta) of the flow's, and halve (or better) when delta is divided by 4.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mvsim import config as C
from mvsim import experiment, metrics, train

TINY, _ = C.load_toml(Path(__file__).with_name("tiny.toml"))
THR = TINY.net.varrho  # captured: Lambda >= varrho


def lams(method: str, cfg, times, seeds: int):
    """Lambda (S, T, k, L) and steps (S, T) of one method on tiny data, batched over seeds."""
    def one(key):
        D = experiment.make_data(key, cfg)
        k_init = jax.random.fold_in(key, 1)
        if method == "sl":
            log = lambda W: experiment.sl_tables(W, D.V, cfg)["lam"]
            _, lam, _, n, _ = train.train_sl(train.init_sl(k_init, cfg), D.train, cfg, times, log)
        elif method == "mrp":
            allowed = jnp.ones((cfg.k_pre * cfg.net.m, cfg.data.k * cfg.data.L), bool)
            log = lambda p, tw: metrics.feature_table(p["W"], D.V, allowed, cfg.data.L)["lam"]
            _, lam, _, n, _ = train.train_mrp(train.init_mrp(k_init, cfg), key, D.pre, cfg, times, log)
        else:
            W = train.init_mrp(k_init, cfg)["W"] * 3.0  # an encoder with some large kernels
            allowed = jnp.ones((W.shape[0], cfg.data.k * cfg.data.L), bool)
            log = lambda p: metrics.feature_table(p["W"], D.V, allowed, cfg.data.L)["lam"]
            _, lam, _, n, _ = train.train_ft(W, D.train, cfg, times, log)
        return lam, n
    lam, n = jax.jit(jax.vmap(one))(experiment.seed_keys(0, range(seeds)))
    return np.asarray(lam)[:, 1:], np.asarray(n)  # time 0 is the shared init


@functools.lru_cache(maxsize=None)
def reference_lam(method, reference, times, seeds):
    """Plain GD's Lambda, computed once per process (the MRP one takes 10,000 steps)."""
    lam, n = lams(method, C.with_values(TINY, {**dict(reference), "train.max_steps": 50_000}),
                  np.asarray(times), seeds)
    assert n[:, -1].max() < 50_000, "the plain-GD reference must reach its times"
    return lam


def compare(method, reference, shortcuts, times, seeds):
    ref = reference_lam(method, tuple(reference.items()), tuple(times), seeds)
    out = []
    for sets in shortcuts:
        lam, n = lams(method, C.with_values(TINY, {**sets, "train.max_steps": 50_000}), times, seeds)
        agree = np.mean((lam >= THR) == (ref >= THR))
        err = np.abs(lam - ref)
        med = np.median(err / np.maximum(np.abs(ref), 1e-3))  # typical relative error
        scale = np.abs(ref).max(axis=(0, 2, 3), keepdims=True)  # the largest Lambda at each time
        out.append((agree, float(med), float((err / scale).max()), int(n[:, -1].max())))
    return out
