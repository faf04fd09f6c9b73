import sys, math
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import numpy as np, pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from mvsim import store, analysis as A, plots as P
plt.rcParams.update(P.STYLE)
R = f"{ROOT}/results"
FIG = f"{ROOT}/docs/figures"
DEFAULT = f"{R}/default"

def load(name):
    return store.load(f"{R}/studies/{name}"), store.load_features(f"{R}/studies/{name}")

def default8(key=None, value=None, seeds=8):
    s = store.load(DEFAULT); s = s[s.seed < seeds].copy()
    if key: s[key] = value
    return s

def fmt(m, lo, hi, d=2, pct=False):
    if pct:
        return f"{100*m:.{d}f}% [{100*lo:.{d}f}, {100*hi:.{d}f}]"
    if not np.isfinite(lo):
        return f"{m:.{d}f}"
    return f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"

def to_md(df):
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(out)
