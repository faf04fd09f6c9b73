"""The k study's trends with SL's erosion times read at a tighter rtol.

    .venv/bin/python docs/scripts/erode_trend.py [--rtol 1e-2] [--study docs/scaling/seeds.csv]

`validate.py erode --config experiments/kK.toml --rtols R --seeds S` keeps SL's record of seed S at
rtol R in results/validate/erode/. This script puts each such seed's t_erode in place of the study's
(docs/scaling/seeds.csv, the per-seed table `mvsim.scaling` wrote), after checking that the two runs
are the same seed (t_fit agrees to 1%: the fit is resolved at every rtol), recomputes the quantities
that depend on it (window, cap_over_erode, ordered) and fits the study's trends again
(`scaling.trends`: slopes per doubling of k, Holm over the same family). It prints the seeds it
replaced and the trends before and after. Nothing is rerun here.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate as V  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim import scaling  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECORD = re.compile(r"(?P<stem>k\d+)_rtol(?P<rtol>[^_]+)_seeds(?P<seeds>[\d-]+)\.npz")


def tight_erosion_times(store: Path, rtol: float) -> pd.DataFrame:
    """(source, seed, t_fit, t_erode) of every record in `store` at `rtol`."""
    rows = []
    for path in sorted(store.glob("k*_rtol*_seeds*.npz")):
        m = RECORD.fullmatch(path.name)
        if not m or float(m["rtol"]) != rtol:
            continue
        cfg, _ = C.load_toml(ROOT / "experiments" / f"{m['stem']}.toml")
        with np.load(path) as f:
            w = V.windows({k: f[k] for k in ("ev_capture", "ev_fit")}, cfg)
        for i, seed in enumerate(int(s) for s in m["seeds"].split("-")):
            rows.append({"source": m["stem"], "seed": seed, "t_fit": w["t_fit"][i], "t_erode": w["t_erode"][i]})
    return pd.DataFrame(rows, columns=["source", "seed", "t_fit", "t_erode"])


def replace(study: pd.DataFrame, tight: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study with the tight t_erode of each matching seed, and a table of what changed."""
    out, changed = study.copy(), []
    for r in tight.itertuples():
        at = (out["source"] == r.source) & (out["seed"] == r.seed)
        if at.sum() != 1:
            raise SystemExit(f"{r.source} seed {r.seed}: not one row of the study")
        i = out.index[at][0]
        if abs(out.at[i, "t_fit"] / r.t_fit - 1) > 0.01:
            raise SystemExit(f"{r.source} seed {r.seed}: t_fit {r.t_fit:.4g} against the study's "
                             f"{out.at[i, 't_fit']:.4g}: not the same run")
        with np.errstate(invalid="ignore"):  # a window open in both runs: inf / inf, shown as nan
            ratio = out.at[i, "t_erode"] / r.t_erode
        changed.append({"source": r.source, "seed": r.seed, "k": out.at[i, "k"], "t_erode_study": out.at[i, "t_erode"],
                        "t_erode_tight": r.t_erode, "ratio": ratio})
        out.at[i, "t_erode"] = r.t_erode
        out.at[i, "ordered"] = scaling.ordered(out.at[i, "t_cap"], r.t_erode, out.at[i, "sl_end"], out.at[i, "t_fit"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["window"] = out["t_erode"] / out["t_fit"]
        out["cap_over_erode"] = out["t_cap"] / out["t_erode"]
    return out, pd.DataFrame(changed)


def markdown(df: pd.DataFrame) -> str:
    cell = lambda v: f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)
    lines = [V.row(*df.columns), V.row(*["---"] * len(df.columns))]
    return "\n".join(lines + [V.row(*(cell(v) for v in r)) for r in df.itertuples(index=False)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rtol", type=float, default=1e-2, help="the rtol of the erosion records used (default 1e-2)")
    p.add_argument("--study", type=Path, default=ROOT / "docs" / "scaling" / "seeds.csv", help="the study's per-seed table")
    p.add_argument("--store", type=Path, default=V.OUT / "erode", help="validate.py erode's records")
    a = p.parse_args(argv)
    study = pd.read_csv(a.study)
    tight = tight_erosion_times(a.store, a.rtol)
    if tight.empty:
        raise SystemExit(f"no erosion records at rtol {a.rtol:g} in {a.store}: run validate.py erode first")
    new, changed = replace(study, tight)
    print(f"t_erode of {len(changed)} seeds from rtol {a.rtol:g} (study: the sweep's own rtol):\n")
    print(markdown(changed), "\n")
    keep = ["quantity", "slope_per_doubling", "lo", "hi", "n", "p", "p_holm", "direction"]
    for name, df in (("study", study), (f"with t_erode at rtol {a.rtol:g}", new)):
        tr = scaling.trends(df)
        tr = tr[tr["quantity"].isin(["t_erode", "window", "cap_over_erode"])][keep]
        print(f"trends, {name}:\n")
        print(markdown(tr), "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
