#!/usr/bin/env bash
# The GPU check to run in ONE call on a lent GPU machine: `costbench env`, the CUDA tests, a small
# gpu-scale sweep and its report, XGBoost/CatBoost GPU training, and eager vs ONNX Runtime CUDA serving
# with the LoadGen server scenario. Written for the workplace's H200 image (python3 with a CUDA torch;
# typer, rich, pandas, pyarrow, matplotlib, pytest, hypothesis present). That image lacks pydantic and
# torchao: carry them as wheels and install them first (see the device tool's notes). Not yet run on
# a GPU: no session so far has had one.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out=${OUT:-/tmp/costbench-gpu}
mkdir -p "$out"
# What comes back is at most 8 files, from a command of at most 600 s: each stage is bounded by `timeout`
# (a stage cut short keeps its records: the store is append-only) and packed into one <stage>.tgz with
# its sweep and report output as soon as it ends, so 5 files come back whatever is cut.
stage() {  # stage NAME SECONDS SWEEP_FILE [--set ...]: sweep, report, pack
  local name=$1 limit=$2 sweep=$3
  shift 3
  timeout "$limit" python3 -m costbench sweep "$sweep" --out "$out/$name" "$@" > "$out/${name}_sweep.txt" 2>&1
  python3 -m costbench report "$out/$name" --format markdown > "$out/${name}_report.txt" 2>&1
  tail -n 40 "$out/${name}_report.txt"
  tar czf "$out/$name.tgz" -C "$out" "$name" "${name}_sweep.txt" "${name}_report.txt" \
    && rm -rf "${out:?}/$name" "$out/${name}_sweep.txt" "$out/${name}_report.txt"
}
python3 -m costbench env 2>&1 | tee "$out/env.txt"
timeout 90 python3 -m pytest -q -m cuda tests/ 2>&1 | tee "$out/cuda_tests.txt"
stage run 150 sweeps/gpu-scale.yaml --trial-timeout 120 \
  --set data.rows=200000 --set train.epochs=2 --set 'grid.model.family=[mlp,transformer]' \
  --set 'grid.model.size=[m,l]' --set 'grid.train.batch_size=[4096]'
# XGBoost (device="cuda") and CatBoost (task_type="GPU") GPU training; without their wheels on the image
# (carry them like pydantic) the trials are skipped records naming `pip install "costbench[gbdt]"`.
stage trees 150 sweeps/trees-vs-nets.yaml --trial-timeout 120 --set device=cuda --set "exclude=[]" \
  --set data.rows=200000 --set threads=8 --set 'grid.model.family=[xgboost,catboost]' --set 'grid.model.size=[s,m]' \
  --set 'grid.precision=[fp32]'
# Serving on the GPU: eager against ONNX Runtime's CUDA provider (carry an onnxruntime-gpu wheel; with the
# CPU-only onnxruntime the ORT trials are skipped records saying the provider is missing), each with the
# LoadGen server scenario (carry mlcommons-loadgen), the highest QPS whose p99 meets the SLO.
stage serve 150 sweeps/smoke.yaml --trial-timeout 120 --set device=cuda \
  --set data.rows=200000 --set 'grid.model.size=[s,m]' --set 'grid.precision=[fp32]' \
  --set 'grid.serve.runtime=[eager,onnxruntime]' --set serve.scenario=server --set 'serve.batch_sizes=[1,256,4096]'
