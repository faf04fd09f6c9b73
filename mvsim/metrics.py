"""Feature tracking and evaluation: Lambda_{i,l}, captured sets, lottery agreement, accuracy.

Lambda_{i,l} = max over kernels r of <w_r, v_{i,l}>; for SL the max runs over class i's own
kernels, for the MRP encoder over all kernels. A feature is captured when Lambda reaches
the linear regime of the smoothed ReLU: Lambda >= capture_frac * varrho.
"""

from __future__ import annotations

import jax.numpy as jnp


def lam_sl(W, V, L: int):
    """SL: W (k, m, d), V (>= k L, d) -> Lambda (k, L) over each class's own kernels."""
    k, m, d = W.shape
    return jnp.einsum("imd,ild->iml", W, V[: k * L].reshape(k, L, d)).max(axis=1)


def lam_mrp(W, V, k: int, L: int):
    """Encoder: W (R, d), V (>= k L, d) -> Lambda (k, L), max over all R kernels."""
    return (W @ V[: k * L].T).max(axis=0).reshape(k, L)


def capture_stats(lam_final, lam_init, threshold) -> dict:
    """Captured-feature counts of one model: lam_final, lam_init (k, L)."""
    captured = lam_final >= threshold
    per_class = captured.sum(axis=1)
    return {
        "features_total": jnp.asarray(lam_final.size, jnp.int32),
        "features_captured": captured.sum().astype(jnp.int32),
        "classes_all_captured": (per_class == lam_final.shape[1]).sum().astype(jnp.int32),
        "classes_one_captured": (per_class == 1).sum().astype(jnp.int32),
    }


def lottery_agreement(lam_final, lam_init):
    """Share of classes whose strongest feature at the end is the strongest at initialisation."""
    return jnp.mean(jnp.argmax(lam_final, axis=1) == jnp.argmax(lam_init, axis=1))


def accuracy(logits, y, where=None):
    """Share of correct argmax predictions, optionally only over samples where `where` (NaN if none)."""
    right = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
    if where is None:
        return right.mean()
    w = where.astype(jnp.float32)
    return jnp.where(w.sum() > 0, (right * w).sum() / jnp.maximum(w.sum(), 1.0), jnp.nan)


def test_accuracy(acc_multi, acc_single, mu):
    """Accuracy on the training distribution (single-view with probability mu), from the two
    per-kind test sets: exact in expectation and less noisy than a third mixed test set."""
    return (1.0 - mu) * acc_multi + mu * acc_single
