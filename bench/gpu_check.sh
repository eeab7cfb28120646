#!/usr/bin/env bash
# The GPU check (issue 15): the train stage with `train.resources.gpu: required` on 1M and
# 10M synthetic flights rows, and raw XGBoost CUDA (device="cuda", tree_method="hist") on
# the same rows and card; prints the ratio of seconds per round (bench/scale_gpu.py).
#
# The GPU machine has no internet and takes at most 64 MiB of working tree per call, but
# the packages the stages need (xgboost's CUDA wheel alone is ~130 MB, ray's ~80 MB) are
# not in its image. So they travel as wheel parcels of at most 56 MiB, one call each, big
# wheels split in pieces, while the machine stays warm between calls:
#
#   bash bench/gpu_check.sh pack                 # here: wheels -> .gpu-parcels/1..N
#   run(carry=[".gpu-parcels/1"], command="bash bench/gpu_check.sh receive .gpu-parcels/1")
#   ... one call per parcel, back to back (the machine goes back after ~30 s idle) ...
#   run(command="bash bench/gpu_check.sh run", timeout_s=600)    # JSON in $OUT
#
#   bash bench/gpu_check.sh run --cpu --rows 20000   # dry run here: everything but the GPU
#
# `run` checks nvidia-smi, Python, the parcels and every import first, and ends with one
# line starting "GPU-CHECK SUMMARY"; gpu-check.json (and preflight.json) go to $OUT.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${MLBATCH_GPU_WORK:-/tmp/mlbatch-gpu}"
PARCELS="${GPU_PARCELS:-$REPO/.gpu-parcels}"
PARCEL_MIB="${GPU_PARCEL_MIB:-56}"
PY_VERSION=3.12  # the GPU image's python3 (/work/.library/device/KINDS.md)
# What the stages up to train import (pyproject.toml's extras), versions from constraints.txt.
REQUIREMENTS=(pydantic pyyaml typer rich boto3 pyarrow pandas numpy psutil openpyxl
  "dask[dataframe]" distributed matplotlib seaborn nbformat nbclient ipykernel scikit-learn
  skops "ray[tune]" xgboost lightgbm optuna)
IMPORTS=(pydantic yaml typer rich boto3 pyarrow pandas numpy psutil openpyxl dask distributed
  matplotlib seaborn nbformat nbclient ipykernel sklearn skops ray ray.tune xgboost lightgbm
  optuna mlbatch mlbatch_jobs)
# In the GPU image already (KINDS.md, 2026-11-17): not packed. NCCL is for multi-GPU only.
# typer, rich and click travel anyway: the CLI needs typer >= 0.29 and they are small.
IN_IMAGE="numpy pandas pyarrow scipy scikit_learn matplotlib seaborn psutil pyyaml PyYAML
  requests urllib3 idna certifi charset_normalizer packaging filelock fsspec
  jinja2 markupsafe msgpack protobuf aiohttp aiosignal frozenlist multidict yarl attrs
  propcache aiohappyeyeballs pillow kiwisolver cycler fonttools contourpy pyparsing
  python_dateutil six joblib threadpoolctl cloudpickle toolz typing_extensions networkx
  pygments markdown_it_py mdurl tqdm sympy mpmath grpcio nvidia_nccl_cu12
  nvidia_nccl_cu13 narwhals"

die() { echo "GPU-CHECK SUMMARY: NOT RUN: $*"; exit 2; }

pack() {  # here: download the wheels for the GPU machine and split them into parcels
  local pip="${PYTHON:-python3} -m pip" wheels="$WORK/wheels-download"
  rm -rf "$wheels" "$PARCELS" && mkdir -p "$wheels" "$PARCELS" || exit 1
  $pip download --quiet --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -c "$REPO/constraints.txt" -d "$wheels" "${REQUIREMENTS[@]}" \
    || die "pip download failed (see above)"
  local kept=() file name image
  image=" $(echo ${IN_IMAGE,,}) "  # one line, single spaces
  for file in "$wheels"/*.whl; do
    name="$(basename "$file" | cut -d- -f1)"
    if [[ "$image" == *" ${name,,} "* ]]; then rm "$file"; else kept+=("$file"); fi
  done
  # Pieces of at most PARCEL_MIB, then parcels filled greedily up to PARCEL_MIB.
  local pieces="$WORK/pieces" limit=$((PARCEL_MIB * 1024 * 1024))
  rm -rf "$pieces" && mkdir -p "$pieces"
  for file in "${kept[@]}"; do
    if (($(stat -c %s "$file") > limit)); then
      split -b "$limit" -d -a 2 "$file" "$pieces/$(basename "$file").part-"
    else cp "$file" "$pieces/"; fi
  done
  local parcel=1 used=0 size
  mkdir -p "$PARCELS/$parcel"
  for file in $(ls -S "$pieces"); do
    size=$(stat -c %s "$pieces/$file")
    if ((used > 0 && used + size > limit)); then parcel=$((parcel + 1)) used=0 && mkdir -p "$PARCELS/$parcel"; fi
    mv "$pieces/$file" "$PARCELS/$parcel/" && used=$((used + size))
  done
  if [[ "$(dirname "$PARCELS")" == "$REPO" ]]; then  # untracked, never committed: ignored
    local exclude
    exclude="$(git -C "$REPO" rev-parse --path-format=absolute --git-path info/exclude)"
    grep -qx "/$(basename "$PARCELS")/" "$exclude" 2>/dev/null || echo "/$(basename "$PARCELS")/" >>"$exclude"
  fi
  du -sh "$PARCELS"/*
  echo "then, back to back on the GPU machine (one call per parcel, then the check):"
  for ((i = 1; i <= parcel; i++)); do
    echo "  run carry=[\"$(basename "$PARCELS")/$i\"] command=\"bash bench/gpu_check.sh receive $(basename "$PARCELS")/$i\""
  done
  echo "  run timeout_s=600 command=\"bash bench/gpu_check.sh run\""
}

receive() {  # there: keep one parcel's files until `run` assembles them
  [[ -d "${1:-}" ]] || die "no parcel folder ${1:-(none given)}"
  mkdir -p "$WORK/incoming" && cp "$1"/* "$WORK/incoming/" || die "cannot copy $1"
  echo "received $(ls "$1" | wc -l) files; incoming: $(du -sh "$WORK/incoming" | cut -f1)"
}

install_parcels() {  # joins split wheels and installs everything into $WORK/site
  local incoming="$WORK/incoming"
  [[ -d "$incoming" ]] || return 0
  local first whole
  for first in "$incoming"/*.part-00; do
    [[ -e "$first" ]] || continue
    whole="${first%.part-00}"
    cat "${whole}".part-* >"$whole" && rm "${whole}".part-*
  done
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$incoming"/*.whl || die "the carried wheels did not install (a parcel missing?)"
  rm -rf "$incoming"
}

run() {
  local cpu=0 args=() out="${OUT:-$REPO/bench/results}"
  for arg in "$@"; do [[ "$arg" == --cpu ]] && cpu=1; args+=("$arg"); done
  mkdir -p "$out" "$WORK/shim" || exit 1
  local facts="{}"
  if ((cpu)); then
    echo "dry run on CPUs: nvidia-smi not required"
  else
    command -v nvidia-smi >/dev/null || die "no nvidia-smi: not a GPU machine"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
      || die "nvidia-smi sees no GPU"
  fi
  command -v python3 >/dev/null || die "no python3"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "python3 is $(python3 -V 2>&1), the stages need 3.11 or later"
  install_parcels
  ln -sfn "$REPO/jobs" "$WORK/shim/mlbatch_jobs"
  export PYTHONPATH="$WORK/site:$REPO/lib:$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
  export MLBATCH_BENCH_DATA="${MLBATCH_BENCH_DATA:-$WORK/data}" PYTHONUNBUFFERED=1
  local missing
  missing="$(python3 - "${IMPORTS[@]}" <<'EOF'
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as error:  # a broken install is as missing as an absent one
        print(f"{name} ({type(error).__name__}: {str(error)[:80]})")
EOF
)"
  [[ -z "$missing" ]] || die "cannot import: $(echo "$missing" | paste -sd';' -) (pack and send the parcels first)"
  if ((!cpu)); then
    python3 -c 'import sys, xgboost; sys.exit(not xgboost.build_info().get("USE_CUDA"))' \
      || die "this xgboost $(python3 -c 'import xgboost; print(xgboost.__version__)') has no CUDA"
  fi
  facts="$(python3 -c 'import json, platform, xgboost, ray; print(json.dumps({"python": platform.python_version(), "xgboost": xgboost.__version__, "ray": ray.__version__}))')"
  echo "$facts" | tee "$out/preflight.json"
  timeout "${GPU_CHECK_TIMEOUT:-540}" python3 "$REPO/bench/scale_gpu.py" --out "$out" "${args[@]}"
  local code=$?
  ((code == 124)) && echo "GPU-CHECK SUMMARY: TIMED OUT after ${GPU_CHECK_TIMEOUT:-540} s (partial JSON in $out)"
  return $code
}

case "${1:-}" in
  pack) shift && pack "$@" ;;
  receive) shift && receive "$@" ;;
  run) shift && run "$@" ;;
  *) echo "usage: bash bench/gpu_check.sh pack | receive <parcel folder> | run [--cpu] [--rows N,M] [--rounds R]" >&2; exit 2 ;;
esac
