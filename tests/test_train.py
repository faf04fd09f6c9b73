"""Training loops: logging schedule, scan vs Python loop, normalised steps, SL descent, and
the subnormal pitfall of the default config (XLA:CPU flushes float32 subnormals to zero)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvsim import data, experiment, metrics, nets, train
from mvsim.config import Config, with_values


# ---------------------------------------------------------------- logging schedule


@pytest.mark.parametrize("n_steps, log_every, expected", [
    (10, 5, [0, 5, 10]),
    (10, 3, [0, 3, 6, 9, 10]),     # remainder: the last step is logged too
    (9, 3, [0, 3, 6, 9]),
    (7, 1, list(range(8))),
    (3, 5, [0, 3]),
    (0, 1, [0]),
])
def test_log_steps(n_steps, log_every, expected):
    np.testing.assert_array_equal(train.log_steps(n_steps, log_every), expected)


def toy_step(s, t):
    # depends on the state and on the step index, so a wrong t or a missed step shows
    return s * 0.9 + jnp.sin(t.astype(jnp.float32) + s[::-1])


def toy_log(s):
    return jnp.stack([s.sum(), (s ** 2).sum()])


@pytest.mark.parametrize("n_steps, log_every", [(10, 5), (10, 3), (9, 3), (7, 1), (3, 5), (0, 1)])
def test_scan_logged_equals_python_loop(n_steps, log_every):
    s0 = jnp.asarray([0.3, -1.0, 2.0])
    run = jax.jit(lambda s: train.scan_logged(toy_step, s, n_steps, log_every, toy_log))
    state, logs = run(s0)
    steps = train.log_steps(n_steps, log_every)
    assert logs.shape == (len(steps), 2)
    s, expected = s0, []
    for t in range(n_steps + 1):
        if t in steps:
            expected.append(np.asarray(toy_log(s)))
        if t < n_steps:
            s = toy_step(s, jnp.int32(t))
    np.testing.assert_allclose(np.asarray(state), np.asarray(s), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(logs), np.stack(expected), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- normalised step


step_j = jax.jit(train.normalized_step)


def test_normalized_step_moves_each_row_by_lr():
    rng = np.random.default_rng(0)
    W = jnp.asarray(0.1 * rng.standard_normal((6, 8)), jnp.float32)
    # gradients of very different sizes: the step must not depend on the size
    g = jnp.asarray(rng.standard_normal((6, 8)) * np.array([1e3, 1.0, 1e-3, 1e-6, 1e-9, 1e-12])[:, None],
                    jnp.float32)
    lr = 0.05
    W2 = np.asarray(step_j(W, g, lr, 0.0), np.float64)
    move = W2 - np.asarray(W, np.float64)
    np.testing.assert_allclose(np.linalg.norm(move, axis=1), lr, rtol=1e-5)
    gn = np.asarray(g, np.float64)
    unit = -gn / np.linalg.norm(gn, axis=1, keepdims=True)
    np.testing.assert_allclose(move / lr, unit, atol=1e-5)


def test_normalized_step_caps_the_norm():
    rng = np.random.default_rng(1)
    W = jnp.asarray(rng.standard_normal((5, 8)) * np.array([0.01, 0.1, 0.5, 0.98, 3.0])[:, None], jnp.float32)
    g = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    lr, cap = 0.05, 1.0
    free = np.asarray(step_j(W, g, lr, 0.0), np.float64)
    capped = np.asarray(step_j(W, g, lr, cap), np.float64)
    nf = np.linalg.norm(free, axis=1)
    over = nf > cap
    assert over.any() and (~over).any()
    np.testing.assert_array_equal(capped[~over], np.asarray(step_j(W, g, lr, 0.0))[~over])
    np.testing.assert_allclose(np.linalg.norm(capped[over], axis=1), cap, rtol=1e-6)
    # shrinking keeps the direction
    np.testing.assert_allclose(capped[over], free[over] * (cap / nf[over])[:, None], rtol=1e-6)


def test_zero_gradient_row_does_not_move():
    rng = np.random.default_rng(2)
    W = jnp.asarray(0.1 * rng.standard_normal((3, 8)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((3, 8)), jnp.float32).at[1].set(0.0)
    for cap in (0.0, 1.0):
        W2 = np.asarray(step_j(W, g, 0.05, cap))
        np.testing.assert_array_equal(W2[1], np.asarray(W)[1])
        assert np.all(W2[[0, 2]] != np.asarray(W)[[0, 2]])


def test_normalized_step_with_tiny_gradient():
    # Regression: ||g|| as sqrt(sum g^2) in float32 underflows for components below ~1e-19
    # (XLA:CPU also flushes subnormals), and the row then moved ~1e6 times too far. MRP
    # gradients scale like Lambda^(2q-1), so a sweep to small sigma_0 (~1e-4) reaches this.
    rng = np.random.default_rng(3)
    W = jnp.asarray(0.1 * rng.standard_normal((2, 8)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((2, 8)) * np.array([1e-22, 1.0])[:, None], jnp.float32)
    assert np.all(np.asarray(g) != 0)
    move = np.linalg.norm(np.asarray(step_j(W, g, 0.05, 0.0)) - np.asarray(W), axis=1)
    np.testing.assert_allclose(move, 0.05, rtol=1e-5)


# ---------------------------------------------------------------- SL training


@pytest.fixture(scope="module")
def tiny_sl():
    """A hand-built multi-view set (numpy, to spare the data generator's compilation): each
    sample carries its class's L features on patches 0..L-1, plus Gaussian noise."""
    cfg = with_values(Config(), {"data.k": 3, "data.L": 2, "data.d": 24, "data.P": 6, "data.n_train": 60,
                                 "net.m": 2, "net.sigma_0": 0.2, "net.varrho": 0.6,
                                 "train.sl_steps": 12, "train.log_every": 5, "train.sl_lr": 3.0})
    k, L, d, P, n = 3, 2, 24, 6, 60
    rng = np.random.default_rng(0)
    V = np.linalg.qr(rng.standard_normal((d, k * L)))[0].T
    y = np.arange(n) % k
    x = 0.05 / np.sqrt(d) * rng.standard_normal((n, P, d))
    for l in range(L):
        x[:, l] += V[y * L + l]
    ds = data.Dataset(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), jnp.zeros(n, bool),
                      -jnp.ones(n, jnp.int32))
    W0 = train.init_sl(jax.random.PRNGKey(1), cfg)
    return cfg, jnp.asarray(V, jnp.float32), ds, W0


def test_train_sl_lowers_the_loss_and_logs_lambda(tiny_sl):
    cfg, V, ds, W0 = tiny_sl
    q, varrho = cfg.net.q, cfg.net.varrho
    W, lam = jax.jit(train.train_sl)(W0, ds, V, cfg)
    loss = jax.jit(nets.sl_loss, static_argnums=3)
    l0, l1 = float(loss(W0, ds.x, ds.y, q, varrho)), float(loss(W, ds.x, ds.y, q, varrho))
    assert l1 < 0.5 * l0, (l0, l1)
    assert lam.shape == (len(train.log_steps(12, 5)), cfg.data.k, cfg.data.L)
    np.testing.assert_allclose(np.asarray(lam[0]), np.asarray(metrics.lam_sl(W0, V, cfg.data.L)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(lam[-1]), np.asarray(metrics.lam_sl(W, V, cfg.data.L)), rtol=1e-5)
    # the same as plain GD in a Python loop
    grad = jax.jit(jax.grad(nets.sl_loss), static_argnums=3)
    Wl = W0
    for _ in range(cfg.train.sl_steps):
        Wl = Wl - cfg.train.sl_lr * grad(Wl, ds.x, ds.y, q, varrho)
    np.testing.assert_allclose(np.asarray(W), np.asarray(Wl), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- the subnormal pitfall, default config


@pytest.fixture(scope="module")
def default_case():
    # defaults for d, P, k, sigma_0, q, varrho; only the sample counts are cut down
    cfg = with_values(Config(), {"data.n_train": 32, "data.n_pretrain": 32, "data.n_test": 2})
    base = Config()
    for key in ("d", "P", "k"):
        assert getattr(cfg.data, key) == getattr(base.data, key)
    assert cfg.net == base.net and cfg.mrp == base.mrp
    # only what the tests use leaves the jitted function (XLA drops the rest: less to compile)
    V, tr, pre = jax.jit(lambda key, cfg: (lambda D: (D.V, D.train, D.pre))(experiment.make_data(key, cfg)))(
        jax.random.PRNGKey(0), cfg)
    return cfg, experiment.Data(V=V, train=tr, train_fresh=None, pre=pre, test_m=None, test_s=None)


def test_default_init_correlations_are_not_zero(default_case):
    cfg, D = default_case
    k_sl, k_mrp = jax.random.split(jax.random.PRNGKey(1))
    W_sl = train.init_sl(k_sl, cfg)
    corr = np.asarray(jnp.einsum("imd,fd->imf", W_sl, D.V))
    assert np.all(corr != 0)
    W_mrp = train.init_mrp(k_mrp, cfg)["W"]
    corr = np.asarray(W_mrp @ D.V.T)
    assert corr.shape == (cfg.k_pre * cfg.net.m, cfg.k_pre * cfg.data.L)
    assert np.all(corr != 0)
    # Lambda(0) is of the order of sigma_0 and far below varrho
    lam = np.asarray(metrics.lam_sl(W_sl, D.V, cfg.data.L))
    assert np.all(lam > 0) and lam.max() < 5 * cfg.net.sigma_0


def test_default_first_step_gradients_reach_every_feature(default_case):
    cfg, D = default_case
    q, varrho, kL = cfg.net.q, cfg.net.varrho, cfg.data.k * cfg.data.L
    k_sl, k_mrp, k_mask = jax.random.split(jax.random.PRNGKey(1), 3)

    W_sl = train.init_sl(k_sl, cfg)
    g_sl = jax.jit(jax.grad(nets.sl_loss), static_argnums=3)(W_sl, D.train.x, D.train.y, q, varrho)
    proj = np.asarray(jnp.einsum("imd,fd->imf", g_sl, D.V[:kL]))
    assert np.all(np.isfinite(proj))
    assert np.all(proj != 0), f"{np.sum(proj == 0)} exact zeros"

    g, move = first_mrp_step(cfg, D, k_mrp, k_mask)
    proj = np.asarray(g @ D.V.T)
    assert np.all(np.isfinite(proj))
    assert np.all(proj != 0), f"{np.sum(proj == 0)} exact zeros"
    # and the first normalised step moves every kernel by exactly mrp_lr (no underflowed norms)
    np.testing.assert_allclose(move, cfg.train.mrp_lr, rtol=1e-4)


def first_mrp_step(cfg, D, k_mrp, k_mask):
    """The MRP kernel gradient at initialisation and how far the first normalised step moves
    each kernel (as train_mrp does it)."""
    params = train.init_mrp(k_mrp, cfg)
    keep = train.mask(k_mask, cfg.data.n_pretrain, cfg.data.P, cfg.mrp.mask_keep)
    g = jax.jit(jax.grad(nets.mrp_loss), static_argnums=(4, 6, 7))(
        params, params["W"], D.pre.x, keep, cfg.net.q, cfg.net.varrho, cfg.mrp.target, cfg.mrp.decoder)
    cap = cfg.mrp.norm_cap * cfg.net.varrho
    W1 = train.normalized_step(params["W"], g["W"], cfg.train.mrp_lr, cap)
    move = np.linalg.norm(np.asarray(W1, np.float64) - np.asarray(params["W"], np.float64), axis=1)
    return g["W"], move


def test_small_sigma_0_first_mrp_step_moves_each_kernel_by_lr(default_case):
    # Regression: the underflow of test_normalized_step_with_tiny_gradient, reached from a real
    # config: defaults with net.sigma_0 = 1e-4 (a point of the sigma_0 phase diagram). The MRP
    # gradient is ~3e-20 per component; its squared norm underflowed and the first normalised
    # step threw every kernel to the norm cap instead of moving it by mrp_lr. The data does not
    # depend on sigma_0, so the default case's data is reused.
    cfg, D = default_case
    cfg = with_values(cfg, {"net.sigma_0": 1e-4})
    g, move = first_mrp_step(cfg, D, *jax.random.split(jax.random.PRNGKey(2)))
    assert np.all(np.asarray(g) != 0)
    np.testing.assert_allclose(move, cfg.train.mrp_lr, rtol=1e-4)


def test_data_record_follows_the_attribute_protocol(default_case):
    # Regression: Data was a dict with __getattr__ = dict.__getitem__, so a missing attribute
    # raised KeyError (hasattr raised, and a Data could not leave a jitted function).
    _, D = default_case
    assert D.V is D[0]
    assert not hasattr(D, "no_such_dataset")
