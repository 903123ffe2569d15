#!/usr/bin/env python3
"""Check a gammabench challenge submission without the gammabench binary.

A pure-Python (standard library only, Python >= 3.8) port of `gammabench challenge
validate`: the same rules, the same messages, the same exit codes.

    python3 validate.py my_detections.csv --patches patches.csv

Every problem is printed on stderr as `FILE:LINE:COLUMN: `FIELD`: MESSAGE` (LINE and COLUMN
1-based, COLUMN the CSV field number), then `error: FILE: invalid (N problems)`; the exit
code is 2. A valid file prints `FILE: valid (N detections, FORMAT format)` on stdout and exits
with 0. `tests/challenge.rs` runs this script and the binary on the same invalid files and
checks that their output is identical. The one known difference: the text of the decoder's
error for a corrupt gzip file.

The rules (see README.md, "Submission format"): header with known columns, each once, the
required ones present; every row with as many fields as the header; numbers finite;
`patch_id` an integer id of patches.csv; `-0.5 <= x_pix, y_pix < 63.5`; class probabilities
all three or none, each in [0, 1], summing to 1 +- 1e-3; a flux >= 0; a sky position, if
given, within one pixel of the pixel position; no two rows with the same patch and position;
at most --max-file-bytes bytes and --max-rows rows; UTF-8 (a BOM and CRLF are fine).
"""

import argparse
import gzip
import math
import re
import struct
import sys
import zlib
from decimal import Decimal

# The challenge's defaults (`challenge.max_file_bytes`, `challenge.max_rows`).
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_ROWS = 1_000_000
MAX_PROBLEMS = 200

OUR_REQUIRED = ["patch_id", "x_pix", "y_pix"]
OUR_OPTIONAL = [
    "detector", "p_real", "position_err_deg", "score_err", "n_members", "glon_deg",
    "glat_deg", "score", "p_AGN", "p_PSR", "p_FAKE", "flux_1000_ph_cm2_s",
]
PUB_COLUMNS = ["image_nr", "centroid_y", "centroid_x", "class_id", "probability"]
PUB_OPTIONAL = ["lon_c", "lat_c", "lon_ps", "lat_ps", "catalog"]

# Patch geometry: 64 x 64 pixels over 10 x 10 deg.
SIZE = 64
HALF_WIDTH_DEG = 5.0
PIXEL_DEG = 2.0 * HALF_WIDTH_DEG / (SIZE - 1.0)

# What Rust's str::trim removes (Unicode White_Space), not Python's wider str.isspace set.
_RUST_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) \
    + "\u2028\u2029\u202f\u205f\u3000"
# What Rust's f64::from_str accepts (ASCII digits only, no underscores).
_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:inf|infinity|nan)|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
    re.ASCII | re.IGNORECASE,
)


def rtrim(s):
    """Rust's `str::trim`."""
    return s.strip(_RUST_WS)


def parse_f64(raw):
    """Rust's `raw.parse::<f64>()`: the float, or None when it is not a number."""
    if not _FLOAT_RE.fullmatch(raw):
        return None
    word = raw.lstrip("+-").lower()
    if word in ("inf", "infinity"):
        return -math.inf if raw.startswith("-") else math.inf
    if word == "nan":
        return math.nan
    return float(raw)


def fmt(v):
    """Rust's `{}` of an f64: shortest round-trip digits, never an exponent."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = format(Decimal(repr(v)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def read_records(text):
    """The records of a CSV text as the Rust csv crate reads it (comma, double quotes, `\\r`,
    `\\n` or `\\r\\n` line ends, empty lines skipped, rows of any length): a list of
    (line, fields), `line` the 1-based line of the record's first character."""
    out = []
    i, n = 0, len(text)
    line = 1  # line of position i
    while i < n:
        # skip empty lines between records
        while i < n and text[i] in "\r\n":
            if text[i] == "\n":
                line += 1
            i += 1
        if i >= n:
            break
        start_line = line
        fields = []
        field = []
        state = "start"
        while i < n:
            ch = text[i]
            if state == "start":
                if ch == '"':
                    state = "quoted"
                    i += 1
                    continue
                state = "plain"
            if state == "plain":
                if ch == ",":
                    fields.append("".join(field))
                    field = []
                    state = "start"
                    i += 1
                elif ch in "\r\n":
                    break
                else:
                    field.append(ch)
                    i += 1
            elif state == "quoted":
                if ch == '"':
                    state = "quote_end"
                else:
                    if ch == "\n":
                        line += 1
                    field.append(ch)
                i += 1
            elif state == "quote_end":
                if ch == '"':
                    field.append('"')
                    state = "quoted"
                    i += 1
                elif ch == ",":
                    fields.append("".join(field))
                    field = []
                    state = "start"
                    i += 1
                elif ch in "\r\n":
                    break
                else:
                    field.append(ch)
                    state = "plain"
                    i += 1
        fields.append("".join(field))
        # the record's terminator (\r\n counts as one)
        if i < n and text[i] == "\r":
            i += 1
        if i < n and text[i] == "\n":
            line += 1
            i += 1
        out.append((start_line, fields))
    return out


def pix_to_sky(l0, b0, x, y):
    """Sky position (l, b) of pixel (x, y) of the patch centred on (l0, b0), deg."""
    lon_r = -(-HALF_WIDTH_DEG + PIXEL_DEG * x)
    lat_r = -HALF_WIDTH_DEG + PIXEL_DEG * y
    lr, br = math.radians(lon_r), math.radians(lat_r)
    v = (math.cos(br) * math.cos(lr), math.cos(br) * math.sin(lr), math.sin(br))
    b0r = math.radians(b0)
    s, c = math.sin(b0r), math.cos(b0r)
    w = (c * v[0] - s * v[2], v[1], s * v[0] + c * v[2])
    lon = math.degrees(math.atan2(w[1], w[0]))
    lat = math.degrees(math.asin(min(max(w[2], -1.0), 1.0)))
    lon = math.fmod(lon + l0, 360.0)
    if lon < 0.0:
        lon += 360.0
    return (0.0 if lon >= 360.0 else lon), lat


def angular_distance_deg(l1, b1, l2, b2):
    p1, p2 = math.radians(b1), math.radians(b2)
    dp = p2 - p1
    dl = math.radians(l2 - l1)
    sa, sb = math.sin(dp / 2.0), math.sin(dl / 2.0)
    a = sa * sa + math.cos(p1) * math.cos(p2) * (sb * sb)
    return math.degrees(2.0 * math.asin(min(math.sqrt(a), 1.0)))


class Problems:
    def __init__(self, limit=MAX_PROBLEMS):
        self.items = []
        self.more = 0
        self.limit = max(limit, 1)

    def push(self, line, column, field, message):
        if len(self.items) < self.limit:
            self.items.append((line, column, field, message))
        else:
            self.more += 1


class Result:
    def __init__(self):
        self.format = None
        self.n_detections = 0
        self.problems = Problems()


class UsageError(Exception):
    pass


def os_error(e):
    """An OSError as Rust's std::io::Error prints it."""
    if e.errno is not None and e.strerror:
        return "%s (os error %d)" % (e.strerror, e.errno)
    return str(e)


def read_patches(path):
    """patches.csv: {patch_id: (glon_deg, glat_deg)}."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError("%s: cannot open: %s" % (path, os_error(e)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError("%s: invalid UTF-8 at byte %d" % (path, e.start))
    recs = read_records(text)
    if not recs:
        raise UsageError("%s: empty file" % path)
    header = [rtrim(h).lstrip("\ufeff") for h in recs[0][1]]
    cols = {}
    for name in ("patch_id", "glon_deg", "glat_deg"):
        if name not in header:
            raise UsageError("%s: line 1, column %d (`%s`): missing required column `%s`"
                             % (path, len(header) + 1, name, name))
        cols[name] = header.index(name)
    out = {}
    for line, fields in recs[1:]:
        vals = {}
        for name, ci in cols.items():
            raw = rtrim(fields[ci]) if ci < len(fields) else ""
            v = math.nan if raw == "" or raw.lower() == "nan" else parse_f64(raw)
            if v is None:
                raise UsageError("%s: line %d, column %d (`%s`): `%s` is not a number"
                                 % (path, line, ci + 1, name, raw))
            vals[name] = v
        pid = vals["patch_id"]
        if not math.isfinite(pid) or pid != math.floor(pid):
            raise UsageError("%s: line %d, column %d (`patch_id`): expected an integer"
                             % (path, line, cols["patch_id"] + 1))
        out[int(pid)] = (vals["glon_deg"], vals["glat_deg"])
    return out


def validate(path, patches, max_file_bytes=DEFAULT_MAX_FILE_BYTES, max_rows=DEFAULT_MAX_ROWS):
    """Every problem of the submission at `path` against the patch centres `patches`."""
    res = Result()
    c = res.problems
    try:
        with open(path, "rb") as f:
            data = f.read(max_file_bytes + 1)
            size = len(data)
            if size > max_file_bytes:
                f.seek(0, 2)
                size = f.tell()
    except OSError as e:
        raise UsageError("%s: cannot open: %s" % (path, os_error(e)))
    if size > max_file_bytes:
        c.push(1, 1, "-", "file is %d bytes, over the limit of %d bytes" % (size, max_file_bytes))
        return res
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=__import__("io").BytesIO(data)) as g:
                data = g.read(max_file_bytes + 1)
        except (OSError, EOFError, zlib.error) as e:
            c.push(1, 1, "-", "not a readable gzip file: %s" % e)
            return res
        if len(data) > max_file_bytes:
            c.push(1, 1, "-", "decompressed file is over the limit of %d bytes" % max_file_bytes)
            return res
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[: e.start].decode("utf-8")
        line = prefix.count("\n") + 1
        column = len(prefix) - (prefix.rfind("\n") + 1) + 1
        c.push(line, column, "-", "invalid UTF-8 at byte %d" % e.start)
        return res
    if text.startswith("\ufeff"):
        text = text[1:]
    records = read_records(text)
    if not records:
        c.push(1, 1, "-", "empty file: expected a header line")
        return res
    header = [rtrim(h) for h in records[0][1]]
    published = "image_nr" in header
    res.format = "published" if published else "gammabench"
    required, optional = (PUB_COLUMNS, PUB_OPTIONAL) if published else (OUR_REQUIRED, OUR_OPTIONAL)
    col = {}
    for i, h in enumerate(header):
        if h in required or h in optional:
            if h in col:
                c.push(1, i + 1, h, "column `%s` appears twice" % h)
            col[h] = i
        else:
            c.push(1, i + 1, h, "unknown column `%s` (expected %s%s)" % (
                h, ", ".join(required),
                " and optionally " + ", ".join(optional) if optional else ""))
    for r in required:
        if r not in col:
            c.push(1, len(header) + 1, r, "missing required column `%s`" % r)
    p_cols = ["p_AGN", "p_PSR", "p_FAKE"]
    n_p = sum(1 for p in p_cols if p in col)
    if 0 < n_p < 3:
        for p in p_cols:
            if p not in col:
                c.push(1, len(header) + 1, p,
                       "class probabilities need all of p_AGN, p_PSR, p_FAKE")
    for a, b in (("glon_deg", "glat_deg"), ("lon_ps", "lat_ps"), ("lon_c", "lat_c")):
        if (a in col) != (b in col):
            missing = b if a in col else a
            c.push(1, len(header) + 1, missing,
                   "missing column `%s`: %s and %s must be given together" % (missing, a, b))
    if any(r not in col for r in required):
        return res
    if published:
        pid_name, x_name, y_name = "image_nr", "centroid_x", "centroid_y"
        lon_name, lat_name, score_name = "lon_ps", "lat_ps", "probability"
    else:
        pid_name, x_name, y_name = "patch_id", "x_pix", "y_pix"
        lon_name, lat_name, score_name = "glon_deg", "glat_deg", "score"
    ci = lambda n: col[n] + 1 if n in col else 1  # noqa: E731
    hi = SIZE - 0.5
    seen = {}
    n_rows = 0
    for line, rec in records[1:]:
        if len(rec) == 1 and rtrim(rec[0]) == "":
            continue  # blank line
        n_rows += 1
        if n_rows > max_rows:
            c.push(line, 1, "-", "more than %d data rows (the row limit)" % max_rows)
            break
        if len(rec) != len(header):
            c.push(line, min(len(rec), len(header)) + 1, "-",
                   "%d fields, but the header has %d" % (len(rec), len(header)))
            continue
        ok = [True]

        def num(name):
            if name not in col:
                return None
            i = col[name]
            raw = rtrim(rec[i])
            v = parse_f64(raw)
            if v is None:
                c.push(line, i + 1, name, "`%s` is not a number" % raw)
            elif not math.isfinite(v):
                c.push(line, i + 1, name, "`%s` is not finite (NaN or inf)" % raw)
                v = None
            else:
                return v
            ok[0] = False
            return None

        pid, x, y = num(pid_name), num(x_name), num(y_name)
        score = num(score_name)
        class_id = num("class_id") if published else None
        glon, glat = num(lon_name), num(lat_name)
        lon_c, lat_c = num("lon_c"), num("lat_c")
        num("catalog")
        flux = num("flux_1000_ph_cm2_s")
        pa, pp, pf = num("p_AGN"), num("p_PSR"), num("p_FAKE")
        patch_id = None
        if pid is not None:
            if pid != math.trunc(pid) or abs(pid) > 9.0e15:
                c.push(line, ci(pid_name), pid_name, "`%s` is not an integer patch id" % fmt(pid))
                ok[0] = False
            else:
                p = int(pid)
                if p not in patches:
                    c.push(line, ci(pid_name), pid_name, "unknown patch id %d" % p)
                    ok[0] = False
                patch_id = p
        for name, v in ((x_name, x), (y_name, y)):
            if v is not None and not (-0.5 <= v < hi):
                c.push(line, ci(name), name, "%s is outside the patch (valid: -0.5 <= %s < %s)"
                       % (fmt(v), name, fmt(hi)))
                ok[0] = False
        if published:
            if score is not None and not (0.0 <= score <= 1.0):
                c.push(line, ci("probability"), "probability", "%s is outside [0, 1]" % fmt(score))
                ok[0] = False
            if class_id is not None and class_id != math.trunc(class_id):
                c.push(line, ci("class_id"), "class_id", "`%s` is not an integer" % fmt(class_id))
                ok[0] = False
        if flux is not None and flux < 0.0:
            c.push(line, ci("flux_1000_ph_cm2_s"), "flux_1000_ph_cm2_s", "%s is negative" % fmt(flux))
            ok[0] = False
        lon_lo, lon_range = (-360.0, "[-360, 360)") if published else (0.0, "[0, 360)")
        for name, v in ((lon_name, glon), ("lon_c", lon_c)):
            if v is not None and not (lon_lo <= v < 360.0):
                c.push(line, ci(name), name, "%s is outside %s" % (fmt(v), lon_range))
                ok[0] = False
        for name, v in ((lat_name, glat), ("lat_c", lat_c)):
            if v is not None and not (-90.0 <= v <= 90.0):
                c.push(line, ci(name), name, "%s is outside [-90, 90]" % fmt(v))
                ok[0] = False
        if pa is not None and pp is not None and pf is not None:
            good = True
            for name, v in (("p_AGN", pa), ("p_PSR", pp), ("p_FAKE", pf)):
                if not (0.0 <= v <= 1.0):
                    c.push(line, ci(name), name, "%s is outside [0, 1]" % fmt(v))
                    good = False
            s = pa + pp + pf
            if good and abs(s - 1.0) > 1e-3:
                c.push(line, ci("p_AGN"), "p_AGN",
                       "p_AGN + p_PSR + p_FAKE = %s, not 1 +- 1e-3" % fmt(s))
                good = False
            ok[0] = ok[0] and good
        if patch_id is None or x is None or y is None:
            continue
        centre = patches.get(patch_id)
        if centre is None and lon_c is not None and lat_c is not None:
            centre = (lon_c, lat_c)
        if centre is not None and glon is not None and glat is not None:
            l, b = pix_to_sky(centre[0], centre[1], x, y)
            d = angular_distance_deg(l, b, glon, glat)
            tol_pix, tol_text = (2.0, "two pixels") if published else (1.0, "one pixel")
            if d > tol_pix * PIXEL_DEG:
                c.push(line, ci(lon_name), lon_name,
                       "(%s, %s) = (%s, %s) is %.3f deg from the sky position of (%s, %s) in "
                       "patch %d, more than %s" % (lon_name, lat_name, fmt(glon), fmt(glat), d,
                                                   fmt(x), fmt(y), patch_id, tol_text))
                ok[0] = False
        known = patches.get(patch_id)
        if known is not None and lon_c is not None and lat_c is not None \
                and angular_distance_deg(known[0], known[1], lon_c, lat_c) > 1e-6:
            c.push(line, ci("lon_c"), "lon_c",
                   "(lon_c, lat_c) = (%s, %s) is not the centre of patch %d (%s, %s)"
                   % (fmt(lon_c), fmt(lat_c), patch_id, fmt(known[0]), fmt(known[1])))
            ok[0] = False
        key = (patch_id, struct.pack("<d", x), struct.pack("<d", y))
        if key in seen:
            c.push(line, 1, pid_name,
                   "duplicate detection: same patch and position as line %d" % seen[key])
            ok[0] = False
        else:
            seen[key] = line
        if ok[0]:
            res.n_detections += 1
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("submission")
    ap.add_argument("--patches", required=True, help="the public bundle's patches.csv")
    ap.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES)
    ap.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    a = ap.parse_args(argv)
    try:
        patches = read_patches(a.patches)
        res = validate(a.submission, patches, a.max_file_bytes, a.max_rows)
    except UsageError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    p = res.problems
    if not p.items:
        print("%s: valid (%d detections, %s format)"
              % (a.submission, res.n_detections, res.format or "gammabench"))
        return 0
    for line, column, field, message in p.items:
        sys.stderr.write("%s:%d:%d: `%s`: %s\n" % (a.submission, line, column, field, message))
    if p.more:
        sys.stderr.write("... and %d more problems\n" % p.more)
    sys.stderr.write("error: %s: invalid (%d problems)\n" % (a.submission, len(p.items) + p.more))
    return 2


if __name__ == "__main__":
    sys.exit(main())
