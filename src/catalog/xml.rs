//! Export as a Fermi Science Tools XML source model (the format of gtlike, gtmodel and
//! fermipy `roi.load_xml`): one `PointSource` per mock source with a `LogParabola` or
//! `PLSuperExpCutoff2` spectrum and a `SkyDirFunction` at (RA, DEC).
//!
//! Science Tools conventions: `LogParabola` is `norm (E/Eb)^-(alpha + beta ln(E/Eb))`;
//! `PLSuperExpCutoff2` is `Prefactor (E/Scale)^Index1 exp(-Expfactor E^Index2)`
//! (`src/PowerLawSuperExpCutoff2.cxx` of fermi-lat/Likelihood: there is no `Scale^Index2`
//! term), while 4FGL's `K (E/E0)^-Gamma exp(a (E0^b - E^b))` has K the flux density at the
//! pivot. So `Prefactor = K exp(a E0^b)`, `Index1 = -Gamma`, `Scale = E0`, `Expfactor = a`
//! (MeV^-Index2) and `Index2 = b`; both forms are then the same function of E. Values are
//! written with a power-of-ten `scale` so that `value` is of order one.

use super::spectrum::Spectrum;
use super::table::Source;
use std::io::Write;

fn split_scale(x: f64) -> (f64, f64) {
    if x == 0.0 || !x.is_finite() {
        return (x, 1.0);
    }
    let scale = 10f64.powf(x.abs().log10().floor());
    (x / scale, scale)
}

fn param(
    w: &mut dyn Write,
    name: &str,
    value: f64,
    free: bool,
    lo: f64,
    hi: f64,
) -> std::io::Result<()> {
    writeln!(
        w,
        "      <parameter name=\"{name}\" value=\"{value:.10}\" scale=\"1\" min=\"{lo}\" max=\"{hi}\" free=\"{}\"/>",
        u8::from(free)
    )
}

fn scaled(w: &mut dyn Write, name: &str, x: f64, free: bool) -> std::io::Result<()> {
    let (v, s) = split_scale(x);
    writeln!(
        w,
        "      <parameter name=\"{name}\" value=\"{v:.10}\" scale=\"{s:e}\" min=\"1e-5\" max=\"1e5\" free=\"{}\"/>",
        u8::from(free)
    )
}

/// Writes the source library.
pub fn write(w: &mut dyn Write, sources: &[Source]) -> std::io::Result<()> {
    use rayon::prelude::*;
    writeln!(w, "<?xml version=\"1.0\" ?>")?;
    writeln!(w, "<source_library title=\"gammabench mock catalog\">")?;
    // Sources are formatted in parallel chunks and written in order.
    let chunks: Vec<std::io::Result<Vec<u8>>> = sources
        .par_chunks(2048)
        .map(|chunk| {
            let mut buf = Vec::with_capacity(chunk.len() * 1200);
            for s in chunk {
                write_source(&mut buf, s)?;
            }
            Ok(buf)
        })
        .collect();
    for c in chunks {
        w.write_all(&c?)?;
    }
    writeln!(w, "</source_library>")
}

fn write_source(w: &mut dyn Write, s: &Source) -> std::io::Result<()> {
    {
        let name = format!("GB_{}_{:07}", s.class.as_str(), s.source_id);
        writeln!(w, "  <source name=\"{name}\" type=\"PointSource\">")?;
        match s.spectrum {
            Spectrum::LogParabola {
                k,
                e0_mev,
                alpha,
                beta,
            } => {
                writeln!(w, "    <spectrum type=\"LogParabola\">")?;
                scaled(w, "norm", k, true)?;
                param(w, "alpha", alpha, true, -5.0, 10.0)?;
                param(w, "beta", beta, true, -5.0, 10.0)?;
                param(w, "Eb", e0_mev, false, 10.0, 1e6)?;
            }
            Spectrum::PlSuperExpCutoff2 {
                k,
                e0_mev,
                gamma,
                a,
                b,
            } => {
                writeln!(w, "    <spectrum type=\"PLSuperExpCutoff2\">")?;
                // the Science Tools' form has no Scale^Index2 term: fold exp(a E0^b) in
                scaled(w, "Prefactor", k * (a * e0_mev.powf(b)).exp(), true)?;
                param(w, "Index1", -gamma, true, -5.0, 5.0)?;
                param(w, "Scale", e0_mev, false, 10.0, 1e6)?;
                scaled(w, "Expfactor", a, true)?;
                param(w, "Index2", b, false, 0.0, 5.0)?;
            }
        }
        writeln!(w, "    </spectrum>")?;
        writeln!(w, "    <spatialModel type=\"SkyDirFunction\">")?;
        param(w, "RA", s.ra_deg, false, -360.0, 360.0)?;
        param(w, "DEC", s.dec_deg, false, -90.0, 90.0)?;
        writeln!(w, "    </spatialModel>")?;
        writeln!(w, "  </source>")?;
    }
    Ok(())
}
