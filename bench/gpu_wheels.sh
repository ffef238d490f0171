#!/usr/bin/env bash
# Wheels of the recx dependencies that a bare GPU image lacks (Hydra, OmegaConf, ANTLR: pure
# Python), into .whl/ at the checkout (git-ignored), for bench/gpu_checks.sh on that machine:
#
#   bash bench/gpu_wheels.sh                         # here, where PyPI is reachable
#   # there, with .whl and data/ml_100k/ml-100k.{inter,item} carried along:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#     PYTHONPATH=/tmp/site:$PWD bash bench/gpu_checks.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
# the versions installed here, so that the GPU machine runs what the tests ran
ver() { python -c "import importlib.metadata as m; print(m.version('$1'))"; }
python -m pip download -q --no-deps --only-binary=:all: -d .whl \
  "hydra-core==$(ver hydra-core)" "omegaconf==$(ver omegaconf)"
# ANTLR's runtime 4.9.3 is published as a source archive only: build its (pure Python) wheel
python -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==$(ver antlr4-python3-runtime)"
ls -l .whl
