"""How the config scales with k, the number of classes (theory.md, "Asymptotic regime").

The theorems hold for large k with d = poly(k), m between polylog(k) and k,
sigma_0^(q-2) ~ 1/k, mu = 1/poly(k) and N ~ k^1.2/mu. `at_k(cfg, k)` carries a config
calibrated at cfg.data.k to another k by these rules, each relative to the reference (so
at_k(at_k(cfg, 20), 40) is at_k(cfg, 40) up to the rounding of N and of the horizons). One
line per rule (RULES) says why.

`python -m mvsim.regime K [--config FILE]` prints the derived config as TOML; `python -m
mvsim.sweep --set data.k=K` applies the rules to every key not set explicitly.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys

from mvsim import assumptions
from mvsim import config as C

N_POWER = 1.2  # N ~ k^1.2 / mu (P0, P1)
D_ROOM = 2  # d >= D_ROOM * (k + k_extra) * L

RULES = {
    "data.n_train": "x (k/k_ref)^1.2: N ~ k^1.2/mu at fixed mu, so single-view training points per class "
                    "(N mu / k) grow like k^0.2, as in the theory",
    "data.n_pretrain": "x (k/k_ref)^1.2: the unlabelled data grows with the labelled data",
    "data.d": "kept, or raised to the next multiple of 64 >= 2 (k + k_extra) L: each feature's share of the "
              "noise is sigma/sqrt(d), so keeping d keeps every per-feature signal-to-noise ratio; d grows "
              "only when the orthonormal features would fill more than half of the space (the rest holds the "
              "noise that SL memorises single-view points with)",
    "net.sigma_0": "x (k_ref/k)^(1/(q-2)): sigma_0^(q-2) ~ 1/k",
    "data.gamma": "x sigma_0/sigma_0,ref: the feature noise keeps its size against the initial correlations; "
                  "gamma / sigma_0 sets SL's lottery window (docs/results.md, mechanisms: at k = 10, gamma / "
                  "sigma_0 = 4, the ratio a fixed gamma reaches at k = 40, closes the window at its fit)",
    "train.mrp_time": "x (sigma_0,ref/sigma_0)^(2q-2), rounded up to 1 or 3 x 10^e, never below the reference: "
                      "MRP's hitting time with a stop-gradient teacher scales like Lambda(0)^-(2q-2)",
    "train.sl_time, train.ft_time": "x (sigma_0,ref/sigma_0)^(q-2), rounded up likewise: the cross-entropy "
                                    "methods' hitting times scale like Lambda(0)^-(q-2); SL's late phase costs "
                                    "~100 global steps per feature it gains, so running it to MRP's horizon "
                                    "(k^4 at q = 3) would cost hours at k = 40 on a CPU",
    "train.checkpoints": "1 and 3 x 10^e from 1 to the longest horizon (two per decade, as the default)",
    "train.ft_from": "MRP's horizon",
    "train.dt_max": "x the horizons' factor (keeps the largest step's share of the horizon)",
    "kept": "data.mu (what training sees of it is N mu / k, set by N), data.s and data.P (the same number of "
            "other-class features per sample and the same share of patches they occupy: s L C_p of P), "
            "data.rho and net.varrho (k^-0.01 and 1/polylog k: constants at these k), net.m (10 lies between "
            "polylog k and k for 10 <= k <= 320), data.n_test, and everything else",
}


class RegimeError(C.ConfigError):
    """A config the rules cannot carry to the asked k."""


def round_time(t: float) -> float:
    """The smallest 1 x 10^e or 3 x 10^e at or above t (t >= 1)."""
    e = math.floor(math.log10(t) + 1e-9)
    for c in (1.0, 3.0, 10.0):
        v = float(f"{c:g}e{e}")
        if v >= t * (1 - 1e-9):
            return v
    raise AssertionError(t)


def two_per_decade(horizon: float) -> tuple:
    """1, 3, 10, 30, ... up to and including `horizon` (itself a 1 or 3 x 10^e)."""
    out, e = [], 0
    while True:
        for c in (1.0, 3.0):
            v = float(f"{c:g}e{e}")
            if v > horizon * (1 + 1e-9):
                return tuple(out)
            out.append(v)
        e += 1


def scaled_sigma_0(sigma_0: float, q: int, k_ref: int, k: int) -> float:
    """sigma_0^(q-2) ~ 1/k. For q < 3 the law says nothing (q - 2 <= 0) and sigma_0 is kept."""
    if q < 3:
        return sigma_0
    return sigma_0 * (k_ref / k) ** (1.0 / (q - 2))


def time_factor(ref: C.Config, cfg: C.Config, power: str = "mrp") -> float:
    """How much longer than `ref`'s horizons `cfg`'s must be, by a hitting-time law Lambda(0)^-p
    (theory.md): p = 2q - 2 for MRP with a stop-gradient teacher ("mrp"), p = q - 2 for the
    cross-entropy methods, SL and fine-tuning ("sl"). Floored at 1; sigma_0 is the scale of
    Lambda(0) (both grow with sqrt(log(m k)) alike)."""
    p = (lambda q: 2 * q - 2) if power == "mrp" else (lambda q: q - 2)
    law = ref.net.sigma_0 ** p(ref.net.q) / cfg.net.sigma_0 ** p(cfg.net.q)
    return max(1.0, law)


def with_horizons(ref: C.Config, cfg: C.Config, keep=(), slowest: C.Config | None = None) -> C.Config:
    """`cfg` with horizons, checkpoints, ft_from and dt_max scaled from `ref`: MRP's horizon by
    MRP's law, SL's and fine-tuning's by SL's, each for the config `slowest` (default `cfg`).
    Keys in `keep` (dotted) are left as they are in `cfg`."""
    slowest = cfg if slowest is None else slowest
    f_mrp, f_sl = time_factor(ref, slowest, "mrp"), time_factor(ref, slowest, "sl")
    tr = ref.train

    def scaled(t, f):
        return round_time(t * f) if t >= 1 and f > 1 else t

    values = {
        "train.sl_time": scaled(tr.sl_time, f_sl),
        "train.mrp_time": scaled(tr.mrp_time, f_mrp),
        "train.ft_time": scaled(tr.ft_time, f_sl),
        "train.dt_max": tr.dt_max * f_mrp,
    }
    final = lambda key: values[key] if key not in keep else C.get(cfg, key)  # noqa: E731
    horizon = max(final("train.sl_time"), final("train.mrp_time"))
    if f_mrp > 1 and horizon >= 1:
        values["train.checkpoints"] = two_per_decade(horizon)
        values["train.ft_from"] = (final("train.mrp_time"),)
    return C.with_values(cfg, {key: v for key, v in values.items() if key not in keep})


def derived(cfg: C.Config, k: int) -> dict:
    """The data and net values the rules give at k, from `cfg` (calibrated at cfg.data.k)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise RegimeError(f"data.k = {k!r}: expected an integer >= 2")
    d, k_ref = cfg.data, cfg.data.k
    ratio = (k / k_ref) ** N_POWER
    k_pre = k + d.k_extra
    room = 64 * math.ceil(D_ROOM * k_pre * d.L / 64)
    return {
        "data.k": k,
        "data.n_train": max(1, round(d.n_train * ratio)),
        "data.n_pretrain": max(1, round(d.n_pretrain * ratio)),
        "data.d": room if d.d < D_ROOM * k_pre * d.L else d.d,
        "net.sigma_0": (sigma_0 := scaled_sigma_0(cfg.net.sigma_0, cfg.net.q, k_ref, k)),
        "data.gamma": d.gamma * sigma_0 / cfg.net.sigma_0,
    }


def at_k(cfg: C.Config, k: int, overrides: dict | None = None, grid: dict | None = None) -> C.Config:
    """`cfg` carried to k classes by the rules, then `overrides` ({dotted key: value}) applied.

    The horizons follow the final sigma_0 and q (an override of either moves them), and with a
    `grid` ({key: [values]}) the longest horizon any grid point needs; an override of a horizon
    key wins. Raises RegimeError (one line) when the result is not a valid config."""
    overrides = dict(overrides or {})
    base = C.with_values(cfg, {"net.q": overrides["net.q"]}) if "net.q" in overrides else cfg
    values = {key: v for key, v in derived(base, k).items() if key not in overrides}
    try:
        new = C.with_values(cfg, {**values, **overrides})
        points = [C.with_values(new, dict(zip(grid, combo))) for combo in itertools.product(*grid.values())] \
            if grid else [new]
        slowest = max(points, key=lambda p: time_factor(cfg, p))
        return with_horizons(cfg, new, keep=set(overrides), slowest=slowest)
    except C.ConfigError as e:
        raise RegimeError(f"data.k = {k}: the scaling rules give an invalid config: {e}") from None


def point(base: C.Config, values: dict, scale_k: bool = True) -> C.Config:
    """`base` with dotted `values` applied, as the sweep builds a run or a grid point: a data.k
    other than base's carries the keys not in `values` to that k by the rules (unless scale_k
    is False)."""
    k = C.coerce("data.k", values["data.k"]) if "data.k" in values else base.data.k
    if scale_k and k != base.data.k:
        return at_k(base, k, values)
    return C.with_values(base, values)


def changes(old: C.Config, new: C.Config) -> dict:
    """{dotted key: (old value, new value)} for every key that differs."""
    return {key: (C.get(old, key), C.get(new, key)) for key in C.all_keys()
            if C.get(old, key) != C.get(new, key)}


def describe(old: C.Config, new: C.Config) -> str:
    """One line: what the rules changed (checkpoints shown by their count)."""
    parts = []
    for key, (a, b) in changes(old, new).items():
        if isinstance(b, tuple) and len(b) > 3:
            parts.append(f"{key}: {len(b)} values to {b[-1]:g}")
        elif isinstance(b, float):
            parts.append(f"{key}={b:.4g}")
        else:
            parts.append(f"{key}={b}")
    return ", ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mvsim.regime",
        description="Print the config carried to k classes by the scaling rules (mvsim/regime.py), as TOML "
                    "that `python -m mvsim.sweep --config` reads, and its assumption report (which of the "
                    "theorems' assumptions it meets, mvsim/assumptions.py) on stderr.")
    p.add_argument("k", type=int, help="number of classes")
    p.add_argument("--config", help="reference config (default: the k = 10 default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key after scaling (repeatable)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="store a grid ([grid]); the horizons cover its slowest point (repeatable)")
    p.add_argument("--seeds", type=int, help="store this seed count in the TOML ([sweep] seeds)")
    p.add_argument("--rules", action="store_true", help="print the rules and exit")
    args = p.parse_args(argv)
    if args.rules:
        print("\n".join(f"{key}: {why}" for key, why in RULES.items()))
        return 0
    try:
        ref = C.load_toml(args.config)[0] if args.config else C.Config()
        values = {key: C.coerce(key, v) for key, v in (C.split_key_value(item, "--set") for item in args.set)}
        grid = {key: [C.coerce(key, v) for v in vals.split(",")]
                for key, vals in (C.split_key_value(item, "--grid") for item in args.grid)}
        cfg = at_k(ref, args.k, values, grid)
    except C.ConfigError as e:
        print(f"mvsim.regime: {e}", file=sys.stderr)
        return 2
    print(f"# k = {args.k}, derived from k = {ref.data.k} by mvsim/regime.py: {describe(ref, cfg)}")
    print(C.to_toml(cfg, grid, seeds=args.seeds))
    print(f"Assumption report (mvsim/assumptions.py) of the config at k = {args.k}:\n"
          + "\n".join(assumptions.markdown(cfg)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
