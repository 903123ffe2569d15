//! Fits the calibration of an emission model's Galactic components to the published F0-B1
//! background levels (`data/reference/panes2021_f0b1_background.csv`) and prints the
//! `[calibration]` table to paste into its file, with the levels it gives:
//! `cargo run --release --example calibrate_iem -- B1 [NSIDE]` (NSIDE 64 by default: the
//! band means change by < 0.5 % from NSIDE 64 to 256). The fit itself is
//! [`gammabench::patches::fidelity::calibrate_galactic`].
use gammabench::config;
use gammabench::patches::fidelity::calibrate_galactic;
use gammabench::sky::healpix::Grid;
use gammabench::sky::iem::IemModel;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or("B1".into());
    let nside: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let cfg = config::load_text("calibrate", "[catalog]\nfigures = false\n", &[])
        .unwrap()
        .remove(0)
        .config;
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let grid = Grid::new(nside);
    let centres = gammabench::patches::nside8_centres();
    let mut model = IemModel::load(&name).unwrap();
    model.calibration = None;
    let (cal, levels) = calibrate_galactic(
        &model,
        &grid,
        &inst,
        &centres,
        "Panes et al. 2021 F0-B1 test images: mean expected background counts per pixel in |b| \
         bands 0-2, 2-10, 10-30, 30-90 deg (data/reference/panes2021_f0b1_background.csv)",
    )
    .unwrap();
    let f = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("[calibration]");
    println!("reference = \"{}\"", cal.reference);
    println!("energies_mev = [{}]", f(&cal.energies_mev));
    println!("gas_scale = [{}]", f(&cal.gas_scale));
    println!(
        "inverse_compton_scale = [{}]",
        f(&cal.inverse_compton_scale)
    );
    println!("\n# band bin gas ic residual iso total published ratio");
    for l in levels {
        println!("# {l}");
    }
}
