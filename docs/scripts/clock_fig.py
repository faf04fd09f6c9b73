"""docs/figures/clock_q3.png, clock_q4.png: the time picture (mvsim.figs_time.fig_time) of race_q3 (the
default config, 5 checkpoints per decade) and race_q4, at a small size."""
from common import *  # noqa: F401,F403
from mvsim.figs_time import fig_time

for name, out in [("race_q3", "clock_q3.png"), ("race_q4", "clock_q4.png")]:
    fig = fig_time(study(name))
    fig.savefig(FIG / out, dpi=90)
    print("wrote", FIG / out)
