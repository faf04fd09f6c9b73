"""The networks: smoothed ReLU, the P0 supervised net, the P1 mask-reconstruction
auto-encoder and the fine-tuning classifier. All are pure functions of parameters.

The convolution is written as one matmul over patches: x (n, P, d) @ W^T (d, R) gives the
pre-activations (n, P, R), with R kernels shared over all P patches (58x faster than
`lax.conv_general_dilated` on XLA:CPU for these shapes).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax


def srelu(z, q: int, varrho):
    """Smoothed ReLU: 0 for z <= 0, z^q / (q varrho^(q-1)) on [0, varrho], z - (1 - 1/q) varrho above.

    C^1: value and slope match at 0 and varrho. Near 0 it is z^q, which turns feature growth
    into a race that amplifies small differences at initialisation.
    """
    zc = jnp.clip(z, 0.0, varrho)
    return jnp.where(z >= varrho, z - (1.0 - 1.0 / q) * varrho, zc**q / (q * varrho ** (q - 1)))


def preact(x, W):
    """Correlations of every patch with every kernel: x (n, P, d), W (R, d) -> (n, P, R)."""
    return jnp.einsum("npd,rd->npr", x, W)


def encode(x, W, q: int, varrho):
    """Sum-pooled kernel outputs h_r(X) = sum_p sReLU(<w_r, x_p>): (n, R)."""
    return srelu(preact(x, W), q, varrho).sum(axis=1)


# ---------------------------------------------------------------- supervised (P0)


def sl_logits(x, W, q: int, varrho):
    """P0 net F_i(X) = sum_{r<m} h_{i,r}(X) with fixed all-ones output: W (k, m, d) -> (n, k)."""
    k, m, d = W.shape
    return encode(x, W.reshape(k * m, d), q, varrho).reshape(-1, k, m).sum(axis=-1)


def cross_entropy(logits, y):
    """Mean cross-entropy of integer labels y (n,) under logits (n, k), accurate at any margin.

    Written as softplus(z), z = logsumexp_{j != y}(l_j - l_y): the loss log(1 + sum_j e^(l_j - l_y))
    and its gradient (e^(l_j - l_y) / (1 + S) for j != y, -S / (1 + S) for y) keep their relative
    precision when S is tiny. The usual form, logsumexp(l) - l_y (optax), rounds 1 + S to 1 in
    float32 once S < 6e-8: the loss and the correct class's pull -(1 - p_y) become exactly 0,
    which SL reaches after fit (per-sample losses ~1e-6 at GD time 1e6, ~1e-8 at 1e8).
    """
    own = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
    l_y = jnp.take_along_axis(logits, y[:, None], axis=-1)
    z = jax.nn.logsumexp(jnp.where(own, -jnp.inf, logits - l_y), axis=-1)
    return jax.nn.softplus(z).mean()


def sl_loss(W, x, y, q: int, varrho):
    return cross_entropy(sl_logits(x, W, q, varrho), y)


def distill_loss(W, x, y, teacher_logits, q: int, varrho, temp, weight):
    """Knowledge distillation of a teacher into the SL net: weight * tau^2 * CE(softmax(teacher / tau),
    student / tau) + (1 - weight) * CE(y, student). teacher_logits (n, k) are fixed targets."""
    return distill_from_logits(sl_logits(x, W, q, varrho), y, teacher_logits, temp, weight)


def distill_from_logits(student, y, teacher_logits, temp, weight):
    """The distillation loss of `distill_loss` from the student's logits (n, k)."""
    soft = jax.nn.softmax(teacher_logits / temp)
    kd = optax.softmax_cross_entropy(student / temp, soft).mean() * temp**2
    return weight * kd + (1.0 - weight) * cross_entropy(student, y)


# ---------------------------------------------------------------- mask reconstruction (P1)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def pooled_moments(z, q: int, varrho):
    """Each kernel's sum over patches of a = sReLU(z) and of a^2: z (n, P, R) -> S, Q (n, R).

    Its VJP, srelu'(z) (g_S + 2 a g_Q), is written out so that the gradient reads z once each way
    (one reduction of both sums, one elementwise pass): autodiff kept the activations (n, P, R) and
    read them three times, which made MRP's gradient 2.4x slower at k = 80 (1.7-2.1 s against
    0.72-0.84 s; its two matmuls 0.6-0.8 s), where these tensors no longer fit in a cache.
    """
    a = srelu(z, q, varrho)
    zero = jnp.zeros((), z.dtype)
    return jax.lax.reduce((a, a * a), (zero, zero), lambda u, v: (u[0] + v[0], u[1] + v[1]), (1,))


def _moments_fwd(z, q, varrho):
    return pooled_moments(z, q, varrho), (z, varrho)


def _moments_bwd(q, res, g):
    g_s, g_q = g
    a, pull = jax.vjp(lambda z, varrho: srelu(z, q, varrho), *res)
    return pull(g_s[:, None, :] + 2.0 * a * g_q[:, None, :])


pooled_moments.defvjp(_moments_fwd, _moments_bwd)


def _mrp_parts(params, teacher_W, x, weight, q: int, varrho, target: str, decoder: str):
    """The reconstruction target c (n, e), the decoded code of the patches weighted by `weight`,
    sum_p weight_p u_p (n, e), and sum_p ||u_p||^2 (n,); weight (n, P), or a scalar for all patches.

    data2vec: c is the teacher's code of the unmasked input (stop-gradient), u_p the decoded
    code of patch p (B a_p). MAE: the target is the masked patches' pixels sum_p (1 - keep_p) x_p
    and the prediction (sum_p keep_p a_p) D, so c = sum_p x_p and u_p = x_p + a_p D.
    A masked patch is zeroed and sReLU(0) = 0, so the student's code is sum_p keep_p a_p.
    With the diagonal decoder and one weight for all patches (the expected loss) these are each
    kernel's pooled moments: theta B S and sum_r B_r^2 Q_r (`pooled_moments`).
    """
    z = preact(x, params["W"])  # (n, P, R)
    teacher = lambda code: jax.lax.stop_gradient(code if teacher_W is None else encode(x, teacher_W, q, varrho))
    if target == "data2vec" and decoder == "diag" and jnp.ndim(weight) == 0:
        S, Q = pooled_moments(z, q, varrho)
        B = params["B"]
        return teacher(S), weight * B * S, jnp.sum(B**2 * Q, axis=-1)
    act = srelu(z, q, varrho)  # a_p: (n, P, R)
    pool = (lambda a: weight * a.sum(axis=1)) if jnp.ndim(weight) == 0 else (
        lambda a: jnp.einsum("np...,np->n...", a, weight))
    if target == "mae":
        u = x + act @ params["D"]
        return x.sum(axis=1), pool(u), jnp.sum(u**2, axis=(1, 2))
    u = act * params["B"] if decoder == "diag" else act @ params["B"].T
    return teacher(act.sum(axis=1)), pool(u), jnp.sum(u**2, axis=(1, 2))


def mrp_loss(params, teacher_W, x, keep, q: int, varrho, target: str, decoder: str):
    """Mask-reconstruction loss under one mask, 1/2 mean_n ||target - decoder(student code)||^2.

    params: dict with W (R, d) and the decoder: B (R,) for 'diag', (R, R) for 'full'; D (R, d)
    for the MAE target. keep (n, P) is the Bernoulli patch mask (1 = kept). teacher_W (R, d) is
    the data2vec teacher (the EMA weights), None for the stop-gradient copy of the student (its
    activations are the student's, computed once).
    """
    c, kept, _ = _mrp_parts(params, teacher_W, x, keep, q, varrho, target, decoder)
    return 0.5 * jnp.mean(jnp.sum((c - kept) ** 2, axis=-1))


def mrp_loss_expected(params, teacher_W, x, mask_keep, q: int, varrho, target: str, decoder: str):
    """The mask-reconstruction loss averaged over all masks, in closed form.

    With independent keep_p ~ Bernoulli(theta): E||c - sum_p keep_p u_p||^2
    = ||c - theta sum_p u_p||^2 + theta (1 - theta) sum_p ||u_p||^2 (mean plus variance).
    Its gradient is the mean of the fresh-mask gradients, so GD on it is the small-step limit
    of GD with a fresh mask every step.
    """
    c, kept, sq = _mrp_parts(params, teacher_W, x, mask_keep, q, varrho, target, decoder)
    mean = jnp.sum((c - kept) ** 2, axis=-1)
    return 0.5 * jnp.mean(mean + mask_keep * (1.0 - mask_keep) * sq)


# ---------------------------------------------------------------- fine-tuning (P1)


def ft_logits(params, x, q: int, varrho):
    """Pretrained encoder plus linear head: params W (R, d), A (k, R) -> logits (n, k)."""
    return encode(x, params["W"], q, varrho) @ params["A"].T


def ft_loss(params, x, y, q: int, varrho):
    return cross_entropy(ft_logits(params, x, q, varrho), y)
