//! The hostile-input harness: seeded random mutations of valid NIfTI, safetensors and
//! torch.save files (and of volume descriptors), run through the readers,
//! `brainsam_model_load` and `brainsam_session_set_volume`. Every case must end in a
//! clean error or success: a panic, `BRAINSAM_STATUS_INTERNAL_ERROR`, an allocation above
//! the cap or a resident-memory peak above the cap fails the test, naming the seed.
//!
//! Stable Rust, no fuzzing toolchain: a ChaCha generator drives byte-level mutations
//! (bit flips, interesting values, truncation, splicing) and format-aware ones (header
//! fields, JSON numbers and lengths, pickle opcodes, nesting built through the memo).
//!
//! `BRAINSAM_FUZZ_SEED` picks the base seed (default: the time, printed, so that every
//! run tries new cases), `BRAINSAM_FUZZ_CASES` the cases per format (default 1,000). A failing
//! case prints its seed; rerun it alone with `BRAINSAM_FUZZ_SEED=<seed>
//! BRAINSAM_FUZZ_CASES=1`. A crash that kills the process (a signal) leaves the case in
//! `target/tmp/hostile_inputs/current-case.txt`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use brainsam::ffi::*;
use brainsam::volume::Volume;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// No single Rust allocation may exceed this: corrupt sizes must be refused before
/// allocating, not after.
const ALLOCATION_CAP: usize = 1 << 30;
/// Resident memory must stay below this for the whole run.
const RSS_CAP_BYTES: u64 = 3 << 30;

/// Counts allocations above the cap (they are still served, so the test can report).
struct CappedAllocator;

static OVERSIZED: AtomicUsize = AtomicUsize::new(0);
static LARGEST_OVERSIZED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            OVERSIZED.fetch_add(1, Ordering::Relaxed);
            LARGEST_OVERSIZED.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_CAP {
            OVERSIZED.fetch_add(1, Ordering::Relaxed);
            LARGEST_OVERSIZED.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// The failure to report when an allocation above the cap happened since the count was
/// `before`.
fn oversized_since(before: usize) -> Option<String> {
    (OVERSIZED.load(Ordering::Relaxed) > before).then(|| {
        format!(
            "an allocation of {} bytes (cap {ALLOCATION_CAP})",
            LARGEST_OVERSIZED.load(Ordering::Relaxed)
        )
    })
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// What one case did.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Outcome {
    Accepted,
    Refused,
}

struct Harness {
    base_seed: u64,
    cases: u64,
    dir: PathBuf,
    case_file: PathBuf,
    failures: Vec<String>,
    report: Vec<String>,
}

impl Harness {
    fn new() -> Self {
        let base_seed = std::env::var("BRAINSAM_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            // A new base seed per run (printed), so that every CI run tries new cases.
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5eed_b5a1, |d| d.as_secs())
            });
        let cases = std::env::var("BRAINSAM_FUZZ_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        let dir = common::scratch_dir("hostile_inputs");
        let case_file = dir.join("current-case.txt");
        println!(
            "hostile inputs: base seed {base_seed}, {cases} cases per format; a crash leaves \
             its case in {}",
            case_file.display()
        );
        Harness {
            base_seed,
            cases,
            dir,
            case_file,
            failures: Vec::new(),
            report: Vec::new(),
        }
    }

    /// Runs `cases` seeded cases of `format`; `case` returns Ok(outcome) or Err(why the
    /// case is a failure).
    fn run(
        &mut self,
        format: &str,
        mut case: impl FnMut(&mut ChaCha8Rng, &Path) -> Result<Outcome, String>,
    ) {
        let started = Instant::now();
        let (mut accepted, mut refused) = (0u64, 0u64);
        let stream = format
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        for index in 0..self.cases {
            let seed = self.base_seed.wrapping_add(index);
            let _ = std::fs::write(
                &self.case_file,
                format!("format {format}, seed {seed} (BRAINSAM_FUZZ_SEED={seed} BRAINSAM_FUZZ_CASES=1)\n"),
            );
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            let oversized_before = OVERSIZED.load(Ordering::Relaxed);
            let work = self.dir.join(format!("{format}-case"));
            let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut rng, &work)));
            let problem = match outcome {
                Ok(Ok(Outcome::Accepted)) => {
                    accepted += 1;
                    None
                }
                Ok(Ok(Outcome::Refused)) => {
                    refused += 1;
                    None
                }
                Ok(Err(why)) => Some(why),
                Err(payload) => Some(format!(
                    "panic: {}",
                    brainsam::error::panic_message(payload.as_ref()).unwrap_or("(no message)")
                )),
            };
            let problem = problem.or_else(|| oversized_since(oversized_before));
            let problem = problem.or_else(|| {
                let rss = peak_rss();
                (rss > RSS_CAP_BYTES).then(|| format!("resident memory peaked at {rss} bytes"))
            });
            if let Some(problem) = problem {
                let kept = self.dir.join(format!("failing-{format}-{seed}"));
                let _ = std::fs::copy(&work, &kept);
                let message = format!(
                    "{format} seed {seed}: {problem} (input kept as {}; rerun with \
                     BRAINSAM_FUZZ_SEED={seed} BRAINSAM_FUZZ_CASES=1)",
                    kept.display()
                );
                eprintln!("{message}");
                self.failures.push(message);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let line = format!(
            "{format:<26} {:>6} cases {:>6} accepted {:>6} refused {:>8.1} s {:>9.1} exec/s",
            self.cases,
            accepted,
            refused,
            seconds,
            self.cases as f64 / seconds
        );
        println!("{line}");
        self.report.push(line);
    }
}

// ------------------------------------------------------------------ mutations

/// Values that tend to break size arithmetic and float checks.
const INTERESTING_U32: [u32; 12] = [
    0,
    1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
];
const INTERESTING_F32: [f32; 10] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e-30,
    1e30,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    352.0,
];

/// One to four byte-level mutations, anywhere in `bytes` or in `region` when given.
fn mutate_bytes(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>, region: Option<std::ops::Range<usize>>) {
    let rounds = rng.gen_range(1..=4);
    for _ in 0..rounds {
        if bytes.is_empty() {
            bytes.push(rng.gen());
            continue;
        }
        let range = region
            .clone()
            .filter(|r| r.end <= bytes.len() && !r.is_empty())
            .unwrap_or(0..bytes.len());
        let at = rng.gen_range(range.clone());
        match rng.gen_range(0..9) {
            0 => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => bytes[at] = rng.gen(),
            2 if at + 4 <= bytes.len() => {
                let value = INTERESTING_U32[rng.gen_range(0..INTERESTING_U32.len())];
                let value = if rng.gen() {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                bytes[at..at + 4].copy_from_slice(&value);
            }
            3 if at + 4 <= bytes.len() => {
                let value = INTERESTING_F32[rng.gen_range(0..INTERESTING_F32.len())];
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            4 if at + 2 <= bytes.len() => {
                let value = [0u16, 1, 7, 8, 0x7fff, 0x8000, 0xffff][rng.gen_range(0..7)];
                bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
            }
            5 => bytes.truncate(at),
            6 => {
                let extra: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
                bytes.splice(at..at, extra);
            }
            7 => {
                // Duplicate a chunk (repeated structure).
                let end = (at + rng.gen_range(1..32)).min(bytes.len());
                let chunk = bytes[at..end].to_vec();
                let to = rng.gen_range(0..=bytes.len());
                bytes.splice(to..to, chunk);
            }
            _ => {
                let end = (at + rng.gen_range(1..16)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
}

/// A numeric header field of a NIfTI-1 header (offset, size).
const NIFTI_FIELDS: [(usize, usize); 16] = [
    (0, 4),   // sizeof_hdr
    (40, 2),  // dim[0]
    (42, 2),  // dim[1]
    (44, 2),  // dim[2]
    (46, 2),  // dim[3]
    (48, 2),  // dim[4]
    (70, 2),  // datatype
    (72, 2),  // bitpix
    (80, 4),  // pixdim[1]
    (84, 4),  // pixdim[2]
    (108, 4), // vox_offset
    (112, 4), // scl_slope
    (116, 4), // scl_inter
    (252, 2), // qform_code
    (254, 2), // sform_code
    (280, 4), // srow_x[0]
];

fn small_head() -> Volume {
    // A 24^3 head-like blob at 8 mm: big enough for the ROI finder, fast to process.
    let grid = brainsam::volume::Grid::from_lps(
        [24, 24, 24],
        [8.0; 3],
        [-92.0, -92.0, -92.0],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    let data = (0..24 * 24 * 24)
        .map(|n| {
            let p = [n % 24, n / 24 % 24, n / 576].map(|c| (c as f32 - 11.5) * 8.0);
            let r = (p[0] / 70.0).powi(2) + (p[1] / 90.0).powi(2) + (p[2] / 75.0).powi(2);
            if r < 1.0 {
                100.0 + (n % 7) as f32
            } else {
                (n % 3) as f32
            }
        })
        .collect();
    Volume::new(grid, data).unwrap()
}

// ------------------------------------------------------------------ C ABI helpers

fn last_error() -> String {
    // SAFETY: never null, NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(brainsam_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Ok(Accepted) for OK, Ok(Refused) for a clean error, Err for INTERNAL_ERROR or an
/// error without a message.
fn judge(status: brainsam_status, what: &str) -> Result<Outcome, String> {
    match status {
        brainsam_status::BRAINSAM_STATUS_OK => Ok(Outcome::Accepted),
        brainsam_status::BRAINSAM_STATUS_INTERNAL_ERROR => {
            Err(format!("{what}: INTERNAL_ERROR: {}", last_error()))
        }
        _ => {
            let message = last_error();
            if message.len() < 20 || message.contains("frame #") {
                Err(format!(
                    "{what}: {status:?} with a poor message {message:?}"
                ))
            } else {
                Ok(Outcome::Refused)
            }
        }
    }
}

fn load_model(path: &Path) -> (brainsam_status, *mut brainsam_model) {
    let path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: an all-zero options struct is valid; fields set below.
    let mut options: brainsam_model_options = unsafe { std::mem::zeroed() };
    options.struct_size = std::mem::size_of::<brainsam_model_options>() as u32;
    options.checkpoint_path = path.as_ptr();
    options.device = brainsam_device::BRAINSAM_DEVICE_CPU as u32;
    let mut model = std::ptr::null_mut();
    // SAFETY: valid pointers for the call.
    let status = unsafe { brainsam_model_load(&options, &mut model) };
    (status, model)
}

/// A descriptor of `volume` in RAS coordinates.
fn describe(volume: &Volume) -> brainsam_volume_desc {
    let affine = volume.grid().voxel_to_ras();
    let spacing = volume.grid().spacing();
    let mut direction = [0.0; 9];
    for row in 0..3 {
        for col in 0..3 {
            direction[row * 3 + col] = affine[row][col] / spacing[col];
        }
    }
    let dims = volume.grid().dims();
    brainsam_volume_desc {
        struct_size: std::mem::size_of::<brainsam_volume_desc>() as u32,
        data: volume.data().as_ptr().cast(),
        dtype: brainsam_dtype::BRAINSAM_DTYPE_FLOAT32 as u32,
        dims: dims.map(|d| d as u64),
        spacing,
        origin: [affine[0][3], affine[1][3], affine[2][3]],
        direction,
        coordinates: brainsam_coordinates::BRAINSAM_COORDINATES_RAS as u32,
        data_len: std::mem::size_of_val(volume.data()) as u64,
    }
}

struct Session(*mut brainsam_session);

impl Session {
    fn set_volume(&self, desc: &brainsam_volume_desc) -> brainsam_status {
        // SAFETY: a live session; `desc` describes a buffer of at least `data_len` bytes
        // (the harness never lies about it).
        unsafe { brainsam_session_set_volume(self.0, desc) }
    }
}

// ------------------------------------------------------------------ the formats

fn nifti_cases(harness: &mut Harness, session: &Session) {
    let head = small_head();
    let plain = harness.dir.join("seed.nii");
    head.write(&plain).unwrap();
    let gz = harness.dir.join("seed.nii.gz");
    head.write(&gz).unwrap();
    let (plain, gz) = (std::fs::read(plain).unwrap(), std::fs::read(gz).unwrap());
    harness.run("nifti", |rng, work| {
        let mut bytes = if rng.gen_bool(0.2) {
            gz.clone()
        } else {
            plain.clone()
        };
        let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
        if !gzipped && rng.gen_bool(0.6) {
            // Aim at the header fields that size and place the data.
            let (at, size) = NIFTI_FIELDS[rng.gen_range(0..NIFTI_FIELDS.len())];
            match size {
                2 => {
                    let value: i16 = [0, 1, -1, 3, 7, 8, 16, 255, i16::MAX, i16::MIN, 1536, 2048]
                        [rng.gen_range(0..12)];
                    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
                }
                _ => {
                    let value = INTERESTING_F32[rng.gen_range(0..INTERESTING_F32.len())];
                    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
        }
        if rng.gen_bool(0.7) {
            let region = if rng.gen_bool(0.7) {
                Some(0..352)
            } else {
                None
            };
            mutate_bytes(rng, &mut bytes, region);
        }
        if gzipped && rng.gen_bool(0.3) {
            // A bomb-like stream: valid gzip of the file plus many zeros.
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&plain).unwrap();
            encoder
                .write_all(&vec![0u8; rng.gen_range(1..8) << 20])
                .unwrap();
            bytes = encoder.finish().unwrap();
        }
        std::fs::write(work, &bytes).unwrap();
        match Volume::read(work) {
            Ok(volume) => judge(session.set_volume(&describe(&volume)), "set_volume")
                .map(|_| Outcome::Accepted),
            Err(brainsam::Error::Internal(message)) => Err(format!("internal error: {message}")),
            Err(error) if error.to_string().len() < 20 => Err(format!("poor message: {error}")),
            Err(_) => Ok(Outcome::Refused),
        }
    });
}

/// Cases earlier runs found, tried on every run: a header declaring 24 × 16992 × 3490
/// float voxels (5.7 GB, under the 2^31-voxel limit) over a file of a few kilobytes, plain
/// (seed 1796066756: the reader reserved the declared size before reading) and gzipped.
/// Each must be refused as truncated without an allocation above the cap.
fn nifti_regressions(harness: &mut Harness) {
    let path = harness.dir.join("seed-regression.nii");
    small_head().write(&path).unwrap();
    let mut plain = std::fs::read(&path).unwrap();
    for (at, value) in [
        (40, 3i16),
        (42, 24),
        (44, 16992),
        (46, 3490),
        (70, 16),
        (72, 32),
    ] {
        plain[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&plain).unwrap();
    let gzipped = encoder.finish().unwrap();
    for (name, bytes) in [("plain", plain), ("gzipped", gzipped)] {
        let work = harness.dir.join(format!("regression-{name}"));
        std::fs::write(&work, &bytes).unwrap();
        let oversized_before = OVERSIZED.load(Ordering::Relaxed);
        let problem = match Volume::read(&work) {
            Ok(_) => Some("accepted".to_string()),
            Err(error) if !error.to_string().contains("truncated") => {
                Some(format!("refused for another reason: {error}"))
            }
            Err(_) => None,
        }
        .or_else(|| oversized_since(oversized_before));
        if let Some(problem) = problem {
            harness.failures.push(format!(
                "nifti regression ({name}, 5.7 GB declared): {problem}"
            ));
        }
    }
}

fn descriptor_cases(harness: &mut Harness, session: &Session) {
    let head = small_head();
    let bytes: Vec<u8> = head.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    harness.run("volume descriptor", |rng, _| {
        let mut desc = describe(&head);
        // The buffer always holds `bytes`; data_len says so truthfully or less (a caller
        // whose buffer is short), never more.
        desc.data = bytes.as_ptr().cast();
        desc.data_len = bytes.len() as u64;
        for _ in 0..rng.gen_range(1..=3) {
            match rng.gen_range(0..8) {
                0 => desc.dtype = rng.gen_range(0..10),
                1 => {
                    desc.dims[rng.gen_range(0..3)] =
                        [0, 1, 2, 23, 25, 1 << 20, u64::MAX][rng.gen_range(0..7)]
                }
                2 => {
                    desc.spacing[rng.gen_range(0..3)] =
                        f64::from(INTERESTING_F32[rng.gen_range(0..10)])
                }
                3 => {
                    desc.origin[rng.gen_range(0..3)] =
                        f64::from(INTERESTING_F32[rng.gen_range(0..10)])
                }
                4 => {
                    desc.direction[rng.gen_range(0..9)] =
                        f64::from(INTERESTING_F32[rng.gen_range(0..10)])
                }
                5 => desc.coordinates = rng.gen_range(0..4),
                6 => desc.data_len = rng.gen_range(0..=bytes.len() as u64),
                _ => {
                    let full = std::mem::size_of::<brainsam_volume_desc>() as u32;
                    desc.struct_size = [0, 4, 100, full - 8, full][rng.gen_range(0..5)];
                }
            }
        }
        // Only describe what the buffer can back: a larger voxel count than the buffer
        // holds needs a data_len the library can check.
        let count = desc.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let element = match desc.dtype {
            0 | 1 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            _ => 8,
        };
        let needed = count.and_then(|n| n.checked_mul(element));
        let old_layout = (desc.struct_size as usize) < std::mem::size_of::<brainsam_volume_desc>();
        if needed.is_none_or(|n| n > bytes.len() as u64) && (old_layout || desc.data_len == 0) {
            desc.data_len = bytes.len() as u64;
            desc.struct_size = std::mem::size_of::<brainsam_volume_desc>() as u32;
        }
        judge(session.set_volume(&desc), "set_volume")
    });
}

/// Raw safetensors bytes of a header object and a data section.
fn safetensors_bytes(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let text = header.to_string();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn safetensors_cases(harness: &mut Harness, model: &Path) {
    let seed_bytes = std::fs::read(model).unwrap();
    let header_length = u64::from_le_bytes(seed_bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&seed_bytes[8..8 + header_length]).unwrap();
    let data = seed_bytes[8 + header_length..].to_vec();
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let config_key = brainsam::session::CONFIG_METADATA_KEY;
    harness.run("safetensors + model_load", |rng, work| {
        let mut header = header.clone();
        let mut data = data.clone();
        let mut bytes = None;
        match rng.gen_range(0..6) {
            0 => {
                // A tensor's shape or offsets.
                let name = &names[rng.gen_range(0..names.len())];
                let entry = &mut header[name];
                let value = [0u64, 1, 2, 1 << 31, 1 << 62, u64::MAX][rng.gen_range(0..6)];
                if rng.gen_bool(0.5) {
                    if let Some(shape) = entry["shape"].as_array_mut() {
                        if !shape.is_empty() {
                            let at = rng.gen_range(0..shape.len());
                            shape[at] = value.into();
                        } else {
                            shape.push(value.into());
                        }
                    }
                } else {
                    entry["data_offsets"][rng.gen_range(0..2)] = value.into();
                }
            }
            1 => {
                // A model-config number in the metadata.
                if let Some(text) = header["__metadata__"][config_key].as_str() {
                    let mut config: serde_json::Value = serde_json::from_str(text).unwrap();
                    let paths: [&[&str]; 8] = [
                        &["mask_decoder", "num_mask_tokens"],
                        &["input_size"],
                        &["image_encoder", "embed_dim"],
                        &["image_encoder", "mlp_dim"],
                        &["image_encoder", "depth"],
                        &["mask_decoder", "transformer_depth"],
                        &["image_encoder", "patch_size"],
                        &["prompt_encoder", "mask_in_chans"],
                    ];
                    let path = paths[rng.gen_range(0..paths.len())];
                    let value: i64 = [0, -1, 3, 1_000_000, 1 << 20, 1 << 30, 1 << 40, i64::MAX]
                        [rng.gen_range(0..8)];
                    let mut slot = &mut config;
                    for key in path {
                        slot = &mut slot[*key];
                    }
                    *slot = value.into();
                    header["__metadata__"][config_key] = config.to_string().into();
                }
            }
            2 => {
                // A float in the data: NaN, infinity, or a huge value.
                if data.len() >= 4 {
                    let at = rng.gen_range(0..data.len() / 4) * 4;
                    let value = INTERESTING_F32[rng.gen_range(0..INTERESTING_F32.len())];
                    data[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            3 => {
                // The header length off by a little.
                let mut raw = safetensors_bytes(&header, &data);
                let length = u64::from_le_bytes(raw[..8].try_into().unwrap());
                let delta: i64 = [-2, -1, 1, 2, 8][rng.gen_range(0..5)];
                raw[..8].copy_from_slice(&(length as i64 + delta).to_le_bytes());
                bytes = Some(raw);
            }
            4 => {
                // A dtype.
                let name = &names[rng.gen_range(0..names.len())];
                header[name]["dtype"] = ["F16", "BF16", "F64", "I64", "U8", "BOOL", "C64", "X"]
                    [rng.gen_range(0..8)]
                .into();
            }
            _ => {
                let mut raw = safetensors_bytes(&header, &data);
                let header_end = (8 + header_length).min(raw.len());
                let region = if rng.gen_bool(0.7) {
                    Some(0..header_end)
                } else {
                    None
                };
                mutate_bytes(rng, &mut raw, region);
                bytes = Some(raw);
            }
        }
        let bytes = bytes.unwrap_or_else(|| safetensors_bytes(&header, &data));
        std::fs::write(work, &bytes).unwrap();
        let read = brainsam::weights::read_state_dict(work);
        if let Err(brainsam::Error::Internal(message)) = &read {
            return Err(format!("read_state_dict: internal error: {message}"));
        }
        let (status, model) = load_model(work);
        let outcome = judge(status, "model_load");
        brainsam_model_free(model);
        outcome
    });
}

/// A minimal pickle writer for torch.save state dicts (protocol 2).
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn text(mut self, text: &str) -> Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
        self
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn int(self, value: i64) -> Self {
        let mut bytes = vec![0x8a, 8];
        bytes.extend_from_slice(&value.to_le_bytes());
        self.op(&bytes)
    }
    fn tensor(self, name: &str, key: &str, size: &[i64]) -> Self {
        let numel: i64 = size.iter().product();
        let mut p = self
            .text(name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .text("storage")
            .global("torch", "FloatStorage")
            .text(key)
            .text("cpu")
            .int(numel)
            .op(b"tQ")
            .int(0)
            .op(b"(");
        for &s in size {
            p = p.int(s);
        }
        p = p.op(b"t(");
        let mut stride = 1;
        let mut strides = vec![0; size.len()];
        for (slot, &s) in strides.iter_mut().zip(size).rev() {
            *slot = stride;
            stride *= s;
        }
        for s in strides {
            p = p.int(s);
        }
        p.op(b"t\x89")
            .global("collections", "OrderedDict")
            .op(b")Rt")
            .op(b"R")
    }
}

fn torch_archive(pickle: &[u8], storages: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    for (key, data) in storages {
        zip.start_file(format!("archive/data/{key}"), options)
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Opcodes worth inserting into a pickle program.
const PICKLE_SNIPPETS: [&[u8]; 16] = [
    b"(", b")", b"]", b"}", b"t", b"l", b"d", b"a", b"u", b"s", b"0", b"2", b"R", b"b", b"q\x00",
    b"h\x00",
];

fn torch_cases(harness: &mut Harness) {
    let shapes: [(&str, &[i64]); 3] = [("w", &[4, 3]), ("b", &[4]), ("deep.x", &[2, 2, 2])];
    let mut pickle = Pickle::default()
        .op(b"\x80\x02")
        .global("collections", "OrderedDict")
        .op(b")R(");
    let mut storages = Vec::new();
    for (index, (name, size)) in shapes.iter().enumerate() {
        pickle = pickle.tensor(name, &index.to_string(), size);
        let numel: i64 = size.iter().product();
        let data: Vec<u8> = (0..numel)
            .flat_map(|n| (n as f32 * 0.5).to_le_bytes())
            .collect();
        storages.push((index.to_string(), data));
    }
    let pickle = pickle.op(b"u.").0;
    harness.run("torch.save + model_load", |rng, work| {
        let mut program = pickle.clone();
        let mut storages = storages.clone();
        let bytes = match rng.gen_range(0..5) {
            0 | 1 => {
                // Opcode-level edits of the pickle program.
                for _ in 0..rng.gen_range(1..=4) {
                    let at = rng.gen_range(0..=program.len());
                    if rng.gen_bool(0.6) {
                        let snippet = PICKLE_SNIPPETS[rng.gen_range(0..PICKLE_SNIPPETS.len())];
                        program.splice(at..at, snippet.iter().copied());
                    } else if at < program.len() {
                        program.remove(at);
                    }
                }
                torch_archive(&program, &storages)
            }
            2 => {
                // Deep nesting built through the memo, before the state dict.
                let levels = [10u32, 999, 1001, 5000, 50_000][rng.gen_range(0..5)];
                let mut chain = b"\x80\x02]r\x00\x00\x00\x00".to_vec();
                for level in 1..levels {
                    chain.push(b'j');
                    chain.extend((level - 1).to_le_bytes());
                    chain.extend(b"]r");
                    chain.extend(level.to_le_bytes());
                    chain.extend(b"a0");
                }
                chain.push(b'.');
                torch_archive(&chain, &storages)
            }
            3 => {
                // Byte mutations of the pickle or of a storage (sizes, NaN data).
                if rng.gen_bool(0.5) {
                    mutate_bytes(rng, &mut program, None);
                } else {
                    let which = rng.gen_range(0..storages.len());
                    mutate_bytes(rng, &mut storages[which].1, None);
                }
                torch_archive(&program, &storages)
            }
            _ => {
                let mut archive = torch_archive(&program, &storages);
                mutate_bytes(rng, &mut archive, None);
                archive
            }
        };
        std::fs::write(work, &bytes).unwrap();
        // The tensors are no SAM model, so model_load refuses them after reading: the
        // outcome counted is the reader's.
        let read = match brainsam::weights::read_state_dict(work) {
            Err(brainsam::Error::Internal(message)) => {
                return Err(format!("read_state_dict: internal error: {message}"))
            }
            Err(error) if error.to_string().contains("frame #") => {
                return Err(format!("backtrace in the message: {error}"))
            }
            Ok(_) => Outcome::Accepted,
            Err(_) => Outcome::Refused,
        };
        let (status, model) = load_model(work);
        judge(status, "model_load")?;
        brainsam_model_free(model);
        Ok(read)
    });
}

#[test]
fn hostile_inputs_never_crash_or_allocate_without_bound() {
    // No libtorch worker threads: the cases are small, and two cores are shared.
    tch::set_num_threads(1);
    let mut harness = Harness::new();
    let model = common::test_checkpoint();
    let (status, model_handle) = load_model(model);
    assert_eq!(
        status,
        brainsam_status::BRAINSAM_STATUS_OK,
        "{}",
        last_error()
    );
    let mut session = std::ptr::null_mut();
    // SAFETY: a live model; valid out pointer.
    let status = unsafe { brainsam_session_create(model_handle, &mut session) };
    assert_eq!(
        status,
        brainsam_status::BRAINSAM_STATUS_OK,
        "{}",
        last_error()
    );
    let session = Session(session);
    // The seed volume itself must be accepted, or the cases prove little.
    assert_eq!(
        session.set_volume(&describe(&small_head())),
        brainsam_status::BRAINSAM_STATUS_OK,
        "{}",
        last_error()
    );
    let started = Instant::now();
    nifti_cases(&mut harness, &session);
    nifti_regressions(&mut harness);
    descriptor_cases(&mut harness, &session);
    safetensors_cases(&mut harness, model);
    torch_cases(&mut harness);
    brainsam_session_free(session.0);
    brainsam_model_free(model_handle);
    println!(
        "hostile inputs: {} cases in {:.1} s, peak resident memory {} MiB",
        harness.cases * 4,
        started.elapsed().as_secs_f64(),
        peak_rss() >> 20
    );
    assert!(
        harness.failures.is_empty(),
        "{} failing cases:\n{}",
        harness.failures.len(),
        harness.failures.join("\n")
    );
}
