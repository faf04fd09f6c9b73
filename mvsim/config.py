"""Configuration: frozen dataclasses in sections, loaded from TOML with dotted overrides.

Every config is a JAX pytree: float fields are *leaves* (traced when the config is passed
to a jitted function, so sweeping a float never recompiles), while ints, strings and bools
are static metadata (they fix shapes and control flow, and changing them compiles anew).

Each field carries its allowed range or choices and a one-line doc; `validate` checks
them and raises `ConfigError` with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import jax


class ConfigError(ValueError):
    """A bad config key or value; the message is one line meant for the user."""


def param(default, doc, lo=None, hi=None, lo_open=False, hi_open=False, choices=None, static=False):
    """A config field with its allowed range (or choices) and a one-line description.

    static=True keeps a float out of the traced leaves: GD-time horizons fix the number of
    logged checkpoints (a shape), so changing one compiles anew. A tuple field is a list of
    numbers (static), each checked against lo/hi."""
    meta = dict(doc=doc, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices, static=static)
    return field(default=default, metadata=meta)


def _pytree(cls):
    """Freeze a section and register it: floats are traced leaves, the rest is static."""
    cls = dataclass(frozen=True)(cls)
    data = [f.name for f in fields(cls) if f.type in ("float", float) and not f.metadata.get("static")]
    meta = [f.name for f in fields(cls) if f.name not in data]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


@_pytree
class DataConfig:
    k: int = param(10, "number of classes of the downstream task", lo=2)
    L: int = param(2, "discriminative features per class", lo=2)
    d: int = param(256, "patch dimension (needs d >= (k + k_extra) * L)", lo=2)
    P: int = param(16, "patches per input", lo=2)
    C_p: int = param(2, "patches occupied by each present feature", lo=1)
    k_extra: int = param(0, "extra classes seen only in the pretraining data", lo=0)
    pretrain_drop: int = param(0, "downstream classes 0..pretrain_drop-1 absent from the pretraining data", lo=0)
    s: float = param(2.0, "other-class features appear with probability s/k each", lo=0.0)
    z_own_lo: float = param(1.0, "lower end of a strong own feature's sum of z", lo=0.0)
    z_own_hi: float = param(1.5, "upper end of a strong own feature's sum of z", lo=0.0)
    z_other_lo: float = param(0.1, "lower end of an other-class feature's sum of z (multi-view)", lo=0.0)
    z_other_hi: float = param(0.4, "upper end of an other-class feature's sum of z (multi-view)", lo=0.0)
    Gamma: float = param(0.15, "upper end of other-class features' sum of z in single-view data", lo=0.0)
    rho: float = param(0.05, "sum of z of the weak own features of single-view data", lo=0.0)
    gamma: float = param(0.01, "feature noise: alpha ~ U[0, gamma] on every feature, every patch", lo=0.0)
    sigma_feat: float = param(0.05, "Gaussian noise std * sqrt(d) on patches that carry a feature", lo=0.0)
    sigma_bg: float = param(1.0, "Gaussian noise std * sqrt(d) on background patches", lo=0.0)
    mu: float = param(0.03, "probability that a sample is single-view", lo=0.0, hi=1.0)
    n_train: int = param(500, "labelled training samples (SL and fine-tuning)", lo=1)
    n_pretrain: int = param(500, "unlabelled pretraining samples (MRP)", lo=1)
    n_test: int = param(1000, "test samples of each kind (multi-view and single-view)", lo=1)


@_pytree
class NetConfig:
    q: int = param(3, "power of the smoothed ReLU near 0 (theory: q >= 3)", lo=2)
    varrho: float = param(1.0, "threshold of the smoothed ReLU's polynomial part", lo=0.0, lo_open=True)
    sigma_0: float = param(0.01, "std of the Gaussian kernel initialisation", lo=0.0, lo_open=True)
    m: int = param(10, "kernels per class (SL: m per class; MRP encoder: (k + k_extra) * m)", lo=1)


@_pytree
class MrpConfig:
    mask_keep: float = param(0.5, "probability that a patch is kept (not masked)", lo=0.0, hi=1.0,
                             lo_open=True, hi_open=True)
    masks: str = param("expected", "loss over masks: its exact expectation (closed form), or a fresh "
                       "Bernoulli mask every step (stochastic GD: meant for plain GD steps; the adaptive "
                       "step reads the masks' noise as error and shrinks)", choices=("expected", "fresh"))
    target: str = param("data2vec", "what the decoder predicts", choices=("data2vec", "mae"))
    teacher: str = param("stopgrad", "data2vec teacher: stop-gradient copy or EMA of the student",
                         choices=("stopgrad", "ema"))
    ema_time: float = param(100.0, "EMA teacher's time constant in GD time: teacher += (1 - exp(-dt / "
                            "ema_time)) (student - teacher)", lo=0.0, lo_open=True)
    decoder: str = param("diag", "linear decoder: one scalar per kernel, or a full matrix",
                         choices=("diag", "full"))
    decoder_init: float = param(1.0, "initial decoder scale b (diag) or b * identity (full)")
    decoder_lr: float = param(0.0, "decoder's rate against the kernels' (dB/dt = -decoder_lr dL/dB; 0: fixed)",
                              lo=0.0)
    solver: str = param("euler", "MRP's adaptive steps (see train.solver). Euler by default (capture times ~10% "
                        "late at delta 0.035); Bogacki-Shampine at train.rtol is validated through the capture "
                        "phase (3-4% late in 0.9x the evaluations at k = 10 and 20; docs/results.md) and becomes "
                        "the default with the k study's rerun; Dormand-Prince lands them within 1% in 1.3-1.4x "
                        "Euler's evaluations", choices=("euler", "heun", "bosh3", "dopri5"))
    step: str = param("per_kernel", "kernel steps: per-kernel adaptive with per-kernel GD clocks (exact only "
                      "for a fixed diagonal decoder and a stop-gradient data2vec teacher), the global adaptive "
                      "step, or plain GD at train.lr", choices=("per_kernel", "adaptive", "gd"))
    norm_cap: float = param(2.0, "kernel norms are projected onto a ball of this radius, in units of net.varrho "
                            "(projected GD; 0: no cap)", lo=0.0)


@_pytree
class FtConfig:
    mode: str = param("full", "fine-tune the head and the kernels, or the head only",
                      choices=("full", "head"))
    fresh: int = param(0, "fresh kernels per class added beside the pretrained encoder before fine-tuning, drawn "
                          "as SL's (N(0, sigma_0^2 I)): free to race for features pretraining never saw (0: none)",
                       lo=0)


@_pytree
class EnsembleConfig:
    size: int = param(0, "SL models on the same data averaged as 'sl_ensemble' (0: off)", lo=0)
    distill: bool = param(False, "also distil the ensemble into one SL model, method 'kd' (needs size >= 1)")
    kd_temp: float = param(1.0, "distillation temperature tau (soft targets softmax(logits / tau))",
                           lo=0.0, lo_open=True)
    kd_weight: float = param(1.0, "weight of the soft targets in the distillation loss (1 - it: labels)",
                             lo=0.0, hi=1.0)


DEFAULT_CHECKPOINTS = tuple(float(f"{c}e{e}") for e in range(0, 10) for c in (1, 3)) + (1e10,)


@_pytree
class TrainConfig:
    step: str = param("adaptive", "SL, fine-tuning, ensembles and MRP with mrp.step = 'adaptive': global "
                      "adaptive GD step, or plain GD at train.lr", choices=("adaptive", "gd"))
    solver: str = param("bosh3", "adaptive steps: 'euler' (Euler steps sized by train.delta) or an explicit "
                        "Runge-Kutta pair with error control at train.rtol: 'heun' (2nd order), 'bosh3' "
                        "(3rd order) or 'dopri5' (5th order); see mvsim/solver.py",
                        choices=("euler", "heun", "bosh3", "dopri5"))
    delta: float = param(0.035, "Euler steps: no kernel moves more than delta times its norm per step",
                         lo=0.0, hi=1.0, lo_open=True)
    rtol: float = param(5e-2, "Runge-Kutta steps: each step's local error at most rtol times each kernel's "
                        "norm (estimated by the embedded pair)", lo=0.0, hi=1.0, lo_open=True)
    icoeff: float = param(0.6, "Runge-Kutta steps: the step-size controller's integral coefficient (diffrax's "
                          "PIDController; icoeff 1, pcoeff 0: the integral controller)", lo=0.0, lo_open=True)
    pcoeff: float = param(0.2, "Runge-Kutta steps: the controller's proportional coefficient: it damps the "
                          "accept-grow-reject cycle of SL's fit (mvsim/solver.py, error_control)", lo=0.0)
    predictive: bool = param(True, "Runge-Kutta steps: also Gustafsson's predictive limit on the controller's "
                             "proposal (extrapolates shrinking steps: fewer rejected steps in SL's fit; "
                             "mvsim/solver.py, error_control)")
    dt_max: float = param(1e12, "adaptive steps: largest step in GD time", lo=0.0, lo_open=True)
    lr: float = param(10.0, "plain GD step size (train.step or mrp.step = 'gd')", lo=0.0, lo_open=True)
    sl_time: float = param(1e10, "SL's horizon in GD time (sum of step sizes); also ensembles and distillation",
                           lo=0.0, static=True)
    mrp_time: float = param(1e10, "MRP pretraining's horizon in GD time", lo=0.0, static=True)
    ft_time: float = param(1e10, "fine-tuning's horizon in GD time", lo=0.0, static=True)
    checkpoints: tuple = param(DEFAULT_CHECKPOINTS, "GD times at which every method is measured (increasing; "
                               "each method also at 0 and at its horizon)", lo=0.0, lo_open=True)
    ft_from: tuple = param((1e10,), "MRP checkpoints (GD times <= train.mrp_time) that fine-tuning starts from",
                           lo=0.0, lo_open=True)
    max_steps: int = param(20000, "most steps one training run may take; checkpoints it cannot reach are "
                           "marked unreached", lo=1)
    sl_rate: float = param(1.0, "SL's rate: dW/dt = -sl_rate grad L (also ensembles and distillation). A loss "
                           "multiplied by c is the same flow at rate c, with GD times divided by c: the "
                           "loss-scale convention made explicit", lo=0.0, lo_open=True)
    mrp_rate: float = param(1.0, "MRP's rate: d(params)/dt = -mrp_rate grad L (see train.sl_rate); the EMA "
                            "teacher's mrp.ema_time is in GD time and does not scale with it",
                            lo=0.0, lo_open=True)
    ft_lr: float = param(1.0, "fine-tuning rate of the linear head (dA/dt = -ft_lr dL/dA)", lo=0.0)
    ft_kernel_lr: float = param(1.0, "fine-tuning rate of the kernels (mode = 'full')", lo=0.0)


@_pytree
class MetricsConfig:
    capture_frac: float = param(1.0, "a feature is captured when Lambda >= capture_frac * varrho (and its "
                                "best kernel is a detector: see purity_max)", lo=0.0, lo_open=True)
    purity_max: float = param(0.5, "a captured feature's best kernel correlates with every other class's "
                              "feature at most purity_max times its correlation with the feature", lo=0.0)


@_pytree
class RunConfig:
    seed: int = param(0, "base seed; seed s of a sweep uses fold_in(PRNGKey(seed), s)", lo=0)


SECTIONS = {
    "data": DataConfig, "net": NetConfig, "mrp": MrpConfig, "ft": FtConfig,
    "train": TrainConfig, "ensemble": EnsembleConfig, "metrics": MetricsConfig, "run": RunConfig,
}


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    mrp: MrpConfig = field(default_factory=MrpConfig)
    ft: FtConfig = field(default_factory=FtConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def k_pre(self) -> int:
        """Classes in the pretraining data."""
        return self.data.k + self.data.k_extra


jax.tree_util.register_dataclass(Config, data_fields=list(SECTIONS), meta_fields=[])


# ---------------------------------------------------------------- keys and values


def all_keys() -> dict[str, dataclasses.Field]:
    """Every dotted key ('data.mu', ...) with its field."""
    return {f"{s}.{f.name}": f for s, cls in SECTIONS.items() for f in fields(cls)}


def _describe(f: dataclasses.Field) -> str:
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(repr(c) for c in m["choices"])
    kind = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true/false",
            "tuple": "a list of numbers, each"}[f.type]
    lo, hi = m.get("lo"), m.get("hi")
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if m['lo_open'] else '['}{lo}, {hi}{')' if m['hi_open'] else ']'}"
    if lo is not None:
        return f"{kind} {'>' if m['lo_open'] else '>='} {lo}"
    if hi is not None:
        return f"{kind} {'<' if m['hi_open'] else '<='} {hi}"
    return kind


def split_key_value(item: str, option: str) -> tuple[str, str]:
    """'key=value' from the command line option `option` -> (key, value), stripped."""
    if "=" not in item:
        raise ConfigError(f"{option} {item!r}: expected KEY=VALUE")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def coerce(key: str, value: Any) -> Any:
    """Convert a TOML or command-line value for `key` to the field's type, or raise ConfigError."""
    keys = all_keys()
    if key not in keys:
        raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(keys))})")
    f = keys[key]
    allowed = _describe(f)
    if isinstance(value, str) and f.type != "str":
        text = value.strip()
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"{key} = {text!r}: expected {allowed}") from None
    if f.type == "tuple":
        return _coerce_tuple(key, value, f, allowed)
    if f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    expected = {"int": int, "float": float, "str": str, "bool": bool}[f.type]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{key} = {value!r}: expected {allowed}")
    m = f.metadata
    bad = (
        (m.get("choices") and value not in m["choices"])
        or (isinstance(value, float) and not math.isfinite(value))
        or (m.get("lo") is not None and (value <= m["lo"] if m["lo_open"] else value < m["lo"]))
        or (m.get("hi") is not None and (value >= m["hi"] if m["hi_open"] else value > m["hi"]))
    )
    if bad:
        raise ConfigError(f"{key} = {value!r}: expected {allowed}")
    return value


def _coerce_tuple(key: str, value: Any, f: dataclasses.Field, allowed: str) -> tuple:
    """A non-empty, increasing list of finite numbers in the field's range, as a tuple of floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if ok:
        value = tuple(float(v) for v in value)
        m = f.metadata
        ok = all(b > a for a, b in zip(value, value[1:])) and all(
            m["lo"] is None or (v > m["lo"] if m["lo_open"] else v >= m["lo"]) for v in value)
    if not ok:
        raise ConfigError(f"{key} = {value!r}: expected {allowed}, increasing, e.g. [1e3, 1e4]")
    return value


def get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted keys set (values are coerced and checked), then validated."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        value = coerce(key, value)
        section, name = key.split(".")
        by_section.setdefault(section, {})[name] = value
    cfg = replace(cfg, **{s: replace(getattr(cfg, s), **kv) for s, kv in by_section.items()})
    validate(cfg)
    return cfg


def _separable(m: MrpConfig) -> bool:
    """Does the MRP loss separate over kernels (each kernel's gradient depends on that kernel only)?"""
    return m.target == "data2vec" and m.teacher == "stopgrad" and m.decoder == "diag" and m.decoder_lr == 0.0


def validate(cfg: Config) -> None:
    """Check every field and the relations between fields; raise ConfigError on the first problem."""
    for key in all_keys():
        coerce(key, get(cfg, key))
    d = cfg.data
    checks = [
        (d.d >= cfg.k_pre * d.L, "data.d", d.d,
         f"at least (data.k + data.k_extra) * data.L = {cfg.k_pre * d.L} (features are orthonormal)"),
        (d.P >= d.L * d.C_p, "data.P", d.P,
         f"at least data.L * data.C_p = {d.L * d.C_p} (room for the own features)"),
        (d.s <= d.k, "data.s", d.s, f"at most data.k = {d.k} (s/k is a probability)"),
        (d.pretrain_drop < cfg.k_pre, "data.pretrain_drop", d.pretrain_drop,
         f"less than data.k + data.k_extra = {cfg.k_pre} (some class must remain)"),
        (d.pretrain_drop <= d.k, "data.pretrain_drop", d.pretrain_drop, f"at most data.k = {d.k}"),
        (cfg.k_pre - d.pretrain_drop >= 1 and d.s <= cfg.k_pre - d.pretrain_drop, "data.s", d.s,
         f"at most the classes in the pretraining data ({cfg.k_pre - d.pretrain_drop})"),
        (not cfg.ensemble.distill or cfg.ensemble.size >= 1, "ensemble.distill", cfg.ensemble.distill,
         "false unless ensemble.size >= 1"),
        (d.z_own_lo <= d.z_own_hi, "data.z_own_lo", d.z_own_lo, f"<= data.z_own_hi = {d.z_own_hi}"),
        (d.z_other_lo <= d.z_other_hi, "data.z_other_lo", d.z_other_lo,
         f"<= data.z_other_hi = {d.z_other_hi}"),
        (all(t <= cfg.train.mrp_time for t in cfg.train.ft_from), "train.ft_from", list(cfg.train.ft_from),
         f"GD times at most train.mrp_time = {cfg.train.mrp_time:g}"),
        (cfg.mrp.step != "per_kernel" or cfg.mrp.masks == "expected", "mrp.step", cfg.mrp.step,
         "'adaptive' or 'gd' with mrp.masks = 'fresh' (a per-kernel re-timing of a random mask sequence "
         "is not a change of time of anything)"),
        (cfg.mrp.step != "per_kernel" or _separable(cfg.mrp), "mrp.step", cfg.mrp.step,
         "'adaptive' or 'gd' unless mrp.target = 'data2vec', mrp.teacher = 'stopgrad', mrp.decoder = 'diag' "
         "and mrp.decoder_lr = 0 (only then does the loss separate over kernels, so that per-kernel clocks "
         "are an exact change of time)"),
        (cfg.mrp.solver == "euler" or cfg.mrp.teacher == "stopgrad", "mrp.solver", cfg.mrp.solver,
         "'euler' with mrp.teacher = 'ema' (the EMA teacher relaxes exactly over each whole step, which "
         "is no Runge-Kutta stage)"),
    ]
    for ok, key, value, allowed in checks:
        if not ok:
            raise ConfigError(f"{key} = {value!r}: expected {allowed}")


# ---------------------------------------------------------------- TOML


def from_dict(tree: dict[str, Any]) -> Config:
    """Build a Config from nested TOML-style sections; unknown sections or keys raise ConfigError."""
    values = {}
    for section, table in tree.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"unknown config section '{section}' (known: {', '.join(SECTIONS)})")
        for name, value in table.items():
            values[f"{section}.{name}"] = value
    return with_values(Config(), values)


def _read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"config file '{path}' does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file '{path}' is not valid TOML: {e}") from None


def load_run_toml(path: str | Path) -> tuple[Config, dict[str, list], int | None]:
    """Read a config file: the config, its `[grid]` table ({key: values}) and `[sweep] seeds` (or None)."""
    tree = _read_toml(path)
    grid = tree.pop("grid", {})
    sweep = tree.pop("sweep", {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key} in '{path}': expected a non-empty list of values")
    seeds = sweep.get("seeds")
    if seeds is not None and (not isinstance(seeds, int) or isinstance(seeds, bool) or seeds <= 0):
        raise ConfigError(f"sweep.seeds = {seeds!r} in '{path}': expected a positive integer")
    return from_dict(tree), {k: list(v) for k, v in grid.items()}, seeds


def load_toml(path: str | Path) -> tuple[Config, dict[str, list]]:
    """Read a config file; returns the config and the grid stored in it (a `[grid]` table, if any)."""
    cfg, grid, _ = load_run_toml(path)
    return cfg, grid


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def to_toml(cfg: Config, grid: dict[str, list] | None = None, seeds: int | None = None) -> str:
    """The fully resolved config (and grid, and seed count) as TOML that `load_run_toml` reads back exactly."""
    lines = []
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]")
        for f in fields(cls):
            lines.append(f"{f.name} = {_toml_value(getattr(getattr(cfg, section), f.name))}"
                         f"  # {f.metadata['doc']}")
        lines.append("")
    if grid:
        lines.append("[grid]")
        for key, values in grid.items():
            lines.append(f'"{key}" = {_toml_value(list(values))}')
        lines.append("")
    if seeds is not None:
        lines += ["[sweep]", f"seeds = {seeds}", ""]
    return "\n".join(lines)


def run_identity(text: str) -> dict:
    """What must match to resume a results directory: the values of a `to_toml` text without its
    `[sweep]` table (the seed count may grow) and without its comments (a key's documentation may
    change between versions; a change of the code itself is provenance's to catch)."""
    tree = tomllib.loads(text)
    tree.pop("sweep", None)
    return tree
