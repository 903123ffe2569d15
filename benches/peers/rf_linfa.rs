//! A random forest built from linfa-trees decision trees, on gammabench's own rows and splits
//! (issue 21, item 4).
//!
//! The Rust peer of our CART forest (`src/classify/forest.rs`, variant `rf`) on the 4FGL-DR2
//! catalog track, next to scikit-learn's (`benches/peers/rf_sklearn.py`). It reads the same
//! table and the same splits and follows the same protocol as `rf_sklearn.py`:
//!
//! ```text
//! gammabench classify features --config configs/ci/classify.toml --set classify.variant=rf --out F
//! RAYON_NUM_THREADS=2 cargo run --release --example rf_linfa -- --features F
//! RAYON_NUM_THREADS=2 cargo run --release --example rf_linfa -- --features F --all-columns
//! ```
//!
//! Per split the forest is fitted on the `train` rows (missing cells imputed by the train rows'
//! per-column median, as numpy's `nanmedian`; a forest needs no standardisation) and scored on
//! the `test` rows: accuracy at p >= 0.5 and ROC AUC of p(class 1), where class 1 is the
//! minority class (PSR for AGN vs PSR), as in gammabench and `rf_sklearn.py`. The forest is
//! fitted twice with the same seed to check that the test probabilities are byte-identical.
//! Prints one JSON object with the same fields as `rf_sklearn.py` (accuracy and AUC as
//! fractions, mean and sample std over the splits; fit time per split of the second fit), plus
//! the SHA-256 of all test probabilities, to compare runs at different thread counts.
//!
//! The forest: `--n-trees` (200) trees, each a linfa-trees `DecisionTree` (Gini, no depth
//! limit, `min_weight_split` 2, `min_weight_leaf` 1, i.e. scikit-learn's defaults) fitted on a
//! bootstrap sample of n train rows drawn with replacement. Tree `t` of split `k` draws its
//! bootstrap and its columns from `gammabench::rng::stream(seed, "peer/rf_linfa", k << 32 | t)`
//! (ChaCha20), so the forest is the same at any thread count (rayon fits the trees in
//! parallel; `RAYON_NUM_THREADS` sets how many threads).
//!
//! What linfa-trees 0.8 lacks, and how this works around it:
//!
//! - No per-node feature subsampling (`max_features`): every node searches every column it is
//!   given. By default each *tree* therefore gets floor(sqrt(d)) columns drawn without
//!   replacement (a random-subspace forest, Ho 1998), not sqrt(d) columns per *node* as in
//!   Breiman's forest, ours and scikit-learn's. `--all-columns` gives each tree every column
//!   instead (plain bagging).
//! - No forest and no bootstrap: both are done here (the bootstrap rows are copied into each
//!   tree's dataset, so a row drawn twice counts twice).
//! - No class probabilities (`predict_proba`): a tree predicts the modal class of its leaf, so
//!   p(class 1) is the fraction of trees voting class 1 (scikit-learn averages the leaves'
//!   class fractions instead; with fully grown trees most leaves are pure and the two agree).
//! - `min_impurity_decrease` must be at least the float epsilon (default 1e-5; scikit-learn's
//!   default is 0): it is set to `f64::EPSILON`. Impurities are computed in f32.
//! - Split candidates between sorted neighbours closer than 1e-5 (absolute) are skipped as
//!   ties, and the neighbour is taken over all rows, not only the node's. The catalog features
//!   are logarithms of order 10, where this loses few candidates; a column of tiny values would
//!   need rescaling first.
//! - Class frequencies live in a `HashMap` with std's random hasher, and a leaf whose classes
//!   tie in weight predicts the first class in the map's (random) iteration order. Such leaves
//!   are rare with fully grown trees (only rows equal in every column of the tree can end in
//!   one), and the byte-identical refit is there to show whether one changed a vote.
//! - A tree sends a row left when `x <= split` while fitting but when `x < split` while
//!   predicting; splits are midpoints between distinct values, so only a test value equal to a
//!   midpoint is affected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gammabench::classify::metrics::roc_auc_binary;
use linfa::prelude::*;
use linfa_trees::{DecisionTree, SplitQuality};
use ndarray::{Array1, Array2, Axis};
use rand::Rng as _;
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A random forest of linfa-trees decision trees on the rows and splits of
/// `gammabench classify features`.
#[derive(Parser)]
struct Args {
    /// Output directory of `gammabench classify features` (features.csv, splits.csv).
    #[arg(long)]
    features: PathBuf,
    /// Trees per forest.
    #[arg(long, default_value_t = 200)]
    n_trees: usize,
    /// Experiment seed.
    #[arg(long, default_value_t = 20210901)]
    seed: u64,
    /// Give every tree all columns (plain bagging) instead of floor(sqrt(d)) random ones.
    #[arg(long)]
    all_columns: bool,
}

/// The rows of features.csv: source ids, class names, features (NaN where the cell is empty).
struct Table {
    ids: Vec<String>,
    classes: Vec<String>,
    x: Array2<f64>,
}

fn read_features(path: &Path) -> Result<Table> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    let d = r.headers()?.len().saturating_sub(2);
    let (mut ids, mut classes, mut cells) = (Vec::new(), Vec::new(), Vec::new());
    for rec in r.records() {
        let rec = rec?;
        if rec.len() != d + 2 {
            bail!(
                "{}: a row of {} cells, not {}",
                path.display(),
                rec.len(),
                d + 2
            );
        }
        ids.push(rec[0].to_string());
        classes.push(rec[1].to_string());
        for v in rec.iter().skip(2) {
            cells.push(if v.is_empty() {
                f64::NAN
            } else {
                v.parse::<f64>()
                    .with_context(|| format!("{}: cell {v:?}", path.display()))?
            });
        }
    }
    let x = Array2::from_shape_vec((ids.len(), d), cells)?;
    Ok(Table { ids, classes, x })
}

/// splits.csv: split -> role -> source ids, in file order.
type Splits = std::collections::BTreeMap<u64, HashMap<String, Vec<String>>>;

fn read_splits(path: &Path) -> Result<Splits> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    let mut splits = Splits::new();
    for rec in r.deserialize::<(u64, String, String)>() {
        let (k, id, role) = rec?;
        splits
            .entry(k)
            .or_default()
            .entry(role)
            .or_default()
            .push(id);
    }
    Ok(splits)
}

/// numpy's `nanmedian` of one column: the middle value, or the mean of the two middle ones.
fn nanmedian(col: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = col.filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// One fitted tree and the columns it was fitted on.
struct Tree {
    cols: Vec<usize>,
    tree: DecisionTree<f64, usize>,
}

/// Columns per tree: all of them, or floor(sqrt(d)) (scikit-learn's `max_features="sqrt"`).
fn columns_per_tree(d: usize, all: bool) -> usize {
    if all {
        d
    } else {
        (d as f64).sqrt().floor().max(1.0) as usize
    }
}

/// Fits the forest of split `split` on `(x, y)`.
fn fit_forest(x: &Array2<f64>, y: &[usize], split: u64, a: &Args) -> Result<Vec<Tree>> {
    let (n, d) = x.dim();
    let m = columns_per_tree(d, a.all_columns);
    let params = DecisionTree::params()
        .split_quality(SplitQuality::Gini)
        .max_depth(None)
        .min_weight_split(2.0)
        .min_weight_leaf(1.0)
        .min_impurity_decrease(f64::EPSILON)
        .check()?;
    (0..a.n_trees)
        .into_par_iter()
        .map(|t| {
            let mut rng = gammabench::rng::stream(a.seed, "peer/rf_linfa", split << 32 | t as u64);
            let mut cols = if m == d {
                (0..d).collect()
            } else {
                rand::seq::index::sample(&mut rng, d, m).into_vec()
            };
            cols.sort_unstable();
            let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let xb = x.select(Axis(0), &rows).select(Axis(1), &cols);
            let yb: Array1<usize> = rows.iter().map(|&i| y[i]).collect();
            let tree = params.fit(&Dataset::new(xb, yb))?;
            Ok(Tree { cols, tree })
        })
        .collect()
}

/// p(class 1) of each row of `x`: the fraction of trees voting class 1.
fn predict(forest: &[Tree], x: &Array2<f64>) -> Vec<f64> {
    let votes: Vec<Array1<usize>> = forest
        .par_iter()
        .map(|t| t.tree.predict(&x.select(Axis(1), &t.cols)))
        .collect();
    (0..x.nrows())
        .map(|i| votes.iter().filter(|v| v[i] == 1).count() as f64 / forest.len() as f64)
        .collect()
}

fn mean_std(v: &[f64]) -> serde_json::Value {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    json!({ "mean": mean, "std": std })
}

fn main() -> Result<()> {
    let a = Args::parse();
    let table = read_features(&a.features.join("features.csv"))?;
    let splits = read_splits(&a.features.join("splits.csv"))?;
    let d = table.x.ncols();

    // class 1 is the minority class of the task (PSR for agn_psr), as in gammabench
    let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in &table.classes {
        *count.entry(c).or_default() += 1;
    }
    let pos = count
        .iter()
        .min_by_key(|(_, n)| **n) // the first (sorted) name on ties, as Python's `min`
        .map(|(c, _)| c.to_string())
        .context("features.csv has no rows")?;
    let y: Vec<usize> = table
        .classes
        .iter()
        .map(|c| usize::from(*c == pos))
        .collect();
    let row: HashMap<&str, usize> = table
        .ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();

    let (mut acc, mut auc, mut fit_time) = (Vec::new(), Vec::new(), Vec::new());
    let mut identical = true;
    let mut digest = Sha256::new();
    for (&k, roles) in &splits {
        let idx = |role: &str| -> Result<Vec<usize>> {
            roles
                .get(role)
                .with_context(|| format!("split {k} has no {role} rows"))?
                .iter()
                .map(|s| {
                    row.get(s.as_str())
                        .copied()
                        .with_context(|| format!("split {k}: {s} is not in features.csv"))
                })
                .collect()
        };
        let (tr, te) = (idx("train")?, idx("test")?);
        let mut xt = table.x.select(Axis(0), &tr);
        let mut xs = table.x.select(Axis(0), &te);
        for j in 0..d {
            let med = nanmedian(xt.column(j).iter().copied());
            if med.is_nan() {
                bail!("split {k}: column {j} has no value in the train rows");
            }
            for v in xt.column_mut(j).iter_mut().chain(xs.column_mut(j)) {
                if v.is_nan() {
                    *v = med;
                }
            }
        }
        let yt: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
        let mut probs = Vec::new();
        let mut fit_s = 0.0;
        for _ in 0..2 {
            let t0 = Instant::now();
            let forest = fit_forest(&xt, &yt, k, &a)?;
            fit_s = t0.elapsed().as_secs_f64();
            probs.push(predict(&forest, &xs));
        }
        let bits = |p: &[f64]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        identical &= bits(&probs[0]) == bits(&probs[1]);
        let p = &probs[0];
        for v in p {
            digest.update(v.to_le_bytes());
        }
        let truth: Vec<bool> = te.iter().map(|&i| y[i] == 1).collect();
        let ok = p
            .iter()
            .zip(&truth)
            .filter(|(p, t)| (**p >= 0.5) == **t)
            .count();
        acc.push(ok as f64 / te.len() as f64);
        auc.push(roc_auc_binary(&truth, p));
        fit_time.push(fit_s);
    }

    let out = json!({
        "rows": table.ids.len(),
        "columns": d,
        "splits": splits.len(),
        "positive_class": pos,
        "linfa_trees": {
            "version": "0.8",
            "n_trees": a.n_trees,
            "threads": rayon::current_num_threads(),
            "columns": if a.all_columns { "all per tree (bagging)" } else { "floor(sqrt(d)) per tree (random subspace)" },
            "columns_per_tree": columns_per_tree(d, a.all_columns),
            "byte_identical_refit": identical,
            "probabilities_sha256": hex::encode(digest.finalize()),
            "accuracy": mean_std(&acc),
            "auc": mean_std(&auc),
            "fit_time_s": mean_std(&fit_time),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
