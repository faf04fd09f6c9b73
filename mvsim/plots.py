"""Figures from a results directory: `python -m mvsim.plots DIR [--pdf]` writes DIR/figures/*.png.

Figures (each made by one function taking a `Results`, returning a Figure or None):
  time.png               the picture: features captured and single-view accuracy over GD time,
                         SL vs MRP vs MRP+FT, SL's lottery window and MRP's capture time (figs_time)
  trajectories.png       Lambda_{i,l} over GD time of one seed, a few classes (figs_time)
  features_captured.png  share of features captured, classes with all / exactly one captured (figs_horizon)
  lottery.png            SL: initial gap between a class's features vs the gap at the horizon (figs_horizon)
  accuracy.png           train / multi-view / single-view / test accuracy per method, 95% CI (figs_horizon)
  grid_<key>.png         one grid key: the main metrics against it, 95% CI (figs_grid)
  grid_<k1>_<k2>.png     two or more grid keys: heatmaps over the first two (figs_grid)

The end-of-training and grid figures use each method's row at its horizon (`mvsim.tables.last`).
All but the grid figures show one grid point, the "reference point": the one whose grid values
equal the base config stored in DIR/config.toml, else the first. Diverged rows are left out of
every mean and interval, and each figure says how many were left out. Confidence intervals are
95% Student-t intervals over seeds (`mean_ci`).

Modules: figs_time, figs_horizon, figs_grid (the figures), plotstyle (their look); they read
`mvsim.results` (loading) and `mvsim.stats` (statistics). This module only draws: it is the entry point.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mvsim import config as C  # noqa: E402
from mvsim.figs_horizon import fig_accuracy, fig_features_captured, fig_lottery  # noqa: E402
from mvsim.figs_grid import fig_grid_1d, fig_grid_2d  # noqa: E402
from mvsim.figs_time import fig_time, fig_trajectories  # noqa: E402
from mvsim.plotstyle import DPI, STYLE  # noqa: E402
from mvsim.results import Results, ResultsError, load_results  # noqa: E402


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name)


def figures(res: Results) -> list[tuple[str, object]]:
    """(file stem, figure-making function) for every figure this results directory supports."""
    todo = [("time", fig_time), ("trajectories", fig_trajectories),
            ("features_captured", fig_features_captured), ("lottery", fig_lottery),
            ("accuracy", fig_accuracy)]
    keys = res.keys
    if len(keys) == 1:
        todo.append((f"grid_{_safe(keys[0])}", lambda r: fig_grid_1d(r, keys[0])))
    elif len(keys) >= 2:
        todo.append((f"grid_{_safe(keys[0])}_{_safe(keys[1])}",
                     lambda r: fig_grid_2d(r, keys[0], keys[1], keys[2:])))
    return todo


def make_all(out, pdf: bool = False, log=None, dpi: int = DPI) -> list[Path]:
    """Write every figure of results directory `out` to out/figures/ (PNG at `dpi`, and PDF if `pdf`).

    Returns the paths written. Raises ResultsError for a missing or empty directory.
    `log(msg)`, if given, is told about figures skipped for lack of data.
    """
    res = load_results(out)
    folder = res.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for stem, make in figures(res):
            fig = make(res)
            if fig is None:
                if log:
                    log(f"skipped {stem}: nothing to show in {res.out} "
                        f"(no rows for it, or all of them diverged)")
                continue
            try:
                for ext in ("png", "pdf") if pdf else ("png",):
                    path = folder / f"{stem}.{ext}"
                    fig.savefig(path, dpi=dpi)
                    written.append(path)
            finally:
                plt.close(fig)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mvsim.plots",
        description="Write the figures of an mvsim results directory to DIR/figures/: features and "
                    "single-view accuracy over GD time (time.png), Lambda trajectories, features "
                    "captured, the SL lottery, accuracy by data kind, and sweep figures when the run "
                    "has a grid.")
    parser.add_argument("dir", metavar="DIR", help="results directory written by python -m mvsim.sweep")
    parser.add_argument("--pdf", action="store_true", help="also write each figure as PDF (vector)")
    parser.add_argument("--dpi", type=int, default=DPI, help=f"resolution of the PNG files (default {DPI})")
    args = parser.parse_args(argv)
    say = lambda msg: print(f"mvsim.plots: {msg}", file=sys.stderr)  # noqa: E731
    try:
        paths = make_all(args.dir, pdf=args.pdf, log=say, dpi=args.dpi)
    except (ResultsError, C.ConfigError) as e:
        print(f"mvsim.plots: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
