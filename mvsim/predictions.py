"""The theory's predictions as mvsim reads them: one `Rule` per claim (its side, the theory's value,
the threshold as a function of k, L and q, and why), in `THRESHOLDS`.

`mvsim.windows` reads its lines from here (the lottery window ends when sl_one_per_class falls below
its threshold; t_cap is when mrp_captures_all's share is reached), and `mvsim.claims` gives each rule
its verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from mvsim.metrics import FIT_ACC

SEEDS_MAJORITY = 0.5  # shares of seeds: "w.h.p. over the initialisation" read as "in most seeds"
SCALE_NOTE = ("GD times of SL (cross-entropy) and MRP (squared error) compare only up to the scales of "
              "the two losses (train.sl_rate, train.mrp_rate): such a comparison is described, never a verdict.")


@dataclass(frozen=True)
class Rule:
    """One prediction: the side the theory is on, the theory's value, the threshold and why."""

    sense: str  # ">=": holds above the threshold; "<=": below; "=": the interval contains the value;
    #             "describe": a descriptive row, no verdict
    expected: str  # what the theory says, as text
    formula: str  # the threshold, as text in k (classes), L (features per class), q (sReLU power)
    value: Callable[[float, float, int], float]  # (k, L, q) -> the threshold
    reason: str


def _midway(k, L, q):
    """Halfway between chance over a class's features (1/L) and certainty (1)."""
    return 1 / L + (1 - 1 / L) / 2


def _half_gap(k, L, q):
    """Half the predicted single-view gap between MRP+FT (~1) and SL (~1/L + (1 - 1/L)/k)."""
    return (1 - 1 / L) * (1 - 1 / k) / 2


def _none(k, L, q):
    return math.nan


THRESHOLDS: dict[str, Rule] = {
    "sl_fits": Rule(
        ">=", "1", f"{FIT_ACC:g}", lambda k, L, q: FIT_ACC,
        "P0 Thm 1: SL reaches 100% training accuracy (memorising the single-view points); 0.99 leaves "
        "a few points unfitted at a finite horizon. The same line defines t_fit."),
    "sl_lottery_window": Rule(
        ">=", "every seed (w.h.p.)", "1/2 of seeds", lambda k, L, q: SEEDS_MAJORITY,
        "P0: the lottery holds w.h.p. over the initialisation for every T after fitting: t_fit < t_erode "
        "in a majority of seeds (Wilson interval: 4 of 4 seeds hold, 0 of 4 fail)."),
    "sl_one_per_class": Rule(
        ">=", "~1 (almost every class)", "1/2", lambda k, L, q: 0.5,
        "P0 Thm 1: exactly one feature captured for almost every class; 'almost every' is asymptotic in "
        "k, so at k ~ 10 a majority of classes. Read at t_fit from the capture times; falling below it "
        "defines t_erode, the end of the window."),
    "sl_lottery_agreement": Rule(
        ">=", "~1 (winner = initial argmax)", "1/L + (1 - 1/L)/2", _midway,
        "P0 Thm 1: the feature with the largest Lambda(0) wins. Chance agreement is 1/L, so the winner "
        "must agree with the initial argmax at least halfway from chance to certainty. Read at the first "
        "checkpoint at or after t_fit."),
    "sl_single_view_at_fit": Rule(
        "<=", "~1/L + (1 - 1/L)/k", "1/L + (1 - 1/L)/2", _midway,
        "P0: SL is right on a single-view point when its strong feature is the class's winner (1/L), "
        "else guesses; a model with every feature is right (1). Read at the first checkpoint at or after "
        "t_fit."),
    "mrp_captures_all": Rule(
        ">=", "1 (every feature)", "0.95", lambda k, L, q: 0.95,
        "P1: MRP captures every feature of every class; 0.95 allows one feature in twenty (k L = 20 at "
        "the default). The same line defines t_cap."),
    "mrp_capture_time": Rule(
        ">=", "every seed, by T = poly(k)/eta", "1/2 of seeds", lambda k, L, q: SEEDS_MAJORITY,
        "P1: capture by T = poly(k)/eta, i.e. within MRP's horizon: t_cap finite in a majority of seeds."),
    "ft_keeps": Rule(
        ">=", "1 (all kept)", "0.95", lambda k, L, q: 0.95,
        "P1: fine-tuning keeps the captured features: min(1, captured after fine-tuning / MRP's "
        "captured at ft_from), with the same allowance as mrp_captures_all."),
    "mrpft_beats_sl_at_fit": Rule(
        ">=", "(1 - 1/L)(1 - 1/k)", "(1 - 1/L)(1 - 1/k)/2", _half_gap,
        "P1: MRP+FT is right on single-view data (~1), SL at t_fit only ~1/L + (1 - 1/L)/k; the paired "
        "gap in acc_single must reach half the predicted gap. Each method at its own time: invariant to "
        "the losses' scales."),
    "mrpft_beats_sl_in_window": Rule(
        ">=", "(1 - 1/L)(1 - 1/k)", "(1 - 1/L)(1 - 1/k)/2", _half_gap,
        "P0 + P1: over SL's whole lottery window [t_fit, t_erode) the gap persists: MRP+FT at its horizon "
        "minus SL's best single-view accuracy at a checkpoint in its window (the first at or after t_fit "
        "when none lies inside), paired by seed. Invariant to the losses' scales."),
    "mrpft_vs_sl_at_horizon": Rule(
        "describe", "(1 - 1/L)(1 - 1/k) (if SL's lottery held for every T)", "none", _none,
        "Described, not a verdict: SL's horizon is a choice (regime.py), and P0's 'every T after fitting' "
        "is asymptotic; at finite k SL's window closes (sl_lottery_window, t_erode), so the gap at SL's "
        "horizon measures where that horizon falls, not the theory."),
    "cap_over_erode": Rule(
        "describe", "< 1 (MRP captures inside SL's window)", "none", _none,
        "Described, not a verdict: t_cap / t_erode sets GD times of two losses side by side, which a "
        "rescaling of either loss changes at will. The row gives the factor c = the median over seeds: "
        "MRP's loss multiplied by c (train.mrp_rate = c) would put half the seeds inside SL's window. "
        "The scale-free question, its trend in k, is in mvsim.scaling."),
    "sl_race": Rule(
        "=", "-(q - 2)", "-(q - 2)", lambda k, L, q: -(q - 2),
        "P0: near 0 SL's gradient on a feature ~ Lambda^(q-1), so its hitting time ~ Lambda(0)^-(q-2), "
        "while the class is unfitted: fitted over each class's first feature to reach the capture line "
        "(a loser's later rise comes after the class fits and is not the race). Hitting times at step "
        "resolution (events); 95% interval by a bootstrap over seeds. Holds when it contains the "
        "exponent and excludes MRP's -(2q - 2); fails when it excludes it."),
    "mrp_race": Rule(
        "=", "-(2q - 2)", "-(2q - 2)", lambda k, L, q: -(2 * q - 2),
        "P1, data2vec with a stop-gradient teacher: the gradient ~ Lambda^(2q-1), hitting time ~ "
        "Lambda(0)^-(2q-2), for every feature (no class race in MRP); same verdict rule against SL's "
        "-(q - 2). Not reported for other MRP variants (the theory gives no exponent for them)."),
}
