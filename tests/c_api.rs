//! The C API driven from C programs (tests/c/): robustness against misuse and
//! concurrent sessions on pthreads, compiled with AddressSanitizer (the C programs are
//! instrumented; libbrainsam and libtorch are not, so leak detection is off).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use brainsam::model::SamConfig;
use brainsam::session::init_model;
use common::{cdylib, repo_root, run, scratch_dir};

/// A small random model shared by the tests of this binary.
fn test_checkpoint() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = scratch_dir("c_api_model");
        let path = dir.join("tiny.safetensors");
        init_model(&path, &SamConfig::tiny().with_num_classes(12), 7).unwrap();
        path
    })
}

/// Compiles `sources` (under tests/c) into `exe` with AddressSanitizer and UB checks,
/// warnings as errors, linked to the cdylib this test run built.
fn compile_c_with_asan(sources: &[&str], exe: &Path) {
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
        .arg(repo_root().join("include"))
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
        .env("OMP_NUM_THREADS", "2"))
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
