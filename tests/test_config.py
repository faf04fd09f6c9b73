"""Config: validation with one-line errors, coercion of dotted overrides, TOML round trip, pytree split."""

from dataclasses import fields

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings, strategies as st

from mvsim import config as C
from mvsim.config import Config, ConfigError, with_values


def raises_one_line(fn, *needles):
    """fn() must raise ConfigError whose message is one line containing every needle."""
    with pytest.raises(ConfigError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# ---------------------------------------------------------------- defaults and coercion


def test_defaults_validate():
    C.validate(Config())
    assert C.from_dict({}) == Config()
    assert with_values(Config(), {}) == Config()


@pytest.mark.parametrize("key, text, expected", [
    ("data.mu", "0.2", 0.2),
    ("data.mu", " 0.2 ", 0.2),
    ("data.s", "3", 3.0),        # an integer string for a float field becomes a float
    ("data.k", "3", 3),
    ("net.sigma_0", "1e-3", 1e-3),
    ("train.max_steps", "7", 7),
    ("train.sl_time", "1e4", 1e4),
    ("train.checkpoints", "[1, 1e3]", (1.0, 1e3)),   # lists become tuples of floats
    ("train.ft_from", "1e8", (1e8,)),                # one number is a list of one
    ("ft.mode", "head", "head"),
    ("mrp.decoder_init", "-0.5", -0.5),
])
def test_string_overrides_coerce(key, text, expected):
    cfg = with_values(Config(), {key: text})
    value = C.get(cfg, key)
    assert value == expected
    assert type(value) is type(expected)


def test_python_int_for_float_field_becomes_float():
    cfg = with_values(Config(), {"data.mu": 1, "net.varrho": 2})
    assert cfg.data.mu == 1.0 and type(cfg.data.mu) is float
    assert cfg.net.varrho == 2.0 and type(cfg.net.varrho) is float


def test_with_values_leaves_other_fields_alone():
    base = Config()
    cfg = with_values(base, {"data.mu": "0.25", "net.m": "7"})
    assert cfg.data.mu == 0.25 and cfg.net.m == 7
    for key in C.all_keys():
        if key not in ("data.mu", "net.m"):
            assert C.get(cfg, key) == C.get(base, key), key
    assert base.data.mu == 0.03  # the original is untouched (frozen)


# ---------------------------------------------------------------- bad inputs: one line naming key, value, allowed


def test_unknown_key():
    # the message names the key and lists what is allowed (the known keys)
    raises_one_line(lambda: with_values(Config(), {"data.foo": 1}), "data.foo", "data.mu", "net.varrho")
    raises_one_line(lambda: with_values(Config(), {"mu": 0.1}), "'mu'", "data.mu")
    raises_one_line(lambda: C.coerce("nosuch.mu", 0.1), "nosuch.mu", "data.mu")


def test_unknown_section():
    raises_one_line(lambda: C.from_dict({"dat": {"mu": 0.1}}), "'dat'", "data", "mrp")
    raises_one_line(lambda: C.from_dict({"data": 3}), "'data'")  # a section that is not a table


@pytest.mark.parametrize("key, value, needles", [
    # wrong type
    ("data.mu", "abc", ["data.mu", "'abc'", "a number in [0.0, 1.0]"]),
    ("data.mu", '"0.2"', ["data.mu", "'0.2'", "a number"]),        # a quoted TOML string is a string
    ("data.mu", [0.1], ["data.mu", "[0.1]", "a number"]),
    ("data.k", 2.5, ["data.k", "2.5", "an integer >= 2"]),
    ("data.k", "3.5", ["data.k", "3.5", "an integer >= 2"]),
    ("data.k", 3.0, ["data.k", "3.0", "an integer"]),
    ("data.k", True, ["data.k", "True", "an integer"]),
    ("data.k", "true", ["data.k", "True", "an integer"]),
    ("net.varrho", False, ["net.varrho", "False", "a number > 0.0"]),
    ("mrp.target", 3, ["mrp.target", "3", "one of 'data2vec', 'mae'"]),
    # out of range
    ("data.mu", 1.5, ["data.mu", "1.5", "a number in [0.0, 1.0]"]),
    ("data.mu", -0.1, ["data.mu", "-0.1", "[0.0, 1.0]"]),
    ("data.mu", "nan", ["data.mu", "nan", "[0.0, 1.0]"]),
    ("data.s", "inf", ["data.s", "inf", "a number >= 0.0"]),
    ("mrp.mask_keep", 0.0, ["mrp.mask_keep", "0.0", "a number in (0.0, 1.0)"]),
    ("mrp.mask_keep", 1.0, ["mrp.mask_keep", "1.0", "a number in (0.0, 1.0)"]),
    ("mrp.mask_keep", "1", ["mrp.mask_keep", "1.0", "(0.0, 1.0)"]),
    ("net.varrho", 0.0, ["net.varrho", "0.0", "a number > 0.0"]),
    ("net.sigma_0", -1e-3, ["net.sigma_0", "-0.001", "a number > 0.0"]),
    ("data.k", 1, ["data.k", "1", "an integer >= 2"]),
    ("data.n_train", 0, ["data.n_train", "0", "an integer >= 1"]),
    ("train.max_steps", 0, ["train.max_steps", "0", ">= 1"]),
    ("train.checkpoints", [10.0, 1.0], ["train.checkpoints", "increasing"]),
    ("train.checkpoints", [], ["train.checkpoints", "a list of numbers"]),
    ("train.checkpoints", [0.0, 1.0], ["train.checkpoints", "> 0.0"]),
    ("train.delta", 1.5, ["train.delta", "1.5", "(0.0, 1.0]"]),
    ("mrp.masks", "some", ["mrp.masks", "one of 'expected', 'fresh'"]),
    # bad choice
    ("mrp.target", "x", ["mrp.target", "'x'", "one of 'data2vec', 'mae'"]),
    ("mrp.teacher", "EMA", ["mrp.teacher", "'EMA'", "one of 'stopgrad', 'ema'"]),
    ("ft.mode", "", ["ft.mode", "''", "one of 'full', 'head'"]),
])
def test_bad_values(key, value, needles):
    raises_one_line(lambda: with_values(Config(), {key: value}), *needles)
    # the same value read from a TOML table gives the same error
    section, name = key.split(".")
    raises_one_line(lambda: C.from_dict({section: {name: value}}), *needles)


@pytest.mark.parametrize("values, needles", [
    ({"data.k": 4, "data.L": 2, "data.d": 7}, ["data.d", "7", "8"]),
    ({"data.k": 4, "data.k_extra": 2, "data.L": 2, "data.d": 11}, ["data.d", "11", "12", "k_extra"]),
    ({"data.L": 3, "data.C_p": 3, "data.P": 8}, ["data.P", "8", "9"]),
    ({"data.k": 4, "data.s": 4.5}, ["data.s", "4.5", "4"]),
    ({"data.z_own_lo": 2.0, "data.z_own_hi": 1.5}, ["data.z_own_lo", "2.0", "1.5"]),
    ({"data.z_other_lo": 0.5, "data.z_other_hi": 0.4}, ["data.z_other_lo", "0.5", "0.4"]),
    ({"train.mrp_time": 1e5, "train.ft_from": [1e6]}, ["train.ft_from", "1000000.0", "mrp_time"]),
    # per-kernel clocks are a change of time only where the MRP loss separates over kernels
    ({"mrp.target": "mae"}, ["mrp.step", "per_kernel", "separate over kernels"]),
    ({"mrp.teacher": "ema"}, ["mrp.step", "per_kernel", "stopgrad"]),
    ({"mrp.decoder": "full"}, ["mrp.step", "per_kernel", "diag"]),
    ({"mrp.decoder_lr": 0.1}, ["mrp.step", "per_kernel", "decoder_lr"]),
    ({"mrp.masks": "fresh"}, ["mrp.step", "per_kernel", "fresh"]),
    ({"mrp.step": "adaptive", "mrp.teacher": "ema", "mrp.solver": "bosh3"}, ["mrp.solver", "bosh3", "euler"]),
])
def test_cross_field(values, needles):
    raises_one_line(lambda: with_values(Config(), values), *needles)


def test_cross_field_boundaries_are_allowed():
    cfg = with_values(Config(), {"data.k": 4, "data.k_extra": 2, "data.L": 2, "data.d": 12,
                                 "data.C_p": 3, "data.P": 6, "data.s": 4.0})
    assert cfg.k_pre == 6


def test_validate_checks_hand_built_config():
    from dataclasses import replace
    bad = replace(Config(), data=replace(Config().data, mu=1.5))
    raises_one_line(lambda: C.validate(bad), "data.mu", "1.5")


# ---------------------------------------------------------------- TOML


GRID = {"data.mu": [0.0, 0.05, 0.1], "mrp.target": ["data2vec", "mae"], "net.m": [1, 2]}


def test_toml_round_trip_with_grid(tmp_path):
    cfg = with_values(Config(), {
        "data.mu": 0.125, "data.k": 6, "data.d": 64, "net.sigma_0": 1e-5, "mrp.target": "mae",
        "mrp.step": "adaptive", "mrp.decoder_init": -0.3, "train.lr": 0.1 + 0.2, "run.seed": 17,
        "train.checkpoints": [0.5, 1e3 / 3], "train.sl_time": 1e4,
    })
    path = tmp_path / "c.toml"
    path.write_text(C.to_toml(cfg, GRID))
    back, grid = C.load_toml(path)
    assert back == cfg
    assert grid == GRID
    for key in C.all_keys():
        assert type(C.get(back, key)) is type(C.get(cfg, key)), key


def test_toml_round_trip_without_grid(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(C.to_toml(Config()))
    assert C.load_toml(path) == (Config(), {})


@settings(max_examples=30)
@given(mu=st.floats(0.0, 1.0), sigma_0=st.floats(1e-30, 1e3), init=st.floats(-1e6, 1e6),
       seed=st.integers(0, 2**40))
def test_toml_round_trip_property(tmp_path_factory, mu, sigma_0, init, seed):
    cfg = with_values(Config(), {"data.mu": mu, "net.sigma_0": sigma_0, "mrp.decoder_init": init,
                                 "run.seed": seed})
    path = tmp_path_factory.mktemp("rt") / "c.toml"
    path.write_text(C.to_toml(cfg))
    assert C.load_toml(path)[0] == cfg


def test_run_identity_ignores_seeds_and_comments_only():
    """A results directory resumes under a grown seed count or a reworded key documentation, not
    under another value."""
    cfg = Config()
    text = C.to_toml(cfg, seeds=4)
    assert C.run_identity(text) == C.run_identity(C.to_toml(cfg, seeds=16))
    reworded = text.replace("# number of classes", "# how many classes", 1)
    assert reworded != text and C.run_identity(reworded) == C.run_identity(text)
    assert C.run_identity(C.to_toml(with_values(cfg, {"data.mu": 0.2}), seeds=4)) != C.run_identity(text)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    raises_one_line(lambda: C.load_toml(path), "nope.toml")


def test_directory_instead_of_file(tmp_path):
    raises_one_line(lambda: C.load_toml(tmp_path), str(tmp_path))


@pytest.mark.parametrize("text", ["[data\nmu = 0.1\n", "[data]\nmu = \n", "[data]\nmu = 0.1\nmu = 0.2\n"])
def test_malformed_toml(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    raises_one_line(lambda: C.load_toml(path), "bad.toml")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"[data]\nmu = 0.1 # \xff\xfe\n")
    raises_one_line(lambda: C.load_toml(path), "bin.toml")


@pytest.mark.parametrize("text, needles", [
    ("[data]\nmu = 1.5\n", ["data.mu", "1.5"]),
    ('[data]\nmu = "abc"\n', ["data.mu", "'abc'"]),
    ("[data]\nfoo = 1\n", ["data.foo"]),
    ("[dta]\nmu = 0.1\n", ["'dta'"]),
    ("[grid]\n\"data.mu\" = []\n", ["grid.data.mu"]),
    ("[grid]\n\"data.mu\" = 0.1\n", ["grid.data.mu"]),
])
def test_bad_values_in_file(tmp_path, text, needles):
    path = tmp_path / "c.toml"
    path.write_text(text)
    raises_one_line(lambda: C.load_toml(path), *needles)


def test_string_values_in_file_coerce(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nmu = "0.2"\nk = "3"\n')
    cfg, _ = C.load_toml(path)
    assert cfg.data.mu == 0.2 and type(cfg.data.mu) is float
    assert cfg.data.k == 3 and type(cfg.data.k) is int


# ---------------------------------------------------------------- pytree: floats traced, the rest static


def float_values(cfg):
    return [getattr(getattr(cfg, s), f.name) for s, cls in C.SECTIONS.items() for f in fields(cls)
            if isinstance(f.default, float) and not f.metadata["static"]]  # horizons fix shapes


def test_floats_are_leaves_and_the_rest_is_static():
    cfg = Config()
    leaves, treedef = jax.tree_util.tree_flatten(cfg)
    expected = float_values(cfg)
    assert len(expected) >= 20  # sanity: the sections do have many float fields
    assert len(leaves) == len(expected)
    assert leaves == expected
    assert all(type(v) is float for v in leaves)
    # ints and strings live in the treedef: they survive a round trip with new leaves
    new = jax.tree_util.tree_unflatten(treedef, [0.5] * len(leaves))
    assert new.data.k == cfg.data.k and new.mrp.target == cfg.mrp.target and new.data.mu == 0.5
    # a different int or string gives a different treedef
    assert jax.tree_util.tree_structure(with_values(cfg, {"data.k": 3})) != treedef
    assert jax.tree_util.tree_structure(with_values(cfg, {"ft.mode": "head"})) != treedef
    # GD-time horizons are static floats: they fix the number of checkpoints
    assert jax.tree_util.tree_structure(with_values(cfg, {"train.sl_time": 1e4})) != treedef
    assert jax.tree_util.tree_structure(with_values(cfg, {"data.mu": 0.5})) == treedef


def test_jit_does_not_recompile_for_floats():
    traces = []

    @jax.jit
    def f(cfg):
        traces.append(1)  # runs once per trace
        return cfg.data.mu * cfg.data.k + cfg.net.varrho + jnp.zeros(cfg.data.P).sum()

    base = Config()
    assert float(f(base)) == pytest.approx(base.data.mu * base.data.k + base.net.varrho, rel=1e-6)
    assert len(traces) == 1
    changed = with_values(base, {"data.mu": 0.2, "net.varrho": 0.3, "train.lr": 1.0,
                                 "mrp.mask_keep": 0.9, "metrics.capture_frac": 0.5})
    assert float(f(changed)) == pytest.approx(0.2 * 10 + 0.3, rel=1e-6)
    assert len(traces) == 1
    # ints and strings are static: changing one compiles anew
    assert float(f(with_values(base, {"data.k": 3}))) == pytest.approx(base.data.mu * 3 + base.net.varrho, rel=1e-6)
    assert len(traces) == 2
    f(with_values(base, {"mrp.target": "mae", "mrp.step": "adaptive"}))
    assert len(traces) == 3
    f(with_values(base, {"data.mu": 0.7}))  # back to the first structure: cached
    assert len(traces) == 3
