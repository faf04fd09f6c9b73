#!/usr/bin/env python
"""`make run`'s sweep, this tree against commit REV, alternating in one run.

    .venv/bin/python benchmarks/sweep_wall.py --against REV [--rounds 2] [--seeds 16] [--out FILE]

Each round runs `python -m mvsim.sweep --config experiments/default.toml --seeds S` (figures and
claims included) once in this tree and once in a temporary worktree of REV, in alternating order
(new first in odd rounds, old first in even ones), after one untimed warm-up run of each that fills
the on-disk compile cache. It prints each run's wall and CPU seconds (the children's user + system
time) and each round's new/old ratios. On a shared CPU the speed of the machine drifts between
runs, so a ratio is only read within a round. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def sweep(tree: Path, out: Path, seeds: int) -> dict:
    """One sweep of the default config from `tree` into `out`: wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mvsim.sweep", "--config", "experiments/default.toml", "--seeds",
                    str(seeds), "--out", str(out)], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", required=True, metavar="REV", help="the commit to compare with")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds (default 2)")
    p.add_argument("--seeds", type=int, default=16, help="seeds per sweep (default 16, as make run)")
    p.add_argument("--out", help="JSON results file; section 'sweep_wall'")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(common.ROOT), "worktree", "add", "--detach", "-q", str(old_tree), a.against],
                       check=True)
        trees = {"new": common.ROOT, "old": old_tree}
        try:
            run = lambda name, tag: sweep(trees[name], Path(tmp) / f"{name}_{tag}", a.seeds)
            for name in trees:
                common.log(f"  warm-up {name}: {run(name, 'warm')}")
            rounds = []
            for i in range(a.rounds):
                order = ("new", "old") if i % 2 == 0 else ("old", "new")
                res = {name: run(name, i) for name in order}
                res["ratio_wall"] = res["new"]["wall_s"] / res["old"]["wall_s"]
                res["ratio_cpu"] = res["new"]["cpu_s"] / res["old"]["cpu_s"]
                common.log(f"  round {i + 1}: new {res['new']}, old {res['old']}, new/old wall "
                           f"{res['ratio_wall']:.2f}, CPU {res['ratio_cpu']:.2f}")
                rounds.append(res)
        finally:
            subprocess.run(["git", "-C", str(common.ROOT), "worktree", "remove", "--force", str(old_tree)], check=False)
    summary = {key: statistics.median(r[key] for r in rounds) for key in ("ratio_wall", "ratio_cpu")}
    common.log(f"median new/old over {a.rounds} rounds: wall {summary['ratio_wall']:.2f}, CPU {summary['ratio_cpu']:.2f}")
    common.save_section(a.out, "sweep_wall", {"tree": common.use_tree(None), "against": a.against,
                                              "machine": common.machine(), "rounds": rounds, **summary})


if __name__ == "__main__":
    main()
