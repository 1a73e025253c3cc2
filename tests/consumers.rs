//! The library as its consumers see it: the committed headers are current, a C program
//! compiled by the system compiler links the cdylib, and a CMake project finds the
//! package and builds C and C++ programs against it.

mod common;

use std::process::Command;

use common::{cdylib, profile_dir, repo_root, run, scratch_dir};

#[test]
fn c_header_is_current() {
    let generated = std::fs::read_to_string(env!("BRAINSAM_GENERATED_HEADER")).unwrap();
    let committed = std::fs::read_to_string(repo_root().join("include/brainsam.h")).unwrap();
    assert!(
        generated == committed,
        "include/brainsam.h differs from what cbindgen generates from src/ffi: build \
         locally (outside CI) to refresh it, then commit it"
    );
}

#[test]
fn cmake_version_file_matches_cargo_version() {
    let text =
        std::fs::read_to_string(repo_root().join("cmake/BrainSAMConfigVersion.cmake")).unwrap();
    let expected = format!("set(PACKAGE_VERSION \"{}\")", env!("CARGO_PKG_VERSION"));
    assert!(
        text.contains(&expected),
        "cmake version file lacks `{expected}`"
    );
}

#[test]
fn c_program_compiles_links_and_runs() {
    let lib = cdylib();
    let dir = scratch_dir("c_smoke");
    let exe = dir.join("smoke");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(repo_root().join("tests/c/smoke.c"))
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg("-L")
        .arg(lib.parent().unwrap())
        .arg(format!("-Wl,-rpath,{}", lib.parent().unwrap().display()))
        .arg("-lbrainsam")
        .arg("-o")
        .arg(&exe));
    let stdout = run(&mut Command::new(&exe));
    assert!(stdout.contains("c smoke test: ok"), "{stdout}");
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
}

#[test]
fn cmake_project_finds_package_and_builds_c_and_cxx_consumers() {
    let lib = cdylib();
    let build = scratch_dir("cmake_consumer");
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo_root().join("tests/cmake_consumer"))
        .arg("-B")
        .arg(&build)
        .arg(format!(
            "-DBrainSAM_DIR={}",
            repo_root().join("cmake").display()
        ))
        .arg(format!("-DBrainSAM_LIBRARY={}", lib.display()))
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    run(Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .arg("--parallel")
        .arg("2"));
    let c_out = run(&mut Command::new(build.join("consumer_c")));
    assert!(c_out.contains("c smoke test: ok"), "{c_out}");
    let cxx_out = run(&mut Command::new(build.join("consumer_cxx")));
    assert!(cxx_out.contains("c++ consumer: ok"), "{cxx_out}");
    // The consumer links the library this test run built, not some other copy.
    let ldd = run(Command::new("ldd").arg(build.join("consumer_c")));
    assert!(
        ldd.contains(&profile_dir().join("libbrainsam.so").display().to_string()),
        "{ldd}"
    );
}
