"""Achieved FLOP/s of the SL, MRP and fine-tuning steps at one chunk size, against the same-shape
forward + weight-gradient matmuls alone and a 2048^2 matmul, all measured in this run.

    .venv/bin/python benchmarks/steps.py [--chunk 2] [--steps 20]

FLOPs counted: 4 n P d R per step per seed (forward x @ W^T and the gradient dW = delta^T x).
"""

import argparse
import time

import jax
import jax.numpy as jnp

from mvsim import config as C
from mvsim import experiment, train


def best(f, *args, repeats=5):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    S, n = a.chunk, a.steps
    cfg = C.with_values(C.Config(), {"train.sl_steps": n, "train.mrp_steps": n, "train.ft_steps": n})
    dc, R = cfg.data, cfg.k_pre * cfg.net.m
    keys = experiment.seed_keys(0, range(S))
    D = jax.jit(jax.vmap(lambda k: experiment.make_data(k, cfg)))(keys)
    flop = 4 * dc.n_train * dc.P * dc.d * R

    big = jnp.ones((2048, 2048))
    peak = 2 * 2048**3 / best(jax.jit(lambda m: m @ m), big) / 1e9
    x = D.train.x.reshape(S, -1, dc.d)
    W = jnp.ones((S, R, dc.d)) * 0.01
    dots = jax.jit(jax.vmap(lambda x, W: ((x @ W.T).T @ x).sum() + W.sum()))  # forward + gradient shapes
    same = flop / (best(dots, x, W) / S) / 1e9

    W_sl = jax.vmap(lambda k: train.init_sl(k, cfg))(keys)
    p_mrp = jax.vmap(lambda k: train.init_mrp(k, cfg))(keys)
    steps = {
        "sl": (jax.jit(jax.vmap(lambda W, d: train.train_sl(W, d.train, d.V, cfg)[0])), (W_sl, D)),
        "mrp": (jax.jit(jax.vmap(lambda p, k, d: train.train_mrp(p, k, d.pre, d.V, cfg)[0])), (p_mrp, keys, D)),
        "ft": (jax.jit(jax.vmap(lambda p, d: train.train_ft(p["W"], d.train, d.V, cfg)[0])), (p_mrp, D)),
    }
    print(f"chunk {S}: 2048^2 matmul {peak:.1f} GFLOP/s; same-shape fwd+grad matmuls {same:.1f} GFLOP/s")
    print("step  ms/step/seed  GFLOP/s  /same-shape  /peak")
    for name, (f, args) in steps.items():
        t = best(f, *args) / n / S
        g = flop / t / 1e9
        print(f"{name:4s}  {1e3 * t:12.2f}  {g:7.1f}  {g / same:11.2f}  {g / peak:5.2f}")


if __name__ == "__main__":
    main()
