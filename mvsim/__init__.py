"""mvsim: a JAX simulator of SL vs mask-reconstruction pretraining on multi-view data.

    import mvsim
    res = mvsim.simulate(seeds=4, data__mu=0.1)   # a sweep in memory (mvsim.api.simulate)
    res.summary, res.features, res.events, res.last
    mvsim.verdicts(res)                          # the theory's predictions with verdicts
    res = mvsim.load_results("results/default")  # a results directory, as the same Results
    df = mvsim.load("results/default")           # just its summary table (mvsim.store.load)

`import mvsim` is light: JAX, pandas and the claims code load on first use. The submodules are
ordinary modules (`mvsim.claims`, `mvsim.sweep`, ...); the names above are shortcuts to them.
"""

from __future__ import annotations

import importlib

__all__ = ["simulate", "Results", "load_results", "verdicts", "load", "load_features", "load_events"]

_LAZY = {"simulate": ("mvsim.api", "simulate"), "Results": ("mvsim.results", "Results"),
         "load_results": ("mvsim.results", "load_results"), "verdicts": ("mvsim.claims", "verdicts"),
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
