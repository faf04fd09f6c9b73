"""Generate experiments/<study>.toml from experiments/default.toml (values copied), with overrides."""
import re, sys
from pathlib import Path
root = Path(__file__).resolve().parents[2]
base = (root / "experiments/default.toml").read_text()

def fmt(v):
    if isinstance(v, str): return f'"{v}"'
    if isinstance(v, bool): return "true" if v else "false"
    return repr(v)

def make(name, title, overrides, grid, seeds=8, notes=()):
    text = base
    head = [f"# Study '{name}': {title}", "# Run: .venv/bin/python -m mvsim.sweep --config experiments/%s.toml --out results/studies/%s --quiet" % (name, name)]
    head += [f"# {n}" for n in notes]
    head += ["# Values below are copied from experiments/default.toml; lines marked STUDY differ from it.", ""]
    lines = text.splitlines()
    # drop the default header comment block
    i = 0
    while lines[i].startswith("#"):
        i += 1
    lines = lines[i:]
    section = None
    out = []
    done = set()
    for ln in lines:
        m = re.match(r"\[(\w+)\]", ln)
        if m:
            section = m.group(1)
        m2 = re.match(r"(\w+)\s*=\s*(\S+)(\s*)(#.*)?$", ln)
        if m2 and section and f"{section}.{m2.group(1)}" in overrides:
            key = f"{section}.{m2.group(1)}"
            v, why = overrides[key]
            ln = f"{m2.group(1)} = {fmt(v)}  # STUDY (default {m2.group(2)}): {why}"
            done.add(key)
        out.append(ln)
    missing = set(overrides) - done
    assert not missing, missing
    out.append("")
    out.append("[grid]")
    for k, vs in grid.items():
        out.append(f'"{k}" = [{", ".join(fmt(v) for v in vs)}]')
    out += ["", "[sweep]", f"seeds = {seeds}", ""]
    (root / "experiments" / f"{name}.toml").write_text("\n".join(head + out))

SL_REUSE = ("train.sl_steps", (0, "SL does not depend on the mrp.*/ft.* keys swept here (same seed -> same data and init), "
            "so SL is not retrained: its numbers are those of experiments/default.toml, seeds 0-7 (results/default); "
            "checked by MRP+FT at the default grid value reproducing results/default exactly"))
MRP_REUSE = [("train.mrp_steps", (0, "MRP/FT do not depend on train.sl_lr: taken from results/default seeds 0-7 (saves CPU)")),
             ("train.ft_steps", (0, "as train.mrp_steps"))]


DEF = ("The default value ({v}) is not rerun: it is results/default seeds 0-7 "
       "(same seeds, same compiled computation; checked bit-exact on the mask_keep sweep).")
SL0 = dict([SL_REUSE])
make("phase_mask_keep", "phase diagram over the MRP keep probability", SL0,
     {"mrp.mask_keep": [0.1, 0.3, 0.5, 0.7, 0.9]})
make("phase_mu", "phase diagram over the share of single-view samples", {}, {"data.mu": [0.01, 0.1, 0.2]},
     notes=[DEF.format(v="data.mu = 0.03")])
make("phase_rho", "phase diagram over the weak-feature strength of single-view samples", {},
     {"data.rho": [0.02, 0.1, 0.2, 0.4]}, notes=[DEF.format(v="data.rho = 0.05")])
make("phase_sigma0", "phase diagram over the initialisation scale", {}, {"net.sigma_0": [0.003, 0.03, 0.1]},
     notes=[DEF.format(v="net.sigma_0 = 0.01")])
make("phase_varrho", "phase diagram over the sReLU threshold", {}, {"net.varrho": [0.3, 0.6, 2.0]},
     notes=[DEF.format(v="net.varrho = 1.0")])
make("phase_sl_lr", "phase diagram over the SL learning rate", dict(MRP_REUSE), {"train.sl_lr": [3.0, 30.0]},
     notes=[DEF.format(v="train.sl_lr = 10")])
make("phase_m", "phase diagram over kernels per class (compiles per value)", {}, {"net.m": [3, 5, 20]},
     notes=[DEF.format(v="net.m = 10")])
make("phase_d", "phase diagram over the patch dimension (compiles per value)", {}, {"data.d": [64, 128, 512]},
     notes=[DEF.format(v="data.d = 256")])
make("mrp_teacher", "study 4: EMA teacher instead of the stop-gradient copy",
     {**SL0, "mrp.teacher": ("ema", "EMA teacher; ema_tau swept")}, {"mrp.ema_tau": [0.9, 0.99]},
     notes=["The stop-gradient teacher is the default (results/default)."])
make("mrp_decoder", "study 4: learned diagonal vs learned full linear decoder",
     {**SL0, "mrp.decoder_lr": (0.1, "learn the decoder (a fixed full decoder b*I equals the fixed diagonal one)")},
     {"mrp.decoder": ["diag", "full"]}, notes=["The fixed diagonal decoder b = 1 is the default (results/default)."])
make("mrp_mae", "study 4: MAE target (reconstruct the masked patches' pixels with a linear decoder tied to W at init)",
     {**SL0, "mrp.target": ("mae", "MAE variant")}, {"mrp.decoder_lr": [0.0, 0.1]})
make("ft_keep", "study 7: fine-tuning kernel learning rate: when are pretrained features lost?", SL0,
     {"train.ft_kernel_lr": [0.1, 10.0, 100.0]}, notes=[DEF.format(v="train.ft_kernel_lr = 1")])
make("ft_head", "study 7: head-only fine-tuning", {**SL0, "ft.mode": ("head", "head only")}, {"ft.mode": ["head"]})
make("more_features", "study 6: L = 3, 4 features per class",
     {"data.P": (24, "room for L*C_p own patches plus the ~(k-1)*L*s/k*C_p other-class patches (14.4 at L = 4)")},
     {"data.L": [3, 4]})
make("race_q3", "study 8: the race at q = 3, finely logged", {"train.log_every": (2, "resolve hitting times to 2 steps")},
     {"net.q": [3]})
make("race_q4", "study 8: the race at q = 4",
     {"net.q": (4, "smoothed ReLU z^4 near 0"),
      "train.sl_steps": (600, "q = 4 grows slower near 0; 600 steps for sigma_0 = 0.05 (time ~ Lambda0^-2)"),
      "train.log_every": (2, "resolve hitting times to 2 steps")},
     {"net.sigma_0": [0.01, 0.05]},
     notes=["sigma_0 = 0.05 keeps sigma_0^(q-2) (the race's time scale) near the q = 3 default; 0.01 shows q = 4 at the default init."])
make("race_q4_long", "study 8: the race at q = 4 with SL long enough to fit every class",
     {"net.q": (4, "smoothed ReLU z^4 near 0"),
      "net.sigma_0": (0.05, "keeps sigma_0^(q-2) near the q = 3 default's time scale"),
      "train.sl_steps": (1000, "600 steps left 4 of 80 classes unfit at q = 4 (race_q4); their Lambda had doubled, so blow-up ~800 steps"),
      "train.log_every": (2, "resolve hitting times to 2 steps")},
     {"net.q": [4]})
make("mrp_teacher_long", "study 4: EMA teacher tau = 0.9 given 300 MRP steps",
     {**SL0, "mrp.teacher": ("ema", "EMA teacher"), "mrp.ema_tau": (0.9, "EMA decay"),
      "train.mrp_steps": (300, "tau = 0.9 grew Lambda ~1.7%/step in 100 steps: ~250 steps to reach varrho")},
     {"mrp.ema_tau": [0.9]})
