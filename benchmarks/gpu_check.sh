#!/usr/bin/env bash
# The CUDA path of camtool, checked and measured on a fresh GPU machine in under 5 minutes.
#
#   benchmarks/gpu_check.sh                 # install into .venv-gpu, test, measure on CUDA
#   benchmarks/gpu_check.sh --no-install    # use the python on PATH (or $PYTHON) as it is
#   benchmarks/gpu_check.sh --cpu --no-install   # smoke run of this script on a CPU machine
#
# Steps (progress on stderr, the table on stdout):
#   1. install the project with its dev extra into a venv (pip; torch's default Linux wheel
#      carries CUDA);
#   2. check that torch sees a GPU (and print it);
#   3. run the tests marked as needing CUDA: pytest -m cuda (AMP bf16/fp16 training steps,
#      channels-last batch-cam on CUDA vs CPU, ONNX export run on CUDA);
#   4. benchmarks/gpu_check.py: generates the data and measures train (camtool's loop with AMP
#      and channels-last vs the bare loop of train_throughput.py on the same data), torchrun
#      --nproc_per_node 1, eval, export + cam on the ONNX file, batch-cam vs its floor; prints
#      one table.
# Exit status: 0 when every step passed, 1 otherwise (the table is printed either way).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
DEVICE=cuda
INSTALL=1
QUICK=""
for arg in "$@"; do
  case "$arg" in
    --cpu) DEVICE=cpu; QUICK="--quick" ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "gpu_check: $* ($((SECONDS))s)" >&2; }
status=0

if [[ $INSTALL == 1 ]]; then
  VENV=${VENV:-.venv-gpu}
  say "installing camtool[dev] into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -e '.[dev]' || { say "install failed"; exit 1; }
  PYTHON="$VENV/bin/python"
else
  PYTHON=${PYTHON:-python}
fi
export PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ $DEVICE == cuda ]]; then
  if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    say "torch sees no CUDA device: nothing to check (try --cpu for a smoke run)"
    exit 1
  fi
  "$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")' >&2
fi

say "pytest -m cuda"
tests_log=$(mktemp)
timeout 150 "$PYTHON" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider >"$tests_log" 2>&1
tests_rc=$?
tail -n 15 "$tests_log" >&2
tests_summary=$(grep -E '(passed|failed|skipped|error)' "$tests_log" | tail -n 1 | tr -d '=' | xargs)
# 5 = no tests collected (none marked), which is a failure of this check too
if [[ $tests_rc != 0 ]]; then status=1; fi
if [[ $DEVICE == cuda && $tests_summary == *skipped* && $tests_summary != *passed* ]]; then status=1; fi
rm -f "$tests_log"

say "measuring on $DEVICE"
timeout 330 "$PYTHON" benchmarks/gpu_check.py --device "$DEVICE" $QUICK --deadline 270 --tests "${tests_summary:-no result}" || status=1
say "done, exit $status"
exit $status
