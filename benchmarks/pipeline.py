#!/usr/bin/env python
"""Cost per seed of the whole pipeline (`methods.make_run`: data, SL, MRP, fine-tuning,
logging at every checkpoint) over chunk sizes, and vmap over a chunk against a loop over seeds.

    .venv/bin/python benchmarks/pipeline.py [--chunks 1,2] [--seeds 2] [--repeat 1]
        [--tree DIR | --against REV] [--set KEY=VALUE] [--out FILE]

Each chunk size is compiled ahead (lower().compile(), timed apart), so the timed calls never
include compilation. At chunk S it runs max(seeds, S) seeds (rounded up to whole chunks), seeds
0, 1, ... in order; s/seed = wall of those calls / seeds (the best of --repeat passes).

  steps/seed     from the records: `step` at the last checkpoint, mean over seeds (mrp_ft over
                 seeds and ft_from starts); lockstep = iterations the vmapped loops ran at the
                 largest chunk (see steps.py)
  loop/vmap      chunk-1 calls on seeds 0..S-1, one after the other, against one chunk-S call on
                 the same seeds (> 1: vmap is faster); records compared between the two (batched
                 matmuls round differently, and the adaptive step rule can turn that into a step
                 more or less: the records that differ most are listed)
  new/old        --against REV also times the pipeline of commit REV (a temporary git worktree,
                 removed after) in a subprocess of this run, with the same chunks and seeds, so
                 that both ran on the same machine at nearly the same time

--tree DIR times the mvsim of another checkout (any version with `methods.make_run` or, before the table of methods, `experiment.make_run`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunks", default="1,2", help="comma-separated chunk sizes (default 1,2)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per chunk size, at least one chunk (default 2)")
    p.add_argument("--repeat", type=int, default=1, help="passes over those seeds; the best is kept (default 1)")
    p.add_argument("--tree", help="time the mvsim of this checkout instead of this one")
    p.add_argument("--label", help="section name suffix in --out (default 'new', or 'old' with --tree)")
    p.add_argument("--against", metavar="REV", help="also time commit REV's pipeline in this run; print new/old")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the default config")
    p.add_argument("--compile-cache", metavar="DIR", help="JAX's persistent compilation cache (compile_s is "
                                                          "then a cache load after the first run)")
    p.add_argument("--out", help="JSON results file; this script writes its section 'pipeline_<label>'")
    return p.parse_args(argv)


A = parse() if __name__ == "__main__" else None
TREE = common.use_tree(A.tree if A else None)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mvsim import config as C  # noqa: E402
import importlib  # noqa: E402

from mvsim import experiment  # noqa: E402

METHOD_STEPS = {"sl": "sl_steps", "mrp": "mrp_steps", "mrp_ft": "ft_steps"}  # the old fixed-step keys


def steps_of(calls: list, cfg) -> dict:
    """Steps per method over the records of one chunk size's calls: mean, min and max over seeds of
    `step` at the last checkpoint, and the iterations its first call's vmapped loops ran (lockstep);
    versions without `step` ran the config's fixed counts."""
    res = {}
    for m in sorted(calls[0]):
        if "step" in calls[0][m]:
            ns = [np.asarray(out[m]["step"]) for out in calls]
            ns = [n.reshape(-1, n.shape[-1]) for n in ns]  # (seeds [x ft_from starts], log times)
            last = np.concatenate([n[:, -1] for n in ns])
            res[m] = {"mean": float(last.mean()), "min": int(last.min()), "max": int(last.max()),
                      "lockstep": int(np.diff(ns[0], axis=1, prepend=0).max(axis=0).sum())}
        elif m in METHOD_STEPS and hasattr(cfg.train, METHOD_STEPS[m]):
            k = getattr(cfg.train, METHOD_STEPS[m])
            res[m] = {"mean": float(k), "min": k, "max": k, "lockstep": k}
    return res


def compare(a: dict, b: dict) -> dict:
    """Do two record trees over the same seeds agree? Max |difference| over every array, and the
    records that differ most (method/key: max |difference|)."""
    la, tree_a = jax.tree_util.tree_flatten_with_path(a)
    lb = jax.tree_util.tree_leaves(b)
    same, diffs = len(la) == len(lb), {}
    for (path, x), y in zip(la, lb):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        ok = x.shape == y.shape and np.allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True)
        same &= bool(ok)
        if not ok and x.shape == y.shape:
            d = np.abs(x - y)[np.isfinite(x) & np.isfinite(y)]
            diffs["/".join(str(getattr(k, "key", k)) for k in path)] = float(d.max()) if d.size else float("nan")
    worst = dict(sorted(diffs.items(), key=lambda kv: -np.nan_to_num(kv[1], nan=np.inf))[:6])
    return {"same_records": bool(same), "max_abs_diff": max(diffs.values(), default=0.0), "differ": worst}


def measure(run, cfg, S: int, seeds: int, repeat: int) -> tuple[dict, list]:
    """Compile at chunk S, then time ceil(seeds / S) chunk calls, `repeat` passes."""
    calls = -(-max(seeds, S) // S)
    keys = [experiment.seed_keys(cfg.run.seed, range(i * S, (i + 1) * S)) for i in range(calls)]
    compiled, t_compile = common.aot(run, keys[0], cfg)
    passes, outs = [], []
    with common.Load() as ld:
        for r in range(repeat):
            times = []
            for k in keys:
                t, out = common.timed(lambda k: jax.device_get(compiled(k, cfg)), k)
                times.append(t)
                if r == 0:
                    outs.append(out)
            passes.append(times)
    best = min(passes, key=sum)
    rec = {"chunk": S, "seeds": calls * S, "compile_s": t_compile, "xla_mem_mb": common.xla_mem_mb(compiled),
           "call_s": passes, "s_per_seed": sum(best) / (calls * S),
           "cpu_s_per_seed": ld.cpu / (repeat * calls * S), "load": ld.record()}
    return rec, outs


def main(a):
    label = a.label or ("old" if a.tree else "new")
    if a.compile_cache:
        jax.config.update("jax_compilation_cache_dir", a.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    values = dict(kv.split("=", 1) for kv in a.set)
    cfg = C.with_values(C.Config(), values) if values else C.Config()
    try:  # the table of methods (mvsim.methods) holds make_run; older trees kept it in experiment
        mk = importlib.import_module("mvsim.methods").make_run
    except ImportError:
        mk = experiment.make_run
    run = mk(cfg) if inspect.signature(mk).parameters else mk()
    chunks = [int(c) for c in a.chunks.split(",")]
    common.log(f"pipeline [{label}]: mvsim {TREE}, jax {jax.__version__} on {jax.devices()[0]}, chunks {chunks}, "
               f"{a.seeds} seeds each, config default{' + ' + str(values) if values else ''}")

    rows, outs = [], {}
    for S in chunks:
        rec, outs[S] = measure(run, cfg, S, a.seeds, a.repeat)
        rows.append(rec)
        common.save_section(a.out, f"pipeline_{label}", {"tree": TREE, "partial": True, "chunks": rows})
        common.log(f"  chunk {S}: compile {rec['compile_s']:.1f} s, calls {rec['call_s']} s, "
                   f"{rec['s_per_seed']:.2f} s/seed (cores: own {rec['load']['own_cores']}, "
                   f"other {rec['load']['other_cores']})")
    flat = lambda S: jax.tree_util.tree_map(lambda *x: np.concatenate(x), *outs[S])
    steps = steps_of(outs[max(chunks)], cfg)
    vmap = []
    if 1 in chunks:
        loop = flat(1)
        for S in chunks:
            n1 = len(outs[1])
            if S == 1 or S > n1:
                continue
            loop_s = sum(rows[chunks.index(1)]["call_s"][0][:S])
            vmap_s = rows[chunks.index(S)]["call_s"][0][0]
            cmp = compare(jax.tree_util.tree_map(lambda x: x[:S], loop), outs[S][0])
            vmap.append({"chunk": S, "loop_s": loop_s, "vmap_s": vmap_s, "loop_over_vmap": loop_s / vmap_s, **cmp})

    common.table([{"method": m, **v} for m, v in steps.items()],
                 [("method", "method", None), ("steps/seed", "mean", "{:.1f}"), ("min", "min", "{}"),
                  ("max", "max", "{}"), ("lockstep", "lockstep", "{}")],
                 f"steps per method (chunk {max(chunks)}; lockstep: its first call)")
    common.table(rows, [("chunk", "chunk", "{}"), ("seeds", "seeds", "{}"), ("compile s", "compile_s", "{:.1f}"),
                        ("s/seed", "s_per_seed", "{:.2f}"), ("CPU s/seed", "cpu_s_per_seed", "{:.2f}"),
                        ("XLA MiB", "xla_mem_mb", "{}"),
                        ("other cores", lambda r: r["load"]["other_cores"], "{}")], "pipeline cost per seed")
    if vmap:
        common.table(vmap, [("chunk", "chunk", "{}"), ("loop s", "loop_s", "{:.2f}"), ("vmap s", "vmap_s", "{:.2f}"),
                            ("loop/vmap", "loop_over_vmap", "{:.2f}"), ("same records", "same_records", "{}"),
                            ("max |diff|", "max_abs_diff", "{:.2g}")], "vmap over a chunk vs a loop over seeds")
        for r in vmap:
            if r["differ"]:
                common.log(f"  chunk {r['chunk']} records differing most: "
                           + ", ".join(f"{k} {v:.3g}" for k, v in r["differ"].items()))
    section = {"tree": TREE, "machine": common.machine(), "overrides": values, "chunks": rows, "steps": steps,
               "vmap_vs_loop": vmap}
    common.save_section(a.out, f"pipeline_{label}", section)
    if a.against:
        against(a, section)


def against(a, new: dict):
    """Time commit a.against's pipeline in a subprocess (same chunks, seeds), then print new/old."""
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or str(Path(tmp) / "old.json")
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(common.ROOT), "worktree", "add", "--detach", "-q", str(tree), a.against],
                       check=True)
        try:
            cmd = [sys.executable, __file__, "--tree", str(tree), "--label", "old", "--chunks", a.chunks,
                   "--seeds", str(a.seeds), "--repeat", str(a.repeat), "--out", out]
            cmd += sum((["--set", s] for s in a.set), [])
            cmd += ["--compile-cache", a.compile_cache] if a.compile_cache else []
            subprocess.run(cmd, check=True)
        finally:
            subprocess.run(["git", "-C", str(common.ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        old = json.loads(Path(out).read_text())["pipeline_old"]
    by = {r["chunk"]: r for r in old["chunks"]}
    rows = [{"chunk": r["chunk"], "new": r["s_per_seed"], "old": by[r["chunk"]]["s_per_seed"],
             "ratio": r["s_per_seed"] / by[r["chunk"]]["s_per_seed"],
             "ratio_cpu": r["cpu_s_per_seed"] / by[r["chunk"]]["cpu_s_per_seed"]}
            for r in new["chunks"] if r["chunk"] in by]
    common.table(rows, [("chunk", "chunk", "{}"), ("new s/seed", "new", "{:.2f}"), ("old s/seed", "old", "{:.2f}"),
                        ("new/old", "ratio", "{:.2f}"), ("new/old CPU s", "ratio_cpu", "{:.2f}")],
                 f"new/old against {a.against}, timed in this run")
    common.save_section(a.out, "pipeline_new_over_old", {"against": a.against, "rows": rows})


if __name__ == "__main__":
    main(A)
