"""The table of methods: each training method declared once, and the loop that runs them on a seed.

A `Method` holds everything the rest of mvsim reads about a method: how it runs on one seed (`run`),
when it is logged (`times`), whether a config asks for it (`enabled`), how many runs it makes per seed
(`starts`: one per train.ft_from for fine-tuning), what it costs in memory (`width`, `logged`: the
sweep's estimates) and how it looks in figures (`label`, `colour`, `marker`, `on_time_figure`).
`run_seed(key, cfg)` runs every enabled method of `METHODS` in order; `make_run()` is its jit(vmap)
over seeds. Adding a method is one runner function and one entry in `METHODS` (README, "Adding a
method"); `register` adds one from outside the package (tests, scripts).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mvsim import experiment as E
from mvsim import metrics, nets, train
from mvsim.config import Config

def run_sl(W, D: E.Data, cfg: Config, teacher_logits=None):
    """The record of one SL model trained from W (distilled from teacher_logits if given).
    Its loss is the cross-entropy on the labels, also for a distilled model."""
    k, m, d = W.shape
    watch = E.watcher(D.V, metrics.sl_allowed(k, m, cfg.data.L), cfg, D.train.y)
    sl_watch = lambda W, logits: watch(W.reshape(k * m, d), logits)
    _, logs, t, n, ev = train.train_sl(W, D.train, cfg, E.sl_times(cfg), E.sl_logger(D, cfg), teacher_logits,
                                       watch=sl_watch)
    return {**E.summarize(logs, t, n, cfg, lottery=True), **E.event_record(ev, cfg)}


def run_ensemble(key, D: E.Data, cfg: Config):
    """ensemble.size SL models from independent inits on the same data, logits averaged.

    A feature's Lambda in the ensemble is the best member's (the ensemble captured it when some
    member did), with that member's purity. Returns (record, ensemble logits on the train set at
    the horizon: the distillation targets)."""
    q, varrho = cfg.net.q, cfg.net.varrho
    sets = (D.train.x, D.train_fresh.x, D.test_m.x, D.test_s.x)

    def log(W):
        return {**E.sl_tables(W, D.V, cfg), "logits": [nets.sl_logits(x, W, q, varrho) for x in sets]}

    def member(k):
        return train.train_sl(train.init_sl(k, cfg), D.train, cfg, E.sl_times(cfg), log)[:4]

    _, logs, t, n = jax.vmap(member)(jax.random.split(key, cfg.ensemble.size))  # leading axes (E, T)
    best = jnp.argmax(logs["lam"], axis=0)  # (T, k, L): which member holds each feature best
    pick = lambda a: jnp.take_along_axis(a, best[None], axis=0)[0]
    tables = {key: pick(logs[key]) for key in E.FEATURE_COLS}
    logits = [lg.mean(axis=0) for lg in logs["logits"]]  # (T, n, k) each

    evals = _evaluate_stack(logits, D, cfg)
    loss = jax.vmap(lambda lg: nets.cross_entropy(lg, D.train.y))(logits[0])
    rec = E.summarize({**tables, **evals, "loss": loss}, t.min(axis=0), n.max(axis=0), cfg)  # reached when all members are
    return rec, logits[0][-1]


def _evaluate_stack(logits, D: E.Data, cfg: Config) -> dict:
    """`evaluate` from precomputed logits on (train, train_fresh, test_m, test_s), each (T, n, k)."""
    tr, fresh, tm, ts = logits
    acc = jax.vmap(metrics.accuracy, in_axes=(0, None))
    acc_w = jax.vmap(metrics.accuracy, in_axes=(0, None, None))
    acc_multi, acc_single = acc(tm, D.test_m.y), acc(ts, D.test_s.y)
    single = D.train.single
    return {"acc_train": acc(tr, D.train.y), "acc_multi": acc_multi, "acc_single": acc_single,
            "acc_test": metrics.test_accuracy(acc_multi, acc_single, cfg.data.mu),
            "mem_single": acc_w(tr, D.train.y, single) - acc_w(fresh, D.train_fresh.y, single)}


def run_mrp(key, D: E.Data, cfg: Config):
    """MRP pretraining: (record, encoder W at each of `mrp_times` (T, R, d))."""
    k_init, k_mask, k_loss = jax.random.split(key, 3)
    R = cfg.k_pre * cfg.net.m
    allowed = jnp.ones((R, cfg.data.k * cfg.data.L), bool)

    def log(params, teacher_W):
        return {**metrics.feature_table(params["W"], D.V, allowed, cfg.data.L),
                "loss": train.mrp_loss_value(params, teacher_W, k_loss, D.pre, cfg), "W": params["W"]}

    _, logs, t, n, ev = train.train_mrp(train.init_mrp(k_init, cfg), k_mask, D.pre, cfg, E.mrp_times(cfg), log,
                                        watch=E.watcher(D.V, allowed, cfg))
    Ws = logs.pop("W")
    return {**E.summarize(logs, t, n, cfg), **E.event_record(ev, cfg)}, Ws


def run_ft(W, D: E.Data, cfg: Config):
    """Fine-tuning from encoder W (R, d): the record over `ft_times`."""
    q, varrho = cfg.net.q, cfg.net.varrho
    R = W.shape[0]
    allowed = jnp.ones((R, cfg.data.k * cfg.data.L), bool)

    def log(p):
        logits = lambda x: nets.ft_logits(p, x, q, varrho)
        return {**metrics.feature_table(p["W"], D.V, allowed, cfg.data.L),
                "loss": nets.ft_loss(p, D.train.x, D.train.y, q, varrho), **E.evaluate(logits, D, cfg.data.mu)}

    watch = E.watcher(D.V, allowed, cfg, D.train.y)
    _, logs, t, n, ev = train.train_ft(W, D.train, cfg, E.ft_times(cfg), log, watch=lambda p, lg: watch(p["W"], lg))
    return {**E.summarize(logs, t, n, cfg), **E.event_record(ev, cfg)}


# ---------------------------------------------------------------- the table


def _always(cfg: Config) -> bool:
    return True


def _nothing(cfg: Config) -> int:
    return 0


@dataclass(frozen=True)
class Method:
    """One training method, as every part of mvsim sees it.

    run(key, D, cfg, before) -> (record, handoff): the method on one seed. D: `experiment.Data`;
        before: {name: handoff} of the enabled methods above it in the table (MRP hands its encoders
        to fine-tuning, the ensemble its logits to distillation). The record is
        `experiment.summarize`'s dict with leading axis T = len(times(cfg)) (and, with `starts`, a
        first axis of one run per start), plus `experiment.event_record`'s event times.
    times(cfg): its log times (GD time), static.
    key_slot: which key of the seed it draws from: jax.random.split(seed key, 7)[slot] for slots < 7
        (0 is the data's; 4 is free), fold_in(seed key, slot) beyond; fixed, so that adding a
        method never moves another method's numbers.
    enabled(cfg): whether a config runs it.
    starts(cfg): None (one run per seed) or the MRP times it starts from, one run each (the tables'
        ft_from column).
    width(cfg): samples x kernels of its widest forward pass (the pre-activations that dominate
        memory at large k); logged(cfg): floats it keeps per seed beyond its records (MRP's encoders
        at every log time, twice: its loop keeps them until the logs are taken; the ensemble's
        members and logits).
    label, colour, marker: its look in every figure (Okabe-Ito colours: colour-blind safe);
        on_time_figure: drawn in the time figure (time.png).
    """

    name: str
    run: Callable
    times: Callable[[Config], np.ndarray]
    key_slot: int
    label: str
    colour: str
    marker: str
    enabled: Callable[[Config], bool] = _always
    starts: Callable[[Config], tuple] | None = None
    width: Callable[[Config], int] = _nothing
    logged: Callable[[Config], int] = _nothing
    on_time_figure: bool = False

    def runs(self, cfg: Config) -> int:
        """Runs per seed: one per start time, else one."""
        return len(self.starts(cfg)) if self.starts else 1


def _sl_width(cfg: Config) -> int:
    return max(cfg.data.n_train, cfg.data.n_test) * cfg.data.k * cfg.net.m


def _encoder(cfg: Config) -> int:
    return cfg.k_pre * cfg.net.m


def _mrp_logged(cfg: Config) -> int:
    """MRP's encoder at every log time, twice: kept by the per-kernel loop (`flow._run_rows`) and
    logged for fine-tuning."""
    return 2 * len(E.mrp_times(cfg)) * _encoder(cfg) * cfg.data.d


def _ensemble_logged(cfg: Config) -> int:
    d, T, size = cfg.data, len(E.sl_times(cfg)), cfg.ensemble.size
    members = size * T * E.record_floats(cfg)
    logits = size * T * (2 * d.n_train + 2 * d.n_test) * d.k
    return members + logits


def _sl(key, D, cfg, before):
    return run_sl(train.init_sl(key, cfg), D, cfg), None


def _mrp(key, D, cfg, before):
    return run_mrp(key, D, cfg)


def _mrp_ft(key, D, cfg, before):
    """Fine-tuning from MRP's encoder at each train.ft_from, with ft.fresh fresh kernels per class
    (SL's initialisation, from this method's key) beside the pretrained ones."""
    times = list(E.mrp_times(cfg))
    starts = jnp.stack([before["mrp"][times.index(t)] for t in cfg.train.ft_from])
    if cfg.ft.fresh:
        fresh = cfg.net.sigma_0 * jax.random.normal(key, (cfg.data.k * cfg.ft.fresh, cfg.data.d))
        starts = jnp.concatenate([starts, jnp.broadcast_to(fresh, (starts.shape[0],) + fresh.shape)], axis=1)
    return jax.vmap(lambda W: run_ft(W, D, cfg))(starts), None


def _kd(key, D, cfg, before):
    return run_sl(train.init_sl(key, cfg), D, cfg, before["sl_ensemble"]), None


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sl", _sl, E.sl_times, 1, "SL", "#D55E00", "o", width=_sl_width, on_time_figure=True),
    Method("mrp", _mrp, E.mrp_times, 2, "MRP (pretrained)", "#56B4E9", "s",
           width=lambda cfg: cfg.data.n_pretrain * _encoder(cfg), logged=_mrp_logged, on_time_figure=True),
    Method("mrp_ft", _mrp_ft, E.ft_times, 3, "MRP+FT", "#0072B2", "^", starts=lambda cfg: tuple(cfg.train.ft_from),
           width=lambda cfg: (max(cfg.data.n_train * len(cfg.train.ft_from), cfg.data.n_test)
                              * (_encoder(cfg) + cfg.data.k * cfg.ft.fresh)),
           on_time_figure=True),
    Method("sl_ensemble", lambda key, D, cfg, before: run_ensemble(key, D, cfg), E.sl_times, 5, "SL ensemble",
           "#E69F00", "D", enabled=lambda cfg: cfg.ensemble.size > 0,
           width=lambda cfg: _sl_width(cfg) * cfg.ensemble.size, logged=_ensemble_logged),
    Method("kd", _kd, E.sl_times, 6, "SL distilled from ensemble", "#CC79A7", "v",
           enabled=lambda cfg: cfg.ensemble.size > 0 and cfg.ensemble.distill, width=_sl_width),
)}


def register(method: Method) -> Method:
    """Add (or replace) a method of the table from outside the package; returns it."""
    METHODS[method.name] = method
    return method


def enabled(cfg: Config) -> list[Method]:
    """The methods a config runs, in table order."""
    return [m for m in METHODS.values() if m.enabled(cfg)]


def _key(seed_key, slot: int):
    return jax.random.split(seed_key, 7)[slot] if slot < 7 else jax.random.fold_in(seed_key, slot)


def run_seed(key, cfg: Config, methods: tuple[Method, ...] | None = None) -> dict:
    """Train and evaluate every enabled method on one seed's data, over the GD clock.

    Returns {method name: record} (`Method.run`); all methods see the same data (key slot 0)."""
    D = E.make_data(_key(key, 0), cfg)
    out, handoffs = {}, {}
    for m in (enabled(cfg) if methods is None else [m for m in methods if m.enabled(cfg)]):
        out[m.name], handoffs[m.name] = m.run(_key(key, m.key_slot), D, cfg, handoffs)
    return out


@functools.lru_cache(maxsize=None)
def _batched(methods: tuple[Method, ...]):
    return jax.jit(jax.vmap(functools.partial(run_seed, methods=methods), in_axes=(0, None)))


def make_run():
    """The jitted function (keys (S, 2), cfg) -> records batched over S seeds, for the table as it is.

    One function per table, so its compilation cache is shared by every call: floats of `cfg` are
    traced (every float value reuses a compilation); ints and strings key the cache."""
    return _batched(tuple(METHODS.values()))
