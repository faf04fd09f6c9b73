"""One seed, all methods: `run_seed(key, cfg) -> record`, written for one seed.

SL, MRP pretraining and fine-tuning run on data drawn from the same features, so their
numbers compare like for like. Batch over seeds with `make_run()` (jit of vmap).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mvsim import data, flow, metrics, nets, train
from mvsim.config import Config

SCALARS = (
    "features_total", "features_captured", "features_reached", "classes_all_captured",
    "classes_one_captured", "lottery_agreement", "acc_train", "acc_multi", "acc_single", "acc_test",
    "mem_single", "purity_min", "cross_max", "final_loss", "diverged",
)
FEATURE_COLS = ("lam", "purity", "cross", "mix")  # per (checkpoint, class, feature)
EVENT_COLS = ("ev_reach", "ev_capture", "ev_fit")  # first GD times, at step resolution (see `watcher`)


class Data(NamedTuple):
    """The features and datasets of one seed."""

    V: jax.Array  # (k_pre L, d) orthonormal features
    train: data.Dataset  # labelled training set
    train_fresh: data.Dataset  # the same training samples with fresh Gaussian noise
    pre: data.Dataset  # unlabelled pretraining set over k + k_extra classes
    test_m: data.Dataset  # multi-view test set
    test_s: data.Dataset  # single-view test set


def make_data(key, cfg: Config) -> Data:
    """Features and all datasets of one seed, generated on device."""
    dc, k, kL = cfg.data, cfg.data.k, cfg.data.k * cfg.data.L
    k_feat, k_lay, k_noise, k_fresh, k_pre, k_tm, k_ts = jax.random.split(key, 7)
    V = data.make_features(k_feat, cfg.k_pre * dc.L, dc.d)
    lay = data.layouts(k_lay, dc.n_train, dc.mu, dc, k)
    return Data(
        V=V,
        train=data.render_all(k_noise, lay, V[:kL], dc),
        train_fresh=data.render_all(k_fresh, lay, V[:kL], dc),
        pre=data.dataset(k_pre, dc.n_pretrain, dc.mu, V, dc, cfg.k_pre, lo=dc.pretrain_drop),
        test_m=data.dataset(k_tm, dc.n_test, 0.0, V, dc, k),
        test_s=data.dataset(k_ts, dc.n_test, 1.0, V, dc, k),
    )


def evaluate(logits_fn, D: Data, mu) -> dict:
    """Accuracies of a classifier `logits_fn(x) -> (n, k)` on the train and test sets, and how much
    of the single-view training accuracy is memorised noise (lost when the noise is re-drawn)."""
    acc_multi = metrics.accuracy(logits_fn(D.test_m.x), D.test_m.y)
    acc_single = metrics.accuracy(logits_fn(D.test_s.x), D.test_s.y)
    single = D.train.single
    return {
        "acc_train": metrics.accuracy(logits_fn(D.train.x), D.train.y),
        "acc_multi": acc_multi,
        "acc_single": acc_single,
        "acc_test": metrics.test_accuracy(acc_multi, acc_single, mu),
        "mem_single": (metrics.accuracy(logits_fn(D.train.x), D.train.y, single)
                       - metrics.accuracy(logits_fn(D.train_fresh.x), D.train_fresh.y, single)),
    }


def summarize(logs, t, n, cfg: Config, lottery=False) -> dict:
    """The record of one method over its log times from per-time `logs` (leading axis T):
    feature tables (T, k, L) and scalars (T,). t: GD time reached (T,) or (T, R) per kernel."""
    nan = jnp.float32(jnp.nan)
    T = logs["lam"].shape[0]
    out = {key: jnp.full((T,), nan) for key in SCALARS}
    stats = jax.vmap(lambda f: metrics.detector_stats(f, cfg.metrics.capture_frac * cfg.net.varrho,
                                                      cfg.metrics.purity_max))(logs)
    out.update(stats)
    out.update({key: logs[key] for key in logs if key in SCALARS})
    lam = logs["lam"]
    if lottery:
        out["lottery_agreement"] = jax.vmap(lambda l: metrics.lottery_agreement(l, lam[0]))(lam)
    out["purity_min"] = logs["purity"].min(axis=(1, 2))
    out["cross_max"] = jnp.nanmax(logs["cross"], axis=(1, 2))
    loss = logs["loss"]
    out["final_loss"] = loss
    out["diverged"] = ~(jnp.isfinite(loss) & jnp.all(jnp.isfinite(lam), axis=(1, 2)))
    out.update({key: logs[key] for key in FEATURE_COLS})
    out["gd_time"] = t.min(axis=-1) if t.ndim == 2 else t  # per-kernel clocks: all kernels are past it
    out["step"] = n
    return out


def watcher(V, allowed, cfg: Config, y=None):
    """The event margins of one model (flow.Events): per kernel and feature, reaching the capture line
    and becoming its detector (`metrics.event_margins`); with labels y, also fitting the training
    set (accuracy >= metrics.FIT_ACC) from its logits. watch(W (R, d), logits (n, k) or None)."""
    threshold = cfg.metrics.capture_frac * cfg.net.varrho

    def watch(W, logits=None):
        out = metrics.event_margins(W, V, allowed, cfg.data.L, threshold, cfg.metrics.purity_max)
        if y is not None:
            out["fit"] = metrics.accuracy(logits, y) - metrics.FIT_ACC
        return out
    return watch


def event_record(events, cfg: Config) -> dict:
    """First GD times of a model's events: ev_reach, ev_capture (k, L), the earliest kernel's, and
    ev_fit () (NaN for a model without labels); inf: not within the horizon reached."""
    k, L = cfg.data.k, cfg.data.L
    return {"ev_reach": events["reach"].min(axis=0).reshape(k, L),
            "ev_capture": events["capture"].min(axis=0).reshape(k, L),
            "ev_fit": events.get("fit", jnp.float32(jnp.nan))}


def _sl_tables(W, V, cfg: Config):
    k, m, d = W.shape
    return metrics.feature_table(W.reshape(k * m, d), V, metrics.sl_allowed(k, m, cfg.data.L), cfg.data.L)


def _sl_logger(D: Data, cfg: Config):
    """Log of one SL model at one time: feature tables, loss, accuracies."""
    q, varrho = cfg.net.q, cfg.net.varrho

    def log(W):
        logits = lambda x: nets.sl_logits(x, W, q, varrho)
        return {**_sl_tables(W, D.V, cfg), "loss": nets.sl_loss(W, D.train.x, D.train.y, q, varrho),
                **evaluate(logits, D, cfg.data.mu)}
    return log


def sl_times(cfg: Config):
    return flow.log_times(cfg.train.checkpoints, cfg.train.sl_time)


def mrp_times(cfg: Config):
    return flow.log_times(cfg.train.checkpoints, cfg.train.mrp_time, extra=cfg.train.ft_from)


def ft_times(cfg: Config):
    return flow.log_times(cfg.train.checkpoints, cfg.train.ft_time)


def run_sl(W, D: Data, cfg: Config, teacher_logits=None):
    """The record of one SL model trained from W (distilled from teacher_logits if given).
    Its loss is the cross-entropy on the labels, also for a distilled model."""
    k, m, d = W.shape
    watch = watcher(D.V, metrics.sl_allowed(k, m, cfg.data.L), cfg, D.train.y)
    sl_watch = lambda W, logits: watch(W.reshape(k * m, d), logits)
    _, logs, t, n, ev = train.train_sl(W, D.train, cfg, sl_times(cfg), _sl_logger(D, cfg), teacher_logits,
                                       watch=sl_watch)
    return {**summarize(logs, t, n, cfg, lottery=True), **event_record(ev, cfg)}


def run_ensemble(key, D: Data, cfg: Config):
    """ensemble.size SL models from independent inits on the same data, logits averaged.

    A feature's Lambda in the ensemble is the best member's (the ensemble captured it when some
    member did), with that member's purity. Returns (record, ensemble logits on the train set at
    the horizon: the distillation targets)."""
    q, varrho = cfg.net.q, cfg.net.varrho
    sets = (D.train.x, D.train_fresh.x, D.test_m.x, D.test_s.x)

    def log(W):
        return {**_sl_tables(W, D.V, cfg), "logits": [nets.sl_logits(x, W, q, varrho) for x in sets]}

    def member(k):
        return train.train_sl(train.init_sl(k, cfg), D.train, cfg, sl_times(cfg), log)[:4]

    _, logs, t, n = jax.vmap(member)(jax.random.split(key, cfg.ensemble.size))  # leading axes (E, T)
    best = jnp.argmax(logs["lam"], axis=0)  # (T, k, L): which member holds each feature best
    pick = lambda a: jnp.take_along_axis(a, best[None], axis=0)[0]
    tables = {key: pick(logs[key]) for key in FEATURE_COLS}
    logits = [lg.mean(axis=0) for lg in logs["logits"]]  # (T, n, k) each

    evals = _evaluate_stack(logits, D, cfg)
    loss = jax.vmap(lambda lg: nets.cross_entropy(lg, D.train.y))(logits[0])
    rec = summarize({**tables, **evals, "loss": loss}, t.min(axis=0), n.max(axis=0), cfg)  # reached when all members are
    return rec, logits[0][-1]


def _evaluate_stack(logits, D: Data, cfg: Config) -> dict:
    """`evaluate` from precomputed logits on (train, train_fresh, test_m, test_s), each (T, n, k)."""
    tr, fresh, tm, ts = logits
    acc = jax.vmap(metrics.accuracy, in_axes=(0, None))
    acc_w = jax.vmap(metrics.accuracy, in_axes=(0, None, None))
    acc_multi, acc_single = acc(tm, D.test_m.y), acc(ts, D.test_s.y)
    single = D.train.single
    return {"acc_train": acc(tr, D.train.y), "acc_multi": acc_multi, "acc_single": acc_single,
            "acc_test": metrics.test_accuracy(acc_multi, acc_single, cfg.data.mu),
            "mem_single": acc_w(tr, D.train.y, single) - acc_w(fresh, D.train_fresh.y, single)}


def run_mrp(key, D: Data, cfg: Config):
    """MRP pretraining: (record, encoder W at each of `mrp_times` (T, R, d))."""
    k_init, k_mask, k_loss = jax.random.split(key, 3)
    R = cfg.k_pre * cfg.net.m
    allowed = jnp.ones((R, cfg.data.k * cfg.data.L), bool)

    def log(params, teacher_W):
        return {**metrics.feature_table(params["W"], D.V, allowed, cfg.data.L),
                "loss": train.mrp_loss_value(params, teacher_W, k_loss, D.pre, cfg), "W": params["W"]}

    _, logs, t, n, ev = train.train_mrp(train.init_mrp(k_init, cfg), k_mask, D.pre, cfg, mrp_times(cfg), log,
                                        watch=watcher(D.V, allowed, cfg))
    Ws = logs.pop("W")
    return {**summarize(logs, t, n, cfg), **event_record(ev, cfg)}, Ws


def run_ft(W, D: Data, cfg: Config):
    """Fine-tuning from encoder W (R, d): the record over `ft_times`."""
    q, varrho = cfg.net.q, cfg.net.varrho
    R = W.shape[0]
    allowed = jnp.ones((R, cfg.data.k * cfg.data.L), bool)

    def log(p):
        logits = lambda x: nets.ft_logits(p, x, q, varrho)
        return {**metrics.feature_table(p["W"], D.V, allowed, cfg.data.L),
                "loss": nets.ft_loss(p, D.train.x, D.train.y, q, varrho), **evaluate(logits, D, cfg.data.mu)}

    watch = watcher(D.V, allowed, cfg, D.train.y)
    _, logs, t, n, ev = train.train_ft(W, D.train, cfg, ft_times(cfg), log, watch=lambda p, lg: watch(p["W"], lg))
    return {**summarize(logs, t, n, cfg), **event_record(ev, cfg)}


def run_seed(key, cfg: Config) -> dict:
    """Train and evaluate every method on one seed's data, over the GD clock.

    Returns {method: {scalar or feature table: leading axis T (its log times)}} with methods
    sl, mrp, mrp_ft (one extra leading axis: one fine-tuning per `train.ft_from` time); with
    ensemble.size >= 1 also sl_ensemble, and kd with ensemble.distill."""
    k_data, k_sl, k_mrp, _, _, k_ens, k_kd = jax.random.split(key, 7)
    D = make_data(k_data, cfg)
    out = {"sl": run_sl(train.init_sl(k_sl, cfg), D, cfg)}
    out["mrp"], Ws = run_mrp(k_mrp, D, cfg)
    times = list(mrp_times(cfg))
    starts = jnp.stack([Ws[times.index(t)] for t in cfg.train.ft_from])
    out["mrp_ft"] = jax.vmap(lambda W: run_ft(W, D, cfg))(starts)
    if cfg.ensemble.size:
        out["sl_ensemble"], teacher_logits = run_ensemble(k_ens, D, cfg)
        if cfg.ensemble.distill:
            out["kd"] = run_sl(train.init_sl(k_kd, cfg), D, cfg, teacher_logits)
    return out


_run_batched = jax.jit(jax.vmap(run_seed, in_axes=(0, None)))


def make_run():
    """The jitted function (keys (S, 2), cfg) -> records batched over S seeds.

    One function for the whole process, so its compilation cache is shared: floats of `cfg`
    are traced (every float value reuses a compilation); ints and strings key the cache.
    """
    return _run_batched


def seed_keys(base_seed: int, seeds) -> jax.Array:
    """Key of seed s: fold_in(PRNGKey(base_seed), s), independent of chunking. Shape (S, 2)."""
    base = jax.random.PRNGKey(base_seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.asarray(seeds, jnp.uint32))
