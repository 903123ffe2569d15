//! Plans (a DAG of stage nodes, deduplicated by content hash) and their execution.

use crate::error::{Error, Result};
use crate::store::{StageKey, StageOutput, Store};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// What a node does when it runs: compute (or reuse) its stage output.
pub type StageFn =
    Arc<dyn Fn(&Store, bool, &indicatif::ProgressBar) -> Result<StageOutput> + Send + Sync>;

/// One stage of a plan.
#[derive(Clone)]
pub struct Node {
    /// Stage name (`catalog`, `sky`, ...).
    pub stage: String,
    /// Human label: the grid point it belongs to.
    pub label: String,
    /// Content key.
    pub key: StageKey,
    /// Hashes of the nodes this one needs.
    pub deps: Vec<String>,
    /// The computation.
    pub run: StageFn,
}

impl Node {
    pub fn hash(&self) -> String {
        self.key.hash()
    }
}

/// A row of the printed plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanRow {
    pub level: usize,
    pub stage: String,
    pub hash: String,
    pub label: String,
    pub cached: bool,
    pub deps: Vec<String>,
}

/// A DAG of stages in insertion (hence topological) order, one node per content hash.
#[derive(Clone, Default)]
pub struct Plan {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
}

impl Plan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node unless a node with the same hash exists (then labels are merged); returns
    /// its hash. Dependencies must have been added first.
    pub fn add(&mut self, node: Node) -> Result<String> {
        let h = node.hash();
        for d in &node.deps {
            if !self.index.contains_key(d) {
                return Err(Error::Internal(format!(
                    "stage {} depends on unknown stage {d}",
                    node.stage
                )));
            }
        }
        if let Some(&i) = self.index.get(&h) {
            let n = &mut self.nodes[i];
            if !n.label.split(" | ").any(|l| l == node.label) {
                n.label = format!("{} | {}", n.label, node.label);
            }
        } else {
            self.index.insert(h.clone(), self.nodes.len());
            self.nodes.push(node);
        }
        Ok(h)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node with a given hash (or unique hash prefix of at least 8 characters).
    pub fn find(&self, hash: &str) -> Option<&Node> {
        if let Some(&i) = self.index.get(hash) {
            return Some(&self.nodes[i]);
        }
        let hits: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| hash.len() >= 8 && n.hash().starts_with(hash))
            .collect();
        (hits.len() == 1).then(|| hits[0])
    }

    /// Dependency level of every node (0: no dependencies).
    pub fn levels(&self) -> Vec<usize> {
        let mut level = vec![0usize; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            level[i] = n
                .deps
                .iter()
                .map(|d| level[self.index[d]] + 1)
                .max()
                .unwrap_or(0);
        }
        level
    }

    /// For every node, the number of stages on the longest chain from it to a final stage
    /// (itself included).
    pub fn remaining_depth(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let mut depth = vec![1usize; n];
        for i in (0..n).rev() {
            for d in &self.nodes[i].deps {
                let j = self.index[d];
                depth[j] = depth[j].max(depth[i] + 1);
            }
        }
        depth
    }

    /// The plan as rows, with whether each stage is already in the store.
    pub fn describe(&self, store: &Store) -> Vec<PlanRow> {
        let levels = self.levels();
        let mut rows: Vec<PlanRow> = self
            .nodes
            .iter()
            .zip(&levels)
            .map(|(n, &level)| PlanRow {
                level,
                stage: n.stage.clone(),
                hash: n.hash(),
                label: n.label.clone(),
                cached: store.lookup(&n.key).is_some(),
                deps: n.deps.clone(),
            })
            .collect();
        rows.sort_by_key(|r| r.level);
        rows
    }

    /// Runs every node in dependency order, at most `jobs` at a time.
    ///
    /// On the first failure no new stage starts; running ones finish (their outputs are kept)
    /// and the error is returned. Returns the outputs by hash.
    pub fn execute(
        &self,
        store: &Store,
        jobs: usize,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<BTreeMap<String, StageOutput>> {
        let n = self.nodes.len();
        let jobs = jobs.max(1);
        let mut done: HashSet<usize> = HashSet::new();
        let mut running: HashSet<usize> = HashSet::new();
        let mut outputs = BTreeMap::new();
        let mut first_error: Option<Error> = None;
        let started = Instant::now();
        progress.set_length(n as u64);
        // Ready stages start longest-remaining-chain first (critical path), ties in plan
        // order, so a long train -> detect -> score chain is not queued behind short leaves.
        let depth = self.remaining_depth();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| depth[*b].cmp(&depth[*a]).then(a.cmp(b)));
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<StageOutput>, f64)>();
        std::thread::scope(|scope| {
            loop {
                if first_error.is_none() {
                    for &i in &order {
                        if running.len() >= jobs {
                            break;
                        }
                        if done.contains(&i) || running.contains(&i) {
                            continue;
                        }
                        let node = &self.nodes[i];
                        if node.deps.iter().all(|d| done.contains(&self.index[d])) {
                            running.insert(i);
                            let tx = tx.clone();
                            let run = node.run.clone();
                            let bar = crate::progress::bar(&format!(
                                "{} {}",
                                node.stage,
                                &node.hash()[..8]
                            ));
                            scope.spawn(move || {
                                let t = Instant::now();
                                let r = run(store, force, &bar);
                                bar.finish_and_clear();
                                let _ = tx.send((i, r, t.elapsed().as_secs_f64()));
                            });
                        }
                    }
                    let names: Vec<String> = running
                        .iter()
                        .map(|&i| format!("{} {}", self.nodes[i].stage, &self.nodes[i].hash()[..8]))
                        .collect();
                    progress.set_message(names.join(", "));
                }
                if running.is_empty() {
                    break;
                }
                let (i, r, secs) = rx.recv().expect("a running stage always reports");
                running.remove(&i);
                let node = &self.nodes[i];
                match r {
                    Ok(out) => {
                        log::info!(
                            "{} {} [{}]: {} in {:.1} s",
                            node.stage,
                            &out.manifest.hash[..12],
                            node.label,
                            if out.reused { "cached" } else { "computed" },
                            secs
                        );
                        outputs.insert(node.hash(), out);
                        done.insert(i);
                        progress.inc(1);
                    }
                    Err(e) => {
                        log::error!("{} [{}] failed: {e}", node.stage, node.label);
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
        });
        progress.finish_and_clear();
        log::info!(
            "plan: {}/{} stages done in {:.1} s",
            done.len(),
            n,
            started.elapsed().as_secs_f64()
        );
        match first_error {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    }

    /// Runs only the node `hash`; its dependencies must already be in the store (the way a
    /// cluster job array runs one stage per task).
    pub fn execute_one(&self, store: &Store, hash: &str, force: bool) -> Result<StageOutput> {
        let node = self.find(hash).ok_or_else(|| {
            Error::Usage(format!(
                "no stage with hash {hash} in this plan (see --dry-run)"
            ))
        })?;
        let missing: Vec<&String> = node
            .deps
            .iter()
            .filter(|d| store.lookup(&self.nodes[self.index[*d]].key).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Usage(format!(
                "stage {} {} needs stages not yet in the store: {}",
                node.stage,
                &hash[..hash.len().min(12)],
                missing
                    .iter()
                    .map(|s| &s[..12])
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        (node.run)(store, force, &indicatif::ProgressBar::hidden())
    }
}

/// Renders plan rows as an aligned text table.
pub fn format_plan(rows: &[PlanRow]) -> String {
    let mut out = String::new();
    let cached = rows.iter().filter(|r| r.cached).count();
    out.push_str(&format!(
        "{} stages, {} cached, {} to run\n",
        rows.len(),
        cached,
        rows.len() - cached
    ));
    out.push_str(&format!(
        "{:<5} {:<10} {:<14} {:<8} {}\n",
        "level", "stage", "hash", "status", "grid point"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:<5} {:<10} {:<14} {:<8} {}\n",
            r.level,
            r.stage,
            &r.hash[..12],
            if r.cached { "cached" } else { "to run" },
            r.label
        ));
    }
    out
}
