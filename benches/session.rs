//! Session benchmark (not a test): prompt-to-updated-mask latency with a cached
//! embedding, and whole-volume automatic segmentation, next to the PyTorch reference
//! measured in the same run.
//!
//! `cargo bench --bench session`. The volume is FreeSurfer sub-01 from `BRAINSAM_DATA`
//! when set, else a synthetic head. `BRAINSAM_BENCH_VIT_B_VOLUME=1` adds the (minutes
//! long) vit_b whole-volume row. Models have random weights: speed does not depend on
//! them. Set `OMP_NUM_THREADS=1` on a loaded machine for stable numbers.

#[path = "support/head.rs"]
mod head;
#[path = "support/prompt.rs"]
mod prompt;
#[path = "support/reference.rs"]
mod reference;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use brainsam::model::{Sam, SamConfig};
use brainsam::session::{Model, Session, SessionOptions};
use brainsam::volume::Volume;

fn model(config: &SamConfig) -> Arc<Model> {
    let var_store = tch::nn::VarStore::new(tch::Device::cuda_if_available());
    let sam = Sam::new(&var_store.root(), config).expect("model");
    Model::from_parts(sam, var_store)
}

fn volume() -> (String, Volume) {
    if let Some(dir) = std::env::var_os("BRAINSAM_DATA") {
        let path = PathBuf::from(dir).join("freesurfer_training_data/sub-01/T1.nii.gz");
        if let Ok(volume) = Volume::read(&path) {
            return ("FreeSurfer sub-01 (256³, 1 mm)".into(), volume);
        }
    }
    ("synthetic head (2 mm)".into(), head::synthetic_head(2.0))
}

fn main() {
    let (volume_name, volume) = volume();
    println!(
        "volume: {volume_name}; device: {:?}",
        tch::Device::cuda_if_available()
    );
    println!(
        "{:<56} {:>12} {:>14} {:>8}",
        "row", "brainsam ms", "reference ms", "ratio"
    );
    let report = |label: &str, ours: f64, reference: f64| {
        println!(
            "{label:<56} {ours:>12.1} {reference:>14.1} {:>8.2}",
            ours / reference
        );
    };

    // Prompt → updated mask, vit_b at 512 (the goal: <= 20 ms on CPU).
    let config = SamConfig::vit_b().with_input_size(512).with_num_classes(12);
    let latency = prompt::median_prompt_latency_ms(&model(&config), &volume, 15);
    let reference_decoder = reference::times(&[reference::job(
        &config.to_json(),
        "decoder",
        15,
        false,
        false,
    )])[0];
    report(
        "vit_b 512: point prompt → updated mask (median)",
        latency,
        reference_decoder,
    );

    // Whole volume: our total vs the reference's per-slice encoder cost × slices encoded,
    // with one view of each slice and with the eight the session averages by default
    // (mirror × four sampling grids). "small" is the default model's configuration.
    let mut rows = vec![(
        "small",
        SamConfig::small()
            .with_num_classes(12)
            .with_slice_context_mm(2.0),
    )];
    if std::env::var_os("BRAINSAM_BENCH_VIT_B_VOLUME").is_some() {
        rows.push((
            "vit_b",
            SamConfig::vit_b().with_input_size(512).with_num_classes(12),
        ));
    }
    let one_view = SessionOptions {
        mirror_averaging: false,
        shift_averaging: false,
        ..SessionOptions::default()
    };
    for (name, config) in rows {
        let per_slice = reference::times(&[reference::job(
            &config.to_json(),
            "encoder",
            2,
            false,
            false,
        )])[0];
        let model = model(&config);
        for (what, options, views) in [
            ("1 view", one_view.clone(), 1),
            ("8 views, default", SessionOptions::default(), 8),
        ] {
            let mut session = Session::new(Arc::clone(&model), options).unwrap();
            let start = Instant::now();
            session.set_volume(volume.clone()).unwrap();
            let slices = session.geometry().unwrap().n_slices();
            session.segment_all(&mut |_, _| true).unwrap();
            let ours = start.elapsed().as_secs_f64() * 1000.0;
            report(
                &format!(
                    "{name} {}: whole volume, {slices} slices, {what}",
                    config.input_size
                ),
                ours,
                per_slice * (slices * views) as f64,
            );
        }
    }
}
