//! Training throughput (slices per second) on synthetic phantom slices, CPU and CUDA
//! when available. `cargo bench --bench train [-- MODEL INPUT BATCH ITERATIONS]`
//! (defaults: small 256 8 10; on CUDA also with bf16 autocast).

use std::time::Instant;

use brainsam::labels::LabelScheme;
use brainsam::train::{Subject, TrainConfig, TrainOptions, Trainer};
use brainsam::volume::{Affine, Grid, Volume};

/// A 2 mm phantom head with two FreeSurfer-coded blobs.
fn phantom(name: &str) -> Subject {
    let dim = 88usize;
    let spacing = 2.0;
    let mut affine: Affine = [[0.0; 4]; 4];
    for (axis, row) in affine.iter_mut().take(3).enumerate() {
        row[axis] = spacing;
        row[3] = -spacing * (dim as f64 - 1.0) / 2.0;
    }
    affine[3][3] = 1.0;
    let grid = Grid::from_ras_affine([dim; 3], affine).unwrap();
    let mut image = vec![0.0f32; grid.len()];
    let mut labels = vec![0.0f32; grid.len()];
    for k in 0..dim {
        for j in 0..dim {
            for i in 0..dim {
                let p = grid.voxel_to_ras_point([i as f64, j as f64, k as f64]);
                let n = grid.linear_index(i, j, k);
                if (p[0] / 70.0).powi(2) + (p[1] / 82.0).powi(2) + (p[2] / 75.0).powi(2) <= 1.0 {
                    image[n] = 100.0;
                }
                for (code, x) in [(10.0, -15.0), (49.0, 15.0)] {
                    let d2 = (p[0] - x).powi(2) + p[1].powi(2) + (p[2] + 10.0).powi(2);
                    if d2 <= 144.0 {
                        image[n] = 140.0;
                        labels[n] = code;
                    }
                }
            }
        }
    }
    Subject {
        name: name.into(),
        source: "phantom".into(),
        image: Some(Volume::new(grid.clone(), image).unwrap()),
        label_codes: Volume::new(grid, labels).unwrap(),
        scheme: LabelScheme::FreeSurfer,
        held_out: None,
    }
}

fn measure(model: &str, input: i64, batch: usize, iterations: u64, device: &str, mixed: bool) {
    let dir = std::env::temp_dir().join(format!("brainsam-bench-train-{}", std::process::id()));
    let mut config = TrainConfig::default();
    config.model.config = model.into();
    config.model.mode = "full".into();
    config.model.input_size = Some(input);
    config.run.output_dir = dir.clone();
    config.run.batch_size = batch;
    config.run.device = device.into();
    config.run.mixed_precision = mixed;
    config.run.validate_every = 0;
    config.run.checkpoint_every = 0;
    // One warm-up iteration first (allocations, CUDA kernels), then the timed run.
    config.run.iterations = 1;
    let mut warm =
        Trainer::with_subjects(config.clone(), vec![phantom("a")], TrainOptions::default())
            .unwrap();
    warm.run(&mut |_| true).unwrap();
    config.run.iterations = iterations;
    let mut trainer =
        Trainer::with_subjects(config, vec![phantom("a")], TrainOptions::default()).unwrap();
    let started = Instant::now();
    let report = trainer.run(&mut |_| true).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "train {model} input {input} batch {batch} on {device}{}: {:.2} slices/s ({:.1} ms/iteration, {} iterations incl. final save)",
        if mixed { " bf16" } else { "" },
        report.slices_per_second,
        seconds * 1000.0 / iterations as f64,
        iterations
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let model = args.first().map_or("small", String::as_str).to_string();
    let input: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let batch: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let iterations: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    measure(&model, input, batch, iterations, "cpu", false);
    if tch::Cuda::is_available() {
        measure(&model, input, batch, iterations * 5, "cuda", false);
        measure(&model, input, batch, iterations * 5, "cuda", true);
    }
}
