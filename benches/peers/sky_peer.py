#!/usr/bin/env python3
"""Peer implementation of the gammabench sky and patch stages with healpy + numpy.

What a healpy user would write: for every source and energy bin, `query_disc` around the
source, a King profile evaluated on the disc's pixel centres, normalised, added to the map;
the diffuse map smoothed with `healpy.smoothing` (a Gaussian with the bin's r68); the 768
NSIDE-8 test patches cut with healpy's Cartesian projector (the projection of
`cartview(rot=(l, b, 0), lonra=[-5, 5], latra=[-5, 5], xsize=64)`), the pixel indices
computed once per patch and used for all components and bins.

Inputs are the outputs of `gammabench sky ... --out DIR` (and the catalog stage it ran):
    python sky_peer.py --sky DIR --catalog CATALOG_DIR/catalog.csv [--max-sources N]
It prints one JSON object with wall times in seconds. Same PSF radius rule as gammabench
(3 r95 from 100 counts, 2 r95 from 10, 1.5 r95 from 1, r95 from 0.1, 2 r68 below;
at least one pixel).
"""
import argparse
import csv
import json
import math
import time

import healpy as hp
import numpy as np
from healpy import projector


def king_params(r68, r95):
    """(sigma, gamma) of the King profile with the given containment radii (rad)."""
    q = (r95 / r68) ** 2

    def ratio(t):
        return (20.0**t - 1.0) / (3.125**t - 1.0)

    lo, hi = 1e-4, 60.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if ratio(mid) < q:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    gamma = 1.0 + 1.0 / t
    u68 = 3.125**t - 1.0
    sigma = math.sqrt(r68 * r68 / (2.0 * gamma * u68))
    return sigma, gamma


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sky", required=True)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--max-sources", type=int, default=0, help="time an even subsample")
    ap.add_argument("--skip-diffuse", action="store_true")
    ap.add_argument("--skip-patches", action="store_true")
    a = ap.parse_args()

    man = json.load(open(a.sky + "/manifest.json"))
    s = man["summary"]
    nside = s["nside"]
    r68 = np.radians(s["psf_r68_deg_index2"])
    r95 = np.radians(s["psf_r95_deg_index2"])
    nbins = len(r68)
    npix = hp.nside2npix(nside)
    pix_size = math.sqrt(hp.nside2pixarea(nside))

    cat = {r["source_id"]: r for r in csv.DictReader(open(a.catalog))}
    rows = list(csv.DictReader(open(a.sky + "/source_counts.csv")))
    n_all = len(rows)
    if a.max_sources and n_all > a.max_sources:
        # an even subsample (the catalog is ordered by class and flux): report the time
        # scaled to the whole catalog as well
        stride = math.ceil(n_all / a.max_sources)
        rows = rows[::stride]
    out = {"nside": nside, "n_sources": len(rows), "n_catalog": n_all}

    t0 = time.perf_counter()
    maps = {c: np.zeros((nbins, npix)) for c in ("AGN", "PSR")}
    for b in range(nbins):
        sigma, gamma = king_params(r68[b], r95[b])
        for r in rows:
            n = float(r[f"counts_bin{b}"])
            if n <= 0:
                continue
            c = cat[r["source_id"]]
            vec = hp.ang2vec(float(c["glon_deg"]), float(c["glat_deg"]), lonlat=True)
            k = 3.0 if n >= 100 else 2.0 if n >= 10 else 1.5 if n >= 1 else 1.0
            radius = k * r95[b] if n >= 0.1 else min(2.0 * r68[b], r95[b])
            radius = max(radius, pix_size)
            ipix = hp.query_disc(nside, vec, radius)
            if len(ipix) == 0:
                maps[c["class"]][b, hp.vec2pix(nside, *vec)] += n
                continue
            v = np.array(hp.pix2vec(nside, ipix))
            theta = np.arccos(np.clip(vec @ v, -1.0, 1.0))
            w = (1.0 + theta**2 / (2.0 * gamma * sigma**2)) ** (-gamma)
            maps[c["class"]][b, ipix] += n * w / w.sum()
    out["points_s"] = time.perf_counter() - t0
    out["points_s_scaled_to_catalog"] = out["points_s"] * n_all / len(rows)
    out["points_total_counts"] = float(maps["AGN"].sum() + maps["PSR"].sum())

    diffuse = np.array(hp.read_map(a.sky + "/map_diffuse.fits", field=None), dtype=np.float64)
    if not a.skip_diffuse:
        t0 = time.perf_counter()
        smoothed = [hp.smoothing(diffuse[b], sigma=float(r68[b]) / 1.515) for b in range(nbins)]
        out["diffuse_smoothing_s"] = time.perf_counter() - t0
        out["diffuse_conservation"] = float(sum(m.sum() for m in smoothed) / diffuse.sum())

    if not a.skip_patches:
        t0 = time.perf_counter()
        comps = [diffuse, maps["AGN"], maps["PSR"]]
        scale = math.radians(10.0 / 63.0) ** 2 / hp.nside2pixarea(nside)
        idx_map = np.arange(npix)
        patches = np.zeros((3, 768, 64, 64, nbins), dtype=np.float32)
        for i in range(768):
            lon, lat = hp.pix2ang(8, i, lonlat=True)
            p = projector.CartesianProj(rot=(lon, lat, 0), lonra=[-5, 5], latra=[-5, 5], xsize=64, ysize=64)
            ip = p.projmap(idx_map, lambda x, y, z: hp.vec2pix(nside, x, y, z)).astype(np.int64)
            for c, m in enumerate(comps):
                patches[c, i] = np.moveaxis(m[:, ip], 0, -1) * scale
        out["patches_768_s"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
