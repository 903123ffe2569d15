#!/usr/bin/env python3
"""pandas and polars read gammabench's Parquet tables as the CSV beside them (issue 21).

For every `*.parquet` under the given directories (a store, a stage folder, an --out export)
that has a `*.csv` of the same stem beside it, this reads the CSV and the Parquet file with
pandas (pyarrow engine) and with polars, and checks: the same column names in the same order,
the same row count, and every cell equal (numbers exactly, as float64 or int64; empty CSV
cells are nulls in both). It prints one line per file and a JSON summary, and exits 1 on the
first disagreement.

    python benches/peers/parquet_check.py runs/ [more dirs...]

Needs pandas, pyarrow and polars (a venv outside the repository).
"""
import json
import math
import pathlib
import sys

import pandas as pd
import polars as pl


def same(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


def check(csv, pq):
    problems = []
    # pandas: dtype inference from the CSV text, the Parquet file's own types
    c = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    p = pd.read_parquet(pq)
    if list(c.columns) != list(p.columns):
        problems.append(f"pandas columns {list(c.columns)} != {list(p.columns)}")
    elif len(c) != len(p):
        problems.append(f"pandas rows {len(c)} != {len(p)}")
    else:
        for col in c.columns:
            for i, (x, y) in enumerate(zip(c[col].tolist(), p[col].tolist())):
                if not same(x, y):
                    problems.append(f"pandas {col} row {i}: csv {x!r} parquet {y!r}")
                    break
    # polars
    c = pl.read_csv(csv, infer_schema_length=None)
    p = pl.read_parquet(pq)
    if c.columns != p.columns:
        problems.append(f"polars columns {c.columns} != {p.columns}")
    elif c.height != p.height:
        problems.append(f"polars rows {c.height} != {p.height}")
    else:
        for col in c.columns:
            for i, (x, y) in enumerate(zip(c[col].to_list(), p[col].to_list())):
                if not same(x, y):
                    problems.append(f"polars {col} row {i}: csv {x!r} parquet {y!r}")
                    break
    return problems, len(c), len(c.columns)


def main():
    files = []
    for d in sys.argv[1:] or ["runs"]:
        files += sorted(pathlib.Path(d).rglob("*.parquet"))
    checked, bad = [], 0
    for pq in files:
        csv = pq.with_suffix(".csv")
        if not csv.exists():
            continue
        problems, rows, cols = check(csv, pq)
        print(f"{'ok ' if not problems else 'BAD'} {pq} ({rows} rows, {cols} columns, "
              f"{pq.stat().st_size} B parquet / {csv.stat().st_size} B csv)")
        for p in problems:
            print("   ", p)
        bad += bool(problems)
        checked.append({"file": str(pq), "rows": rows, "columns": cols, "ok": not problems})
    print(json.dumps({"pandas": pd.__version__, "polars": pl.__version__,
                      "files": len(checked), "disagreeing": bad}))
    sys.exit(1 if bad or not checked else 0)


if __name__ == "__main__":
    main()
