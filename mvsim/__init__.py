"""mvsim: a JAX simulator of SL vs mask-reconstruction pretraining on multi-view data.

    import mvsim
    res = mvsim.simulate(seeds=4, data__mu=0.1)   # a sweep in memory (mvsim.api.simulate)
    res.summary, res.features, res.claims
    df = mvsim.load("results/default")           # a results directory's summary (mvsim.store.load)
    f = mvsim.load_features("results/default")   # its Lambda trajectories
    e = mvsim.load_events("results/default")     # its event times at step resolution
    mvsim.claims(df, e)                          # the theory's predictions with verdicts

`import mvsim` is light: JAX, pandas and the claims code load on first use.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["simulate", "Results", "load", "load_features", "load_events", "claims"]

_LAZY = {"simulate": ("mvsim.api", "simulate"), "Results": ("mvsim.api", "Results"),
         "load": ("mvsim.store", "load"), "load_features": ("mvsim.store", "load_features"),
         "load_events": ("mvsim.store", "load_events")}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mvsim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Claims:
    """`mvsim.claims(summary, events, cfg=None)` is mvsim.claims.claims; its attributes are the
    module mvsim.claims's (`mvsim.claims.report(DIR)`), loaded on first use. Setting or deleting an
    attribute does it on the module, and `__dict__` is the module's, so monkeypatching
    "mvsim.claims.report" patches the module."""

    __slots__ = ()

    @property
    def __dict__(self):
        return self._module().__dict__

    @staticmethod
    def _module():
        return importlib.import_module("mvsim.claims")

    def __call__(self, summary, events, cfg=None):
        return self._module().claims(summary, events, cfg)

    def __getattr__(self, name):
        return getattr(self._module(), name)

    def __setattr__(self, name, value):
        setattr(self._module(), name, value)

    def __delattr__(self, name):
        delattr(self._module(), name)

    def __repr__(self):
        return "<mvsim.claims: call for the claims table; attributes of the module mvsim.claims>"


claims = _Claims()


class _Package(types.ModuleType):
    """Importing the submodule mvsim.claims would bind it over the function `mvsim.claims`; keep the
    callable (it forwards attributes to the submodule, so `mvsim.claims.report` works as well)."""

    def __setattr__(self, name, value):
        if name == "claims" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
