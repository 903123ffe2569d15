//! Reading a patches directory (the output of the patches stage).
//!
//! Layout: `patches_<component>.npy` float32 `(N, 64, 64, 5)` indexed
//! `[patch, y_pix, x_pix, energy_bin]` for the components `diffuse`, `agn`, `psr` (Asimov
//! expected counts; the total is their sum), `patches.csv` (`patch_id,glon_deg,glat_deg`, one
//! row per patch in array order) and `truth.csv` (`patch_id,source_id,class,x_pix,y_pix,...`).
//! `masks.npy` is not needed: targets are rebuilt from the truth positions with the configured
//! disk radius.

use crate::error::{Error, Result};
use rand_distr::{Distribution, Poisson};
use std::collections::HashMap;
use std::path::Path;

/// A float32 array `[patch, y_pix, x_pix, energy_bin]`, C order (the `.npy` layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Cube {
    shape: [usize; 4],
    data: Vec<f32>,
}

impl Cube {
    /// An array filled with `value`.
    pub fn from_elem(shape: [usize; 4], value: f32) -> Self {
        Self {
            shape,
            data: vec![value; shape.iter().product()],
        }
    }
    /// An array of zeros.
    pub fn zeros(shape: [usize; 4]) -> Self {
        Self::from_elem(shape, 0.0)
    }
    /// Wraps C-order data.
    pub fn from_vec(shape: [usize; 4], data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape and data disagree"
        );
        Self { shape, data }
    }
    /// `[patches, height, width, bins]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }
    /// All values, C order.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    fn patch_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }
    /// Patch `i` as `[y][x][bin]`.
    pub fn patch(&self, i: usize) -> &[f32] {
        let n = self.patch_len();
        &self.data[i * n..(i + 1) * n]
    }
    /// Mutable element `[p, y, x, b]`.
    pub fn at_mut(&mut self, p: usize, y: usize, x: usize, b: usize) -> &mut f32 {
        let [_, h, w, nb] = self.shape;
        &mut self.data[((p * h + y) * w + x) * nb + b]
    }
    /// Appends the patches of `other` (same height, width and bins).
    fn append(&mut self, other: Cube) {
        debug_assert_eq!(self.shape[1..], other.shape[1..]);
        self.shape[0] += other.shape[0];
        self.data.extend(other.data);
    }
    /// The patches at the given indices.
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.patch_len());
        for &i in idx {
            data.extend_from_slice(self.patch(i));
        }
        let [_, h, w, b] = self.shape;
        Self {
            shape: [idx.len(), h, w, b],
            data,
        }
    }
    /// Reads a 4-D float `.npy` file.
    pub fn read_npy(path: &Path) -> Result<Self> {
        let (shape, data) = crate::npy::read_f32(path)?;
        let shape: [usize; 4] = shape.try_into().map_err(|s: Vec<usize>| {
            Error::bad_file(
                path,
                format!("expected a 4-D (N, H, W, bins) array, got shape {s:?}"),
            )
        })?;
        Ok(Self { shape, data })
    }
    /// Writes a float32 `.npy` file.
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        crate::npy::write_f32(path, &self.shape, &self.data)
    }
}

/// Components summed into the total expected counts.
pub const COMPONENTS: [&str; 3] = ["diffuse", "agn", "psr"];

/// A true source inside a patch.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthSource {
    pub patch_id: u64,
    pub x_pix: f64,
    pub y_pix: f64,
    /// 1-100 GeV photon flux, ph cm-2 s-1 (NaN when the truth file lacks it).
    pub flux_1000_ph_cm2_s: f64,
}

/// Patches held in memory.
#[derive(Debug, Clone)]
pub struct PatchSet {
    /// Patch identifiers, in array order.
    pub patch_ids: Vec<u64>,
    /// Patch centres (glon, glat) in deg.
    pub centres_deg: Vec<(f64, f64)>,
    /// Total expected counts `[patch, y, x, bin]`.
    pub total: Cube,
    /// Diffuse expected counts `[patch, y, x, bin]` (the background model of the TS baseline).
    pub diffuse: Cube,
    /// True sources per patch (array index), empty when there is no truth file.
    pub truth: Vec<Vec<TruthSource>>,
    /// `total` holds observed photon counts (a challenge bundle's `patches.npy`), not expected
    /// counts: detectors take them as they are instead of drawing Poisson counts, and
    /// `diffuse` is unknown (zeros), so the TS baseline refuses such a set.
    pub observed: bool,
}

/// The counts array of a challenge's public bundle (`challenge build`).
pub const OBSERVED_FILE: &str = "patches.npy";

impl PatchSet {
    /// Number of patches.
    pub fn len(&self) -> usize {
        self.patch_ids.len()
    }
    /// True when there is no patch.
    pub fn is_empty(&self) -> bool {
        self.patch_ids.is_empty()
    }
    /// Patch side in pixels.
    pub fn size(&self) -> usize {
        self.total.shape()[1]
    }
    /// Number of energy bins.
    pub fn n_bins(&self) -> usize {
        self.total.shape()[3]
    }
    /// A set without patches (for detectors that need no training data).
    pub fn empty(size: usize, n_bins: usize) -> Self {
        Self {
            patch_ids: Vec::new(),
            centres_deg: Vec::new(),
            total: Cube::zeros([0, size, size, n_bins]),
            diffuse: Cube::zeros([0, size, size, n_bins]),
            truth: Vec::new(),
            observed: false,
        }
    }

    /// Loads a patches directory (expected counts per component, `patches_{c}.npy`) or,
    /// where those are absent, a challenge's public bundle (observed counts in
    /// [`OBSERVED_FILE`], [`Self::observed`] set); `max_patches > 0` keeps only the first ones.
    pub fn load(dir: &Path, max_patches: usize) -> Result<Self> {
        let components = dir.join(format!("patches_{}.npy", COMPONENTS[0]));
        if !components.exists() && dir.join(OBSERVED_FILE).exists() {
            return Self::load_observed(dir, max_patches);
        }
        let mut parts = Vec::new();
        for c in COMPONENTS {
            let p = dir.join(format!("patches_{c}.npy"));
            let a = Cube::read_npy(&p)?;
            parts.push((p, a));
        }
        let shape = parts[0].1.shape();
        for (p, a) in &parts {
            if a.shape() != shape {
                return Err(Error::bad_file(
                    p,
                    format!("shape {:?} differs from {:?}", a.shape(), shape),
                ));
            }
            if a.shape()[1] != a.shape()[2] {
                return Err(Error::bad_file(p, "patches must be square"));
            }
            // expected counts: finite and >= 0, or every detector's input is meaningless
            check_counts(p, a, "expected counts")?;
        }
        let n_all = shape[0];
        let n = if max_patches > 0 {
            max_patches.min(n_all)
        } else {
            n_all
        };
        let first: Vec<usize> = (0..n).collect();
        let diffuse = parts[0].1.select(&first);
        let mut total = diffuse.clone();
        for (_, a) in &parts[1..] {
            let a = a.select(&first);
            for (t, v) in total.data.iter_mut().zip(&a.data) {
                *t += v;
            }
        }
        let (patch_ids, centres_deg) = read_patch_list(&dir.join("patches.csv"), n_all)?;
        let mut set = PatchSet {
            patch_ids: patch_ids[..n].to_vec(),
            centres_deg: centres_deg[..n].to_vec(),
            total,
            diffuse,
            truth: vec![Vec::new(); n],
            observed: false,
        };
        let truth_path = dir.join("truth.csv");
        if truth_path.exists() {
            set.set_truth(read_truth(&truth_path)?);
        }
        Ok(set)
    }

    /// A challenge's public bundle: `patches.npy` (observed counts `[patch, y, x, bin]`,
    /// finite and >= 0) and `patches.csv` (`index,patch_id,glon_deg,glat_deg`, row `index`
    /// of the array on line `index + 2`). No truth, no diffuse component.
    fn load_observed(dir: &Path, max_patches: usize) -> Result<Self> {
        let p = dir.join(OBSERVED_FILE);
        let a = Cube::read_npy(&p)?;
        let sh = a.shape();
        if sh[1] != sh[2] {
            return Err(Error::bad_file(&p, "patches must be square"));
        }
        check_counts(&p, &a, "counts")?;
        let (patch_ids, centres_deg) = read_patch_list(&dir.join("patches.csv"), sh[0])?;
        let n = if max_patches > 0 {
            max_patches.min(sh[0])
        } else {
            sh[0]
        };
        let first: Vec<usize> = (0..n).collect();
        let total = a.select(&first);
        Ok(PatchSet {
            patch_ids: patch_ids[..n].to_vec(),
            centres_deg: centres_deg[..n].to_vec(),
            diffuse: Cube::zeros(total.shape()),
            total,
            truth: vec![Vec::new(); n],
            observed: true,
        })
    }

    /// Assigns true sources to patches by `patch_id` (sources of unknown patches are dropped).
    pub fn set_truth(&mut self, sources: Vec<TruthSource>) {
        let index: HashMap<u64, usize> = self
            .patch_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        self.truth = vec![Vec::new(); self.len()];
        for s in sources {
            if let Some(&i) = index.get(&s.patch_id) {
                self.truth[i].push(s);
            }
        }
    }

    /// The patches of several sets, one after the other (e.g. the realisations of a training
    /// sky). Set `r`'s patch ids (and its truth's) are offset by `r << 32`, so that the
    /// Poisson draws keyed by patch id stay independent across sets; set 0 keeps its ids.
    pub fn concat(sets: Vec<PatchSet>) -> Result<PatchSet> {
        let mut it = sets.into_iter();
        let Some(mut out) = it.next() else {
            return Err(Error::Usage("no patch sets to join".into()));
        };
        let [_, h, w, nb] = out.total.shape();
        for (r, s) in it.enumerate() {
            let [_, h2, w2, nb2] = s.total.shape();
            if (h2, w2, nb2) != (h, w, nb) {
                return Err(Error::Usage(format!(
                    "patch sets differ in shape: {h}x{w}x{nb} and {h2}x{w2}x{nb2}"
                )));
            }
            let offset = ((r + 1) as u64) << 32;
            out.patch_ids
                .extend(s.patch_ids.iter().map(|id| id + offset));
            out.centres_deg.extend(s.centres_deg);
            out.truth.extend(s.truth.into_iter().map(|v| {
                v.into_iter()
                    .map(|mut t| {
                        t.patch_id += offset;
                        t
                    })
                    .collect::<Vec<_>>()
            }));
            out.total.append(s.total);
            out.diffuse.append(s.diffuse);
        }
        Ok(out)
    }

    /// The patches at the given array indices.
    pub fn select(&self, idx: &[usize]) -> PatchSet {
        PatchSet {
            patch_ids: idx.iter().map(|&i| self.patch_ids[i]).collect(),
            centres_deg: idx.iter().map(|&i| self.centres_deg[i]).collect(),
            total: self.total.select(idx),
            diffuse: self.diffuse.select(idx),
            truth: idx.iter().map(|&i| self.truth[i].clone()).collect(),
            observed: self.observed,
        }
    }
}

/// Patch ids and centres (glon, glat) in deg.
pub type PatchList = (Vec<u64>, Vec<(f64, f64)>);

/// Reads `patches.csv` (`patch_id,glon_deg,glat_deg`, optionally `index`), which must have
/// `n` rows.
pub fn read_patch_list(path: &Path, n: usize) -> Result<PatchList> {
    let mut r = crate::formats::csv_reader(path)?;
    let cols = crate::formats::Columns::read(path, &mut r)?;
    // a bundle's `index` column (the array row) must be the row number, or the positions
    // would be reported for the wrong patch
    let index_col = cols.find("index");
    let (mut ids, mut centres) = (Vec::new(), Vec::new());
    for (row, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_file(path, e.to_string()))?;
        if let Some(col) = index_col {
            let index: usize = cols.parse(&rec, "index")?;
            if index != row {
                return Err(Error::Data {
                    file: path.display().to_string(),
                    line: rec.position().map(|p| p.line() as usize).unwrap_or(row + 2),
                    column: col + 1,
                    field: "index".into(),
                    message: format!("{index} is not the row number {row} (rows in array order)"),
                });
            }
        }
        ids.push(cols.parse(&rec, "patch_id")?);
        centres.push((cols.parse(&rec, "glon_deg")?, cols.parse(&rec, "glat_deg")?));
    }
    if ids.len() != n {
        return Err(Error::bad_file(
            path,
            format!("{} rows but the arrays hold {n} patches", ids.len()),
        ));
    }
    Ok((ids, centres))
}

/// Counts (expected or observed) must be finite and >= 0; the first bad value is named by
/// patch, y, x and energy bin.
fn check_counts(path: &Path, a: &Cube, what: &str) -> Result<()> {
    let Some(i) = a.data.iter().position(|v| !(v.is_finite() && *v >= 0.0)) else {
        return Ok(());
    };
    let sh = a.shape();
    let (per_patch, per_row) = (sh[1] * sh[2] * sh[3], sh[2] * sh[3]);
    let (pi, r) = (i / per_patch, i % per_patch);
    let (y, r) = (r / per_row, r % per_row);
    let (x, b) = (r / sh[3], r % sh[3]);
    Err(Error::bad_file(
        path,
        format!(
            "patch {pi}, y {y}, x {x}, bin {b}: value {} ({what} must be finite and >= 0)",
            a.data[i]
        ),
    ))
}

/// Reads `truth.csv` (`patch_id`, `x_pix`, `y_pix`, optionally `flux_1000_ph_cm2_s`).
pub fn read_truth(path: &Path) -> Result<Vec<TruthSource>> {
    let mut r = crate::formats::csv_reader(path)?;
    let cols = crate::formats::Columns::read(path, &mut r)?;
    let flux_col = cols.find("flux_1000_ph_cm2_s");
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| Error::bad_file(path, e.to_string()))?;
        out.push(TruthSource {
            patch_id: cols.parse(&rec, "patch_id")?,
            x_pix: cols.parse(&rec, "x_pix")?,
            y_pix: cols.parse(&rec, "y_pix")?,
            flux_1000_ph_cm2_s: if flux_col
                .and_then(|c| rec.get(c))
                .is_some_and(|v| !v.trim().is_empty())
            {
                cols.parse(&rec, "flux_1000_ph_cm2_s")?
            } else {
                f64::NAN
            },
        });
    }
    Ok(out)
}

/// Writes a patches directory (used by tests and synthetic benchmarks): the three component
/// arrays, `patches.csv` and a minimal `truth.csv`.
pub fn write_patch_dir(
    dir: &Path,
    components: [&Cube; 3],
    centres_deg: &[(f64, f64)],
    truth: &[TruthSource],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (c, a) in COMPONENTS.iter().zip(components) {
        a.write_npy(&dir.join(format!("patches_{c}.npy")))?;
    }
    let mut s = String::from("patch_id,glon_deg,glat_deg\n");
    for (i, (l, b)) in centres_deg.iter().enumerate() {
        s.push_str(&format!(
            "{i},{},{}\n",
            crate::formats::fmt_f64(*l),
            crate::formats::fmt_f64(*b)
        ));
    }
    crate::formats::atomic_write(&dir.join("patches.csv"), s.as_bytes())?;
    let mut t = String::from("patch_id,source_id,x_pix,y_pix,flux_1000_ph_cm2_s\n");
    for (k, src) in truth.iter().enumerate() {
        t.push_str(&format!(
            "{},{k},{},{},{}\n",
            src.patch_id,
            crate::formats::fmt_f64(src.x_pix),
            crate::formats::fmt_f64(src.y_pix),
            crate::formats::fmt_f64(src.flux_1000_ph_cm2_s)
        ));
    }
    crate::formats::atomic_write(&dir.join("truth.csv"), t.as_bytes())
}

/// One Poisson draw of the total counts of patch `index`, keyed by `(seed, stage, patch_id)`;
/// returned as `[y, x, bin]` row-major.
pub fn poisson_counts(patches: &PatchSet, index: usize, seed: u64, stage: &str) -> Vec<f32> {
    let mut rng = crate::rng::stream(seed, stage, patches.patch_ids[index]);
    patches
        .total
        .patch(index)
        .iter()
        .map(|&mu| draw_poisson(&mut rng, mu as f64) as f32)
        .collect()
}

/// A Poisson variate (0 for a non-positive mean).
pub fn draw_poisson(rng: &mut crate::rng::Rng, mean: f64) -> f64 {
    if mean > 0.0 && mean.is_finite() {
        Poisson::new(mean).map(|d| d.sample(rng)).unwrap_or(0.0)
    } else {
        0.0
    }
}
