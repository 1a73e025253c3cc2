//! Inference speed and memory of BrainSAM next to the PyTorch reference (PyPI
//! segment-anything) measured in the same run on the same device. Not a test.
//!
//! One table: for vit_b at 512 and 1024 input and the bundled default model, in fp32
//! and bf16 — image-encoder ms per slice at batch 1, 8 and 32; whole-volume automatic
//! segmentation of a synthetic 1 mm head (set-up, encoding, decoding, mapping back and
//! clean-up; without mirror averaging, so that both sides do one pass); point prompt →
//! updated label volume with a cached embedding; peak CUDA memory of each. Rows run on
//! the GPU when there is one; a smaller CPU table follows (`BRAINSAM_BENCH_CPU=0` skips
//! it, `=1` forces the full CPU set).
//!
//! The reference runs fp32 as published (eager) and bf16 with autocast and
//! scaled-dot-product attention (`benches/speed_reference.py`); ratios are ours divided
//! by the reference's in the same precision (below 1: we are faster). vit_b rows use
//! random weights (speed does not depend on them); the default model is the real one.
//!
//! `cargo bench --bench speed`. `BRAINSAM_BENCH_ITERS=n` multiplies iteration counts,
//! `BRAINSAM_BENCH_NO_REFERENCE=1` skips the reference, `BRAINSAM_BENCH_FILTER=text`
//! keeps the rows whose label contains `text`, `BRAINSAM_BENCH_MARKDOWN=file` also
//! writes the table as Markdown. For a GPU machine without Rust: `scripts/gpu-bench`.

#[path = "support/head.rs"]
mod head;
#[path = "support/prompt.rs"]
mod prompt;
#[path = "support/reference.rs"]
mod reference;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use brainsam::model::{set_image_encoder_kind, Sam, SamConfig};
use brainsam::runtime::{cuda_memory, empty_cuda_cache, reset_cuda_peak_memory, RuntimeInfo};
use brainsam::session::{
    default_model_path, DeviceChoice, Model, ModelOptions, Precision, Session, SessionOptions,
};
use brainsam::volume::Volume;
use tch::{Device, Kind, Tensor};

/// A model to measure.
#[derive(Clone)]
struct Workload {
    label: &'static str,
    config: SamConfig,
    /// Load the bundled default model instead of random weights.
    bundled: bool,
}

/// What a row measures.
#[derive(Clone, Copy, PartialEq)]
enum Measure {
    /// Image encoder, ms per slice at this batch size.
    Encoder(usize),
    /// Whole-volume automatic segmentation, total ms.
    Volume,
    /// Point prompt → updated label volume with a cached embedding, median ms.
    Prompt,
}

struct Row {
    device: Device,
    workload: Workload,
    precision: Precision,
    measure: Measure,
}

impl Row {
    fn label(&self) -> String {
        let device = match self.device {
            Device::Cuda(_) => "cuda",
            _ => "cpu",
        };
        let what = match self.measure {
            Measure::Encoder(batch) => format!("encoder ms/slice, batch {batch}"),
            Measure::Volume => "whole volume, 1 mm head, ms".to_string(),
            Measure::Prompt => "prompt → mask, ms".to_string(),
        };
        format!(
            "{device:<4} {:<13} {:<4} {what}",
            self.workload.label, self.precision
        )
    }
}

/// One measurement: milliseconds and peak CUDA bytes (None on the CPU), or why not.
type Outcome = Result<(f64, Option<u64>), String>;

fn iterations(base: usize) -> usize {
    let scale: usize = std::env::var("BRAINSAM_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    base * scale.max(1)
}

fn sync(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

fn device_choice(device: Device) -> DeviceChoice {
    match device {
        Device::Cuda(index) => DeviceChoice::Cuda(index),
        _ => DeviceChoice::Cpu,
    }
}

fn load(workload: &Workload, device: Device, precision: Precision) -> Arc<Model> {
    if workload.bundled {
        return Model::load(&ModelOptions {
            checkpoint: Some(default_model_path().expect("the bundled default model")),
            device: device_choice(device),
            precision,
            ..ModelOptions::default()
        })
        .expect("load the bundled model");
    }
    tch::manual_seed(0);
    let var_store = tch::nn::VarStore::new(device);
    let sam = Sam::new(&var_store.root(), &workload.config).expect("model");
    set_image_encoder_kind(&var_store, precision.encoder_kind(device)).expect("precision");
    Model::from_parts(sam, var_store)
}

/// Runs `body` with CUDA peak-memory tracking; an out-of-memory panic becomes an error.
fn measured(device: Device, body: impl FnOnce() -> f64) -> Outcome {
    let cuda = match device {
        Device::Cuda(index) => Some(index),
        _ => None,
    };
    if let Some(index) = cuda {
        empty_cuda_cache();
        reset_cuda_peak_memory(index);
    }
    let ms = catch_unwind(AssertUnwindSafe(body)).map_err(|panic| {
        let text = brainsam::error::panic_message(panic.as_ref()).unwrap_or_default();
        if text.contains("out of memory") {
            "out of memory".to_string()
        } else {
            format!("failed: {}", text.lines().next().unwrap_or(""))
        }
    })?;
    let peak = cuda.and_then(|index| cuda_memory(index).map(|m| m.peak_allocated_bytes));
    if cuda.is_some() {
        empty_cuda_cache();
    }
    Ok((ms, peak))
}

fn time_encoder(model: &Model, batch: usize) -> Outcome {
    let device = model.device();
    let size = model.config().input_size;
    let iters = iterations(if device.is_cuda() { 10 } else { 1 });
    measured(device, || {
        let input = Tensor::randn([batch as i64, 3, size, size], (Kind::Float, device));
        tch::no_grad(|| {
            if iters > 1 || device.is_cuda() {
                let _ = model.sam().encode_images(&input).unwrap();
            }
            sync(device);
            let start = Instant::now();
            for _ in 0..iters {
                let _ = model.sam().encode_images(&input).unwrap();
            }
            sync(device);
            start.elapsed().as_secs_f64() * 1000.0 / (iters * batch) as f64
        })
    })
}

/// Whole-volume segmentation time; also returns the number of slices encoded.
fn time_volume(model: &Arc<Model>, volume: &Volume) -> (Outcome, usize) {
    let mut slices = 0;
    let outcome = measured(model.device(), || {
        // One pass over the slices, the work the reference does (mirror averaging, on by
        // default, doubles the encoder part).
        let options = SessionOptions {
            mirror_averaging: false,
            shift_averaging: false,
            ..SessionOptions::default()
        };
        let mut session = Session::new(Arc::clone(model), options).unwrap();
        if model.device().is_cuda() {
            // Warm-up on the same volume: CUDA kernels and allocator pools.
            session.set_volume(volume.clone()).unwrap();
            session.segment_all(&mut |_, _| true).unwrap();
        }
        let start = Instant::now();
        session.set_volume(volume.clone()).unwrap();
        session.segment_all(&mut |_, _| true).unwrap();
        sync(model.device());
        slices = session.geometry().unwrap().n_slices();
        start.elapsed().as_secs_f64() * 1000.0
    });
    (outcome, slices)
}

fn time_prompt(model: &Arc<Model>, volume: &Volume) -> Outcome {
    let iters = iterations(15);
    measured(model.device(), || {
        prompt::median_prompt_latency_ms(model, volume, iters)
    })
}

fn reference_job(row: &Row, slices: usize) -> serde_json::Value {
    let config: serde_json::Value =
        serde_json::from_str(&row.workload.config.to_json()).expect("config JSON");
    let (what, batch, iters) = match row.measure {
        Measure::Encoder(batch) => ("encoder", batch, if row.device.is_cuda() { 10 } else { 1 }),
        // Batches as our session on this device makes them (32 on a large GPU, 4 on CPU).
        Measure::Volume => ("volume", if row.device.is_cuda() { 32 } else { 4 }, 1),
        Measure::Prompt => ("prompt", 1, 15),
    };
    serde_json::json!({
        "config": config, "what": what, "batch": batch, "slices": slices,
        "iters": iterations(iters), "device": if row.device.is_cuda() { "cuda" } else { "cpu" },
        "bf16": row.precision == Precision::Bf16,
    })
}

/// Parses a reference output line "<ms> <peak bytes> [reason]".
fn reference_outcome(line: Option<&String>) -> Outcome {
    let Some(line) = line else {
        return Err("no reference".into());
    };
    let mut parts = line.split_whitespace();
    let ms: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    let peak: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if ms.is_nan() {
        return Err(parts.next().unwrap_or("failed").replace('-', " "));
    }
    Ok((ms, (peak > 0).then_some(peak)))
}

fn rows_for(device: Device, full_cpu: bool) -> Vec<Row> {
    let vit_b = |size| Workload {
        label: if size == 512 {
            "vit_b 512"
        } else {
            "vit_b 1024"
        },
        config: SamConfig::vit_b()
            .with_input_size(size)
            .with_num_classes(12),
        bundled: false,
    };
    let bundled = Model::load(&ModelOptions {
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .map(|m| m.config().clone())
    .expect("the bundled default model");
    let default = Workload {
        label: "default",
        config: bundled,
        bundled: true,
    };
    let mut rows = Vec::new();
    let mut push = |workload: &Workload, precision, measure| {
        rows.push(Row {
            device,
            workload: workload.clone(),
            precision,
            measure,
        })
    };
    if device.is_cuda() {
        for workload in [vit_b(512), vit_b(1024), default] {
            for precision in [Precision::Fp32, Precision::Bf16] {
                for batch in [1, 8, 32] {
                    push(&workload, precision, Measure::Encoder(batch));
                }
                push(&workload, precision, Measure::Volume);
                push(&workload, precision, Measure::Prompt);
            }
        }
    } else {
        for batch in [1, 8] {
            push(&default, Precision::Fp32, Measure::Encoder(batch));
        }
        push(&default, Precision::Fp32, Measure::Volume);
        push(&default, Precision::Fp32, Measure::Prompt);
        push(&vit_b(512), Precision::Fp32, Measure::Encoder(1));
        push(&vit_b(512), Precision::Fp32, Measure::Prompt);
        if full_cpu {
            push(&vit_b(512), Precision::Fp32, Measure::Volume);
            push(&default, Precision::Bf16, Measure::Encoder(8));
            push(&default, Precision::Bf16, Measure::Volume);
        }
    }
    rows
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| {
        format!("{:.0}", b as f64 / (1 << 20) as f64)
    })
}

fn cell(outcome: &Outcome) -> String {
    match outcome {
        Ok((ms, _)) if *ms >= 100.0 => format!("{ms:.0}"),
        Ok((ms, _)) => format!("{ms:.2}"),
        Err(reason) => reason.clone(),
    }
}

fn main() {
    let runtime = RuntimeInfo::current();
    println!("{}", runtime.to_string().replace('\n', "; "));
    let volume = head::synthetic_head(1.0);
    let cpu_setting = std::env::var("BRAINSAM_BENCH_CPU").unwrap_or_default();
    let mut rows = Vec::new();
    if tch::Cuda::is_available() {
        rows.extend(rows_for(Device::Cuda(0), false));
        if let Some(memory) = cuda_memory(0) {
            println!(
                "cuda:0: {:.1} GiB total, compute capability {:?}",
                memory.total_bytes as f64 / (1u64 << 30) as f64,
                brainsam::runtime::cuda_capability(0)
            );
        }
    } else {
        println!("no CUDA device: CPU table only (GPU figures unmeasured)");
    }
    if cpu_setting != "0" {
        rows.extend(rows_for(Device::Cpu, cpu_setting == "1"));
    }
    if let Ok(filter) = std::env::var("BRAINSAM_BENCH_FILTER") {
        rows.retain(|row| row.label().contains(&filter));
    }

    // Ours first (the slice count of the volume rows goes to the reference), then the
    // reference in one Python process, so the two never share the GPU.
    let mut ours = Vec::new();
    let mut slices = 0;
    let mut loaded: Option<(String, Arc<Model>)> = None;
    for row in &rows {
        let key = format!("{:?} {} {}", row.device, row.workload.label, row.precision);
        let model = match &loaded {
            Some((k, model)) if *k == key => Arc::clone(model),
            _ => {
                drop(loaded.take()); // free the previous model's memory first
                let model = load(&row.workload, row.device, row.precision);
                loaded = Some((key, Arc::clone(&model)));
                model
            }
        };
        let outcome = match row.measure {
            Measure::Encoder(batch) => time_encoder(&model, batch),
            Measure::Volume => {
                let (outcome, n) = time_volume(&model, &volume);
                slices = slices.max(n);
                outcome
            }
            Measure::Prompt => time_prompt(&model, &volume),
        };
        eprintln!("{}: {}", row.label(), cell(&outcome));
        ours.push(outcome);
    }
    drop(loaded);
    empty_cuda_cache();
    let jobs: Vec<serde_json::Value> = rows.iter().map(|r| reference_job(r, slices)).collect();
    let reference_lines = reference::run("speed_reference.py", &jobs);
    let references: Vec<Outcome> = (0..rows.len())
        .map(|i| reference_outcome(reference_lines.as_ref().and_then(|lines| lines.get(i))))
        .collect();

    let header = [
        "row",
        "brainsam",
        "pytorch",
        "ratio",
        "brainsam MiB",
        "pytorch MiB",
    ];
    let mut table = vec![header.map(str::to_string).to_vec()];
    for ((row, ours), reference) in rows.iter().zip(&ours).zip(&references) {
        let ratio = match (ours, reference) {
            (Ok((a, _)), Ok((b, _))) => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        table.push(vec![
            row.label(),
            cell(ours),
            cell(reference),
            ratio,
            mib(ours.as_ref().ok().and_then(|o| o.1)),
            mib(reference.as_ref().ok().and_then(|o| o.1)),
        ]);
    }
    println!("whole-volume rows: synthetic 1 mm head, {slices} slices in the region of interest");
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &table {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (text, width))| {
                if c == 0 {
                    format!("{text:<width$}")
                } else {
                    format!("{text:>width$}")
                }
            })
            .collect();
        println!("{}", cells.join("  "));
    }
    if let Some(path) = std::env::var_os("BRAINSAM_BENCH_MARKDOWN") {
        let mut markdown = format!(
            "| {} |\n|{}\n",
            header.join(" | "),
            "---|".repeat(header.len())
        );
        for line in &table[1..] {
            markdown.push_str(&format!("| {} |\n", line.join(" | ")));
        }
        std::fs::write(&path, markdown).expect("write the Markdown table");
    }
}
