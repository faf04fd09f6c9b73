"""Property tests: the theorems' predictions on configurations drawn from the theory's regime,
read on the GD clock inside the windows where the theory states them: SL's predictions at
t_fit (its first checkpoint with training accuracy >= 0.99; P0 states them for every time after
the fit), MRP's and fine-tuning's at their horizons (P1: after T = poly(k)/eta).

Shapes are fixed to a small regime (tests/small.toml: k = 5, d = 128, N = 250), so one
compilation serves every drawn example; hypothesis draws the floats that the theory lets
vary (mu small, rho << 1, mask_keep away from 0 and 1, sigma_0 << varrho, small feature
noise) and every example runs SEEDS seeds under one vmap.

Tolerance: a prediction "mean >= c" (or "<= c") is rejected only when the one-sided 99%
t-interval over seeds lies entirely on the wrong side of c, so the allowed slack is
t99(S - 1) * sd / sqrt(S): it comes from the seed count and the spread, not from tuning.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from hypothesis import Phase, example, given, settings, strategies as st

from mvsim import config as C
from mvsim import regime as R
from mvsim.experiment import seed_keys
from mvsim.methods import make_run

SEEDS = 6
def t99(dof: int) -> float:
    """One-sided 99% Student t quantile (3.365 at 5 degrees of freedom, 4.541 at 3)."""
    from scipy.stats import t  # scipy comes with jax

    return float(t.ppf(0.99, dof))
SMALL, _ = C.load_toml(Path(__file__).with_name("small.toml"))


def slack(values) -> float:
    values = np.asarray(values, float)
    return t99(len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))


def holds_at_least(values, bound) -> bool:
    return np.mean(values) + slack(values) >= bound


def holds_at_most(values, bound) -> bool:
    return np.mean(values) - slack(values) <= bound


def run(cfg: C.Config, seeds=SEEDS) -> dict:
    records = make_run()(seed_keys(cfg.run.seed, range(seeds)), cfg)
    return jax.tree_util.tree_map(np.asarray, jax.device_get(records))


def at_fit(sl: dict) -> dict:
    """SL's record (S, T) at each seed's first checkpoint with training accuracy >= 0.99: (S,)."""
    fit = sl["acc_train"] >= 0.99
    assert fit.any(axis=1).all(), "SL must fit its training set within its horizon (P0)"
    i = fit.argmax(axis=1)
    return {key: value[np.arange(len(i)), i] for key, value in sl.items() if value.ndim == 2}


def final(rec: dict) -> dict:
    """A record at its horizon; mrp_ft from the last train.ft_from time: (S,)."""
    return {key: (value[:, -1, -1] if value.ndim == 3 else value[:, -1]) for key, value in rec.items()
            if value.ndim in (2, 3) and key not in ("lam", "purity", "cross", "mix")}


def share(rec, key, cfg):
    per = {"features_captured": cfg.data.k * cfg.data.L}.get(key, cfg.data.k)
    return rec[key] / per


regime = st.fixed_dictionaries({
    "data.mu": st.floats(0.01, 0.05),  # single-view training points rare (theory: mu = 1/poly(k))
    "data.rho": st.floats(0.02, 0.1),  # weak own features genuinely small (theory: rho = k^-0.01 << 1)
    "data.gamma": st.floats(0.0, 0.02),  # feature noise small against the strong features
    "mrp.mask_keep": st.floats(0.3, 0.7),  # masking leaves patches to predict from and to predict
    "net.sigma_0": st.floats(0.006, 0.014),  # initial correlations far below varrho
    "run.seed": st.integers(0, 2**16),
})


def assert_predictions(cfg: C.Config, seeds: int = SEEDS) -> dict:
    """Run `seeds` seeds of cfg and assert P0's and P1's predictions; returns SL's record at its fit."""
    rec = run(cfg, seeds)
    assert not any(rec[m]["diverged"].any() for m in ("sl", "mrp", "mrp_ft"))
    sl, mrp, ft = at_fit(rec["sl"]), final(rec["mrp"]), final(rec["mrp_ft"])

    # P0, Thm 1: SL captures about one feature per class, the initial winner.
    assert holds_at_most(share(sl, "features_captured", cfg), 0.75)
    assert holds_at_least(share(sl, "classes_one_captured", cfg), 0.5)
    assert holds_at_least(sl["lottery_agreement"], 0.85)
    # P1: MRP captures (almost) all features and fine-tuning keeps them.
    assert holds_at_least(share(mrp, "features_captured", cfg), 0.95)
    assert holds_at_least(share(ft, "features_captured", cfg), 0.95)
    # P0/P1: both are right on multi-view data; on single-view data MRP+FT wins by a margin.
    assert holds_at_least(sl["acc_multi"], 0.95)
    assert holds_at_least(ft["acc_multi"], 0.95)
    assert holds_at_least(ft["acc_single"], 0.9)
    assert holds_at_most(sl["acc_single"], 0.75)
    assert holds_at_least(ft["acc_single"] - sl["acc_single"], 0.2)
    return sl


# The small regime's own values (the default mechanism) always run, beside one drawn example
# (the suite's budget also holds the k = 16 point below).
# No shrinking: each example costs ~30 s, and a failing example is reported as drawn.
@settings(max_examples=1, derandomize=True, phases=[Phase.explicit, Phase.generate])
@given(regime)
@example({"data.mu": 0.03, "data.rho": 0.05, "data.gamma": 0.01, "mrp.mask_keep": 0.5, "net.sigma_0": 0.01,
          "run.seed": 0})
def test_predictions_hold_in_the_regime(values):
    cfg = C.with_values(SMALL, values)
    sl = assert_predictions(cfg)
    # P0: SL fits single-view training points through their noise: re-drawing the noise of the
    # same samples loses a clear share of them. A share needs points to measure it on: only
    # where N mu >= 7 single-view training points are expected per seed.
    if cfg.data.n_train * cfg.data.mu >= 7:
        mem = sl["mem_single"][np.isfinite(sl["mem_single"])]
        assert len(mem) >= SEEDS // 2 and np.mean(mem) - slack(mem) > 0


# One larger k: the small regime carried to k = 16 by the scaling rules (sigma_0 = 0.0031;
# horizons SL 1e6, MRP 3e12, fine-tuning 1e5), at sizes that fit the suite's budget: the rules'
# smallest d = 2kL = 64, N = 400 labelled and unlabelled samples (the rules give 1010; the study,
# experiments/k*.toml, runs the rules' own N), 4 seeds (the slack grows with t99(3) = 4.54).
# SL's fit phase costs ~1,100 adaptive steps at k = 16 against ~500 at k = 5, each N P d k m.
K16 = R.at_k(SMALL, 16, {"data.d": 64, "data.n_train": 400, "data.n_pretrain": 400})


def test_predictions_hold_at_k16():
    assert_predictions(K16, seeds=4)


def test_pretrained_features_alone_carry_single_view_accuracy():
    """P1: the gain comes from the features MRP captured. With the encoder frozen (head-only
    fine-tuning) MRP features still give high single-view accuracy, far above SL's. 4 seeds: its
    bounds sit far from the measured values (~0.99 and ~+0.4), so the wider slack costs nothing."""
    cfg = C.with_values(SMALL, {"ft.mode": "head"})
    rec = run(cfg, seeds=4)
    ft, sl = final(rec["mrp_ft"]), at_fit(rec["sl"])
    assert holds_at_least(share(ft, "features_captured", cfg), 0.95)
    assert holds_at_least(ft["acc_single"], 0.9)
    assert holds_at_least(ft["acc_single"] - sl["acc_single"], 0.2)
