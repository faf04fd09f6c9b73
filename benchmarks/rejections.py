#!/usr/bin/env python
"""Where SL's adaptive steps go: attempts and rejected attempts per half-decade of GD time, with and
without the controller's predictive limit (`train.predictive`; `mvsim.solver.error_control`).

    .venv/bin/python benchmarks/rejections.py [--k 10,20,40] [--out FILE]

One seed (seed 0 of each k's config: experiments/default.toml at k = 10, experiments/k<K>.toml
otherwise), SL alone to its horizon with the config's step rule (`train.train_sl`'s field and step,
no logging). Each attempt is one jitted call of the step from Python, so every attempt's time, size
and verdict are seen: a diagnostic of the controller, not a timing (steps.py times the loop).
Nothing here passes or fails.
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
import numpy as np  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import experiment, flow, nets, train  # noqa: E402


def config(k: int) -> C.Config:
    name = "default" if k == 10 else f"k{k}"
    return C.load_toml(common.ROOT / "experiments" / f"{name}.toml")[0]


def attempts(cfg: C.Config) -> np.ndarray:
    """SL's attempted steps from seed 0: (attempts, 2) of (GD time before it, 1 if kept)."""
    k_data, k_sl, *_ = jax.random.split(experiment.seed_keys(cfg.run.seed, range(1))[0], 7)
    D = experiment.make_data(k_data, cfg)
    W = train.init_sl(k_sl, cfg)
    q, varrho = cfg.net.q, cfg.net.varrho
    k, m, d = W.shape
    n, P = D.train.x.shape[:2]
    blocks = train.sample_blocks((D.train.x, D.train.y), train.n_blocks(n, P, k * m))

    def loss(W, block):
        x, y = block
        logits = nets.sl_logits(x, W, q, varrho)
        return nets.cross_entropy(logits, y), logits

    field = lambda W, _: (-cfg.train.sl_rate * train.blocked_grad(loss, W, blocks, n)[0], None)
    rel = lambda W, e: flow.row_speed(W.reshape(k * m, d), e.reshape(k * m, d), cfg.net.sigma_0).max()
    init, step_to = flow.make_step(field, train._axpy, rel, train.solver(cfg, cfg.train.step))
    horizon = np.float32(cfg.train.sl_time)
    step = jax.jit(lambda c: step_to(c, jnp.float32(horizon)))
    c, rows = jax.jit(init)(W), []
    while float(c.t) < horizon and int(c.n) < cfg.train.max_steps:
        t0 = float(c.t)
        c = step(c)
        rows.append((t0, float(c.t) > t0))
    return np.asarray(rows, np.float64)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", default="10,20", help="comma-separated k, from 10, 20, 40, 80 (default 10,20)")
    p.add_argument("--out", help="JSON results file; section 'rejections'")
    a = p.parse_args(argv)
    common.log(f"rejections: mvsim {TREE}, jax {jax.__version__} on {jax.devices()[0]}")
    rows = []
    for k in (int(v) for v in a.k.split(",")):
        for predictive in (False, True):
            r = attempts(C.with_values(config(k), {"train.predictive": predictive}))
            edges = 10.0 ** np.arange(0.0, 15.5, 0.5)
            which = np.digitize(np.maximum(r[:, 0], 1.0), edges)
            bins = {f"{edges[b - 1]:.2g}": [int((which == b).sum()), int(((which == b) & (r[:, 1] == 0)).sum())]
                    for b in np.unique(which)}
            rows.append({"k": k, "predictive": predictive, "attempts": len(r), "rejected": int((r[:, 1] == 0).sum()),
                         "per_half_decade": bins})
            common.log(f"  k = {k:3d}  predictive {predictive!s:5}  attempts {len(r):5d}  "
                       f"rejected {rows[-1]['rejected']:4d}  busiest half-decade from "
                       f"{max(bins, key=lambda b: bins[b][0])}: {max(bins.values())}")
    common.save_section(a.out, "rejections", {"tree": TREE, "machine": common.machine(), "rows": rows})


if __name__ == "__main__":
    main()
