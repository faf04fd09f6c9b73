"""Feature tracking and evaluation: Lambda_{i,l}, captured sets, lottery agreement, accuracy.

Lambda_{i,l} = max over kernels r of <w_r, v_{i,l}>; for SL the max runs over class i's own
kernels, for the MRP encoder over all kernels. A feature is captured when Lambda reaches
the linear regime of the smoothed ReLU: Lambda >= capture_frac * varrho.
"""

from __future__ import annotations

import jax.numpy as jnp

FIT_ACC = 0.99  # a classifier fits its training set at this accuracy (P0: 100%; a few points left at finite T)


def lam_sl(W, V, L: int):
    """SL: W (k, m, d), V (>= k L, d) -> Lambda (k, L) over each class's own kernels."""
    k, m, d = W.shape
    return jnp.einsum("imd,ild->iml", W, V[: k * L].reshape(k, L, d)).max(axis=1)


def lam_mrp(W, V, k: int, L: int):
    """Encoder: W (R, d), V (>= k L, d) -> Lambda (k, L), max over all R kernels."""
    return (W @ V[: k * L].T).max(axis=0).reshape(k, L)


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


def best_kernels(C, allowed):
    """For every feature, its best kernel and how pure it is.

    C (R, n_feat) = W @ V.T (kernels x all features, classes of L features each, in order);
    allowed (R, k L) is True where a kernel may serve a downstream feature (SL: its own class's
    kernels; MRP: all). Returns (k L,) arrays:
      lam   = max over allowed r of C[r, f]                    (Lambda, flattened)
      cross = best kernel's largest correlation with any other class's feature / lam
      mix   = best kernel's largest correlation with the same class's other features / lam
    and the best kernel's index r (k L,).
    """
    kL = allowed.shape[1]
    Ck = jnp.where(allowed, C[:, :kL], -jnp.inf)
    r = jnp.argmax(Ck, axis=0)  # (k L,)
    lam = jnp.take_along_axis(C[:, :kL], r[None], axis=0)[0]
    rows = C[r]  # (k L, n_feat)
    return lam, rows, r


def purity(rows, lam, L: int):
    """cross, mix (k L,) from the best kernels' correlations rows (k L, n_feat) and lam (k L,)."""
    kL, n_feat = rows.shape
    cls_f = jnp.arange(kL) // L
    cls_all = jnp.arange(n_feat) // L
    same = cls_f[:, None] == cls_all[None, :]
    itself = jnp.arange(kL)[:, None] == jnp.arange(n_feat)[None, :]
    denom = jnp.where(lam > 0, lam, jnp.nan)
    cross = jnp.max(jnp.where(same, -jnp.inf, rows), axis=1) / denom
    mix = jnp.max(jnp.where(same & ~itself, rows, -jnp.inf), axis=1) / denom
    return cross, mix


def feature_table(W, V, allowed, L: int) -> dict:
    """Per feature (k, L): Lambda, the best kernel's purity (Lambda / its norm), cross and mix."""
    k = allowed.shape[1] // L
    C = W @ V.T
    lam, rows, r = best_kernels(C, allowed)
    cross, mix = purity(rows, lam, L)
    norm = jnp.linalg.norm(W[r], axis=-1)
    return {"lam": lam.reshape(k, L), "purity": (lam / jnp.maximum(norm, 1e-30)).reshape(k, L),
            "cross": cross.reshape(k, L), "mix": mix.reshape(k, L)}


def sl_allowed(k: int, m: int, L: int):
    """SL: kernel i*m + r serves class i's L features only. (k m, k L) bool."""
    return (jnp.arange(k * m)[:, None] // m) == (jnp.arange(k * L)[None, :] // L)


def detector_stats(feat: dict, threshold, purity_max) -> dict:
    """Captured counts of one model at one time from `feature_table` output.

    A feature is captured when Lambda >= threshold and its best kernel is a detector of it:
    its correlation with every other class's feature is at most purity_max times Lambda.
    `features_reached` counts Lambda >= threshold alone.
    """
    lam = feat["lam"]
    reached = lam >= threshold
    captured = reached & (feat["cross"] <= purity_max)
    per_class = captured.sum(axis=1)
    return {
        "features_total": jnp.asarray(lam.size, jnp.int32),
        "features_captured": captured.sum().astype(jnp.int32),
        "features_reached": reached.sum().astype(jnp.int32),
        "classes_all_captured": (per_class == lam.shape[1]).sum().astype(jnp.int32),
        "classes_one_captured": (per_class == 1).sum().astype(jnp.int32),
    }


def event_margins(W, V, allowed, L: int, threshold, purity_max) -> dict:
    """Margins whose first crossing of 0 are a model's feature events, per kernel and feature.

    W (R, d) kernels, V (n_feat, d) all features (classes of L features each, in order), allowed
    (R, k L) as in `best_kernels`. Returns (R, k L) arrays:
      reach    C[r, f] - threshold: kernel r's correlation with feature f reaches the capture line
      capture  min(reach, purity_max C[r, f] - cross[r, f]): kernel r reached it and is a detector of
               f (cross: its largest correlation with a feature of another class), the per-kernel form
               of `detector_stats`' captured
    Kernels not allowed for a feature get -1e30 (they never cross).
    """
    C = W @ V.T  # (R, n_feat)
    R, n_feat = C.shape
    kL = allowed.shape[1]
    per_class = C.reshape(R, n_feat // L, L).max(axis=2)  # (R, classes): best feature of each class
    top = jnp.argmax(per_class, axis=1)
    top1 = per_class.max(axis=1)
    top2 = jnp.where(jnp.arange(per_class.shape[1])[None] == top[:, None], -jnp.inf, per_class).max(axis=1)
    cls = jnp.arange(kL) // L
    cross = jnp.where(cls[None] == top[:, None], top2[:, None], top1[:, None])  # (R, kL): other classes' best
    reach = C[:, :kL] - threshold
    capture = jnp.minimum(reach, purity_max * C[:, :kL] - cross)
    never = jnp.float32(-1e30)
    return {"reach": jnp.where(allowed, reach, never), "capture": jnp.where(allowed, capture, never)}
