//! The C API driven from C programs (tests/c/): robustness against misuse, concurrent
//! sessions on pthreads, and fine-tuning (start, poll, cancel, fail, save, load),
//! compiled with AddressSanitizer (the C programs are instrumented; libbrainsam and
//! libtorch are not, so leak detection is off).

mod common;

use std::path::Path;
use std::process::Command;

use brainsam::volume::{Affine, Grid, Volume};
use common::{cdylib, repo_root, run, scratch_dir, test_checkpoint};

/// Compiles `sources` (under tests/c) into `exe` with AddressSanitizer and UB checks,
/// warnings as errors, linked to the cdylib this test run built.
fn compile_c_with_asan(sources: &[&str], exe: &Path) {
    compile_c_with_asan_against(&repo_root().join("include"), sources, exe);
}

/// [`compile_c_with_asan`] with `brainsam.h` taken from `header_dir`.
fn compile_c_with_asan_against(header_dir: &Path, sources: &[&str], exe: &Path) {
    let lib = cdylib();
    let lib_dir = lib.parent().unwrap();
    let mut command = Command::new("cc");
    command
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
            "-O1",
        ])
        .args([
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-pthread",
        ])
        .arg("-I")
        .arg(header_dir)
        .arg("-I")
        .arg(repo_root().join("tests/c"));
    for source in sources {
        command.arg(repo_root().join("tests/c").join(source));
    }
    command
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lbrainsam", "-lm", "-o"])
        .arg(exe);
    run(&mut command);
}

/// Runs a sanitized program; any ASan or UBSan report fails it (exit code 1 and the
/// report on stderr, which `run` shows).
fn run_sanitized(exe: &Path, args: &[&Path]) -> String {
    run_sanitized_with_threads(exe, args, 2)
}

/// [`run_sanitized`] with libtorch limited to `threads` OpenMP threads.
fn run_sanitized_with_threads(exe: &Path, args: &[&Path], threads: u32) -> String {
    run(Command::new(exe)
        .args(args)
        // Leak checking would report libtorch's intentional process-lifetime
        // allocations; protect_shadow_gap=0 lets the CUDA driver map memory where it
        // wants on GPU machines.
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=0:protect_shadow_gap=0:abort_on_error=0:exitcode=1",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        // Keep the two-core CI machine responsive when two sessions run at once.
        .env("OMP_NUM_THREADS", threads.to_string()))
}

#[test]
fn misuse_of_the_c_api_gives_statuses_and_messages_without_crashing() {
    let dir = scratch_dir("c_robustness");
    let exe = dir.join("robustness");
    compile_c_with_asan(&["robustness.c"], &exe);
    let stdout = run_sanitized(&exe, &[test_checkpoint()]);
    assert!(stdout.contains("robustness: ok"), "{stdout}");
}

#[test]
fn sessions_on_pthreads_match_sequential_results() {
    let dir = scratch_dir("c_threads");
    let exe = dir.join("threads");
    compile_c_with_asan(&["threads.c"], &exe);
    let stdout = run_sanitized(&exe, &[test_checkpoint()]);
    assert!(stdout.contains("threads: ok"), "{stdout}");
}

/// The C API can do what the C++ API can (issue 14): prompt slices, voxel counts, the
/// structure table, device and precision names.
#[test]
fn the_c_api_returns_prompt_slices_voxel_counts_and_the_structure_table() {
    let dir = scratch_dir("c_parity");
    let exe = dir.join("parity");
    compile_c_with_asan(&["parity.c"], &exe);
    let stdout = run_sanitized(&exe, &[test_checkpoint()]);
    assert!(stdout.contains("parity: ok"), "{stdout}");
}

/// An 0.2 caller keeps working (issue 14, item 6): the misuse program (every function
/// and struct_size check of 0.2), compiled against the 0.2 header as published
/// (tests/c/abi-0.2/brainsam.h, a frozen copy of include/brainsam.h at 0.2.0; never
/// regenerate it), runs against this library.
#[test]
fn a_program_built_against_the_0_2_header_runs_against_this_library() {
    let dir = scratch_dir("c_abi_0_2");
    let exe = dir.join("robustness");
    compile_c_with_asan_against(
        &repo_root().join("tests/c/abi-0.2"),
        &["robustness.c"],
        &exe,
    );
    let stdout = run_sanitized(&exe, &[test_checkpoint()]);
    assert!(stdout.contains("robustness: ok"), "{stdout}");
}

/// Side of the fine-tuning phantom's grid (voxels) and its spacing (mm).
const FINE_TUNE_DIM: usize = 40;
const FINE_TUNE_SPACING: f64 = 4.0;

/// A small phantom head with the FreeSurfer labels of the thalami (10, 49) and putamina
/// (12, 51) as blobs of their own intensity: an image and its label map.
fn fine_tune_phantom() -> (Volume, Volume) {
    let half = (FINE_TUNE_DIM as f64 - 1.0) / 2.0;
    let mut affine: Affine = [[0.0; 4]; 4];
    for (axis, row) in affine.iter_mut().take(3).enumerate() {
        row[axis] = FINE_TUNE_SPACING;
        row[3] = -FINE_TUNE_SPACING * half;
    }
    affine[3][3] = 1.0;
    let grid = Grid::from_ras_affine([FINE_TUNE_DIM; 3], affine).unwrap();
    let blobs = [
        (10.0, [-14.0, -4.0, -8.0], 140.0),
        (49.0, [14.0, -4.0, -8.0], 140.0),
        (12.0, [-28.0, 16.0, -14.0], 60.0),
        (51.0, [28.0, 16.0, -14.0], 60.0),
    ];
    let mut image = vec![0.0f32; grid.len()];
    let mut labels = vec![0.0f32; grid.len()];
    for k in 0..FINE_TUNE_DIM {
        for j in 0..FINE_TUNE_DIM {
            for i in 0..FINE_TUNE_DIM {
                let p = grid.voxel_to_ras_point([i as f64, j as f64, k as f64]);
                let n = grid.linear_index(i, j, k);
                let head = (p[0] / 70.0).powi(2) + (p[1] / 78.0).powi(2) + (p[2] / 72.0).powi(2);
                if head > 1.0 {
                    continue;
                }
                // Deterministic texture so that the image is not piecewise constant.
                let texture = ((i * 7 + j * 13 + k * 17) % 11) as f32;
                image[n] = 100.0 + texture;
                labels[n] = 2.0; // white matter: not a target
                for (code, centre, intensity) in blobs {
                    let d2: f64 = (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum();
                    if d2 <= 14.0 * 14.0 {
                        image[n] = intensity + texture;
                        labels[n] = code;
                    }
                }
            }
        }
    }
    (
        Volume::new(grid.clone(), image).unwrap(),
        Volume::new(grid, labels).unwrap(),
    )
}

/// A training configuration on the phantom subject (paths relative to the config's
/// folder, as users write them).
fn fine_tune_config(iterations: u64, output_dir: &str, image: &str) -> String {
    format!(
        "[model]\nconfig = \"tiny\"\nmode = \"full\"\n\
         [run]\ndevice = \"cpu\"\niterations = {iterations}\nbatch_size = 2\nseed = 7\n\
         validate_every = 0\ncheckpoint_every = 0\nlog_every = 5\noutput_dir = \"{output_dir}\"\n\
         [optim]\nlr = 0.003\nwarmup = 5\n\
         [[subjects]]\nimage = \"{image}\"\nlabel = \"a_aseg.nii.gz\"\nscheme = \"freesurfer\"\n"
    )
}

#[test]
fn fine_tuning_from_c_runs_cancels_fails_and_saves_a_loadable_model() {
    let dir = scratch_dir("c_fine_tune");
    let (image, labels) = fine_tune_phantom();
    image.write(dir.join("a_T1.nii.gz")).unwrap();
    labels.write(dir.join("a_aseg.nii.gz")).unwrap();
    let configs = [
        ("good.toml", fine_tune_config(20, "good-out", "a_T1.nii.gz")),
        (
            "long.toml",
            fine_tune_config(100_000, "long-out", "a_T1.nii.gz"),
        ),
        (
            "failing.toml",
            fine_tune_config(20, "failing-out", "broken_T1.nii.gz"),
        ),
        (
            "absent.toml",
            fine_tune_config(20, "absent-out", "nowhere_T1.nii.gz"),
        ),
        (
            "batch.toml",
            fine_tune_config(20, "batch-out", "a_T1.nii.gz")
                .replace("batch_size = 2", "batch_size = 1000000000"),
        ),
        ("empty.toml", String::new()),
        (
            "invalid.toml",
            fine_tune_config(0, "invalid-out", "a_T1.nii.gz"),
        ),
        ("malformed.toml", "[run]\nbogus = 1\n".to_string()),
    ];
    for (name, text) in configs {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(dir.join("broken_T1.nii.gz"), "not an image").unwrap();
    let exe = dir.join("fine_tune");
    compile_c_with_asan(&["fine_tune.c"], &exe);
    let started = std::time::Instant::now();
    // One OpenMP thread: training's many small parallel regions spin in OpenMP barriers,
    // which on a busy two-core machine made this test 50 times slower with two.
    let stdout = run_sanitized_with_threads(&exe, &[&dir], 1);
    println!(
        "{stdout}C fine-tuning test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(stdout.contains("fine_tune: ok"), "{stdout}");
    // The saved model is the run's final model, byte for byte.
    assert_eq!(
        std::fs::read(dir.join("saved.safetensors")).unwrap(),
        std::fs::read(dir.join("good-out/model.safetensors")).unwrap()
    );
}
