"""What a sweep needs before it compiles: memory per seed, disk for its results, and a chunk size.

`bytes_per_seed` and `rows_per_seed` read the table of methods (`mvsim.methods`): a method declared
there is counted here. `check_resources` and `check_disk` refuse (ConfigError, one line) a run that
cannot fit; `default_chunk` picks the seeds per compiled call. `plan` arguments are `mvsim.sweep.Plan`s
(the base config, the grid, the seed count and each grid point's config).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from mvsim import config as C
from mvsim import train

# ---------------------------------------------------------------- memory and disk, before compiling


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


WIDE_COPIES = 4.5  # (n, P, R) arrays alive at once at the peak: calibrated at k = 80, where they dominate
MEMORY_KEYS = ("data.n_train", "data.n_pretrain", "data.n_test", "data.P", "data.d", "net.m", "data.k")


def bytes_per_seed(cfg: C.Config) -> int:
    """Rough peak memory of one seed (float32), from the shapes of the pipeline and the table of
    methods (`mvsim.methods`: each enabled method's `width`, `logged`, log times and runs):

    * the data sets: train, train with fresh noise, pretraining and two test sets, each (n, P, d),
      three times over (XLA keeps copies of the inputs the methods transform), and once more the
      training and pretraining sets when the gradients run in sample blocks (their zero-padded
      copies; `train.n_blocks`: on a CPU at k = 40 and 80);
    * the widest (n, P, R) pre-activations of any method (`Method.width`: samples x kernels),
      WIDE_COPIES times over (activations, their derivatives and gradients live at once);
    * what the methods keep beyond their records (`Method.logged`: MRP's encoder W at every MRP log
      time, kept by its per-kernel loop and logged to start fine-tuning from; the ensemble's members
      and logits);
    * the records: per method, run and log time, the feature tables (4 x k x L) and the scalars.

    Calibrated on XLA's own count (compile().memory_analysis(), temp bytes, chunk 1; measured on the
    clock before per-kernel loops kept MRP's encoders, which adds 2 MiB at k = 10 and 30 MiB at k =
    80 here): 166 MiB for the default config (196 here), 328 MiB with every n doubled (387 here), 168
    MiB with net.m doubled (228 here), 249 MiB at k = 20 (experiments/k20.toml: 328 here) and 2,576
    MiB at k = 80 (experiments/k80.toml: 2,574 here; the pre-activations, 300 MiB a copy, fix
    WIDE_COPIES). With the gradients in sample blocks XLA counts 2,723 MiB at k = 80 (2,811 here).
    The data sets dominate up to k = 20. Chunk 2 doubles each count exactly."""
    from mvsim.experiment import record_floats
    from mvsim.methods import enabled

    d = cfg.data
    methods = enabled(cfg)
    samples = 3 * (2 * d.n_train + d.n_pretrain + 2 * d.n_test)
    if train.n_blocks(d.n_pretrain, d.P, cfg.k_pre * cfg.net.m) > 1:
        samples += d.n_train + d.n_pretrain
    widest = max(m.width(cfg) for m in methods)
    records = sum(len(m.times(cfg)) * m.runs(cfg) for m in methods) * record_floats(cfg)
    logged = sum(m.logged(cfg) for m in methods)
    floats = samples * d.P * d.d + WIDE_COPIES * d.P * widest + logged + records
    return 4 * floats


def usable_memory(devices) -> tuple[float, str]:
    """Bytes a chunk may use on `devices` (60% of accelerator memory, half the host's RAM on CPU)."""
    stats = devices[0].memory_stats() if hasattr(devices[0], "memory_stats") else None
    if stats and "bytes_limit" in stats:
        per_device = 0.6 * stats["bytes_limit"]
    else:
        per_device = 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / len(devices)
    return per_device * len(devices), f"{len(devices)} {devices[0].platform} device(s)"


def check_memory(plan, per_device: float, where: str) -> None:
    """Refuse (ConfigError, one line) when one seed of some grid point needs more than one device's memory."""
    for gp, cfg in enumerate(plan.points):
        need = bytes_per_seed(cfg)
        if need > per_device:
            keys = ", ".join(f"{key} = {C.get(cfg, key)}" for key in MEMORY_KEYS)
            at = f" at grid point {gp} ({plan.point_dicts[gp]})" if plan.grid else ""
            raise C.ConfigError(
                f"one seed needs ~{_fmt_bytes(need)} of memory{at} but a device has ~{_fmt_bytes(per_device)} "
                f"usable ({where}); lower {keys}")


def rows_per_seed(cfg: C.Config) -> tuple[int, int]:
    """(summary rows, features rows) one seed writes: one summary row per enabled method, run and log
    time (`mvsim.methods`), k * L features rows per summary row."""
    from mvsim.methods import enabled

    rows = sum(len(m.times(cfg)) * m.runs(cfg) for m in enabled(cfg))
    return rows, rows * cfg.data.k * cfg.data.L


# Parquet on disk, measured on tests/tiny.toml. The events table (2 k L + 1 rows per method run) is
# under a tenth of the features table and rides in its margin.
SUMMARY_ROW_BYTES, FEATURES_ROW_BYTES = 300, 60


def results_bytes(plan, done: dict[int, set] | None = None) -> int:
    """Disk space the results still to be written take (grid points x seeds x rows x bytes per row)."""
    total = 0
    for gp, cfg in enumerate(plan.points):
        s_rows, f_rows = rows_per_seed(cfg)
        todo = plan.seeds - len((done or {}).get(gp, set()) & set(range(plan.seeds)))
        total += todo * (s_rows * SUMMARY_ROW_BYTES + f_rows * FEATURES_ROW_BYTES)
    return total


def free_disk(path: Path) -> int:
    """Free bytes on the filesystem that holds `path` (or would: its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(plan, out: Path, done: dict[int, set] | None = None) -> None:
    """Refuse (ConfigError, one line) when the results cannot fit on --out's filesystem."""
    need = results_bytes(plan, done)
    try:
        free = free_disk(out)
    except OSError:
        return  # unknown free space: let the writes tell
    if need > free:
        cfg = plan.points[0]
        s_rows, f_rows = rows_per_seed(cfg)
        raise C.ConfigError(
            f"--out {str(out)!r}: the results need ~{_fmt_bytes(need)} but its filesystem has "
            f"{_fmt_bytes(free)} free ({len(plan.points)} grid point(s) x {plan.seeds} seeds x "
            f"{f_rows} features rows per seed); lower --seeds, the grid, the log times (train.checkpoints) "
            f"or data.k = {cfg.data.k}, data.L = {cfg.data.L}, or use another --out")




# Seeds per compiled call on a CPU: one. On the GD clock a chunk runs as many steps as its slowest
# seed (SL: 1.21x the mean at chunk 2 at k = 10, 1.10x for k = 80's first pair), and XLA's CPU
# kernels already spread one seed over the cores (a k = 80 seed alone used 1.8 of 2). Measured on the idle 2-core CPU, two runs in
# alternating order: `make run`'s 16 seeds in 101 and 103 s at chunk 1 against 110 and 116 s at
# chunk 2 (0.90x; the same numbers up to float rounding: every claim equal to 6 digits, event times
# within 2e-7); a k = 80 seed in 40 min alone against 2 h 29 min for a pair (partly under load).
# (The fixed-step pipeline, without lockstep, was fastest at 2.) GPUs take what fits in memory.
CPU_CHUNK = 1


def default_chunk(cfg: C.Config, seeds: int, devices) -> tuple[int, str]:
    """Seeds per chunk from memory and device kind, with the reason stated for the log."""
    per_seed = bytes_per_seed(cfg)
    avail, where = usable_memory(devices)
    fits = max(1, int(avail // per_seed))
    want = CPU_CHUNK * len(devices) if devices[0].platform == "cpu" else fits
    chunk = max(1, min(fits, want, seeds))
    return chunk, (f"chunk {chunk} seeds (~{_fmt_bytes(per_seed)} per seed, "
                   f"{_fmt_bytes(avail)} usable on {where})")


def check_resources(plan, devices, chunk: int | None = None, log=None) -> None:
    """Refuse a run whose seed cannot fit in a device's memory; warn when --chunk asks for more than fits."""
    avail, where = usable_memory(devices)
    check_memory(plan, avail / len(devices), where)
    if chunk and log:
        need = max(bytes_per_seed(cfg) for cfg in plan.points) * math.ceil(chunk / len(devices))
        if need > avail / len(devices):
            log(f"mvsim.sweep: warning: --chunk {chunk} needs ~{_fmt_bytes(need)} per device, more than "
                f"the ~{_fmt_bytes(avail / len(devices))} usable; a smaller --chunk may be needed")
