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
from mvsim import solver as rk
from mvsim.config import Config
from mvsim.data import Dataset


def solver(cfg: Config, rule: str, name: str | None = None) -> flow.Solver:
    """The step rule of `rule` ('gd', or adaptive: the solver `name` (default train.solver) at
    train.delta / train.rtol)."""
    tr = cfg.train
    name = "euler" if rule == "gd" else (name or tr.solver)
    kind = "gd" if rule == "gd" else ("motion" if name == "euler" else "error")
    return flow.Solver(kind, rk.TABLEAUS[name], tr.lr, tr.delta, tr.rtol, tr.dt_max, tr.icoeff, tr.pcoeff,
                       tr.predictive)


def _axpy(y, dt, v):
    """y + dt * v over pytrees (dt () or (R,) per row)."""
    return jax.tree_util.tree_map(lambda a, b: a + rk.lead(dt, b) * b, y, v)


def _rel(floors: dict):
    """rel(y, e) of a global clock: the largest ||e_r|| / max(||y_r||, floor) over the rows of
    the leaves named in `floors` (a leaf's rows: its leading axis)."""
    def rel(y, e):
        return jnp.max(jnp.stack([flow.row_speed(y[n], e[n], f).max() for n, f in floors.items()]))
    return rel


# ---------------------------------------------------------------- the full-batch gradient, by sample blocks

BLOCK_ELEMENTS = 2**20  # pre-activations (samples x P x kernels) per gradient block on a CPU: 4 MB
UNBLOCKED_UP_TO = 2**23  # ... unless the whole batch has at most this many (32 MB)


def n_blocks(n: int, P: int, R: int) -> int:
    """Sample blocks of a full-batch gradient over n samples of P patches and R kernels.

    On a CPU, once the gradient's (n, P, R) tensors outgrow the caches they stream through memory
    several times per pass; in blocks of about BLOCK_ELEMENTS they stay in cache. Measured here
    (one gradient, best of 30): SL's at k = 80 0.59-0.64 s whole against 0.31-0.35 s in 19-75
    blocks, at k = 40 0.11-0.12 s against 0.057-0.066 s in 17; inside the training loop at k = 10
    and 20 blocks were no faster (2 blocks at k = 10: 16.5 against 14.2 ms a step), so a batch of
    at most UNBLOCKED_UP_TO is one block. One block on an accelerator."""
    total = n * P * R
    if jax.default_backend() != "cpu" or total <= UNBLOCKED_UP_TO:
        return 1
    return min(n, -(-total // BLOCK_ELEMENTS))


def sample_blocks(data, nb: int):
    """The per-sample arrays of `data` (a pytree, leading axis n) as nb blocks (nb, ceil(n / nb),
    ...), zero-padded at the end. A zero sample adds nothing to any gradient here: its patches,
    pre-activations and codes are 0 (no biases, sReLU(0) = 0), and each parameter's gradient is a
    sum over samples of such an input times the back-propagated error."""
    def split(a):
        n = a.shape[0]
        blk = -(-n // nb)
        a = jnp.concatenate([a, jnp.zeros((nb * blk - n,) + a.shape[1:], a.dtype)])
        return a.reshape((nb, blk) + a.shape[1:])
    return jax.tree_util.tree_map(split, data)


def blocked_grad(loss, params, blocks, n: int):
    """The gradient of the mean over all n samples of a loss, block by block (lax.scan).

    loss(params, block) -> (the mean loss over the block's samples, per-sample aux (blk, ...));
    blocks: from `sample_blocks` (nb, blk, ...). Each block's gradient is weighted by blk / n
    (padding samples add 0). Returns (gradient like params, aux of the n samples (n, ...)).
    """
    nb, blk = jax.tree_util.tree_leaves(blocks)[0].shape[:2]
    if nb == 1:
        g, aux = jax.grad(loss, has_aux=True)(params, jax.tree_util.tree_map(lambda a: a[0], blocks))
        return g, jax.tree_util.tree_map(lambda a: a[:n], aux)

    def one(acc, block):
        g, aux = jax.grad(loss, has_aux=True)(params, block)
        return jax.tree_util.tree_map(jnp.add, acc, g), aux

    g, aux = jax.lax.scan(one, jax.tree_util.tree_map(jnp.zeros_like, params), blocks)
    unblock = lambda a: a.reshape((nb * blk,) + a.shape[2:])[:n]
    return jax.tree_util.tree_map(lambda a: a * (blk / n), g), jax.tree_util.tree_map(unblock, aux)


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
    k, m, d = W.shape
    n, P = train.x.shape[:2]
    blocks = sample_blocks((train.x, train.y, teacher_logits), n_blocks(n, P, k * m))

    def loss(W, block):
        x, y, teacher = block
        logits = nets.sl_logits(x, W, q, varrho)
        if teacher is None:
            return nets.cross_entropy(logits, y), logits
        return nets.distill_from_logits(logits, y, teacher, e.kd_temp, e.kd_weight), logits

    def field(W, _):
        g, logits = blocked_grad(loss, W, blocks, n)
        return -rate * g, (watch(W, logits) if watch else None)

    rel = lambda W, e: flow.row_speed(W.reshape(k * m, d), e.reshape(k * m, d), cfg.net.sigma_0).max()
    init, step = flow.make_step(field, _axpy, rel, solver(cfg, cfg.train.step))
    at = (lambda W: watch(W, nets.sl_logits(train.x, W, q, varrho))) if watch else None
    return flow.run_clocked(step, init(W), times, cfg.train.max_steps, log, dense=cfg.train.step != "gd", watch=at)


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
    fresh mask drawn from `key`. teacher_W: the EMA teacher, None for the stop-gradient student."""
    c, q, varrho = cfg.mrp, cfg.net.q, cfg.net.varrho
    n, P = pre.x.shape[:2]
    keep = None if c.masks == "expected" else mask(key, n, P, c.mask_keep)

    def loss(params, block):
        x, keep = block
        if keep is None:
            return nets.mrp_loss_expected(params, teacher_W, x, c.mask_keep, q, varrho, c.target, c.decoder), None
        return nets.mrp_loss(params, teacher_W, x, keep, q, varrho, c.target, c.decoder), None

    blocks = sample_blocks((pre.x, keep), n_blocks(n, P, params["W"].shape[0]))
    return blocked_grad(loss, params, blocks, n)[0]


def mrp_loss_value(params, teacher_W, key, pre: Dataset, cfg: Config):
    """The MRP loss of `params`: over all masks (expected) or under one fresh mask."""
    c, q, varrho = cfg.mrp, cfg.net.q, cfg.net.varrho
    teacher = None if c.teacher == "stopgrad" else teacher_W
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
    rates = {n: (1.0 if n == "W" else c.decoder_lr) * rate for n in params}

    def velocity(params, teacher_W, n):
        teacher = None if c.teacher == "stopgrad" else teacher_W
        g = mrp_grad(params, teacher, jax.random.fold_in(key, n), pre, cfg)
        g["W"] = flow.tangent(params["W"], g["W"], cap)
        return {name: -rates[name] * g[name] for name in params}

    if c.step == "per_kernel":  # the state is params alone: the teacher is the student (stopgrad)
        def field(p, n):
            return velocity(p, None, n), (watch(p["W"]) if watch else None)

        def move(p, dt, v):
            p = _axpy(p, dt, v)
            return {**p, "W": flow.project(p["W"], cap)}

        def rest(p, v, v_prev, dt):
            return flow.at_rest(p["W"], v["W"], v_prev["W"], dt, sol.rest_tol, floor, cap)

        sol = solver(cfg, "adaptive", c.solver)
        rel = lambda p, e: flow.row_speed(p["W"], e["W"], floor)
        init, step = flow.make_step(field, move, rel, sol, rest)
        return flow.run_clocked(step, init(params, R), times, cfg.train.max_steps,
                                lambda p: log(p, p["W"]))

    # One clock: the state is (params, teacher W); the teacher relaxes exactly towards the student
    # over each move, with time constant ema_time (stopgrad: the teacher is unused).
    def field(s, n):
        return (velocity(*s, n), jnp.zeros_like(s[1])), (watch(s[0]["W"]) if watch else None)

    def move(s, dt, v):
        p = _axpy(s[0], dt, v[0])
        p["W"] = flow.project(p["W"], cap)
        return p, s[1] + (1.0 - jnp.exp(-dt / c.ema_time)) * (p["W"] - s[1])

    moving = _rel({n: (floor if n in ("W", "D") else 1.0) for n in params})  # a fixed decoder adds 0
    init, step = flow.make_step(field, move, lambda s, e: moving(s[0], e[0]), solver(cfg, c.step, c.solver))
    return flow.run_clocked(step, init((params, params["W"])), times, cfg.train.max_steps, lambda s: log(*s))


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

    n, P = train.x.shape[:2]
    inputs = codes if cfg.ft.mode == "head" else train.x  # per sample: (n, R) codes or (n, P, d) patches
    blocks = sample_blocks((inputs, train.y), n_blocks(n, P, W.shape[0]) if cfg.ft.mode == "full" else 1)

    def logits_of(p, x):
        return x @ p["A"].T if cfg.ft.mode == "head" else nets.ft_logits(p, x, q, varrho)

    def loss(p, block):
        x, y = block
        logits = logits_of(p, x)
        return nets.cross_entropy(logits, y), logits

    def field(p, _):
        g, logits = blocked_grad(loss, p, blocks, n)
        return {name: -rate[name] * g[name] for name in p}, (watch(p, logits) if watch else None)

    moving = {"A": 1.0, "W": cfg.net.sigma_0} if cfg.ft.mode == "full" else {"A": 1.0}
    init, step = flow.make_step(field, _axpy, _rel(moving), solver(cfg, t.step))
    at = (lambda p: watch(p, logits_of(p, inputs))) if watch else None
    return flow.run_clocked(step, init(params), times, t.max_steps, log, dense=t.step != "gd", watch=at)
