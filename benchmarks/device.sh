#!/usr/bin/env bash
# The benchmarks in one prepared run, for a GPU machine lent for a few minutes
# (docs/PERFORMANCE.md, "On a GPU"); it runs on a CPU too (longer limits: MFAX_BENCH_SECONDS).
#
#   bash benchmarks/device.sh [OUT_DIR]     # default: $OUT, else benchmarks-out/ in the checkout
#
# Needs jax, flax, optax, numpy, pyyaml, typer and xarray in the Python it finds
# ($PYTHON, else python3); mfax itself is read from this checkout (PYTHONPATH), so
# nothing is installed. Each section runs under its own time limit
# (MFAX_BENCH_SECONDS scales them all, default 1) and writes OUT_DIR/<section>.txt
# as it goes, so a section stopped at its limit keeps the rows it printed; the run
# goes on with the next section. OUT_DIR/device.txt says which machine and JAX ran.
set -u
out=${1:-${OUT:-}}
[ -n "$out" ] && out=$(realpath -m -- "$out")  # relative to where it was started
cd "$(dirname "$0")/.." || exit
out=${out:-$PWD/benchmarks-out}
mkdir -p -- "$out" || exit
py=${PYTHON:-python3}
scale=${MFAX_BENCH_SECONDS:-1}
if ! awk -v k="$scale" 'BEGIN { exit !(k ~ /^\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ && k + 0 > 0) }'; then
    echo "MFAX_BENCH_SECONDS = '$scale' is not allowed; expected a positive number (e.g. 2, 0.5, 1e1)" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

section() {  # section NAME SECONDS SCRIPT ARGS...
    local name=$1 limit
    # at least 1 s: `timeout 0` would mean no limit at all
    limit=$(awk -v s="$2" -v k="$scale" 'BEGIN { t = int(s * k); print (t < 1 ? 1 : t) }')
    shift 2
    echo "== $name (at most ${limit} s): $*"
    timeout --signal=INT --kill-after=20 "$limit" "$py" "$@" 2>&1 | tee -- "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a -- "$out/$name.txt"
}

{
    date -u
    "$py" -c 'import jax, platform; print("jax", jax.__version__, "|", platform.python_version(), "|", jax.devices())'
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
} 2>&1 | tee -- "$out/device.txt"

# seconds per training iteration at the published sizes, FLOPs and the roofline
section training 240 benchmarks/training.py --sections timing --timing-sizes published \
    --timing-iterations 4
# sampled rollouts: agent-steps per second
section rollout 90 benchmarks/rl.py --sections rollout --agents 1000,10000,100000,1000000
# one push-forward step, a policy value and an exploitability, per number of environments
section core 90 benchmarks/core.py --envs 1,8,128,1024
