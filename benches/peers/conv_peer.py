"""PyTorch peer of `benches/detect.rs`'s `conv3x3` group: one 3 x 3 convolution forward (stride
1, padding 1, batch 16) at each encoder level of the CI and published U-Nets, median of
`--reps` calls, in milliseconds. Run it with the same threads as criterion, e.g.
`python conv_peer.py --threads 1` beside `RAYON_NUM_THREADS=1 cargo bench --bench detect --
conv3x3`.
"""
import argparse
import json
import time

import torch

# (c_in, c_out, hw): the same list as CONV_SHAPES in benches/detect.rs.
SHAPES = [
    (5, 8, 64), (8, 8, 64), (8, 16, 32), (16, 16, 32), (16, 32, 16), (32, 32, 16), (32, 64, 8),
    (64, 64, 8), (5, 16, 64), (16, 16, 64), (16, 32, 32), (32, 32, 32), (32, 64, 16),
    (64, 64, 16), (64, 128, 8), (128, 128, 8),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json", help="also write {name: ms} here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(2)
    out = {}
    print(f"torch {torch.__version__}, {a.threads} thread(s)")
    for c_in, c_out, hw in SHAPES:
        x = torch.rand(16, c_in, hw, hw)
        w = torch.rand(c_out, c_in, 3, 3) - 0.5
        ts = []
        with torch.no_grad():
            for _ in range(a.reps):
                t = time.perf_counter()
                torch.nn.functional.conv2d(x, w, padding=1)
                ts.append((time.perf_counter() - t) * 1e3)
        ts.sort()
        name = f"b16_{c_in}x{c_out}_{hw}"
        out[name] = ts[len(ts) // 2]
        print(f"{name}: {out[name]:.3f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
