//! Records the git commit in the binary (for run manifests).
fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        && out.status.success()
    {
        let c = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("cargo:rustc-env=GAMMABENCH_GIT_COMMIT={c}");
    }
}
