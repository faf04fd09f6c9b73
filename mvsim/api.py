"""The notebook API: `mvsim.simulate(...)` runs a sweep and returns its tables as DataFrames.

    import mvsim
    res = mvsim.simulate("tests/tiny.toml", seeds=4, data__mu=0.1, grid={"mrp.mask_keep": [0.3, 0.7]})
    res.summary            # one row per (grid point, seed, method, checkpoint), as mvsim.store.load
    res.features           # Lambda_{i,l} over training, as mvsim.store.load_features
    res.events             # first GD times of feature and fit events, as mvsim.store.load_events
    res.last               # each method's final row (mvsim.tables.last)
    mvsim.verdicts(res)    # the theory's predictions with verdicts (mvsim.claims.verdicts)

`res` is a `mvsim.results.Results`, the class `mvsim.load_results(DIR)` reads a results directory
into. It is the CLI's sweep (`mvsim.sweep.run_plan`, the one run loop): the same plan, chunks,
checks and numbers. Without `out` nothing is written (the chunks go to an in-memory sink); with
`out` the results directory is exactly what `python -m mvsim.sweep --out DIR` writes (resumed if it
exists), and the tables are read back from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mvsim import config as C
from mvsim import resources, sweep
from mvsim.results import Results, load_results


def _values(set: dict | None, overrides: dict) -> dict:
    values = dict(set or {})
    for name, value in overrides.items():
        key = name.replace("__", ".")
        if "." not in key:
            raise C.ConfigError(f"simulate({name}=...): not a config key; write section__name, "
                                f"like data__mu=0.1 (or set={{'data.mu': 0.1}})")
        values[key] = value
    return values


def simulate(config=None, seeds: int | None = None, grid: dict | None = None, out=None, chunk: int | None = None,
             progress: bool = False, *, set: dict | None = None, plots: bool = True, **overrides) -> Results:
    """Run SL, MRP and MRP+FT over `seeds` seeds (and a grid) and return their tables.

    config: None (the default config), a TOML path (a results DIR/config.toml repeats that run) or
        a mvsim.config.Config.
    seeds: seeds per grid point (default 16, or the count stored in the config file).
    grid: {dotted key: [values]}; the product of all grids is run.
    out: a results directory to write (and resume); None writes nothing.
    chunk: seeds per compiled call (default: from the device's memory, as the CLI).
    progress: show a progress bar and log lines on stderr.
    set: {dotted key: value} overrides; keyword overrides spell the dot as a double underscore,
        data__mu=0.1 is set={"data.mu": 0.1}.
    plots: with `out`, also write the figures (as the CLI does unless --no-plots).

    Raises mvsim.config.ConfigError (a ValueError with a one-line message) for a bad config,
    or when a seed cannot fit in memory or the results on disk, before anything is compiled.
    """
    plan = sweep.resolve_plan(config, _values(set, overrides), grid, seeds)
    sweep.check_options(chunk)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else None
    if out is not None:
        out = Path(out)
        sweep.execute(plan, out, chunk=chunk, log=log, progress=progress, plots=plots, show_claims=False)
        return load_results(out)

    devices = sweep.start_jax()
    resources.check_resources(plan, devices, chunk, log)
    sink = sweep.MemorySink()
    sweep.run_plan(plan, sink, devices, chunk=chunk, log=log, progress=progress)
    return Results(*sink.tables(), plan.cfg, plan.grid, seeds=plan.seeds)
