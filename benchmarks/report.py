#!/usr/bin/env python
"""Summary of a results file written by steps.py and pipeline.py; adds its section 'summary'.

    .venv/bin/python benchmarks/report.py [benchmarks/results.json]

Prints steps per method, s/seed of the pipeline (new and old, and their ratio), time per step
per seed of SL, MRP and FT, FLOP/s ratios, and where one seed's time goes. Ratios are stated
with the conditions they were measured under: new/old is the same-run comparison of
`pipeline.py --against` when there is one; otherwise two sections' numbers, which may come
from different moments or machines (their times and competing load are printed beside them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main(path="benchmarks/results.json"):
    res = json.loads(Path(path).read_text())
    new, old, st = res.get("pipeline_new"), res.get("pipeline_old"), res.get("steps")
    same_run = res.get("pipeline_new_over_old")
    summary = {}
    if new:
        summary["steps_per_seed"] = {m: v["mean"] for m, v in new["steps"].items()}
        common.table([{"method": m, **v} for m, v in new["steps"].items()],
                     [("method", "method", None), ("steps/seed", "mean", "{:.1f}"), ("min", "min", "{}"),
                      ("max", "max", "{}")], "steps to the horizon (records' `step` at the last checkpoint)")
    if new or old:
        rows = []
        for tag, sec in (("new", new), ("old", old)):
            for r in (sec or {}).get("chunks", []):
                rows.append({"tree": tag, "chunk": r["chunk"], "s_per_seed": r["s_per_seed"],
                             "cpu_s_per_seed": r.get("cpu_s_per_seed"),
                             "other_cores": r["load"]["other_cores"], "own_cores": r["load"]["own_cores"],
                             "when": sec["machine"]["time"]})
        common.table(rows, [("tree", "tree", None), ("chunk", "chunk", "{}"), ("s/seed", "s_per_seed", "{:.2f}"),
                            ("CPU s/seed", "cpu_s_per_seed", "{:.2f}"),
                            ("own cores", "own_cores", "{}"), ("other cores", "other_cores", "{}"),
                            ("when", "when", None)], "pipeline cost per seed (compile excluded)")
        summary["s_per_seed"] = {f"{r['tree']}_chunk{r['chunk']}": r["s_per_seed"] for r in rows}
    if same_run:
        summary["new_over_old"] = {f"chunk{r['chunk']}": r["ratio"] for r in same_run["rows"]}
        summary["new_over_old_cpu_s"] = {f"chunk{r['chunk']}": r.get("ratio_cpu") for r in same_run["rows"]}
        summary["new_over_old_note"] = f"measured in one run against {same_run['against']}"
    elif new and old:
        by = {r["chunk"]: r["s_per_seed"] for r in old["chunks"]}
        summary["new_over_old"] = {f"chunk{r['chunk']}": r["s_per_seed"] / by[r["chunk"]]
                                   for r in new["chunks"] if r["chunk"] in by}
        summary["new_over_old_note"] = (f"from two sections (new {new['machine']['time']}, old "
                                        f"{old['machine']['time']}): the machine's load may differ")
    if "new_over_old" in summary:
        cpu = summary.get("new_over_old_cpu_s", {})
        common.log("\nnew/old s/seed: " + ", ".join(f"{k} {v:.2f}" + (f" (CPU s {cpu[k]:.2f})" if cpu.get(k) else "")
                                                  for k, v in summary["new_over_old"].items())
                   + f"; {summary['new_over_old_note']}")
    if st:
        rows = st["methods"]
        common.table(rows, [("method", "method", None), ("steps/seed", "steps_mean", "{:.0f}"),
                            ("ms/step/seed", "ms_per_step_per_seed", "{:.2f}"),
                            ("GFLOP/s", "gflops", "{:.1f}"), ("/same-shape", "over_same_shape", "{:.2f}"),
                            ("/peak", "over_peak", "{:.2f}"), ("same/peak", "same_shape_over_peak", "{:.2f}"),
                            ("/same cpu", "over_same_shape_cpu", "{:.2f}"), ("/peak cpu", "over_peak_cpu", "{:.2f}"),
                            ("other cores", lambda r: r["load"]["other_cores"], "{}")],
                     f"GD steps at chunk {st['chunk']} (wall / steps; peak {st['peak_matmul']['gflops']:.1f} "
                     f"GFLOP/s in the same run)")
        summary["ms_per_step_per_seed"] = {r["method"]: r["ms_per_step_per_seed"] for r in rows}
        summary["step_over_same_shape"] = {r["method"]: r["over_same_shape"] for r in rows}
        summary["step_over_peak"] = {r["method"]: r["over_peak"] for r in rows}
        summary["step_over_same_shape_cpu_s"] = {r["method"]: r.get("over_same_shape_cpu") for r in rows}
        summary["step_over_peak_cpu_s"] = {r["method"]: r.get("over_peak_cpu") for r in rows}
        pipe = {r["chunk"]: r for r in (new or {}).get("chunks", [])}.get(st["chunk"])
        if pipe:
            parts = {"data": st["make_data"]["s_per_seed"],
                     **{r["method"]: r["wall_s"] / st["chunk"] for r in rows}}
            parts["rest"] = pipe["s_per_seed"] - sum(parts.values())
            summary["breakdown_s_per_seed"] = parts
            common.log(f"\none seed at chunk {st['chunk']}: pipeline {pipe['s_per_seed']:.2f} s = "
                       + " + ".join(f"{k} {v:.2f}" for k, v in parts.items())
                       + " (rest: logging and evaluation at every checkpoint, transfers; "
                       "from separate runs, so noisy when other cores were busy)")
    if new and new.get("vmap_vs_loop"):
        summary["loop_over_vmap"] = {f"chunk{r['chunk']}": r["loop_over_vmap"] for r in new["vmap_vs_loop"]}
        common.log("loop/vmap: " + ", ".join(f"chunk {r['chunk']} {r['loop_over_vmap']:.2f} (same records "
                                             f"{r['same_records']})" for r in new["vmap_vs_loop"]))
    common.save_section(path, "summary", summary)


if __name__ == "__main__":
    main(*sys.argv[1:])
