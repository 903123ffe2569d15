//! SMOTE: synthetic minority over-sampling (Chawla et al. 2002, JAIR 16, 321).
//!
//! For each synthetic point of class c: pick a seed item x_i of class c (cycling through the
//! class in a shuffled order), one of its k nearest same-class neighbours x_nn (Euclidean, in
//! standardised feature space), and a gap `u ~ U(0, 1)`; the new point is
//! `x_new = x_i + u (x_nn - x_i)`, a point on the segment between two same-class items.
//! Every class is brought up to the size of the largest class ([`oversample`]), or to a fixed
//! number of rows per class ([`oversample_to`], Butter et al.'s "full" augmentation, where a
//! class already larger keeps its rows). Applied to training rows only
//! (never to validation or test rows). Draws come from the stream
//! `(seed, "classify/smote/<class>", j)` for synthetic point j.

use super::Matrix;
use crate::rng;
use rand::Rng as _;
use rand::seq::SliceRandom;

/// Returns `(x, y)` with synthetic rows appended so every class has as many rows as the
/// largest one.
pub fn oversample(x: &Matrix, y: &[usize], k: usize, seed: u64) -> (Matrix, Vec<usize>) {
    oversample_to(x, y, k, seed, None)
}

/// Returns `(x, y)` with synthetic rows appended so every class has at least `per_class`
/// rows (`None`: as many as the largest class).
pub fn oversample_to(
    x: &Matrix,
    y: &[usize],
    k: usize,
    seed: u64,
    per_class: Option<usize>,
) -> (Matrix, Vec<usize>) {
    let n_classes = y.iter().copied().max().map_or(0, |m| m + 1);
    let mut counts = vec![0usize; n_classes];
    for t in y {
        counts[*t] += 1;
    }
    let target = per_class.unwrap_or_else(|| counts.iter().copied().max().unwrap_or(0));
    let mut out = x.clone();
    let mut yo = y.to_vec();
    for (c, &count) in counts.iter().enumerate() {
        let members: Vec<usize> = (0..x.n).filter(|i| y[*i] == c).collect();
        let need = target.saturating_sub(count);
        if need == 0 || members.len() < 2 {
            continue;
        }
        let kk = k.min(members.len() - 1).max(1);
        // k nearest same-class neighbours of every member
        let nn: Vec<Vec<usize>> = members
            .iter()
            .map(|&i| {
                let mut d: Vec<(f64, usize)> = members
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| {
                        let s: f64 = x
                            .row(i)
                            .iter()
                            .zip(x.row(j))
                            .map(|(a, b)| ((a - b) as f64).powi(2))
                            .sum();
                        (s, j)
                    })
                    .collect();
                d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                d.into_iter().take(kk).map(|(_, j)| j).collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.shuffle(&mut rng::stream(
            seed,
            &format!("classify/smote/{c}/order"),
            0,
        ));
        for j in 0..need {
            let mut r = rng::stream(seed, &format!("classify/smote/{c}"), j as u64);
            let m = order[j % members.len()];
            let a = members[m];
            let b = nn[m][r.random_range(0..nn[m].len())];
            let u: f32 = r.random();
            for t in 0..x.d {
                let (va, vb) = (x.at(a, t), x.at(b, t));
                out.data.push(va + u * (vb - va));
            }
            out.n += 1;
            yo.push(c);
        }
    }
    (out, yo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_points_lie_on_same_class_segments() {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..40 {
            rows.push(vec![i as f32 * 0.1, (i as f32 * 0.37).sin()]);
            y.push(0);
        }
        for i in 0..6 {
            rows.push(vec![10.0 + i as f32, 5.0 + (i * i) as f32 * 0.5]);
            y.push(1);
        }
        let x = Matrix::from_rows(&rows);
        let (xo, yo) = oversample(&x, &y, 3, 9);
        assert_eq!(yo.iter().filter(|t| **t == 1).count(), 40);
        assert_eq!(xo.n, 80);
        let minority: Vec<usize> = (0..x.n).filter(|i| y[*i] == 1).collect();
        for s in x.n..xo.n {
            let p = xo.row(s);
            // some pair (a, b) of minority items has p = a + u (b - a), 0 <= u <= 1
            let on_segment = minority.iter().any(|&a| {
                minority.iter().any(|&b| {
                    if a == b {
                        return false;
                    }
                    let (ra, rb) = (x.row(a), x.row(b));
                    let u = (p[0] - ra[0]) / (rb[0] - ra[0]);
                    (-1e-5..=1.0 + 1e-5).contains(&u)
                        && (ra[1] + u * (rb[1] - ra[1]) - p[1]).abs() < 1e-4
                })
            });
            assert!(on_segment, "synthetic point {p:?} off every segment");
        }
        assert_eq!(oversample(&x, &y, 3, 9), (xo, yo));
    }
}
