#!/usr/bin/env bash
# Runs the GPU kit's benchmarks on an offline NVIDIA machine (see bench/gpu/README.md):
#
#   bash run.sh [--kit DIR] [--work DIR] [--out DIR] [--bundle FILE] [--assemble-only] [--dry-run]
#
# 1. assemble: checks every part in DIR/MANIFEST.sha256 (default: this script's folder), joins them
#    in --work (default /tmp/rpo_gpu), checks the whole tar's sha256 and unpacks it; any mismatch ends
#    the run (exit 1). --assemble-only stops here.
# 2. install, offline: the kit's wheels with `pip install --no-index --no-deps --target WORK/site`
#    over the image's packages (PYTHONPATH puts them first; the image keeps its CUDA libraries), then
#    the project snapshot the same way; `pip check` is logged, an import of every module the runs use
#    must pass; jax must be 0.9.2 and see a GPU, or the run ends (exit 1).
# 3. nvidia-smi samples utilization, memory and power every second into OUT/nvidia-smi.csv.
# 4. sections in priority order, each under its own `timeout` (seconds: BUDGET_A .. BUDGET_E), so a
#    section that overruns loses only itself: a) Ant, rpo_jax against Brax PPO; b) bench.throughput's
#    population and sharding sections; c) bench.scaling; d) a 16-member Ant sweep through the CLI;
#    e) the numerics unit tests. Each writes OUT/<section>.log and its results under OUT; one line per
#    section (exit status, seconds, its output file or MISSING) goes to OUT/summary.log.
#    --bundle FILE (outside OUT): after every section, OUT is also packed into FILE (tar.gz), for a
#    machine that returns few files.
#
# --dry-run (or RPO_GPU_DRY_RUN=1): no kit, no install, no GPU check, no nvidia-smi: this checkout and
# the current Python (PYTHON, default python3) run every section at tiny sizes on the CPU.
# OUT: --out, else $OUT, else /tmp/rpo_gpu_results.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KIT="" WORK="/tmp/rpo_gpu" RESULTS="${OUT:-/tmp/rpo_gpu_results}" BUNDLE="" ASSEMBLE_ONLY=0
DRY="${RPO_GPU_DRY_RUN:-0}"
PY="${PYTHON:-python3}"
TAR="rpo_gpu_kit.tar"

usage() {  # bad input: one line, exit 2
  echo "run.sh: error: $* (usage: bash run.sh [--kit DIR] [--work DIR] [--out DIR] [--bundle FILE] [--assemble-only] [--dry-run])" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --kit|--work|--out|--bundle) [ $# -ge 2 ] || usage "$1 needs a value" ;;&
    --kit) KIT="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --out) RESULTS="$2"; shift 2 ;;
    --bundle) BUNDLE="$2"; shift 2 ;;
    --assemble-only) ASSEMBLE_ONLY=1; shift ;;
    --dry-run) DRY=1; shift ;;
    *) usage "unknown argument $1" ;;
  esac
done
[ -n "$KIT" ] || { [ -f "$HERE/MANIFEST.sha256" ] && KIT="$HERE"; }
absolute() { mkdir -p "$1" && (cd "$1" && pwd); }  # the sections run in the project's folder
WORK="$(absolute "$WORK")" || usage "cannot create --work $WORK"
[ -z "$BUNDLE" ] || BUNDLE="$(absolute "$(dirname "$BUNDLE")")/$(basename "$BUNDLE")" || usage "bad --bundle $BUNDLE"
SUMMARY=""

die() {
  echo "run.sh: error: $*" >&2
  [ -z "$SUMMARY" ] || echo "FAILED: $*" >> "$SUMMARY"
  exit 1
}

assemble() {  # checks and joins the parts of $KIT into $WORK/kit
  [ -f "$KIT/MANIFEST.sha256" ] || die "no MANIFEST.sha256 in ${KIT:-(no --kit)}"
  local parts expected actual
  parts=$(awk '$2 ~ /\.part-[0-9]+$/ { print $2 }' "$KIT/MANIFEST.sha256")
  [ -n "$parts" ] || die "MANIFEST.sha256 lists no parts"
  (cd "$KIT" && grep -E '\.part-[0-9]+$' MANIFEST.sha256 | sha256sum --check --quiet) || die "a part is missing or damaged"
  mkdir -p "$WORK"
  (cd "$KIT" && cat $parts) > "$WORK/$TAR"
  expected=$(awk -v t="$TAR" '$2 == t { print $1 }' "$KIT/MANIFEST.sha256")
  actual=$(sha256sum "$WORK/$TAR" | cut -d' ' -f1)
  [ -n "$expected" ] && [ "$expected" = "$actual" ] || die "the joined tar's sha256 $actual is not the manifest's ${expected:-(none)}"
  rm -rf "$WORK/kit" && mkdir -p "$WORK/kit" && tar -xf "$WORK/$TAR" -C "$WORK/kit" && rm "$WORK/$TAR" || die "cannot unpack $TAR"
  echo "run.sh: $(echo "$parts" | wc -l) part(s) and the whole tar match MANIFEST.sha256; unpacked in $WORK/kit"
}

install() {  # the kit's wheels and the project into $WORK/site, first on PYTHONPATH
  local site="$WORK/site" stamp
  stamp=$(sha256sum "$KIT/MANIFEST.sha256" | cut -d' ' -f1)
  if [ "$(cat "$site/.kit" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$site" "$WORK/rpo_jax" "$WORK/build"
    tar -xf "$WORK/kit/rpo_jax-src.tar" -C "$WORK" || die "cannot unpack the project"
    # setuptools first, apart, to build the project offline; then every wheel and the project in one go
    "$PY" -m pip install --quiet --no-index --no-deps --target "$WORK/build" "$WORK"/kit/wheels/setuptools-*.whl \
      || die "setuptools install failed"
    PYTHONPATH="$WORK/build" "$PY" -m pip install --quiet --no-index --no-deps --no-build-isolation \
      --target "$site" "$WORK"/kit/wheels/*.whl "$WORK/rpo_jax" || die "install failed"
    echo "$stamp" > "$site/.kit"
  fi
  export PYTHONPATH="$site" PATH="$site/bin:$PATH"
  SRC="$WORK/rpo_jax"
}

bundle() {
  [ -z "$BUNDLE" ] || { tar -czf "$BUNDLE.tmp" -C "$RESULTS" . && mv "$BUNDLE.tmp" "$BUNDLE"; }
}

section() {  # section NAME BUDGET OUTPUT CMD...: runs CMD under `timeout BUDGET`, logs, records its outcome
  local name="$1" budget="$2" output="$3" start rc found
  shift 3
  echo "run.sh: [$name] (budget ${budget} s): $*"
  start=$(date +%s)
  timeout --kill-after=20 "$budget" "$@" > "$RESULTS/$name.log" 2>&1
  rc=$?
  found=$(cd "$RESULTS" && ls -d $output 2>/dev/null | head -1)
  printf '%-18s rc=%-3s %4ss (budget %s)%s output=%s\n' "$name" "$rc" "$(($(date +%s) - start))" "$budget" \
    "$([ "$rc" = 124 ] && echo ' TIMED OUT')" "${found:-MISSING}" | tee -a "$SUMMARY"
  bundle
}

if [ "$DRY" = 1 ]; then
  SRC="$(cd "$HERE/../.." && pwd)"
  [ -z "$KIT" ] || assemble
else
  [ -n "$KIT" ] || usage "no kit: give --kit DIR (the folder of the parts and MANIFEST.sha256), or --dry-run"
  assemble
fi
[ "$ASSEMBLE_ONLY" = 1 ] && exit 0
[ "$DRY" = 1 ] || install

mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
SUMMARY="$RESULTS/summary.log"
echo "rpo_jax GPU kit, $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname), dry run: $DRY" > "$SUMMARY"
cd "$SRC" || die "no project at $SRC"

"$PY" -m pip check > "$RESULTS/pip-check.txt" 2>&1 || echo "pip check reported conflicts (pip-check.txt)" >> "$SUMMARY"
"$PY" -c "import rpo_jax.cli, rpo_jax.runs.plan, brax.training.agents.ppo.train, mujoco, mujoco.mjx, mujoco_playground, \
gymnax, distrax, flax, optax, chex, orbax.checkpoint, matplotlib, pandas, yaml, pytest" > "$RESULTS/imports.log" 2>&1 \
  || die "the installed packages do not import: $(tail -1 "$RESULTS/imports.log")"
if [ "$DRY" = 1 ]; then
  "$PY" -c 'import jax; print("jax", jax.__version__, jax.default_backend(), jax.devices())' >> "$SUMMARY" 2>&1
else
  "$PY" -c 'import jax; print("jax", jax.__version__, jax.default_backend(), jax.devices())
assert jax.__version__ == "0.9.2", "the kit jax is not first on the path"
assert jax.default_backend() == "gpu", "JAX sees no GPU"' >> "$SUMMARY" 2>&1 || die "GPU check failed: $(tail -1 "$SUMMARY")"
fi

MONITOR=""
if [ "$DRY" != 1 ] && command -v nvidia-smi > /dev/null; then
  nvidia-smi -L >> "$SUMMARY" 2>&1
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 1 \
    > "$RESULTS/nvidia-smi.csv" 2>&1 &
  MONITOR=$!
  trap 'kill "$MONITOR" 2> /dev/null' EXIT
fi

CLI=("$PY" -m rpo_jax.cli)  # = rpo-jax
if [ "$DRY" = 1 ]; then
  A=(--tiny --envs gymnax/Pendulum-v1 --train-reps 2) B=(--tiny --envs gymnax/Pendulum-v1)
  C=(--tiny) D=(--env gymnax/Pendulum-v1 --seeds 2 --total-timesteps 2048) E=(tests/test_gae.py)
  budget=300
else
  A=(--envs brax/ant --train-reps 3) B=(--reps 3)
  C=(--sizes 1,4,16,64,256 --horizon 32768 --reps 2) D=(--env brax/ant --seeds 16 --total-timesteps 102400)
  E=(tests/test_gae.py tests/test_rpo.py tests/test_ppo.py tests/test_divergences.py)
  budget=""
fi

section a_ant_vs_brax "${BUDGET_A:-${budget:-170}}" 'a_ant_vs_brax/*.json' \
  "$PY" -m bench.throughput "${A[@]}" --only raw,train,brax --out "$RESULTS/a_ant_vs_brax" \
  --markdown "$RESULTS/a_ant_vs_brax/RESULTS.md"
section b_population "${BUDGET_B:-${budget:-70}}" 'b_population/*.json' \
  "$PY" -m bench.throughput "${B[@]}" --only population,sharding --out "$RESULTS/b_population" \
  --markdown "$RESULTS/b_population/RESULTS.md"
section c_scaling "${BUDGET_C:-${budget:-150}}" 'c_scaling/scaling-*.png' \
  "$PY" -m bench.scaling "${C[@]}" --out "$RESULTS/c_scaling"
section d_sweep_ant16 "${BUDGET_D:-${budget:-70}}" 'd_sweep_ant16/summary.json' \
  "${CLI[@]}" sweep configs/quickstart.yaml "${D[@]}" --grid alpha=0.5 --out "$RESULTS/d_sweep_ant16" \
  --quiet --no-tensorboard --checkpoint-minutes 0
section e_unit_tests "${BUDGET_E:-${budget:-60}}" 'e_unit_tests.xml' \
  "$PY" -m pytest -q -p no:cacheprovider "${E[@]}" --junitxml "$RESULTS/e_unit_tests.xml"

echo "run.sh: done; results in $RESULTS${BUNDLE:+ (and $BUNDLE)}" | tee -a "$SUMMARY"
bundle
