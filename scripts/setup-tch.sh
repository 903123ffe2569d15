#!/usr/bin/env bash
# Sets up the libtorch that gammabench's optional `tch` feature links (burn-tch 0.22.1 needs
# libtorch 2.9.0 exactly): a venv OUTSIDE the repository with PyPI's torch==2.9.0 wheel, and
# the environment that makes torch-sys link it instead of downloading libtorch.
#
#   bash scripts/setup-tch.sh [VENV]        # default VENV: ~/.venvs/gammabench-tch
#   source ~/.venvs/gammabench-tch/tch.env  # then, in every shell that builds or runs:
#   cargo build --release --features tch
#   ./target/release/gammabench train --device tch-cpu ...
#
# PyPI's linux wheel carries CUDA 12.8 (about 3 GB with its nvidia-* wheels), so the same
# build also runs `--device tch-cuda` on a machine with an NVIDIA driver.
set -euo pipefail
venv="${1:-$HOME/.venvs/gammabench-tch}"
case "$(cd "$(dirname "$0")/.." && pwd)" in
  "$(mkdir -p "$venv" && cd "$venv" && pwd)"*) echo "put the venv outside the repository" >&2; exit 2 ;;
esac
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "torch==2.9.0" numpy
torch_lib="$("$venv/bin/python3" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
cat > "$venv/tch.env" <<ENV
# source this before building or running gammabench with --features tch
export PATH="$venv/bin:\$PATH"
export LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$torch_lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
echo "torch $("$venv/bin/python3" -c 'import torch; print(torch.__version__)') in $venv"
echo "now: source $venv/tch.env && cargo build --release --features tch"
