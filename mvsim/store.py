"""The results directory: Parquet chunks written atomically, loaded back as pandas DataFrames.

Layout of DIR:
  config.toml            the resolved config, grid and seed count (repeatable with --config)
  summary/<chunk>.parquet  one row per (grid point, seed, method)
  features/<chunk>.parquet Lambda_{i,l} over training, long format
  events/<chunk>.parquet   first GD times of feature and fit events, at step resolution (mvsim.tables)
A chunk counts as done when its summary file exists; its features and events files are written first.
A chunk whose files cannot be read (a disk fault, a copy cut short) is moved aside to DIR/damaged/ on
resume, and its seeds run again; reading such a file anywhere else raises `DamagedFile`, one line
naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

SUMMARY, FEATURES, EVENTS = "summary", "features", "events"
PARTS = (SUMMARY, FEATURES, EVENTS)
DAMAGED = "damaged"


class DamagedFile(ValueError):
    """A results file that cannot be read; the message is one line naming it."""


def chunk_name(grid_point: int, seeds, process: int = 0) -> str:
    """File name of a chunk: grid point, first seed, seed count and writing process."""
    return f"g{grid_point:04d}_s{int(seeds[0]):07d}_n{len(seeds):05d}_p{process:03d}.parquet"


def write_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_chunk(out: Path, name: str, summary: pd.DataFrame, features: pd.DataFrame,
                events: pd.DataFrame) -> None:
    write_atomic(features, out / FEATURES / name)
    write_atomic(events, out / EVENTS / name)
    write_atomic(summary, out / SUMMARY / name)


def _read(path: Path, columns=None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
        raise DamagedFile(f"'{path}' is damaged and cannot be read ({type(e).__name__}); rerun the sweep on its "
                          f"directory to move it aside to {DAMAGED}/ and recompute its seeds") from None


def _read_all(folder: Path, columns=None) -> pd.DataFrame:
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pd.DataFrame(columns=columns)
    return pd.concat([_read(f, columns) for f in files], ignore_index=True)


def _readable(path: Path) -> bool:
    """Can the Parquet footer of `path` be read (a truncated or overwritten file fails)?"""
    try:
        pq.read_metadata(path)
        return True
    except Exception:  # noqa: BLE001
        return False


def quarantine_damaged(out) -> list[str]:
    """Move every chunk with an unreadable file (summary, features or events) to DIR/damaged/, so
    that its seeds count as not done and run again; returns the damaged files' paths."""
    out = Path(out)
    damaged = [f for part in PARTS if (out / part).is_dir() for f in sorted((out / part).glob("*.parquet"))
               if not _readable(f)]
    for name in sorted({f.name for f in damaged}):
        for part in PARTS:
            if (out / part / name).exists():
                (out / DAMAGED).mkdir(exist_ok=True)
                os.replace(out / part / name, out / DAMAGED / f"{part}_{name}")
    return [str(f) for f in damaged]


def load(out) -> pd.DataFrame:
    """The summary of a results directory: one row per (grid point, seed, method)."""
    df = _read_all(Path(out) / SUMMARY)
    return df.sort_values(["grid_point", "seed", "method"], ignore_index=True) if len(df) else df


def load_features(out) -> pd.DataFrame:
    """The Lambda trajectories of a results directory, one row per (grid point, seed, method, step, feature)."""
    return _read_all(Path(out) / FEATURES)


def load_events(out) -> pd.DataFrame:
    """The events of a results directory, one row per (grid point, seed, method, ft_from, event, cls,
    feature): first GD times at step resolution, with censoring (see mvsim.tables)."""
    return _read_all(Path(out) / EVENTS)


def done_seeds(out) -> dict[int, set[int]]:
    """Seeds already finished at each grid point; drops features files whose chunk never finished."""
    out = Path(out)
    summaries = {f.name for f in (out / SUMMARY).glob("*.parquet")} if (out / SUMMARY).is_dir() else set()
    for part in (FEATURES, EVENTS):
        if (out / part).is_dir():
            for f in (out / part).glob("*.parquet"):
                if f.name not in summaries:
                    f.unlink()
    df = _read_all(out / SUMMARY, columns=["grid_point", "seed"])
    done: dict[int, set[int]] = {}
    for gp, seeds in df.groupby("grid_point")["seed"]:
        done[int(gp)] = set(np.unique(seeds).tolist())
    return done
