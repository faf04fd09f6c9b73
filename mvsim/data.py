"""The multi-view data model of Allen-Zhu & Li (P0), as reused by Pan, Zhou & Yan (P1).

Notation: n_cls classes with L features each, features flattened as f = cls * L + l.
A sample X is P patches in R^d: X = (Z + alpha) @ V + xi, where Z[p, f] is the weight of
feature f on patch p, alpha ~ U[0, gamma] is feature noise on every (patch, feature), and
xi is Gaussian noise, small on patches that carry a feature and large on background ones.

Everything is generated on device from PRNG keys; the per-sample truth (label, whether it
is single-view, and its dominant feature) is kept so that metrics can split by it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mvsim.config import DataConfig


class Dataset(NamedTuple):
    """A batch of samples. Shapes: x (n, P, d); y, single, dom (n,)."""

    x: jax.Array  # float32 patches
    y: jax.Array  # int32 label in [0, n_cls)
    single: jax.Array  # bool: single-view sample
    dom: jax.Array  # int32 index l of the strong own feature (single-view), -1 for multi-view


class Layout(NamedTuple):
    """Which features a sample has, and where: everything but the noise. Z (P, n_feat)."""

    z: jax.Array
    y: jax.Array
    single: jax.Array
    dom: jax.Array


def make_features(key: jax.Array, n_feat: int, d: int) -> jax.Array:
    """n_feat random orthonormal features in R^d, as rows: shape (n_feat, d)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, n_feat)))
    return (q * jnp.sign(jnp.diagonal(r))).T


def feature_sums(key, y, single, dom, cfg: DataConfig, n_cls: int, L: int, lo: int = 0) -> jax.Array:
    """Sum of z of every feature for one sample (0 for absent ones): shape (n_cls * L,).

    Only classes lo..n_cls-1 occur; other-class features each with probability s / (n_cls - lo).
    """
    k_other, k_own, k_oth = jax.random.split(key, 3)
    cls = jnp.arange(n_cls * L) // L
    l = jnp.arange(n_cls * L) % L
    own = cls == y
    other = ~own & (cls >= lo) & jax.random.bernoulli(k_other, cfg.s / (n_cls - lo), (n_cls * L,))
    strong = jax.random.uniform(k_own, (n_cls * L,), minval=cfg.z_own_lo, maxval=cfg.z_own_hi)
    u = jax.random.uniform(k_oth, (n_cls * L,))
    other_z = jnp.where(single, u * cfg.Gamma, cfg.z_other_lo + u * (cfg.z_other_hi - cfg.z_other_lo))
    own_z = jnp.where(single & (l != dom), cfg.rho, strong)
    return jnp.where(own, own_z, jnp.where(other, other_z, 0.0))


def place_features(key, zsum, own, P: int, C_p: int) -> jax.Array:
    """Put each present feature on C_p disjoint patches, its sum of z split equally.

    Own features are placed first, then other-class features in random order; other-class
    features that find no free patch (more than P // C_p features present) are dropped.
    Returns Z of shape (P, n_feat).
    """
    k_order, k_perm = jax.random.split(key)
    n_feat = zsum.shape[0]
    present = zsum > 0
    priority = jnp.where(present, 2.0 * own + jax.random.uniform(k_order, (n_feat,)), -1.0)
    rank = jnp.argsort(jnp.argsort(-priority))  # own features get ranks 0..L-1
    placed = present & (rank < P // C_p)
    slots = jnp.clip(rank, 0, P // C_p - 1)[:, None] * C_p + jnp.arange(C_p)  # (n_feat, C_p)
    patch = jax.random.permutation(k_perm, P)[slots]
    onehot = jax.nn.one_hot(patch, P)  # (n_feat, C_p, P)
    return jnp.einsum("fcp,f->pf", onehot, jnp.where(placed, zsum / C_p, 0.0))


def sample_layout(key, mu, cfg: DataConfig, n_cls: int, lo: int = 0) -> Layout:
    """One sample's label (in [lo, n_cls)), view kind and feature placement (no noise)."""
    k_y, k_single, k_dom, k_sums, k_place = jax.random.split(key, 5)
    L = cfg.L
    y = jax.random.randint(k_y, (), lo, n_cls)
    single = jax.random.bernoulli(k_single, mu)
    dom = jnp.where(single, jax.random.randint(k_dom, (), 0, L), -1)
    zsum = feature_sums(k_sums, y, single, dom, cfg, n_cls, L, lo)
    own = jnp.arange(n_cls * L) // L == y
    z = place_features(k_place, zsum, own, cfg.P, cfg.C_p)
    return Layout(z, y, single, dom)


def render(key, layout: Layout, V, cfg: DataConfig) -> jax.Array:
    """Patches of one sample from its layout: (Z + alpha) @ V + xi, shape (P, d)."""
    k_alpha, k_xi = jax.random.split(key)
    P, n_feat = layout.z.shape
    d = V.shape[1]
    alpha = jax.random.uniform(k_alpha, (P, n_feat), maxval=cfg.gamma)
    carries = layout.z.sum(axis=1) > 0
    sigma = jnp.where(carries, cfg.sigma_feat, cfg.sigma_bg) / jnp.sqrt(d)
    xi = sigma[:, None] * jax.random.normal(k_xi, (P, d))
    return (layout.z + alpha) @ V + xi


def layouts(key, n: int, mu, cfg: DataConfig, n_cls: int, lo: int = 0) -> Layout:
    """n independent layouts over classes lo..n_cls-1, stacked along a leading axis."""
    return jax.vmap(lambda k: sample_layout(k, mu, cfg, n_cls, lo))(jax.random.split(key, n))


def render_all(key, lay: Layout, V, cfg: DataConfig) -> Dataset:
    """Patches for stacked layouts; a new `key` gives the same samples with fresh noise."""
    n = lay.y.shape[0]
    x = jax.vmap(lambda k, l: render(k, l, V, cfg))(jax.random.split(key, n), lay)
    return Dataset(x, lay.y, lay.single, lay.dom)


def dataset(key, n: int, mu, V, cfg: DataConfig, n_cls: int, lo: int = 0) -> Dataset:
    """n samples over classes lo..n_cls-1 of V (the features of classes < lo never occur);
    each sample single-view with probability mu."""
    k_layout, k_noise = jax.random.split(key)
    return render_all(k_noise, layouts(k_layout, n, mu, cfg, n_cls, lo), V[: n_cls * cfg.L], cfg)
