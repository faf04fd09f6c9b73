"""Shared pieces of the benchmarks: timing, machine load, the matmul yardsticks, JSON sections.

Every benchmark script measures its yardstick in the same run as the thing it reports (a
plain matmul on the same machine, a loop over the same seeds), so that its ratios do not
depend on which machine or which day; absolute seconds do. Nothing here passes or fails.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_tree(tree: str | None) -> str:
    """Import mvsim from `tree` (a checkout; default this one) and return a description of it.

    Must run before the first `import mvsim`: the tree goes first on sys.path, ahead of the
    installed (editable) copy."""
    path = Path(tree).resolve() if tree else ROOT
    sys.path.insert(0, str(path))
    try:
        rev = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{path} ({rev or 'no git'})"


def log(*a):
    print(*a, flush=True)


def block(x):
    import jax
    return jax.block_until_ready(x)


def timed(fn, *args):
    """(seconds, output) of one call, the output ready on the host side."""
    t = time.perf_counter()
    out = block(fn(*args))
    return time.perf_counter() - t, out


def cpu_s() -> float:
    """CPU seconds this process has used (all its threads, user + system)."""
    t = os.times()
    return t.user + t.system


def best_of(fn, *args, repeats=3, min_time=0.2, max_inner=50):
    """(best per-call wall seconds over `repeats` groups of back-to-back calls, this process's CPU
    seconds per call over all of them), after one warm call."""
    t1, _ = timed(fn, *args)
    inner = max(1, min(max_inner, int(min_time / max(t1, 1e-6))))
    best, c0 = float("inf"), cpu_s()
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        block(out)
        best = min(best, (time.perf_counter() - t) / inner)
    return best, (cpu_s() - c0) / (repeats * inner)


def aot(fn, *args):
    """lower() and compile() `fn` for these arguments: (compiled, seconds). Calls of the compiled
    object never compile again, so timing them excludes compilation."""
    t = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - t


def xla_mem_mb(compiled) -> float | None:
    """XLA's static estimate of one call's memory: arguments + outputs + temporaries, MiB."""
    try:
        m = compiled.memory_analysis()
        total = sum(getattr(m, f"{k}_size_in_bytes", 0) or 0 for k in ("argument", "output", "temp"))
        return round((total - (getattr(m, "alias_size_in_bytes", 0) or 0)) / 2**20, 1)
    except Exception:  # not every backend implements it
        return None


class Load:
    """Wall time, this process's CPU cores and everybody else's, over a `with` block.

    other_cores > 0.25 means other processes competed for the CPU: wall times taken then are
    slow by an unknown factor. This process's CPU seconds (own_cores x wall) count the work done
    and suffer less (shared caches and memory bandwidth still slow it)."""

    def __enter__(self):
        self.t0, self.busy0, self.own0 = self._snap()
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
        return time.perf_counter(), busy, cpu_s()

    def __exit__(self, *exc):
        t1, busy1, own1 = self._snap()
        wall = max(t1 - self.t0, 1e-9)
        self.wall = wall
        self.cpu = own1 - self.own0
        self.own_cores = self.cpu / wall
        self.other_cores = (None if busy1 is None or self.busy0 is None
                            else max(0.0, (busy1 - self.busy0 - (own1 - self.own0)) / wall))
        return False

    def record(self) -> dict:
        return {"wall_s": round(self.wall, 2), "cpu_s": round(self.cpu, 2), "own_cores": round(self.own_cores, 2),
                "other_cores": None if self.other_cores is None else round(self.other_cores, 2)}


def machine() -> dict:
    import jax
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return {"backend": jax.default_backend(), "device": str(jax.devices()[0]),
            "device_kind": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "cpu_model": model,
            "jax": jax.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# ---------------------------------------------------------------- matmul yardsticks


def peak_gflops(size: int | None = None, repeats=3) -> dict:
    """A square f32 matmul: the machine's practical matmul rate, in this run."""
    import jax
    import jax.numpy as jnp
    size = size or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(2), (size, size), jnp.float32)
    with Load() as ld:
        t, c = best_of(jax.jit(lambda a, b: a @ b), a, b, repeats=repeats, min_time=0.3)
    return {"size": size, "ms": t * 1e3, "gflops": 2.0 * size**3 / t / 1e9,
            "gflops_per_cpu_s": 2.0 * size**3 / c / 1e9, "load": ld.record()}


def step_flops(cfg, which: str) -> float:
    """Counted matmul FLOPs of one GD step of one seed: the forward pre-activations
    (n P, d) x (d, R) and the kernel gradient (R, n P) x (n P, d), 2 n P d R each.
    n = n_pretrain for MRP, n_train for SL and FT; R = k m for SL, (k + k_extra) m otherwise.
    Elementwise work (sReLU, softmax, norms of the step rule) is not counted."""
    d = cfg.data
    n = d.n_pretrain if which == "mrp" else d.n_train
    R = (d.k if which == "sl" else cfg.k_pre) * cfg.net.m
    return 4.0 * n * d.P * d.d * R


_SAME: dict = {}


def same_shape_gflops(cfg, which: str, S: int, repeats=5) -> dict:
    """The step's two matmuls alone (forward and kernel gradient), batched over S seeds; timed
    once per shape in a process (SL, MRP and FT share theirs in the default config)."""
    import jax
    import jax.numpy as jnp
    d = cfg.data
    n = d.n_pretrain if which == "mrp" else d.n_train
    R = (d.k if which == "sl" else cfg.k_pre) * cfg.net.m
    shape = (S, n * d.P, d.d, R)
    if shape in _SAME:
        return _SAME[shape]
    x = jax.random.normal(jax.random.PRNGKey(3), (S, n * d.P, d.d), jnp.float32)
    w = 0.01 * jax.random.normal(jax.random.PRNGKey(4), (S, R, d.d), jnp.float32)
    g = jax.random.normal(jax.random.PRNGKey(5), (S, n * d.P, R), jnp.float32)
    f = jax.jit(lambda x, w, g: (jnp.einsum("sad,srd->sar", x, w), jnp.einsum("sar,sad->srd", g, x)))
    t, c = best_of(f, x, w, g, repeats=repeats)
    flops = step_flops(cfg, which) * S
    _SAME[shape] = {"ms": t * 1e3, "gflops": flops / t / 1e9, "gflops_per_cpu_s": flops / c / 1e9}
    return _SAME[shape]


# ---------------------------------------------------------------- results file and printing


def save_section(out: str | None, name: str, value: dict) -> None:
    """Set results[name] = value in the JSON file `out` (other sections kept); no-op without out."""
    if not out:
        return
    path = Path(out)
    res = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    res[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n")
    tmp.replace(path)


def table(rows: list[dict], cols: list[tuple], title: str) -> None:
    """Print rows (dicts) aligned; cols = [(header, key or callable, format or None)]."""
    cells = [[h for h, _, _ in cols]]
    for r in rows:
        line = []
        for _, key, fmt in cols:
            v = key(r) if callable(key) else r.get(key)
            line.append("-" if v is None else (fmt.format(v) if fmt else str(v)))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    log(f"\n{title}")
    for i, line in enumerate(cells):
        log("  " + "  ".join(c.rjust(w) for c, w in zip(line, widths)))
        if i == 0:
            log("  " + "  ".join("-" * w for w in widths))
