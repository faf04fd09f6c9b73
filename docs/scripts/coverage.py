"""Study 5 figure and numbers: share of features captured for the classes absent from the
pretraining data (0-4) and the others, per method. Run from the repository root after
  python -m mvsim.sweep --config experiments/coverage.toml --out results/studies/coverage
  python -m mvsim.sweep --config experiments/coverage.toml --out results/studies/coverage_longft \
      --set train.ft_steps=300 --set train.ft_kernel_lr=10.0 --set train.ft_lr=10.0
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mvsim import plots, store
from mvsim.plots import mean_ci

CONDITIONS = [("results/studies/coverage", 0, "full pretraining\n(FT 100 steps, lr 1)"),
              ("results/studies/coverage", 5, "classes 0-4 absent\n(FT 100 steps, lr 1)"),
              ("results/studies/coverage_longft", 5, "classes 0-4 absent\n(FT 300 steps, lr 10)")]


def captured_share(out, drop, method, absent: bool):
    """Per seed: share of the features of classes 0-4 (absent=True) or 5-9 captured at the end."""
    f = store.load_features(out)
    f = f[(f["data.pretrain_drop"] == drop) & (f.method == method)]
    last = f.loc[f.groupby(["seed", "cls", "feature"]).step.idxmax()]
    last = last[(last.cls < 5) == absent]
    return last.groupby("seed").lam.apply(lambda x: (x >= 1.0).mean())  # varrho = 1.0


def main():
    with plt.rc_context(plots.STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), sharey=True)
        for ax, absent in zip(axes, [True, False]):
            for j, (out, drop, label) in enumerate(CONDITIONS):
                for i, m in enumerate(["sl", "mrp", "mrp_ft"]):
                    mu, lo, hi = mean_ci(captured_share(out, drop, m, absent))
                    print(f"{label.splitlines()[0]:22s} {label.splitlines()[1]:22s} {m:7s} "
                          f"{'absent' if absent else 'present'}: {mu:.3f} [{lo:.3f}, {hi:.3f}]")
                    x = j + (i - 1) * 0.25
                    ax.bar(x, mu, 0.24, color=plots.method_colour(m),
                           label=plots.method_name(m) if j == 0 else None)
                    ax.errorbar(x, mu, yerr=[[mu - lo], [hi - mu]], color="k", lw=0.8, capsize=2)
            ax.set_xticks(range(3))
            ax.set_xticklabels([c[2] for c in CONDITIONS], fontsize=6.5)
            ax.set_title("features of classes 0-4" if absent else "features of classes 5-9")
            ax.set_ylim(0, 1.08)
        axes[0].set_ylabel("share captured ($\\Lambda \\geq \\varrho$)")
        axes[0].legend(loc="upper right", fontsize=6.5)
        fig.suptitle("Coverage: pretraining data without classes 0-4 (mean, 95% CI over 8 seeds)")
        fig.tight_layout()
        fig.savefig("docs/figures/coverage.png", dpi=200)


if __name__ == "__main__":
    main()
