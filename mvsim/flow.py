"""Step rules on one gradient-descent clock, and the loop that runs a method to its checkpoints.

Every method trains by full-batch gradient descent on its loss. GD with a small step eta run
for T steps follows the gradient flow dp/dt = -grad L(p) up to GD time t = eta * T (the sum of
the step sizes). The theorems are about that flow at t = poly(k), so every method here reports
GD time t, and is read at the same GD times (`train.checkpoints`).

Step rules, each a step of that flow of size dt (GD time advances by dt); `Solver` names one:

* 'gd': plain GD, an Euler step dt = eta. Faithful by definition; slow: 1e10 / eta steps to
  reach 1e10.
* 'motion' (train.solver = 'euler'): Euler steps, one dt for all parameters, the largest that
  keeps two things in bounds: the motion (no kernel moves more than `delta` times its own norm)
  and the local error of the step just taken (Heun's estimate dt/2 ||v(t) - v(t - dt)||, at most
  delta^2 times the kernel's norm; the next step grows at most 2x). The motion bound alone is
  normalised GD, which never settles at a stable point (it zig-zags at the step size); the
  error bound shrinks the step there.
* 'error' (train.solver = 'heun' or 'bosh3'): an explicit Runge-Kutta pair (`mvsim.solver`) whose
  embedded estimate bounds each step's local error by rtol times each kernel's norm; a step
  over that is retried smaller (PI controller, `solver.error_control`).

Steps of the *joint* flow with a size that depends on the state follow the flow's path, and t,
the sum of the steps, is the flow's time: a change of time of the same flow. Accuracy is set by
delta or rtol (tested against small-step GD in tests/test_flow.py, converging as they -> 0).

Per kernel (per_kernel = R): a dt of its own for every kernel (row), the same rule per row, with
a GD clock per kernel. This is a change of time only when the loss separates over kernels (each
kernel's velocity depends on that kernel alone: MRP with a fixed diagonal decoder and a
stop-gradient data2vec teacher; `config._separable`). Then the joint flow is k*m independent
flows, and re-timing each separately changes nothing but the times at which they are observed;
every kernel is stepped until its own clock reads the checkpoint, so the state logged at a
checkpoint is the flow's state at that GD time. MRP from a small init needs this: its gradient
scales like Lambda^(2q-1), so a global step is set by the fastest kernel while the others sit
still for 1e8 of GD time. A kernel goes on past a checkpoint without waiting for the others
(`_run_rows`): each gradient pass serves every kernel with time to go.

Steps are clipped so that each clock lands exactly on the next checkpoint, except with dense
output (`run_clocked(dense=True)`: SL and fine-tuning on adaptive steps): there the steps run
to the horizon unclipped, and the state at a checkpoint inside a step is the step's cubic Hermite
interpolant (`hermite`), third-order accurate like the Bogacki-Shampine step (diffrax's SaveAt
with dense interpolation).

"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mvsim import solver as rk


class Clocked(NamedTuple):
    """A training state on the GD clock. t, h, dt are () for a global clock or (R,) per kernel."""

    state: object  # the method's pytree (parameters, teacher, ...)
    t: jax.Array  # GD time reached
    n: jax.Array  # steps taken (int32)
    h: jax.Array  # the step the controller proposes next (before clipping to a checkpoint); inf: at rest
    dt: jax.Array  # the last step taken (0 before the first)
    g: object  # the velocity dy/dt at `state` (the next step's first stage)
    lo: jax.Array  # the rounding error of t: GD time is t + lo (float32 alone stalls at t ~ 1e9)
    obs: object = None  # event margins of `state` (see `Events`; None: not watched)
    ratio: jax.Array = None  # error / tolerance of the last accepted step ('error' rule; 1 before the first)


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


def at_rest(p, g, g_prev, dt_prev, tol, floor, cap):
    """Rows settled at a stable fixed point on the sphere ||w|| = cap (per-kernel clocks only), (R,).

    From the last step, the row's contraction rate is lam = ||g - g_prev|| / (dt_prev ||g_prev||),
    so its distance to the fixed point is about ||g|| / lam. A row is at rest when its gradient
    shrank over the last step and that distance is below tol times its norm. An autonomous
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
    return on_cap & (dt_prev > 0) & (gn < gpn) & (change > 0) & (dist < tol)


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


class Solver(NamedTuple):
    """How a flow is stepped: `rule` 'gd' (plain GD at lr), 'motion' (Euler, delta) or 'error'
    (the pair `tableau` at rtol, its PI controller's icoeff and pcoeff, with Gustafsson's predictive
    limit when `predictive`: `solver.error_control`);
    dt_max caps every step. Kernels at rest on the norm cap (see `at_rest`) are detected at
    rest_tol (delta^2 for 'motion', rtol for 'error')."""

    rule: str
    tableau: rk.Tableau
    lr: float
    delta: float
    rtol: float
    dt_max: float
    icoeff: float = 1.0
    pcoeff: float = 0.0
    predictive: bool = False  # 'error' rule: Gustafsson's predictive limit on the PI proposal

    @property
    def rest_tol(self):
        return self.rtol if self.rule == "error" else self.delta**2


def _where(keep, new, old):
    """Leaves of `new` where keep (() or (R,) per row), of `old` elsewhere."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(rk.lead(keep, a), a, b), new, old)


def make_step(field, move, rel, sol: Solver, rest=None):
    """(init, step) of the flow dy/dt = v(y) under `sol`, for `run_clocked`.

    field(y, n) -> (velocity pytree, event margins or None) at state y (n: steps so far, for
    fresh masks); move(y, dt, v) -> the state at y + dt * v (dt () or (R,); with any projection);
    rel(y, e) -> relative size of a velocity-shaped e against y, per clock (() or (R,): the
    largest ||e_r|| / ||y_r|| over the clock's rows). rest(y, v, v_prev, dt) -> (R,) rows at
    rest (per-kernel clocks only): they jump to each checkpoint unmoved (`at_rest`).
    init(y, rows=0) -> the Clocked at GD time 0 (rows = R: a clock per row).
    step(c, target) -> the Clocked after one step towards GD time target (never past it).
    """
    tab = sol.tableau

    def init(y, rows=0):
        t0 = jnp.zeros((rows,) if rows else ())
        v, obs = field(y, jnp.asarray(0, jnp.int32))
        first = rk.first_step(rel(y, v), sol.rest_tol, sol.dt_max)
        h = jnp.broadcast_to(jnp.asarray(sol.lr, jnp.float32), t0.shape) if sol.rule == "gd" else first
        return Clocked(y, t0, jnp.asarray(0, jnp.int32), h + t0, t0, v, t0, obs, 1.0 + t0)

    def step(c: Clocked, target):
        to_go = jnp.maximum(left(c, target), 0.0)
        resting = jnp.isinf(c.h)
        dt = jnp.minimum(c.h, to_go)
        moving_dt = jnp.where(resting, 0.0, dt)
        y, err, v, obs, ks = rk.rk_step(field, move, tab, c.state, c.g, moving_dt, c.n)
        ratio = c.ratio
        if sol.rule == "error":
            tried = rel(c.state, err) / sol.rtol
            accept, h = rk.error_control(tried, c.ratio, moving_dt, c.h, tab.order, sol.dt_max, sol.icoeff,
                                         sol.pcoeff, c.dt if sol.predictive else None)
            ratio = jnp.where(accept & (moving_dt > 0), tried, c.ratio)
            if rest is not None:  # rows that may come to rest: keep their stiff modes damped (`rk.stiffness`)
                dk, dy = rk.stiffness(tab, ks, moving_dt)
                rho = rel(c.state, dk) / jnp.maximum(rel(c.state, dy), 1e-30)
                h = jnp.where(moving_dt > 0, jnp.minimum(h, rk.STABLE / jnp.maximum(rho, 1e-30)), h)
        elif sol.rule == "motion":
            e = jax.tree_util.tree_map(lambda a, b: 0.5 * rk.lead(moving_dt, a) * (a - b), v, c.g)
            accept = jnp.ones(jnp.shape(dt), bool)
            h = rk.motion_control(rel(y, v), rel(y, e), c.h, moving_dt, sol.delta, sol.dt_max)
        else:
            accept, h = jnp.ones(jnp.shape(dt), bool), c.h
        if rest is not None:
            h = jnp.where(accept & rest(y, v, c.g, moving_dt), jnp.inf, h)
        h = jnp.where(resting, jnp.inf, h)
        t, lo = advance(c.t, c.lo, jnp.where(accept, dt, 0.0), target)
        return Clocked(_where(accept, y, c.state), t, c.n + 1, h, jnp.where(accept, moving_dt, c.dt),
                       _where(accept, v, c.g), lo, None if obs is None else _where(accept, obs, c.obs), ratio)

    return init, step


def run_clocked(step: Callable, c: Clocked, times: np.ndarray, max_steps: int, log: Callable, dense=False,
                watch=None):
    """Run `step` from `c` until the clock reads each of `times` in turn; log there.

    step(Clocked, target) -> Clocked takes one step towards GD time `target` (() or (R,); never
    past it); see `make_step`. The clock is () or per row (R,); with a clock per row see
    `_run_rows`, with dense=True (a global clock, a state without projections) `_run_dense`
    (watch(state) -> the event margins there, needed with dense output when events are watched).
    Stops stepping after max_steps in all, so that a run that cannot reach its horizon still
    ends; its `t` then says how far it got. When the Clocked carries event margins (`obs`), their
    first crossings of 0 are timed inside the step where they happen (`Events`).
    Returns (final Clocked, logs stacked over times (leading axis len(times)), t at each log
    (len(times),) or (len(times), R), steps at each log (len(times),), first crossing times like
    the margins (None without them)).
    """
    watching = c.obs is not None
    ev = observe(no_events(c.obs, c.t), c.t, c.obs) if watching else None
    if jnp.ndim(c.t) == 1:
        return _run_rows(step, c, ev, times, max_steps, log)
    if dense:
        return _run_dense(step, c, ev, times, max_steps, log, watch)
    target_of = jnp.asarray(times, jnp.float32)

    def body(carry, target):
        c, ev = carry
        new = step(c, target)
        return new, (observe(ev, new.t, new.obs) if watching else None)

    def reach(carry, target):
        def more(carry):
            c = carry[0]
            return jnp.any(c.t < target) & (c.n < max_steps)

        c, ev = jax.lax.while_loop(more, lambda carry: body(carry, target), carry)
        return (c, ev), (log(c.state), c.t, c.n)

    # Time 0 is logged as the initial state; then one while loop per later time.
    first = (log(c.state), c.t, c.n)
    (c, ev), rest = jax.lax.scan(reach, (c, ev), target_of[1:])
    logs, ts, ns = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    return c, logs, ts, ns, (ev.t if watching else None)


def hermite(y0, v0, y1, v1, dt, theta):
    """The cubic Hermite interpolant of a step from y0 (velocity v0) to y1 (velocity v1) over dt,
    at the fraction theta () of it (pytrees like y0). It matches the states and the velocities at
    both ends, so its error inside the step is O(dt^4), that of a third-order step."""
    th = theta
    h00, h10 = (1 + 2 * th) * (1 - th) ** 2, th * (1 - th) ** 2
    h01, h11 = th**2 * (3 - 2 * th), th**2 * (th - 1)
    return jax.tree_util.tree_map(lambda a, va, b, vb: h00 * a + h10 * dt * va + h01 * b + h11 * dt * vb,
                                  y0, v0, y1, v1)


def _run_dense(step, c: Clocked, ev, times, max_steps: int, log, watch):
    """`run_clocked` with dense output on a global clock: steps run unclipped towards the horizon
    (the last one lands on it), and a checkpoint inside a kept step is logged from the step's cubic
    Hermite interpolant (`hermite`: the velocities at both ends are the step's first stage and the
    next step's). Clipping each step to land on a checkpoint cost SL about one step in ten and
    fine-tuning about one in four (two checkpoints per decade). As in the clipped loop, one while
    loop per log time, which also carries the state before the last step; a step that passes
    several times serves each. With event margins, the interpolated state at a checkpoint is also an
    observation (its margins: watch(state)), and the step's observations are replayed through it, so
    the events agree with what is logged there. Times a max_steps stop leaves unreached are logged at
    the state reached, with the GD time reached."""
    target_of = jnp.asarray(times, jnp.float32)
    horizon = target_of[-1]
    watching = ev is not None
    if watching and watch is None:
        raise ValueError("dense output with event margins needs watch(state) -> the margins there")
    pick = lambda keep, a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(keep, x, y), a, b)

    def body(carry):
        c, ev, _, _ = carry
        new = step(c, horizon)
        return new, (observe(ev, new.t, new.obs) if watching else None), c, ev

    def reach(carry, target):
        more = lambda carry: (left(carry[0], target) > 0) & (carry[0].n < max_steps)
        c, ev, before, ev_before = jax.lax.while_loop(more, body, carry)
        passed = left(c, target) <= 0  # inside the last kept step, from `before` to `c`
        theta = jnp.clip(left(before, target) / jnp.maximum(c.dt, 1e-30), 0.0, 1.0)
        state = pick(passed, hermite(before.state, before.g, c.state, c.g, c.dt, theta), c.state)
        if watching:  # the step's observations: before, this time, (later times,) c
            at = observe(ev_before, target, watch(state))
            ev, ev_before = pick(passed, observe(at, c.t, c.obs), ev), pick(passed, at, ev_before)
        return (c, ev, before, ev_before), (log(state), jnp.where(passed, target, c.t), c.n)

    first = (log(c.state), c.t, c.n)
    (c, ev, _, _), rest = jax.lax.scan(reach, (c, ev, c, ev), target_of[1:])
    logs, ts, ns = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    return c, logs, ts, ns, (ev.t if watching else None)


def _run_rows(step, c: Clocked, ev, times, max_steps: int, log):
    """`run_clocked` with a clock per row: every row goes on past a checkpoint without waiting.

    Each row steps towards its own next time of `times` (the step lands it there exactly) and
    keeps its state there; a row never waits for the others, so a gradient pass serves every row
    that still has time to go (waiting at each checkpoint for the slowest row tripled MRP's passes:
    a third of the rows moved per pass). Every leaf of the state has the rows as its leading axis;
    the log at time j is `log` of the rows' states kept at j, taken after the loop (one time at a
    time, `lax.map`). Rows that a max_steps stop leaves short of a time are kept there as they are,
    with the GD time they reached. Steps at each log: the pass at which its last row reached it.
    """
    T, R = len(times), c.t.shape[0]
    target_of = jnp.asarray(times, jnp.float32)
    rows = jnp.arange(R)
    watching = ev is not None
    kept = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (T,) + x.shape), c.state)  # time 0 in row 0
    t_kept = jnp.broadcast_to(c.t, (T, R))
    n_kept = jnp.zeros(T, jnp.int32)
    nxt = jnp.ones(R, jnp.int32)  # each row's next log time (times[0] = 0 is its initial state)

    def body(carry):
        c, ev, nxt, kept, t_kept, n_kept = carry
        j = jnp.minimum(nxt, T - 1)  # rows past the last time step by 0 towards it
        c = step(c, target_of[j])
        hit = (nxt < T) & (c.t >= target_of[j])
        put = lambda K, x: K.at[j, rows].set(jnp.where(rk.lead(hit, x), x, K[j, rows]))
        kept = jax.tree_util.tree_map(put, kept, c.state)
        t_kept = put(t_kept, c.t)
        n_kept = n_kept.at[j].max(jnp.where(hit, c.n, 0))
        ev = observe(ev, c.t, c.obs) if watching else None
        return c, ev, nxt + hit, kept, t_kept, n_kept

    more = lambda carry: jnp.any(carry[2] < T) & (carry[0].n < max_steps)
    c, ev, nxt, kept, t_kept, n_kept = jax.lax.while_loop(more, body, (c, ev, nxt, kept, t_kept, n_kept))
    short = jnp.arange(T)[:, None] >= nxt[None, :]  # (T, R): times a row did not reach (max_steps)
    fill = lambda K, x: jnp.where(rk.lead(short, K), x[None], K)
    kept = jax.tree_util.tree_map(fill, kept, c.state)
    t_kept = fill(t_kept, c.t)
    n_kept = jnp.where(jnp.any(short, axis=1), c.n, n_kept)
    return c, jax.lax.map(log, kept), t_kept, n_kept, (ev.t if watching else None)
