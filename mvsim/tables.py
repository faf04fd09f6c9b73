"""Records of a chunk of seeds -> the results' two long tables (pandas DataFrames).

summary:  one row per (grid point, seed, method, ft_from, checkpoint) with every scalar of
          `experiment.SCALARS`, `gd_time` (the GD time reached: the sum of step sizes),
          `step` (steps taken), `checkpoint` (the GD time asked for), `reached` (the run got
          there within train.max_steps), `is_last` (the method's horizon) and `ft_from` (the MRP
          time fine-tuning started from; NaN for the other methods).
features: one row per (grid point, seed, method, ft_from, checkpoint, cls, feature) with
          `lam` (Lambda), `lam_init` (Lambda at GD time 0), `purity`, `cross`, `mix` (see
          `metrics.feature_table`), `gd_time`, `step`, `checkpoint`.
events:   one row per (grid point, seed, method, ft_from, event, cls, feature): the GD time at which
          an event first happened, at step resolution (`flow.Events`): `event` is 'reach' (Lambda of
          feature (cls, feature) reaches the capture line), 'capture' (some kernel reaches it and is a
          detector of it) or 'fit' (training accuracy reaches metrics.FIT_ACC; cls = feature = -1).
          `gd_time` is inf when it did not happen within the run; `censored` says 'right' then (it
          would come after `t_end`, the GD time the run reached), 'left' when it held at time 0
          (before the first step), else 'none'. `horizon` is the run's horizon (t_end < horizon:
          stopped at train.max_steps); `lam_init` is Lambda at time 0 (NaN for 'fit').
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvsim.config import Config
from mvsim.experiment import EVENT_COLS, FEATURE_COLS, SCALARS
from mvsim.methods import METHODS

REACHED_RTOL = 1e-5  # float32 clocks land on a checkpoint to within rounding


def times_of(method: str, cfg: Config) -> np.ndarray:
    """The GD times at which `method` is logged (static, from the config: `Method.times`)."""
    return METHODS[method].times(cfg)


def _method_frames(method, rec, seeds, cfg, point, grid_point, ft_from=np.nan):
    times = times_of(method, cfg)
    S, T = rec["gd_time"].shape
    base = {"method": method, "grid_point": grid_point, **point, "ft_from": ft_from}
    si, ti = np.indices((S, T)).reshape(2, -1)
    s = {"seed": seeds[si], **base}
    for key in SCALARS:
        s[key] = rec[key][si, ti].astype(bool if key == "diverged" else np.float64)
    gd = rec["gd_time"][si, ti].astype(np.float64)
    s.update(gd_time=gd, step=rec["step"][si, ti].astype(np.int64), checkpoint=times[ti],
             reached=gd >= times[ti] * (1 - REACHED_RTOL), is_last=ti == T - 1)
    summary = pd.DataFrame(s)

    lam = rec["lam"]  # (S, T, k, L)
    _, _, k, L = lam.shape
    idx = np.indices(lam.shape).reshape(4, -1)
    f = {"seed": seeds[idx[0]], **base, "checkpoint": times[idx[1]],
         "gd_time": rec["gd_time"][idx[0], idx[1]].astype(np.float64),
         "step": rec["step"][idx[0], idx[1]].astype(np.int64), "cls": idx[2], "feature": idx[3]}
    for key in FEATURE_COLS:
        f[key] = rec[key].reshape(-1).astype(np.float32)
    f["lam_init"] = np.broadcast_to(lam[:, :1], lam.shape).reshape(-1).astype(np.float32)
    return summary, pd.DataFrame(f), _event_frame(rec, seeds, base, times[-1])


EVENT_COLUMNS = ["seed", "method", "grid_point", "ft_from", "event", "cls", "feature", "gd_time", "censored",
                 "t_end", "horizon", "lam_init"]


def _event_frame(rec, seeds, base, horizon) -> pd.DataFrame:
    """The events of one method's records (see the module docstring); empty without events."""
    if not all(key in rec for key in EVENT_COLS):
        return pd.DataFrame(columns=EVENT_COLUMNS)
    S, _, k, L = rec["lam"].shape
    t_end = rec["gd_time"][:, -1].astype(np.float64)
    parts = []
    for event in ("reach", "capture"):
        si, ci, fi = np.indices((S, k, L)).reshape(3, -1)
        parts.append(pd.DataFrame({"seed": seeds[si], "event": event, "cls": ci, "feature": fi,
                                   "gd_time": rec[f"ev_{event}"][si, ci, fi].astype(np.float64),
                                   "t_end": t_end[si], "lam_init": rec["lam"][si, 0, ci, fi].astype(np.float64)}))
    fit = rec["ev_fit"].astype(np.float64)
    has_fit = ~np.isnan(fit)
    parts.append(pd.DataFrame({"seed": seeds[has_fit], "event": "fit", "cls": -1, "feature": -1,
                               "gd_time": fit[has_fit], "t_end": t_end[has_fit], "lam_init": np.nan}))
    ev = pd.concat(parts, ignore_index=True)
    t = ev["gd_time"].to_numpy()
    ev["censored"] = np.where(np.isinf(t), "right", np.where(t == 0, "left", "none"))
    ev = ev.assign(**base, horizon=float(horizon))
    return ev[EVENT_COLUMNS + [c for c in ev.columns if c not in EVENT_COLUMNS]]


def to_tables(records, seeds, cfg: Config, point: dict, grid_point: int):
    """Records of a chunk ({method: arrays with leading axes (S, T)}; a method with start times,
    like mrp_ft, (S, n_starts, T)) -> (summary, features, events) DataFrames."""
    seeds = np.asarray(seeds, np.int64)
    frames = []
    for method, rec in records.items():
        starts = METHODS[method].starts
        if starts:
            for j, t0 in enumerate(starts(cfg)):
                one = {key: value[:, j] for key, value in rec.items()}
                frames.append(_method_frames(method, one, seeds, cfg, point, grid_point, ft_from=t0))
        else:
            frames.append(_method_frames(method, rec, seeds, cfg, point, grid_point))
    events = [e for _, _, e in frames if len(e)]
    return (pd.concat([s for s, _, _ in frames], ignore_index=True),
            pd.concat([f for _, f, _ in frames], ignore_index=True),
            pd.concat(events, ignore_index=True) if events else pd.DataFrame(columns=EVENT_COLUMNS))


def latest_ft(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of every method but mrp_ft, and mrp_ft's from its grid point's latest ft_from only."""
    ft = df["method"] == "mrp_ft"
    if not ft.any():
        return df
    latest = df["ft_from"].where(ft).groupby(df["grid_point"]).transform("max")
    return df[~ft | (df["ft_from"] == latest)]


def last(summary: pd.DataFrame) -> pd.DataFrame:
    """Each method's row at its horizon (for mrp_ft: fine-tuned from its grid point's latest MRP time)."""
    return latest_ft(summary[summary["is_last"]]).reset_index(drop=True)
