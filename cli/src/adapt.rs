//! The `brainsam adapt` subcommand: pairs of NIfTI files, the library's defaults, a
//! progress bar with ETA and validation Dice, and the adapter written atomically.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use brainsam::error::{Error, Result};
use brainsam::labels::LabelScheme;
use brainsam::session::{DeviceChoice, Model, ModelOptions};
use brainsam::train::adapt::{adapt, AdaptOptions, AdaptPair};

/// Arguments of `brainsam adapt`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdaptArgs {
    /// T1 images of the site (NIfTI), one per label map.
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// Corrected label maps (NIfTI), in the order of --images, each on its image's grid.
    /// Structures absent from a map are not trained from it (partial labels).
    #[arg(long, num_args = 1.., required = true)]
    pub labels: Vec<PathBuf>,
    /// Label scheme of the maps: freesurfer, aal, harvard-oxford, neuromorphometrics,
    /// classes (BrainSAM class ids 0..12), or a mapping file (`code,class` lines).
    #[arg(long, default_value = "freesurfer")]
    pub ref_labels: String,
    /// Adapter file to write (.safetensors); written only when the run succeeds.
    #[arg(long)]
    pub out: PathBuf,
    /// Base model (default: the bundled model). The adapter records its SHA-256.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Time budget in minutes: stop then and keep the best checkpoint.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Iterations (default: chosen from the number of pairs).
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Base learning rate (default 2e-4).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `brainsam adapt`.
pub fn run_adapt(args: &AdaptArgs) -> Result<()> {
    if args.images.len() != args.labels.len() {
        return Err(Error::invalid_argument(format!(
            "{} images but {} label maps: give one label map per image, in the same order",
            args.images.len(),
            args.labels.len()
        )));
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::invalid_argument(format!(
                "--out {}: folder {} does not exist",
                args.out.display(),
                parent.display()
            )));
        }
    }
    let scheme = LabelScheme::from_name_or_file(&args.ref_labels)?;
    let device = DeviceChoice::parse(&args.device)?;
    let model = Model::load(&ModelOptions {
        checkpoint: args.model.clone(),
        device,
        ..ModelOptions::default()
    })?;
    let mut pairs = Vec::with_capacity(args.images.len());
    for (image, labels) in args.images.iter().zip(&args.labels) {
        pairs.push(AdaptPair::read(image, labels, scheme.clone())?);
    }
    let options = AdaptOptions {
        iterations: args.iterations,
        learning_rate: args.lr,
        minutes: args.minutes,
        seed: args.seed,
        device: Some(args.device.clone()),
        ..AdaptOptions::default()
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}] {msg}")
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    bar.set_message("preparing the data and validating the base model");
    let result = adapt(&model, pairs, &options, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.iteration);
        let dice = p
            .best_dice
            .map_or(String::new(), |d| format!(", best validation Dice {d:.3}"));
        bar.set_message(format!(
            "loss {:.3}{dice}, about {:.0} s left",
            p.loss, p.eta_seconds
        ));
        if args.quiet && p.validation_dice.is_some() {
            log::info!("iteration {}/{}{dice}", p.iteration, p.total);
        }
        true
    })?;
    bar.finish_and_clear();
    result.save(&args.out)?;
    let plan = &result.plan;
    println!(
        "adapter {} ({} pairs, {} mode rank {}, {} of {} iterations{}, {:.1} min)",
        args.out.display(),
        plan.pairs,
        plan.mode,
        plan.lora_rank,
        result.iterations,
        plan.iterations,
        if result.timed_out {
            ", stopped by the time budget"
        } else {
            ""
        },
        result.seconds / 60.0
    );
    println!(
        "validation ({}): mean Dice {:.3} before, {:.3} kept (iteration {})",
        match plan.validation {
            brainsam::train::adapt::ValidationKind::HeldOutPair => "held-out last pair",
            brainsam::train::adapt::ValidationKind::HeldOutSlices =>
                "held-out blocks of slices of every pair (fewer than 3 pairs)",
        },
        result.base_dice,
        result.best.0,
        result.best.1
    );
    if !result.base_structures.is_empty() {
        let names: Vec<&str> = result
            .base_structures
            .iter()
            .filter_map(|&c| brainsam::labels::structure(c).map(|s| s.long_name))
            .collect();
        println!(
            "kept from the base model (the adaptation validated worse on them): {}",
            names.join(", ")
        );
    }
    println!(
        "use it: brainsam segment --adapter {} ...",
        args.out.display()
    );
    Ok(())
}
