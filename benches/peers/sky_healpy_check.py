#!/usr/bin/env python3
"""Checks gammabench sky and patch outputs with healpy.

1. `healpy.read_map` opens every `map_*.fits` of a sky directory (all columns), and the
   header keys PIXTYPE, ORDERING, NSIDE, COORDSYS are the HEALPix ones;
2. for a few patches, healpy's Cartesian projector, the one `healpy.cartview(rot=(l, b, 0),
   lonra=[-5, 5], latra=[-5, 5], xsize=64)` draws with (matplotlib not needed), sampled at
   the patch centre, gives the same HEALPix pixels as the patch: `patches_<c>.npy[i]` equals
   the projected map times the pixel-area ratio, row 0 at the bottom as `projmap` returns it.

    python sky_healpy_check.py --sky SKY_DIR --patches PATCHES_DIR [--n 20]
Prints one JSON object; exit 1 on a mismatch.
"""
import argparse
import csv
import json
import math
import sys

import healpy as hp
import numpy as np
from astropy.io import fits
from healpy import projector


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sky", required=True)
    ap.add_argument("--patches", required=True)
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    out = {"maps": {}}
    maps = {}
    ok = True
    for c in ("diffuse", "agn", "psr"):
        path = f"{a.sky}/map_{c}.fits"
        m = np.atleast_2d(hp.read_map(path, field=None))
        h = fits.getheader(path, 1)
        keys = {k: h.get(k) for k in ("PIXTYPE", "ORDERING", "NSIDE", "COORDSYS", "TUNIT1")}
        good = (keys["PIXTYPE"] == "HEALPIX" and keys["ORDERING"] == "RING"
                and keys["COORDSYS"] == "G" and hp.npix2nside(m.shape[1]) == keys["NSIDE"])
        ok &= good
        maps[c] = m
        out["maps"][c] = {"shape": list(m.shape), "total": float(m.sum()), "header": keys, "ok": good}
    nside = hp.npix2nside(maps["diffuse"].shape[1])
    rows = list(csv.DictReader(open(f"{a.patches}/patches.csv")))
    scale = math.radians(10.0 / 63.0) ** 2 / hp.nside2pixarea(nside)
    idx = np.arange(hp.nside2npix(nside))
    worst = 0.0
    checked = []
    step = max(1, len(rows) // a.n)
    for c in ("diffuse", "agn", "psr"):
        arr = np.load(f"{a.patches}/patches_{c}.npy", mmap_mode="r")
        for r in rows[::step]:
            i = int(r["patch_id"])
            lon, lat = float(r["glon_deg"]), float(r["glat_deg"])
            p = projector.CartesianProj(rot=(lon, lat, 0), lonra=[-5, 5], latra=[-5, 5],
                                        xsize=64, ysize=64)
            ip = p.projmap(idx, lambda x, y, z: hp.vec2pix(nside, x, y, z)).astype(np.int64)
            want = np.moveaxis(maps[c][:, ip], 0, -1) * scale  # (64, 64, bins), row 0 bottom
            got = np.asarray(arr[i], dtype=np.float64)
            denom = max(float(np.abs(want).max()), 1e-12)
            err = float(np.abs(got - want).max()) / denom
            # the four central patch pixels sample the HEALPix pixel of the centre or its
            # neighbours (an NSIDE-8 centre is a corner shared by four NSIDE-256 pixels)
            cpix = hp.ang2pix(nside, lon, lat, lonlat=True)
            near = set(hp.get_all_neighbours(nside, cpix).tolist()) | {int(cpix)}
            centre_ok = all(int(ip[y, x]) in near for y in (31, 32) for x in (31, 32))
            worst = max(worst, err)
            checked.append(i)
            ok &= err < 1e-5 and centre_ok
    out["patches_checked"] = len(checked)
    out["max_rel_diff_vs_healpy_projection"] = worst
    out["ok"] = bool(ok)
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
