"""`python -m mvsim.sweep`: SL, MRP and MRP+FT over a grid of configs x seeds.

Each grid point runs its seeds in chunks under one jit(vmap(run_seed)); the seed axis of a
chunk is sharded over the local devices. Floats are traced, so a grid over floats compiles
once; shape-changing keys (k, d, P, m, N, L, steps) compile once per value. Every finished
chunk is written atomically, so rerunning the same command on the same --out resumes.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from mvsim import config as C

DEFAULT_SEEDS = 16


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m mvsim.sweep",
        description="Train SL, MRP and MRP+fine-tuning on synthetic multi-view data over seeds "
                    "(and a grid of configs); write Parquet results and figures to --out.",
        epilog="Keys are dotted, like data.mu or mrp.mask_keep; `--set help=1` lists them all. "
               "Example: python -m mvsim.sweep --seeds 32 --grid data.mu=0.01,0.03,0.1 --out results/mu",
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
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument("--no-plots", action="store_true", help="do not write figures at the end")
    p.add_argument("--pdf", action="store_true", help="write PDF figures beside the PNGs")
    return p.parse_args(argv)


def _split_kv(text: str, option: str) -> tuple[str, str]:
    if "=" not in text:
        raise C.ConfigError(f"{option} {text!r}: expected KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def parse_grid(items: list[str]) -> dict[str, list]:
    """'--grid key=v1,v2' items -> {key: [coerced values]}; empty grids are errors."""
    grid = {}
    for item in items:
        key, text = _split_kv(item, "--grid")
        values = [v for v in (s.strip() for s in text.split(",")) if v]
        if not values:
            raise C.ConfigError(f"--grid {key}: empty grid (expected {key}=v1,v2,...)")
        grid[key] = [C.coerce(key, v) for v in values]
    return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
    """The product of the grids, in a fixed order: [{key: value}, ...] (one empty point without grid)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def resolve(args) -> tuple[C.Config, dict[str, list], int, list[C.Config]]:
    """Config, grid, seed count and the config of each grid point; raises ConfigError if anything is off."""
    if args.config:
        cfg, grid, stored_seeds = C.load_run_toml(args.config)
    else:
        cfg, grid, stored_seeds = C.Config(), {}, None
    cfg = C.with_values(cfg, dict(_split_kv(s, "--set") for s in args.set))
    grid = {key: [C.coerce(key, v) for v in values] for key, values in grid.items()}
    grid.update(parse_grid(args.grid))
    seeds = args.seeds if args.seeds is not None else (stored_seeds or DEFAULT_SEEDS)
    if seeds <= 0:
        raise C.ConfigError(f"--seeds {seeds}: expected a positive number of seeds")
    if args.chunk is not None and args.chunk <= 0:
        raise C.ConfigError(f"--chunk {args.chunk}: expected a positive chunk size")
    if not (0 <= args.process_id < args.num_processes):
        raise C.ConfigError(f"--process-id {args.process_id}: expected 0 <= id < --num-processes "
                            f"({args.num_processes})")
    points = [C.with_values(cfg, point) for point in grid_points(grid)]
    return cfg, grid, seeds, points


def prepare_out(args, text: str) -> Path:
    """Create (or reopen for resuming) the results directory; refuse one made with another config."""
    out = Path(args.out) if args.out else Path("results") / time.strftime("%Y%m%d-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise C.ConfigError(f"--out {str(out)!r}: cannot write there ({e.strerror or e})") from None
    stored = out / "config.toml"
    if stored.exists():
        old = C.strip_seeds(stored.read_text())
        if old != C.strip_seeds(text):
            raise C.ConfigError(f"--out {str(out)!r} holds a run with a different config; "
                                f"use a new --out (or the same config to resume it)")
    tmp = out / ".config.toml.tmp"
    tmp.write_text(text)
    os.replace(tmp, stored)
    return out


# ---------------------------------------------------------------- chunks


def bytes_per_seed(cfg: C.Config) -> int:
    """Rough peak memory of one seed: its datasets plus a few copies of the largest activations."""
    d = cfg.data
    samples = 2 * d.n_train + d.n_pretrain + 2 * d.n_test
    R = cfg.k_pre * cfg.net.m
    acts = max(d.n_train, d.n_pretrain, d.n_test) * d.P * R
    return 4 * (samples * d.P * d.d + 16 * acts)  # 16 copies: matches XLA's 160 MiB at the default


# Fastest chunk on a 2-core CPU in `make bench` (benchmarks/results.json, default config):
# 5.81, 4.77, 5.28, 5.86 s per seed at chunks 1, 2, 4, 8. GPUs take what fits in memory.
CPU_CHUNK = 2


def default_chunk(cfg: C.Config, seeds: int, devices) -> tuple[int, str]:
    """Seeds per chunk from memory and device kind, with the reason stated for the log."""
    per_seed = bytes_per_seed(cfg)
    stats = devices[0].memory_stats() if hasattr(devices[0], "memory_stats") else None
    if stats and "bytes_limit" in stats:
        avail = 0.6 * stats["bytes_limit"] * len(devices)
    else:
        avail = 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fits = max(1, int(avail // per_seed))
    want = CPU_CHUNK * len(devices) if devices[0].platform == "cpu" else fits
    chunk = max(1, min(fits, want, seeds))
    return chunk, (f"chunk {chunk} seeds (~{per_seed / 2**20:.0f} MiB per seed, "
                   f"{avail / 2**30:.1f} GiB usable on {len(devices)} {devices[0].platform} device(s))")


def plan_chunks(todo: list[int], chunk: int) -> list[list[int]]:
    return [todo[i:i + chunk] for i in range(0, len(todo), chunk)]


def run_chunk(run, cfg, seeds: list[int], chunk: int, sharding):
    """Records of `seeds`, padded to `chunk` seeds so every call has one shape (padding dropped)."""
    import jax
    from mvsim.experiment import seed_keys

    padded = list(seeds) + [seeds[-1] + 1 + i for i in range(chunk - len(seeds))]
    keys = jax.device_put(seed_keys(cfg.run.seed, padded), sharding)
    out = jax.device_get(run(keys, cfg))
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[: len(seeds)], out)


def enable_compilation_cache(jax) -> None:
    """Keep compiled programs on disk (MVSIM_CACHE_DIR, default ~/.cache/mvsim/jax): a rerun,
    a resumed sweep or another process with the same shapes skips the 25-40 s compile."""
    path = os.environ.get("MVSIM_CACHE_DIR", str(Path.home() / ".cache" / "mvsim" / "jax"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        cfg, grid, seeds, points = resolve(args)
        out = prepare_out(args, C.to_toml(cfg, grid, seeds=seeds))
    except C.ConfigError as e:
        print(f"mvsim.sweep: error: {e}", file=sys.stderr)
        return 2

    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    enable_compilation_cache(jax)

    if args.coordinator:
        jax.distributed.initialize(coordinator_address=args.coordinator,
                                   num_processes=args.num_processes, process_id=args.process_id)
        log(f"mvsim.sweep: process {jax.process_index()} of {jax.process_count()} "
            f"({len(jax.devices())} devices in all, {len(jax.local_devices())} here)")
    from tqdm import tqdm

    from mvsim import store, tables
    from mvsim.experiment import make_run

    devices = jax.local_devices()
    sharding = NamedSharding(Mesh(np.asarray(devices), ("seed",)), PartitionSpec("seed"))
    done = store.done_seeds(out)
    work = []  # (grid point index, seeds of one chunk)
    for gp, point_cfg in enumerate(points):
        chunk, why = (args.chunk, f"chunk {args.chunk} seeds (--chunk)") if args.chunk else \
            default_chunk(point_cfg, seeds, devices)
        chunk = math.ceil(chunk / len(devices)) * len(devices)  # whole seeds per device
        # chunks are cut from all seeds, so each process's share does not depend on what is done
        for i, c in enumerate(plan_chunks(list(range(seeds)), chunk)):
            todo = [s for s in c if s not in done.get(gp, set())]
            if todo and i % args.num_processes == args.process_id:
                work.append((gp, todo, chunk))
        if gp == 0:
            log(f"mvsim.sweep: {len(points)} grid point(s) x {seeds} seeds -> {out}; {why}")
    n_done = sum(len(v) for v in done.values())
    if n_done:
        log(f"mvsim.sweep: resuming: {n_done} (grid point, seed) pairs already done")

    point_dicts = grid_points(grid)
    run = make_run()
    bar = tqdm(total=sum(len(c) for _, c, _ in work), unit="seed", disable=args.quiet or None,
               desc="seeds", file=sys.stderr)
    n_diverged = 0
    for gp, chunk_seeds, chunk in work:
        records = run_chunk(run, points[gp], chunk_seeds, chunk, sharding)
        summary, features = tables.to_tables(records, chunk_seeds, points[gp], point_dicts[gp], gp)
        store.write_chunk(out, store.chunk_name(gp, chunk_seeds, args.process_id), summary, features)
        n_diverged += int(summary["diverged"].sum())
        bar.update(len(chunk_seeds))
    bar.close()
    if n_diverged:
        print(f"mvsim.sweep: warning: {n_diverged} (seed, method) runs diverged (NaN/inf); they are "
              f"marked diverged and left out of the figures' means", file=sys.stderr)
    if not args.no_plots and args.process_id == 0:
        from mvsim import plots
        written = plots.make_all(out, pdf=args.pdf)
        log(f"mvsim.sweep: {len(written)} figure(s) in {out / 'figures'}")
    log(f"mvsim.sweep: results in {out} (load with mvsim.store.load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
