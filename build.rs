//! Records the git commit in the binary (for run manifests), and every seed written in the
//! shipped configs (`configs/**/*.toml`) so that `challenge build` can refuse a sky anyone
//! could regenerate with the open code.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=configs");
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        && out.status.success()
    {
        let c = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("cargo:rustc-env=GAMMABENCH_GIT_COMMIT={c}");
    }
    let mut seeds = std::collections::BTreeSet::new();
    collect_seeds(Path::new("configs"), &mut seeds);
    let list: Vec<String> = seeds.iter().map(|s| format!("{s}")).collect();
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let code = format!(
        "/// Every integer given to a `...seed = ` key in the shipped `configs/`.\n\
         pub const SHIPPED_SEEDS: &[u64] = &[{}];\n",
        list.join(", ")
    );
    std::fs::write(Path::new(&out).join("shipped_seeds.rs"), code).expect("write OUT_DIR");
}

/// Integers of `seed = N` / `seed = [N, M]` lines (any key ending in `seed`) under `dir`.
fn collect_seeds(dir: &Path, seeds: &mut std::collections::BTreeSet<u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            collect_seeds(&p, seeds);
        } else if p.extension().is_some_and(|x| x == "toml") {
            println!("cargo:rerun-if-changed={}", p.display());
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                if !key.trim().ends_with("seed") {
                    continue;
                }
                for tok in value.split(|c: char| !c.is_ascii_digit()) {
                    if let Ok(v) = tok.parse::<u64>() {
                        seeds.insert(v);
                    }
                }
            }
        }
    }
}
