//! The `brainsam fine-tune` subcommand: a TOML configuration, flags overriding it, a
//! progress bar with ETA, and Ctrl-C-free cancellation through the progress callback.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use brainsam::train::config::TrainConfig;
use brainsam::train::trainer::{TrainOptions, TrainProgress, Trainer};
use brainsam::{Error, Result};

/// Arguments of `brainsam fine-tune` (flags override the configuration file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FineTuneArgs {
    /// TOML configuration file (see `brainsam::train::config`).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Base checkpoint (official SAM `.pth` or BrainSAM `.safetensors`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Model configuration name (vit_b, vit_l, vit_h, small, tiny).
    #[arg(long)]
    pub model: Option<String>,
    /// Training mode: lora, decoder or full.
    #[arg(long)]
    pub mode: Option<String>,
    /// LoRA rank.
    #[arg(long)]
    pub lora_rank: Option<i64>,
    /// Model input size.
    #[arg(long)]
    pub input_size: Option<i64>,
    /// Iterations.
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Warm-up iterations.
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: auto, cpu or cuda.
    #[arg(long)]
    pub device: Option<String>,
    /// Validate every N iterations.
    #[arg(long)]
    pub validate_every: Option<u64>,
    /// Checkpoint every N iterations.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Time budget in minutes: the run times its first iterations, then fits its
    /// iteration count (and learning-rate schedule) to the budget.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Continue from the output folder's checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start afresh in an output folder that holds an earlier run, deleting its results
    /// (without this or --resume, such a folder is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// No progress bar (log lines instead).
    #[arg(long)]
    pub quiet: bool,
}

impl FineTuneArgs {
    /// The configuration file (or defaults) with the flags applied.
    pub fn resolve(&self) -> Result<TrainConfig> {
        let mut config = match &self.config {
            Some(path) => TrainConfig::read(path)?,
            None => TrainConfig::default(),
        };
        if let Some(v) = &self.output {
            config.run.output_dir = v.clone();
        }
        if let Some(v) = &self.checkpoint {
            config.model.checkpoint = Some(v.clone());
        }
        if let Some(v) = &self.model {
            config.model.config = v.clone();
        }
        if let Some(v) = &self.mode {
            config.model.mode = v.clone();
        }
        if let Some(v) = self.lora_rank {
            config.model.lora_rank = v;
        }
        if let Some(v) = self.input_size {
            config.model.input_size = Some(v);
        }
        if let Some(v) = self.iterations {
            config.run.iterations = v;
        }
        if let Some(v) = self.batch_size {
            config.run.batch_size = v;
        }
        if let Some(v) = self.lr {
            config.optim.lr = v;
        }
        if let Some(v) = self.warmup {
            config.optim.warmup = v;
        }
        if let Some(v) = self.seed {
            config.run.seed = v;
        }
        if let Some(v) = &self.device {
            config.run.device = v.clone();
        }
        if let Some(v) = self.validate_every {
            config.run.validate_every = v;
        }
        if let Some(v) = self.checkpoint_every {
            config.run.checkpoint_every = v;
        }
        if self.minutes.is_some() {
            config.run.minutes = self.minutes;
        }
        config.check_sources()?;
        Ok(config)
    }
}

/// Runs `brainsam fine-tune`.
pub fn run_fine_tune(args: &FineTuneArgs) -> Result<()> {
    let config = args.resolve()?;
    if config.interactive.is_some() {
        return run_interactive(&config, args.quiet);
    }
    let total = config.run.iterations;
    let output_dir = config.run.output_dir.clone();
    let mut trainer = Trainer::new(
        config.clone(),
        TrainOptions {
            resume: args.resume,
            overwrite: args.overwrite,
            ..TrainOptions::default()
        },
    )?;
    let toml_path = output_dir.join("config.toml");
    let text = config.to_toml()?;
    brainsam::weights::atomic_write(&toml_path, |w| {
        std::io::Write::write_all(w, text.as_bytes()).map_err(|e| Error::io(&toml_path, e))
    })?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .map_err(|e| Error::Internal(e.to_string()))?,
    );
    bar.set_position(trainer.state().iteration);
    bar.enable_steady_tick(Duration::from_millis(500));
    let mut best = None;
    let report = trainer.run(&mut |p: &TrainProgress| {
        bar.set_length(p.total);
        bar.set_position(p.iteration);
        if let Some(v) = &p.validation {
            best = Some(v.mean_dice);
            if args.quiet {
                log::info!(
                    "iteration {}: validation mean Dice {:.4}",
                    p.iteration,
                    v.mean_dice
                );
            }
        }
        let dice = best.map_or(String::new(), |d| format!(" val Dice {d:.4}"));
        bar.set_message(format!("loss {:.4} lr {:.2e}{dice}", p.loss, p.lr));
        if args.quiet && p.iteration.is_multiple_of(50) {
            log::info!(
                "iteration {} / {}: loss {:.4}",
                p.iteration,
                p.total,
                p.loss
            );
        }
        true
    })?;
    bar.finish();
    println!(
        "done: {} iterations ({:.2} slices/s); model {}{}{}",
        report.iterations,
        report.slices_per_second,
        report.outputs.model.display(),
        report
            .outputs
            .adapter
            .as_ref()
            .map_or(String::new(), |a| format!(", adapter {}", a.display())),
        report.best.map_or(String::new(), |(d, i)| format!(
            "; best validation Dice {d:.4} at iteration {i} ({})",
            report
                .outputs
                .best_model
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        ))
    );
    Ok(())
}

/// `brainsam fine-tune` with an `[interactive]` section: trains the interactive head.
fn run_interactive(config: &TrainConfig, quiet: bool) -> Result<()> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(config.run.iterations)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .map_err(|e| Error::Internal(e.to_string()))?,
    );
    let model = brainsam::train::interactive::train_interactive(config, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.iteration);
        bar.set_message(format!("loss {:.4} lr {:.2e}", p.loss, p.lr));
        if quiet {
            log::info!(
                "iteration {} / {}: loss {:.4} lr {:.2e}",
                p.iteration,
                p.total,
                p.loss,
                p.lr
            );
        }
        true
    })?;
    bar.finish();
    println!("done: interactive head trained; model {}", model.display());
    Ok(())
}
