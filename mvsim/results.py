"""A sweep's results, the one way every reader sees them: `Results`, and `load_results(DIR)`.

`mvsim.simulate` returns a `Results` built in memory; `load_results` reads a results directory into
the same class. The claims, the k study, the figures and the docs scripts read it.

`Results.summary` holds every row (one per grid point, seed, method, ft_from and checkpoint)
with share columns added (share_features, share_all, share_one); `Results.last` holds each
method's row at its horizon (`mvsim.tables.last`), which the end-of-training figures use.
`point_cfg(gp)` is a grid point's config as the sweep built it (through the scaling rules).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mvsim import config as C
from mvsim import regime, store, tables
from mvsim.plotstyle import fmt


def config_at(cfg: C.Config, values: dict) -> C.Config:
    """cfg with a grid point's dotted values applied as the sweep applied them (`regime.point`: a
    data.k carries the other keys to that k by the scaling rules); cfg itself if they do not apply."""
    try:
        return regime.point(cfg, values)
    except C.ConfigError:
        return cfg


class ResultsError(Exception):
    """A results directory that cannot be plotted; the message is one line for the user."""


def py(v):
    """A numpy scalar as the Python value (for config look-ups and labels)."""
    return v.item() if isinstance(v, np.generic) else v


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


@dataclass
class Results:
    """A sweep's results: its three tables (mvsim.tables), its base config and grid, and where it
    was written (`out`; None for a run in memory) with its stored seed count."""

    summary: pd.DataFrame
    features: pd.DataFrame
    events: pd.DataFrame
    cfg: C.Config
    grid: dict = field(default_factory=dict)
    out: Path | None = None
    seeds: int | None = None
    _ref: int | None = field(default=None, repr=False)

    def __post_init__(self):
        add_shares(self.summary, self)

    @functools.cached_property
    def last(self) -> pd.DataFrame:
        """Each method's row at its horizon (`mvsim.tables.last`)."""
        return tables.last(self.summary) if len(self.summary) else self.summary

    @property
    def keys(self) -> list[str]:
        """Grid keys that take more than one value in the summary, in grid order."""
        return [k for k in self.grid if k in self.summary and self.summary[k].nunique(dropna=False) > 1]

    def point_values(self, gp: int) -> dict:
        rows = self.summary[self.summary["grid_point"] == gp]
        return {k: py(rows[k].iloc[0]) for k in self.grid if k in rows and len(rows)}

    def point_cfg(self, gp: int) -> C.Config:
        """The config of grid point `gp`, as the sweep built it (`config_at`)."""
        return config_at(self.cfg, self.point_values(gp))

    def threshold(self, gp: int) -> float:
        """The capture threshold on Lambda at grid point gp: capture_frac * varrho."""
        cfg = self.point_cfg(gp)
        return float(cfg.metrics.capture_frac * cfg.net.varrho)

    @property
    def ref(self) -> int:
        """The reference grid point: the base config's values if in the grid, else the first."""
        if self._ref is None:
            points = sorted(int(g) for g in self.summary["grid_point"].unique())
            self._ref = points[0]
            for gp in points:
                vals = self.point_values(gp)
                if all(same(v, C.get(self.cfg, k)) for k, v in vals.items()):
                    self._ref = gp
                    break
        return self._ref

    def point_label(self, gp: int) -> str:
        vals = self.point_values(gp)
        return ", ".join(f"{k} = {fmt(v)}" for k, v in vals.items() if k in self.keys)

    def where(self, gp: int) -> str:
        """A last title line naming grid point gp ('' without a grid)."""
        label = self.point_label(gp)
        if not label:
            return ""
        return f"\n{'reference' if gp == self.ref else ''} grid point: {label}".replace("\n ", "\n")

    def k_of(self, df: pd.DataFrame) -> pd.Series:
        """Classes per row (from a grid column data.k if there is one)."""
        return df["data.k"].astype(float) if "data.k" in df else pd.Series(float(self.cfg.data.k), df.index)

    def L_of(self, df: pd.DataFrame) -> pd.Series:
        return df["data.L"].astype(float) if "data.L" in df else pd.Series(float(self.cfg.data.L), df.index)


def add_shares(s: pd.DataFrame, res: Results) -> None:
    """Add share_features (of kL), share_all and share_one (of k classes) to summary rows, in place."""
    if not len(s) or "features_total" not in s:
        return
    total = pd.to_numeric(s["features_total"], errors="coerce")
    k = res.k_of(s)
    s["share_features"] = pd.to_numeric(s["features_captured"], errors="coerce") / total
    s["share_all"] = pd.to_numeric(s["classes_all_captured"], errors="coerce") / k
    s["share_one"] = pd.to_numeric(s["classes_one_captured"], errors="coerce") / k


def n_seeds(df: pd.DataFrame) -> int:
    return int(df["seed"].nunique()) if "seed" in df and len(df) else 0


def load_results(out) -> Results:
    """Config, grid, summary (with share columns), last rows and features of a results directory."""
    out = Path(out)
    if not out.is_dir():
        raise ResultsError(f"results directory '{out}' does not exist")
    if not (out / "config.toml").is_file():
        raise ResultsError(f"'{out}' has no config.toml (not a results directory of mvsim.sweep?)")
    cfg, grid, seeds = C.load_run_toml(out / "config.toml")
    try:
        return _load(out, cfg, grid, seeds)
    except store.DamagedFile as e:
        raise ResultsError(str(e)) from None


def _load(out: Path, cfg, grid, seeds) -> Results:
    summary = store.load(out)
    if not len(summary):
        raise ResultsError(f"'{out}' has no results yet (no rows in {out / store.SUMMARY}/*.parquet)")
    missing = [c for c in ("checkpoint", "gd_time", "is_last") if c not in summary]
    if missing:
        raise ResultsError(f"'{out}' was written by an older mvsim (summary lacks {', '.join(missing)}): "
                           f"rerun the sweep")
    events = store.load_events(out)
    if not len(events):
        raise ResultsError(f"'{out}' was written by an older mvsim (no event times in {out / store.EVENTS}): "
                           f"rerun the sweep into a new --out")
    return Results(summary, store.load_features(out), events, cfg, grid, out, seeds)
