"""Converts the published .npz candidate lists of manconi/agn-psr-nn-classification to CSV.

Python standard library only (numpy not needed): an .npz is a zip of .npy files; the object
arrays of source names are pickles whose numpy classes are stubbed out here, and the BNN
predictions are a little-endian float32 array. Usage: python3 extract_npz.py NPZ_DIR
"""
import csv, io, pickle, struct, sys, zipfile, ast, os


class _Stub:
    def __init__(self, *a, **k):
        self.items = None

    def __setstate__(self, state):
        # ndarray state: (version, shape, dtype, is_fortran, data)
        if isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], list):
            self.items = state[4]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("numpy"):
            if name == "_reconstruct":
                return lambda *a, **k: _Stub()
            return _Stub
        raise pickle.UnpicklingError(f"unexpected {module}.{name}")


def read_npy(b):
    assert b[:6] == b"\x93NUMPY"
    hlen = struct.unpack("<H", b[8:10])[0]
    header = ast.literal_eval(b[10:10 + hlen].decode("latin1"))
    body = b[10 + hlen:]
    if header["descr"] == "|O":
        return _Unpickler(io.BytesIO(body)).load().items
    assert header["descr"] == "<f4" and not header["fortran_order"]
    rows, cols = header["shape"]
    v = struct.unpack(f"<{rows * cols}f", body[: 4 * rows * cols])
    return [v[r * cols:(r + 1) * cols] for r in range(rows)]


def lists(path):
    z = zipfile.ZipFile(path)
    return {n[:-4]: read_npy(z.read(n)) for n in z.namelist()}


d = sys.argv[1]
# AGN / PSR lists are the same in every file of a network; the MSP / YNG lists differ by
# the inputs of the pulsar network: energy spectrum (spec), + GLAT (spec_glat), energy and
# time spectra + GLAT (both_glat).
rows = {}
cols = []
for net in ["dnn", "rnn"]:
    cols.append(f"class_{net}")
    for tag, stem in [("spec", ""), ("spec_glat", "_LAT"), ("both_glat", "_both_LAT")]:
        col = f"psr_type_{net}_{tag}"
        cols.append(col)
        for cl, names in lists(os.path.join(d, f"{net.upper()}{stem}_classifications.npz")).items():
            for n in names:
                key = f"class_{net}" if cl in ("agn", "psr") else col
                rows.setdefault(n.strip(), {})[key] = cl.upper()
with open("finke2021_unassociated_classes.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["source_name"] + cols)
    for n in sorted(rows):
        w.writerow([n] + [rows[n].get(c, "") for c in cols])
b = lists(os.path.join(d, "predictions_bnn_bcu.npz"))
pred, names = b["predictions"], b["source_names"]
with open("butter2021_bnn_bcu.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["source_name", "mean_p_FSRQ", "std_p_FSRQ", "n_draws"])
    for j, n in enumerate(names):
        v = [pred[i][j] for i in range(len(pred))]
        m = sum(v) / len(v)
        s = (sum((a - m) ** 2 for a in v) / len(v)) ** 0.5
        w.writerow([n.strip(), f"{m:.6f}", f"{s:.6f}", len(v)])
