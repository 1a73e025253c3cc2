//! "Adapt to my site", measured: starting from the bundled model, adapt on 1, 2 and 4
//! corrected volumes of a site the model was not trained on, and report 3D Dice on other
//! volumes of that site before and after, with wall time.
//!
//! The site: FreeSurfer-Training-Data subjects with their T1 contrast inverted inside
//! the head (`max - I` on every non-zero voxel: dark white matter, bright CSF, a
//! T2-like appearance the model never saw). Adapting volumes: sub-01, 02, 03, 04
//! (their anatomy, with normal contrast, was in the model's training set); test
//! volumes: the held-out sub-09 and sub-10 (never trained on). Labels: their FreeSurfer
//! aseg, standing in for the user's corrected segmentations.
//!
//! ```sh
//! OMP_NUM_THREADS=1 BRAINSAM_DATA=../shared/data cargo run --example adapt_site
//! ```
//! `BRAINSAM_ADAPT_MINUTES` (default 15) is the time budget of each adaptation;
//! `BRAINSAM_ADAPT_COUNTS` (default `1,2,4`) the numbers of adapting volumes;
//! `BRAINSAM_ADAPT_MODE`, `BRAINSAM_ADAPT_LR`, `BRAINSAM_ADAPT_RANK` and
//! `BRAINSAM_ADAPT_INTERPOLATION` override the library's default training mode, learning
//! rate, LoRA rank and weight interpolation (to compare settings).

use std::path::{Path, PathBuf};
use std::time::Instant;

use brainsam::labels::{LabelScheme, STRUCTURES};
use brainsam::metrics::evaluate;
use brainsam::model::TrainingMode;
use brainsam::session::{default_model_path, Model, ModelOptions, Session, SessionOptions};
use brainsam::train::adapt::{adapt, AdaptOptions, AdaptPair};
use brainsam::volume::Volume;

const ADAPT_SUBJECTS: [&str; 4] = ["sub-01", "sub-02", "sub-03", "sub-04"];
const TEST_SUBJECTS: [&str; 2] = ["sub-09", "sub-10"];

/// The site's acquisition: contrast inverted inside the head.
fn site_image(path: &Path) -> brainsam::Result<Volume> {
    let volume = Volume::read(path)?;
    let max = volume.data().iter().copied().fold(0.0f32, f32::max);
    let (grid, data) = volume.into_parts();
    let data = data
        .into_iter()
        .map(|v| if v > 0.0 { max - v } else { 0.0 })
        .collect();
    Volume::new(grid, data)
}

fn subject_files(data: &Path, subject: &str) -> (PathBuf, PathBuf) {
    let folder = data.join("freesurfer_training_data").join(subject);
    (folder.join("T1.nii.gz"), folder.join("aseg.nii.gz"))
}

/// Per-structure Dice (12) averaged over the test volumes.
fn test_dice(model: &std::sync::Arc<Model>, data: &Path) -> brainsam::Result<Vec<f64>> {
    let mut sums = vec![0.0; STRUCTURES.len()];
    for subject in TEST_SUBJECTS {
        let (image, labels) = subject_files(data, subject);
        let mut session = Session::new(model.clone(), SessionOptions::default())?;
        session.set_volume(site_image(&image)?)?;
        let predicted = session.segment_all(&mut |_, _| true)?.clone();
        let reference = LabelScheme::FreeSurfer.to_classes(&Volume::read(&labels)?)?;
        let evaluation = evaluate(&predicted, &reference)?;
        for (sum, s) in sums.iter_mut().zip(&evaluation.structures) {
            *sum += s.dice.unwrap_or(0.0);
        }
    }
    Ok(sums
        .into_iter()
        .map(|s| s / TEST_SUBJECTS.len() as f64)
        .collect())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn main() -> brainsam::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let Some(data) = std::env::var_os("BRAINSAM_DATA").map(PathBuf::from) else {
        println!("skipped: BRAINSAM_DATA is not set (the shared data folder)");
        return Ok(());
    };
    let minutes: f64 = std::env::var("BRAINSAM_ADAPT_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(15.0);
    let counts: Vec<usize> = std::env::var("BRAINSAM_ADAPT_COUNTS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let mode = std::env::var("BRAINSAM_ADAPT_MODE")
        .ok()
        .map(|m| TrainingMode::parse(&m))
        .transpose()?;
    let learning_rate: Option<f64> = std::env::var("BRAINSAM_ADAPT_LR")
        .ok()
        .and_then(|lr| lr.parse().ok());
    let lora_rank: Option<i64> = std::env::var("BRAINSAM_ADAPT_RANK")
        .ok()
        .and_then(|r| r.parse().ok());
    let interpolation: Option<f64> = std::env::var("BRAINSAM_ADAPT_INTERPOLATION")
        .ok()
        .and_then(|t| t.parse().ok());
    let base_path = default_model_path()?;
    let base = Model::load(&ModelOptions {
        checkpoint: Some(base_path.clone()),
        ..ModelOptions::default()
    })?;
    let started = Instant::now();
    let before = test_dice(&base, &data)?;
    println!(
        "base model on the site's test volumes: mean Dice {:.3} ({:.0} s to segment 2 volumes)",
        mean(&before),
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for &count in &counts {
        let mut pairs = Vec::new();
        for subject in &ADAPT_SUBJECTS[..count.min(ADAPT_SUBJECTS.len())] {
            let (image, labels) = subject_files(&data, subject);
            pairs.push(AdaptPair {
                name: subject.to_string(),
                image: site_image(&image)?,
                labels: Volume::read(&labels)?,
                scheme: LabelScheme::FreeSurfer,
            });
        }
        let options = AdaptOptions {
            minutes: Some(minutes),
            seed: 1,
            mode,
            learning_rate,
            lora_rank,
            interpolation,
            ..AdaptOptions::default()
        };
        let result = adapt(&base, pairs, &options, &mut |p| {
            if let Some(d) = p.validation_dice {
                eprintln!(
                    "  {count} volume(s): iteration {}/{}, validation Dice {d:.3}, {:.0} s",
                    p.iteration, p.total, p.elapsed_seconds
                );
            }
            true
        })?;
        let adapter = std::env::temp_dir().join(format!("brainsam-site-{count}.safetensors"));
        result.save(&adapter)?;
        let adapted = Model::load(&ModelOptions {
            checkpoint: Some(base_path.clone()),
            adapter: Some(adapter.clone()),
            ..ModelOptions::default()
        })?;
        let after = test_dice(&adapted, &data)?;
        let _ = std::fs::remove_file(&adapter);
        let worst = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a - b)
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "  {count} volume(s): {:.3} -> {:.3} in {:.1} min ({} iterations, kept iteration {})",
            mean(&before),
            mean(&after),
            result.seconds / 60.0,
            result.iterations,
            result.best.1
        );
        // What the run's own validation saw per structure: the base model and the kept
        // checkpoint (does it predict the change on the test volumes?).
        let kept = result
            .validations
            .iter()
            .rev()
            .find(|v| v.iteration == result.best.1);
        if let (Some(base), Some(kept)) = (result.validations.first(), kept) {
            for (k, s) in STRUCTURES.iter().enumerate() {
                let show = |d: Option<f64>| d.map_or("-".into(), |d| format!("{d:.3}"));
                eprintln!(
                    "  {count} volume(s) {}: validation {} -> {}, test {:.3} -> {:.3}",
                    s.short_name,
                    show(base.structure_dice[k]),
                    show(kept.structure_dice[k]),
                    before[k],
                    after[k]
                );
            }
        }
        rows.push((count, result, after, worst));
    }
    println!();
    println!(
        "| adapting volumes | iterations done / planned | kept iteration | adapt wall time | \
         mean Dice before | after | change | worst structure change |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (count, result, after, worst) in &rows {
        println!(
            "| {count} | {} / {}{} | {} | {:.1} min | {:.3} | {:.3} | {:+.3} | {:+.3} |",
            result.iterations,
            result.plan.iterations,
            if result.timed_out {
                " (time budget)"
            } else {
                ""
            },
            result.best.1,
            result.seconds / 60.0,
            mean(&before),
            mean(after),
            mean(after) - mean(&before),
            worst
        );
    }
    println!();
    print!("| structure | before |");
    for (count, ..) in &rows {
        print!(" after {count} |");
    }
    println!();
    print!("|---|---|");
    for _ in &rows {
        print!("---|");
    }
    println!();
    for (k, s) in STRUCTURES.iter().enumerate() {
        print!("| {} | {:.3} |", s.long_name, before[k]);
        for (_, _, after, _) in &rows {
            print!(" {:.3} |", after[k]);
        }
        println!();
    }
    println!(
        "\n(test volumes: {} with the site's contrast; wall times on a shared 2-core CPU)",
        TEST_SUBJECTS.join(", ")
    );
    Ok(())
}
