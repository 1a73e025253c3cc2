//! Segments the pending scans of a cohort with a pool of workers: the model is loaded
//! once (per device), a reader thread reads and decompresses the next volumes while the
//! current ones are segmented, every scan's outputs are staged and renamed into place,
//! and every start, success and failure goes to the journal.

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::journal::{
    host_name, sha256_file, utc_now, Journal, Record, ScanLock, Status, STATE_DIR,
};
use super::scans::{Scan, ScanOutputs};
use crate::cleanup::CleanupOptions;
use crate::error::{Error, Result};
use crate::labels::STRUCTURES;
use crate::overlay::write_overlay_png;
use crate::session::qc::{describe_flags, QualityReport};
use crate::session::{
    default_model_path, DeviceChoice, Model, ModelOptions, Precision, Session, SessionOptions,
    StructureStats,
};
use crate::volume::Volume;
use crate::weights::atomic_write;

/// How scans are segmented and how many at once (serialisable: SLURM array tasks read
/// it from the plan file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Model weights (None: the bundled default model).
    pub model: Option<PathBuf>,
    /// LoRA adapter.
    pub adapter: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    pub device: String,
    /// auto, fp32, bf16 or fp16.
    pub precision: String,
    /// Slices per encoder batch (0: automatic).
    pub batch_size: usize,
    /// Average with the left-right mirrored slices.
    pub mirror: bool,
    /// Average with the shifted sampling grids.
    pub shift: bool,
    /// Average with the model's models of other slice orientations.
    pub views: bool,
    /// 3D clean-up.
    pub cleanup: bool,
    /// Workers (scans segmented at once); 0: one per GPU with `cuda`, else 1.
    pub jobs: usize,
    /// CPU threads per worker (None: the cores divided among the workers).
    pub threads: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            adapter: None,
            device: "auto".into(),
            precision: "auto".into(),
            batch_size: 0,
            mirror: true,
            shift: true,
            views: true,
            cleanup: true,
            jobs: 0,
            threads: None,
        }
    }
}

impl Settings {
    fn session_options(&self) -> SessionOptions {
        SessionOptions {
            batch_size: self.batch_size,
            mirror_averaging: self.mirror,
            shift_averaging: self.shift,
            view_averaging: self.views,
            cleanup: if self.cleanup {
                CleanupOptions::default()
            } else {
                CleanupOptions::none()
            },
            ..SessionOptions::default()
        }
    }

    /// Checks names and files before any work: device, precision, model and adapter files.
    pub fn validate(&self) -> Result<()> {
        DeviceChoice::parse(&self.device)?;
        Precision::parse(&self.precision)?;
        for (path, what) in [(&self.model, "model"), (&self.adapter, "adapter")] {
            if let Some(path) = path {
                if !path.is_file() {
                    return Err(Error::invalid_argument(format!(
                        "{what} file {} does not exist",
                        path.display()
                    )));
                }
            }
        }
        if self.threads == Some(0) {
            return Err(Error::invalid_argument("--threads must be at least 1"));
        }
        Ok(())
    }

    /// What identifies the results: model and adapter contents and the settings that
    /// change labels. Returns (description, fingerprint).
    pub fn identity(&self) -> Result<(String, String)> {
        let model = match &self.model {
            Some(path) => path.clone(),
            None => default_model_path()?,
        };
        let mut description = format!("{} sha256:{}", model.display(), sha256_file(&model)?);
        if let Some(adapter) = &self.adapter {
            description.push_str(&format!(
                " adapter {} sha256:{}",
                adapter.display(),
                sha256_file(adapter)?
            ));
        }
        description.push_str(&format!(
            " precision={} mirror={} shift={} views={} cleanup={}",
            self.precision, self.mirror, self.shift, self.views, self.cleanup
        ));
        let fingerprint =
            super::journal::sha256_text(&format!("{}|{description}", env!("CARGO_PKG_VERSION")));
        Ok((description, fingerprint))
    }

    /// The devices of the workers. `auto`/`cuda` with several GPUs: `jobs` 0 means one
    /// worker per GPU, and workers are spread over the GPUs in turn; `cuda:N` pins every
    /// worker to GPU N; the CPU (or one GPU) gets `jobs` workers (0: one).
    fn worker_devices(&self) -> Result<Vec<DeviceChoice>> {
        let choice = DeviceChoice::parse(&self.device)?;
        let pinned = self.device.trim().to_ascii_lowercase().starts_with("cuda:");
        let gpus = if tch::Cuda::is_available() {
            tch::Cuda::device_count().max(0) as usize
        } else {
            0
        };
        let spread = !pinned && gpus > 1 && choice != DeviceChoice::Cpu;
        let jobs = match self.jobs {
            0 if spread => gpus,
            0 => 1,
            n => n,
        };
        Ok((0..jobs)
            .map(|worker| {
                if spread {
                    DeviceChoice::Cuda(worker % gpus)
                } else {
                    choice
                }
            })
            .collect())
    }
}

/// What happened to one scan, reported as the run goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// Its outputs were already there and verified.
    AlreadyDone(String),
    /// Another process holds it.
    Busy(String),
    /// Segmented and written, in seconds.
    Done(String, f64),
    /// Failed with this error.
    Failed(String, String),
}

/// Totals of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Scans in the cohort (or chunk).
    pub scans: usize,
    /// Verified done before this run.
    pub already_done: usize,
    /// Done by this run.
    pub done: usize,
    /// Left to another process that held them.
    pub busy: usize,
    /// Failed in this run: (scan, error).
    pub failed: Vec<(String, String)>,
    /// Wall time of the run.
    pub seconds: f64,
}

/// A volume read ahead for a worker.
struct Prefetched {
    scan: Scan,
    _lock: ScanLock,
    volume: Result<Volume>,
    /// Seconds spent reading it.
    read_seconds: f64,
}

/// Context shared by the workers.
struct Shared<'a> {
    output: &'a Path,
    journal: Mutex<Journal>,
    description: String,
    fingerprint: String,
    abort: AtomicBool,
    fatal: Mutex<Option<Error>>,
    events: Mutex<&'a mut (dyn FnMut(&Event) + Send)>,
    summary: Mutex<Summary>,
}

impl Shared<'_> {
    fn record(&self, scan: &Scan, status: Status, device: &str) -> Record {
        Record {
            scan: scan.id.clone(),
            input: scan.input.clone(),
            status,
            time: utc_now(),
            seconds: None,
            error: None,
            software: format!("brainsam {}", env!("CARGO_PKG_VERSION")),
            model: self.description.clone(),
            fingerprint: self.fingerprint.clone(),
            device: device.to_string(),
            host: host_name(),
            pid: std::process::id(),
            outputs: Vec::new(),
        }
    }

    fn append(&self, record: &Record) -> Result<()> {
        self.journal.lock().expect("journal lock").append(record)
    }

    fn event(&self, event: Event) {
        (self.events.lock().expect("event lock"))(&event);
    }

    fn stop(&self, error: Error) {
        self.abort.store(true, Ordering::SeqCst);
        self.fatal.lock().expect("fatal lock").get_or_insert(error);
    }
}

/// Whether an error means no further scan can succeed (the output disk is full or gone,
/// the journal cannot be written): the run stops instead of failing every scan.
fn is_fatal(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::ReadOnlyFilesystem)
            || source.raw_os_error() == Some(libc::ENOSPC)
            || source.raw_os_error() == Some(libc::EROFS))
}

/// Segments every scan of `scans` that is not verified done (failures and missing ones
/// included), writing derivatives under `output` and recording each scan in the
/// journal. A failing scan is recorded with its error and the run goes on; a full or
/// read-only output disk stops the run with that error (outputs already written stay
/// valid, nothing half-written is left in place). `events` hears about every scan.
pub fn run(
    output: &Path,
    scans: &[Scan],
    settings: &Settings,
    events: &mut (dyn FnMut(&Event) + Send),
) -> Result<Summary> {
    settings.validate()?;
    let started = Instant::now();
    let journal = Journal::open(output)?;
    let (description, fingerprint) = settings.identity()?;
    let mut summary = Summary {
        scans: scans.len(),
        ..Summary::default()
    };
    let mut pending = Vec::new();
    for scan in scans {
        if journal.verified_done(output, &scan.id, &fingerprint) {
            summary.already_done += 1;
            events(&Event::AlreadyDone(scan.id.clone()));
        } else {
            pending.push(scan.clone());
        }
    }
    if pending.is_empty() {
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }
    let devices = settings.worker_devices()?;
    let threads = settings.threads.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / devices.len()).max(1)
    });
    tch::set_num_threads(threads as i32);
    // One model per distinct device, shared by the workers on it.
    let mut models: Vec<(DeviceChoice, Arc<Model>)> = Vec::new();
    for device in &devices {
        if !models.iter().any(|(d, _)| d == device) {
            let model = Model::load(&ModelOptions {
                checkpoint: settings.model.clone(),
                adapter: settings.adapter.clone(),
                config: None,
                device: *device,
                precision: Precision::parse(&settings.precision)?,
            })?;
            models.push((*device, model));
        }
    }
    let shared = Shared {
        output,
        journal: Mutex::new(journal),
        description,
        fingerprint,
        abort: AtomicBool::new(false),
        fatal: Mutex::new(None),
        events: Mutex::new(events),
        summary: Mutex::new(summary),
    };
    // One volume read ahead per worker.
    let (sender, receiver) = sync_channel::<Prefetched>(devices.len());
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        let shared = &shared;
        scope.spawn(move || {
            for scan in pending {
                if shared.abort.load(Ordering::SeqCst) {
                    break;
                }
                match claim(shared, &scan) {
                    Ok(Some(lock)) => {
                        let reading = Instant::now();
                        let volume = Volume::read(&scan.input);
                        let read_seconds = reading.elapsed().as_secs_f64();
                        let job = Prefetched {
                            scan,
                            _lock: lock,
                            volume,
                            read_seconds,
                        };
                        if !hand_over(shared, &sender, job) {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        shared.stop(error);
                        break;
                    }
                }
            }
        });
        for device in &devices {
            let model = models
                .iter()
                .find(|(d, _)| d == device)
                .expect("loaded")
                .1
                .clone();
            let receiver = &receiver;
            scope.spawn(move || {
                worker(shared, model, &settings.session_options(), device, receiver)
            });
        }
    });
    if let Some(error) = shared.fatal.into_inner().expect("fatal lock") {
        return Err(error);
    }
    let mut summary = shared.summary.into_inner().expect("summary lock");
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Queues a read-ahead volume for the workers; false when the run stops (the workers
/// are gone after a fatal error: a blocking send would wait for them forever).
fn hand_over(shared: &Shared<'_>, sender: &SyncSender<Prefetched>, mut job: Prefetched) -> bool {
    loop {
        match sender.try_send(job) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(returned)) => {
                if shared.abort.load(Ordering::SeqCst) {
                    return false;
                }
                job = returned;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Claims a scan unless another process holds it or finished it meanwhile.
fn claim(shared: &Shared<'_>, scan: &Scan) -> Result<Option<ScanLock>> {
    let mut journal = shared.journal.lock().expect("journal lock");
    let Some(lock) = journal.try_claim(&scan.id)? else {
        shared.summary.lock().expect("summary lock").busy += 1;
        drop(journal);
        shared.event(Event::Busy(scan.id.clone()));
        return Ok(None);
    };
    journal.refresh()?;
    if journal.verified_done(shared.output, &scan.id, &shared.fingerprint) {
        shared.summary.lock().expect("summary lock").already_done += 1;
        drop(journal);
        shared.event(Event::AlreadyDone(scan.id.clone()));
        return Ok(None);
    }
    Ok(Some(lock))
}

fn worker(
    shared: &Shared<'_>,
    model: Arc<Model>,
    options: &SessionOptions,
    device: &DeviceChoice,
    receiver: &Mutex<Receiver<Prefetched>>,
) {
    let device = device.to_string();
    loop {
        if shared.abort.load(Ordering::SeqCst) {
            return;
        }
        let Ok(job) = receiver.lock().expect("receiver lock").recv() else {
            return;
        };
        let picked_up = Instant::now();
        let started_record = shared.record(&job.scan, Status::Started, &device);
        if let Err(error) = shared.append(&started_record) {
            shared.stop(error);
            return;
        }
        let result = match job.volume {
            Ok(volume) => std::panic::catch_unwind(AssertUnwindSafe(|| {
                segment_scan(shared.output, &job.scan, &model, options, volume)
            }))
            .unwrap_or_else(|payload| {
                Err(Error::Internal(
                    crate::error::panic_message(payload.as_ref())
                        .unwrap_or("panic while segmenting")
                        .to_string(),
                ))
            }),
            Err(error) => Err(error),
        };
        // Reading (done ahead) plus this worker's time; not the time spent queued.
        let seconds = job.read_seconds + picked_up.elapsed().as_secs_f64();
        let mut record = shared.record(&job.scan, Status::Done, &device);
        record.seconds = Some(seconds);
        match result {
            Ok(outputs) => {
                record.outputs = outputs;
                if let Err(error) = shared.append(&record) {
                    shared.stop(error);
                    return;
                }
                shared.summary.lock().expect("summary lock").done += 1;
                shared.event(Event::Done(job.scan.id.clone(), seconds));
            }
            Err(error) => {
                clear_staging(shared.output, &job.scan.id);
                let fatal = is_fatal(&error);
                record.status = Status::Failed;
                record.error = Some(error.to_string());
                let appended = shared.append(&record);
                if fatal || appended.is_err() {
                    shared.stop(appended.err().unwrap_or(error));
                    return;
                }
                shared
                    .summary
                    .lock()
                    .expect("summary lock")
                    .failed
                    .push((job.scan.id.clone(), error.to_string()));
                shared.event(Event::Failed(job.scan.id.clone(), error.to_string()));
            }
        }
    }
}

/// The per-structure table of a segmentation, one row per structure:
/// `class structure voxels volume_mm3 confidence`, fields separated by `separator`
/// (`,` for the CLI's CSV, tab for the derivatives' TSV). With a quality report, a last
/// `qc` column says "ok" or what is implausible (`; `-separated), as in the CLI's CSV.
pub fn volumes_table(
    stats: &[(u8, StructureStats)],
    quality: Option<&QualityReport>,
    separator: char,
) -> String {
    let mut columns = vec!["class", "structure", "voxels", "volume_mm3", "confidence"];
    if quality.is_some() {
        columns.push("qc");
    }
    let mut text = columns.join(&separator.to_string());
    text.push('\n');
    for (class, stat) in stats {
        let name = STRUCTURES
            .iter()
            .find(|s| s.class == *class)
            .map_or("?", |s| s.long_name);
        text.push_str(&format!(
            "{class}{separator}{name}{separator}{}{separator}{:.3}{separator}{:.4}",
            stat.voxels, stat.volume_mm3, stat.confidence
        ));
        if let Some(quality) = quality {
            let flags = quality.flags[usize::from(*class) - 1];
            text.push(separator);
            text.push_str(&describe_flags(flags).replace(", ", "; "));
        }
        text.push('\n');
    }
    text
}

/// The BIDS `dseg.tsv` of the label map: index, name, abbreviation, colour.
pub fn label_table() -> String {
    let mut text = String::from("index\tname\tabbreviation\tcolor\n0\tBackground\tBG\t#000000\n");
    for s in &STRUCTURES {
        let [r, g, b] = s.colour;
        text.push_str(&format!(
            "{}\t{}\t{}\t#{r:02x}{g:02x}{b:02x}\n",
            s.class, s.long_name, s.short_name
        ));
    }
    text
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    atomic_write(path, |file| {
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(path, e))
    })
}

/// Segments one volume and writes its outputs: first into a staging folder of the output
/// folder (same file system), synced, then renamed into place one by one. The journal's
/// done record (written by the caller after this returns) is what makes the scan count as
/// done, so a crash between renames only means the scan is redone.
fn segment_scan(
    output: &Path,
    scan: &Scan,
    model: &Arc<Model>,
    options: &SessionOptions,
    volume: Volume,
) -> Result<Vec<(PathBuf, String)>> {
    let mut session = Session::new(model.clone(), options.clone())?;
    session.set_volume(volume)?;
    session.segment_all(&mut |_, _| true)?;
    let labels = session.labels()?;
    let stats: Vec<(u8, StructureStats)> = (1..=12u8)
        .map(|s| session.structure_stats(s).map(|st| (s, st)))
        .collect::<Result<_>>()?;
    let staging = output.join(STATE_DIR).join("staging").join(&scan.id);
    // Leftovers of a killed worker (we hold the scan's lock, so nobody else uses it).
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    let outputs: ScanOutputs = scan.outputs();
    let staged = |relative: &Path| staging.join(relative.file_name().expect("file name"));
    labels.write(staged(&outputs.labels))?;
    write_text(&staged(&outputs.label_table), &label_table())?;
    write_text(
        &staged(&outputs.volumes),
        &volumes_table(&stats, None, '\t'),
    )?;
    write_overlay_png(
        session.volume().expect("set above"),
        labels,
        &staged(&outputs.overview),
    )?;
    let folder = output.join(&scan.folder);
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let mut hashes = Vec::new();
    for relative in outputs.all() {
        let from = staged(relative);
        std::fs::File::open(&from)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&from, e))?;
        hashes.push((relative.to_path_buf(), sha256_file(&from)?));
        let to = output.join(relative);
        std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
    }
    if let Ok(folder) = std::fs::File::open(&folder) {
        let _ = folder.sync_all();
    }
    let _ = std::fs::remove_dir(&staging);
    Ok(hashes)
}

/// Removes the staging folder of a scan that failed, so a full disk gets its space back.
fn clear_staging(output: &Path, scan: &str) {
    let _ = std::fs::remove_dir_all(output.join(STATE_DIR).join("staging").join(scan));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_workers_follow_jobs() {
        let settings = |device: &str, jobs: usize| Settings {
            device: device.into(),
            jobs,
            ..Settings::default()
        };
        assert_eq!(
            settings("cpu", 0).worker_devices().unwrap(),
            [DeviceChoice::Cpu]
        );
        assert_eq!(
            settings("cpu", 3).worker_devices().unwrap(),
            [DeviceChoice::Cpu; 3]
        );
        assert!(settings("tpu", 1).worker_devices().is_err());
        assert!(settings("cpu", 1).validate().is_ok());
        assert!(Settings {
            threads: Some(0),
            ..settings("cpu", 1)
        }
        .validate()
        .is_err());
    }

    #[test]
    fn tables_list_every_structure() {
        let table = label_table();
        assert_eq!(table.lines().count(), 14);
        assert!(
            table.contains("1\tLeft thalamus\tL-Thal\t#00760e"),
            "{table}"
        );
        let stats = [(
            3u8,
            StructureStats {
                voxels: 10,
                volume_mm3: 80.0,
                confidence: 0.5,
            },
        )];
        assert_eq!(
            volumes_table(&stats, None, '\t'),
            "class\tstructure\tvoxels\tvolume_mm3\tconfidence\n3\tLeft caudate\t10\t80.000\t0.5000\n"
        );
        let mut quality = QualityReport { flags: [0; 12] };
        quality.flags[2] =
            crate::session::qc::QC_VOLUME_LOW | crate::session::qc::QC_LOW_CONFIDENCE;
        assert_eq!(
            volumes_table(&stats, Some(&quality), ','),
            "class,structure,voxels,volume_mm3,confidence,qc\n\
             3,Left caudate,10,80.000,0.5000,volume low; low confidence\n"
        );
    }
}
