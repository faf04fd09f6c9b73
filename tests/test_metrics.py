"""Metrics on hand-built inputs: Lambda for SL and MRP, capture counts, lottery, accuracies."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvsim import metrics


def basis(n_rows, d):
    return jnp.eye(d)[:n_rows]


def test_lam_sl_uses_only_each_class_own_kernels():
    k, m, L, d = 2, 3, 2, 6  # V: 6 features (k L = 4 used, 2 extra rows ignored) = basis of R^6
    V = basis(6, d)
    W = np.zeros((k, m, d), np.float32)
    W[0, 0, 0], W[0, 1, 0], W[0, 2, 1] = 0.3, 0.5, -0.2     # class 0: feature (0,0) max 0.5; (0,1) max 0
    W[1, 0, 2], W[1, 2, 3] = 0.7, 0.9                        # class 1: (1,0) 0.7, (1,1) 0.9
    W[1, 1, 0] = 5.0   # class 1's kernel on class 0's feature: not counted for SL
    W[0, 0, 4] = 9.0   # an extra feature beyond k L: never counted
    lam = np.asarray(metrics.lam_sl(jnp.asarray(W), V, L))
    np.testing.assert_allclose(lam, [[0.5, 0.0], [0.7, 0.9]])


def test_lam_sl_with_rotated_features():
    rng = np.random.default_rng(0)
    k, m, L, d = 3, 4, 2, 10
    V = np.linalg.qr(rng.standard_normal((d, k * L)))[0].T
    W = rng.standard_normal((k, m, d))
    lam = np.asarray(metrics.lam_sl(jnp.asarray(W, jnp.float32), jnp.asarray(V, jnp.float32), L))
    expected = np.array([[max(W[i, r] @ V[i * L + l] for r in range(m)) for l in range(L)] for i in range(k)])
    np.testing.assert_allclose(lam, expected, rtol=1e-5, atol=1e-6)


def test_lam_mrp_maxes_over_all_kernels():
    k, L, d = 2, 2, 5
    V = basis(5, d)
    W = np.zeros((3, d), np.float32)
    W[0, 0], W[1, 0], W[2, 3] = 0.2, 0.6, 0.4
    W[2, 1] = -0.3
    W[0, 4] = 7.0  # the fifth feature is beyond k L
    lam = np.asarray(metrics.lam_mrp(jnp.asarray(W), V, k, L))
    np.testing.assert_allclose(lam, [[0.6, 0.0], [0.0, 0.4]])
    # all kernels negative on a feature: Lambda is the largest (least negative) one
    lam = np.asarray(metrics.lam_mrp(-jnp.ones((3, d)) * jnp.asarray([[1.0], [2.0], [3.0]]), V, k, L))
    np.testing.assert_allclose(lam, -np.ones((k, L)))


def test_feature_table_purity_and_detector_counts():
    """Hand-built kernels over k = 2 classes of L = 2 orthonormal features (V = identity):
    kernel 0 = 2 v0 + 0.5 v2 (a detector of v0: cross 0.25), kernel 1 = 1.2 v1 + 1.2 v3 (a mixture
    of two classes: cross 1), kernel 2 = 1.5 v2 + 1.5 v3 (class 1's two features: mix 1, cross 0)."""
    V = jnp.eye(4)
    W = jnp.asarray([[2.0, 0.0, 0.5, 0.0], [0.0, 1.2, 0.0, 1.2], [0.0, 0.0, 1.5, 1.5]])
    allowed = jnp.ones((3, 4), bool)
    t = metrics.feature_table(W, V, allowed, 2)
    np.testing.assert_allclose(t["lam"], [[2.0, 1.2], [1.5, 1.5]])
    np.testing.assert_allclose(t["cross"], [[0.25, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(t["mix"], [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(t["purity"], [[2.0 / np.hypot(2.0, 0.5), 1 / np.sqrt(2)],
                                             [1 / np.sqrt(2), 1 / np.sqrt(2)]], rtol=1e-6)
    np.testing.assert_allclose(t["lam"], metrics.lam_mrp(W, V, 2, 2))  # Lambda as defined
    out = metrics.detector_stats(t, threshold=1.0, purity_max=0.5)
    expected = {"features_total": 4, "features_captured": 3, "features_reached": 4,
                "classes_all_captured": 1, "classes_one_captured": 1}
    assert {key: int(v) for key, v in out.items()} == expected
    # SL: a class's features may only be served by its own kernels
    sl = metrics.feature_table(W[:2], V, metrics.sl_allowed(2, 1, 2), 2)
    np.testing.assert_allclose(sl["lam"], [[2.0, 0.0], [0.0, 1.2]])  # kernel 1 is class 1's


def test_lottery_agreement():
    init = jnp.asarray([[0.1, 0.2], [0.3, 0.1], [0.05, 0.06], [0.2, 0.1]])
    final = jnp.asarray([[0.0, 1.0], [1.0, 0.0], [1.0, 0.1], [0.1, 0.9]])
    assert float(metrics.lottery_agreement(final, init)) == pytest.approx(0.5)
    assert float(metrics.lottery_agreement(init, init)) == 1.0
    L3 = jnp.asarray([[0.1, 0.3, 0.2], [0.5, 0.1, 0.0], [0.0, 0.0, 0.2]])
    assert float(metrics.lottery_agreement(L3[:, ::-1], L3)) == pytest.approx(1 / 3)


def test_accuracy():
    logits = jnp.asarray([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 5.0, 1.0], [1.0, 0.0, 0.5], [0.1, 0.0, 0.3]])
    y = jnp.asarray([0, 2, 0, 0, 1])  # right, right, wrong, right, wrong
    assert float(metrics.accuracy(logits, y)) == pytest.approx(3 / 5)
    where = jnp.asarray([True, False, True, False, True])
    assert float(metrics.accuracy(logits, y, where)) == pytest.approx(1 / 3)
    assert float(metrics.accuracy(logits, y, jnp.ones(5, bool))) == pytest.approx(3 / 5)
    assert float(metrics.accuracy(logits, y, jnp.asarray([0, 0, 1, 0, 1]))) == 0.0  # int mask works too
    assert math.isnan(float(metrics.accuracy(logits, y, jnp.zeros(5, bool))))
    # jittable, and the NaN case under jit too
    acc = jax.jit(metrics.accuracy)
    assert float(acc(logits, y, where)) == pytest.approx(1 / 3)
    assert math.isnan(float(acc(logits, y, jnp.zeros(5, bool))))


def test_test_accuracy_mixes_by_mu():
    assert float(metrics.test_accuracy(0.9, 0.5, 0.0)) == pytest.approx(0.9)
    assert float(metrics.test_accuracy(0.9, 0.5, 1.0)) == pytest.approx(0.5)
    assert float(metrics.test_accuracy(0.9, 0.5, 0.2)) == pytest.approx(0.8 * 0.9 + 0.2 * 0.5)
    out = jax.jit(metrics.test_accuracy)(jnp.asarray([1.0, 0.8]), jnp.asarray([0.5, 0.0]), 0.1)
    np.testing.assert_allclose(np.asarray(out), [0.95, 0.72], rtol=1e-6)
