#!/usr/bin/env bash
# One run, one table: the U-Net training step (batch 16) and inference (batch 32) of the CI
# network (8..64) and the published one (16..256) on every backend of the build and on
# PyTorch, all with the same threads (issue 21, item 2).
#
#   benches/unet_backends.sh [THREADS] [PYTHON]   # default: all cores; python3 with torch
#   FEATURES=tch  benches/unet_backends.sh 2 ~/.venvs/gammabench-tch/bin/python3
#   UNET_BENCH_DEVICES=flex,tch-cpu,tch-cuda:0,cuda:0 FEATURES=tch,cuda benches/unet_backends.sh
#
# With FEATURES=tch, source the venv's tch.env first (scripts/setup-tch.sh). The table goes
# to stdout and target/unet_backends.md; ratios are PyTorch time / backend time (>1: faster
# than PyTorch) on the same CPU threads.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
py="${2:-python3}"
target="${CARGO_TARGET_DIR:-target}"
export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
feat=()
[ -n "${FEATURES:-}" ] && feat=(--features "$FEATURES")
cargo bench --bench detect "${feat[@]}" -- unet_ >&2
peer="$target/unet_peer"
mkdir -p "$peer"
"$py" benches/peers/unet_peer.py --threads "$threads" --widths 8,16,32,64 --json "$peer/ci.json" >&2
"$py" benches/peers/unet_peer.py --threads "$threads" --widths 16,32,64,128,256 --json "$peer/published.json" >&2
"$py" - "$target" "$threads" <<'PY' | tee "$target/unet_backends.md"
import json, pathlib, sys
target, threads = pathlib.Path(sys.argv[1]), sys.argv[2]
crit = target / "criterion"
print(f"U-Net step times, {threads} threads (median ms; ratio = PyTorch / backend)\n")
print("| network | backend | train step b16 ms | x PyTorch | inference b32 ms | x PyTorch |")
print("|---|---|---|---|---|---|")
for net in ["ci", "published"]:
    torch = json.loads((target / "unet_peer" / f"{net}.json").read_text())
    rows = [(f"PyTorch {torch['torch']}", torch["train_step_batch16_ms"], torch["inference_batch32_ms"])]
    # criterion spells the group `unet_<net>/<backend>` as the folder `unet_<net>_<backend>`
    for d in sorted(crit.glob(f"unet_{net}_*")):
        if not (d / "train_step_batch16").exists():
            continue
        est = lambda f: json.loads((d / f / "new" / "estimates.json").read_text())["median"]["point_estimate"] / 1e6
        rows.append((d.name.split("_", 2)[-1], est("train_step_batch16"), est("inference_batch32")))
    for name, tr, inf in rows:
        print(f"| {net} | {name} | {tr:.1f} | {torch['train_step_batch16_ms'] / tr:.2f} | {inf:.1f} | {torch['inference_batch32_ms'] / inf:.2f} |")
PY
