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

make("phase_mask_keep", "phase diagram over the MRP keep probability", dict([SL_REUSE]),
     {"mrp.mask_keep": [0.1, 0.3, 0.5, 0.7, 0.9]})
make("phase_mu", "phase diagram over the share of single-view samples", {}, {"data.mu": [0.01, 0.03, 0.1, 0.2]})
make("phase_rho", "phase diagram over the weak-feature strength of single-view samples", {},
     {"data.rho": [0.02, 0.05, 0.1, 0.2, 0.4]})
make("phase_sigma0", "phase diagram over the initialisation scale", {}, {"net.sigma_0": [0.003, 0.01, 0.03, 0.1]})
make("phase_varrho", "phase diagram over the sReLU threshold", {}, {"net.varrho": [0.3, 0.6, 1.0, 2.0]})
make("phase_sl_lr", "phase diagram over the SL learning rate", dict(MRP_REUSE), {"train.sl_lr": [3.0, 10.0, 30.0]})
make("phase_m", "phase diagram over kernels per class (compiles per value)", {}, {"net.m": [3, 5, 10, 20]})
make("phase_d", "phase diagram over the patch dimension (compiles per value)", {}, {"data.d": [64, 128, 256, 512]})
