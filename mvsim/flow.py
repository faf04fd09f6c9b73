"""Step rules on one gradient-descent clock, and the loop that runs a method to its checkpoints.

Every method trains by full-batch gradient descent on its loss. GD with a small step eta run
for T steps follows the gradient flow dp/dt = -grad L(p) up to GD time t = eta * T (the sum of
the step sizes). The theorems are about that flow at t = poly(k), so every method here reports
GD time t, and is read at the same GD times (`train.checkpoints`).

Three step rules, each an Euler step of that flow of size dt (GD time advances by dt):

* `gd_dt`: plain GD, dt = eta. Faithful by definition; slow: 1e10 / eta steps to reach 1e10.
* `adaptive_dt`: one dt for all parameters, the largest that keeps two things in bounds: the
  motion (no kernel moves more than `delta` times its own norm) and the local error of the
  Euler step just taken (Heun's estimate dt/2 ||g(t) - g(t - dt)||, at most delta^2 times the
  kernel's norm; the next step grows at most 2x). The motion bound alone is normalised GD,
  which never settles at a stable point (it zig-zags at the step size); the error bound
  shrinks the step there. Euler steps of the *joint* flow with a step that depends on the
  state follow the flow's path, and t, the sum of the steps, is the flow's time: a change of
  time of the same flow. Accuracy is set by delta (tested against small-step GD in
  tests/test_flow.py, and converging as delta -> 0).
* per kernel (`controlled_dt` on (R,) arrays): a dt of its own for every kernel (row), the same
  rule per row, with a GD clock
  per kernel. This is a change of time only when the loss separates over kernels (each
  kernel's gradient depends on that kernel alone: MRP with a fixed diagonal decoder and a
  stop-gradient data2vec teacher; `config._separable`). Then the joint flow is k*m
  independent flows, and re-timing each separately changes nothing but the times at which
  they are observed; every kernel is stepped until its own clock reads the checkpoint, so
  the state logged at a checkpoint is the flow's state at that GD time. MRP from a small
  init needs this: its gradient scales like Lambda^(2q-1), so a global step is set by the
  fastest kernel while the others sit still for 1e8 of GD time.

Steps are clipped so that each clock lands exactly on the next checkpoint.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Clocked(NamedTuple):
    """A training state on the GD clock. t, h, dt are () for a global clock or (R,) per kernel."""

    state: object  # the method's pytree (parameters, teacher, ...)
    t: jax.Array  # GD time reached
    n: jax.Array  # steps taken (int32)
    h: jax.Array  # the step the controller proposes next (before clipping to a checkpoint)
    dt: jax.Array  # the last step taken (0 before the first)
    g: object  # the gradient at the last step's start (for the error estimate)
    lo: jax.Array  # the rounding error of t: GD time is t + lo (float32 alone stalls at t ~ 1e9)
    obs: object = None  # event margins of the state at the start of the last step (see `Events`)


# ---------------------------------------------------------------- step sizes


def row_speed(p, g, floor):
    """Relative speed of every row of p under the velocity g: ||g_r|| / max(||p_r||, floor).

    p, g (R, ...) or (R,) -> (R,). A row's norm is its size; floor guards rows that start at 0.
    """
    p2 = p.reshape(p.shape[0], -1)
    g2 = g.reshape(g.shape[0], -1)
    return _norm(g2) / jnp.maximum(_norm(p2), floor)


def _norm(a):
    """Row norms of a (R, n), safe for tiny entries: scale by the row's largest entry first,
    since squaring gradients of ~1e-20 underflows float32 (JAX flushes subnormals on CPU)."""
    top = jnp.max(jnp.abs(a), axis=-1)
    safe = jnp.where(top > 0, top, 1.0)
    return jnp.where(top > 0, top * jnp.linalg.norm(a / safe[:, None], axis=-1), 0.0)


def gd_dt(lr, left):
    """Plain GD: dt = lr, clipped to land on the checkpoint `left` GD time away."""
    return jnp.minimum(lr, left)


def controlled_dt(speed, err, h_prev, dt_prev, delta, dt_max, left):
    """Next step (dt, proposal h) of the adaptive rule; arrays are () or per row (R,).

    speed: relative speed ||g_r|| / ||w_r|| now (fastest row for a global clock); err: the last
    step's relative local error dt_prev/2 ||g_r - g_r,prev|| / ||w_r|| (0 before the first step).
    The proposal is the largest step with motion <= delta x norm, error <= delta^2 x norm (the
    Euler error grows like dt^2, hence the square root), at most 2x the last proposal and
    dt_max. The step taken is the proposal clipped to land on the checkpoint `left` GD time away.
    """
    h = jnp.where(speed > 0, delta / jnp.maximum(speed, 1e-30), dt_max)
    h = jnp.where(err > 0, jnp.minimum(h, dt_prev * jnp.sqrt(delta**2 / jnp.maximum(err, 1e-30))), h)
    h = jnp.where(dt_prev > 0, h, delta * h)  # no error estimate yet: start with motion delta^2
    h = jnp.minimum(jnp.minimum(h, 2.0 * h_prev), dt_max)
    return jnp.maximum(jnp.minimum(h, left), 0.0), h


def step_error(p, g, g_prev, dt_prev, floor):
    """Relative local error of the last Euler step, per row: dt_prev/2 ||g - g_prev|| / ||p||."""
    return 0.5 * dt_prev * row_speed(p, g - g_prev, floor)


def at_rest(p, g, g_prev, dt_prev, delta, floor, cap):
    """Rows settled at a stable fixed point on the sphere ||w|| = cap (per-kernel clocks only), (R,).

    From the last step, the row's contraction rate is lam = ||g - g_prev|| / (dt_prev ||g_prev||),
    so its distance to the fixed point is about ||g|| / lam. A row is at rest when its gradient
    shrank over the last step and that distance is below delta^2 times its norm. An autonomous
    flow that is that close to a stable fixed point stays there for all later times, so the row
    may skip to the next checkpoint unmoved: explicit steps cannot (their size is bounded by the
    fixed point's stiffness, ~200 GD time per step for a captured MRP kernel at the norm cap,
    against horizons of 1e10). Only for flows that separate per row: a row's fixed point must
    not move when other rows do. Only rows on the sphere of the norm cap (captured kernels), where
    this stiffness arises; inside the ball a slowing row may be passing a saddle, not settling.
    """
    on_cap = (cap > 0) & (_norm(p) >= cap * (1 - 1e-4))
    gn, gpn = _norm(g), _norm(g_prev)
    change = _norm(g - g_prev)
    size = jnp.maximum(_norm(p), floor)
    dist = dt_prev * gn * gpn / jnp.maximum(change * size, 1e-30)
    return on_cap & (dt_prev > 0) & (gn < gpn) & (change > 0) & (dist < delta**2)


def left(c: Clocked, target):
    """GD time from the clock to `target`, with the clock's rounding error (() or (R,))."""
    return (target - c.t) - c.lo


def advance(t, lo, dt, target):
    """(t, lo) + dt as a compensated float32 sum (GD time t + lo), set exactly to (target, 0)
    when dt was clipped to reach it. Plain float32 would add nothing at t = 3e9 for dt = 100."""
    s = t + dt
    bp = s - t
    lo = lo + ((t - (s - bp)) + (dt - bp))  # the part of dt that s did not keep (two-sum)
    t_new = s + lo
    lo = lo - (t_new - s)
    done = dt >= (target - t) - lo
    return jnp.where(done, target, t_new), jnp.where(done, 0.0, lo)


# ---------------------------------------------------------------- projected steps (norm cap)


def tangent(W, g, cap):
    """The gradient seen by projected GD on the ball ||w_r|| <= cap: for rows on the sphere whose
    descent direction points outward, the outward (radial) part is removed. cap = 0: no ball."""
    w2 = jnp.sum(W * W, axis=-1, keepdims=True)
    radial = jnp.sum(g * W, axis=-1, keepdims=True)
    on = (cap > 0) & (w2 >= (cap * (1 - 1e-4)) ** 2) & (radial < 0)
    return jnp.where(on, g - radial / jnp.maximum(w2, 1e-30) * W, g)


def project(W, cap):
    """Rows of W longer than cap pulled back onto the sphere (cap = 0: unchanged)."""
    norm = jnp.linalg.norm(W, axis=-1, keepdims=True)
    return jnp.where((cap > 0) & (norm > cap), W * cap / jnp.maximum(norm, 1e-30), W)


# ---------------------------------------------------------------- events at step resolution


class Events(NamedTuple):
    """First crossing times of watched margins, at step resolution.

    A method watches a pytree of margins (for example Lambda minus the capture line, per kernel and
    feature); an event is a margin's first crossing from below 0 to >= 0. Margins are observed at
    the start of every step (where the gradient's forward pass has them for free) and at the end of
    the run; the crossing time is interpolated linearly in the margin inside the step where it
    happens. A margin already >= 0 at time 0 has its event at 0 (left-censored: before the first
    step); one that never crosses keeps inf (right-censored at the horizon reached).
    """

    t: object  # pytree like the margins: first crossing times (inf: none yet)
    m: object  # the margins at the last observation
    tm: jax.Array  # GD time of the last observation, () or (R,) per kernel
    seen: jax.Array  # bool: observed at least once


def _lead(t, m):
    """Times t (() or (R,)) broadcast against margins m whose leading axis is R."""
    return jnp.reshape(t, jnp.shape(t) + (1,) * (jnp.ndim(m) - jnp.ndim(t)))


def observe(ev: Events, t, margins) -> Events:
    """`ev` updated with the margins observed at GD time t (() or (R,) per kernel)."""

    def first(t_ev, m_prev, m):
        t1, t0 = _lead(t, m), _lead(ev.tm, m)
        gap = jnp.where(m_prev < 0, m_prev - m, -1.0)  # < 0 where m_prev < 0 <= m
        frac = jnp.clip(m_prev / jnp.minimum(gap, -1e-30), 0.0, 1.0)
        crossed = jnp.where(ev.seen, (m_prev < 0) & (m >= 0), m >= 0)
        t_hit = jnp.where(ev.seen, t0 + frac * (t1 - t0), 0.0)
        return jnp.where(jnp.isinf(t_ev) & crossed, t_hit, t_ev)

    t_new = jax.tree_util.tree_map(first, ev.t, ev.m, margins)
    return Events(t_new, margins, jnp.broadcast_to(t, jnp.shape(ev.tm)), jnp.asarray(True))


def no_events(margins, t0) -> Events:
    """Events of `margins`'s shape before any observation."""
    inf = jax.tree_util.tree_map(lambda m: jnp.full(jnp.shape(m), jnp.inf, jnp.float32), margins)
    return Events(inf, margins, t0, jnp.asarray(False))


# ---------------------------------------------------------------- the loop


def log_times(checkpoints, horizon: float, extra=()) -> np.ndarray:
    """GD times at which a method is measured: 0, every checkpoint below its horizon, the
    horizon, and `extra` times (below the horizon); sorted and unique. Static (numpy)."""
    times = [0.0] + [c for c in checkpoints if c < horizon] + [horizon] + [e for e in extra if e <= horizon]
    return np.unique(np.asarray(times, np.float64))


def run_clocked(step: Callable, state, grad0, times: np.ndarray, max_steps: int, log: Callable,
                per_kernel=0, dt_max=1e12, watch: Callable | None = None):
    """Run `step` until the clock reads each of `times` in turn; log there.

    step(Clocked, target) -> Clocked takes one step towards GD time `target` (never past it); with
    `watch`, it also sets `obs` of the returned Clocked to the margins of the state it started from.
    grad0: a pytree shaped like the gradients step keeps in Clocked.g (zeros).
    per_kernel = R gives a clock per row (R,), else one clock. Stops stepping after max_steps in
    all, so that a run that cannot reach its horizon still ends; its `t` then says how far it got.
    watch(state) -> margins (a pytree; leading axis R with per-kernel clocks): the events
    (`Events`) are their first crossings of 0, timed inside the step where they happen.
    Returns (final Clocked, logs stacked over times (leading axis len(times)), t at each log
    (len(times),) or (len(times), R), steps at each log, first crossing times like watch's
    margins (None without watch)).
    """
    t0 = jnp.zeros((per_kernel,) if per_kernel else ())
    obs0 = watch(state) if watch else None
    c = Clocked(state, t0, jnp.asarray(0, jnp.int32), t0 + dt_max, t0, grad0, t0, obs0)
    ev = no_events(obs0, t0) if watch else None
    target_of = jnp.asarray(times, jnp.float32)

    def body(carry, target):
        c, ev = carry
        new = step(c, target)
        return new, (observe(ev, c.t, new.obs) if watch else None)

    def reach(carry, target):
        def more(carry):
            c = carry[0]
            return jnp.any(c.t < target) & (c.n < max_steps)

        c, ev = jax.lax.while_loop(more, lambda carry: body(carry, target), carry)
        return (c, ev), (log(c.state), c.t, c.n)

    # Time 0 is logged as the initial state; then one while loop per later time.
    first = (log(state), t0, jnp.asarray(0, jnp.int32))
    (c, ev), rest = jax.lax.scan(reach, (c, ev), target_of[1:])
    logs, ts, ns = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    events = observe(ev, c.t, watch(c.state)).t if watch else None
    return c, logs, ts, ns, events
