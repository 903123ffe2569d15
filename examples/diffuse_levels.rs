//! Per-component background levels of emission models at the 768 NSIDE-8 patch centres, against
//! the published F0-B1 levels: `cargo run --release --example diffuse_levels -- [NSIDE] [B1 B2 ...]`
use gammabench::config;
use gammabench::patches::fidelity::model_levels;
use gammabench::sky::healpix::Grid;
use gammabench::sky::iem::IemModel;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nside: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(64);
    let mut models: Vec<String> = args.iter().skip(1).cloned().collect();
    if models.is_empty() {
        models = vec!["B1".into(), "B2".into(), "B3".into()];
    }
    let cfg = config::load_text("levels", "[catalog]\nfigures = false\n", &[])
        .unwrap()
        .remove(0)
        .config;
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let grid = Grid::new(nside);
    let centres = gammabench::patches::nside8_centres();
    for m in models {
        let model = IemModel::load(&m).unwrap();
        println!("{m} (NSIDE {nside})\nband bin gas ic residual iso total published ratio");
        for l in model_levels(&model, &grid, &inst, &centres).unwrap() {
            println!("{l}");
        }
    }
}
