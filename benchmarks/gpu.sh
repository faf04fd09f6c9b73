#!/usr/bin/env bash
# mvsim on a machine with an NVIDIA GPU: benchmarks/steps.py and benchmarks/pipeline.py, then a
# 1,000-seed default sweep, with the python and jax already installed there (nothing is pip-installed).
#
#   benchmarks/gpu.sh [OUTDIR]        # OUTDIR defaults to $OUT, else benchmarks/gpu-results
#
# Writes OUTDIR/bench.json (sections steps, pipeline_new, summary), bench.log, sweep/ (the sweep's results), sweep.log,
# nvidia-smi.txt (before/after), gpu-usage.csv (utilisation and memory sampled every second)
# and timings.txt. Environment:
#   PYTHON         interpreter to use (default: .venv/bin/python if it imports jax, else python3)
#   STEPS_ARGS     arguments of steps.py (default: --chunk 64)
#   PIPELINE_ARGS  arguments of pipeline.py (default: --chunks 1,64,256 --seeds 2)
#   BENCH_TIMEOUT  seconds before each of the two is stopped (default 150; their JSON is saved as they go)
#   SWEEP_SEEDS    seeds of the sweep (default 1000)
#   SWEEP_TIMEOUT  seconds before the sweep is stopped (default 240; rerunning resumes it)
#   SKIP_BENCH=1 / SKIP_SWEEP=1   run only the other part
# The default timeouts keep one run under ~9.5 minutes (a device call's limit is 10); to give each
# part more time, run it twice, once with SKIP_SWEEP=1 and once with SKIP_BENCH=1, larger timeouts.
# Exits non-zero if a part that ran failed (a timeout counts as a failure: exit 124).
set -uo pipefail

cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-benchmarks/gpu-results}}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # mvsim from this checkout, installed or not

if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x .venv/bin/python ] && .venv/bin/python -c "import jax" 2>/dev/null; then
    PY=.venv/bin/python
else
    PY="$(command -v python3 || command -v python)"
fi
STEPS_ARGS="${STEPS_ARGS:---chunk 64}"
PIPELINE_ARGS="${PIPELINE_ARGS:---chunks 1,64,256 --seeds 2}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-150}"
SWEEP_SEEDS="${SWEEP_SEEDS:-1000}"
SWEEP_TIMEOUT="${SWEEP_TIMEOUT:-240}"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "== $(date -u +%FT%TZ) on $(hostname), output in $OUTDIR"
{ nvidia-smi; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; } \
    2>&1 | tee "$OUTDIR/nvidia-smi.txt" || echo "nvidia-smi not available"
"$PY" - <<'EOF' 2>&1 | tee "$OUTDIR/env.txt"
import os, sys
import jax
print("python", sys.version.split()[0], sys.executable)
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
print("XLA_FLAGS", os.environ.get("XLA_FLAGS"), "XLA_PYTHON_CLIENT_PREALLOCATE",
      os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"), "MEM_FRACTION", os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"))
for m in ("optax", "numpy", "pandas", "pyarrow", "tqdm", "matplotlib"):
    try:
        print(m, __import__(m).__version__)
    except Exception as e:  # the sweep needs pandas/pyarrow; the benchmarks only jax, optax, numpy
        print(m, "MISSING:", e)
if jax.default_backend() == "cpu":
    print("WARNING: jax sees no GPU; the numbers below are CPU numbers")
EOF

# GPU utilisation and memory, sampled every second while the two parts run.
SMI_PID=""
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total,power.draw \
        --format=csv -l 1 >"$OUTDIR/gpu-usage.csv" 2>/dev/null &
    SMI_PID=$!
fi
stop_smi() { if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null; wait "$SMI_PID" 2>/dev/null; SMI_PID=""; fi; }
trap stop_smi EXIT

status=0
bench_s=- bench_rc=skipped sweep_s=- sweep_rc=skipped

if [ "${SKIP_BENCH:-0}" != 1 ]; then
    t0=$(now)
    rm -f "$OUTDIR/bench.json" "$OUTDIR/bench.log"
    bench_rc=0
    for part in "steps.py $STEPS_ARGS" "pipeline.py $PIPELINE_ARGS" "report.py"; do
        echo "== $part (timeout ${BENCH_TIMEOUT}s)" | tee -a "$OUTDIR/bench.log"
        if [ "$part" = report.py ]; then args=("$OUTDIR/bench.json"); else args=(--out "$OUTDIR/bench.json"); fi
        # shellcheck disable=SC2086
        timeout "$BENCH_TIMEOUT" "$PY" benchmarks/$part "${args[@]}" 2>&1 | tee -a "$OUTDIR/bench.log"
        rc=${PIPESTATUS[0]}
        echo "== $part: exit $rc"
        [ "$rc" -eq 0 ] || bench_rc=$rc
    done
    bench_s=$(secs "$t0" "$(now)")
    echo "== benchmarks: exit $bench_rc in ${bench_s}s"
    [ "$bench_rc" -eq 0 ] || status=1
fi

if [ "${SKIP_SWEEP:-0}" != 1 ]; then
    echo "== sweep: $SWEEP_SEEDS seeds, default config (timeout ${SWEEP_TIMEOUT}s)"
    t0=$(now)
    timeout "$SWEEP_TIMEOUT" "$PY" -m mvsim.sweep --seeds "$SWEEP_SEEDS" --out "$OUTDIR/sweep" --quiet --no-plots \
        2>&1 | tee "$OUTDIR/sweep.log"
    sweep_rc=${PIPESTATUS[0]}
    sweep_s=$(secs "$t0" "$(now)")
    echo "== sweep: exit $sweep_rc in ${sweep_s}s"
    [ "$sweep_rc" -eq 0 ] || status=1
fi

stop_smi
nvidia-smi 2>&1 | tee -a "$OUTDIR/nvidia-smi.txt" >/dev/null

{
    echo "bench_s $bench_s rc $bench_rc steps $STEPS_ARGS pipeline $PIPELINE_ARGS"
    echo "sweep_s $sweep_s rc $sweep_rc seeds $SWEEP_SEEDS (compile included)"
    if [ "$sweep_rc" = 0 ]; then
        awk -v s="$sweep_s" -v n="$SWEEP_SEEDS" 'BEGIN { if (s > 0) printf "sweep_seeds_per_min %.1f\n", 60 * n / s }'
    fi
    if [ -f "$OUTDIR/gpu-usage.csv" ]; then
        awk -F', ' 'NR > 1 { u = $2 + 0; m = $3 + 0; su += u; n++; if (m > mm) mm = m; if (u > mu) mu = u }
            END { if (n) printf "gpu_util_mean_pct %.0f gpu_util_max_pct %.0f gpu_mem_max_mib %d samples %d\n",
                  su / n, mu, mm, n }' "$OUTDIR/gpu-usage.csv"
    fi
} | tee "$OUTDIR/timings.txt"
ls -la "$OUTDIR"
exit $status
