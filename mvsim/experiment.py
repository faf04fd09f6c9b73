"""One seed, all methods: `run_seed(key, cfg) -> record`, written for one seed.

SL, MRP pretraining and fine-tuning run on data drawn from the same features, so their
numbers compare like for like. Batch over seeds with `make_run()` (jit of vmap).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mvsim import data, metrics, nets, train
from mvsim.config import Config

SCALARS = (
    "features_total", "features_captured", "classes_all_captured", "classes_one_captured",
    "lottery_agreement", "acc_train", "acc_multi", "acc_single", "acc_test", "mem_single",
    "final_loss", "diverged",
)


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
    """Accuracies of a classifier `logits_fn(x) -> (n, k)` on the train and test sets."""
    acc_multi = metrics.accuracy(logits_fn(D.test_m.x), D.test_m.y)
    acc_single = metrics.accuracy(logits_fn(D.test_s.x), D.test_s.y)
    return {
        "acc_train": metrics.accuracy(logits_fn(D.train.x), D.train.y),
        "acc_multi": acc_multi,
        "acc_single": acc_single,
        "acc_test": metrics.test_accuracy(acc_multi, acc_single, mu),
    }


def summarize(lam, threshold, loss, **extra) -> dict:
    """The scalar record of one method from its Lambda trajectory (n_logs, k, L) and final loss."""
    nan = jnp.float32(jnp.nan)
    out = {key: nan for key in SCALARS}
    out.update(metrics.capture_stats(lam[-1], lam[0], threshold))
    out.update(extra)
    out["final_loss"] = loss
    out["diverged"] = ~(jnp.isfinite(loss) & jnp.all(jnp.isfinite(lam)))
    out["lam"] = lam
    return out


def run_sl(W, D: Data, cfg: Config, teacher_logits=None):
    """The record of one SL model trained from W (distilled from teacher_logits if given).
    Its final_loss is the cross-entropy on the labels, also for a distilled model."""
    q, varrho = cfg.net.q, cfg.net.varrho
    W, lam = train.train_sl(W, D.train, D.V, cfg, teacher_logits)
    logits = lambda x: nets.sl_logits(x, W, q, varrho)
    single = D.train.single
    mem = (metrics.accuracy(logits(D.train.x), D.train.y, single)
           - metrics.accuracy(logits(D.train_fresh.x), D.train_fresh.y, single))
    rec = summarize(lam, cfg.metrics.capture_frac * varrho, nets.sl_loss(W, D.train.x, D.train.y, q, varrho),
                    lottery_agreement=metrics.lottery_agreement(lam[-1], lam[0]),
                    mem_single=mem, **evaluate(logits, D, cfg.data.mu))
    return rec


def run_ensemble(key, D: Data, cfg: Config):
    """ensemble.size SL models from independent inits on the same data, logits averaged.

    Lambda of the ensemble is the max over all members' kernels (a feature is captured by the
    ensemble when some member captured it). Returns (record, ensemble logits on the train set).
    """
    q, varrho = cfg.net.q, cfg.net.varrho
    keys = jax.random.split(key, cfg.ensemble.size)
    Ws, lams = jax.vmap(lambda k: train.train_sl(train.init_sl(k, cfg), D.train, D.V, cfg))(keys)
    logits = lambda x: jax.vmap(lambda W: nets.sl_logits(x, W, q, varrho))(Ws).mean(axis=0)
    lam = lams.max(axis=0)
    train_logits = logits(D.train.x)
    rec = summarize(lam, cfg.metrics.capture_frac * varrho,
                    nets.cross_entropy(train_logits, D.train.y), **evaluate(logits, D, cfg.data.mu))
    return rec, train_logits


def run_seed(key, cfg: Config) -> dict:
    """Train and evaluate every method on one seed's data: {method: {scalar: (), 'lam': (T, k, L)}}.

    Methods: sl, mrp, mrp_ft; with ensemble.size >= 1 also sl_ensemble, and kd with ensemble.distill."""
    k_data, k_sl, k_mrp, k_mask, k_loss, k_ens, k_kd = jax.random.split(key, 7)
    D = make_data(k_data, cfg)
    q, varrho, mu = cfg.net.q, cfg.net.varrho, cfg.data.mu
    threshold = cfg.metrics.capture_frac * varrho

    out = {"sl": run_sl(train.init_sl(k_sl, cfg), D, cfg)}

    (p_mrp, teacher_W), lam_mrp = train.train_mrp(train.init_mrp(k_mrp, cfg), k_mask, D.pre, D.V, cfg)
    out["mrp"] = summarize(lam_mrp, threshold, train.mrp_final_loss(p_mrp, teacher_W, k_loss, D.pre, cfg))

    p_ft, lam_ft = train.train_ft(p_mrp["W"], D.train, D.V, cfg)
    ft_logits = lambda x: nets.ft_logits(p_ft, x, q, varrho)
    out["mrp_ft"] = summarize(lam_ft, threshold, nets.ft_loss(p_ft, D.train.x, D.train.y, q, varrho),
                              **evaluate(ft_logits, D, mu))

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
