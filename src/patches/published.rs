//! The published test-set layout of Panes et al. 2021 as an input and an output.
//!
//! The authors' training and blind test sets (Zenodo 10.5281/zenodo.4587205; F0-B1 is the
//! paper's test set) are directories of `test_image_N.npy` files, each of shape
//! `(3, 64, 64, 5)`: the noiseless expected counts `[component, row, col, bin]` with
//! component 0 the diffuse emission (interstellar model + isotropic), 1 the AGN, 2 the pulsars;
//! row 0 the lowest latitude and column 0 the highest longitude (healpy `cartview`, the
//! layout of [`crate::projection`]). Beside them a truth table `test.csv`:
//! `filename,xmin,xmax,ymin,ymax,class,lon_c,lat_c,flux_1000,lon_p,lat_p,catalog,flux_10000`
//! (`lon_c, lat_c` the patch centre, `lon_p, lat_p` the true position, class 0 AGN, 1 PSR).
//!
//! * [`import`] turns such a directory into a gammabench patches directory, the input of
//!   every detector (`gammabench detect`) and of the scorer: `patches_{diffuse,agn,psr}.npy`
//!   (`[patch, y, x, bin]`), `masks.npy`, `patches.csv` (patch id = N), `truth.csv` (sub-pixel
//!   position from `lon_p, lat_p` through the patch projection) and `truth_published.csv` (the
//!   published table itself, for the legacy scorer). SNR_c and SBR_c are computed from the
//!   components as the published scorer computed them: at the box-centre pixel
//!   `((ymin+ymax)//2, (xmin+xmax)//2)`, summed over bins, with S the source's class component
//!   and B the other two: `SNR_c = S / sqrt(S + B)`, `SBR_c = S / B` (0 and 0 where the
//!   diffuse component is 0).
//! * [`export`] writes a gammabench patches directory in the published layout: one
//!   `test_image_<patch_id>.npy` (float32) per patch and a `test.csv` whose boxes are
//!   `xmin = max(0, x - 2)`, `xmax = min(63, x + 3)` around the nearest pixel `x` (so the
//!   published scorer's `int((xmin + xmax) / 2)` gives back that pixel away from the edges).

use super::truth::{patch_number, read_truth};
use crate::error::{Error, Result};
use crate::formats::{atomic_write, atomic_write_with, fmt_f64};
use crate::projection::PatchGeometry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The published scorer's `(snr_center_test, sbr_center_test)` of a true source of `class`
/// from the components (diffuse, AGN, PSR) at its box-centre pixel, summed over bins: S the
/// class's component, B the other two, `S / sqrt(S + B)` and `S / B`; `(0, 0)` where the
/// diffuse component is 0 or the class is neither AGN nor PSR.
pub fn snr_sbr_test(iem: f64, agn: f64, psr: f64, class: &str) -> (f64, f64) {
    let (s, b) = match class {
        "AGN" => (agn, psr + iem),
        "PSR" => (psr, agn + iem),
        _ => return (0.0, 0.0),
    };
    published_ratio(iem, s, b)
}

/// The published scorer's `(snr_center_pred, sbr_center_pred)` at a predicted pixel: S the
/// larger of the AGN and PSR components (AGN on ties), B the rest.
pub fn snr_sbr_pred(iem: f64, agn: f64, psr: f64) -> (f64, f64) {
    if agn >= psr {
        published_ratio(iem, agn, psr + iem)
    } else {
        published_ratio(iem, psr, agn + iem)
    }
}

fn published_ratio(iem: f64, s: f64, b: f64) -> (f64, f64) {
    if iem > 0.0 {
        (s / (s + b).sqrt(), s / b)
    } else {
        (0.0, 0.0)
    }
}

/// What [`import`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub n_patches: usize,
    pub n_truth_rows: usize,
    pub n_sources: usize,
    pub n_bins: usize,
    pub size: usize,
}

/// Column names of the published truth table.
pub use super::PUBLISHED_HEADER;

fn images_in(dir: &Path) -> Result<BTreeMap<i64, PathBuf>> {
    let mut out = BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if !name.ends_with(".npy") || !name.contains("_image_") {
            continue;
        }
        if let Some(n) = patch_number(&name)
            && let Some(old) = out.insert(n, e.path())
        {
            return Err(Error::bad_file(
                e.path(),
                format!("patch number {n} also in {}", old.display()),
            ));
        }
    }
    Ok(out)
}

/// Refuses to replace a non-empty directory unless `force`; returns a fresh staging
/// directory beside `out` (renamed into place when everything is written).
fn staging(out: &Path, force: bool) -> Result<PathBuf> {
    if out.exists() {
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .next()
            .is_some();
        if non_empty && !force {
            return Err(Error::Usage(format!(
                "{} exists and is not empty; give --force to replace it",
                out.display()
            )));
        }
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "patches".into());
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(tmp)
}

fn commit(tmp: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::rename(tmp, out).map_err(|e| Error::io(out, e))
}

/// Imports a published test set (see the module docs). `truth` defaults to `test.csv` (or
/// `test.csv.gz`) in `from`; `centres` (a `patches.csv`) gives the centres of images that
/// have no row in the truth table.
pub fn import(
    from: &Path,
    truth: Option<&Path>,
    centres: Option<&Path>,
    out: &Path,
    force: bool,
) -> Result<ImportReport> {
    let truth_path = match truth {
        Some(t) => t.to_path_buf(),
        None => ["test.csv", "test.csv.gz"]
            .iter()
            .map(|n| from.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| {
                Error::bad_file(from, "no test.csv (give --truth FILE for the truth table)")
            })?,
    };
    let t = read_truth(&truth_path, None)?;
    if t.rows
        .iter()
        .any(|r| r.catalog.is_nan() && r.patch_lon_deg.is_nan())
    {
        return Err(Error::bad_file(
            &truth_path,
            "not a published truth table (expected the columns filename,xmin,...,lon_c,lat_c,...)",
        ));
    }
    let mut centre_of = t.patches.clone();
    if let Some(c) = centres {
        for (k, v) in crate::patches::truth::read_patches(c)? {
            centre_of.entry(k).or_insert(v);
        }
    }
    let images = images_in(from)?;
    if images.is_empty() {
        return Err(Error::bad_file(
            from,
            "no *_image_N.npy files (the published layout)",
        ));
    }
    if let Some(r) = t.rows.iter().find(|r| !images.contains_key(&r.patch_id)) {
        return Err(Error::bad_file(
            &truth_path,
            format!(
                "truth rows refer to image {} but {} has no such file",
                r.patch_id,
                from.display()
            ),
        ));
    }
    let ids: Vec<i64> = images.keys().copied().collect();
    if let Some(missing) = ids.iter().find(|n| !centre_of.contains_key(n)) {
        return Err(Error::bad_file(
            &images[missing],
            "has no patch centre: no truth row names it; give --centres patches.csv \
             (patch_id,glon_deg,glat_deg)",
        ));
    }
    // the images
    let mut shape: Option<Vec<usize>> = None;
    let mut comps: [Vec<f32>; 3] = Default::default();
    for n in &ids {
        let path = &images[n];
        let (sh, v) = crate::npy::read_float_as_f32(path)?;
        if sh.len() != 4 || sh[0] != 3 || sh[1] != sh[2] || sh[1] < 2 {
            return Err(Error::bad_file(
                path,
                format!("shape {sh:?}: expected (3, size, size, bins)"),
            ));
        }
        if let Some(s0) = &shape
            && *s0 != sh
        {
            return Err(Error::bad_file(
                path,
                format!("shape {sh:?} differs from the first image's {s0:?}"),
            ));
        }
        let per = sh[1] * sh[2] * sh[3];
        for (c, comp) in comps.iter_mut().enumerate() {
            comp.extend_from_slice(&v[c * per..(c + 1) * per]);
        }
        shape = Some(sh);
    }
    let sh = shape.unwrap_or_default();
    let (size, k) = (sh[1], sh[3]);
    let per = size * size * k;
    let index: BTreeMap<i64, usize> = ids.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let geom = PatchGeometry {
        size,
        ..PatchGeometry::default()
    };
    // truth rows: projection position, published-rule SNR_c / SBR_c
    struct Row {
        patch_id: i64,
        source_id: i64,
        class: String,
        x: f64,
        y: f64,
        l: f64,
        b: f64,
        s1: f64,
        s10: f64,
        snr: f64,
        sbr: f64,
    }
    let mut rows = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        let p = index[&r.patch_id];
        let (l0, b0) = centre_of[&r.patch_id];
        let (x, y) = geom
            .sky_to_pix(l0, b0, r.glon_deg, r.glat_deg)
            .unwrap_or((r.x_pix, r.y_pix));
        let (px, py) = (
            (r.x_pix.max(0.0) as usize).min(size - 1),
            (r.y_pix.max(0.0) as usize).min(size - 1),
        );
        let sum = |c: usize| -> f64 {
            let at = p * per + (py * size + px) * k;
            comps[c][at..at + k].iter().map(|&v| v as f64).sum()
        };
        let (snr, sbr) = snr_sbr_test(sum(0), sum(1), sum(2), &r.class);
        rows.push(Row {
            patch_id: r.patch_id,
            source_id: r.source_id,
            class: r.class.clone(),
            x,
            y,
            l: r.glon_deg,
            b: r.glat_deg,
            s1: r.flux_1000_ph_cm2_s,
            s10: r.flux_10000_ph_cm2_s,
            snr,
            sbr,
        });
    }
    let tmp = staging(out, force)?;
    let np = ids.len();
    for (c, name) in crate::sky::COMPONENTS.iter().enumerate() {
        crate::npy::write(
            &tmp.join(format!("patches_{name}.npy")),
            &[np, size, size, k],
            &comps[c],
        )?;
    }
    let r2 = 2.5f64.powi(2);
    let mut masks = vec![0u8; np * size * size];
    for r in &rows {
        let p = index[&r.patch_id];
        for y in 0..size {
            for x in 0..size {
                if (x as f64 - r.x).powi(2) + (y as f64 - r.y).powi(2) <= r2 {
                    masks[(p * size + y) * size + x] = 1;
                }
            }
        }
    }
    crate::npy::write(&tmp.join("masks.npy"), &[np, size, size], &masks)?;
    atomic_write_with(&tmp.join("patches.csv"), |w| {
        writeln!(w, "patch_id,glon_deg,glat_deg")?;
        for n in &ids {
            let (l, b) = centre_of[n];
            writeln!(w, "{n},{},{}", fmt_f64(l), fmt_f64(b))?;
        }
        Ok(())
    })?;
    atomic_write_with(&tmp.join("truth.csv"), |w| {
        let header = super::truth_header(k);
        writeln!(w, "{}", header.join(","))?;
        for r in &rows {
            let counts = vec![""; k].join(",");
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{counts},{},{}",
                r.patch_id,
                r.source_id,
                r.class,
                fmt_f64(r.x),
                fmt_f64(r.y),
                fmt_f64(r.l),
                fmt_f64(r.b),
                fmt_f64(r.s1),
                fmt_f64(r.s10),
                fmt_f64(r.snr),
                fmt_f64(r.sbr)
            )?;
        }
        Ok(())
    })?;
    // the published table itself, decompressed, for `score detections --mode legacy`
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut crate::formats::csv_reader(&truth_path)?.into_inner(),
        &mut raw,
    )
    .map_err(|e| Error::io(&truth_path, e))?;
    atomic_write(&tmp.join("truth_published.csv"), &raw)?;
    let n_sources = {
        let mut s: Vec<i64> = rows.iter().map(|r| r.source_id).collect();
        s.sort_unstable();
        s.dedup();
        s.len()
    };
    let report = ImportReport {
        n_patches: np,
        n_truth_rows: rows.len(),
        n_sources,
        n_bins: k,
        size,
    };
    let manifest = serde_json::json!({
        "imported_from": from.display().to_string(),
        "layout": "panes2021 (test_image_N.npy (3, size, size, bins) + test.csv)",
        "truth": truth_path.display().to_string(),
        "truth_sha256": crate::formats::sha256_hex(&raw),
        "report": report,
        "snr_rule": "published: class component vs the other two at ((ymin+ymax)//2, (xmin+xmax)//2)",
    });
    let mut bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    bytes.push(b'\n');
    atomic_write(&tmp.join("import.json"), &bytes)?;
    commit(&tmp, out)?;
    Ok(report)
}

/// Exports a gammabench patches directory in the published layout (see the module docs);
/// returns the number of images written.
pub fn export(patches_dir: &Path, out: &Path, force: bool) -> Result<usize> {
    let mut comps = Vec::new();
    for c in crate::sky::COMPONENTS {
        comps.push(crate::patches::set::Cube::read_npy(
            &patches_dir.join(format!("patches_{c}.npy")),
        )?);
    }
    for (c, name) in comps.iter().zip(crate::sky::COMPONENTS).skip(1) {
        if c.shape() != comps[0].shape() {
            return Err(Error::bad_file(
                patches_dir.join(format!("patches_{name}.npy")),
                format!("shape {:?} differs from {:?}", c.shape(), comps[0].shape()),
            ));
        }
    }
    let (patch_ids, _) = crate::patches::set::read_patch_list(
        &patches_dir.join("patches.csv"),
        comps[0].shape()[0],
    )?;
    let truth = read_truth(
        &patches_dir.join("truth.csv"),
        Some(&patches_dir.join("patches.csv")),
    )?;
    let [n, size, _, k] = comps[0].shape();
    let tmp = staging(out, force)?;
    let per = size * size * k;
    for (i, id) in patch_ids.iter().enumerate() {
        let mut v = Vec::with_capacity(3 * per);
        for c in &comps {
            v.extend_from_slice(c.patch(i));
        }
        crate::npy::write(
            &tmp.join(format!("test_image_{id}.npy")),
            &[3, size, size, k],
            &v,
        )?;
    }
    let hi = size as i64 - 1;
    atomic_write_with(&tmp.join("test.csv"), |w| {
        writeln!(w, "{}", PUBLISHED_HEADER.join(","))?;
        for r in &truth.rows {
            let px = |v: f64| (v.round() as i64).clamp(0, hi);
            let (x, y) = (px(r.x_pix), px(r.y_pix));
            let class = match r.class.as_str() {
                "AGN" => 0,
                "PSR" => 1,
                _ => -1,
            };
            writeln!(
                w,
                "test_image_{}.npy,{},{},{},{},{class},{},{},{},{},{},0,{}",
                r.patch_id,
                (x - 2).max(0),
                (x + 3).min(hi),
                (y - 2).max(0),
                (y + 3).min(hi),
                fmt_f64(r.patch_lon_deg),
                fmt_f64(r.patch_lat_deg),
                fmt_f64(r.flux_1000_ph_cm2_s),
                fmt_f64(r.glon_deg),
                fmt_f64(r.glat_deg),
                fmt_f64(r.flux_10000_ph_cm2_s)
            )?;
        }
        Ok(())
    })?;
    commit(&tmp, out)?;
    Ok(n)
}
