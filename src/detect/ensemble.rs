//! The deep ensemble of a cross-validated detector (issue 18): the K fold networks of
//! `train.folds = K` as one detector (`detect.ensemble = true`), as AutoSourceID's deep
//! ensembles (Stoppa et al. 2023, A&A 680, A109; Lakshminarayanan et al. 2017):
//!
//! * every member runs on the same inputs (the grid point's seeded Poisson draw, so the
//!   members differ only by their weights);
//! * the ensemble's map is the mean of the K members' maps (the source-probability channel,
//!   and Centroid-Net's vote vectors), and the grid point's head runs on it;
//! * per ensemble detection, the members' own detections (each member's head on its own
//!   map, then the same suppression) nearest to it in its patch within the scoring radius
//!   give its spread: `position_err_deg`, the sample standard deviation of the matched
//!   members' positions about their mean (`sqrt(sum |p_f - p_mean|^2 / (n - 1))`, deg), and
//!   `score_err`, the sample standard deviation of their scores; `n_members` members matched
//!   (`NaN` spreads below two).
//!
//! The operating threshold of the ensemble is the median of its members' thresholds, each
//! chosen on its own held-out fold: no patch of the training sky is held out from every
//! member, so the ensemble has no validation data of its own.

use super::neural::{NeuralDetector, PatchOutput};
use super::{Detection, Detector, FitReport, PatchSet};
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::Path;

/// The spread of the members about one ensemble detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Sample standard deviation of the matched members' positions about their mean, deg.
    pub position_err_deg: f64,
    /// Sample standard deviation of the matched members' scores.
    pub score_err: f64,
    /// Members with a detection within the matching radius.
    pub n_members: usize,
}

/// The K fold networks as one detector.
pub struct EnsembleDetector {
    members: Vec<NeuralDetector>,
    config: ExperimentConfig,
    name: String,
}

impl EnsembleDetector {
    /// Loads the members from their model directories; `config` is the grid point's (its
    /// head and `[detect.post]` apply to the ensemble's map).
    pub fn load(dirs: &[&Path], config: &ExperimentConfig) -> Result<Self> {
        if dirs.is_empty() {
            return Err(Error::Usage("an ensemble needs at least one member".into()));
        }
        let members = dirs
            .iter()
            .map(|d| NeuralDetector::load(d, config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_members(members, config))
    }

    /// An ensemble of loaded members (all with the same head config).
    pub fn from_members(members: Vec<NeuralDetector>, config: &ExperimentConfig) -> Self {
        Self {
            members,
            config: config.clone(),
            name: format!("{}_ensemble", config.detect.variant.as_str()),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The mean of the members' outputs per patch.
    fn mean_outputs(outs: &[Vec<PatchOutput>]) -> Vec<PatchOutput> {
        let k = outs.len() as f64;
        (0..outs[0].len())
            .into_par_iter()
            .map(|i| {
                let n = outs[0][i].score.len();
                let mut score = vec![0.0f64; n];
                for o in outs {
                    for (s, v) in score.iter_mut().zip(&o[i].score) {
                        *s += v;
                    }
                }
                for s in &mut score {
                    *s /= k;
                }
                let vectors = outs[0][i].vectors.as_ref().map(|_| {
                    let mut acc = vec![[0.0f64; 2]; n];
                    for o in outs {
                        if let Some(v) = &o[i].vectors {
                            for (a, b) in acc.iter_mut().zip(v) {
                                a[0] += b[0] as f64;
                                a[1] += b[1] as f64;
                            }
                        }
                    }
                    acc.iter()
                        .map(|a| [(a[0] / k) as f32, (a[1] / k) as f32])
                        .collect()
                });
                PatchOutput { score, vectors }
            })
            .collect()
    }

    /// Detections of the ensemble after `suppress(min_separation_px)` (before any
    /// threshold), with each one's [`Spread`] over the members (matched within
    /// `match_radius_px` in the same patch).
    pub fn detect_with_spread(
        &self,
        patches: &PatchSet,
        min_separation_px: f64,
        match_radius_px: f64,
        progress: &indicatif::ProgressBar,
    ) -> Result<(Vec<Detection>, Vec<Spread>)> {
        progress.set_length(((self.members.len() + 1) * patches.len()) as u64);
        let batch = self.config.train.batch_size;
        let outs: Vec<Vec<PatchOutput>> = self
            .members
            .iter()
            .map(|m| m.outputs_with_progress(patches, batch, progress))
            .collect::<Result<_>>()?;
        self.detect_from_outputs(patches, &outs, min_separation_px, match_radius_px, progress)
    }

    /// [`Self::detect_with_spread`] on the members' maps already computed (`outs[f][i]`:
    /// member `f` on patch `i`, e.g. the fold networks' `infer` stages): the head of the
    /// ensemble's config on the mean map, and each member's head on its own map for the
    /// spread. Needs no weights: the members may be [`NeuralDetector::new`].
    pub fn detect_from_outputs(
        &self,
        patches: &PatchSet,
        outs: &[Vec<PatchOutput>],
        min_separation_px: f64,
        match_radius_px: f64,
        progress: &indicatif::ProgressBar,
    ) -> Result<(Vec<Detection>, Vec<Spread>)> {
        if outs.is_empty() {
            return Err(Error::Usage(
                "an ensemble needs at least one member's maps".into(),
            ));
        }
        if let Some(o) = outs.iter().find(|o| o.len() != patches.len()) {
            return Err(Error::Internal(format!(
                "a member has maps of {} patches, the patches directory {}",
                o.len(),
                patches.len()
            )));
        }
        let mean = Self::mean_outputs(outs);
        let size = patches.size();
        let head = &self.members[0];
        let run_head = |maps: &[PatchOutput], name: &str| -> Vec<Detection> {
            let per: Vec<Vec<Detection>> = maps
                .par_iter()
                .enumerate()
                .map(|(i, o)| {
                    let peaks = head.head(o, size, patches.patch_ids[i]);
                    super::to_detections(patches, i, &peaks, name)
                })
                .collect();
            super::post::suppress(per.into_iter().flatten().collect(), min_separation_px)
        };
        let dets = run_head(&mean, &self.name);
        progress.inc(patches.len() as u64);
        let member_dets: Vec<Vec<Detection>> = outs.iter().map(|o| run_head(o, "member")).collect();
        let pixel_deg = crate::projection::PatchGeometry::default().pixel_deg();
        let spreads = dets
            .iter()
            .map(|d| spread_of(d, &member_dets, match_radius_px, pixel_deg))
            .collect();
        Ok((dets, spreads))
    }
}

/// The members' spread about detection `d` (see the module doc).
fn spread_of(d: &Detection, members: &[Vec<Detection>], radius_px: f64, pixel_deg: f64) -> Spread {
    let mut found: Vec<(f64, f64, f64)> = Vec::new();
    for m in members {
        let best = m
            .iter()
            .filter(|e| e.patch_id == d.patch_id)
            .map(|e| ((e.x_pix - d.x_pix).hypot(e.y_pix - d.y_pix), e))
            .filter(|(r, _)| *r <= radius_px)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, e)) = best {
            found.push((e.x_pix, e.y_pix, e.score));
        }
    }
    let n = found.len();
    if n < 2 {
        return Spread {
            position_err_deg: f64::NAN,
            score_err: f64::NAN,
            n_members: n,
        };
    }
    let nf = n as f64;
    let (mx, my, ms) = found.iter().fold((0.0, 0.0, 0.0), |a, f| {
        (a.0 + f.0 / nf, a.1 + f.1 / nf, a.2 + f.2 / nf)
    });
    let pos2: f64 = found
        .iter()
        .map(|f| (f.0 - mx).powi(2) + (f.1 - my).powi(2))
        .sum();
    let sc2: f64 = found.iter().map(|f| (f.2 - ms).powi(2)).sum();
    Spread {
        position_err_deg: (pos2 / (nf - 1.0)).sqrt() * pixel_deg,
        score_err: (sc2 / (nf - 1.0)).sqrt(),
        n_members: n,
    }
}

impl Detector for EnsembleDetector {
    fn name(&self) -> &str {
        &self.name
    }

    fn fit(
        &mut self,
        _train: &PatchSet,
        _out: &Path,
        _progress: &indicatif::ProgressBar,
    ) -> Result<FitReport> {
        Err(Error::Usage(
            "an ensemble is not trained: its members are the fold networks of train.folds".into(),
        ))
    }

    fn detect_with_progress(
        &self,
        patches: &PatchSet,
        progress: &indicatif::ProgressBar,
    ) -> Result<Vec<Detection>> {
        Ok(self.detect_with_spread(patches, 0.0, 0.0, progress)?.0)
    }

    fn save(&self, _dir: &Path) -> Result<()> {
        Err(Error::Usage(
            "an ensemble is saved as its members (the fold networks' train stages)".into(),
        ))
    }
}

/// The median of the members' operating thresholds (`-inf` entries, keep-all, count as
/// such; the mean of the two middle values for an even count).
pub fn median_threshold(thresholds: &[f64]) -> f64 {
    let mut t: Vec<f64> = thresholds.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    let n = t.len();
    if n == 0 {
        return f64::NEG_INFINITY;
    }
    if n % 2 == 1 {
        t[n / 2]
    } else {
        let (a, b) = (t[n / 2 - 1], t[n / 2]);
        if a.is_finite() && b.is_finite() {
            (a + b) / 2.0
        } else {
            a.min(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_sample_std_of_the_matched_members() {
        let d = Detection::at(1, 10.0, 10.0, 5.0);
        let members = vec![
            vec![
                Detection::at(1, 11.0, 10.0, 4.0),
                Detection::at(2, 10.0, 10.0, 9.0),
            ],
            vec![Detection::at(1, 9.0, 10.0, 6.0)],
            vec![Detection::at(1, 30.0, 10.0, 6.0)], // outside the radius
        ];
        let s = spread_of(&d, &members, 3.0, 0.5);
        assert_eq!(s.n_members, 2);
        // positions 11 and 9 about 10: sqrt((1 + 1) / 1) px = sqrt(2) * 0.5 deg
        assert!((s.position_err_deg - 2f64.sqrt() * 0.5).abs() < 1e-12);
        // scores 4 and 6: std sqrt(2)
        assert!((s.score_err - 2f64.sqrt()).abs() < 1e-12);
        let lone = spread_of(&d, &members[..1], 3.0, 0.5);
        assert_eq!(lone.n_members, 1);
        assert!(lone.position_err_deg.is_nan());
    }

    /// Issue 18: "the ensemble of K identical networks equals the single network".
    #[test]
    fn an_ensemble_of_identical_networks_detects_what_the_network_does() {
        use burn::prelude::*;
        let cfg = crate::config::load_text(
            "t.toml",
            "seed = 3\n[detect]\nvariant = \"unek\"\n[detect.unet]\nwidths = [4, 8]\n\
             [detect.unek]\nscore_threshold = 0.3\nk_max = 6\n",
            &[],
        )
        .unwrap()
        .remove(0)
        .config;
        let probe = NeuralDetector::new(&cfg).unwrap();
        let device = Device::flex();
        device.seed(7);
        let model = probe.unet().init(&device);
        let norm = crate::train::data::Normaliser {
            kind: crate::config::Normalisation::Log1p,
            mean: vec![],
            std: vec![],
        };
        // three patches: a flat background and a bright blob at a different place in each
        let nb = cfg.energy.n_bins();
        let (n, size) = (3usize, 64usize);
        let mut data = vec![0.5f32; n * size * size * nb];
        for p in 0..n {
            let (cx, cy) = (16.0 + 12.0 * p as f32, 40.0 - 8.0 * p as f32);
            for y in 0..size {
                for x in 0..size {
                    let r2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    for b in 0..nb {
                        data[((p * size + y) * size + x) * nb + b] += 200.0 * (-r2 / 8.0).exp();
                    }
                }
            }
        }
        let total = crate::patches::set::Cube::from_vec([n, size, size, nb], data);
        let patches = PatchSet {
            patch_ids: vec![0, 1, 2],
            centres_deg: vec![(0.0, 30.0), (90.0, -30.0), (180.0, 60.0)],
            diffuse: crate::patches::set::Cube::zeros(total.shape()),
            total,
            truth: vec![Vec::new(); n],
            observed: false,
        };
        let single = NeuralDetector::from_parts(&cfg, model.clone(), norm.clone()).unwrap();
        let alone = super::super::post::suppress(single.detect(&patches).unwrap(), 3.0);
        assert!(!alone.is_empty(), "the probe network detects something");
        let members = (0..3)
            .map(|_| NeuralDetector::from_parts(&cfg, model.clone(), norm.clone()).unwrap())
            .collect();
        let ens = EnsembleDetector::from_members(members, &cfg);
        let (dets, spreads) = ens
            .detect_with_spread(&patches, 3.0, 3.0, &indicatif::ProgressBar::hidden())
            .unwrap();
        assert_eq!(dets.len(), alone.len());
        for ((a, b), s) in alone.iter().zip(&dets).zip(&spreads) {
            assert_eq!(a.patch_id, b.patch_id);
            assert!((a.x_pix - b.x_pix).abs() < 1e-9 && (a.y_pix - b.y_pix).abs() < 1e-9);
            assert!((a.score - b.score).abs() < 1e-9 * a.score.abs().max(1.0));
            assert_eq!(s.n_members, 3);
            assert!(s.position_err_deg.abs() < 1e-9 && s.score_err.abs() < 1e-9);
        }
    }

    #[test]
    fn median_threshold_of_odd_and_even_counts() {
        assert_eq!(median_threshold(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_threshold(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(
            median_threshold(&[f64::NEG_INFINITY, 1.0]),
            f64::NEG_INFINITY
        );
    }
}
