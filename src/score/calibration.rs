//! The scorer's side of the detection-score calibration ([`crate::calibration`]): which
//! detections a matching calls true.

pub use crate::calibration::*;

/// The true-positive indicator of every detection a matching labels TP or FP (duplicates,
/// which count neither way, left out): `(detection index, is TP)`.
pub fn labels(m: &super::matching::Matching) -> Vec<(usize, bool)> {
    use super::matching::Status;
    let mut out: Vec<(usize, bool)> = m
        .rows
        .iter()
        .filter_map(|r| match (r.det, r.status) {
            (Some(i), Status::TP) => Some((i, true)),
            (Some(i), Status::FP) => Some((i, false)),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out
}
