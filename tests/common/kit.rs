//! A tiny challenge for the tests: a patches-stage directory (6 patches, 3 components, truth
//! with unusual digits), submissions made from its truth, and the helpers every challenge
//! test shares: [`Kit`] (a built challenge with a smoke-scale training set, its teams),
//! [`Kit::serve`] (a `gammabench serve` child on a free port), [`build`], and the starter
//! kit's Python ([`python3`], [`starter`]).
#![allow(dead_code)]

use gammabench::npy;
use gammabench::projection::PatchGeometry;
use std::path::Path;

/// A tiny patches-stage directory: 6 patches, 3 components, truth with unusual digits;
/// returns the truth values as written (none may appear in a public answer).
pub fn patches_dir(dir: &Path) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let g = PatchGeometry::default();
    let n = 6;
    let centres: Vec<(f64, f64)> = (0..n)
        .map(|i| (i as f64 * 7.0 + 3.0, 25.0 - 9.0 * i as f64))
        .collect();
    let mut pc = String::from("patch_id,glon_deg,glat_deg\n");
    for (i, (l, b)) in centres.iter().enumerate() {
        pc.push_str(&format!("{},{l},{b}\n", 100 + i));
    }
    std::fs::write(dir.join("patches.csv"), pc).unwrap();
    let mut truth = String::from(
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,counts_bin0,counts_bin1,counts_bin2,counts_bin3,counts_bin4,snr_c,sbr_c\n",
    );
    let mut values = Vec::new();
    let size = 64 * 64 * 5;
    let mut agn = vec![0f32; n * size];
    let mut psr = vec![0f32; n * size];
    let diffuse: Vec<f32> = (0..n * size).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
    for (p, &(l0, b0)) in centres.iter().enumerate() {
        for s in 0..8 {
            let (x, y): (f64, f64) = (r.random_range(3.0..60.0), r.random_range(3.0..60.0));
            let (l, b) = g.pix_to_sky(l0, b0, x, y);
            let flux: f64 = 10f64.powf(r.random_range(-10.5..-8.7));
            let f10 = flux * r.random_range(0.05..0.2);
            let is_psr = s % 2 == 1;
            let row = vec![
                format!("{x}"),
                format!("{y}"),
                format!("{l}"),
                format!("{b}"),
                format!("{flux}"),
                format!("{f10}"),
            ];
            truth.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},1,2,3,4,5,{},{}\n",
                100 + p,
                p * 100 + s,
                if is_psr { "PSR" } else { "AGN" },
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                flux * 1e10,
                flux * 3e9
            ));
            values.extend(row);
            let (xi, yi) = (x.round() as usize, y.round() as usize);
            let target = if is_psr { &mut psr } else { &mut agn };
            for k in 0..5 {
                target[p * size + (yi * 64 + xi) * 5 + k] += (flux * 1e11) as f32;
            }
        }
    }
    std::fs::write(dir.join("truth.csv"), truth).unwrap();
    for (name, data) in [("diffuse", &diffuse), ("agn", &agn), ("psr", &psr)] {
        npy::write_f32(
            &dir.join(format!("patches_{name}.npy")),
            &[n, 64, 64, 5],
            data,
        )
        .unwrap();
    }
    values
}

/// A submission detecting a share of the truth sources, plus junk rows.
pub fn submission(path: &Path, truth: &Path, keep_every: usize, junk: usize) {
    let text = std::fs::read_to_string(truth).unwrap();
    let mut s = String::from("patch_id,x_pix,y_pix,score\n");
    for (i, l) in text.lines().skip(1).enumerate() {
        if i % keep_every != 0 {
            continue;
        }
        let f: Vec<&str> = l.split(',').collect();
        let x: f64 = f[3].parse().unwrap();
        let y: f64 = f[4].parse().unwrap();
        s.push_str(&format!("{},{},{},0.9\n", f[0], x + 0.3, y - 0.2));
    }
    for j in 0..junk {
        s.push_str(&format!("100,{}.25,1.75,0.1\n", j % 60));
    }
    std::fs::write(path, s).unwrap();
}

// ---- a built challenge, its teams and a served instance (tests/serve.rs, tests/challenge.rs)

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gammabench");
/// The secret seed of every test build (must never appear in a participant-facing answer).
pub const SECRET: &str = "731337000042";
/// The training sky of a test build: the smoke sky's scale (NSIDE 64, bright sources only,
/// as `configs/smoke/sky.toml`), so a build takes about a second.
pub const SMOKE_TRAIN_SKY: [&str; 4] = [
    "sky.nside=64",
    "catalog.threshold_erg_cm2_s=5e-12",
    "catalog.figures=false",
    "sky.figures=false",
];

/// A built challenge in a temporary directory: the tiny test sky of [`patches_dir`], its
/// public and private bundles, the database path (created by the first `team add`).
pub struct Kit {
    pub dir: tempfile::TempDir,
    pub challenge: PathBuf,
    pub db: PathBuf,
    /// The test truth's values as written (none may appear in a public answer or file).
    pub truth_values: Vec<String>,
}

impl Kit {
    /// A kit with a small training set (8 patches of the smoke-scale training sky).
    pub fn new() -> Kit {
        Kit::with_training(8)
    }

    /// A kit with `train_patches` training patches (0: none).
    pub fn with_training(train_patches: usize) -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let pd = dir.path().join("patches");
        std::fs::create_dir_all(&pd).unwrap();
        let truth_values = patches_dir(&pd);
        let challenge = dir.path().join("challenge");
        let mut c = Command::new(BIN);
        c.args(["-q", "challenge", "build", "--patches-dir"])
            .arg(&pd)
            .arg("--out")
            .arg(&challenge)
            .args(["--set", &format!("challenge.secret_seed={SECRET}")])
            .args(["--set", &format!("challenge.train_patches={train_patches}")]);
        for s in SMOKE_TRAIN_SKY {
            c.args(["--set", s]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let db = dir.path().join("db/challenge.sqlite");
        Kit {
            dir,
            challenge,
            db,
            truth_values,
        }
    }

    /// The public bundle.
    pub fn public(&self) -> PathBuf {
        self.challenge.join("public")
    }

    /// The private truth of the test patches.
    pub fn truth(&self) -> PathBuf {
        self.challenge.join("private/truth.csv")
    }

    /// A submission file `name` detecting every `keep_every`-th source plus `junk` rows.
    pub fn sub(&self, name: &str, keep_every: usize, junk: usize) -> PathBuf {
        let p = self.dir.path().join(name);
        submission(&p, &self.truth(), keep_every, junk);
        p
    }

    /// `challenge team add`: the printed token.
    pub fn team(&self, name: &str, admin: bool) -> String {
        let mut c = Command::new(BIN);
        c.args(["-q", "challenge", "team", "add", name, "--db"])
            .arg(&self.db);
        if admin {
            c.arg("--admin");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// `n` teams named `team 0` ... `team n-1`: their tokens.
    pub fn teams(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|t| self.team(&format!("team {t}"), false))
            .collect()
    }

    /// `gammabench serve` on a free port of 127.0.0.1 with `--set` overrides `sets`.
    pub fn serve(&self, sets: &[&str]) -> Served {
        let mut c = Command::new(BIN);
        c.args(["-q", "serve", "--addr", "127.0.0.1:0", "--challenge"])
            .arg(&self.challenge)
            .arg("--db")
            .arg(&self.db);
        for s in sets {
            c.args(["--set", s]);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Served { child, url }
    }
}

/// A `gammabench serve` child on a free port; killed when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Served {
    /// `host:port`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `python3` on PATH, or `None` with the reason printed (the caller skips).
pub fn python3(test: &str) -> Option<String> {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some("python3".into())
    } else {
        eprintln!("SKIPPED {test}: no python3 on PATH (the starter kit needs Python >= 3.8)");
        None
    }
}

/// A file of the starter kit, `challenge/starter/<name>`.
pub fn starter(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("challenge/starter")
        .join(name)
}

/// `challenge build --patches-dir pd --out out` with the smoke-scale training sky and the
/// `--set` overrides `sets` (the secret seed among them, or not).
pub fn build(pd: &std::path::Path, out: &std::path::Path, sets: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["-q", "challenge", "build", "--patches-dir"])
        .arg(pd)
        .arg("--out")
        .arg(out);
    for s in SMOKE_TRAIN_SKY.iter().chain(sets) {
        c.args(["--set", s]);
    }
    c.output().unwrap()
}
