#!/usr/bin/env python3
"""scikit-learn's RandomForestClassifier on gammabench's own rows and splits (issue 21).

The peer of our CART forest (`src/classify/forest.rs`, variant `rf`) on the 4FGL-DR2
catalog track. Both read the same table and the same splits:

    gammabench classify features --config configs/ci/classify.toml --set classify.variant=rf --out F
    gammabench run configs/ci/classify.toml --set classify.variant=rf     # ours: oof_predictions.csv
    python benches/peers/rf_sklearn.py --features F --ours runs/classify/<hash> --threads 2

Per split the forest is fitted on the `train` rows (missing cells imputed by the train rows'
median, as `classify::scale::Scaler` does; a forest needs no standardisation) and scored on
the `test` rows: accuracy at p >= 0.5 and ROC AUC of p(class 1). It is fitted twice with the
same `random_state` to check that its outputs are byte-identical. With `--ours` the same
metrics are computed from our out-of-fold predictions (after checking that each source's fold
there is its `test` split here) and printed side by side, with our fit times from folds.csv.

Needs numpy and scikit-learn (a venv outside the repository). Prints one JSON object.
"""
import argparse
import csv
import json
import os
import statistics
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score


def read_features(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    ids = [r[0] for r in rows[1:]]
    classes = [r[1] for r in rows[1:]]
    x = np.array([[float(v) if v != "" else np.nan for v in r[2:]] for r in rows[1:]])
    return header[2:], ids, classes, x


def read_splits(path):
    splits = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            splits.setdefault(int(r["split"]), {}).setdefault(r["role"], []).append(r["source_id"])
    return splits


def mean_std(v):
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", required=True, help="output directory of `classify features`")
    ap.add_argument("--ours", help="a classify stage directory (oof_predictions.csv, folds.csv)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--n-trees", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20210901)
    a = ap.parse_args()

    _, ids, classes, x = read_features(os.path.join(a.features, "features.csv"))
    splits = read_splits(os.path.join(a.features, "splits.csv"))
    names = sorted(set(classes))
    # class 1 is the minority class of the task (PSR for agn_psr), as in gammabench
    pos = min(names, key=classes.count)
    y = np.array([1 if c == pos else 0 for c in classes])
    row = {s: i for i, s in enumerate(ids)}

    sk = {"accuracy": [], "auc": [], "fit_time_s": []}
    identical = True
    test_fold = {}
    for k in sorted(splits):
        tr = np.array([row[s] for s in splits[k]["train"]])
        te = np.array([row[s] for s in splits[k]["test"]])
        for s in splits[k]["test"]:
            test_fold[s] = k
        xt, xs = x[tr].copy(), x[te].copy()
        med = np.nanmedian(xt, axis=0)
        for j in range(x.shape[1]):
            xt[np.isnan(xt[:, j]), j] = med[j]
            xs[np.isnan(xs[:, j]), j] = med[j]
        probs = []
        for _ in range(2):
            m = RandomForestClassifier(
                n_estimators=a.n_trees,
                max_features="sqrt",
                min_samples_leaf=1,
                random_state=a.seed + k,
                n_jobs=a.threads,
            )
            t0 = time.perf_counter()
            m.fit(xt, y[tr])
            fit_s = time.perf_counter() - t0
            probs.append(m.predict_proba(xs)[:, 1])
        identical &= probs[0].tobytes() == probs[1].tobytes()
        p = probs[0]
        sk["accuracy"].append(float(np.mean((p >= 0.5) == (y[te] == 1))))
        sk["auc"].append(float(roc_auc_score(y[te], p)))
        sk["fit_time_s"].append(fit_s)
    out = {
        "rows": len(ids),
        "columns": int(x.shape[1]),
        "splits": len(splits),
        "positive_class": pos,
        "sklearn": {
            "version": __import__("sklearn").__version__,
            "n_trees": a.n_trees,
            "threads": a.threads,
            "byte_identical_refit": identical,
            **{k: mean_std(v) for k, v in sk.items()},
        },
    }
    if a.ours:
        acc, auc, seen = {}, {}, 0
        by_fold = {}
        with open(os.path.join(a.ours, "oof_predictions.csv"), newline="") as f:
            for r in csv.DictReader(f):
                k = int(r["fold"])
                if test_fold.get(r["source_id"]) != k:
                    raise SystemExit(
                        f"{a.ours}/oof_predictions.csv: {r['source_id']} is in fold {k} there,"
                        f" not in test split {test_fold.get(r['source_id'])} of splits.csv"
                    )
                by_fold.setdefault(k, ([], []))
                by_fold[k][0].append(1 if r["true_class"] == pos else 0)
                by_fold[k][1].append(float(r[f"p_{pos}"]))
                seen += 1
        for k, (t, p) in by_fold.items():
            t, p = np.array(t), np.array(p)
            acc[k] = float(np.mean((p >= 0.5) == (t == 1)))
            auc[k] = float(roc_auc_score(t, p))
        with open(os.path.join(a.ours, "folds.csv"), newline="") as f:
            fit = [float(r["train_time_s"]) for r in csv.DictReader(f)]
        out["gammabench"] = {
            "rows_checked": seen,
            "accuracy": mean_std(list(acc.values())),
            "auc": mean_std(list(auc.values())),
            "fit_time_s": mean_std(fit),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
