"""What every method shares on one seed: its data, its log times, its loggers and its record.

`make_data(key, cfg)` draws one seed's features and datasets; `summarize` turns a method's logs into
its record (scalars and feature tables per log time); `watcher` and `event_record` give its event
times at step resolution. The methods themselves (SL, MRP, fine-tuning, ensembles, distillation)
and the loop over them are `mvsim.methods`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mvsim import data, flow, metrics, nets
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


def sl_tables(W, V, cfg: Config):
    k, m, d = W.shape
    return metrics.feature_table(W.reshape(k * m, d), V, metrics.sl_allowed(k, m, cfg.data.L), cfg.data.L)


def sl_logger(D: Data, cfg: Config):
    """Log of one SL model at one time: feature tables, loss, accuracies."""
    q, varrho = cfg.net.q, cfg.net.varrho

    def log(W):
        logits = lambda x: nets.sl_logits(x, W, q, varrho)
        return {**sl_tables(W, D.V, cfg), "loss": nets.sl_loss(W, D.train.x, D.train.y, q, varrho),
                **evaluate(logits, D, cfg.data.mu)}
    return log


def record_floats(cfg: Config) -> int:
    """Floats of a record per log time: the feature tables (4 x k x L) and room for the scalars."""
    return 4 * cfg.data.k * cfg.data.L + 32


def sl_times(cfg: Config):
    return flow.log_times(cfg.train.checkpoints, cfg.train.sl_time)


def mrp_times(cfg: Config):
    return flow.log_times(cfg.train.checkpoints, cfg.train.mrp_time, extra=cfg.train.ft_from)


def ft_times(cfg: Config):
    return flow.log_times(cfg.train.checkpoints, cfg.train.ft_time)


def seed_keys(base_seed: int, seeds) -> jax.Array:
    """Key of seed s: fold_in(PRNGKey(base_seed), s), independent of chunking. Shape (S, 2)."""
    base = jax.random.PRNGKey(base_seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.asarray(seeds, jnp.uint32))
