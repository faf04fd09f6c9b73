#!/usr/bin/env python
"""Time per GD step of SL, MRP pretraining and fine-tuning, and its FLOP/s against matmuls.

    .venv/bin/python benchmarks/steps.py [--chunk 2] [--max-steps K] [--set KEY=VALUE] [--out FILE]

Each method is `mvsim.train.train_sl / train_mrp / train_ft` itself (the adaptive GD clock
of the pipeline, no logging), jitted and vmapped over a chunk of seeds, run from the same
initial states as `methods.run_seed` to its horizon (or for K steps with --max-steps K);
fine-tuning starts from MRP's final encoder, as with train.ft_from at the horizon. The
number of steps is the controller's; the timed call excludes compilation (compiled ahead).

  ms/step/seed   wall / (steps summed over the chunk's seeds): the cost of one step of one seed
  lockstep       iterations the vmapped while loop ran: per checkpoint interval, the most steps
                 any seed of the chunk took (the others wait, masked); lockstep / mean steps is
                 what vmap pays for seeds that need different numbers of steps
  GFLOP/s        counted matmul FLOPs executed (4 n P d R per gradient evaluation, times the
                 solver's evaluations per step, per seed, over all lockstep
                 iterations of all seeds) / wall
  /same-shape    against the step's two matmuls alone (forward and kernel gradient, the same
                 batched shapes), timed in this run
  /peak          against a square matmul, timed in this run
  ... cpu        the same ratios per CPU-second of this process instead of per wall second:
                 less sensitive to other processes on the machine (see common.Load)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TREE = common.use_tree(None)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import experiment, regime, train  # noqa: E402
from mvsim import solver as rk  # noqa: E402


def nolog(*_):
    return {}


def inputs(cfg, S: int):
    """Per-seed data and initial states, from the same keys as run_seed (seeds 0..S-1)."""
    keys = experiment.seed_keys(cfg.run.seed, range(S))

    def one(key):
        k_data, k_sl, k_mrp, *_ = jax.random.split(key, 7)
        k_init, k_mask, _ = jax.random.split(k_mrp, 3)
        return experiment.make_data(k_data, cfg), train.init_sl(k_sl, cfg), train.init_mrp(k_init, cfg), k_mask

    make, t_compile = common.aot(jax.jit(jax.vmap(one)), keys)
    t, out = common.timed(make, keys)
    return out, {"compile_s": t_compile, "s_per_seed": t / S}


def step_fns(cfg):
    """jit(vmap) of each method to its horizon: -> (final state, steps at each log time)."""
    def sl(W, D):
        c, _, _, n, _ = train.train_sl(W, D.train, cfg, experiment.sl_times(cfg), nolog)
        return c.state, n

    def mrp(p, k, D):
        c, _, _, n, _ = train.train_mrp(p, k, D.pre, cfg, experiment.mrp_times(cfg), nolog)
        return (c.state["W"] if isinstance(c.state, dict) else c.state[0]["W"]), n  # per-kernel: params alone

    def ft(W, D):
        c, _, _, n, _ = train.train_ft(W, D.train, cfg, experiment.ft_times(cfg), nolog)
        return c.state, n

    return {name: jax.jit(jax.vmap(f)) for name, f in (("sl", sl), ("mrp", mrp), ("ft", ft))}


def lockstep(n: np.ndarray) -> int:
    """Iterations a vmapped run took: per log interval, the most steps of any seed. n (S, T)."""
    return int(np.diff(n, axis=1, prepend=0).max(axis=0).sum())


def run(cfg, S: int, peak: dict, out=None) -> tuple[list[dict], dict]:
    (D, W_sl, p_mrp, k_mask), data = inputs(cfg, S)
    fns = step_fns(cfg)
    rows, W_pre = [], None
    for name in ("sl", "mrp", "ft"):
        args = {"sl": (W_sl, D), "mrp": (p_mrp, k_mask, D), "ft": (W_pre, D)}[name]
        compiled, t_compile = common.aot(fns[name], *args)
        with common.Load() as ld:
            wall, (state, n) = common.timed(compiled, *args)
        if name == "mrp":
            W_pre = state
        n = np.asarray(n)
        steps = n[:, -1]
        iters = lockstep(n)
        solver = cfg.mrp.solver if name == "mrp" else cfg.train.solver
        flops = common.step_flops(cfg, name) * rk.TABLEAUS[solver].evals  # gradient evaluations per step
        same = common.same_shape_gflops(cfg, name, S)
        gflops = flops * iters * S / wall / 1e9
        per_cpu = flops * iters * S / ld.cpu / 1e9
        rows.append({
            "method": name, "chunk": S, "steps_mean": float(steps.mean()), "steps": steps.tolist(),
            "lockstep_iters": iters, "lockstep_over_mean": iters / steps.mean(), "wall_s": wall,
            "ms_per_step_per_seed": 1e3 * wall / steps.sum(), "ms_per_iter_per_seed": 1e3 * wall / (iters * S),
            "flops_per_step_per_seed": flops, "gflops": gflops, "same_shape_gflops": same["gflops"],
            "over_same_shape": gflops / same["gflops"], "over_peak": gflops / peak["gflops"],
            "same_shape_over_peak": same["gflops"] / peak["gflops"], "gflops_per_cpu_s": per_cpu,
            "over_same_shape_cpu": per_cpu / same["gflops_per_cpu_s"],
            "over_peak_cpu": per_cpu / peak["gflops_per_cpu_s"],
            "compile_s": t_compile,
            "load": ld.record()})
        common.save_section(out, "steps", {"tree": TREE, "partial": True, "methods": rows})
        common.log(f"  {name}: {steps.mean():.0f} steps/seed, {wall:.2f} s for the chunk "
                   f"(other cores {ld.record()['other_cores']})")
    return rows, data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk", type=int, default=2, help="seeds vmapped together (default 2)")
    p.add_argument("--max-steps", type=int, help="cap every method at K steps (train.max_steps; cheap runs)")
    p.add_argument("--k", type=int, help="carry the default to k classes by mvsim/regime.py first")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the default config")
    p.add_argument("--out", help="JSON results file; this script writes its section 'steps'")
    a = p.parse_args(argv)
    values = dict(kv.split("=", 1) for kv in a.set)
    if a.max_steps:
        values["train.max_steps"] = a.max_steps
    base = regime.at_k(C.Config(), a.k) if a.k else C.Config()
    if a.k:
        values["data.k"] = a.k
    cfg = C.with_values(base, values)

    common.log(f"steps: mvsim {TREE}, jax {jax.__version__} on {jax.devices()[0]}, chunk {a.chunk}, "
               f"config default{' + ' + str(values) if values else ''}")
    peak = common.peak_gflops()
    common.log(f"  {peak['size']}^2 matmul: {peak['gflops']:.1f} GFLOP/s (other cores {peak['load']['other_cores']})")
    rows, data = run(cfg, a.chunk, peak, a.out)
    common.table(rows, [
        ("method", "method", None), ("steps/seed", "steps_mean", "{:.0f}"), ("lockstep", "lockstep_iters", "{}"),
        ("lock/mean", "lockstep_over_mean", "{:.2f}"), ("wall s", "wall_s", "{:.2f}"),
        ("ms/step/seed", "ms_per_step_per_seed", "{:.2f}"), ("ms/iter/seed", "ms_per_iter_per_seed", "{:.2f}"),
        ("GFLOP/s", "gflops", "{:.1f}"), ("same-shape", "same_shape_gflops", "{:.1f}"),
        ("/same-shape", "over_same_shape", "{:.2f}"), ("/peak", "over_peak", "{:.2f}"),
        ("same/peak", "same_shape_over_peak", "{:.2f}"), ("/same cpu", "over_same_shape_cpu", "{:.2f}"),
        ("/peak cpu", "over_peak_cpu", "{:.2f}"), ("compile s", "compile_s", "{:.1f}"),
        ("other cores", lambda r: r["load"]["other_cores"], "{}")],
        f"GD steps to the horizon at chunk {a.chunk} (peak {peak['gflops']:.1f} GFLOP/s; "
        f"make_data {data['s_per_seed']:.3f} s/seed)")
    common.save_section(a.out, "steps", {
        "tree": TREE, "machine": common.machine(), "chunk": a.chunk, "overrides": values, "peak_matmul": peak,
        "make_data": data, "methods": rows, "sl_mrp_ft_s_per_seed": sum(r["wall_s"] for r in rows) / a.chunk})


if __name__ == "__main__":
    main()
