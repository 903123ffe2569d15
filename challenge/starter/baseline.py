#!/usr/bin/env python3
"""A matched-filter baseline for the gammabench data challenge.

    python3 baseline.py --bundle public/ --out baseline_submission.csv

Reads the public bundle, finds point sources and writes a valid submission:

1. residual = counts - diffuse template (`patches.npy` - `diffuse.npy`), per energy bin;
2. a matched filter per bin with the PSF of `dataset.json` (a Gaussian with the bin's 68 %
   containment radius): significance S = sum_k (K_k * residual_k) / sqrt(sum_k (K_k^2 * diffuse_k)),
   the Gaussian approximation of a point-source likelihood test on a known background;
3. local maxima of S over a (2w+1) x (2w+1) window above a threshold, refined to sub-pixel by
   the S-weighted centroid of the 3 x 3 window; the score of a detection is its S;
4. the threshold and the window are chosen ON THE TRAINING SET only (`train_patches.npy`,
   `train_diffuse.npy`, `train_truth.csv`): the pair that maximises the F1 of the training
   patches, with the
   challenge's matching (a detection is a true positive within 0.3 deg of an unmatched true
   source, detections taken in decreasing score). The test truth is never needed.

Uses numpy when it is installed (`pip install -r requirements.txt`: seconds for a full bundle);
without it, the same arithmetic in the standard library (identical output, a few minutes for
768 test patches). `--no-numpy` forces the standard-library path.
"""

import argparse
import array
import ast
import csv
import json
import math
import os
import sys

try:
    import numpy as np
except ImportError:  # the standard-library path below does the same arithmetic
    np = None

PIXEL_DEG = 10.0 / 63.0
MATCH_RADIUS_DEG = 0.3
# r68 of a 2-D Gaussian is sigma * sqrt(-2 ln(1 - 0.68))
R68_PER_SIGMA = math.sqrt(-2.0 * math.log(1.0 - 0.68))
KERNEL_HALF_WIDTH_SIGMA = 3.0
# half-widths of the local-maximum window tried on the training set: a bright source's PSF
# wings make secondary maxima a few pixels from its peak
WINDOWS = (1, 2, 3, 4, 6)


def read_npy(path):
    """A float32 C-order .npy file (as written by `challenge build`): (shape, flat array)."""
    with open(path, "rb") as f:
        magic = f.read(8)
        if magic[:6] != b"\x93NUMPY":
            raise SystemExit("%s: not a .npy file" % path)
        if magic[6] == 1:
            hlen = int.from_bytes(f.read(2), "little")
        else:
            hlen = int.from_bytes(f.read(4), "little")
        header = ast.literal_eval(f.read(hlen).decode("latin1"))
        if header.get("descr") != "<f4" or header.get("fortran_order"):
            raise SystemExit("%s: expected little-endian float32 in C order, got %r" % (path, header))
        shape = tuple(header["shape"])
        data = array.array("f")
        data.frombytes(f.read())
    if sys.byteorder != "little":
        data.byteswap()
    n = 1
    for s in shape:
        n *= s
    if len(data) != n:
        raise SystemExit("%s: %d values for shape %r" % (path, len(data), shape))
    return shape, data


def read_patch_ids(path):
    """patches.csv / train_patches.csv: patch ids in array order."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    rows.sort(key=lambda r: int(r["index"]))
    return [int(r["patch_id"]) for r in rows]


def gaussian_kernel(sigma_pix):
    h = max(1, int(math.ceil(KERNEL_HALF_WIDTH_SIGMA * sigma_pix)))
    w = [math.exp(-0.5 * (j / sigma_pix) ** 2) for j in range(-h, h + 1)]
    s = sum(w)
    return [v / s for v in w]


def kernels(dataset):
    """Per bin: the 1-D PSF kernel K (separable: K2d = K x K) and the 1-D kernel of K2d^2."""
    out = []
    for b in dataset["instrument"]["bins"]:
        sigma = b["psf_r68_deg"] / R68_PER_SIGMA / PIXEL_DEG
        k = gaussian_kernel(sigma)
        out.append((k, [v * v for v in k]))
    return out


# ---- separable convolution, zero outside the patch; the same operations in the same order
# ---- in both implementations, so their results are bit-identical.


def _conv_rows_py(img, n, k):
    h = len(k) // 2
    out = [0.0] * (n * n)
    spans = [(max(0, x - h), min(n, x + h + 1)) for x in range(n)]
    taps = [k[lo - x + h:hi - x + h] for x, (lo, hi) in enumerate(spans)]
    for y in range(n):
        row = img[y * n:(y + 1) * n]
        base = y * n
        for x in range(n):
            lo, hi = spans[x]
            # left to right from 0.0, as the numpy loop adds its terms (not sum(): since
            # Python 3.12 it compensates the rounding, which numpy does not)
            acc = 0.0
            for kv, rv in zip(taps[x], row[lo:hi]):
                acc += kv * rv
            out[base + x] = acc
    return out


def _transpose_py(img, n):
    return [img[x * n + y] for y in range(n) for x in range(n)]


def smooth_py(img, n, k):
    t = _conv_rows_py(img, n, k)
    t = _conv_rows_py(_transpose_py(t, n), n, k)
    return _transpose_py(t, n)


def _conv_rows_np(img, k):
    n = img.shape[1]
    h = len(k) // 2
    out = np.zeros_like(img)
    # the terms of each output pixel, added in the order of the pure-Python loop
    for x in range(n):
        lo, hi = max(0, x - h), min(n, x + h + 1)
        acc = np.zeros(img.shape[0])
        for xx in range(lo, hi):
            acc = acc + k[xx - x + h] * img[:, xx]
        out[:, x] = acc
    return out


def smooth_np(img, k):
    return _conv_rows_np(_conv_rows_np(img, k).T.copy(), k).T


def significance(counts, diffuse, i, shape, kers, use_numpy):
    """The matched-filter significance map of patch `i` as a flat list ([y][x])."""
    _, n, n2, nb = shape
    assert n == n2
    per = n * n * nb
    c = counts[i * per:(i + 1) * per]
    b = diffuse[i * per:(i + 1) * per]
    if use_numpy:
        c = np.asarray(c, dtype=np.float64).reshape(n, n, nb)
        b = np.asarray(b, dtype=np.float64).reshape(n, n, nb)
        num = np.zeros((n, n))
        var = np.zeros((n, n))
        for k, (k1, k2) in enumerate(kers):
            num = num + smooth_np(c[:, :, k] - b[:, :, k], k1)
            var = var + smooth_np(b[:, :, k].copy(), k2)
        return [v for v in (num / np.sqrt(np.maximum(var, 1e-12))).ravel().tolist()]
    num = [0.0] * (n * n)
    var = [0.0] * (n * n)
    for k, (k1, k2) in enumerate(kers):
        res = [float(c[p * nb + k]) - float(b[p * nb + k]) for p in range(n * n)]
        bk = [float(b[p * nb + k]) for p in range(n * n)]
        sn = smooth_py(res, n, k1)
        sv = smooth_py(bk, n, k2)
        num = [a + d for a, d in zip(num, sn)]
        var = [a + d for a, d in zip(var, sv)]
    return [a / math.sqrt(max(v, 1e-12)) for a, v in zip(num, var)]


def peaks(sig, n, floor, w):
    """Local maxima of S over the (2w+1) x (2w+1) window (ties to the first pixel in row
    order) at or above `floor`: [(x_pix, y_pix, S)], sub-pixel by the centroid of the
    positive S in the 3 x 3 window around the maximum."""
    out = []
    for y in range(n):
        for x in range(n):
            s = sig[y * n + x]
            if s < floor:
                continue
            best = True
            for yy in range(max(0, y - w), min(n, y + w + 1)):
                for xx in range(max(0, x - w), min(n, x + w + 1)):
                    v = sig[yy * n + xx]
                    if v > s or (v == s and (yy, xx) < (y, x)):
                        best = False
                        break
                if not best:
                    break
            if not best:
                continue
            wx = wy = tot = 0.0
            for yy in range(max(0, y - 1), min(n, y + 2)):
                for xx in range(max(0, x - 1), min(n, x + 2)):
                    v = max(sig[yy * n + xx], 0.0)
                    wx += v * xx
                    wy += v * yy
                    tot += v
            out.append((wx / tot, wy / tot, s) if tot > 0.0 else (float(x), float(y), s))
    return out


def sig_maps(bundle, prefix, use_numpy):
    """The significance map of every patch of `<prefix>patches.npy`: (n, [(patch_id, S)])."""
    with open(os.path.join(bundle, "dataset.json"), encoding="utf-8") as f:
        dataset = json.load(f)
    kers = kernels(dataset)
    shape, counts = read_npy(os.path.join(bundle, prefix + "patches.npy"))
    dshape, diffuse = read_npy(os.path.join(bundle, prefix + "diffuse.npy"))
    if dshape != shape:
        raise SystemExit("%sdiffuse.npy has shape %r, %spatches.npy %r" % (prefix, dshape, prefix, shape))
    ids = read_patch_ids(os.path.join(bundle, prefix + "patches.csv"))
    if len(ids) != shape[0]:
        raise SystemExit("%spatches.csv lists %d patches, the array has %d" % (prefix, len(ids), shape[0]))
    return shape[1], [(pid, significance(counts, diffuse, i, shape, kers, use_numpy))
                      for i, pid in enumerate(ids)]


def candidates(maps, n, floor, w):
    """Peaks of every map: [(patch_id, x, y, S)]."""
    return [(pid, x, y, s) for pid, sig in maps for x, y, s in peaks(sig, n, floor, w)]


def tune_threshold(cands, truth):
    """The threshold maximising F1 on a labelled set, with the challenge's matching: greedy in
    decreasing S, each detection takes the brightest unmatched true source within 0.3 deg of
    its patch. Returns (threshold, f1, purity, completeness)."""
    radius_pix = MATCH_RADIUS_DEG / PIXEL_DEG
    by_patch = {}
    for t in truth:
        by_patch.setdefault(t["patch_id"], []).append(t)
    taken = set()
    order = sorted(cands, key=lambda c: -c[3])
    hits = []
    for pid, x, y, s in order:
        best = None
        for j, t in enumerate(by_patch.get(pid, [])):
            if (pid, j) in taken:
                continue
            if math.hypot(t["x_pix"] - x, t["y_pix"] - y) <= radius_pix:
                if best is None or t["flux"] > by_patch[pid][best]["flux"]:
                    best = j
        if best is not None:
            taken.add((pid, best))
        hits.append((s, best is not None))
    n_true = len(truth)
    best = (order[-1][3] if order else 0.0, 0.0, 0.0, 0.0)
    tp = fp = 0
    for i, (s, hit) in enumerate(hits):
        tp += hit
        fp += not hit
        if i + 1 < len(hits) and hits[i + 1][0] == s:
            continue  # a threshold keeps all detections of equal S
        p = tp / (tp + fp)
        c = tp / n_true if n_true else 0.0
        f1 = 2 * p * c / (p + c) if p + c > 0 else 0.0
        if f1 > best[1]:
            best = (s, f1, p, c)
    return best


def read_truth(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [
            {
                "patch_id": int(r["patch_id"]),
                "x_pix": float(r["x_pix"]),
                "y_pix": float(r["y_pix"]),
                "flux": float(r["flux_1000_ph_cm2_s"]),
            }
            for r in csv.DictReader(f)
        ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, help="the public bundle directory")
    ap.add_argument("--out", required=True, help="the submission CSV to write")
    ap.add_argument("--floor", type=float, default=2.0,
                    help="lowest significance considered while tuning (default 2)")
    ap.add_argument("--no-numpy", action="store_true", help="use the standard-library path")
    a = ap.parse_args(argv)
    need = ["dataset.json", "patches.npy", "diffuse.npy", "patches.csv", "train_patches.npy",
            "train_diffuse.npy", "train_patches.csv", "train_truth.csv"]
    missing = [f for f in need if not os.path.isfile(os.path.join(a.bundle, f))]
    if missing:
        raise SystemExit("baseline.py: %s lacks %s (the public bundle of `gammabench challenge "
                         "build`; the training set needs challenge.train_patches > 0)"
                         % (a.bundle, ", ".join(missing)))
    use_numpy = np is not None and not a.no_numpy
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    log("baseline: %s arithmetic" % ("numpy" if use_numpy else "standard-library"))
    n, train_maps = sig_maps(a.bundle, "train_", use_numpy)
    truth = read_truth(os.path.join(a.bundle, "train_truth.csv"))
    best = None
    for w in WINDOWS:
        thr, f1, p, c = tune_threshold(candidates(train_maps, n, a.floor, w), truth)
        log("baseline: training set, maxima over %d x %d pixels: best F1 %.4f at S >= %.3f "
            "(purity %.4f, completeness %.4f)" % (2 * w + 1, 2 * w + 1, f1, thr, p, c))
        if best is None or f1 > best[1]:
            best = (thr, f1, w)
    thr, f1, w = best
    log("baseline: chosen on the training set (%d patches, %d sources): S >= %.3f, window %d x %d"
        % (len(train_maps), len(truth), thr, 2 * w + 1, 2 * w + 1))
    n, test_maps = sig_maps(a.bundle, "", use_numpy)
    test = candidates(test_maps, n, thr, w)
    seen = set()
    with open(a.out, "w", newline="", encoding="utf-8") as f:
        f.write("patch_id,x_pix,y_pix,score,detector\n")
        for pid, x, y, s in test:
            key = (pid, "%.3f" % x, "%.3f" % y)
            if key in seen:
                continue
            seen.add(key)
            f.write("%d,%.3f,%.3f,%.4f,matched-filter baseline\n" % (pid, x, y, s))
    log("baseline: %d detections in %d test rows -> %s" % (len(test), len(seen), a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
