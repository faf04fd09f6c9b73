"""Training loops on the GD clock: SL by plain GD equals a Python loop, adaptive SL lowers the
loss and lands on its checkpoints, MRP/FT record their clocks, and the subnormal pitfall of the
default config (XLA:CPU flushes float32 subnormals to zero)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvsim import data, experiment, flow, metrics, nets, train
from mvsim.config import Config, with_values


# ---------------------------------------------------------------- SL training


@pytest.fixture(scope="module")
def tiny_sl():
    """A hand-built multi-view set (numpy, to spare the data generator's compilation): each
    sample carries its class's L features on patches 0..L-1, plus Gaussian noise."""
    cfg = with_values(Config(), {"data.k": 3, "data.L": 2, "data.d": 24, "data.P": 6, "data.n_train": 60,
                                 "net.m": 2, "net.sigma_0": 0.2, "net.varrho": 0.6, "train.lr": 3.0})
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


def lam_log(V, L):
    return lambda W: metrics.lam_sl(W, V, L)


@pytest.mark.parametrize("elements", [2**20, 500])  # 1 block; 5 blocks of 12 samples (12 P R = 432)
def test_train_sl_by_plain_gd_equals_a_python_loop(tiny_sl, monkeypatch, elements):
    monkeypatch.setattr(train, "BLOCK_ELEMENTS", elements)
    monkeypatch.setattr(train, "UNBLOCKED_UP_TO", elements)
    cfg, V, ds, W0 = tiny_sl
    cfg = with_values(cfg, {"train.step": "gd"})
    q, varrho = cfg.net.q, cfg.net.varrho
    times = np.array([0.0, 15.0, 36.0])  # 5 and 12 steps of lr 3 (the horizon is a multiple of lr)
    run = jax.jit(lambda W: train.train_sl(W, ds, cfg, times, lam_log(V, cfg.data.L)))
    c, lam, t, n, _ = run(W0)
    np.testing.assert_array_equal(np.asarray(n), [0, 5, 12])
    np.testing.assert_allclose(np.asarray(t), times, rtol=1e-6)
    grad = jax.jit(jax.grad(nets.sl_loss), static_argnums=3)
    Wl, logged = W0, [metrics.lam_sl(W0, V, cfg.data.L)]
    for i in range(12):
        Wl = Wl - cfg.train.lr * grad(Wl, ds.x, ds.y, q, varrho)
        if i + 1 == 5:
            logged.append(metrics.lam_sl(Wl, V, cfg.data.L))
    logged.append(metrics.lam_sl(Wl, V, cfg.data.L))
    np.testing.assert_allclose(np.asarray(c.state), np.asarray(Wl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(lam), np.stack(logged), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("nb", [2, 7])  # 7 blocks of 9 samples: 3 padding samples
def test_blocked_gradients_are_the_full_batch_gradients(tiny_sl, nb):
    """Each method's gradient summed over sample blocks (with zero padding) equals the full-batch
    gradient of its mean loss, and the per-sample aux (here each sample's patch sum) comes back in
    order, without the padding."""
    cfg, V, ds, W0 = tiny_sl
    q, vr = cfg.net.q, cfg.net.varrho
    n = ds.x.shape[0]
    teacher = jax.random.normal(jax.random.PRNGKey(2), (n, 3))
    R, d = 6, ds.x.shape[-1]
    Wm = W0.reshape(R, d) * 3.0  # larger: pre-activations on every piece of sReLU
    pre = np.asarray(nets.preact(ds.x, Wm))
    assert (pre < 0).any() and ((pre > 0) & (pre < vr)).any() and (pre > vr).any()
    keep = train.mask(jax.random.PRNGKey(3), n, ds.x.shape[1], 0.5)
    mrp = {"W": Wm, "B": jnp.linspace(0.5, 1.5, R)}
    ft = {"W": Wm, "A": jax.random.normal(jax.random.PRNGKey(4), (3, R))}
    cases = [  # (loss of (params, x, y, extra), params, extra)
        (lambda W, x, y, t: nets.cross_entropy(nets.sl_logits(x, W, q, vr), y), W0, None),
        (lambda W, x, y, t: nets.distill_loss(W, x, y, t, q, vr, 2.0, 0.5), W0, teacher),
        (lambda p, x, y, t: nets.mrp_loss_expected(p, None, x, 0.5, q, vr, "data2vec", "diag"), mrp, None),
        (lambda p, x, y, t: nets.mrp_loss(p, None, x, t, q, vr, "data2vec", "diag"), mrp, keep),
        (lambda p, x, y, t: nets.ft_loss(p, x, y, q, vr), ft, None),
    ]
    for loss, params, extra in cases:
        full = jax.grad(loss)(params, ds.x, ds.y, extra)
        blocks = train.sample_blocks((ds.x, ds.y, extra), nb)
        g, aux = train.blocked_grad(lambda p, b: (loss(p, *b), b[0].sum(axis=(1, 2))), params, blocks, n)
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(full)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-9)
        np.testing.assert_allclose(np.asarray(aux), np.asarray(ds.x.sum(axis=(1, 2))), rtol=1e-6)


def test_blocks_count_pre_activations():
    cpu = jax.default_backend() == "cpu"
    assert train.n_blocks(500, 16, 100) == 1  # k = 10: small enough for one block
    assert train.n_blocks(6063, 16, 800) == (75 if cpu else 1)  # k = 80: blocks of 81 samples
    assert train.n_blocks(3, 16, 10**6) == (3 if cpu else 1)  # at most one per sample


def test_adaptive_sl_lowers_the_loss_and_lands_on_its_checkpoints(tiny_sl):
    cfg, V, ds, W0 = tiny_sl
    q, varrho = cfg.net.q, cfg.net.varrho
    times = flow.log_times((1.0, 10.0, 100.0, 1e3), 1e4)
    c, lam, t, n, _ = jax.jit(lambda W: train.train_sl(W, ds, cfg, times, lam_log(V, cfg.data.L)))(W0)
    np.testing.assert_allclose(np.asarray(t), times, rtol=1e-6)
    assert np.all(np.diff(np.asarray(n)) > 0)
    loss = jax.jit(nets.sl_loss, static_argnums=3)
    l0, l1 = float(loss(W0, ds.x, ds.y, q, varrho)), float(loss(c.state, ds.x, ds.y, q, varrho))
    assert l1 < 0.5 * l0, (l0, l1)
    np.testing.assert_allclose(np.asarray(lam[-1]), np.asarray(metrics.lam_sl(c.state, V, cfg.data.L)), rtol=1e-5)
    # far fewer steps than plain GD at lr 3 would need for GD time 1e4 (3,333)
    assert int(n[-1]) < 1000


def test_a_run_that_cannot_reach_its_horizon_says_how_far_it_got(tiny_sl):
    cfg, V, ds, W0 = tiny_sl
    cfg = with_values(cfg, {"train.step": "gd", "train.max_steps": 4})
    c, lam, t, n, _ = train.train_sl(W0, ds, cfg, np.array([0.0, 3.0, 300.0]), lam_log(V, cfg.data.L))
    np.testing.assert_array_equal(np.asarray(n), [0, 1, 4])
    np.testing.assert_allclose(np.asarray(t), [0.0, 3.0, 12.0])  # 4 steps of lr 3, not 300


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
    k_sl, k_mrp = jax.random.split(jax.random.PRNGKey(1))

    W_sl = train.init_sl(k_sl, cfg)
    g_sl = jax.jit(jax.grad(nets.sl_loss), static_argnums=3)(W_sl, D.train.x, D.train.y, q, varrho)
    proj = np.asarray(jnp.einsum("imd,fd->imf", g_sl, D.V[:kL]))
    assert np.all(np.isfinite(proj))
    assert np.all(proj != 0), f"{np.sum(proj == 0)} exact zeros"

    g, move = first_mrp_step(cfg, D, k_mrp)
    proj = np.asarray(g @ D.V.T)
    assert np.all(np.isfinite(proj))
    assert np.all(proj != 0), f"{np.sum(proj == 0)} exact zeros"
    # and the first per-kernel step moves every kernel by delta^2 x its norm (no underflowed norms)
    np.testing.assert_allclose(move, cfg.train.delta**2, rtol=1e-3)


def first_mrp_step(cfg, D, k_mrp):
    """The MRP kernel gradient at initialisation (expected over masks) and how far the first
    per-kernel step moves each kernel relative to its norm (as train_mrp does it)."""
    params = train.init_mrp(k_mrp, cfg)
    times = np.array([0.0, 1e20])  # far enough that the first step is the controller's, not clipped
    one = with_values(cfg, {"train.max_steps": 1, "train.dt_max": 1e20})
    run = jax.jit(lambda p: train.train_mrp(p, k_mrp, D.pre, one, times,
                                            lambda p, tw: p["W"]))
    c, Ws, _, _, _ = run(params)
    g = jax.jit(lambda p: train.mrp_grad(p, p["W"], k_mrp, D.pre, cfg))(params)["W"]
    W0 = np.asarray(params["W"], np.float64)
    move = np.linalg.norm(np.asarray(Ws[-1], np.float64) - W0, axis=1) / np.linalg.norm(W0, axis=1)
    return g, move


def test_small_sigma_0_first_mrp_step_moves_each_kernel(default_case):
    # Regression: at net.sigma_0 = 1e-4 (a point of the sigma_0 phase diagram) the MRP gradient
    # is ~3e-20 per component; its squared norm underflowed float32 and the first normalised
    # step threw every kernel to the norm cap. The data does not depend on sigma_0.
    cfg, D = default_case
    cfg = with_values(cfg, {"net.sigma_0": 1e-4})
    g, move = first_mrp_step(cfg, D, jax.random.PRNGKey(2))
    assert np.all(np.asarray(g) != 0)
    np.testing.assert_allclose(move, cfg.train.delta**2, rtol=1e-3)


def test_data_record_follows_the_attribute_protocol(default_case):
    # Regression: Data was a dict with __getattr__ = dict.__getitem__, so a missing attribute
    # raised KeyError (hasattr raised, and a Data could not leave a jitted function).
    _, D = default_case
    assert D.V is D[0]
    assert not hasattr(D, "no_such_dataset")
