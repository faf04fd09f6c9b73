"""Full-batch training loops as `lax.scan`: SL (P0), MRP pretraining and fine-tuning (P1).

Each `train_*` function trains one seed and returns the final parameters and the Lambda
trajectory logged every `train.log_every` steps (see `log_steps` for the step of each row).
They are pure and jittable; batching over seeds is `jax.vmap` one level up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mvsim import metrics, nets
from mvsim.config import Config
from mvsim.data import Dataset


def log_steps(n_steps: int, log_every: int) -> np.ndarray:
    """Steps at which Lambda is logged: 0, log_every, 2 log_every, ..., and n_steps."""
    steps = list(range(0, n_steps + 1, log_every))
    if steps[-1] != n_steps:
        steps.append(n_steps)
    return np.asarray(steps)


def scan_logged(step, state, n_steps: int, log_every: int, log):
    """Run `state = step(state, t)` for t < n_steps; return (state, stacked log(state) at log_steps).

    An outer scan over blocks of `log_every` steps logs once per block, so logging costs one
    small matmul per block and never leaves the device.
    """
    def block(start, length):
        def body(s, t):
            return step(s, t), None
        return lambda s: jax.lax.scan(body, s, start + jnp.arange(length))[0]

    n_blocks, rest = divmod(n_steps, log_every)

    def outer(s, b):
        s = block(b * log_every, log_every)(s)
        return s, log(s)

    first = log(state)
    state, logged = jax.lax.scan(outer, state, jnp.arange(n_blocks))
    logs = [first[None], logged]
    if rest:
        state = block(n_blocks * log_every, rest)(state)
        logs.append(log(state)[None])
    return state, jnp.concatenate(logs)


def normalized_step(W, g, lr, cap):
    """Move each kernel (row of W) by lr along its own normalised negative gradient, then
    shrink rows whose norm exceeds `cap` (cap = 0: no cap). Rows with zero gradient stay.

    Rows are divided by their largest entry before the norm is taken: squaring gradients of
    ~1e-20 (tiny inits) would underflow float32 and blow the step up.
    """
    top = jnp.max(jnp.abs(g), axis=-1, keepdims=True)
    u = g / jnp.where(top > 0, top, 1.0)
    u_norm = jnp.linalg.norm(u, axis=-1, keepdims=True)
    W = W - lr * u / jnp.where(u_norm > 0, u_norm, 1.0)
    w_norm = jnp.linalg.norm(W, axis=-1, keepdims=True)
    shrink = jnp.where(cap > 0, jnp.minimum(1.0, cap / jnp.maximum(w_norm, 1e-30)), 1.0)
    return W * shrink


# ---------------------------------------------------------------- supervised learning (P0)


def init_sl(key, cfg: Config) -> jax.Array:
    """SL kernels w_{i,r} ~ N(0, sigma_0^2 I): shape (k, m, d)."""
    return cfg.net.sigma_0 * jax.random.normal(key, (cfg.data.k, cfg.net.m, cfg.data.d))


def train_sl(W, train: Dataset, V, cfg: Config, teacher_logits=None):
    """Full-batch GD on cross-entropy, or on the distillation loss when `teacher_logits`
    (n, k) are given (`ensemble.kd_temp`, `ensemble.kd_weight`). Returns (W, lam (n_logs, k, L))."""
    q, varrho, lr, e = cfg.net.q, cfg.net.varrho, cfg.train.sl_lr, cfg.ensemble
    if teacher_logits is None:
        grad = lambda W: jax.grad(nets.sl_loss)(W, train.x, train.y, q, varrho)
    else:
        grad = lambda W: jax.grad(nets.distill_loss)(W, train.x, train.y, teacher_logits, q, varrho,
                                                     e.kd_temp, e.kd_weight)

    def step(W, t):
        return W - lr * grad(W)

    return scan_logged(step, W, cfg.train.sl_steps, cfg.train.log_every,
                       lambda W: metrics.lam_sl(W, V, cfg.data.L))


# ---------------------------------------------------------------- mask-reconstruction pretraining (P1)


def init_mrp(key, cfg: Config) -> dict:
    """Encoder W ((k + k_extra) m, d) ~ N(0, sigma_0^2 I) and the decoder of `mrp.target`."""
    R = cfg.k_pre * cfg.net.m
    W = cfg.net.sigma_0 * jax.random.normal(key, (R, cfg.data.d))
    b = cfg.mrp.decoder_init
    if cfg.mrp.target == "mae":
        return {"W": W, "D": b * W}  # decoder tied to the encoder at initialisation
    B = b * (jnp.ones(R) if cfg.mrp.decoder == "diag" else jnp.eye(R))
    return {"W": W, "B": B}


def mask(key, n: int, P: int, mask_keep) -> jax.Array:
    """Bernoulli patch mask (n, P): 1 = kept (probability mask_keep), 0 = masked (zeroed)."""
    return jax.random.bernoulli(key, mask_keep, (n, P)).astype(jnp.float32)


def train_mrp(params, key, pre: Dataset, V, cfg: Config):
    """Mask-reconstruction pretraining with a fresh mask every step.

    Kernels move by a per-kernel normalised step (`mrp.step = 'normalized'`: with a diagonal
    decoder and a stop-gradient teacher the loss separates over kernels, so this re-times each
    kernel's gradient flow; plain GD barely moves from a small init because the gradient
    scales like Lambda^(2q-1)) or by plain GD; the decoder by GD at `mrp.decoder_lr`.
    Returns ((params, teacher_W), lam (n_logs, k, L)).
    """
    c, q, varrho = cfg.mrp, cfg.net.q, cfg.net.varrho
    n, P = pre.x.shape[:2]
    grad = jax.grad(nets.mrp_loss)

    def step(state, t):
        params, teacher_W = state
        keep = mask(jax.random.fold_in(key, t), n, P, c.mask_keep)
        teacher = params["W"] if c.teacher == "stopgrad" else teacher_W
        g = grad(params, teacher, pre.x, keep, q, varrho, c.target, c.decoder)
        if c.step == "normalized":
            W = normalized_step(params["W"], g["W"], cfg.train.mrp_lr, c.norm_cap * varrho)
        else:
            W = params["W"] - cfg.train.mrp_lr * g["W"]
        new = {name: v - c.decoder_lr * g[name] for name, v in params.items() if name != "W"}
        new["W"] = W
        teacher_W = c.ema_tau * teacher_W + (1.0 - c.ema_tau) * W
        return new, teacher_W

    return scan_logged(step, (params, params["W"]), cfg.train.mrp_steps, cfg.train.log_every,
                       lambda s: metrics.lam_mrp(s[0]["W"], V, cfg.data.k, cfg.data.L))


def mrp_final_loss(params, teacher_W, key, pre: Dataset, cfg: Config):
    """The MRP loss of the final parameters under one fresh mask."""
    c = cfg.mrp
    keep = mask(key, pre.x.shape[0], pre.x.shape[1], c.mask_keep)
    teacher = params["W"] if c.teacher == "stopgrad" else teacher_W
    return nets.mrp_loss(params, teacher, pre.x, keep, cfg.net.q, cfg.net.varrho, c.target, c.decoder)


# ---------------------------------------------------------------- fine-tuning (P1)


def train_ft(W, train: Dataset, V, cfg: Config):
    """Pretrained encoder W (R, d) + zero-initialised linear head A (k, R), GD on cross-entropy.

    mode 'full' trains head and kernels; 'head' trains the head on the encoder's fixed codes
    (computed once). Returns (params, lam (n_logs, k, L)).
    """
    q, varrho, t = cfg.net.q, cfg.net.varrho, cfg.train
    params = {"W": W, "A": jnp.zeros((cfg.data.k, W.shape[0]))}
    lam = lambda p: metrics.lam_mrp(p["W"], V, cfg.data.k, cfg.data.L)

    if cfg.ft.mode == "head":
        codes = nets.encode(train.x, W, q, varrho)
        grad_A = jax.grad(lambda A: nets.cross_entropy(codes @ A.T, train.y))

        def step(p, _):
            return {"W": p["W"], "A": p["A"] - t.ft_lr * grad_A(p["A"])}
    else:
        grad = jax.grad(nets.ft_loss)

        def step(p, _):
            g = grad(p, train.x, train.y, q, varrho)
            return {"W": p["W"] - t.ft_kernel_lr * g["W"], "A": p["A"] - t.ft_lr * g["A"]}

    return scan_logged(step, params, t.ft_steps, t.log_every, lam)
