"""Validation of the GD clock where the findings come from (docs/results.md, "Validation").

    python docs/scripts/validate.py sl   [--seeds 2] [--no-gd]  # SL: Euler and Runge-Kutta steps against plain GD
                                                               # (lr 10) and the flow (Euler at delta/16) to 1e6
    python docs/scripts/validate.py mrp  [--seeds 4]   # MRP per-kernel clocks, Euler and Bogacki-Shampine, to 1e10
    python docs/scripts/validate.py rest [--seeds 4]   # MRP's at-rest kernels: do they move under plain GD?
    python docs/scripts/validate.py compare A B        # two results directories on their common seeds
    python docs/scripts/validate.py erode --config experiments/k80.toml [--seeds 1] [--rtols 1e-2,1e-3,5e-2]
                                                       # SL to its horizon at each rtol: steps, t_fit, t_erode

Each prints a markdown table and writes it to results/validate/<part>.md. The default run at
delta/4 and the norm cap are plain sweeps (commands in docs/results.md). Seeds are those of the
default run (`experiment.seed_keys(0, range(S))`), so every row pairs with it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import claims, experiment, flow, methods, train  # noqa: E402
from mvsim import solver as rk  # noqa: E402
from mvsim import windows as W  # noqa: E402

OUT = ROOT / "results" / "validate"
DEFAULT = ROOT / "experiments" / "default.toml"


def default_cfg(**values) -> C.Config:
    cfg, _ = C.load_toml(DEFAULT)
    return C.with_values(cfg, values)


def keys(seeds):
    """The keys run_seed gives SL and MRP for the default run's seeds (a count: 0..S-1, or a list):
    (data, sl, mrp) per seed."""
    ks = experiment.seed_keys(0, range(seeds) if isinstance(seeds, int) else seeds)
    return jax.vmap(lambda k: jax.random.split(k, 7)[:3])(ks)


def run_method(method: str, cfg: C.Config, seeds: int) -> dict:
    """The record of `method` ('sl' or 'mrp') per seed, with its events, as numpy arrays (S, ...)."""
    def one(kk):
        D = experiment.make_data(kk[0], cfg)
        if method == "sl":
            return methods.run_sl(train.init_sl(kk[1], cfg), D, cfg)
        rec, _ = methods.run_mrp(kk[2], D, cfg)
        return rec
    start = time.time()
    rec = jax.device_get(jax.jit(jax.vmap(one))(keys(seeds)))
    step = cfg.train.step if method == 'sl' else cfg.mrp.step
    print(f"  {method} {dict(step=step, solver=cfg.train.solver, delta=cfg.train.delta, rtol=cfg.train.rtol)}: "
          f"{time.time() - start:.0f} s", flush=True)
    return {k: np.asarray(v) for k, v in rec.items()}


def windows(rec: dict, cfg: C.Config) -> dict:
    """Per seed: t_fit, t_erode (SL) or t_cap (MRP) from a record's events (claims' definitions)."""
    k, L = cfg.data.k, cfg.data.L
    out = {"t_fit": [], "t_erode": [], "t_cap": []}
    for s in range(rec["ev_capture"].shape[0]):
        cap = rec["ev_capture"][s].reshape(k, L).astype(float)
        t_fit = float(rec["ev_fit"][s])
        out["t_fit"].append(t_fit)
        out["t_erode"].append(W.erosion_time(cap, t_fit) if np.isfinite(t_fit) else np.nan)
        out["t_cap"].append(W.capture_time(cap))
    return {k: np.asarray(v) for k, v in out.items()}


def max_lam_error(a: dict, b: dict) -> float:
    """Largest |delta Lambda| over the checkpoints, relative to the largest Lambda of b."""
    return float(np.abs(a["lam"] - b["lam"]).max() / np.abs(b["lam"]).max())


def lam_error(a: dict, b: dict) -> tuple[float, float]:
    """`max_lam_error`, and the share of (seed, checkpoint, feature) whose captured state agrees."""
    return max_lam_error(a, b), float(np.mean(a["features_captured"] == b["features_captured"]))


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def fmt_t(ts) -> str:
    return ", ".join("inf" if np.isinf(t) else "n/a" if np.isnan(t) else f"{t:.3g}" for t in ts)


def part_sl(seeds, no_gd=False) -> list[str]:
    """Adaptive SL against plain GD to GD time 1e6, through the erosion phase: seeds whose lottery
    window closes before 1e6 in the default run. Plain GD at lr 10 (1e5 steps) is itself a
    discretisation of the flow, so the flow's reference is the adaptive step at delta / 16, and plain
    GD at lr 5 (to 1e5) shows how GD's own error scales with its step. no_gd: leave out the plain-GD
    rows (1e5 steps each); the captured-count column is then against the flow's reference."""
    horizon = 1e6
    runs = {} if no_gd else {
        "plain GD, lr 10": default_cfg(**{"train.step": "gd", "train.lr": 10.0, "train.sl_time": horizon,
                                          "train.max_steps": 200_000}),
        "plain GD, lr 5 (to 1e5)": default_cfg(**{"train.step": "gd", "train.lr": 5.0, "train.sl_time": 1e5,
                                                  "train.max_steps": 200_000})}
    for delta in (0.05, 0.0125, 0.003125):
        runs[f"Euler, delta {delta:g}"] = default_cfg(**{"train.solver": "euler", "train.delta": delta,
                                                         "train.sl_time": horizon, "train.max_steps": 200_000})
    for predictive in (False, True):  # the PI controller (with Gustafsson's predictive limit: the default), dense output
        for rtol in (5e-2, 1e-2, 1e-3):
            runs[f"Bogacki-Shampine, PI{'+G' if predictive else ''}, rtol {rtol:g}"] = default_cfg(**{
                "train.solver": "bosh3", "train.rtol": rtol, "train.predictive": predictive,
                "train.sl_time": horizon, "train.max_steps": 200_000})
    runs["Bogacki-Shampine, rtol 0.01, integral controller"] = default_cfg(**{
        "train.solver": "bosh3", "train.rtol": 1e-2, "train.icoeff": 1.0, "train.pcoeff": 0.0,
        "train.predictive": False, "train.sl_time": horizon, "train.max_steps": 200_000})
    recs = {name: run_method("sl", cfg, seeds) for name, cfg in runs.items()}
    flow_ref = recs["Euler, delta 0.003125"]
    gd_ref = flow_ref if no_gd else recs["plain GD, lr 10"]
    vs = "the flow" if no_gd else "GD lr 10"
    lines = [f"| SL | steps | Lambda error vs the flow (delta/16): max, to 1e5 | vs {vs}: max, to 1e5 | "
             f"checkpoints with equal captured counts (vs {vs}) | t_fit per seed | t_erode per seed |",
             "|---|---|---|---|---|---|---|"]
    n5 = len(flow.log_times(default_cfg().train.checkpoints, 1e5))  # log times up to 1e5

    def err(rec, ref):
        cut = lambda r, n: {k: v[:, :n] for k, v in r.items() if k in ("lam", "features_captured")}
        full = lam_error(rec, ref)[0] if rec["lam"].shape[1] == ref["lam"].shape[1] else None
        return ("n/a" if full is None else f"{full:.2%}") + f", {lam_error(cut(rec, n5), cut(ref, n5))[0]:.2%}"

    for name, rec in recs.items():
        T = rec["lam"].shape[1]
        agree = float(np.mean(rec["features_captured"] == gd_ref["features_captured"][:, :T]))
        w = windows(rec, default_cfg())
        lines.append(row(name, int(rec["step"][:, -1].max()), err(rec, flow_ref), err(rec, gd_ref), f"{agree:.1%}",
                         fmt_t(w["t_fit"]), fmt_t(w["t_erode"])))
    return lines


def part_mrp(seeds: int, config: Path = DEFAULT, ref_delta: float | None = None,
             solvers=("euler", "bosh3")) -> list[str]:
    """MRP per-kernel clocks (and the at-rest skip) through the capture phase, to 1e10: Euler at 0.05,
    the old default delta, delta/2 and delta/4, and the Runge-Kutta pairs of `solvers` (PI controller
    with the predictive limit; Bogacki-Shampine at rtol 1e-1, 5e-2 (the default) and 1e-2,
    Dormand-Prince at 1e-1 and 5e-2), against Euler at ref_delta (default delta/16: the flow's
    reference). Evaluations per seed: passes x the pair's evaluations per step (Euler 1,
    Bogacki-Shampine 3, Dormand-Prince 6). `config`: the run's config (default: the default run's)."""
    base, _ = C.load_toml(config)
    cfg_of = lambda **values: C.with_values(base, values)
    delta = base.train.delta  # Euler's delta
    ref_delta = ref_delta or delta / 16
    deltas = [d for d in (0.05, delta, delta / 2, delta / 4) if d > ref_delta] + [ref_delta]
    runs = {f"Euler, delta {d:g}": ({"mrp.solver": "euler", "train.delta": d, "train.max_steps": 200_000}, 1)
            for d in deltas if "euler" in solvers or d == ref_delta}
    pairs = {"bosh3": ("Bogacki-Shampine", (1e-1, 5e-2, 1e-2)), "dopri5": ("Dormand-Prince", (1e-1, 5e-2))}
    for solver, (label, rtols) in pairs.items():
        for rtol in rtols if solver in solvers else ():
            runs[f"{label}, rtol {rtol:g}"] = ({"mrp.solver": solver, "train.rtol": rtol, "train.predictive": True,
                                                "train.max_steps": 200_000}, rk.TABLEAUS[solver].evals)
    recs = {name: run_method("mrp", cfg_of(**vals), seeds) for name, (vals, _) in runs.items()}
    ref = recs[f"Euler, delta {ref_delta:g}"]
    lines = [f"MRP of {config.name} (k = {base.data.k}), {seeds} seeds, to GD time {base.train.mrp_time:g}; "
             f"reference: Euler at delta {ref_delta:g}.", "",
             "| MRP per-kernel | passes per seed: mean (max) | evaluations per seed | max abs Lambda error / max "
             "Lambda (vs reference) | checkpoints with equal features captured | t_cap per seed | "
             "median abs log10 ratio of capture times (vs reference) |",
             "|---|---|---|---|---|---|---|"]
    cap_ref = ref["ev_capture"].astype(float)
    for name, rec in recs.items():
        err, agree = lam_error(rec, ref)
        cap = rec["ev_capture"].astype(float)
        both = np.isfinite(cap) & np.isfinite(cap_ref) & (cap > 0) & (cap_ref > 0)
        ratio = np.median(np.abs(np.log10(cap[both] / cap_ref[both]))) if both.any() else np.nan
        passes = rec["step"][:, -1]
        lines.append(row(name, f"{passes.mean():.0f} ({passes.max()})", f"{passes.mean() * runs[name][1]:.0f}",
                         f"{err:.3%}", f"{agree:.1%}", fmt_t(windows(rec, base)["t_cap"]),
                         f"{ratio:.4f}"))
    return lines


def part_rest(seeds: int) -> list[str]:
    """MRP's kernels on the norm cap at the horizon: plain projected GD (dt 20, far below the stiffness
    limit of ~200) for 20,000 steps (GD time 4e5, thousands of the stiff mode's relaxation times) from the
    final state; the at-rest skip is right if those kernels do not move (relative motion << delta^2)."""
    cfg = default_cfg()
    cap = cfg.mrp.norm_cap * cfg.net.varrho

    def one(kk):
        D = experiment.make_data(kk[0], cfg)
        k_init, k_mask, _ = jax.random.split(kk[2], 3)
        params, _, _, _, _ = train.train_mrp(train.init_mrp(k_init, cfg), k_mask, D.pre, cfg,
                                             experiment.mrp_times(cfg), lambda p, tw: jnp.zeros(()))
        W0 = params.state[0]["W"]

        def gd(W, _):
            g = train.mrp_grad({"W": W, "B": params.state[0]["B"]}, W, kk[2], D.pre, cfg)["W"]
            return flow.project(W - 20.0 * flow.tangent(W, g, cap), cap), None

        W1, _ = jax.lax.scan(gd, W0, None, length=20_000)
        on_cap = jnp.linalg.norm(W0, axis=1) >= cap * (1 - 1e-4)
        move = jnp.linalg.norm(W1 - W0, axis=1) / jnp.linalg.norm(W0, axis=1)
        return on_cap, move

    on_cap, move = (np.asarray(a) for a in jax.jit(jax.vmap(one))(keys(seeds)))
    delta = cfg.train.delta
    moved = move[on_cap]
    return ["| seeds | kernels on the cap at 1e10 | largest relative motion over GD time 4e5 of plain GD | "
            "median | delta^2 |", "|---|---|---|---|---|",
            row(seeds, int(on_cap.sum()), f"{moved.max():.2e}", f"{np.median(moved):.2e}", f"{delta**2:.2e}")]


def compare(a: Path, b: Path) -> list[str]:
    """Verdicts and windows of two results directories (for instance the default at delta and delta/4)
    on the seeds they share, with the per-seed ratio of each window time (B over A)."""
    from mvsim.results import load_results

    ra, rb = load_results(a), load_results(b)
    seeds = sorted(set(ra.summary["seed"]) & set(rb.summary["seed"]))
    pick = lambda df: df[df["seed"].isin(seeds)]
    tabs = [claims.claims(pick(r.summary), pick(r.events), r.cfg).set_index("claim") for r in (ra, rb)]
    wins = [W.windows(pick(r.summary), pick(r.events), r.cfg.data.L).set_index("seed") for r in (ra, rb)]
    lines = [f"{len(seeds)} common seeds; A = {a}, B = {b}", "",
             "| claim | A verdict | A measured [95% CI] | B verdict | B measured [95% CI] |", "|---|---|---|---|---|"]
    for claim in tabs[0].index:
        x, y = tabs[0].loc[claim], tabs[1].loc[claim]
        lines.append(row(claim, x["verdict"], f"{x['measured']:.3g} [{x['lo']:.3g}, {x['hi']:.3g}]",
                         y["verdict"], f"{y['measured']:.3g} [{y['lo']:.3g}, {y['hi']:.3g}]"))
    lines += ["", "| window | A geometric mean [95% CI] | B | per-seed B / A: median (min, max) |", "|---|---|---|---|"]
    for t in ("t_fit", "t_erode", "t_cap"):
        ratio = (wins[1][t] / wins[0][t]).to_numpy(float)
        ratio = ratio[np.isfinite(ratio)]
        lines.append(row(t, W.fmt_times(wins[0][t]), W.fmt_times(wins[1][t]),
                         f"{np.median(ratio):.3g} ({ratio.min():.3g}, {ratio.max():.3g})" if ratio.size else "n/a"))
    return lines


def part_erode(config: Path, seeds, rtols) -> list[str]:
    """SL of `config` to its horizon at each rtol (Bogacki-Shampine, the default controller): is its
    lottery window's end, t_erode, resolved? Each rtol's record is kept in results/validate/erode/
    as it finishes, with the hash of the mvsim code that made it (a rerun reuses it, and says so when
    other code made it), so an interrupted run loses at most the rtol in progress. Lambda errors are
    against the smallest rtol."""
    from mvsim.provenance import code_hash

    base, _ = C.load_toml(config)
    store = OUT / "erode"
    store.mkdir(parents=True, exist_ok=True)
    recs, cpus = {}, {}
    for rtol in rtols:
        path = store / f"{config.stem}_rtol{rtol:g}_seeds{'-'.join(map(str, seeds))}.npz"
        if not path.exists():
            start = time.process_time()  # CPU seconds: unaffected by a pause (kill -STOP) of the run
            rec = run_method("sl", C.with_values(base, {"train.rtol": rtol}), seeds)
            np.savez(path, cpu_s=time.process_time() - start, code=code_hash(),
                     **{k: rec[k] for k in ("lam", "ev_capture", "ev_fit", "step")})
        with np.load(path) as f:
            recs[rtol], cpus[rtol] = {k: f[k] for k in f.files}, float(f["cpu_s"])
        made_by = str(recs[rtol].get("code", "unrecorded"))
        if made_by != code_hash():
            print(f"  note: {path.name} was made by mvsim code {made_by}, not this code ({code_hash()}); "
                  f"delete it to run it again", flush=True)
    ref = recs[min(rtols)]
    lines = [f"SL of {config.name} (k = {base.data.k}), seeds {seeds}, to GD time {base.train.sl_time:g}; "
             f"Lambda errors against rtol {min(rtols):g}.", "",
             "| rtol | steps | CPU (s) | max Lambda error / max Lambda | t_fit per seed | t_erode per seed |",
             "|---|---|---|---|---|---|"]
    for rtol in sorted(rtols, reverse=True):
        rec, w = recs[rtol], windows(recs[rtol], base)
        err = max_lam_error(rec, ref)
        lines.append(row(f"{rtol:g}", int(rec["step"][:, -1].max()), f"{cpus[rtol]:.0f}", f"{err:.2%}",
                         fmt_t(w["t_fit"]), fmt_t(w["t_erode"])))
    return lines


PARTS = {"sl": part_sl, "mrp": part_mrp, "rest": part_rest}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=list(PARTS) + ["compare", "erode"])
    p.add_argument("dirs", nargs="*", type=Path, help="compare: two results directories")
    p.add_argument("--no-gd", action="store_true", help="sl: leave out the plain-GD rows (1e5 steps each)")
    p.add_argument("--seeds", default=None, help="S: seeds 0..S-1, or a comma-separated list ('3,' is seed 3 alone; default 4; "
                                                 "sl: seeds 8 and 11, whose windows close before 1e6 in the default "
                                                 "run; erode: seed 0)")
    p.add_argument("--config", type=Path, default=DEFAULT, help="erode, mrp: the config whose SL / MRP is run")
    p.add_argument("--ref-delta", type=float, default=None, help="mrp: Euler's delta for the reference "
                                                                       "(default train.delta / 16)")
    p.add_argument("--rtols", default="1e-2,1e-3,5e-2", help="erode: the rtols, comma-separated")
    p.add_argument("--solvers", default="euler,bosh3", help="mrp: the steps compared, from euler, bosh3, dopri5 "
                                                           "(the Euler reference always runs)")
    args = p.parse_args(argv)
    seeds = args.seeds or ([8, 11] if args.part == "sl" else 1 if args.part == "erode" else 4)
    if isinstance(seeds, str):
        seeds = [int(s) for s in seeds.split(",") if s] if "," in seeds else int(seeds)
    if args.part == "compare":
        lines = compare(*args.dirs)
    elif args.part == "erode":
        lines = part_erode(args.config, list(range(seeds)) if isinstance(seeds, int) else seeds,
                           [float(r) for r in args.rtols.split(",")])
    elif args.part == "sl":
        lines = part_sl(seeds, args.no_gd)
    elif args.part == "mrp":
        lines = part_mrp(seeds, args.config, args.ref_delta, tuple(args.solvers.split(",")))
    else:
        lines = PARTS[args.part](seeds)
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    name = args.part if args.part != "compare" else f"compare_{args.dirs[0].name}_{args.dirs[1].name}"
    name += f"_{args.config.stem}" if args.part == "erode" or (args.part == "mrp" and args.config != DEFAULT) else ""
    name += f"_seeds{str(args.seeds).replace(',', '-')}" if args.part == "erode" and args.seeds else ""
    name += f"_{args.solvers.replace(',', '-')}" if args.part == "mrp" and args.solvers != "euler,bosh3" else ""
    name += "_no_gd" if args.part == "sl" and args.no_gd else ""
    (OUT / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
