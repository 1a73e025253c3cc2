//! Encoder (and prompt→mask) speed of the Rust port next to the PyTorch reference,
//! measured in the same run. Not a test.
//!
//! Run: `cargo bench --bench encoder` (or `--profile dev` to reuse the dev build).
//! `BRAINSAM_BENCH_ITERS=n` multiplies the (small) default iteration counts;
//! `BRAINSAM_BENCH_NO_REFERENCE=1` skips the Python reference;
//! `BRAINSAM_BENCH_FILTER=text` keeps the rows whose label contains `text`. CUDA and bf16 rows
//! are added when a GPU is available.

#[path = "support/reference.rs"]
mod reference;

use std::time::Instant;

use brainsam::model::{Prompts, Sam, SamConfig};
use tch::{nn, Device, Kind, Tensor};

struct Row {
    label: String,
    config: SamConfig,
    what: &'static str,
    iters: usize,
    device: Device,
    bf16: bool,
}

fn time_rust(row: &Row) -> f64 {
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(row.device);
    let sam = Sam::new(&vs.root(), &row.config).expect("valid config");
    if row.bf16 {
        vs.bfloat16();
    }
    let size = row.config.input_size;
    let sync = || {
        if let Device::Cuda(i) = row.device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    tch::no_grad(|| {
        let x = Tensor::randn([1, 3, size, size], (Kind::Float, row.device));
        let run: Box<dyn Fn()> = if row.what == "encoder" {
            Box::new(|| {
                let _ = sam.encode_images(&x).unwrap();
            })
        } else {
            let emb = sam.encode_images(&x).unwrap();
            let s = size as f32;
            Box::new(move || {
                let prompts = Prompts::from_points(
                    Tensor::from_slice(&[s * 0.4, s * 0.6]).view([1, 1, 2]),
                    Tensor::from_slice(&[1.0f32]).view([1, 1]),
                );
                let _ = sam.decode(&emb, &prompts).unwrap();
            })
        };
        if row.iters > 1 || row.device.is_cuda() {
            run(); // warm-up (skipped for the single slow CPU iteration)
        }
        sync();
        let start = Instant::now();
        for _ in 0..row.iters {
            run();
        }
        sync();
        start.elapsed().as_secs_f64() * 1000.0 / row.iters as f64
    })
}

/// Times every row with the Python reference in one process; NaN where unavailable.
fn time_reference(rows: &[Row]) -> Vec<f64> {
    let jobs: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            reference::job(
                &row.config.to_json(),
                row.what,
                row.iters,
                row.device.is_cuda(),
                row.bf16,
            )
        })
        .collect();
    reference::times(&jobs)
}

fn main() {
    let scale: usize = std::env::var("BRAINSAM_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rows = Vec::new();
    let mut devices = vec![(Device::Cpu, false)];
    if tch::Cuda::is_available() {
        devices.push((Device::Cuda(0), false));
        devices.push((Device::Cuda(0), true));
    }
    for &(device, bf16) in &devices {
        let gpu = device.is_cuda();
        let dev = match (gpu, bf16) {
            (false, _) => "cpu fp32",
            (true, false) => "cuda fp32",
            (true, true) => "cuda bf16",
        };
        for (name, config) in [("vit_b", SamConfig::vit_b()), ("small", SamConfig::small())] {
            for size in [256, 512, 1024] {
                let iters = match (gpu, size) {
                    (true, _) => 10,
                    (false, 1024) if name == "vit_b" => 1,
                    (false, 1024) => 2,
                    (false, 512) => 2,
                    _ => 3,
                } * scale;
                rows.push(Row {
                    label: format!("{dev:<9} {name:<5} encoder {size:>4}"),
                    config: config.clone().with_input_size(size),
                    what: "encoder",
                    iters,
                    device,
                    bf16,
                });
            }
        }
        rows.push(Row {
            label: format!("{dev:<9} vit_b prompt→13 masks 512"),
            config: SamConfig::vit_b().with_input_size(512).with_num_classes(12),
            what: "decoder",
            iters: 20 * scale,
            device,
            bf16,
        });
    }
    if let Ok(filter) = std::env::var("BRAINSAM_BENCH_FILTER") {
        rows.retain(|row| row.label.contains(&filter));
    }
    println!(
        "threads: {} (shared machine: numbers are noisy)",
        tch::get_num_threads()
    );
    let reference = time_reference(&rows);
    println!(
        "{:<38} {:>11} {:>13} {:>7}",
        "row (batch 1)", "rust ms", "pytorch ms", "ratio"
    );
    for (row, reference_ms) in rows.iter().zip(reference) {
        let ours = time_rust(row);
        println!(
            "{:<38} {:>11.1} {:>13.1} {:>7.2}",
            row.label,
            ours,
            reference_ms,
            ours / reference_ms
        );
    }
}
