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
python3 -m costbench env 2>&1 | tee "$out/env.txt"
python3 -m pytest -q -m cuda tests/ 2>&1 | tee "$out/cuda_tests.txt"
python3 -m costbench sweep sweeps/gpu-scale.yaml --out "$out/run" --trial-timeout 180 \
  --set data.rows=200000 --set train.epochs=2 --set 'grid.model.family=[mlp,transformer]' \
  --set 'grid.model.size=[m,l]' --set 'grid.train.batch_size=[4096]' 2>&1 | tee "$out/sweep.txt"
python3 -m costbench report "$out/run" --format markdown 2>&1 | tee "$out/report.txt"
# XGBoost (device="cuda") and CatBoost (task_type="GPU") GPU training; without their wheels on the image
# (carry them like pydantic) the trials are skipped records naming `pip install "costbench[gbdt]"`.
python3 -m costbench sweep sweeps/trees-vs-nets.yaml --out "$out/trees" --trial-timeout 180 --set device=cuda --set "exclude=[]" \
  --set data.rows=200000 --set threads=8 --set 'grid.model.family=[xgboost,catboost]' --set 'grid.model.size=[s,m]' \
  --set 'grid.precision=[fp32]' 2>&1 | tee "$out/trees_sweep.txt"
python3 -m costbench report "$out/trees" --format markdown 2>&1 | tee "$out/trees_report.txt"
# Serving on the GPU: eager against ONNX Runtime's CUDA provider (carry an onnxruntime-gpu wheel; with the
# CPU-only onnxruntime the ORT trials are skipped records saying the provider is missing), each with the
# LoadGen server scenario (carry mlcommons-loadgen), the highest QPS whose p99 meets the SLO.
python3 -m costbench sweep sweeps/smoke.yaml --out "$out/serve" --trial-timeout 240 --set device=cuda \
  --set data.rows=200000 --set 'grid.model.size=[s,m]' --set 'grid.precision=[fp32]' \
  --set 'grid.serve.runtime=[eager,onnxruntime]' --set serve.scenario=server --set 'serve.batch_sizes=[1,256,4096]' \
  2>&1 | tee "$out/serve_sweep.txt"
python3 -m costbench report "$out/serve" --format markdown 2>&1 | tee "$out/serve_report.txt"
tar czf "$out/gpu-scale-run.tgz" -C "$out" run trees serve && rm -rf "$out/run" "$out/trees" "$out/serve"  # at most 8 files come back
