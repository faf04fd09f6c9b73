"""Explicit Runge-Kutta steps of a gradient flow dy/dt = v(y), and the rules that size them.

Kept apart as in diffrax: a *tableau* (how stages combine into a step), a *controller* (how
large the next step is, and whether this one is kept). `mvsim.flow.make_step` puts them
together with a method's vector field. A step of size dt is an approximation of the flow over
GD time dt, so every rule here advances the same GD clock; they differ only in accuracy per
gradient evaluation (measured in benchmarks/solvers.py, validated in tests/test_flow.py).

Why not diffrax itself: mvsim needs (1) a clock per kernel row in one solve, all rows sharing
each gradient pass (diffrax has one scalar time per solve), (2) GD times to 1e10 in float32
with steps of ~100 (a compensated sum, `flow.advance`; diffrax's float32 time stalls there),
(3) first crossings of thousands of margins without stopping the solve (diffrax's events end
it), and (4) a projection onto the norm cap after every stage. The tableaus below are the
textbook ones (Bogacki & Shampine 1989; Heun-Euler), checked for order in tests/test_flow.py.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Tableau(NamedTuple):
    """An explicit Runge-Kutta pair.

    Stage 1 is the velocity at the step's start; stage i + 1 is the velocity at
    y + dt * sum_j a[i][j] k_j. The step is y + dt * sum_j b_j k_j, its local error estimate
    dt * sum_j e_j k_j (e = b - b_hat, the difference to the embedded lower-order solution),
    which shrinks like dt**order. fsal: the last stage is at the step's end, so it is the next
    step's first (First Same As Last): `evals` gradient evaluations per step.
    """

    name: str
    a: tuple
    b: tuple
    e: tuple
    order: int
    fsal: bool

    @property
    def evals(self) -> int:
        return len(self.a) + (0 if self.fsal else 1)


# Euler: no embedded estimate; its controller ('motion') estimates the error from consecutive steps.
EULER = Tableau("euler", (), (1.0,), (), 2, False)
# Heun's method (2nd order) with Euler embedded: error estimate dt/2 (k2 - k1).
HEUN = Tableau("heun", ((1.0,),), (0.5, 0.5), (-0.5, 0.5), 2, False)
# Bogacki-Shampine 3(2), FSAL: 3 evaluations per step.
BOSH3 = Tableau("bosh3", ((0.5,), (0.0, 0.75), (2 / 9, 1 / 3, 4 / 9)), (2 / 9, 1 / 3, 4 / 9, 0.0),
                (2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8), 3, True)

# Dormand-Prince 5(4), FSAL: 6 evaluations per step (Dormand & Prince 1980; the coefficients of
# Hairer, Norsett & Wanner, Solving ODEs I, II.5, Table 5.2, with its 4th-order embedded solution).
DOPRI5 = Tableau("dopri5", ((1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
                            (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
                            (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
                            (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
                 (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
                 (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40), 5, True)

TABLEAUS = {t.name: t for t in (EULER, HEUN, BOSH3, DOPRI5)}


def lead(dt, leaf):
    """dt (() or (R,) per row) shaped to multiply `leaf` (R, ...)."""
    return jnp.reshape(dt, jnp.shape(dt) + (1,) * (jnp.ndim(leaf) - jnp.ndim(dt)))


def stage_rows(tab: Tableau) -> list[list[float]]:
    """The tableau's a as an s x s matrix: row i places stage i + 1 (row 0, the first stage, is zeros)."""
    s = len(tab.b)
    return [[0.0] * s] + [list(row) + [0.0] * (s - len(row)) for row in tab.a]


def rk_step(field, move, tab: Tableau, y, k1, dt, n):
    """One step of `tab` from y (velocity k1 there) over dt (() or (R,)).

    field(y, n) -> (velocity, obs); move(y, dt, v) -> the state at y + dt * v (with any
    projection). Returns (y_new, error estimate (a velocity-shaped pytree times dt, or None for
    Euler), velocity at y_new, obs at y_new, the stages (leading axis: stage; see `stiffness`)).
    The stages run as one `lax.scan` over the rows of the tableau, so the vector field is traced
    and compiled once whatever the number of stages.
    """
    s = len(tab.b)
    a = jnp.asarray(stage_rows(tab), jnp.float32)
    ks = jax.tree_util.tree_map(lambda k: jnp.zeros((s,) + k.shape, k.dtype).at[0].set(k), k1)
    at = lambda coeffs, ks: jax.tree_util.tree_map(lambda K: jnp.tensordot(coeffs, K, axes=1), ks)

    def stage(ks, i):
        k, obs = field(move(y, dt, at(a[i], ks)), n)
        return jax.tree_util.tree_map(lambda K, x: K.at[i].set(x), ks, k), obs

    if s > 1:
        ks, obs = jax.lax.scan(stage, ks, jnp.arange(1, s))
        obs = jax.tree_util.tree_map(lambda o: o[-1], obs)
    y_new = move(y, dt, at(jnp.asarray(tab.b, jnp.float32), ks))
    if tab.fsal:  # the last stage was evaluated at y_new (its row of a is b): its obs is y_new's
        k_new = jax.tree_util.tree_map(lambda K: K[-1], ks)
    else:
        k_new, obs = field(y_new, n)
    if not tab.e:
        return y_new, None, k_new, obs, ks
    err = jax.tree_util.tree_map(lambda v: lead(dt, v) * v, at(jnp.asarray(tab.e, jnp.float32), ks))
    return y_new, err, k_new, obs, ks


def stiffness(tab: Tableau, ks, dt):
    """The last two stages' difference in velocity and in state, (dk, dy) (velocity-shaped pytrees).

    ||dk|| / ||dy|| estimates the largest |eigenvalue| of the field's Jacobian along the step
    (Hairer & Wanner, Solving ODEs II, IV.2: stiffness detection in explicit codes). An explicit
    step of dt with dt * rho near the edge of its stability region (-2.51 on the real axis for
    Bogacki-Shampine) keeps a stiff mode oscillating at about constant amplitude, which the
    embedded estimate accepts; `STABLE` / rho keeps it damped. Tableaus with one stage: (None, None)."""
    if len(tab.b) < 2:
        return None, None
    rows = jnp.asarray(stage_rows(tab), jnp.float32)
    coeff = rows[-1] - rows[-2]  # for a FSAL pair the last row is b: the step's end
    dk = jax.tree_util.tree_map(lambda K: K[-1] - K[-2], ks)
    dy = jax.tree_util.tree_map(lambda K: lead(dt, K[0]) * jnp.tensordot(coeff, K, axes=1), ks)
    return dk, dy


# A stiff mode of rate rho decays by |R(-STABLE)| per step at dt = STABLE / rho: 1/3 for
# Bogacki-Shampine (R(z) = 1 + z + z^2/2 + z^3/6), 1/2 for Heun, 0.37 for Dormand-Prince
# (R(z) = sum_{j <= 5} z^j / j! + z^6 / 600).
STABLE = 1.0


# ---------------------------------------------------------------- controllers


def first_step(speed, rtol, dt_max):
    """The first proposal: moves the fastest row by rtol of its size (grown quickly after)."""
    return jnp.minimum(jnp.where(speed > 0, rtol / jnp.maximum(speed, 1e-30), dt_max), dt_max)


def error_control(ratio, ratio_prev, dt, h, order, dt_max, icoeff, pcoeff, dt_prev=None, safety=0.9, shrink=0.2,
                  grow=10.0):
    """PI controller on an embedded error estimate (diffrax's PIDController without its D term).

    ratio: local error / tolerance of the step just tried (() or (R,)); ratio_prev: that of the
    last accepted step (1 before the first); dt: its size; h: the proposal it came from (dt < h
    when it was clipped to land on a checkpoint). The step is kept when ratio <= 1. Next proposal:
    dt * safety * ratio**(-(icoeff + pcoeff)/order) * ratio_prev**(pcoeff/order), within [shrink,
    grow] x dt (pcoeff = 0, icoeff = 1: the integral controller). The pcoeff term damps the
    accept-grow-reject cycle of an integral controller where the error grows faster than dt**order
    (near the stability edge, or where the field is only C^1: sReLU's kinks), at the price of
    slower growth where the error is far below tolerance (Gustafsson 1991; Hairer & Wanner,
    Solving ODEs II, IV.2).

    dt_prev (the last accepted step before this one; 0: none): Gustafsson's predictive limit, as in
    Hairer's RADAU5. After a kept step the proposal is at most dt * (dt / dt_prev) * safety *
    ratio**(-1/order) * (ratio_prev / ratio)**(1/order): where the kept steps shrink geometrically
    it extrapolates the shrinking instead of proposing growth that is then rejected. That is SL's
    fit, where kernels blow up one after another (dLambda/dt ~ Lambda^(q-1)) and each step must be
    a fraction of the fastest kernel's time to blow-up; PI alone rejected 25-27% of SL's attempts at
    k = 10-40 (docs/results.md, "A predictive step-size controller"). ratio_prev is floored at 1e-2
    as in RADAU5. Taking the smaller of the two proposals never grows a step faster than PI.

    A kept step clipped to a checkpoint does not shrink the proposal. Rows that did not step (dt =
    0) keep theirs. Returns (accept, next proposal).
    """
    tiny = lambda r: jnp.maximum(r, 1e-12)
    factor = safety * tiny(ratio) ** (-(icoeff + pcoeff) / order) * tiny(ratio_prev) ** (pcoeff / order)
    factor = jnp.clip(factor, shrink, grow)
    accept = ratio <= 1.0
    if dt_prev is not None:
        trend = dt / jnp.maximum(dt_prev, 1e-30)
        predicted = safety * trend * tiny(ratio) ** (-1 / order) * (jnp.maximum(ratio_prev, 1e-2) / tiny(ratio)) ** (1 / order)
        factor = jnp.where(accept & (dt_prev > 0), jnp.minimum(factor, jnp.clip(predicted, shrink, grow)), factor)
    h_new = dt * jnp.where(accept, factor, jnp.minimum(factor, 0.9))
    h_new = jnp.where(accept & (dt < h), jnp.maximum(h_new, h), h_new)
    return accept, jnp.minimum(jnp.where(dt > 0, h_new, h), dt_max)


def motion_control(speed, err, h_prev, dt_prev, delta, dt_max):
    """The Euler rule's proposal (() or (R,)) after a step of dt_prev (proposed as h_prev).

    speed: relative speed ||v_r|| / ||w_r|| at the new state (fastest row for a global clock);
    err: that step's relative local error from consecutive velocities, dt_prev/2 ||v_r - v_r,prev||
    / ||w_r|| (Heun's estimate, a step late). The proposal is the largest step with motion <= delta
    x norm, error <= delta^2 x norm (the Euler error grows like dt^2, hence the square root), at
    most 2x the last proposal and dt_max. Rows that did not step (waiting at a checkpoint for the
    other rows) start again as at the first step (`first_step` at delta^2).
    """
    h = jnp.where(speed > 0, delta / jnp.maximum(speed, 1e-30), dt_max)
    h = jnp.where(err > 0, jnp.minimum(h, dt_prev * jnp.sqrt(delta**2 / jnp.maximum(err, 1e-30))), h)
    h = jnp.minimum(jnp.minimum(h, 2.0 * h_prev), dt_max)
    return jnp.where(dt_prev > 0, h, first_step(speed, delta**2, dt_max))
