"""The named configs in experiments/ load, and default.toml is exactly the built-in default."""

from pathlib import Path

import pytest

from mvsim import config as C

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_default_toml_is_the_builtin_default():
    cfg, grid = C.load_toml(EXPERIMENTS / "default.toml")
    assert cfg == C.Config() and grid == {}


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_experiment_config_is_valid(path):
    cfg, grid = C.load_toml(path)
    for key, values in grid.items():
        for v in values:
            C.with_values(cfg, {key: v})
