"""The methods beyond SL/MRP/FT: SL ensembles, knowledge distillation, pretraining coverage."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvsim import config as C
from mvsim import data, experiment, methods, nets, train

TINY, _ = C.load_toml(Path(__file__).with_name("tiny.toml"))


def test_distill_loss_is_cross_entropy_at_weight_zero_and_stationary_at_the_teacher():
    key = jax.random.PRNGKey(0)
    W = 0.3 * jax.random.normal(key, (3, 2, 8))
    x = jax.random.normal(jax.random.fold_in(key, 1), (20, 4, 8))
    y = jnp.arange(20) % 3
    teacher = jax.random.normal(jax.random.fold_in(key, 2), (20, 3))
    ce = nets.sl_loss(W, x, y, 3, 0.5)
    np.testing.assert_allclose(nets.distill_loss(W, x, y, teacher, 3, 0.5, 2.0, 0.0), ce, rtol=1e-6)
    # pure distillation with the student's own logits as targets: the gradient vanishes
    own = nets.sl_logits(x, W, 3, 0.5)
    g = jax.grad(nets.distill_loss)(W, x, y, own, 3, 0.5, 2.0, 1.0)
    assert float(jnp.abs(g).max()) < 1e-6
    # tau^2 scaling: at weight 1, KD(tau) = tau^2 * CE(softmax(t / tau), s / tau)
    kd = nets.distill_loss(W, x, y, teacher, 3, 0.5, 2.0, 1.0)
    soft = jax.nn.softmax(teacher / 2.0)
    ref = -(soft * jax.nn.log_softmax(own / 2.0)).sum(-1).mean() * 4.0
    np.testing.assert_allclose(kd, ref, rtol=1e-5)


def test_pretraining_data_without_the_first_classes():
    cfg = C.with_values(TINY, {"data.n_pretrain": 400, "data.pretrain_drop": 1, "data.s": 1.0})
    lay = data.layouts(jax.random.PRNGKey(3), 400, 0.5, cfg.data, cfg.k_pre, lo=1)
    L = cfg.data.L
    assert int(lay.y.min()) >= 1 and set(np.unique(lay.y)) == set(range(1, cfg.k_pre))
    assert float(jnp.abs(lay.z[:, :, :L]).max()) == 0.0  # class 0's features never occur
    assert float(lay.z[:, :, L:].sum()) > 0


def test_ensemble_averages_members_trained_from_independent_inits():
    cfg = C.with_values(TINY, {"ensemble.size": 2})
    D = experiment.make_data(jax.random.PRNGKey(0), cfg)
    key = jax.random.PRNGKey(7)
    rec, train_logits = methods.run_ensemble(key, D, cfg)
    times = experiment.sl_times(cfg)
    log = lambda W: experiment.sl_tables(W, D.V, cfg)["lam"]
    members = [train.train_sl(train.init_sl(k, cfg), D.train, cfg, times, log) for k in jax.random.split(key, 2)]
    q, varrho = cfg.net.q, cfg.net.varrho
    mean_logits = sum(nets.sl_logits(D.train.x, m[0].state, q, varrho) for m in members) / 2
    np.testing.assert_allclose(train_logits, mean_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rec["lam"], np.maximum(members[0][1], members[1][1]), rtol=1e-5)
    assert members[0][1][0].tolist() != members[1][1][0].tolist()  # different inits


def test_run_seed_emits_ensemble_and_kd_only_when_asked():
    keys = experiment.seed_keys(0, [0])
    plain = methods.make_run()(keys, TINY)
    assert set(plain) == {"sl", "mrp", "mrp_ft"}
    cfg = C.with_values(TINY, {"ensemble.size": 2, "ensemble.distill": True})
    both = methods.make_run()(keys, cfg)
    assert set(both) == {"sl", "mrp", "mrp_ft", "sl_ensemble", "kd"}
    for method in ("sl", "mrp", "mrp_ft"):  # adding methods leaves the others' numbers alone
        np.testing.assert_allclose(both[method]["lam"], plain[method]["lam"], rtol=1e-6)


def test_distill_needs_an_ensemble():
    with pytest.raises(C.ConfigError, match="ensemble.distill"):
        C.with_values(TINY, {"ensemble.distill": True})


def _untrained_sl(key, D, cfg, before):
    """A toy method: SL's network left at its initialisation, logged at SL's log times."""
    W = train.init_sl(key, cfg)
    times = experiment.sl_times(cfg)
    logs = jax.vmap(lambda _: experiment.sl_logger(D, cfg)(W))(jnp.arange(len(times)))
    return experiment.summarize(logs, jnp.asarray(times, jnp.float32), jnp.zeros(len(times), jnp.int32), cfg), None


def test_a_declared_method_gets_its_records_rows_estimates_and_style(monkeypatch):
    """Adding a method is one runner and one entry (README, "Adding a method"): the entry alone gives
    it records from run_seed, rows in the tables, a place in the sweep's row and memory estimates,
    and a look in the figures."""
    from mvsim import plotstyle, resources, tables

    rows0, bytes0 = resources.rows_per_seed(TINY), resources.bytes_per_seed(TINY)
    widest0 = max(m.width(TINY) for m in methods.enabled(TINY))
    wide = lambda cfg: 10 ** 7  # wider than any method of TINY: the estimate must take it
    toy = methods.Method("untrained", _untrained_sl, experiment.sl_times, key_slot=11, label="SL at init",
                         colour="#000000", marker="x", width=wide, on_time_figure=True)
    monkeypatch.setitem(methods.METHODS, toy.name, toy)
    T = len(experiment.sl_times(TINY))

    assert resources.rows_per_seed(TINY) == (rows0[0] + T, rows0[1] + T * TINY.data.k * TINY.data.L)
    extra = 4 * (resources.WIDE_COPIES * TINY.data.P * (10 ** 7 - widest0) + T * experiment.record_floats(TINY))
    assert resources.bytes_per_seed(TINY) == pytest.approx(bytes0 + extra, rel=1e-12)

    seeds = [0, 1]
    records = jax.jit(jax.vmap(lambda k: methods.run_seed(k, TINY, methods=(toy,))))(experiment.seed_keys(0, seeds))
    assert set(records) == {"untrained"} and records["untrained"]["lam"].shape == (2, T, TINY.data.k, TINY.data.L)
    summary, features, _ = tables.to_tables(jax.device_get(records), seeds, TINY, {}, 0)
    assert len(summary) == 2 * T and set(summary["method"]) == {"untrained"}
    np.testing.assert_allclose(np.sort(summary["checkpoint"].unique()), experiment.sl_times(TINY))
    assert len(features) == 2 * T * TINY.data.k * TINY.data.L
    lam = records["untrained"]["lam"]
    np.testing.assert_array_equal(lam[:, 0], lam[:, -1])  # never trained

    assert plotstyle.method_name("untrained") == "SL at init" and plotstyle.method_colour("untrained") == "#000000"
    assert plotstyle.method_marker("untrained") == "x" and "untrained" in plotstyle.time_methods()
    assert plotstyle.ordered_methods({"untrained", "sl", "zzz"}) == ["sl", "untrained", "zzz"]


def test_fresh_kernels_join_fine_tuning_only():
    """ft.fresh adds k x fresh kernels at SL's init scale beside the pretrained encoder: fine-tuning
    changes, the other methods' numbers do not, and the memory estimate counts the wider encoder."""
    from mvsim import resources

    keys = experiment.seed_keys(0, [0])
    plain = methods.make_run()(keys, TINY)
    cfg = C.with_values(TINY, {"ft.fresh": 2})
    fresh = methods.make_run()(keys, cfg)
    for method in ("sl", "mrp"):
        np.testing.assert_array_equal(fresh[method]["lam"], plain[method]["lam"])
    assert not np.array_equal(fresh["mrp_ft"]["final_loss"], plain["mrp_ft"]["final_loss"])
    ft = methods.METHODS["mrp_ft"]
    extra = max(TINY.data.n_train * len(TINY.train.ft_from), TINY.data.n_test) * TINY.data.k * 2
    assert ft.width(cfg) == ft.width(TINY) + extra  # the wider encoder, in the memory estimate's input
    assert resources.bytes_per_seed(cfg) >= resources.bytes_per_seed(TINY)
    with pytest.raises(C.ConfigError, match="ft.fresh"):
        C.with_values(TINY, {"ft.fresh": -1})
