#!/usr/bin/env bash
# The k study on a machine with an NVIDIA GPU, in one command: for each k, the config carried to
# k by mvsim/regime.py, a per-k step benchmark (benchmarks/steps.py --k), the sweep, then the
# study's tables and figures (python -m mvsim.scaling). Uses the python and jax already
# installed there (nothing is pip-installed).
#
#   benchmarks/gpu_scaling.sh [OUTDIR]     # OUTDIR defaults to $OUT, else benchmarks/gpu-scaling
#
# Writes OUTDIR/kK/ (each k's sweep results: the same tables as `python -m mvsim.sweep`),
# OUTDIR/kK.toml, OUTDIR/steps_kK.json and .log, OUTDIR/scaling/ (scaling.md, seeds.csv,
# points.csv, trends.csv, k_claims.png), nvidia-smi.txt, gpu-usage.csv and timings.txt.
# Environment:
#   KS            the k values (default "10 20 40 80 160 320")
#   SEEDS         seeds per k (default 16)
#   K_TIMEOUT     seconds before one k's sweep is stopped (default 600; rerunning resumes it,
#                 since every finished chunk is on disk)
#   STEPS_STEPS   steps of the per-k benchmark (default 30; 0: skip it)
#   PYTHON        interpreter (default: .venv/bin/python if it imports jax, else python3)
# A k whose sweep is stopped by K_TIMEOUT keeps its finished chunks and the study goes on; the
# report covers the seeds on disk. Exits non-zero if any part failed or timed out.
set -uo pipefail

cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-benchmarks/gpu-scaling}}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x .venv/bin/python ] && .venv/bin/python -c "import jax" 2>/dev/null; then
    PY=.venv/bin/python
else
    PY="$(command -v python3 || command -v python)"
fi
KS="${KS:-10 20 40 80 160 320}"
SEEDS="${SEEDS:-16}"
K_TIMEOUT="${K_TIMEOUT:-600}"
STEPS_STEPS="${STEPS_STEPS:-30}"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "== $(date -u +%FT%TZ) on $(hostname), k in {$KS}, $SEEDS seeds, output in $OUTDIR"
nvidia-smi 2>&1 | tee "$OUTDIR/nvidia-smi.txt" >/dev/null || echo "nvidia-smi not available"
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())" | tee "$OUTDIR/env.txt"
SMI_PID=""
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total --format=csv -l 1 \
        >"$OUTDIR/gpu-usage.csv" 2>/dev/null &
    SMI_PID=$!
fi
trap '[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null' EXIT

status=0
dirs=()
: >"$OUTDIR/timings.txt"
for k in $KS; do
    "$PY" -m mvsim.regime "$k" --seeds "$SEEDS" >"$OUTDIR/k$k.toml" || { status=1; continue; }
    if [ "$STEPS_STEPS" != 0 ]; then
        timeout "$K_TIMEOUT" "$PY" benchmarks/steps.py --k "$k" --chunk "$SEEDS" --max-steps "$STEPS_STEPS" \
            --out "$OUTDIR/steps_k$k.json" >"$OUTDIR/steps_k$k.log" 2>&1 || status=1
    fi
    t0=$(now)
    timeout "$K_TIMEOUT" "$PY" -m mvsim.sweep --config "$OUTDIR/k$k.toml" --out "$OUTDIR/k$k" --quiet --no-claims \
        2>&1 | tee "$OUTDIR/sweep_k$k.log"
    rc=${PIPESTATUS[0]}
    echo "k $k sweep_s $(secs "$t0" "$(now)") rc $rc seeds $SEEDS" | tee -a "$OUTDIR/timings.txt"
    [ "$rc" -eq 0 ] || status=1
    [ -d "$OUTDIR/k$k/summary" ] && dirs+=("$OUTDIR/k$k")
done

if [ "${#dirs[@]}" -gt 0 ]; then
    "$PY" -m mvsim.scaling --study "${dirs[@]}" --out "$OUTDIR/scaling" >"$OUTDIR/scaling.log" 2>&1 || status=1
    tail -n 40 "$OUTDIR/scaling.log"
fi
exit $status
