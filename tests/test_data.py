"""The multi-view data model (theory.md, data.py docstrings) checked on small configs.

Statistical checks use 4-sigma bounds derived from the number of samples, so a correct
generator fails them with probability below ~1e-4 each (and the keys are fixed anyway).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvsim import data
from mvsim.config import Config, with_values

N = 2000  # samples per statistical check
EPS = 1e-6  # float32 slack on sums of z


def dcfg(**kw):
    # ints (k, L, d, P, C_p) are static and each new combination compiles anew (seconds on
    # XLA:CPU): the tests share three shapes, ROOMY, CROWDED and CP3; floats are traced.
    base = {"data.k": 4, "data.L": 2, "data.d": 64, "data.P": 16, "data.C_p": 2, "data.mu": 0.3,
            "data.s": 2.0, "data.rho": 0.05, "data.Gamma": 0.15}
    base.update({f"data.{k}": v for k, v in kw.items()})
    return with_values(Config(), base).data


ROOMY = dict(k=4, L=2, P=16, C_p=2)    # 8 slots for 8 features: nothing is ever dropped
CROWDED = dict(k=4, L=3, P=12, C_p=2)  # 6 slots for 12 features: some dropped
CP3 = dict(k=3, L=2, P=15, C_p=3)      # C_p = 3 and P not a multiple of C_p


@functools.partial(jax.jit, static_argnums=(1, 4))
def _layouts(key, n, mu, cfg, n_cls):
    return data.layouts(key, n, mu, cfg, n_cls)


def layouts(seed, mu, cfg):
    lay = _layouts(jax.random.PRNGKey(seed), N, mu, cfg, cfg.k)
    return data.Layout(np.asarray(lay.z, np.float64), np.asarray(lay.y), np.asarray(lay.single),
                       np.asarray(lay.dom))


def binom_tol(p, n):
    """4 sigma of a share estimated from n Bernoulli(p) draws."""
    return 4 * np.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------- features


@pytest.mark.parametrize("n_feat, d", [(12, 12), (24, 64)])
def test_features_orthonormal(n_feat, d):
    V = data.make_features(jax.random.PRNGKey(3), n_feat, d)
    assert V.shape == (n_feat, d)
    np.testing.assert_allclose(np.asarray(V @ V.T), np.eye(n_feat), atol=1e-5)
    V2 = data.make_features(jax.random.PRNGKey(4), n_feat, d)
    assert not np.allclose(np.asarray(V), np.asarray(V2))


# ---------------------------------------------------------------- view kinds and labels


@pytest.mark.parametrize("mu", [0.1, 0.3, 0.5])
def test_single_view_share(mu):
    lay = layouts(1, mu, dcfg(mu=mu))
    share = lay.single.mean()
    assert abs(share - mu) <= binom_tol(mu, N), (share, mu)


@pytest.mark.parametrize("mu, expected", [(0.0, False), (1.0, True)])
def test_single_view_extremes(mu, expected):
    lay = layouts(2, mu, dcfg(mu=mu))
    assert np.all(lay.single == expected)
    if expected:
        assert np.all((lay.dom >= 0) & (lay.dom < 2))
    else:
        assert np.all(lay.dom == -1)


def test_dom_is_minus_one_for_multi_view_and_uniform_for_single_view():
    cfg = dcfg(**CROWDED)
    lay = layouts(3, 1.0, cfg)
    for l in range(3):
        share = (lay.dom == l).mean()
        assert abs(share - 1 / 3) <= binom_tol(1 / 3, N), (l, share)
    lay = layouts(4, 0.3, cfg)
    assert np.all(lay.dom[~lay.single] == -1)
    assert np.all((lay.dom[lay.single] >= 0) & (lay.dom[lay.single] < 3))


@pytest.mark.parametrize("shape", [ROOMY, CP3], ids=["k4", "k3"])
def test_labels_uniform(shape):
    cfg = dcfg(**shape)
    k = cfg.k
    lay = layouts(5, 0.3, cfg)
    assert lay.y.min() >= 0 and lay.y.max() < k
    counts = np.bincount(lay.y, minlength=k)
    # per-class share within 4 sigma of 1/k
    assert np.all(np.abs(counts / N - 1 / k) <= binom_tol(1 / k, N)), counts
    # chi-square with k-1 dof: mean k-1, sd sqrt(2(k-1)); 4 sigma above the mean
    chi2 = ((counts - N / k) ** 2 / (N / k)).sum()
    assert chi2 <= (k - 1) + 4 * np.sqrt(2 * (k - 1)), chi2


# ---------------------------------------------------------------- the recovered Z


@pytest.fixture(scope="module", params=[ROOMY, CROWDED, CP3], ids=["roomy", "crowded", "cp3"])
def zcase(request):
    cfg = dcfg(**request.param)
    return cfg, layouts(6, 0.3, cfg)


def test_z_shapes_and_nonnegative(zcase):
    cfg, lay = zcase
    assert lay.z.shape == (N, cfg.P, cfg.k * cfg.L)
    assert np.all(lay.z >= 0)


def test_each_present_feature_on_exactly_C_p_patches_with_equal_split(zcase):
    cfg, lay = zcase
    nnz = (lay.z > 0).sum(axis=1)  # (n, F)
    present = lay.z.sum(axis=1) > 0
    assert np.all(nnz[present] == cfg.C_p)
    assert np.all(nnz[~present] == 0)
    # the sum is split equally over the C_p patches
    zmax = lay.z.max(axis=1)
    zmin_present = np.where(lay.z > 0, lay.z, np.inf).min(axis=1)
    np.testing.assert_allclose(zmax[present], zmin_present[present], rtol=1e-6)


def test_features_never_share_a_patch(zcase):
    cfg, lay = zcase
    assert (lay.z > 0).sum(axis=2).max() <= 1
    # no more features present than there are slots of C_p patches
    assert (lay.z.sum(axis=1) > 0).sum(axis=1).max() <= cfg.P // cfg.C_p


def own_mask(lay, cfg):
    cls = np.arange(cfg.k * cfg.L) // cfg.L
    return cls[None, :] == lay.y[:, None]  # (n, F)


def test_own_features_multi_view(zcase):
    cfg, lay = zcase
    sums = lay.z.sum(axis=1)
    own = own_mask(lay, cfg)
    multi = ~lay.single
    assert multi.sum() > 100
    own_sums = sums[own].reshape(N, cfg.L)[multi]
    assert np.all(own_sums >= cfg.z_own_lo - EPS) and np.all(own_sums <= cfg.z_own_hi + EPS)


def test_own_features_single_view(zcase):
    cfg, lay = zcase
    sums = lay.z.sum(axis=1)
    own_sums = sums[own_mask(lay, cfg)].reshape(N, cfg.L)
    idx = np.nonzero(lay.single)[0]
    assert len(idx) > 100
    for i in idx:
        dom = lay.dom[i]
        assert cfg.z_own_lo - EPS <= own_sums[i, dom] <= cfg.z_own_hi + EPS
        weak = np.delete(own_sums[i], dom)
        np.testing.assert_allclose(weak, cfg.rho, rtol=1e-6)


def test_other_class_features(zcase):
    cfg, lay = zcase
    sums = lay.z.sum(axis=1)
    other = ~own_mask(lay, cfg) & (sums > 0)
    multi_vals = sums[other & ~lay.single[:, None]]
    single_vals = sums[other & lay.single[:, None]]
    assert len(multi_vals) > 100 and len(single_vals) > 100
    assert multi_vals.min() >= cfg.z_other_lo - EPS and multi_vals.max() <= cfg.z_other_hi + EPS
    assert single_vals.min() > 0 and single_vals.max() <= cfg.Gamma + EPS
    # the ranges are covered (uniform draws), not collapsed to a point
    assert multi_vals.max() - multi_vals.min() > 0.9 * (cfg.z_other_hi - cfg.z_other_lo)
    assert single_vals.max() - single_vals.min() > 0.9 * cfg.Gamma


def test_background_patches_carry_nothing(zcase):
    cfg, lay = zcase
    carried = (lay.z > 0).any(axis=2).sum(axis=1)
    n_present = (lay.z.sum(axis=1) > 0).sum(axis=1)
    np.testing.assert_array_equal(carried, n_present * cfg.C_p)


@pytest.mark.parametrize("s", [1.0, 2.0, 3.0])
def test_mean_number_of_other_class_features(s):
    # P // C_p = 8 = k * L slots: no feature is ever dropped
    cfg = dcfg(**ROOMY, s=s)
    lay = layouts(7, 0.3, cfg)
    present = lay.z.sum(axis=1) > 0
    n_other = (present & ~own_mask(lay, cfg)).sum(axis=1)
    p, n_cand = s / cfg.k, (cfg.k - 1) * cfg.L
    # each of the (k-1) L candidates independently with probability s/k: binomial count
    sd_mean = np.sqrt(n_cand * p * (1 - p) / N)
    assert abs(n_other.mean() - n_cand * p) <= 4 * sd_mean, (n_other.mean(), n_cand * p)
    assert np.all(present[own_mask(lay, cfg)])  # own features are always present (rho > 0)


# ---------------------------------------------------------------- rendering


_render = jax.jit(data.render_all)


def render(seed, lay, V, cfg):
    ds = _render(jax.random.PRNGKey(seed), lay, V, cfg)
    return np.asarray(ds.x, np.float64), ds


@pytest.fixture(scope="module")
def rcase():
    cfg = dcfg(**ROOMY, gamma=0.0, sigma_bg=1.0, sigma_feat=0.05)
    lay = _layouts(jax.random.PRNGKey(9), N, 0.3, cfg, cfg.k)
    V = data.make_features(jax.random.PRNGKey(10), cfg.k * cfg.L, cfg.d)
    return cfg, lay, V


def check_noise_std(xi, carries, cfg):
    for mask, sigma in ((~carries, cfg.sigma_bg), (carries, cfg.sigma_feat)):
        r = xi[mask]  # (patches, d)
        n = r.size
        est = np.sqrt(np.mean(r ** 2))
        target = sigma / np.sqrt(cfg.d)
        # relative sd of an RMS estimate from n Gaussian values is 1/sqrt(2n)
        assert abs(est / target - 1) <= 4 / np.sqrt(2 * n), (est, target)
        assert abs(r.mean()) <= 4 * target / np.sqrt(n)


def test_noise_std_on_background_and_feature_patches(rcase):
    cfg, lay, V = rcase
    x, ds = render(11, lay, V, cfg)
    z = np.asarray(lay.z, np.float64)
    xi = x - z @ np.asarray(V, np.float64)  # gamma = 0: no feature noise
    carries = z.sum(axis=2) > 0
    assert 0.2 < carries.mean() < 0.8
    check_noise_std(xi, carries, cfg)
    np.testing.assert_array_equal(np.asarray(ds.y), np.asarray(lay.y))
    np.testing.assert_array_equal(np.asarray(ds.single), np.asarray(lay.single))
    np.testing.assert_array_equal(np.asarray(ds.dom), np.asarray(lay.dom))
    assert ds.x.dtype == jnp.float32


def test_two_keys_differ_only_in_noise(rcase):
    cfg, lay, V = rcase
    x1, d1 = render(12, lay, V, cfg)
    x2, d2 = render(13, lay, V, cfg)
    zv = np.asarray(lay.z, np.float64) @ np.asarray(V, np.float64)
    xi1, xi2 = x1 - zv, x2 - zv
    carries = np.asarray(lay.z).sum(axis=2) > 0
    check_noise_std(xi1, carries, cfg)
    check_noise_std(xi2, carries, cfg)
    # every value is redrawn: equal float32 values only by chance (feature patches have
    # small noise, so a handful of coincidences among 2M values are possible)
    assert np.mean(x1 == x2) < 1e-4
    # the two noise draws are uncorrelated: 4 sigma of a correlation estimate is 4/sqrt(n)
    a, b = xi1[~carries].ravel(), xi2[~carries].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) <= 4 / np.sqrt(a.size)
    for f in ("y", "single", "dom"):
        np.testing.assert_array_equal(np.asarray(getattr(d1, f)), np.asarray(getattr(d2, f)))


def test_feature_noise_alpha():
    # no Gaussian noise: x V^T - Z = alpha ~ U[0, gamma] on every (patch, feature), any two keys
    cfg = dcfg(**ROOMY, gamma=0.01, sigma_bg=0.0, sigma_feat=0.0)
    lay = _layouts(jax.random.PRNGKey(14), N, 0.3, cfg, cfg.k)
    V = data.make_features(jax.random.PRNGKey(15), cfg.k * cfg.L, cfg.d)
    Vn = np.asarray(V, np.float64)
    for seed in (16, 17):
        x, _ = render(seed, lay, V, cfg)
        alpha = x @ Vn.T - np.asarray(lay.z, np.float64)
        assert alpha.min() >= -1e-5 and alpha.max() <= cfg.gamma + 1e-5
        # U[0, gamma]: mean gamma/2, sd gamma/sqrt(12); 4 sigma of the mean (+ float32 slack)
        tol = 4 * cfg.gamma / np.sqrt(12 * alpha.size) + 1e-6
        assert abs(alpha.mean() - cfg.gamma / 2) <= tol
        # nothing outside the span of the features
        resid = x - (x @ Vn.T) @ Vn
        assert np.abs(resid).max() <= 1e-5


def test_dataset_uses_only_the_first_n_cls_classes():
    # V holds 6 classes (as with k_extra = 2); a dataset over n_cls = 4 uses only their features
    cfg = dcfg(**ROOMY, gamma=0.01, sigma_bg=0.0, sigma_feat=0.0)
    V = data.make_features(jax.random.PRNGKey(18), 6 * 2, cfg.d)
    ds = jax.jit(data.dataset, static_argnums=(1, 5))(jax.random.PRNGKey(19), N, 0.3, V, cfg, 4)
    assert ds.x.shape == (N, cfg.P, cfg.d)
    assert int(ds.y.max()) == 3
    x = np.asarray(ds.x, np.float64)
    Vn = np.asarray(V, np.float64)
    assert np.abs(x @ Vn[8:].T).max() <= 1e-5
    assert np.abs(x @ Vn[:8].T).max() > 0.5
