//! The `classify` verbs: cross-validation of every grid point, prediction with fold models.

use crate::config::Resolved;
use crate::error::Result;
use std::path::Path;

/// `classify cv`: every grid point's classifier under cross-validation into `out` (one
/// subdirectory per point), the summary table printed (and written when there are several).
pub fn cv(points: &[Resolved], out: &Path) -> Result<()> {
    let mut rows = Vec::new();
    for p in points {
        let dest = crate::config::point_dir(out, points, p);
        let r = super::run::run_cv(&p.config, &dest)?;
        if r.n_unc == 0 {
            log::info!("classify {}: wrote {}", r.variant, dest.display());
        } else {
            log::info!(
                "classify {}: unassociated {} -> {} AGN, {} PSR, {} unclassified; wrote {}",
                r.variant,
                r.n_unc,
                r.unc_counts[0],
                r.unc_counts[1],
                r.unc_counts[2],
                dest.display()
            );
        }
        rows.push((r.variant, r.summary));
    }
    let table = super::run::summary_table(&rows);
    if points.len() > 1 {
        crate::formats::atomic_write(&out.join("summary.md"), table.as_bytes())?;
    }
    println!("{table}");
    Ok(())
}

/// `classify predict`: the fold models of a `classify cv` run applied to a 4FGL-format CSV.
pub fn predict(model: &Path, input: &Path, use_glat: bool, out: &Path) -> Result<()> {
    let n = super::run::predict(model, input, use_glat, out)?;
    log::info!("classified {n} sources -> {}", out.display());
    Ok(())
}

/// `classify features`: the first grid point's labelled table and splits into `out`
/// ([`super::run::export_features`]).
pub fn features(points: &[Resolved], out: &Path) -> Result<()> {
    let p = points
        .first()
        .ok_or_else(|| crate::error::Error::Usage("classify features: no grid point".into()))?;
    let (n, d, k) = super::run::export_features(&p.config, out)?;
    log::info!(
        "classify features: {n} labelled sources x {d} columns, {k} splits -> {}",
        out.display()
    );
    Ok(())
}
