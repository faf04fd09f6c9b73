"""The notebook API: `mvsim.simulate(...)` runs a sweep and returns its tables as DataFrames.

    import mvsim
    res = mvsim.simulate("tests/tiny.toml", seeds=4, data__mu=0.1, grid={"mrp.mask_keep": [0.3, 0.7]})
    res.summary            # one row per (grid point, seed, method, checkpoint), as mvsim.store.load
    res.features           # Lambda_{i,l} over training, as mvsim.store.load_features
    res.events             # first GD times of feature and fit events, as mvsim.store.load_events
    res.last()             # each method's final row (mvsim.tables.last)
    res.claims             # the theory's predictions with verdicts (mvsim.claims.claims)

It is the CLI's sweep (`mvsim.sweep`): the same plan, chunks, checks and numbers. Without
`out` nothing is written; with `out` the results directory is exactly what
`python -m mvsim.sweep --out DIR` writes (resumed if it exists), and the tables are read back from it.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mvsim import config as C
from mvsim import store, sweep


@dataclass(frozen=True)
class Results:
    """A sweep's results: `summary`, `features` and `events` DataFrames (the results directory's
    tables), the base config, the grid and, when written, the results directory `out`."""

    summary: pd.DataFrame
    features: pd.DataFrame
    events: pd.DataFrame
    cfg: C.Config
    grid: dict = field(default_factory=dict)
    out: Path | None = None

    def last(self) -> pd.DataFrame:
        """Each method's row at its horizon (mvsim.tables.last)."""
        from mvsim import tables

        return tables.last(self.summary)

    @functools.cached_property
    def claims(self) -> pd.DataFrame:
        """The claims table (mvsim.claims.claims: one row per grid point and prediction, with its verdict)."""
        from mvsim.claims import claims

        return claims(self.summary, self.events, self.cfg)


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
        return Results(store.load(out), store.load_features(out), store.load_events(out), plan.cfg, plan.grid, out)

    devices = sweep.start_jax()
    sweep.check_resources(plan, devices, chunk, log)
    work, why = sweep.plan_work(plan, devices, chunk)
    if log:
        log(f"mvsim.simulate: {len(plan.points)} grid point(s) x {plan.seeds} seeds; {why}")
    bar = sweep.progress_bar(sum(len(w.seeds) for w in work), progress)
    summaries, features, events = [], [], []
    n_diverged = 0
    for w, s, f, e in sweep.run_work(plan, work, devices):
        summaries.append(s)
        features.append(f)
        events.append(e)
        n_diverged += sweep.diverged_runs(s)
        bar.update(len(w.seeds))
    bar.close()
    sweep.warn_diverged(n_diverged)
    summary = _concat(summaries)
    if len(summary):  # the order of mvsim.store.load
        summary = summary.sort_values(["grid_point", "seed", "method"], ignore_index=True)
    return Results(summary, _concat(features), _concat(events), plan.cfg, plan.grid)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
