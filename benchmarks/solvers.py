#!/usr/bin/env python
"""Accuracy against cost of each step rule: Euler (delta) and the Runge-Kutta pairs (rtol).

    .venv/bin/python benchmarks/solvers.py [--methods sl,mrp,ft] [--seeds 2] [--config TOML] [--solvers bosh3,dopri5]
                                           [--out FILE] [--fig PNG]

Each method of the default config (experiments/default.toml, or --config) runs to its horizon from the same
initial states as `methods.run_seed` (seeds 0..S-1, vmapped), once per setting, logging the
Lambda table (every kernel against every feature) at the checkpoints. Fine-tuning starts from
the reference MRP encoder. The reference is Bogacki-Shampine at rtol 1e-4 (MRP: Euler at delta/16); a second one
at a finer tolerance says how far the reference itself is from the flow. The Runge-Kutta pairs run
with the config's PI controller and, for comparison, Bogacki-Shampine with the integral controller
(label 'I': icoeff 1, pcoeff 0, the default before the PI controller), and both with Gustafsson's
predictive limit (label '+G': train.predictive; `solver.error_control`).

  evals/seed  gradient evaluations per seed (steps x evaluations per step, + 1 at the start;
              rejected steps count)
  error       the largest |Lambda - Lambda_ref| over the largest |Lambda_ref| at each checkpoint,
              worst over checkpoints and seeds
  median      the median relative error |Lambda - Lambda_ref| / max(|Lambda_ref|, 1e-3)
  wall s      seconds for the chunk (compiled ahead; other processes on the machine count)
  capture     fraction of (seed, kernel-or-class, feature, checkpoint) whose captured state
              (Lambda >= varrho) agrees with the reference's

Nothing here passes or fails; benchmarks/report.py and the README's speed section read the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TREE = common.use_tree(None)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import experiment, metrics, train  # noqa: E402
from mvsim import solver as rk  # noqa: E402

DEFAULT = common.ROOT / "experiments" / "default.toml"
def settings(name):
    """(reference, its check at a finer tolerance, the settings compared) of a method. MRP's
    reference is Euler at delta / 16 (its Runge-Kutta runs do not reach the horizon: see the
    README, "Speed"); MRP's Bogacki-Shampine runs stop at MRP_CAP steps and say so."""
    key = "mrp.solver" if name == "mrp" else "train.solver"
    euler = [{key: "euler", "train.delta": d} for d in (0.05, 0.035, 0.025, 0.0125)]
    heun = [{key: "heun", "train.rtol": r} for r in (1e-2, 3e-3)]
    bosh3 = [{key: "bosh3", "train.rtol": r, **NO_PREDICT} for r in (1e-1, 5e-2, 1e-2, 1e-3)]  # the PI controller
    bosh3_i = [{key: "bosh3", "train.rtol": r, **INTEGRAL, **NO_PREDICT} for r in (1e-1, 3e-2, 1e-2, 1e-3)]
    tols = (1e-1, 5e-2, 1e-2, 1e-3)
    bosh3_g = [{key: "bosh3", "train.rtol": r, **PREDICT} for r in tols]  # PI + Gustafsson's predictive limit
    bosh3_ig = [{key: "bosh3", "train.rtol": r, **INTEGRAL, **PREDICT} for r in tols]
    dopri5_g = [{key: "dopri5", "train.rtol": r, **PREDICT} for r in tols]  # Dormand-Prince 5(4), PI + predictive
    if name == "mrp":
        ref = {key: "euler", "train.delta": 0.05 / 16}
        return ref, {**ref, "train.delta": 0.05 / 32}, euler + [{**b, "train.max_steps": MRP_CAP} for b in bosh3[1:3]]
    ref = {key: "bosh3", "train.rtol": 1e-4}
    return ref, {**ref, "train.rtol": 2.5e-5}, euler + heun + bosh3 + bosh3_i + bosh3_g + bosh3_ig + dopri5_g


INTEGRAL = {"train.icoeff": 1.0, "train.pcoeff": 0.0}  # the integral controller (the default before PI)
PREDICT = {"train.predictive": True}  # Gustafsson's predictive limit (solver.error_control)
NO_PREDICT = {"train.predictive": False}


def controller(name, values):
    """'motion' for Euler steps, else 'I' (integral) or 'PI' (the config's controller)."""
    if values["mrp.solver" if name == "mrp" else "train.solver"] == "euler":
        return "motion"
    base = "I" if values.get("train.pcoeff", C.Config().train.pcoeff) == 0 else "PI"
    return base + ("+G" if values.get("train.predictive", C.Config().train.predictive) else "")


MRP_CAP = 3000


def inputs(cfg, S):
    keys = experiment.seed_keys(cfg.run.seed, range(S))

    def one(key):
        k_data, k_sl, k_mrp, *_ = jax.random.split(key, 7)
        k_init, k_mask, _ = jax.random.split(k_mrp, 3)
        return experiment.make_data(k_data, cfg), train.init_sl(k_sl, cfg), train.init_mrp(k_init, cfg), k_mask

    return jax.jit(jax.vmap(one))(keys)


def runner(cfg, name):
    """jit(vmap) of one method to its horizon -> (Lambda at each log time, steps, final W)."""
    L = cfg.data.L
    all_rows = lambda R: jnp.ones((R, cfg.data.k * L), bool)

    def sl(W, D, k):
        log = lambda W: experiment.sl_tables(W, D.V, cfg)["lam"]
        c, lam, _, n, _ = train.train_sl(W, D.train, cfg, experiment.sl_times(cfg), log)
        return lam, n, c.state

    def mrp(p, D, k):
        log = lambda p, tw: metrics.feature_table(p["W"], D.V, all_rows(p["W"].shape[0]), L)["lam"]
        c, lam, _, n, _ = train.train_mrp(p, k, D.pre, cfg, experiment.mrp_times(cfg), log)
        return lam, n, c.state["W"]

    def ft(W, D, k):
        log = lambda p: metrics.feature_table(p["W"], D.V, all_rows(W.shape[0]), L)["lam"]
        c, lam, _, n, _ = train.train_ft(W, D.train, cfg, experiment.ft_times(cfg), log)
        return lam, n, c.state["W"]

    return jax.jit(jax.vmap({"sl": sl, "mrp": mrp, "ft": ft}[name]))


def compare(lam, ref, varrho):
    lam, ref = np.asarray(lam, np.float64)[:, 1:], np.asarray(ref, np.float64)[:, 1:]
    err = np.abs(lam - ref)
    scale = np.abs(ref).reshape(ref.shape[0], ref.shape[1], -1).max(axis=(0, 2))
    worst = (err.reshape(err.shape[0], err.shape[1], -1).max(axis=(0, 2)) / scale).max()
    med = np.median(err / np.maximum(np.abs(ref), 1e-3))
    return float(worst), float(med), float(np.mean((lam >= varrho) == (ref >= varrho)))


def run_method(base, name, init_state, D, k_mask, S, out, solvers=None):
    """Each setting of `name` (only those of `solvers` when given; the references always) against
    the reference; rows saved to `out` as they finish."""
    ref, check, rows_of = settings(name)
    key = "mrp.solver" if name == "mrp" else "train.solver"
    rows_of = [v for v in rows_of if solvers is None or {v[key], f"{v[key]} {controller(name, v)}"} & solvers]
    cfgs = [("reference", ref), ("finer reference", check)] + [("", v) for v in rows_of]
    rows, ref_lam, W_ref = [], None, None
    for label, values in cfgs:
        cfg = C.with_values(base, values)
        solver = values[key]
        tol = values.get("train.rtol", values.get("train.delta"))
        ctl = controller(name, values)
        label = label or f"{solver}{'' if ctl == 'motion' else ' ' + ctl} {tol:g}"
        fn = runner(cfg, name)
        compiled, t_compile = common.aot(fn, init_state, D, k_mask)
        wall, (lam, n, W) = common.timed(compiled, init_state, D, k_mask)
        n = np.asarray(n)[:, -1]
        evals = 1 + n * rk.TABLEAUS[solver].evals
        if ref_lam is None:
            ref_lam, W_ref = lam, W
        worst, med, agree = compare(lam, ref_lam, base.net.varrho)
        reached = bool(n.max() < cfg.train.max_steps)
        rows.append({"method": name, "setting": label, "solver": solver, "controller": ctl, "tol": float(tol),
                     "evals_per_seed": float(evals.mean()), "steps_per_seed": float(n.mean()),
                     "error": worst, "median": med, "capture_agree": agree, "wall_s": wall,
                     "compile_s": t_compile, "reached": reached})
        common.log(f"  {name} {label:16s} {evals.mean():8.0f} evals/seed  error {worst:.2e}  median {med:.1e}  "
                   f"capture {agree:.4f}  {wall:6.1f} s{'' if reached else '  (stopped at max_steps)'}")
        common.save_section(out, f"solvers_{name}", {"tree": TREE, "partial": True, "rows": rows})
    return rows, W_ref


def metric(name, row):
    """What the figure plots: the worst Lambda error; for MRP the share of captured states that
    differ from the reference (its worst Lambda error is ~1 at any delta: a feature caught mid-rise
    at a checkpoint, a few percent earlier or later in GD time)."""
    return 1.0 - row["capture_agree"] if name == "mrp" else row["error"]


def figure(sections, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    fig, axes = plt.subplots(1, len(sections), figsize=(4.6 * len(sections), 4.0), squeeze=False)
    for ax, (name, rows) in zip(axes[0], sections.items()):
        for solver, ctl, marker in (("euler", "motion", "o"), ("heun", "PI", "s"), ("heun", "PI+G", "s"),
                                    ("bosh3", "I", "v"), ("bosh3", "PI", "^"), ("bosh3", "I+G", "<"),
                                    ("bosh3", "PI+G", ">"), ("dopri5", "PI+G", "D")):
            pts = [(r["evals_per_seed"], metric(name, r)) for r in rows
                   if r["solver"] == solver and r.get("controller", "I") == ctl and r["reached"]
                   and "reference" not in r["setting"]]
            if pts:
                x, y = zip(*sorted(pts))
                ax.loglog(x, y, marker=marker, label=solver if ctl == "motion" else f"{solver} ({ctl})")
        ref4 = [r for r in rows if r["setting"] == "finer reference"]
        if ref4 and metric(name, ref4[0]) > 0:
            ax.axhline(metric(name, ref4[0]), color="grey", lw=0.8, ls=":", label="reference vs a finer one")
        ax.set_title({"sl": "SL", "mrp": "MRP (per-kernel clocks)", "ft": "fine-tuning"}[name])
        ax.set_xlabel("gradient evaluations per seed")
        ax.set_ylabel("captured states that differ from the reference" if name == "mrp"
                      else "worst Lambda error / largest Lambda")
        ax.grid(True, which="both", alpha=0.3)
        lo, hi = ax.get_xlim()
        ticks = [t for t in (50, 100, 200, 300, 500, 1000, 2000, 3000, 5000) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7, framealpha=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="sl,mrp,ft", help="comma-separated, from sl, mrp, ft (default all)")
    p.add_argument("--seeds", type=int, default=2, help="seeds vmapped together (default 2)")
    p.add_argument("--config", default=str(DEFAULT), help="the config whose methods run (default: experiments/default.toml)")
    p.add_argument("--solvers", help="comma-separated settings to compare: a solver (euler, heun, bosh3, dopri5) or "
                   "a solver and its controller ('bosh3 PI+G'); default all; the references always run")
    p.add_argument("--out", help="JSON results file; sections 'solvers_<method>'")
    p.add_argument("--fig", help="PNG of error against gradient evaluations, a panel per method")
    p.add_argument("--plot-only", action="store_true", help="redraw --fig from the sections of --out, running nothing")
    a = p.parse_args(argv)
    if a.plot_only:
        res = json.loads(Path(a.out).read_text())
        figure({n: res[f"solvers_{n}"]["rows"] for n in a.methods.split(",") if f"solvers_{n}" in res}, a.fig)
        return
    base, _ = C.load_toml(a.config)
    solvers = None if a.solvers is None else set(a.solvers.split(","))
    base = C.with_values(base, {"train.max_steps": 200_000})
    common.log(f"solvers: mvsim {TREE}, jax {jax.__version__} on {jax.devices()[0]}, {a.seeds} seeds of {a.config}")
    D, W_sl, p_mrp, k_mask = inputs(base, a.seeds)
    sections, W_pre = {}, None
    for name in a.methods.split(","):
        if name == "ft" and W_pre is None:
            _, W_pre = run_method(base, "mrp", p_mrp, D, k_mask, a.seeds, None, solvers=set())
        state = {"sl": W_sl, "mrp": p_mrp, "ft": W_pre}[name]
        rows, W = run_method(base, name, state, D, k_mask, a.seeds, a.out, solvers)
        if name == "mrp":
            W_pre = W
        sections[name] = rows
        common.save_section(a.out, f"solvers_{name}", {"tree": TREE, "machine": common.machine(), "rows": rows})
    if a.fig:
        figure(sections, a.fig)


if __name__ == "__main__":
    main()
