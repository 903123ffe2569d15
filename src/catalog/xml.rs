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
use std::collections::HashMap;
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

/// One point source read from a Science Tools XML model.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlSource {
    pub name: String,
    pub class: super::SourceClass,
    pub spectrum: Spectrum,
    pub ra_deg: f64,
    pub dec_deg: f64,
}

/// Reads the point sources of a Fermi Science Tools XML source model (gtlike, gtmodel,
/// fermipy `roi.write_xml`; e.g. the published mock catalogs `MOCK_4FGL_agn_400.xml`).
///
/// Spectra, with each parameter's `value * scale`:
/// * `LogParabola` (`norm, alpha, beta, Eb`) as is;
/// * `PowerLaw` (`Prefactor, Index, Scale`): a LogParabola with `alpha = -Index`, `beta = 0`;
/// * `PLSuperExpCutoff2` (`Prefactor, Index1, Scale, Expfactor` or `InvCutoff, Index2`):
///   the Science Tools' `Prefactor (E/Scale)^Index1 exp(-Expfactor E^Index2)` (with
///   `InvCutoff`: `exp(-(E InvCutoff)^Index2)`, i.e. `Expfactor = InvCutoff^Index2`) is the
///   4FGL form with `Gamma = -Index1`, `a = Expfactor`, `b = Index2`, `E0 = Scale` and
///   `K = Prefactor exp(-a E0^b)`.
///
/// The class is `PSR` when the source name starts with `PSR` or the spectrum is a
/// `PLSuperExpCutoff*`, `AGN` otherwise. Diffuse sources are skipped. Errors name the file,
/// line and column.
pub fn read(path: &std::path::Path) -> crate::error::Result<Vec<XmlSource>> {
    use crate::error::Error;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        let p = e.pos();
        Error::Data {
            file: path.display().to_string(),
            line: p.row as usize,
            column: p.col as usize,
            field: "-".into(),
            message: format!("not well-formed XML: {e}"),
        }
    })?;
    let err = |node: roxmltree::Node, field: &str, message: String| {
        let p = doc.text_pos_at(node.range().start);
        Error::Data {
            file: path.display().to_string(),
            line: p.row as usize,
            column: p.col as usize,
            field: field.into(),
            message,
        }
    };
    let mut out = Vec::new();
    for src in doc
        .descendants()
        .filter(|n| n.has_tag_name("source") && n.attribute("type") == Some("PointSource"))
    {
        let name = src.attribute("name").unwrap_or("").trim().to_string();
        let params = |tag: &str| -> crate::error::Result<(String, HashMap<String, f64>)> {
            let node = src
                .children()
                .find(|n| n.has_tag_name(tag))
                .ok_or_else(|| err(src, tag, format!("source `{name}` has no <{tag}>")))?;
            let mut p = HashMap::new();
            for par in node.children().filter(|n| n.has_tag_name("parameter")) {
                let pname = par.attribute("name").unwrap_or("").to_string();
                let num = |key: &str, default: Option<f64>| -> crate::error::Result<f64> {
                    match par.attribute(key) {
                        Some(v) => v.trim().parse::<f64>().map_err(|_| {
                            err(par, &pname, format!("{key} = `{v}` is not a number"))
                        }),
                        None => default.ok_or_else(|| {
                            err(par, &pname, format!("parameter `{pname}` has no {key}"))
                        }),
                    }
                };
                let v = num("value", None)? * num("scale", Some(1.0))?;
                if !v.is_finite() {
                    return Err(err(par, &pname, format!("`{pname}` is not finite")));
                }
                p.insert(pname, v);
            }
            Ok((node.attribute("type").unwrap_or("").to_string(), p))
        };
        let (kind, p) = params("spectrum")?;
        let spec_node = src
            .children()
            .find(|n| n.has_tag_name("spectrum"))
            .unwrap_or(src);
        let get = |k: &str| -> crate::error::Result<f64> {
            p.get(k).copied().ok_or_else(|| {
                err(
                    spec_node,
                    k,
                    format!("{kind} of `{name}` has no parameter `{k}`"),
                )
            })
        };
        let spectrum = match kind.as_str() {
            "LogParabola" => Spectrum::LogParabola {
                k: get("norm")?,
                e0_mev: get("Eb")?,
                alpha: get("alpha")?,
                beta: get("beta")?,
            },
            "PowerLaw" => Spectrum::LogParabola {
                k: get("Prefactor")?,
                e0_mev: get("Scale")?,
                alpha: -get("Index")?,
                beta: 0.0,
            },
            "PLSuperExpCutoff2" => {
                let b = get("Index2")?;
                let a = match p.get("Expfactor") {
                    Some(&a) => a,
                    None => get("InvCutoff")?.powf(b),
                };
                let e0 = get("Scale")?;
                Spectrum::PlSuperExpCutoff2 {
                    k: get("Prefactor")? * (-a * e0.powf(b)).exp(),
                    e0_mev: e0,
                    gamma: -get("Index1")?,
                    a,
                    b,
                }
            }
            other => {
                return Err(err(
                    spec_node,
                    "type",
                    format!(
                        "spectrum type `{other}` of `{name}` is not supported \
                         (LogParabola, PowerLaw, PLSuperExpCutoff2)"
                    ),
                ));
            }
        };
        let (sk, sp) = params("spatialModel")?;
        if sk != "SkyDirFunction" {
            continue;
        }
        let pos = |k: &str| {
            sp.get(k)
                .copied()
                .ok_or_else(|| err(src, k, format!("`{name}` has no {k}")))
        };
        let (ra_deg, dec_deg) = (pos("RA")?, pos("DEC")?);
        if !(-90.0..=90.0).contains(&dec_deg) {
            return Err(err(src, "DEC", format!("DEC = {dec_deg} of `{name}`")));
        }
        let class = if name.to_ascii_uppercase().starts_with("PSR")
            || matches!(spectrum, Spectrum::PlSuperExpCutoff2 { .. })
        {
            super::SourceClass::Psr
        } else {
            super::SourceClass::Agn
        };
        out.push(XmlSource {
            name,
            class,
            spectrum,
            ra_deg: ra_deg.rem_euclid(360.0),
            dec_deg,
        });
    }
    Ok(out)
}
