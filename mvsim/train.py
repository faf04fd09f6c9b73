"""Full-batch training on the GD clock: SL (P0), MRP pretraining and fine-tuning (P1).

Each `train_*` function trains one seed until its GD clock reads each time of `times` (see
`flow.log_times`) and calls `log(params)` there. It returns (final params, logs stacked over
times, GD time reached at each, steps taken at each). The step rules and the loop live in
`mvsim.flow`; this module holds the gradients and the states. Pure and jittable; batching over
seeds is `jax.vmap` one level up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mvsim import flow, nets
from mvsim.config import Config
from mvsim.data import Dataset


def _dt(cfg: Config, rule: str, c: flow.Clocked, speed, err, target):
    """(dt, proposal) of `rule`: 'gd' (plain GD at train.lr) or adaptive (see flow.controlled_dt;
    speed and err are () for one clock or (R,) per kernel)."""
    tr = cfg.train
    if rule == "gd":
        dt = flow.gd_dt(tr.lr, flow.left(c, target))
        return dt, c.h
    return flow.controlled_dt(speed, err, c.h, c.dt, tr.delta, tr.dt_max, flow.left(c, target))


def _next(c: flow.Clocked, state, dt, h, g, target, obs=None) -> flow.Clocked:
    t, lo = flow.advance(c.t, c.lo, dt, target)
    return flow.Clocked(state, t, c.n + 1, h, dt, g, lo, obs)


# ---------------------------------------------------------------- supervised learning (P0)


def init_sl(key, cfg: Config) -> jax.Array:
    """SL kernels w_{i,r} ~ N(0, sigma_0^2 I): shape (k, m, d)."""
    return cfg.net.sigma_0 * jax.random.normal(key, (cfg.data.k, cfg.net.m, cfg.data.d))


def train_sl(W, train: Dataset, cfg: Config, times, log, teacher_logits=None, watch=None):
    """GD on cross-entropy (or on the distillation loss when `teacher_logits` (n, k) are given),
    dW/dt = -train.sl_rate grad L.

    W (k, m, d). Kernel rows' relative speeds use the floor sigma_0 (a kernel's size is never
    below its init scale in practice; the floor only guards the step rule).
    watch(W, logits on the training set) -> event margins (see flow.run_clocked); the logits come
    from the gradient's forward pass."""
    q, varrho, e, rate = cfg.net.q, cfg.net.varrho, cfg.ensemble, cfg.train.sl_rate

    def loss(W):
        logits = nets.sl_logits(train.x, W, q, varrho)
        if teacher_logits is None:
            return nets.cross_entropy(logits, train.y), logits
        return nets.distill_from_logits(logits, train.y, teacher_logits, e.kd_temp, e.kd_weight), logits

    k, m, d = W.shape
    rows = lambda a: a.reshape(k * m, d)

    def step(c: flow.Clocked, target):
        g, logits = jax.grad(loss, has_aux=True)(c.state)
        g = rate * g
        speed = flow.row_speed(rows(c.state), rows(g), cfg.net.sigma_0).max()
        err = flow.step_error(rows(c.state), rows(g), rows(c.g), c.dt, cfg.net.sigma_0).max()
        dt, h = _dt(cfg, cfg.train.step, c, speed, err, target)
        obs = watch(c.state, logits) if watch else None
        return _next(c, c.state - dt * g, dt, h, g, target, obs)

    final = (lambda W: watch(W, loss(W)[1])) if watch else None
    return flow.run_clocked(step, W, jnp.zeros_like(W), times, cfg.train.max_steps, log,
                            dt_max=cfg.train.dt_max, watch=final)


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


def mrp_grad(params, teacher_W, key, pre: Dataset, cfg: Config):
    """Gradient of the MRP loss: the expectation over masks (`mrp.masks = 'expected'`), or one
    fresh mask drawn from `key`."""
    c, q, varrho = cfg.mrp, cfg.net.q, cfg.net.varrho
    if c.masks == "expected":
        return jax.grad(nets.mrp_loss_expected)(params, teacher_W, pre.x, c.mask_keep, q, varrho,
                                                c.target, c.decoder)
    keep = mask(key, pre.x.shape[0], pre.x.shape[1], c.mask_keep)
    return jax.grad(nets.mrp_loss)(params, teacher_W, pre.x, keep, q, varrho, c.target, c.decoder)


def mrp_loss_value(params, teacher_W, key, pre: Dataset, cfg: Config):
    """The MRP loss of `params`: over all masks (expected) or under one fresh mask."""
    c, q, varrho = cfg.mrp, cfg.net.q, cfg.net.varrho
    teacher = params["W"] if c.teacher == "stopgrad" else teacher_W
    if c.masks == "expected":
        return nets.mrp_loss_expected(params, teacher, pre.x, c.mask_keep, q, varrho, c.target, c.decoder)
    keep = mask(key, pre.x.shape[0], pre.x.shape[1], c.mask_keep)
    return nets.mrp_loss(params, teacher, pre.x, keep, q, varrho, c.target, c.decoder)


def train_mrp(params, key, pre: Dataset, cfg: Config, times, log, watch=None):
    """Mask-reconstruction pretraining; state (params, teacher W); d(params)/dt = -train.mrp_rate
    grad L (the decoder at decoder_lr times that).

    Kernels live in the ball ||w_r|| <= norm_cap * varrho (projected GD: past the linear regime
    the stop-gradient loss grows a captured kernel without bound). `mrp.step`:
    'per_kernel' -- a GD clock per kernel (exact here only: `config._separable`, checked by
    `config.validate`); 'adaptive' / 'gd' -- one clock, the decoder moving at rate decoder_lr
    and the EMA teacher relaxing towards the student with time constant ema_time.
    log(params) is called at each time; with per-kernel clocks every kernel is then at that time.
    watch(W) -> event margins (leading axis R, each kernel on its own clock with per-kernel steps).
    """
    c, varrho, floor, rate = cfg.mrp, cfg.net.varrho, cfg.net.sigma_0, cfg.train.mrp_rate
    cap = c.norm_cap * varrho
    R = params["W"].shape[0]

    def grads(state, n):
        params, teacher_W = state
        teacher = params["W"] if c.teacher == "stopgrad" else teacher_W
        g = jax.tree_util.tree_map(lambda a: rate * a,
                                   mrp_grad(params, teacher, jax.random.fold_in(key, n), pre, cfg))
        g["W"] = flow.tangent(params["W"], g["W"], cap)
        return g

    def per_kernel_step(cl: flow.Clocked, target):
        params, teacher_W = cl.state
        g = grads(cl.state, cl.n)["W"]
        speed = flow.row_speed(params["W"], g, floor)
        err = flow.step_error(params["W"], g, cl.g, cl.dt, floor)
        dt, h = _dt(cfg, "adaptive", cl, speed, err, target)
        rest = flow.at_rest(params["W"], g, cl.g, cl.dt, cfg.train.delta, floor, cap)
        W = flow.project(params["W"] - jnp.where(rest, 0.0, dt)[:, None] * g, cap)
        # A resting kernel jumps to the target unmoved and keeps the last real step's memory. A
        # kernel already at the target (dt = 0) restarts its controller at the next checkpoint.
        jump = jnp.maximum(flow.left(cl, target), 0.0)
        t, lo = flow.advance(cl.t, cl.lo, jnp.where(rest, jump, dt), target)
        return flow.Clocked(({**params, "W": W}, W), t, cl.n + 1, jnp.where(rest, cl.h, h),
                            jnp.where(rest, cl.dt, dt), jnp.where(rest[:, None], cl.g, g), lo,
                            watch(params["W"]) if watch else None)

    def global_step(cl: flow.Clocked, target):
        params, teacher_W = cl.state
        g = grads(cl.state, cl.n)
        moving = list(params)  # a fixed decoder (rate 0) adds zero speed and zero error
        rate = {n: (1.0 if n == "W" else c.decoder_lr) for n in params}
        fl = {n: (floor if n in ("W", "D") else 1.0) for n in params}
        speed = jnp.max(jnp.stack([flow.row_speed(params[n], rate[n] * g[n], fl[n]).max() for n in moving]))
        err = jnp.max(jnp.stack([flow.step_error(params[n], rate[n] * g[n], rate[n] * cl.g[n], cl.dt, fl[n]).max()
                                 for n in moving]))
        dt, h = _dt(cfg, c.step, cl, speed, err, target)
        new = {n: params[n] - dt * rate[n] * g[n] for n in params}
        new["W"] = flow.project(new["W"], cap)
        relax = 1.0 - jnp.exp(-dt / c.ema_time)
        teacher_W = teacher_W + relax * (new["W"] - teacher_W)
        return _next(cl, (new, teacher_W), dt, h, g, target, watch(params["W"]) if watch else None)

    per_kernel = c.step == "per_kernel"
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return flow.run_clocked(per_kernel_step if per_kernel else global_step, (params, params["W"]),
                            zeros["W"] if per_kernel else zeros, times, cfg.train.max_steps,
                            lambda s: log(*s), per_kernel=R if per_kernel else 0, dt_max=cfg.train.dt_max,
                            watch=(lambda s: watch(s[0]["W"])) if watch else None)


# ---------------------------------------------------------------- fine-tuning (P1)


def train_ft(W, train: Dataset, cfg: Config, times, log, watch=None):
    """Pretrained encoder W (R, d) + zero-initialised linear head A (k, R), GD on cross-entropy.

    mode 'full' trains head (rate ft_lr) and kernels (rate ft_kernel_lr); 'head' trains the head
    on the encoder's fixed codes (computed once). Head rows start at 0, so their speed uses the
    floor 1 (a head row of norm 1 turns codes of size ~1 into logits of size ~1).
    watch(params, logits on the training set) -> event margins (see train_sl).
    """
    q, varrho, t = cfg.net.q, cfg.net.varrho, cfg.train
    params = {"W": W, "A": jnp.zeros((cfg.data.k, W.shape[0]))}
    codes = nets.encode(train.x, W, q, varrho) if cfg.ft.mode == "head" else None
    rate = {"W": t.ft_kernel_lr if cfg.ft.mode == "full" else 0.0, "A": t.ft_lr}

    def loss(p):
        logits = codes @ p["A"].T if cfg.ft.mode == "head" else nets.ft_logits(p, train.x, q, varrho)
        return nets.cross_entropy(logits, train.y), logits

    def step(c: flow.Clocked, target):
        p = c.state
        g, logits = jax.grad(loss, has_aux=True)(p)
        fl = {"A": 1.0, "W": cfg.net.sigma_0}
        moving = ["A", "W"] if cfg.ft.mode == "full" else ["A"]
        speed = jnp.max(jnp.stack([flow.row_speed(p[n], rate[n] * g[n], fl[n]).max() for n in moving]))
        err = jnp.max(jnp.stack([flow.step_error(p[n], rate[n] * g[n], rate[n] * c.g[n], c.dt, fl[n]).max()
                                 for n in moving]))
        dt, h = _dt(cfg, t.step, c, speed, err, target)
        obs = watch(p, logits) if watch else None
        return _next(c, {n: p[n] - dt * rate[n] * g[n] for n in p}, dt, h, g, target, obs)

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    final = (lambda p: watch(p, loss(p)[1])) if watch else None
    return flow.run_clocked(step, params, zeros, times, t.max_steps, log, dt_max=t.dt_max, watch=final)
