"""Python peer of `benches/score.rs`: the published per-patch greedy scorer of Panes et al.
(2021) (`stats_tp_fp_fn` in from-unek-output-to-locnet-evaluation.py), re-expressed with
pandas and astropy and vectorised per prediction (the published script built one SkyCoord
pair per (prediction, truth) pair; that literal form is timed on a subset and extrapolated).

Usage: python benches/peers/score_peer.py target/score-bench [--literal-subset 300]
Input: test.csv (published truth format) and pred_published.csv (published detections with
the predicted lon, lat as the published "uk-full" files had), written by `cargo bench --bench score`.
"""
import argparse
import os
import time

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

RADIUS_DEG = 0.3


def load(d):
    test = pd.read_csv(os.path.join(d, "test.csv"))
    test["patch"] = test["filename"].str.extract(r"_(\d+)\.npy$")[0].astype(int)
    pred = pd.read_csv(os.path.join(d, "pred_published.csv"))
    pred = pred[pred["class_id"] >= 0].reset_index(drop=True)
    return test, pred


def score_vectorised(test, pred):
    """Per patch: predictions in file order, alive truth rows of the patch, astropy distances."""
    groups = {p: g for p, g in test.groupby("patch", sort=False)}
    alive = {p: np.ones(len(g), dtype=bool) for p, g in groups.items()}
    coords = {p: SkyCoord(g["lon_p"].values * u.deg, g["lat_p"].values * u.deg, frame="galactic")
              for p, g in groups.items()}
    flux = {p: g["flux_1000"].values for p, g in groups.items()}
    tp = fp = 0
    for p, lon, lat in zip(pred["image_nr"].values, pred["lon"].values, pred["lat"].values):
        if p not in groups:
            fp += 1
            continue
        c = SkyCoord(lon * u.deg, lat * u.deg, frame="galactic")
        d = c.separation(coords[p]).deg
        cand = np.where(alive[p] & (d <= RADIUS_DEG))[0]
        if len(cand):
            best = cand[np.argmax(flux[p][cand])]  # first of the highest flux
            alive[p][best] = False
            tp += 1
        else:
            fp += 1
    fn = int(sum(a.sum() for a in alive.values()))
    return tp, fp, fn


def literal_pairs(test, pred, n):
    """The published double loop with one SkyCoord pair per comparison, first n predictions."""
    t = test[["patch", "lon_p", "lat_p", "flux_1000"]].values
    alive = np.ones(len(t), dtype=bool)
    for _, row in pred.head(n).iterrows():
        best, fbest = -1, 0.0
        for j in range(len(t)):
            if not alive[j] or t[j, 0] != row["image_nr"]:
                continue
            c1 = SkyCoord(ra=row["lon"] * u.degree, dec=row["lat"] * u.degree)
            c2 = SkyCoord(ra=t[j, 1] * u.degree, dec=t[j, 2] * u.degree)
            if c1.separation(c2).degree <= RADIUS_DEG and t[j, 3] > fbest:
                best, fbest = j, t[j, 3]
        if best >= 0:
            alive[best] = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--literal-subset", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    test, pred = load(a.dir)
    t1 = time.perf_counter()
    tp, fp, fn = score_vectorised(test, pred)
    t2 = time.perf_counter()
    print(f"rows: truth {len(test)} predictions {len(pred)}")
    print(f"TP {tp} FP {fp} FN {fn} purity {tp / (tp + fp):.6f} completeness {tp / (tp + fn):.6f}")
    print(f"read {t1 - t0:.3f} s, match {t2 - t1:.3f} s, total {t2 - t0:.3f} s")
    if a.literal_subset:
        t3 = time.perf_counter()
        literal_pairs(test, pred, a.literal_subset)
        dt = time.perf_counter() - t3
        print(f"literal published loop: {a.literal_subset} predictions in {dt:.2f} s, "
              f"extrapolated to {len(pred)}: {dt * len(pred) / a.literal_subset:.0f} s")


if __name__ == "__main__":
    main()
