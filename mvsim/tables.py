"""Records of a chunk of seeds -> the results' two long tables (pandas DataFrames).

summary:  one row per (grid point, seed, method, ft_from, checkpoint) with every scalar of
          `experiment.SCALARS`, `gd_time` (the GD time reached: the sum of step sizes),
          `step` (steps taken), `checkpoint` (the GD time asked for), `reached` (the run got
          there within train.max_steps), `is_last` (the method's horizon) and `ft_from` (the MRP
          time fine-tuning started from; NaN for the other methods).
features: one row per (grid point, seed, method, ft_from, checkpoint, cls, feature) with
          `lam` (Lambda), `lam_init` (Lambda at GD time 0), `purity`, `cross`, `mix` (see
          `metrics.feature_table`), `gd_time`, `step`, `checkpoint`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvsim.config import Config
from mvsim.experiment import FEATURE_COLS, SCALARS, ft_times, mrp_times, sl_times

REACHED_RTOL = 1e-5  # float32 clocks land on a checkpoint to within rounding


def times_of(method: str, cfg: Config) -> np.ndarray:
    """The GD times at which `method` is logged (static, from the config)."""
    return {"sl": sl_times, "sl_ensemble": sl_times, "kd": sl_times, "mrp": mrp_times,
            "mrp_ft": ft_times}[method](cfg)


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
    return summary, pd.DataFrame(f)


def to_tables(records, seeds, cfg: Config, point: dict, grid_point: int):
    """Records of a chunk ({method: arrays with leading axes (S, T)}; mrp_ft (S, n_from, T)) ->
    (summary, features) DataFrames."""
    seeds = np.asarray(seeds, np.int64)
    summaries, features = [], []
    for method, rec in records.items():
        if method == "mrp_ft":
            for j, t0 in enumerate(cfg.train.ft_from):
                one = {key: value[:, j] for key, value in rec.items()}
                s, f = _method_frames(method, one, seeds, cfg, point, grid_point, ft_from=t0)
                summaries.append(s)
                features.append(f)
        else:
            s, f = _method_frames(method, rec, seeds, cfg, point, grid_point)
            summaries.append(s)
            features.append(f)
    return pd.concat(summaries, ignore_index=True), pd.concat(features, ignore_index=True)


def last(summary: pd.DataFrame) -> pd.DataFrame:
    """Each method's row at its horizon (for mrp_ft: fine-tuned from its grid point's latest MRP time)."""
    rows = summary[summary["is_last"]]
    ft = rows["method"] == "mrp_ft"
    if ft.any():
        latest = rows["ft_from"].where(ft).groupby(rows["grid_point"]).transform("max")
        rows = rows[~ft | (rows["ft_from"] == latest)]
    return rows.reset_index(drop=True)
