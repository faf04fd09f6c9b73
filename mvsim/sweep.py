"""`python -m mvsim.sweep`: SL, MRP and MRP+FT over a grid of configs x seeds.

Each grid point runs its seeds in chunks under one jit(vmap(run_seed)); the seed axis of a
chunk is sharded over the local devices. Floats are traced, so a grid over floats compiles
once; shape-changing keys (k, d, P, m, N, L, checkpoints, horizons) compile once per value.
Every finished chunk is written atomically, so rerunning the same command on the same --out
resumes. Before anything is compiled, the sweep checks that one seed fits in the devices'
memory and that the results fit on --out's disk.

The steps are small functions shared with the notebook API (`mvsim.api.simulate`):
`resolve_plan` (config, grid, seeds) -> `check_disk` / `check_memory` -> `run_plan`, the one run
loop (`plan_work`: chunks of this process not yet done; `run_work`: chunks -> summary, features and
events DataFrames; each written to a sink: `DirectorySink` on disk, `MemorySink` for the API) ->
`finish` (figures, claims report).

The module holds the CLI (its options and help), the plan, the one run loop with its two sinks and
the end-of-run steps; what a run needs in memory and on disk is `mvsim.resources`.

Testing hook: with the environment variable MVSIM_STOP_AFTER_CHUNKS=N the process kills itself
with SIGKILL right after writing its N-th chunk (a deterministic `kill -9` for the resume tests).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mvsim import config as C
from mvsim import regime
from mvsim.resources import check_disk, check_resources, default_chunk

DEFAULT_SEEDS = 16
STOP_AFTER_CHUNKS = "MVSIM_STOP_AFTER_CHUNKS"


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m mvsim.sweep",
        description="Train SL, MRP and MRP+fine-tuning on synthetic multi-view data over seeds "
                    "(and a grid of configs); write Parquet results, figures and the claims report to --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Keys are dotted, like data.mu or mrp.mask_keep; `--set help=1` lists them all.\n"
               "Example: python -m mvsim.sweep --seeds 32 --grid data.mu=0.01,0.03,0.1 --out results/mu\n\n"
               "Before compiling, a run is refused (exit 2, one line) when one seed cannot fit in a\n"
               "device's memory or the results cannot fit on --out's disk.\n\n"
               "Environment:\n"
               "  MVSIM_CACHE_DIR        compiled programs (default ~/.cache/mvsim/jax; empty: off)\n"
               "  MVSIM_PROCESS_ID, MVSIM_NUM_PROCESSES, MVSIM_COORDINATOR  defaults of the options\n"
               f"  {STOP_AFTER_CHUNKS}=N testing hook: this process kills itself with SIGKILL right\n"
               "                         after writing its N-th chunk (a deterministic kill -9)",
    )
    p.add_argument("--config", help="TOML config (default: the calibrated default, experiments/default.toml); "
                                    "a results DIR/config.toml repeats that run")
    p.add_argument("--seeds", type=int, help=f"number of seeds per grid point (default {DEFAULT_SEEDS}, "
                                             "or the count stored in --config)")
    p.add_argument("--out", help="results directory (default: a new folder under results/); "
                                 "rerunning on an existing one resumes it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value; repeatable")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="sweep a key over values; repeatable (the product of all grids is run)")
    p.add_argument("--no-regime", action="store_true",
                   help="with --set data.k: keep the config's other values as they are, instead of carrying "
                        "n_train, n_pretrain, d, sigma_0 and the horizons to that k by the scaling rules "
                        "(python -m mvsim.regime --rules); a grid over data.k always uses the rules")
    p.add_argument("--chunk", type=int, help="seeds per jit(vmap) call (default: chosen from the "
                                             "device's memory and the fastest size measured)")
    p.add_argument("--process-id", type=int, default=int(os.environ.get("MVSIM_PROCESS_ID", 0)),
                   help="this process's index when several processes share --out (env MVSIM_PROCESS_ID)")
    p.add_argument("--num-processes", type=int, default=int(os.environ.get("MVSIM_NUM_PROCESSES", 1)),
                   help="number of processes sharing the work (env MVSIM_NUM_PROCESSES)")
    p.add_argument("--coordinator", default=os.environ.get("MVSIM_COORDINATOR"), metavar="HOST:PORT",
                   help="start jax.distributed with this coordinator (process 0's address), using "
                        "--num-processes and --process-id; each process still runs its own chunks on "
                        "its local devices (env MVSIM_COORDINATOR)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar, log lines or printed claims report (claims.md is still written)")
    p.add_argument("--no-plots", action="store_true", help="do not write figures at the end")
    p.add_argument("--no-claims", action="store_true",
                   help="do not write DIR/claims.md and DIR/claims.json nor print the claims report at the end")
    p.add_argument("--pdf", action="store_true", help="write PDF figures beside the PNGs")
    p.add_argument("--allow-code-change", action="store_true",
                   help="resume a directory written by other mvsim code (DIR/provenance.json records which); "
                        "refused by default, so that results of two versions of the dynamics never mix silently")
    return p.parse_args(argv)


# ---------------------------------------------------------------- config, grid and seeds


def parse_grid(items: list[str]) -> dict[str, list]:
    """'--grid key=v1,v2' items -> {key: [coerced values]}; empty grids are errors."""
    grid = {}
    for item in items:
        key, text = C.split_key_value(item, "--grid")
        values = [v for v in (s.strip() for s in text.split(",")) if v]
        if not values:
            raise C.ConfigError(f"--grid {key}: empty grid (expected {key}=v1,v2,...)")
        grid[key] = [C.coerce(key, v) for v in values]
    return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
    """The product of the grids, in a fixed order: [{key: value}, ...] (one empty point without grid)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


@dataclass(frozen=True)
class Plan:
    """What a sweep runs: the base config, the grid, the seed count and each grid point's config."""

    cfg: C.Config
    grid: dict
    seeds: int
    points: tuple  # (Config of each grid point)
    point_dicts: tuple  # ({grid key: value} of each grid point)
    note: str = ""  # what the scaling rules changed (empty: nothing)

    @property
    def toml(self) -> str:
        """The resolved run as TOML (DIR/config.toml): `--config` of it repeats the run."""
        return C.to_toml(self.cfg, self.grid, seeds=self.seeds)


def resolve_plan(config=None, values: dict | None = None, grid: dict | None = None,
                 seeds: int | None = None, scale_k: bool = True) -> Plan:
    """The plan of a run; raises ConfigError (one line) if anything is off.

    config: None (the default config), a TOML path (its [grid] and [sweep] seeds are used too) or a
    Config. values: {dotted key: value or text} overrides. grid: {dotted key: [values or texts]},
    added to (and replacing keys of) the config file's grid. seeds: None takes the count stored in
    the config file, else DEFAULT_SEEDS. scale_k: a data.k in `values` or the grid other than the
    config's carries n_train, n_pretrain, d, sigma_0 and the horizons to that k (mvsim.regime),
    except the keys set in `values` or the grid."""
    if isinstance(config, C.Config):
        C.validate(config)
        cfg, stored_grid, stored_seeds = config, {}, None
    elif config:
        cfg, stored_grid, stored_seeds = C.load_run_toml(config)
    else:
        cfg, stored_grid, stored_seeds = C.Config(), {}, None
    base, values = cfg, dict(values or {})
    cfg = regime.point(base, values, scale_k)
    merged = dict(stored_grid)
    for key, vals in (grid or {}).items():
        if isinstance(vals, (str, bytes)) or not hasattr(vals, "__iter__"):
            raise C.ConfigError(f"grid {key}: expected a list of values, got {vals!r}")
        vals = list(vals)
        if not vals:
            raise C.ConfigError(f"--grid {key}: empty grid (expected {key}=v1,v2,...)")
        merged[key] = vals
    merged = {key: [C.coerce(key, v) for v in vals] for key, vals in merged.items()}
    if not scale_k and len(set(merged.get("data.k", [base.data.k]))) > 1:
        raise C.ConfigError("--no-regime with a grid over data.k: a results directory reads its grid points "
                            "through the scaling rules; run each k separately with --set data.k=K --no-regime")
    seeds = seeds if seeds is not None else (stored_seeds or DEFAULT_SEEDS)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds <= 0:
        raise C.ConfigError(f"--seeds {seeds}: expected a positive number of seeds")
    dicts = grid_points(merged)
    points = tuple(regime.point(base, {**values, **p}, scale_k) for p in dicts)
    return Plan(cfg, merged, int(seeds), points, tuple(dicts), _regime_note(base, cfg, merged, scale_k))


def _regime_note(base: C.Config, cfg: C.Config, grid: dict, scale_k: bool) -> str:
    if not scale_k:
        return ""
    if cfg.data.k != base.data.k:
        return (f"data.k = {cfg.data.k}: carried from k = {base.data.k} by the scaling rules (--no-regime "
                f"keeps the config's values): {regime.describe(base, cfg)}")
    if any(v != base.data.k for v in grid.get("data.k", [])):
        return ("grid over data.k: each point carried from k = "
                f"{base.data.k} by the scaling rules (--no-regime keeps the config's values)")
    return ""


def check_options(chunk=None, process_id: int = 0, num_processes: int = 1) -> None:
    if chunk is not None and chunk <= 0:
        raise C.ConfigError(f"--chunk {chunk}: expected a positive chunk size")
    if not (0 <= process_id < num_processes):
        raise C.ConfigError(f"--process-id {process_id}: expected 0 <= id < --num-processes "
                            f"({num_processes})")


def resolve(args) -> Plan:
    """The plan of the command line's run; raises ConfigError if anything is off."""
    plan = resolve_plan(args.config, dict(C.split_key_value(s, "--set") for s in args.set), parse_grid(args.grid),
                        args.seeds, scale_k=not args.no_regime)
    check_options(args.chunk, args.process_id, args.num_processes)
    return plan


def default_out() -> Path:
    return Path("results") / time.strftime("%Y%m%d-%H%M%S")


def refuse_other_run(out: Path, text: str) -> None:
    """Refuse a results directory that holds a run with another config (seed counts may differ)."""
    stored = Path(out) / "config.toml"
    if stored.exists() and C.run_identity(stored.read_text()) != C.run_identity(text):
        raise C.ConfigError(f"--out {str(out)!r} holds a run with a different config; "
                            f"use a new --out (or the same config to resume it)")


def prepare_out(out: Path, text: str) -> Path:
    """Create (or reopen for resuming) the results directory and write its config.toml;
    refuse one made with another config."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise C.ConfigError(f"--out {str(out)!r}: cannot write there ({e.strerror or e})") from None
    refuse_other_run(out, text)
    tmp = out / f".config.toml.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / "config.toml")
    return out


# ---------------------------------------------------------------- chunks


def plan_chunks(todo: list[int], chunk: int) -> list[list[int]]:
    return [todo[i:i + chunk] for i in range(0, len(todo), chunk)]


@dataclass(frozen=True)
class Work:
    """One chunk to run: grid point, its seeds still to do, and the (padded) chunk size."""

    gp: int
    seeds: list
    chunk: int


def plan_work(plan: Plan, devices, chunk: int | None = None, done: dict[int, set] | None = None,
              process_id: int = 0, num_processes: int = 1) -> tuple[list[Work], str]:
    """This process's chunks (seeds not yet done) and the reason for the chunk size.

    Chunks are cut from all seeds and dealt round-robin to the processes, so each process's share
    does not depend on what is done; every chunk is a whole number of seeds per device."""
    done = done or {}
    work, why = [], ""
    for gp, cfg in enumerate(plan.points):
        size, reason = (chunk, f"chunk {chunk} seeds (--chunk)") if chunk else \
            default_chunk(cfg, plan.seeds, devices)
        size = math.ceil(size / len(devices)) * len(devices)
        for i, c in enumerate(plan_chunks(list(range(plan.seeds)), size)):
            todo = [s for s in c if s not in done.get(gp, set())]
            if todo and i % num_processes == process_id:
                work.append(Work(gp, todo, size))
        why = why or reason
    return work, why


def run_chunk(run, cfg, seeds: list[int], chunk: int, sharding):
    """Records of `seeds`, padded to `chunk` seeds so every call has one shape (padding dropped)."""
    import jax
    from mvsim.experiment import seed_keys

    padded = list(seeds) + [seeds[-1] + 1 + i for i in range(chunk - len(seeds))]
    keys = jax.device_put(seed_keys(cfg.run.seed, padded), sharding)
    out = jax.device_get(run(keys, cfg))
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[: len(seeds)], out)


def run_work(plan: Plan, work: list[Work], devices) -> Iterator[tuple[Work, "object", "object", "object"]]:
    """Run the chunks in order: yields (work item, summary, features and events DataFrames)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from mvsim import tables
    from mvsim.methods import make_run

    sharding = NamedSharding(Mesh(np.asarray(devices), ("seed",)), PartitionSpec("seed"))
    run = make_run()
    for w in work:
        records = run_chunk(run, plan.points[w.gp], w.seeds, w.chunk, sharding)
        yield (w, *tables.to_tables(records, w.seeds, plan.points[w.gp], plan.point_dicts[w.gp], w.gp))


def enable_compilation_cache(jax) -> None:
    """Keep compiled programs on disk (MVSIM_CACHE_DIR, default ~/.cache/mvsim/jax): a rerun,
    a resumed sweep or another process with the same shapes skips the 25-40 s compile."""
    path = os.environ.get("MVSIM_CACHE_DIR", str(Path.home() / ".cache" / "mvsim" / "jax"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def start_jax(coordinator=None, num_processes: int = 1, process_id: int = 0, log=None):
    """Import JAX with the compilation cache on (and jax.distributed when a coordinator is given);
    returns this process's devices."""
    import jax

    enable_compilation_cache(jax)
    if coordinator:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
        if log:
            log(f"mvsim.sweep: process {jax.process_index()} of {jax.process_count()} "
                f"({len(jax.devices())} devices in all, {len(jax.local_devices())} here)")
    return jax.local_devices()


def progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="seed", disable=(not enabled) or None, desc="seeds", file=sys.stderr)


def diverged_runs(summary) -> int:
    """Runs (grid point, seed, method, fine-tuning start) with a non-finite loss or Lambda at some checkpoint."""
    keys = [c for c in ("grid_point", "seed", "method", "ft_from") if c in summary]
    if not len(summary):
        return 0
    return int(summary.groupby(keys, dropna=False)["diverged"].any().sum())


def warn_diverged(n: int) -> None:
    if n:
        print(f"mvsim.sweep: warning: {n} (seed, method) runs diverged (NaN/inf); they are marked "
              f"diverged and left out of the figures' means", file=sys.stderr)


def write_claims(out: Path, show: bool) -> bool:
    """Write DIR/claims.md and DIR/claims.json (and print the report when `show`). A failing report
    costs nothing but itself: the results are on disk already. Returns whether it worked."""
    try:
        from mvsim.claims import report

        text = report(out)
    except Exception as e:  # noqa: BLE001 - the report must never cost the run
        print(f"mvsim.sweep: warning: the claims report failed ({type(e).__name__}: {e}); the results in "
              f"{out} are complete, retry with python -m mvsim.claims {out}", file=sys.stderr)
        return False
    if show:
        print(text, flush=True)
    return True


def finish(out: Path, plots: bool = True, pdf: bool = False, claims: bool = True, show: bool = True,
           log=None) -> None:
    """After the chunks (process 0 only): figures, then the claims report."""
    log = log or (lambda msg: None)
    if plots:
        from mvsim import plots as P

        written = P.make_all(out, pdf=pdf)
        log(f"mvsim.sweep: {len(written)} figure(s) in {out / 'figures'}")
    if claims and write_claims(out, show):
        log(f"mvsim.sweep: claims in {out / 'claims.md'}")


class DirectorySink:
    """Where a run's chunks go on disk: each finished chunk written atomically into results
    directory `out` (mvsim.store), so that a rerun resumes."""

    def __init__(self, out: Path, process_id: int = 0):
        from mvsim import store

        self.out, self.process_id, self.store = Path(out), process_id, store

    def done(self) -> dict[int, set]:
        return self.store.done_seeds(self.out)

    def write(self, w: Work, summary, features, events) -> None:
        self.store.write_chunk(self.out, self.store.chunk_name(w.gp, w.seeds, self.process_id), summary, features,
                               events)


class MemorySink:
    """Where a run's chunks go in memory (`mvsim.simulate` without `out`): the tables, concatenated
    in the order mvsim.store.load gives."""

    def __init__(self):
        self.parts = ([], [], [])

    def done(self) -> dict[int, set]:
        return {}

    def write(self, w: Work, summary, features, events) -> None:
        for part, frame in zip(self.parts, (summary, features, events)):
            part.append(frame)

    def tables(self):
        import pandas as pd

        summary, features, events = (pd.concat(p, ignore_index=True) if p else pd.DataFrame() for p in self.parts)
        if len(summary):
            summary = summary.sort_values(["grid_point", "seed", "method"], ignore_index=True)
        return summary, features, events


def import_in_background(modules: tuple[str, ...]) -> None:
    """Import `modules` on a daemon thread. Started while a chunk computes (the main thread waits
    for XLA with the GIL released), it moves the figures' imports (matplotlib: ~2 s on 2 cores)
    off the end of a run; a later `import` of the same module waits for this one to finish. An
    import that fails here is left to fail again, with its message, where the module is used."""
    def load():
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    if modules:
        threading.Thread(target=load, daemon=True).start()


def run_plan(plan: Plan, sink, devices, *, chunk=None, process_id=0, num_processes=1, log=None,
             progress=False, where: str = "memory", then: tuple[str, ...] = ()) -> None:
    """The run loop of the CLI and the API: this process's chunks not yet in `sink`, run in order,
    each written to `sink` as it finishes, with a progress bar and a warning for diverged runs.
    then: modules needed after the run, imported in the background from the second chunk on."""
    log = log or (lambda msg: None)
    done = sink.done()
    work, why = plan_work(plan, devices, chunk, done, process_id, num_processes)
    if plan.note:
        log(f"mvsim.sweep: {plan.note}")
    log(f"mvsim.sweep: {len(plan.points)} grid point(s) x {plan.seeds} seeds -> {where}; {why}")
    n_done = sum(len(v) for v in done.values())
    if n_done:
        log(f"mvsim.sweep: resuming: {n_done} (grid point, seed) pairs already done")
    stop_after = int(os.environ.get(STOP_AFTER_CHUNKS, "0") or 0)
    bar = progress_bar(sum(len(w.seeds) for w in work), progress)
    n_diverged = 0
    for i, (w, summary, features, events) in enumerate(run_work(plan, work, devices), start=1):
        sink.write(w, summary, features, events)
        if i == 1:  # the first chunk traced and compiled; the rest only compute
            import_in_background(then)
        n_diverged += diverged_runs(summary)
        bar.update(len(w.seeds))
        if stop_after and i >= stop_after:
            os.kill(os.getpid(), signal.SIGKILL)  # testing hook: a kill -9 right after a chunk
    bar.close()
    warn_diverged(n_diverged)


def execute(plan: Plan, out: Path, *, chunk=None, process_id=0, num_processes=1, coordinator=None,
            log=None, progress=False, plots=True, pdf=False, claims=True, show_claims=True,
            allow_code_change=False) -> None:
    """Run `plan` into the results directory `out` (resuming it), as the CLI does. Raises
    ConfigError (one line) before compiling anything when the run is refused."""
    from mvsim import provenance, store

    log = log or (lambda msg: None)
    out = Path(out)
    refuse_other_run(out, plan.toml)  # before looking at another run's files
    provenance.check(out, allow_code_change)
    for path in store.quarantine_damaged(out) if out.is_dir() else []:
        print(f"mvsim.sweep: warning: {path} is damaged: its chunk moved to {out / store.DAMAGED}, its seeds "
              f"run again", file=sys.stderr)
    check_disk(plan, out, store.done_seeds(out) if (out / store.SUMMARY).is_dir() else None)
    devices = start_jax(coordinator, num_processes, process_id, log)
    check_resources(plan, devices, chunk, log)
    prepare_out(out, plan.toml)
    runs = provenance.start(out, devices) if process_id == 0 else None
    then = () if process_id else (("mvsim.plots",) if plots else ()) + (("mvsim.claims",) if claims else ())
    run_plan(plan, DirectorySink(out, process_id), devices, chunk=chunk, process_id=process_id,
             num_processes=num_processes, log=log, progress=progress, where=str(out), then=then)
    if process_id == 0:
        provenance.finish(out, runs)
        finish(out, plots=plots, pdf=pdf, claims=claims, show=show_claims, log=log)
    log(f"mvsim.sweep: results in {out} (load with mvsim.store.load)")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        plan = resolve(args)
        out = Path(args.out) if args.out else default_out()
        execute(plan, out, chunk=args.chunk, process_id=args.process_id, num_processes=args.num_processes,
                coordinator=args.coordinator, log=log, progress=not args.quiet, plots=not args.no_plots,
                pdf=args.pdf, claims=not args.no_claims, show_claims=not args.quiet,
                allow_code_change=args.allow_code_change)
    except C.ConfigError as e:
        print(f"mvsim.sweep: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
