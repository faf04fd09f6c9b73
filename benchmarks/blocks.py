#!/usr/bin/env python
"""One full-batch gradient of each method, whole and in sample blocks (`train.blocked_grad`).

    .venv/bin/python benchmarks/blocks.py [--ks 10,20,40,80] [--blocks auto,4,16] [--out FILE]

At each k (the default carried there by mvsim/regime.py) it times one gradient of SL, MRP and
fine-tuning at initialisation-scale kernels times 100 (pre-activations on every piece of sReLU):
once over the whole batch and once in the sample blocks of `train.n_blocks` (auto) or of each
count given. Best of 10 calls, alternating whole and blocked in 3 rounds, so that both see the
same machine. It prints seconds and whole / blocked ratios; the blocked gradient equals the whole
one (tests/test_train.py), so only the speed differs. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TREE = common.use_tree(None)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import experiment, nets, regime, train  # noqa: E402


def best(fn, *args):
    """Best wall seconds of 10 single calls."""
    return common.best_of(fn, *args, repeats=10, min_time=0.0)[0]


def losses(cfg, D, key):
    """name -> (loss(params, block), params, per-sample data, R): each method's mean loss."""
    q, vr, c = cfg.net.q, cfg.net.varrho, cfg.mrp
    k_sl, k_mrp = jax.random.split(key)
    W_sl = 100 * train.init_sl(k_sl, cfg)
    p_mrp = train.init_mrp(k_mrp, cfg)
    p_mrp = {**p_mrp, "W": 100 * p_mrp["W"]}
    p_ft = {"W": p_mrp["W"], "A": jnp.ones((cfg.data.k, p_mrp["W"].shape[0]))}
    sl = lambda W, b: nets.cross_entropy(nets.sl_logits(b[0], W, q, vr), b[1])
    mrp = lambda p, b: nets.mrp_loss_expected(p, None, b[0], c.mask_keep, q, vr, c.target, c.decoder)
    ft = lambda p, b: nets.ft_loss(p, b[0], b[1], q, vr)
    R = p_mrp["W"].shape[0]
    return {"sl": (sl, W_sl, (D.train.x, D.train.y), cfg.data.k * cfg.net.m),
            "mrp": (mrp, p_mrp, (D.pre.x, D.pre.y), R), "ft": (ft, p_ft, (D.train.x, D.train.y), R)}


def run_k(k: int, counts: list) -> list[dict]:
    cfg = C.Config() if k == 10 else C.with_values(regime.at_k(C.Config(), k), {"data.k": k})
    key = jax.random.PRNGKey(0)
    D = experiment.make_data(key, cfg)
    rows = []
    for name, (loss, params, data, R) in losses(cfg, D, key).items():
        n, P = data[0].shape[:2]
        aux = lambda p, b: (loss(p, b), None)
        whole = jax.jit(lambda p: train.blocked_grad(aux, p, train.sample_blocks(data, 1), n)[0])
        for count in counts:
            nb = train.n_blocks(n, P, R) if count == "auto" else int(count)
            blocks = train.sample_blocks(data, nb)
            blocked = jax.jit(lambda p, blocks=blocks: train.blocked_grad(aux, p, blocks, n)[0])
            common.block(whole(params)), common.block(blocked(params))
            rounds = [(best(whole, params), best(blocked, params)) for _ in range(3)]
            t_whole, t_blocked = min(r[0] for r in rounds), min(r[1] for r in rounds)
            rows.append({"k": k, "method": name, "n": n, "blocks": nb, "samples_per_block": -(-n // nb),
                         "pre_activations_per_block": -(-n // nb) * P * R, "whole_ms": 1e3 * t_whole,
                         "blocked_ms": 1e3 * t_blocked, "whole_over_blocked": t_whole / t_blocked})
            common.log(f"  k = {k} {name}: {nb} blocks, whole {1e3 * t_whole:.1f} ms, blocked "
                       f"{1e3 * t_blocked:.1f} ms ({t_whole / t_blocked:.2f}x)")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", default="10,20,40,80", help="comma-separated k (default 10,20,40,80)")
    p.add_argument("--blocks", default="auto", help="comma-separated block counts, or auto (train.n_blocks)")
    p.add_argument("--out", help="JSON results file; this script writes its section 'blocks'")
    a = p.parse_args(argv)
    common.log(f"blocks: mvsim {TREE}, jax {jax.__version__} on {jax.devices()[0]}")
    rows = [r for k in a.ks.split(",") for r in run_k(int(k), a.blocks.split(","))]
    common.table(rows, [
        ("k", "k", "{}"), ("method", "method", None), ("n", "n", "{}"), ("blocks", "blocks", "{}"),
        ("per block", "pre_activations_per_block", "{:.2e}"), ("whole ms", "whole_ms", "{:.1f}"),
        ("blocked ms", "blocked_ms", "{:.1f}"), ("whole/blocked", "whole_over_blocked", "{:.2f}")],
        "One gradient, whole batch against sample blocks (best of 10, 3 alternating rounds)")
    common.save_section(a.out, "blocks", {"tree": TREE, "machine": common.machine(), "rows": rows})


if __name__ == "__main__":
    main()
