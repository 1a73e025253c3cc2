//! The `brainsam` command-line tool: a thin layer over the library.

mod adapt;
mod fine_tune;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use brainsam::cleanup::CleanupOptions;
use brainsam::labels::{LabelScheme, STRUCTURES};
use brainsam::metrics::{evaluate, Evaluation};
use brainsam::model::training::{apply_training_mode, TrainingMode};
use brainsam::model::{Sam, SamConfig};
use brainsam::overlay::write_overlay_png;
use brainsam::runtime::{cuda_capability, cuda_memory, RuntimeInfo};
use brainsam::session::qc::{describe_flags, QualityReport};
use brainsam::session::{
    init_model, DeviceChoice, Model, ModelOptions, Precision, Session, SessionOptions,
    StructureStats,
};
use brainsam::volume::{LabelVolume, Volume};
use brainsam::{Error, Result};

/// Segment the 12 subcortical structures in T1-weighted brain MRI with SAM + LoRA.
#[derive(Parser)]
#[command(name = "brainsam", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment a T1 volume: writes a label NIfTI on the input's grid.
    Segment(SegmentArgs),
    /// Compare a segmentation with a reference label map (Dice, IoU, HD95, ASSD).
    Evaluate(EvaluateArgs),
    /// Print versions, the compute runtime, and a model configuration's parameter counts.
    Info(InfoArgs),
    /// Create a model file with freshly initialised weights (to train from scratch).
    InitModel(InitModelArgs),
    /// Add models of other slice orientations (e.g. axial, sagittal) to a model file, whose
    /// automatic segmentation then averages them in 3D (how the default model is made).
    CombineViews(CombineViewsArgs),
    /// Fine-tune a model on labelled volumes (TOML configuration, flags override it).
    FineTune(fine_tune::FineTuneArgs),
    /// Adapt the model to your site: train an adapter from your corrected segmentations.
    Adapt(adapt::AdaptArgs),
    /// BIDS App: segment the T1w scans of a BIDS dataset (participant level) or tabulate
    /// the cohort (group level), resumably, locally or on SLURM.
    Bids(BidsArgs),
    /// Segment a list of scans (one path per line) resumably, with a manifest, locally or
    /// on SLURM; ends with the cohort's volumes table.
    Cohort(CohortArgs),
    /// One SLURM array task or group step of a submitted cohort (written by --slurm).
    #[command(hide = true)]
    CohortWorker(CohortWorkerArgs),
}

/// How a volume is segmented: model, device and precision, views, clean-up and batches
/// (shared by `segment`, `cohort` and `bids`).
#[derive(clap::Args)]
struct SegmentOptions {
    /// Model weights (default: the bundled model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// LoRA adapter made for the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Precision of the image encoder: auto (bf16 on a GPU, fp32 on the CPU), fp32,
    /// bf16 or fp16. Masks are always computed in fp32.
    #[arg(long, default_value = "auto")]
    precision: String,
    /// Slices encoded per forward pass; 0 sizes batches to the device (4 on the CPU,
    /// up to 32 on a GPU by its free memory).
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Skip the 3D clean-up (largest component per structure, hole filling).
    #[arg(long)]
    no_cleanup: bool,
    /// Segment only the slices as they are, not also their left-right mirror images
    /// (about twice as fast, a little less accurate).
    #[arg(long)]
    no_mirror: bool,
    /// Segment only the slices as they are, not also with their content shifted by half
    /// an encoder patch (about four times as fast, a little less accurate).
    #[arg(long)]
    no_shift: bool,
    /// Segment only with the model's own slice orientation, not also with the models of
    /// other orientations it carries (the default model's axial and sagittal models;
    /// about twice as fast, less accurate).
    #[arg(long)]
    no_views: bool,
}

impl SegmentOptions {
    /// The session options these flags select.
    fn session_options(&self) -> SessionOptions {
        SessionOptions {
            batch_size: self.batch_size,
            mirror_averaging: !self.no_mirror,
            shift_averaging: !self.no_shift,
            view_averaging: !self.no_views,
            cleanup: if self.no_cleanup {
                CleanupOptions::none()
            } else {
                CleanupOptions::default()
            },
            ..SessionOptions::default()
        }
    }
}

/// How scans are segmented in a cohort.
#[derive(clap::Args)]
struct CohortSegmentArgs {
    #[command(flatten)]
    options: SegmentOptions,
    /// Scans segmented at once (0: one per GPU with several GPUs, else 1); each worker
    /// reads the next volume while it segments the current one.
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// CPU threads per worker (default: the cores divided among the workers).
    #[arg(long)]
    threads: Option<usize>,
}

impl CohortSegmentArgs {
    fn settings(&self) -> brainsam::cohort::Settings {
        let options = &self.options;
        brainsam::cohort::Settings {
            model: options.model.clone(),
            adapter: options.adapter.clone(),
            device: options.device.clone(),
            precision: options.precision.clone(),
            batch_size: options.batch_size,
            mirror: !options.no_mirror,
            shift: !options.no_shift,
            views: !options.no_views,
            cleanup: !options.no_cleanup,
            jobs: self.jobs,
            threads: self.threads,
        }
    }
}

/// SLURM submission options.
#[derive(clap::Args)]
struct SlurmArgs {
    /// Submit an sbatch job array (and a dependent group step) instead of running here.
    #[arg(long)]
    slurm: bool,
    /// Scans per array task.
    #[arg(long, default_value_t = 10)]
    chunk_size: usize,
    /// Array tasks running at once.
    #[arg(long)]
    max_concurrent: Option<usize>,
    /// SLURM partition.
    #[arg(long)]
    partition: Option<String>,
    /// Time limit per array task (sbatch --time, e.g. 02:00:00).
    #[arg(long)]
    time: Option<String>,
    /// GPUs per array task.
    #[arg(long)]
    gpus: Option<usize>,
    /// CPUs per array task (also its torch threads).
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// Memory per array task (sbatch --mem, e.g. 8G).
    #[arg(long)]
    mem: Option<String>,
    /// Further sbatch option, passed through (repeatable), e.g. --sbatch-arg=--account=lab.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

impl SlurmArgs {
    fn options(&self) -> brainsam::cohort::slurm::SlurmOptions {
        brainsam::cohort::slurm::SlurmOptions {
            chunk_size: self.chunk_size,
            max_concurrent: self.max_concurrent,
            partition: self.partition.clone(),
            time: self.time.clone(),
            gpus: self.gpus,
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            extra: self.sbatch_args.clone(),
        }
    }
}

/// Analysis level of the BIDS App.
#[derive(Clone, Copy, clap::ValueEnum)]
enum AnalysisLevel {
    /// Segment each participant's T1w scans.
    Participant,
    /// One volumes table, outliers and QC figure for the cohort.
    Group,
}

#[derive(clap::Args)]
struct BidsArgs {
    /// The BIDS dataset.
    bids_dir: PathBuf,
    /// Output folder (BIDS-Derivatives).
    output_dir: PathBuf,
    /// participant or group.
    analysis_level: AnalysisLevel,
    /// Participants to process (labels with or without `sub-`; default: all).
    #[arg(long, num_args = 1..)]
    participant_label: Vec<String>,
    /// Sessions to process (labels with or without `ses-`; default: all).
    #[arg(long, num_args = 1..)]
    session_label: Vec<String>,
    #[command(flatten)]
    segment: CohortSegmentArgs,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(clap::Args)]
struct CohortArgs {
    /// Text file with one NIfTI path per line (relative paths: to the list's folder).
    #[arg(long)]
    list: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    segment: CohortSegmentArgs,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(clap::Args)]
struct CohortWorkerArgs {
    /// Plan file written by --slurm.
    #[arg(long)]
    plan: PathBuf,
    /// Array task index.
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    chunk: Option<usize>,
    /// Run the group step.
    #[arg(long)]
    group: bool,
}

#[derive(clap::Args)]
struct SegmentArgs {
    /// Input T1 volume (.nii or .nii.gz).
    #[arg(long)]
    input: PathBuf,
    /// Output label map (.nii or .nii.gz), class ids 0..12 on the input's grid.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    options: SegmentOptions,
    /// Write per-structure volumes (mm³) and confidences to this CSV file.
    #[arg(long)]
    volumes: Option<PathBuf>,
    /// Write a PNG with coronal, axial and sagittal views and a legend.
    #[arg(long)]
    overlay: Option<PathBuf>,
    /// Fail (exit status 1, no label map written) when input QC finds the result
    /// implausible for a T1 brain; without it, QC problems are only warned about.
    #[arg(long)]
    strict: bool,
}

#[derive(clap::Args)]
struct EvaluateArgs {
    /// Predicted label map (class ids 0..12 unless --pred-labels says otherwise).
    #[arg(long)]
    pred: PathBuf,
    /// Reference label map.
    #[arg(long = "ref")]
    reference: PathBuf,
    /// Label scheme of the reference: freesurfer, aal, harvard-oxford,
    /// neuromorphometrics, classes, or a mapping file (`code,class` lines).
    #[arg(long, default_value = "freesurfer")]
    ref_labels: String,
    /// Label scheme of the prediction (same choices).
    #[arg(long, default_value = "classes")]
    pred_labels: String,
    /// Also write the metrics as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// Also describe this model file (configuration, parameter counts).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print the parameter counts of a named configuration (vit_b, vit_l, vit_h, small, tiny)
    /// in LoRA mode, e.g. `--config vit_b --input-size 512 --lora-rank 16`.
    #[arg(long)]
    config: Option<String>,
    /// Input size for --config.
    #[arg(long, default_value_t = 512)]
    input_size: i64,
    /// LoRA rank for --config (0: none).
    #[arg(long, default_value_t = 16)]
    lora_rank: i64,
}

#[derive(clap::Args)]
struct InitModelArgs {
    /// Named configuration: vit_b, vit_l, vit_h, small or tiny.
    #[arg(long, default_value = "small")]
    config: String,
    /// Square input size (multiple of the patch size).
    #[arg(long)]
    input_size: Option<i64>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Output model file (.safetensors).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct CombineViewsArgs {
    /// The main model file (its orientation is the one prompts use; view models it holds
    /// already are kept).
    #[arg(long)]
    model: PathBuf,
    /// A model file of another slice orientation (repeat for several).
    #[arg(long = "view", required = true)]
    views: Vec<PathBuf>,
    /// Replace the main file's view models of the given views' orientations (each must
    /// be there) instead of refusing them: to ship view models trained further.
    #[arg(long)]
    replace: bool,
    /// Output model file (.safetensors).
    #[arg(long)]
    out: PathBuf,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Segment(args) => segment(&args),
        Command::Evaluate(args) => evaluate_command(&args),
        Command::Info(args) => info(&args),
        Command::InitModel(args) => init_model_command(&args),
        Command::CombineViews(args) => combine_views_command(&args),
        Command::FineTune(args) => fine_tune::run_fine_tune(&args),
        Command::Adapt(args) => adapt::run_adapt(&args),
        Command::Bids(args) => bids_command(&args),
        Command::Cohort(args) => cohort_command(&args),
        Command::CohortWorker(args) => cohort_worker_command(&args),
    };
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// Refuses to write into a folder that does not exist, before any long work starts.
fn check_output_path(path: &Path, what: &str) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        if !parent.is_dir() {
            return Err(Error::invalid_argument(format!(
                "{what} {}: folder {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// The path as it will be resolved (the folder made absolute), to tell two names of
/// one file apart before anything is written.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(path) = path.canonicalize() {
        return path;
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    match (
        parent.unwrap_or(Path::new(".")).canonicalize(),
        path.file_name(),
    ) {
        (Ok(folder), Some(name)) => folder.join(name),
        _ => path.to_path_buf(),
    }
}

/// Every output path is checked before the segmentation starts: its folder exists, the
/// label map's extension is one we write, and no output would overwrite the input or
/// another output.
fn check_segment_outputs(args: &SegmentArgs) -> Result<()> {
    check_output_path(&args.output, "output")?;
    brainsam::volume::nifti_output_kind(&args.output)?;
    let mut outputs = vec![(&args.output, "--output")];
    for (path, what) in [(&args.volumes, "--volumes"), (&args.overlay, "--overlay")] {
        if let Some(path) = path {
            check_output_path(path, what)?;
            outputs.push((path, what));
        }
    }
    let input = resolved(&args.input);
    for (index, (path, what)) in outputs.iter().enumerate() {
        let target = resolved(path);
        if target == input {
            return Err(Error::invalid_argument(format!(
                "{what} {} is the input file: writing it would destroy the input; choose another name",
                path.display()
            )));
        }
        if let Some((_, other)) = outputs[..index]
            .iter()
            .find(|(other, _)| resolved(other) == target)
        {
            return Err(Error::invalid_argument(format!(
                "{what} and {other} name the same file {}",
                path.display()
            )));
        }
    }
    Ok(())
}

fn segment(args: &SegmentArgs) -> Result<()> {
    check_segment_outputs(args)?;
    let started = Instant::now();
    let volume = Volume::read(&args.input)?;
    let options = &args.options;
    let model = Model::load(&ModelOptions {
        checkpoint: options.model.clone(),
        adapter: options.adapter.clone(),
        config: None,
        device: DeviceChoice::parse(&options.device)?,
        precision: Precision::parse(&options.precision)?,
    })?;
    let mut session = Session::new(model, options.session_options())?;
    session.set_volume(volume)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} slices, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("segmenting");
    session.segment_all(&mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    let labels = session.labels()?;
    let stats: Vec<(u8, StructureStats)> = (1..=12u8)
        .map(|s| session.structure_stats(s).map(|st| (s, st)))
        .collect::<Result<_>>()?;
    let quality = QualityReport::from_stats(&stats);
    print_volume_table(&stats, &quality);
    if let Some(warning) = quality.warning() {
        if args.strict {
            return Err(Error::InvalidState(format!(
                "{warning} (--strict: no output written)"
            )));
        }
        eprintln!("warning: {warning}");
    }
    labels.write(&args.output)?;
    if let Some(path) = &args.volumes {
        write_volumes_csv(path, &stats, &quality)?;
    }
    if let Some(path) = &args.overlay {
        let volume = session.volume().expect("set above");
        write_overlay_png(volume, labels, path)?;
    }
    println!(
        "segmented {} in {:.1} s",
        args.input.display(),
        started.elapsed().as_secs_f64()
    );
    println!("labels:  {}", args.output.display());
    if let Some(path) = &args.volumes {
        println!("volumes: {}", path.display());
    }
    if let Some(path) = &args.overlay {
        println!("overlay: {}", path.display());
    }
    Ok(())
}

fn structure_name(class: u8) -> &'static str {
    STRUCTURES
        .iter()
        .find(|s| s.class == class)
        .map_or("?", |s| s.long_name)
}

/// The QC text of one structure ("ok" or what is implausible).
fn qc_text(quality: &QualityReport, class: u8) -> String {
    describe_flags(quality.flags[usize::from(class) - 1])
}

fn print_volume_table(stats: &[(u8, StructureStats)], quality: &QualityReport) {
    println!(
        "{:>2}  {:<18} {:>12} {:>10}  qc",
        "id", "structure", "volume mm3", "confidence"
    );
    for (class, stat) in stats {
        println!(
            "{class:>2}  {:<18} {:>12.1} {:>10.3}  {}",
            structure_name(*class),
            stat.volume_mm3,
            stat.confidence,
            qc_text(quality, *class)
        );
    }
}

fn write_volumes_csv(
    path: &Path,
    stats: &[(u8, StructureStats)],
    quality: &QualityReport,
) -> Result<()> {
    let text = brainsam::cohort::volumes_table(stats, Some(quality), ',');
    brainsam::weights::atomic_write(path, |file| {
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(path, e))
    })
}

fn read_labels(path: &Path, scheme: &str) -> Result<LabelVolume> {
    let scheme = LabelScheme::from_name_or_file(scheme)?;
    scheme.to_classes(&Volume::read(path)?)
}

fn evaluate_command(args: &EvaluateArgs) -> Result<()> {
    if let Some(path) = &args.json {
        check_output_path(path, "JSON file")?;
    }
    let predicted = read_labels(&args.pred, &args.pred_labels)?;
    let reference = read_labels(&args.reference, &args.ref_labels)?;
    predicted
        .grid()
        .ensure_same_grid(reference.grid(), "the prediction", "the reference")?;
    let evaluation = evaluate(&predicted, &reference)?;
    print_evaluation(&evaluation);
    if let Some(path) = &args.json {
        let json = evaluation_json(&evaluation);
        brainsam::weights::atomic_write(path, |file| {
            file.write_all(json.as_bytes())
                .map_err(|e| Error::io(path, e))
        })?;
        println!("metrics: {}", path.display());
    }
    Ok(())
}

fn format_metric(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

fn print_evaluation(evaluation: &Evaluation) {
    println!(
        "{:>2}  {:<18} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "id", "structure", "dice", "iou", "hd95 mm", "assd mm", "pred vox", "ref vox"
    );
    for m in &evaluation.structures {
        println!(
            "{:>2}  {:<18} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
            m.class,
            structure_name(m.class),
            format_metric(m.dice, 4),
            format_metric(m.iou, 4),
            format_metric(m.hd95_mm, 2),
            format_metric(m.assd_mm, 2),
            m.predicted_voxels,
            m.reference_voxels
        );
    }
    println!(
        "    {:<18} {:>7} {:>7} {:>9} {:>9}",
        "mean",
        format_metric(evaluation.mean_dice, 4),
        format_metric(evaluation.mean_iou, 4),
        format_metric(evaluation.mean_hd95_mm, 2),
        format_metric(evaluation.mean_assd_mm, 2)
    );
}

fn evaluation_json(evaluation: &Evaluation) -> String {
    let structures: Vec<serde_json::Value> = evaluation
        .structures
        .iter()
        .map(|m| {
            serde_json::json!({
                "class": m.class,
                "structure": structure_name(m.class),
                "dice": m.dice,
                "iou": m.iou,
                "hd95_mm": m.hd95_mm,
                "assd_mm": m.assd_mm,
                "predicted_voxels": m.predicted_voxels,
                "reference_voxels": m.reference_voxels,
            })
        })
        .collect();
    let json = serde_json::json!({
        "structures": structures,
        "mean": {
            "dice": evaluation.mean_dice,
            "iou": evaluation.mean_iou,
            "hd95_mm": evaluation.mean_hd95_mm,
            "assd_mm": evaluation.mean_assd_mm,
        }
    });
    serde_json::to_string_pretty(&json).expect("serialisable") + "\n"
}

fn info(args: &InfoArgs) -> Result<()> {
    let runtime = RuntimeInfo::current();
    println!("{runtime}");
    for device in 0..runtime.cuda_device_count.max(0) as usize {
        let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
        match (cuda_capability(device), cuda_memory(device)) {
            (Some((major, minor)), Some(memory)) => println!(
                "cuda:{device}: compute capability {major}.{minor} (bf16: {}), {:.1} GiB free of {:.1} GiB",
                if major >= 8 { "yes" } else { "no, fp16 instead" },
                gib(memory.free_bytes),
                gib(memory.total_bytes)
            ),
            _ => println!("cuda:{device}: no memory figures (built without the CUDA headers)"),
        }
    }
    if let Some(path) = &args.model {
        let model = Model::load(&ModelOptions {
            checkpoint: Some(path.clone()),
            device: DeviceChoice::Cpu,
            ..ModelOptions::default()
        })?;
        let config = model.config();
        println!(
            "model {}: configuration {}, input {}, slice context {}, {} mask tokens, LoRA {}",
            path.display(),
            config.name,
            config.input_size,
            if config.slice_context_mm > 0.0 {
                format!("±{} mm", config.slice_context_mm)
            } else {
                "none".to_string()
            },
            config.mask_decoder.num_mask_tokens,
            config
                .lora
                .as_ref()
                .map_or("none".to_string(), |l| format!("rank {}", l.rank))
        );
        let views: Vec<&str> = model
            .other_views()
            .iter()
            .map(|view| view.config().slice_orientation.name())
            .collect();
        if !views.is_empty() {
            println!(
                "  reads {} slices, with {} models averaged in automatic segmentation (--no-views skips them)",
                config.slice_orientation.name(),
                views.join(" and ")
            );
        }
    }
    if let Some(name) = &args.config {
        let mut config = SamConfig::by_name(name)?
            .with_input_size(args.input_size)
            .with_num_classes(12);
        if args.lora_rank > 0 {
            config = config.with_lora_rank(args.lora_rank);
        }
        let var_store = tch::nn::VarStore::new(tch::Device::Cpu);
        Sam::new(&var_store.root(), &config)?;
        let counts = apply_training_mode(&var_store, TrainingMode::Lora);
        println!(
            "{name} at {} input, 13 mask tokens, LoRA rank {}: {} trainable, {} frozen \
             parameters in LoRA mode ({:.2} % trainable; the paper reports 5.92 M of 92.61 M \
             for vit_b, rank 16, 512 input — its 92.61 M is the model without LoRA)",
            args.input_size,
            args.lora_rank,
            counts.trainable,
            counts.frozen,
            100.0 * counts.trainable as f64 / (counts.trainable + counts.frozen) as f64
        );
    }
    Ok(())
}

fn combine_views_command(args: &CombineViewsArgs) -> Result<()> {
    check_output_path(&args.out, "model file")?;
    let done = if args.replace {
        brainsam::model::load::replace_view_models(&args.model, &args.views, &args.out)?;
        "replaced"
    } else {
        brainsam::model::load::combine_view_models(&args.model, &args.views, &args.out)?;
        "added"
    };
    println!(
        "wrote {} ({} with {} view model(s) {done})",
        args.out.display(),
        args.model.display(),
        args.views.len()
    );
    Ok(())
}

fn init_model_command(args: &InitModelArgs) -> Result<()> {
    check_output_path(&args.out, "model file")?;
    let mut config = SamConfig::by_name(&args.config)?.with_num_classes(12);
    if let Some(size) = args.input_size {
        config = config.with_input_size(size);
    }
    // Our models take [0, 1] images (as SAMed), not 0..255 with ImageNet statistics.
    config = config.with_pixel_stats([0.0; 3], [1.0; 3]);
    init_model(&args.out, &config, args.seed)?;
    println!(
        "wrote {} ({} configuration, input {}, seed {})",
        args.out.display(),
        config.name,
        config.input_size,
        args.seed
    );
    Ok(())
}

/// Prints one line per scan as a cohort runs.
fn print_event(event: &brainsam::cohort::Event) {
    use brainsam::cohort::Event;
    let line = match event {
        Event::AlreadyDone(scan) => format!("{scan}: already done (outputs verified)"),
        Event::Busy(scan) => format!("{scan}: being segmented by another process, skipped"),
        Event::Done(scan, seconds) => format!("{scan}: done in {seconds:.1} s"),
        Event::Failed(scan, error) => format!("{scan}: FAILED: {error}"),
    };
    // A closed stdout (`| head`) must not stop the workers.
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Runs scans here, prints the totals, and fails when any scan failed.
fn run_scans(
    output: &Path,
    scans: &[brainsam::cohort::Scan],
    settings: &brainsam::cohort::Settings,
) -> Result<()> {
    println!("{} scans, output {}", scans.len(), output.display());
    let summary = brainsam::cohort::run(output, scans, settings, &mut print_event)?;
    let total = summary.already_done + summary.done + summary.busy + summary.failed.len();
    println!(
        "{} done now, {} already done, {} left to another process, {} failed, of {} scans in {:.1} s \
         ({:.2} scans/minute)",
        summary.done,
        summary.already_done,
        summary.busy,
        summary.failed.len(),
        summary.scans,
        summary.seconds,
        summary.done as f64 * 60.0 / summary.seconds.max(1e-9)
    );
    debug_assert!(total <= summary.scans);
    if !summary.failed.is_empty() {
        return Err(Error::InvalidState(format!(
            "{} scan(s) failed (errors in {}; a rerun retries them): {}",
            summary.failed.len(),
            output.join(".brainsam/journal.jsonl").display(),
            summary
                .failed
                .iter()
                .map(|(scan, _)| scan.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

fn print_group(report: &brainsam::cohort::GroupReport) {
    println!(
        "group: {} scans tabulated, {} flag(s){}",
        report.rows,
        report.flags.len(),
        if report.missing.is_empty() {
            String::new()
        } else {
            format!(", {} scan(s) not done yet left out", report.missing.len())
        }
    );
    for file in &report.files {
        println!("  {}", file.display());
    }
}

fn submit_slurm(
    output: &Path,
    scans: &[brainsam::cohort::Scan],
    settings: &brainsam::cohort::Settings,
    slurm: &SlurmArgs,
) -> Result<()> {
    let submission = brainsam::cohort::slurm::submit(output, scans, settings, &slurm.options())?;
    match &submission.array_job {
        Some(id) => println!(
            "submitted array job {id}: {} scans pending in {} task(s)",
            submission.pending, submission.tasks
        ),
        None => println!("nothing pending: every scan is done"),
    }
    println!("submitted group step {}", submission.group_job);
    println!("plan, scripts and logs: {}", submission.folder.display());
    Ok(())
}

fn bids_command(args: &BidsArgs) -> Result<()> {
    brainsam::cohort::check_bids_output(&args.bids_dir, &args.output_dir)?;
    let scans = brainsam::cohort::discover_bids(
        &args.bids_dir,
        &args.participant_label,
        &args.session_label,
    )?;
    let settings = args.segment.settings();
    match args.analysis_level {
        AnalysisLevel::Participant => {
            settings.validate()?;
            let (model, _) = settings.identity()?;
            brainsam::cohort::write_dataset_description(&args.output_dir, &args.bids_dir, &model)?;
            if args.slurm.slurm {
                submit_slurm(&args.output_dir, &scans, &settings, &args.slurm)
            } else {
                run_scans(&args.output_dir, &scans, &settings)
            }
        }
        AnalysisLevel::Group => {
            let report = brainsam::cohort::run_group(&args.output_dir, &scans)?;
            print_group(&report);
            Ok(())
        }
    }
}

fn cohort_command(args: &CohortArgs) -> Result<()> {
    let scans = brainsam::cohort::read_scan_list(&args.list)?;
    let settings = args.segment.settings();
    if args.slurm.slurm {
        return submit_slurm(&args.out, &scans, &settings, &args.slurm);
    }
    let result = run_scans(&args.out, &scans, &settings);
    // The table of what is done, also when some scans failed.
    if let Ok(report) = brainsam::cohort::run_group(&args.out, &scans) {
        print_group(&report);
    }
    result
}

fn cohort_worker_command(args: &CohortWorkerArgs) -> Result<()> {
    let plan = brainsam::cohort::slurm::Plan::read(&args.plan)?;
    if args.group {
        let report = brainsam::cohort::run_group(&plan.output, &plan.scans)?;
        print_group(&report);
        return Ok(());
    }
    let task = args.chunk.expect("clap requires --chunk without --group");
    run_scans(&plan.output, &plan.chunk(task)?, &plan.settings)
}
