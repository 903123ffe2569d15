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
    readers = {
        # pandas: dtype inference from the CSV text, the Parquet file's own types
        "pandas": (
            lambda: pd.read_csv(csv, keep_default_na=False, na_values=[""]),
            lambda: pd.read_parquet(pq),
            lambda f: (list(f.columns), len(f), lambda col: f[col].tolist()),
        ),
        "polars": (
            lambda: pl.read_csv(csv, infer_schema_length=None),
            lambda: pl.read_parquet(pq),
            lambda f: (list(f.columns), f.height, lambda col: f[col].to_list()),
        ),
    }
    for lib, (read_csv, read_pq, view) in readers.items():
        (cols, rows, values), (pcols, prows, pvalues) = view(read_csv()), view(read_pq())
        if cols != pcols:
            problems.append(f"{lib} columns {cols} != {pcols}")
        elif rows != prows:
            problems.append(f"{lib} rows {rows} != {prows}")
        else:
            for col in cols:
                for i, (x, y) in enumerate(zip(values(col), pvalues(col))):
                    if not same(x, y):
                        problems.append(f"{lib} {col} row {i}: csv {x!r} parquet {y!r}")
                        break
    return problems, rows, len(cols)


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
