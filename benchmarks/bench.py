#!/usr/bin/env python
"""mvsim benchmarks: how fast is the hot loop, the per-seed pipeline, vmap, and compilation?

    .venv/bin/python benchmarks/bench.py [--quick] [--out FILE.json]

Everything is measured in one process on the machine it runs on (CPU or GPU):

1. steps     Achieved FLOP/s of one SL, one MRP and one full fine-tuning GD step. The steps
             are `mvsim.train.train_sl / train_mrp / train_ft` themselves (the same lax.scan
             code the pipeline runs), with `steps = log_every = K`, jitted and vmapped over a
             chunk of seeds; time per step = time of the K-step call / K. FLOPs counted
             analytically: the two matmuls of a step, forward pre-activations (n P, d) x (d, R)
             and the kernel gradient (R, n P) x (n P, d), each 2 n P d R; that is
             4 n P d R per step per seed (n = n_train for SL and FT, n_pretrain for MRP;
             R = k m for SL, (k + k_extra) m for MRP and FT). Elementwise work (sReLU, its
             derivative, softmax, masks, the normalised step) and the tiny head and Lambda
             matmuls are not counted. XLA's own count of one step (cost_analysis of a K = 1
             build) is reported beside it. The same chunk's matmuls alone, as batched einsums
             of exactly those two shapes, and a large square matmul (the machine's practical
             peak) are measured in the same run; ratios are printed. Private ablations,
             monkeypatched inside this process only (mvsim itself is untouched): SL and MRP
             with the sReLU replaced by the identity, and the sReLU's forward+backward alone,
             show what the elementwise part costs; SL with bf16 matmul inputs (f32
             accumulation) shows what reduced precision would buy. make_data alone is timed
             too, and a table splits one seed's time into data, SL, MRP, FT and the rest.
2. pipeline  Seconds per seed and seeds per minute of the whole per-seed pipeline
             `mvsim.experiment.make_run` (data, SL, MRP, FT, metrics) over chunk sizes, with
             `seed_keys`; the fastest chunk size.
3. vmap      vmap over a chunk vs a Python loop over the same seeds calling one jitted
             single-seed function (the same jit(vmap(run_seed)) at chunk size 1), and a check
             that both give the same records.
4. scaling   Time and peak memory vs number of seeds (run as a sweep does: chunks of a fixed
             size), vs N (data.n_train = data.n_pretrain) and vs d, with fewer GD steps (said
             in the output). Compilations of run_seed are counted from JAX's compile log
             (jax_log_compiles): one per shape, none between chunks, none when a float
             changes.
5. compile   lower() and compile() times of every function above, and first call minus a
             later call.

Sizes. Full (default): parts 2-3 run the default config itself at chunk sizes 1, 2, 4, 8, 16
(32 if it fits in --budget); steps at chunks 1 and 8; part 4 with GD steps / 10, seeds 1, 8,
64 (256 within --budget) in chunks of 8, and d, N, both doubled; about 13-15 minutes on 2 CPU
cores. --quick: GD steps / 10 everywhere in parts 2-4, chunks 1 and 4, steps at chunk 4 (the
large config at chunk 1, without ablations), seeds 1, 8, 64 in chunks of 4, one doubled
(d, N) point; the default config's time per seed is then estimated from the step timings;
about 3-5 minutes. On GPUs the chunk sizes are larger (see --chunks). The large config is the
default with d, n_train and n_pretrain doubled (d = 512, N = 1000 for the built-in default).

Peak memory: the process's peak RSS during each run (VmHWM after resetting it through
/proc/self/clear_refs, or polled VmRSS), XLA's static estimate from
`compiled.memory_analysis()` (arguments + outputs + temporaries), and on GPUs the device's
peak_bytes_in_use. Machine load (other processes' CPU use) is recorded for every section;
numbers taken while other_cores > 0.25 are flagged as noisy.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import data, experiment, nets, train  # noqa: E402

T_START = time.perf_counter()


# ---------------------------------------------------------------- small utilities


def now() -> float:
    return time.perf_counter() - T_START


def log(*a):
    print(*a, flush=True)


def block(x):
    return jax.block_until_ready(x)


def timed(fn, *args):
    t = time.perf_counter()
    out = block(fn(*args))
    return time.perf_counter() - t, out


def measure(fn, *args, repeats=3, min_time=0.2, max_inner=200):
    """Best per-call seconds over `repeats` groups of back-to-back calls (after one warm call)."""
    t1, _ = timed(fn, *args)
    inner = max(1, min(max_inner, int(min_time / max(t1, 1e-6))))
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        block(out)
        best = min(best, (time.perf_counter() - t) / inner)
    return best


def cost_flops(compiled) -> float | None:
    try:
        ca = compiled.cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0]
        return float(ca.get("flops")) if ca and ca.get("flops") is not None else None
    except Exception:  # not every backend implements it
        return None


def mem_analysis(compiled) -> dict | None:
    try:
        m = compiled.memory_analysis()
    except Exception:
        return None
    if m is None:
        return None
    out = {k: int(getattr(m, k + "_size_in_bytes", 0) or 0) for k in ("argument", "output", "temp", "alias")}
    out["total"] = out["argument"] + out["output"] + out["temp"] - out["alias"]
    return out


def lower_compile(fn, *args):
    """(compiled, lower seconds, compile seconds)."""
    t0 = time.perf_counter()
    lowered = fn.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    return compiled, t1 - t0, time.perf_counter() - t1


def mb(nbytes) -> float | None:
    return None if nbytes is None else round(nbytes / 2**20, 1)


# ---------------------------------------------------------------- machine load


class Load:
    """Wall time, this process's CPU time and everybody else's, over a section."""

    def __enter__(self):
        self.t0, self.busy0, self.own0 = self._snap()
        self.load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return self

    @staticmethod
    def _snap():
        busy = None
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            pass
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system

    def __exit__(self, *exc):
        t1, busy1, own1 = self._snap()
        self.wall = t1 - self.t0
        self.own_cores = (own1 - self.own0) / max(self.wall, 1e-9)
        self.other_cores = (None if busy1 is None or self.busy0 is None
                            else max(0.0, (busy1 - self.busy0 - (own1 - self.own0)) / max(self.wall, 1e-9)))
        self.load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return False

    def record(self) -> dict:
        return {"wall_s": round(self.wall, 3), "own_cores": round(self.own_cores, 2),
                "other_cores": None if self.other_cores is None else round(self.other_cores, 2),
                "loadavg_1min": [self.load0, self.load1],
                "noisy": bool(self.other_cores is not None and self.other_cores > 0.25)}


# ---------------------------------------------------------------- peak memory


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMem:
    """Peak host RSS during the block (and the device's peak bytes where it reports them)."""

    def __enter__(self):
        self.reset = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.reset = True
        except OSError:
            pass
        self.polled = _status_kb("VmRSS") or 0
        self.start_kb = self.polled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.02):
            self.polled = max(self.polled, _status_kb("VmRSS") or 0)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        hwm = _status_kb("VmHWM") if self.reset else None
        if hwm is None and self.polled == 0:  # not Linux
            import resource
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_kb = max(hwm or 0, self.polled)
        self.device_peak = None
        try:
            stats = jax.devices()[0].memory_stats()
            if stats:
                self.device_peak = stats.get("peak_bytes_in_use")
        except Exception:
            pass
        return False

    def record(self) -> dict:
        return {"rss_start_mb": round(self.start_kb / 1024, 1), "rss_peak_mb": round(self.peak_kb / 1024, 1),
                "rss_increase_mb": round((self.peak_kb - self.start_kb) / 1024, 1),
                "rss_method": "VmHWM after clear_refs" if self.reset else "polled VmRSS / maxrss",
                "device_peak_mb": mb(self.device_peak)}


def available_bytes() -> int | None:
    """Memory a chunk may use: the device's limit on accelerators, MemAvailable on CPU."""
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        try:
            s = dev.memory_stats()
            return int(s["bytes_limit"] - s.get("bytes_in_use", 0))
        except Exception:
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- compile counting


class CompileLog(logging.Handler):
    """Counts JAX compilations by function name from the jax_log_compiles messages."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names: list[str] = []
        self.xla_s: dict[str, float] = {}

    def emit(self, record):
        msg = record.getMessage()
        m = re.match(r"Compiling (\S+) ", msg)
        if m:
            self.names.append(m.group(1))
            return
        m = re.match(r"Finished XLA compilation of (\S+) in ([0-9.eE+-]+) sec", msg)
        if m:
            self.xla_s[m.group(1)] = self.xla_s.get(m.group(1), 0.0) + float(m.group(2))

    def count(self, name="run_seed") -> int:
        return sum(name in n for n in self.names)


CLOG = CompileLog()


def install_compile_log():
    jax.config.update("jax_log_compiles", True)
    lg = logging.getLogger("jax")
    lg.addHandler(CLOG)
    lg.propagate = False  # keep the compile log off stderr
    if lg.level == logging.NOTSET or lg.level > logging.WARNING:
        lg.setLevel(logging.WARNING)


# ---------------------------------------------------------------- machine info


def machine_info() -> dict:
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_total = None
    try:
        with open("/proc/meminfo") as f:
            mem_total = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import jaxlib
        jaxlib_version = jaxlib.__version__
    except Exception:
        jaxlib_version = None
    devs = jax.devices()
    info = {
        "jax": jax.__version__, "jaxlib": jaxlib_version, "python": sys.version.split()[0],
        "platform": platform.platform(), "backend": jax.default_backend(),
        "devices": [str(d) for d in devs], "device_kind": devs[0].device_kind,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model, "mem_total_gb": None if mem_total is None else round(mem_total / 2**30, 1),
        "x64": bool(getattr(jax.config, "jax_enable_x64", False)),
        "default_matmul_precision": getattr(jax.config, "jax_default_matmul_precision", None),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
    }
    try:
        s = devs[0].memory_stats()
        if s:
            info["device_bytes_limit_gb"] = round(s.get("bytes_limit", 0) / 2**30, 1)
    except Exception:
        pass
    return info


# ---------------------------------------------------------------- configs


def get_run(cfg):
    """The pipeline's jitted (keys, cfg) -> records function, whatever make_run's signature."""
    mk = experiment.make_run
    return mk(cfg) if inspect.signature(mk).parameters else mk()


def fewer_steps(cfg, div):
    """The config with all step counts divided by `div` (log_every kept, at most the new count)."""
    t = cfg.train
    sl, mrp, ft = (max(1, t.sl_steps // div), max(1, t.mrp_steps // div), max(1, t.ft_steps // div))
    return C.with_values(cfg, {"train.sl_steps": sl, "train.mrp_steps": mrp, "train.ft_steps": ft,
                               "train.log_every": min(t.log_every, max(sl, mrp, ft))})


def describe(cfg) -> dict:
    d, t = cfg.data, cfg.train
    return {"k": d.k, "k_pre": cfg.k_pre, "L": d.L, "d": d.d, "P": d.P, "m": cfg.net.m,
            "n_train": d.n_train, "n_pretrain": d.n_pretrain, "n_test": d.n_test,
            "sl_steps": t.sl_steps, "mrp_steps": t.mrp_steps, "ft_steps": t.ft_steps,
            "log_every": t.log_every, "ft_mode": cfg.ft.mode, "mrp_target": cfg.mrp.target}


def step_flops(cfg, which) -> float:
    """Counted matmul FLOPs of one GD step of one seed: forward + kernel gradient, 2 * 2 n P d R."""
    d = cfg.data
    n = d.n_pretrain if which == "mrp" else d.n_train
    R = (d.k if which == "sl" else cfg.k_pre) * cfg.net.m
    return 4.0 * n * d.P * d.d * R


# ---------------------------------------------------------------- 0. peak matmul


def bench_peak(args) -> dict:
    size = args.peak_size or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(2), (size, size), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    with Load() as ld:
        t = measure(f, a, b, repeats=args.repeats, min_time=0.3)
    flops = 2.0 * size**3
    out = {"size": size, "seconds": t, "gflops": flops / t / 1e9, "precision": "default", "load": ld.record()}
    if jax.default_backend() != "cpu":  # GPUs may run default-precision f32 dots in TF32
        with jax.default_matmul_precision("highest"):
            fh = jax.jit(lambda a, b: a @ b)
            th = measure(fh, a, b, repeats=args.repeats, min_time=0.3)
        out["gflops_highest"] = flops / th / 1e9
    return out


# ---------------------------------------------------------------- 1. step FLOP/s


_INPUT_FNS: dict = {}


def step_inputs(cfg, S: int, full_data: bool = True):
    """Per-seed data and initial parameters for the step benchmarks, stacked over S seeds.

    full_data: all of `experiment.make_data` (its time per seed is reported); else only the
    features and one dataset of n_train + n_pretrain samples split in two (a third of the
    compile time; make_data's compile is most of the pipeline's). One jit per config at a
    single seed, called S times. Returns (inputs, first call s, data s per seed or None)."""
    dc = cfg.data

    def one(key):
        k_data, k_sl, k_mrp, k_mask = jax.random.split(key, 4)
        if full_data:
            D = experiment.make_data(k_data, cfg)
            D = dict(D._asdict() if hasattr(D, "_asdict") else D)  # all datasets kept: none optimised away
        else:
            k_v, k_x = jax.random.split(k_data)
            V = data.make_features(k_v, cfg.k_pre * dc.L, dc.d)
            both = data.dataset(k_x, dc.n_train + dc.n_pretrain, dc.mu, V, dc, dc.k)
            D = {"V": V, "train": jax.tree_util.tree_map(lambda a: a[:dc.n_train], both),
                 "pre": jax.tree_util.tree_map(lambda a: a[dc.n_train:], both)}
        D.update(W_sl=train.init_sl(k_sl, cfg), p_mrp=train.init_mrp(k_mrp, cfg), k_mask=k_mask)
        return D

    key = (jax.tree_util.tree_structure(cfg), full_data)
    if key not in _INPUT_FNS:
        _INPUT_FNS[key] = jax.jit(one)
    f = _INPUT_FNS[key]
    keys = experiment.seed_keys(0, range(S + 1))
    t_first, _ = timed(f, keys[S])  # compiles on first use
    times, outs = [], []
    for s in range(S):
        t, out = timed(f, keys[s])
        times.append(t)
        outs.append(out)
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *outs)
    return block(stacked), t_first, (min(times) if full_data else None)


def _sl(W, ds, V, cfg):
    return train.train_sl(W, ds, V, cfg)[0]


def _mrp(p, key, ds, V, cfg):
    return train.train_mrp(p, key, ds, V, cfg)[0]


def _ft(W, ds, V, cfg):
    return train.train_ft(W, ds, V, cfg)[0]


def step_fns():
    """Fresh jit(vmap(...)) objects (fresh so that a monkeypatched nets.srelu is retraced)."""
    def sl(W, ds, V, cfg):
        return _sl(W, ds, V, cfg)

    def mrp(p, key, ds, V, cfg):
        return _mrp(p, key, ds, V, cfg)

    def ft(W, ds, V, cfg):
        return _ft(W, ds, V, cfg)

    return {
        "sl": (jax.jit(jax.vmap(sl, in_axes=(0, 0, 0, None))), "sl_steps"),
        "mrp": (jax.jit(jax.vmap(mrp, in_axes=(0, 0, 0, 0, None))), "mrp_steps"),
        "ft": (jax.jit(jax.vmap(ft, in_axes=(0, 0, 0, None))), "ft_steps"),
    }


def step_args(which, inp):
    if which == "sl":
        return (inp["W_sl"], inp["train"], inp["V"])
    if which == "mrp":
        return (inp["p_mrp"], inp["k_mask"], inp["pre"], inp["V"])
    return (inp["p_mrp"]["W"], inp["train"], inp["V"])


def time_steps(fn, key, which, inp, cfg, K, repeats, xla_count=True):
    """(seconds per step of the chunk, compile s, XLA flops per step per seed or None)."""
    cfgK = C.with_values(cfg, {f"train.{key}": K, "train.log_every": K})
    args = step_args(which, inp) + (cfgK,)
    compiled, t_low, t_comp = lower_compile(fn, *args)
    per_call = measure(compiled, *args, repeats=repeats, min_time=0.3, max_inner=20)
    xla = None
    if xla_count:
        cfg1 = C.with_values(cfg, {f"train.{key}": 1, "train.log_every": 1})
        c1, _, _ = lower_compile(fn, *(step_args(which, inp) + (cfg1,)))
        f1 = cost_flops(c1)
        S = jax.tree_util.tree_leaves(inp["V"])[0].shape[0]
        xla = None if f1 is None else f1 / S
    return per_call / K, t_low + t_comp, xla


def time_dots(cfg, which, inp, repeats):
    """The step's two matmuls alone, as batched einsums over the chunk: forward and kernel gradient."""
    ds = inp["pre"] if which == "mrp" else inp["train"]
    S, n, P, d = ds.x.shape
    R = (cfg.data.k if which == "sl" else cfg.k_pre) * cfg.net.m
    a = ds.x.reshape(S, n * P, d)
    w = 0.01 * jax.random.normal(jax.random.PRNGKey(3), (S, d, R), jnp.float32)
    g = jax.random.normal(jax.random.PRNGKey(4), (S, n * P, R), jnp.float32)
    fwd = jax.jit(lambda a, w: jnp.einsum("sad,sdr->sar", a, w))
    bwd = jax.jit(lambda g, a: jnp.einsum("sar,sad->srd", g, a))
    t_f = measure(fwd, a, w, repeats=repeats)
    t_b = measure(bwd, g, a, repeats=repeats)
    return t_f, t_b


def time_srelu(cfg, inp, which, repeats):
    """Forward + derivative of the sReLU alone over the step's (S, n, P, R) pre-activations."""
    ds = inp["pre"] if which == "mrp" else inp["train"]
    S, n, P, _ = ds.x.shape
    R = (cfg.data.k if which == "sl" else cfg.k_pre) * cfg.net.m
    z = jax.random.uniform(jax.random.PRNGKey(5), (S, n, P, R), jnp.float32, -0.5, 1.0)
    q, varrho = cfg.net.q, cfg.net.varrho
    f = jax.jit(jax.grad(lambda z: nets.srelu(z, q, varrho).sum()))
    return measure(f, z, repeats=repeats)


def ablate(rows, inp, cfg, K, repeats):
    """Private ablations, monkeypatched in this process only: the SL and MRP steps with the sReLU
    replaced by the identity (what the elementwise part costs), and SL with bf16 matmul inputs
    accumulated in f32 (what reduced precision would buy; not numerically equivalent)."""
    orig_srelu, orig_preact = nets.srelu, nets.preact
    try:
        nets.srelu = lambda z, q, varrho: z
        fns = step_fns()  # fresh jit objects: traced anew with the patched functions
        for row in rows:
            if row["step"] in ("sl", "mrp"):
                fn, key = fns[row["step"]]
                row["identity_ms_per_step"] = time_steps(fn, key, row["step"], inp, cfg, K, repeats,
                                                         xla_count=False)[0] * 1e3
        nets.srelu = orig_srelu
        nets.preact = lambda x, W: jnp.einsum("npd,rd->npr", x.astype(jnp.bfloat16), W.astype(jnp.bfloat16),
                                              preferred_element_type=jnp.float32)
        fn, key = step_fns()["sl"]
        rows[0]["bf16_ms_per_step"] = time_steps(fn, key, "sl", inp, cfg, K, repeats, xla_count=False)[0] * 1e3
    finally:
        nets.srelu, nets.preact = orig_srelu, orig_preact


def bench_steps(cfg, name, S, args, peak_gflops, ablations=True) -> dict:
    # K steps per timed call; fewer for configs with more FLOPs per step (at least 5)
    ratio = step_flops(cfg, "sl") / step_flops(C.Config(), "sl")  # vs the built-in default
    K = max(5, int(args.step_K / max(1.0, ratio) ** 0.5))
    with Load() as ld:
        inp, t_data_first, t_data = step_inputs(cfg, S, full_data=name == "default")
        rows = []
        fns = step_fns()
        for which, (fn, key) in fns.items():
            per_step, t_comp, xla = time_steps(fn, key, which, inp, cfg, K, args.repeats,
                                               xla_count=not args.quick)
            t_f, t_b = time_dots(cfg, which, inp, args.repeats)
            fl = step_flops(cfg, which) * S
            row = {
                "config": name, "chunk": S, "step": which, "K": K,
                "ms_per_step": per_step * 1e3, "ms_per_step_per_seed": per_step * 1e3 / S,
                "flops_counted_per_seed": fl / S, "flops_xla_per_seed": xla,
                "gflops": fl / per_step / 1e9,
                "dot_fwd_ms": t_f * 1e3, "dot_bwd_ms": t_b * 1e3,
                "dot_gflops": fl / (t_f + t_b) / 1e9,
                "step_over_dot": (fl / per_step) / (fl / (t_f + t_b)),
                "step_over_peak": (fl / per_step / 1e9) / peak_gflops,
                "dot_over_peak": (fl / (t_f + t_b) / 1e9) / peak_gflops,
                "compile_s": t_comp,
            }
            if which in ("sl", "mrp") and ablations:
                row["srelu_fwd_bwd_ms"] = time_srelu(cfg, inp, which, args.repeats) * 1e3
            rows.append(row)
        if ablations:
            ablate(rows, inp, cfg, K, args.repeats)
    for row in rows:
        row["load"] = ld.record()
        row["data_s_per_seed"] = t_data  # one seed's make_data alone (jit at a single seed)
        row["data_first_call_s"] = t_data_first
    return rows


# ---------------------------------------------------------------- 2. pipeline over chunk sizes


COMPILED: dict = {}  # (config's static part, chunk) -> (memory analysis, lower s, compile s)


def ensure_compiled(run, keys, cfg) -> dict:
    """lower() and compile() the pipeline for this chunk shape once; later calls reuse the jit cache."""
    key = (jax.tree_util.tree_structure(cfg), keys.shape[0])
    if key in COMPILED:
        return {**COMPILED[key], "compiled_before": True, "compiles_at_compile": 0}
    n0 = CLOG.count()
    compiled, t_low, t_comp = lower_compile(run, keys, cfg)
    COMPILED[key] = {"mem": mem_analysis(compiled), "lower_s": t_low, "compile_s": t_comp}
    return {**COMPILED[key], "compiled_before": False, "compiles_at_compile": CLOG.count() - n0}


def run_chunk(run, cfg, S, calls, base=0, label="") -> dict:
    """Compile jit(vmap(run_seed)) for S seeds, then run `calls` chunks of S seeds (records fetched)."""
    rec = {"label": label, "chunk": S}
    keys = [experiment.seed_keys(cfg.run.seed, range(base + i * S, base + (i + 1) * S)) for i in range(calls)]
    block(keys)
    c = ensure_compiled(run, keys[0], cfg)
    mem = c.pop("mem")
    rec.update(c)
    rec["xla_mem_mb"] = None if mem is None else mb(mem["total"])
    avail = available_bytes()
    if mem is not None and avail is not None and mem["total"] > 0.8 * avail:
        rec["skipped"] = f"needs {mb(mem['total'])} MiB, {mb(avail)} MiB available"
        return rec
    n1 = CLOG.count()
    times, outs = [], []
    with Load() as ld, PeakMem() as pm:
        for k in keys:
            t = time.perf_counter()
            outs.append(jax.device_get(block(run(k, cfg))))
            times.append(time.perf_counter() - t)
    rec.update(times_s=times, compiles_in_calls=CLOG.count() - n1, mem=pm.record(), load=ld.record())
    steady = times[1:] if len(times) > 1 else times  # one call: its time, first-call overhead included
    rec["s_per_seed"] = min(steady) / S
    rec["seeds_per_min"] = 60.0 / rec["s_per_seed"]
    if len(times) > 1:
        rec["first_minus_steady_s"] = times[0] - min(steady)
    rec["_out"] = outs[0]  # seeds base .. base + S - 1
    return rec


def strip(rec):
    return {k: v for k, v in rec.items() if not k.startswith("_")}


# ---------------------------------------------------------------- 3. vmap vs loop


def flat_scalars(out) -> np.ndarray:
    vals = []
    for method in sorted(out):
        for key in sorted(out[method]):
            if key != "lam":
                vals.append(np.asarray(out[method][key], np.float64).reshape(out[method][key].shape[0], -1))
        vals.append(np.asarray(out[method]["lam"], np.float64).reshape(out[method]["lam"].shape[0], -1))
    return np.concatenate(vals, axis=1)


def bench_loop(run, cfg, n_max, chunk_recs) -> dict:
    """Loop over seeds 0..n_max-1 calling the chunk-1 function; compare with the vmapped chunks."""
    keys = experiment.seed_keys(cfg.run.seed, range(n_max))
    block(keys)
    n0 = CLOG.count()
    times, outs = [], []
    with Load() as ld:
        for s in range(n_max):
            t = time.perf_counter()
            outs.append(jax.device_get(block(run(keys[s:s + 1], cfg))))
            times.append(time.perf_counter() - t)
    loop_rows = flat_scalars(jax.tree_util.tree_map(lambda *a: np.concatenate(a), *outs))
    rows = []
    for rec in chunk_recs:
        S = rec["chunk"]
        if S > n_max or "times_s" not in rec:
            continue
        vm = rec["times_s"][0]  # the call on seeds 0..S-1
        vrows = flat_scalars(rec["_out"])
        same = np.allclose(vrows, loop_rows[:S], rtol=1e-4, atol=1e-5, equal_nan=True)
        maxdiff = float(np.nanmax(np.abs(vrows - loop_rows[:S]))) if vrows.size else 0.0
        rows.append({"chunk": S, "loop_s": float(sum(times[:S])), "vmap_s": vm,
                     "loop_over_vmap": float(sum(times[:S])) / vm, "same_records": bool(same),
                     "max_abs_diff": maxdiff})
    return {"loop_times_s": times, "compiles_in_loop": CLOG.count() - n0, "rows": rows, "load": ld.record()}


# ---------------------------------------------------------------- 4. scaling


def bench_seed_scaling(run, cfg, seeds, chunk) -> list[dict]:
    """Run `S` seeds as a sweep does (chunks of min(S, chunk)); count compiles and time per seed."""
    rows = []
    base = 10_000
    for S in seeds:
        c = min(S, chunk)
        n_chunks = math.ceil(S / c)
        keys = [experiment.seed_keys(cfg.run.seed, range(base + i * c, base + (i + 1) * c)) for i in range(n_chunks)]
        block(keys)
        base += n_chunks * c
        n0 = CLOG.count()
        comp = ensure_compiled(run, keys[0], cfg)
        t_comp = None if comp["compiled_before"] else comp["lower_s"] + comp["compile_s"]
        mem = comp["mem"]
        n1 = CLOG.count()
        times = []
        with Load() as ld, PeakMem() as pm:
            for k in keys:
                t = time.perf_counter()
                jax.device_get(block(run(k, cfg)))
                times.append(time.perf_counter() - t)
        total = sum(times)
        rows.append({"seeds": S, "chunk": c, "chunks": n_chunks, "compile_s": t_comp,
                     "compiles_new_shape": n1 - n0, "compiles_between_chunks": CLOG.count() - n1,
                     "run_s": total, "s_per_seed": total / S, "seeds_per_min": 60 * S / total,
                     "chunk_times_s": times, "xla_mem_mb": None if mem is None else mb(mem["total"]),
                     "mem": pm.record(), "load": ld.record()})
        r = rows[-1]
        log(f"  seeds {S:4d} (chunk {c:3d} x {n_chunks:3d}): {total:7.1f} s, {r['s_per_seed']:.3f} s/seed, "
            f"compiles {r['compiles_new_shape']}+{r['compiles_between_chunks']}, "
            f"peak RSS {r['mem']['rss_peak_mb']} MiB, XLA {r['xla_mem_mb']} MiB, other cores {ld.record()['other_cores']}")
    return rows


def bench_shape_scaling(run, cfg, points, calls=2) -> list[dict]:
    rows = []
    for label, over in points:
        c = C.with_values(cfg, over) if over else cfg
        rec = run_chunk(run, c, 1, calls, base=20_000, label=label)
        rec.update(d=c.data.d, n_train=c.data.n_train, n_pretrain=c.data.n_pretrain)
        rows.append(strip(rec))
        comp = "compiled before" if rec["compiled_before"] else f"compile {rec['lower_s'] + rec['compile_s']:5.1f} s"
        log(f"  {label:18s} d={c.data.d:4d} N={c.data.n_train:5d}: {comp} "
            f"({rec['compiles_at_compile']} compile, {rec.get('compiles_in_calls')} in calls), "
            f"{rec.get('s_per_seed', float('nan')):.3f} s/seed, peak RSS {rec.get('mem', {}).get('rss_peak_mb')} MiB, "
            f"XLA {rec['xla_mem_mb']} MiB")
    return rows


# ---------------------------------------------------------------- printing


def rss_cell(mem):
    """'peak (+increase during the run)' in MiB, and the device's peak where there is one."""
    if not mem:
        return None
    cell = f"{mem['rss_peak_mb']:.0f} (+{mem['rss_increase_mb']:.0f})"
    return cell + (f" dev {mem['device_peak_mb']:.0f}" if mem.get("device_peak_mb") is not None else "")


def table(rows, cols, title):
    """Print rows (dicts) as an aligned table; cols = [(header, key, format)]."""
    cells = [[h for h, _, _ in cols]]
    for r in rows:
        line = []
        for _, key, fmt in cols:
            v = r.get(key) if not callable(key) else key(r)
            line.append("-" if v is None else (fmt.format(v) if fmt else str(v)))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    log(f"\n{title}")
    for i, line in enumerate(cells):
        log("  " + "  ".join(c.rjust(w) for c, w in zip(line, widths)))
        if i == 0:
            log("  " + "  ".join("-" * w for w in widths))


# ---------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer sizes and repeats, fewer GD steps (smoke run)")
    p.add_argument("--out", help="write all results to this JSON file")
    p.add_argument("--chunks", help="comma-separated chunk sizes for the pipeline (default: by backend and --quick)")
    p.add_argument("--scale-seeds", help="comma-separated seed counts for the scaling part (default 1,8,64[,256])")
    p.add_argument("--scale-chunk", type=int, help="chunk size of the seed-scaling part (default: 8 on CPU)")
    p.add_argument("--budget", type=float, help="seconds; optional parts (chunk 32, 256 seeds, ...) are "
                                                "skipped when they would not end within it "
                                                "(default 840, 170 with --quick)")
    p.add_argument("--peak-size", type=int, help="size of the square peak matmul (default 2048 CPU, 8192 GPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the default config (the large one is derived from it); repeatable")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    gpu = jax.default_backend() != "cpu"
    q = args.quick
    args.repeats = 2 if q else 3
    args.step_K = 10 if q else 20
    budget = args.budget or (170.0 if q else 840.0)
    install_compile_log()

    base = C.Config()
    if args.set:
        base = C.with_values(base, dict(kv.split("=", 1) for kv in args.set))
    large = C.with_values(base, {"data.d": 2 * base.data.d, "data.n_train": 2 * base.data.n_train,
                                 "data.n_pretrain": 2 * base.data.n_pretrain})
    # The chunk-size and vmap parts run the true default config, except with --quick (GD steps / 10).
    pipe_cfg = fewer_steps(base, 10) if q else base
    scale_div = 10
    scale_cfg = fewer_steps(base, scale_div)
    if args.chunks:
        chunks = [int(c) for c in args.chunks.split(",")]
        optional_chunks = []
    elif gpu:
        chunks, optional_chunks = ([1, 8, 64] if q else [1, 8, 64, 256]), ([] if q else [512, 1024])
    else:
        chunks, optional_chunks = ([1, 4] if q else [1, 2, 4, 8, 16]), ([] if q else [32])
    if args.scale_seeds:
        scale_seeds, optional_seeds = [int(s) for s in args.scale_seeds.split(",")], []
    else:
        scale_seeds = [1, 8, 64] + ([256] if gpu and q else [])
        optional_seeds = [] if q else [256] + ([1024] if gpu else [])
    scale_chunk = args.scale_chunk or (max(chunks) if q else (256 if gpu else 8))
    if q:  # reuse the pipeline's compilations: same config, chunk sizes already compiled
        scale_cfg = pipe_cfg
    # chunk sizes of the step benchmarks, per config (quick: the large config at chunk 1 only)
    if gpu:
        step_chunks = {"default": [64] if q else [1, 64], "large": [64] if q else [1, 64]}
    else:
        step_chunks = {"default": [4] if q else [1, 8], "large": [1] if q else [1, 8]}

    res = {"mode": "quick" if q else "full", "argv": sys.argv[1:], "machine": machine_info(),
           "configs": {"default": describe(base), "large": describe(large),
                       "pipeline": describe(pipe_cfg), "scaling": describe(scale_cfg)},
           "notes": [],
           "definitions": {
               "other_cores": "CPU cores used by other processes during a section (from /proc/stat minus "
                              "this process); > 0.25 flags the section as noisy",
               "flops_counted_per_seed": "4 n P d R per GD step: forward (nP,d)x(d,R) and kernel gradient "
                                         "(R,nP)x(nP,d); elementwise work, head and Lambda logging not counted",
               "dot_gflops": "the same counted FLOPs over the time of the two batched einsums alone",
               "s_per_seed": "wall seconds of one make_run call / chunk size, records fetched to the host; "
                             "from the second call when there are two",
               "xla_mem_mb": "compiled.memory_analysis(): arguments + outputs + temporaries of one call",
               "rss_peak_mb": "peak resident memory of the whole process during the calls",
               "compiles": "compilations of run_seed counted from the jax_log_compiles log"}}
    log(f"mvsim bench ({res['mode']}): jax {jax.__version__} on {res['machine']['devices']}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    log(f"  default: {describe(base)}")
    log(f"  large:   d={large.data.d}, n_train={large.data.n_train}, n_pretrain={large.data.n_pretrain}, "
        f"otherwise default")
    if pipe_cfg is not base:
        log(f"  --quick: pipeline parts use GD steps / 10 (sl {pipe_cfg.train.sl_steps}, mrp {pipe_cfg.train.mrp_steps},"
            f" ft {pipe_cfg.train.ft_steps}); the full-default time per seed is estimated from the step timings")

    def save():
        if args.out:
            res["total_wall_s"] = now()
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(args.out).with_suffix(".tmp")
            tmp.write_text(json.dumps(res, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
            tmp.replace(args.out)

    # 0. peak
    res["peak_matmul"] = peak = bench_peak(args)
    log(f"\npeak: {peak['size']}^2 f32 matmul {peak['gflops']:.1f} GFLOP/s ({peak['seconds'] * 1e3:.1f} ms), "
        + (f"{peak['gflops_highest']:.1f} GFLOP/s at precision 'highest', " if "gflops_highest" in peak else "")
        + f"other cores {peak['load']['other_cores']}")

    # 1. steps
    res["steps"] = []
    for name, cfg in (("default", base), ("large", large)):
        for S in step_chunks[name]:
            rows = bench_steps(cfg, name, S, args, peak["gflops"], ablations=not (q and name == "large"))
            res["steps"].extend(rows)
            log(f"  steps {name} chunk {S}: " + ", ".join(f"{r['step']} {r['ms_per_step_per_seed']:.2f} ms/seed"
                                                     for r in rows) + f"  (other cores {rows[0]['load']['other_cores']})")
    save()
    table(res["steps"], [
        ("config", "config", None), ("chunk", "chunk", "{}"), ("step", "step", None),
        ("ms/step", "ms_per_step", "{:.2f}"), ("ms/step/seed", "ms_per_step_per_seed", "{:.2f}"),
        ("GFLOP/s", "gflops", "{:.1f}"), ("dots GFLOP/s", "dot_gflops", "{:.1f}"),
        ("step/dots", "step_over_dot", "{:.2f}"), ("step/peak", "step_over_peak", "{:.2f}"),
        ("dots/peak", "dot_over_peak", "{:.2f}"),
        ("fwd+bwd dots ms", lambda r: r["dot_fwd_ms"] + r["dot_bwd_ms"], "{:.2f}"),
        ("sReLU f+b ms", "srelu_fwd_bwd_ms", "{:.2f}"), ("id-sReLU ms/step", "identity_ms_per_step", "{:.2f}"),
        ("bf16 ms/step", "bf16_ms_per_step", "{:.2f}"),
        ("XLA/counted", lambda r: r["flops_xla_per_seed"] / r["flops_counted_per_seed"]
         if r.get("flops_xla_per_seed") else None, "{:.2f}"),
        ("compile s", "compile_s", "{:.1f}"),
    ], "1. GD steps (train.train_* as lax.scan of K steps, vmapped over the chunk; counted FLOPs = 4 n P d R per "
       "step per seed)")

    # 2. pipeline over chunk sizes: two calls (first and steady) where they are cheap, else one
    def pipe_calls(S):
        return 2 if (q or gpu or S <= 2) else 1

    run = get_run(base)
    log(f"\n2. pipeline make_run over chunk sizes {chunks} ({'GD steps / 10' if q else 'default config'}); "
        f"compile timed via lower().compile(), then {'2 calls' if q or gpu else '2 calls up to chunk 2, 1 above'}")
    recs = []
    for S in chunks:
        rec = run_chunk(run, pipe_cfg, S, calls=pipe_calls(S), label="pipeline")
        recs.append(rec)
        log(f"  chunk {S:4d}: compile {rec['lower_s']:.1f}+{rec['compile_s']:.1f} s, calls "
            + ", ".join(f"{t:.2f}" for t in rec.get("times_s", [])) + " s"
            + (f", {rec['s_per_seed']:.3f} s/seed, {rec['seeds_per_min']:.1f} seeds/min, peak RSS "
               f"{rec['mem']['rss_peak_mb']} MiB, XLA {rec['xla_mem_mb']} MiB, other cores {rec['load']['other_cores']}"
               if "times_s" in rec else f" skipped: {rec.get('skipped')}"))
    res["pipeline"] = {"config": "pipeline", "chunks": [strip(r) for r in recs]}
    save()

    # float change: same function, same chunk shape, new float values -> no compile
    fl_cfg = C.with_values(pipe_cfg, {"data.mu": 0.05, "train.sl_lr": 2.5, "mrp.mask_keep": 0.6,
                                      "net.sigma_0": 0.02})
    n0 = CLOG.count()
    t_fl, _ = timed(run, experiment.seed_keys(0, [0]), fl_cfg)
    res["float_change"] = {"changed": {"data.mu": 0.05, "train.sl_lr": 2.5, "mrp.mask_keep": 0.6, "net.sigma_0": 0.02},
                           "chunk": 1, "compiles": CLOG.count() - n0, "call_s": t_fl}
    log(f"  float change (data.mu, train.sl_lr, mrp.mask_keep, net.sigma_0) at chunk 1: "
        f"{res['float_change']['compiles']} compiles, call {t_fl:.2f} s")

    # 3. vmap vs loop
    n_loop = max([c for c in chunks if c <= (8 if not gpu else 16)] or [1])
    loop = bench_loop(run, pipe_cfg, n_loop, recs)
    res["vmap_vs_loop"] = loop
    log(f"\n3. vmap vs Python loop over chunk-1 calls (seeds 0..{n_loop - 1}; compiles in loop: "
        f"{loop['compiles_in_loop']}, other cores {loop['load']['other_cores']})")
    save()

    # 4. scaling
    log(f"\n4a. seeds scaling (chunks of {scale_chunk}; GD steps / {scale_div}: sl {scale_cfg.train.sl_steps}, "
        f"mrp {scale_cfg.train.mrp_steps}, ft {scale_cfg.train.ft_steps})")
    res["scaling"] = {"steps_divided_by": scale_div, "chunk": scale_chunk}
    res["scaling"]["seeds"] = bench_seed_scaling(run, scale_cfg, scale_seeds, scale_chunk)
    save()
    log(f"\n4b. N and d scaling (chunk 1, GD steps / {scale_div}, 2 calls each)")
    d2 = {"data.d": large.data.d}
    n2 = {"data.n_train": large.data.n_train, "data.n_pretrain": large.data.n_pretrain}
    if q:
        points = [("default", {}), ("large (2d, 2N)", {**d2, **n2})]
    else:
        points = [("default", {}), ("2d", d2), ("2N", n2), ("large (2d, 2N)", {**d2, **n2})]
    res["scaling"]["shape"] = bench_shape_scaling(run, scale_cfg, points)
    save()

    # optional extras, within the budget
    def fits(projected):
        ok = now() + projected < budget
        if not ok:
            res["notes"].append(f"skipped an optional part projected at {projected:.0f} s "
                                f"(elapsed {now():.0f} s, budget {budget:.0f} s)")
        return ok

    last = [r for r in recs if "s_per_seed" in r]
    comp_est = max((r["lower_s"] + r["compile_s"] for r in recs), default=30.0)
    for S in optional_chunks:
        per_seed = last[-1]["s_per_seed"] if last else 10.0
        if not fits(comp_est + pipe_calls(S) * S * per_seed * 1.2):
            log(f"  chunk {S}: skipped (projected past the {budget:.0f} s budget)")
            break
        rec = run_chunk(run, pipe_cfg, S, calls=pipe_calls(S), label="pipeline")
        recs.append(rec)
        res["pipeline"]["chunks"].append(strip(rec))
        if "s_per_seed" in rec:
            last.append(rec)
            log(f"  chunk {S:4d}: compile {rec['lower_s'] + rec['compile_s']:.1f} s, {rec['s_per_seed']:.3f} s/seed")
        else:
            log(f"  chunk {S:4d}: skipped: {rec.get('skipped')}")
            break
    seed_rows = res["scaling"]["seeds"]
    for S in optional_seeds:
        per_seed = seed_rows[-1]["s_per_seed"]
        if not fits(S * per_seed * 1.2):
            log(f"  seeds {S}: skipped (projected {S * per_seed:.0f} s past the {budget:.0f} s budget)")
            continue
        seed_rows.extend(bench_seed_scaling(run, scale_cfg, [S], scale_chunk))
    save()

    # ---- summary
    ok = [r for r in recs if "s_per_seed" in r]
    best = min(ok, key=lambda r: r["s_per_seed"]) if ok else None
    res["best_chunk"] = best["chunk"] if best else None
    res["best_s_per_seed"] = best["s_per_seed"] if best else None
    if q:  # estimate the full default per seed from the step timings
        steps = {r["step"]: r for r in res["steps"] if r["config"] == "default"}
        t = base.train
        extra = sum((full - small) * steps[w]["ms_per_step_per_seed"] / 1e3 for w, full, small in (
            ("sl", t.sl_steps, pipe_cfg.train.sl_steps), ("mrp", t.mrp_steps, pipe_cfg.train.mrp_steps),
            ("ft", t.ft_steps, pipe_cfg.train.ft_steps)))
        if best:
            res["estimated_default_s_per_seed"] = best["s_per_seed"] + extra
            res["notes"].append("estimated_default_s_per_seed = best quick pipeline s/seed + the missing GD steps "
                                f"at the step benchmark's ms/step/seed (chunk {steps['sl']['chunk']})")

    # where the time of one seed goes, at the chunk sizes where steps and pipeline were both measured
    breakdown = []
    for r in ok:
        st = {x["step"]: x for x in res["steps"] if x["config"] == "default" and x["chunk"] == r["chunk"]}
        if len(st) != 3:
            continue
        t = pipe_cfg.train
        parts = {"data": st["sl"]["data_s_per_seed"],
                 "sl": t.sl_steps * st["sl"]["ms_per_step_per_seed"] / 1e3,
                 "mrp": t.mrp_steps * st["mrp"]["ms_per_step_per_seed"] / 1e3,
                 "ft": t.ft_steps * st["ft"]["ms_per_step_per_seed"] / 1e3}
        parts["rest"] = r["s_per_seed"] - sum(parts.values())
        breakdown.append({"chunk": r["chunk"], "total": r["s_per_seed"], **parts,
                          **{f"{k}_pct": 100 * v / r["s_per_seed"] for k, v in parts.items()}})
    res["pipeline"]["breakdown"] = breakdown

    table([strip(r) for r in recs], [
        ("chunk", "chunk", "{}"), ("lower s", "lower_s", "{:.1f}"), ("compile s", "compile_s", "{:.1f}"),
        ("1st call s", lambda r: r["times_s"][0] if r.get("times_s") else None, "{:.2f}"),
        ("2nd call s", lambda r: r["times_s"][1] if r.get("times_s") and len(r["times_s"]) > 1 else None, "{:.2f}"),
        ("s/seed", "s_per_seed", "{:.3f}"), ("seeds/min", "seeds_per_min", "{:.1f}"),
        ("XLA MiB", "xla_mem_mb", "{}"), ("peak RSS MiB (+run)", lambda r: rss_cell(r.get("mem")), "{}"),
        ("compiles", lambda r: f"{r['compiles_at_compile']}+{r.get('compiles_in_calls', '-')}", "{}"),
        ("other cores", lambda r: r.get("load", {}).get("other_cores"), "{}"),
    ], f"2/5. pipeline make_run, {'GD steps / 10' if q else 'default config'} "
       f"(s/seed from the 2nd call where there is one; compiles = at lower/compile + in calls)")
    if best:
        log(f"  fastest chunk: {best['chunk']} ({best['s_per_seed']:.3f} s/seed, {best['seeds_per_min']:.1f} seeds/min)")
    if "estimated_default_s_per_seed" in res:
        e = res["estimated_default_s_per_seed"]
        log(f"  estimated full default config: {e:.2f} s/seed ({60 / e:.1f} seeds/min) at the fastest chunk")
    if breakdown:
        table(breakdown, [("chunk", "chunk", "{}"), ("s/seed", "total", "{:.3f}")]
              + [(f"{k} s (%)", (lambda r, k=k: f"{r[k]:.3f} ({r[k + '_pct']:.0f}%)"), "{}")
                 for k in ("data", "sl", "mrp", "ft", "rest")],
              "   where a seed's time goes: data = make_data alone, sl/mrp/ft = steps x step time at this chunk, "
              "rest = evaluation, Lambda logging, transfers")
    table(loop["rows"], [("chunk", "chunk", "{}"), ("loop s", "loop_s", "{:.2f}"), ("vmap s", "vmap_s", "{:.2f}"),
                         ("loop/vmap", "loop_over_vmap", "{:.2f}"), ("same records", "same_records", "{}"),
                         ("max |diff|", "max_abs_diff", "{:.2g}")],
          "3. vmap over a chunk vs a loop of chunk-1 calls (first call of each chunk size; >1: vmap faster)")
    table(seed_rows, [("seeds", "seeds", "{}"), ("chunk", "chunk", "{}"), ("x", "chunks", "{}"),
                      ("compile s", "compile_s", "{:.1f}"), ("run s", "run_s", "{:.1f}"),
                      ("s/seed", "s_per_seed", "{:.3f}"), ("seeds/min", "seeds_per_min", "{:.1f}"),
                      ("compiles new/between", lambda r: f"{r['compiles_new_shape']}/{r['compiles_between_chunks']}", "{}"),
                      ("peak RSS MiB (+run)", lambda r: rss_cell(r.get("mem")), "{}"), ("XLA MiB", "xla_mem_mb", "{}"),
                      ("other cores", lambda r: r["load"]["other_cores"], "{}")],
          f"4a. seeds (GD steps / {scale_div}; compile done once per chunk shape before timing)")
    table(res["scaling"]["shape"], [
        ("point", "label", None), ("d", "d", "{}"), ("N", "n_train", "{}"),
        ("compile s", lambda r: None if r.get("compiled_before") else r["lower_s"] + r["compile_s"], "{:.1f}"),
        ("s/seed", "s_per_seed", "{:.3f}"), ("XLA MiB", "xla_mem_mb", "{}"),
        ("peak RSS MiB (+run)", lambda r: rss_cell(r.get("mem")), "{}"),
        ("compiles", lambda r: f"{r['compiles_at_compile']}+{r.get('compiles_in_calls', '-')}", "{}"),
        ("other cores", lambda r: r.get("load", {}).get("other_cores"), "{}")],
          f"4b. N and d (chunk 1, GD steps / {scale_div})")
    fc = res["float_change"]
    log(f"\ncompiles: one per shape (see 'compiles' columns); float change -> {fc['compiles']} compiles; "
        f"loop of chunk-1 calls -> {loop['compiles_in_loop']}; total run_seed compiles {CLOG.count()}")
    noisy = [s for s in (["peak"] if peak["load"]["noisy"] else [])
             + [f"steps {r['config']}/{r['chunk']}" for r in res["steps"] if r["load"]["noisy"] and r["step"] == "sl"]
             + [f"chunk {r['chunk']}" for r in recs if r.get("load", {}).get("noisy")]
             + [f"seeds {r['seeds']}" for r in seed_rows if r["load"]["noisy"]]]
    res["noisy_sections"] = noisy
    if noisy:
        log(f"WARNING: other processes used > 0.25 cores during: {', '.join(noisy)}; rerun on a quiet machine")
    for n in res["notes"]:
        log(f"note: {n}")
    log(f"total {now():.0f} s; load now {os.getloadavg()[0]:.2f}")
    save()
    if args.out:
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
