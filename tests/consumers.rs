//! The library as its consumers see it: the committed headers are current, a C program
//! compiled by the system compiler links the cdylib, a CMake project finds the package
//! (source tree and install tree) and builds C and C++ programs against it, pkg-config
//! works on the install tree, and the README's examples are the tested files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cdylib, profile_dir, repo_root, run, scratch_dir, test_checkpoint};

/// A command for a consumer program, without the LD_LIBRARY_PATH cargo sets for tests
/// (which would hide whether the program finds libbrainsam by itself).
fn consumer_command(exe: &Path) -> Command {
    let mut command = Command::new(exe);
    command.env_remove("LD_LIBRARY_PATH");
    command
}

/// Runs the C and C++ examples built in `build` and checks they completed.
fn run_examples(build: &Path) {
    let c_out = run(consumer_command(&build.join("example_c")).arg(test_checkpoint()));
    assert!(c_out.contains("example c: ok"), "{c_out}");
    assert!(
        c_out.contains("expected error: BRAINSAM_STATUS_INVALID_ARGUMENT"),
        "{c_out}"
    );
    let cxx_out = run(consumer_command(&build.join("example_cpp")).arg(test_checkpoint()));
    assert!(cxx_out.contains("example c++: ok"), "{cxx_out}");
    assert!(
        cxx_out.contains("expected error: invalid argument: structure 13"),
        "{cxx_out}"
    );
}

/// Configures and builds tests/cmake_consumer in `build` with extra cmake arguments.
fn build_cmake_consumer(build: &Path, args: &[String]) {
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo_root().join("tests/cmake_consumer"))
        .arg("-B")
        .arg(build)
        .args(args)
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    run(Command::new("cmake")
        .arg("--build")
        .arg(build)
        .arg("--parallel")
        .arg("2"));
}

/// The generated files scripts/generate commits, relative to the repository root and to
/// the build script's generated tree.
const GENERATED_FILES: [&str; 5] = [
    "include/brainsam.h",
    "include/brainsam/src/cxx_bridge.rs.h",
    "include/brainsam/rust/cxx.h",
    "generated/cxx/cxx_bridge.rs.cc",
    "generated/cxx/cxx.cc",
];

#[test]
fn generated_files_are_current() {
    let generated = Path::new(env!("BRAINSAM_GENERATED_DIR"));
    for file in GENERATED_FILES {
        let fresh = std::fs::read(generated.join(file)).unwrap();
        let committed = std::fs::read(repo_root().join(file)).unwrap_or_default();
        assert!(
            fresh == committed,
            "{file} differs from what this build generates (cbindgen from src/ffi, cxx from \
             src/cxx_bridge.rs): run scripts/generate and commit the result"
        );
    }
}

#[test]
fn public_header_declares_only_the_abi() {
    let header = std::fs::read_to_string(repo_root().join("include/brainsam.h")).unwrap();
    assert!(
        !header.contains("brainsam_private"),
        "include/brainsam.h declares private symbols"
    );
    // Every function the header declares is one the ABI layer defines (cbindgen reads
    // src/ffi alone; the CUDA shim's imports live outside it).
    let ffi: String = std::fs::read_dir(repo_root().join("src/ffi"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let declared: Vec<&str> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("brainsam_"))
        .collect();
    for name in declared {
        assert!(
            ffi.contains(name),
            "include/brainsam.h names {name}, which src/ffi does not define"
        );
    }
}

#[test]
fn include_holds_only_what_consumers_include() {
    let mut pending = vec![repo_root().join("include")];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            assert!(
                ["h", "hpp", "md"].contains(&extension),
                "{} is not a header: compile inputs belong in generated/",
                path.display()
            );
        }
    }
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
    build_cmake_consumer(
        &build,
        &[
            format!("-DBrainSAM_DIR={}", repo_root().join("cmake").display()),
            format!("-DBrainSAM_LIBRARY={}", lib.display()),
        ],
    );
    let c_out = run(&mut Command::new(build.join("consumer_c")));
    assert!(c_out.contains("c smoke test: ok"), "{c_out}");
    let cxx_out = run(&mut Command::new(build.join("consumer_cxx")));
    assert!(cxx_out.contains("c++ consumer: ok"), "{cxx_out}");
    // The C++ adaptation API: two phantom pairs, three iterations, adapter saved and
    // loaded on its base.
    let adapter = build.join("site.safetensors");
    let adapt_out = run(consumer_command(&build.join("consumer_cxx"))
        .arg(test_checkpoint())
        .arg(&adapter));
    assert!(adapt_out.contains("adapted 3 iterations"), "{adapt_out}");
    assert!(adapter.is_file(), "no adapter at {}", adapter.display());
    run_examples(&build);
    // The consumer links the library this test run built, not some other copy.
    let ldd = run(Command::new("ldd").arg(build.join("consumer_c")));
    assert!(
        ldd.contains(&profile_dir().join("libbrainsam.so").display().to_string()),
        "{ldd}"
    );
}

/// Installs the SDK with cmake/install.sh into a fresh prefix.
fn install_sdk(name: &str) -> PathBuf {
    let prefix = scratch_dir(name).join("prefix");
    run(Command::new("bash")
        .arg(repo_root().join("cmake/install.sh"))
        .arg(&prefix)
        .arg(cdylib()));
    for file in [
        "lib/libbrainsam.so",
        "include/brainsam.h",
        "include/brainsam.hpp",
        "include/brainsam/progress.h",
        "include/brainsam/rust/cxx.h",
        "include/brainsam/src/cxx_bridge.rs.h",
        "share/brainsam/cxx/cxx_bridge.rs.cc",
        "share/brainsam/cxx/cxx.cc",
        "lib/cmake/BrainSAM/BrainSAMConfig.cmake",
        "lib/cmake/BrainSAM/BrainSAMConfigVersion.cmake",
        "lib/pkgconfig/brainsam.pc",
    ] {
        assert!(prefix.join(file).is_file(), "{file} not installed");
    }
    prefix
}

#[test]
fn cmake_project_builds_against_the_install_tree() {
    let prefix = install_sdk("install_cmake");
    let build = prefix.parent().unwrap().join("build");
    build_cmake_consumer(
        &build,
        &[format!("-DCMAKE_PREFIX_PATH={}", prefix.display())],
    );
    run_examples(&build);
    // Linked to the installed copy (whose rpath still finds libtorch).
    let ldd = run(Command::new("ldd")
        .arg(build.join("example_cpp"))
        .env_remove("LD_LIBRARY_PATH"));
    let installed = prefix.join("lib/libbrainsam.so").display().to_string();
    assert!(ldd.contains(&installed), "{ldd}");
    assert!(
        ldd.contains("libtorch_cpu.so") && !ldd.contains("not found"),
        "{ldd}"
    );
}

#[test]
fn pkg_config_compiles_the_c_example_against_the_install_tree() {
    let prefix = install_sdk("install_pkg_config");
    let pc_dir = prefix.join("lib/pkgconfig");
    let pkg_config = |args: &[&str]| {
        run(Command::new("pkg-config")
            .args(args)
            .env("PKG_CONFIG_PATH", &pc_dir))
        .trim()
        .to_string()
    };
    assert_eq!(
        pkg_config(&["--modversion", "brainsam"]),
        env!("CARGO_PKG_VERSION")
    );
    let flags = pkg_config(&["--cflags", "--libs", "brainsam"]);
    let exe = prefix.parent().unwrap().join("example_c");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(repo_root().join("examples/c/segment.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe));
    let out = run(consumer_command(&exe).arg(test_checkpoint()));
    assert!(out.contains("example c: ok"), "{out}");
    let ldd = run(Command::new("ldd").arg(&exe).env_remove("LD_LIBRARY_PATH"));
    assert!(
        ldd.contains(&prefix.join("lib/libbrainsam.so").display().to_string()),
        "{ldd}"
    );
}

/// The fenced code blocks of `language` in a Markdown text.
fn code_blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line == format!("```{language}") => current = Some(String::new()),
            Some(_) if line == "```" => blocks.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn readme_examples_are_the_tested_files() {
    let readme = std::fs::read_to_string(repo_root().join("include/README.md")).unwrap();
    for (language, file) in [
        ("c", "examples/c/segment.c"),
        ("cpp", "examples/cpp/segment.cpp"),
    ] {
        let source = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let blocks = code_blocks(&readme, language);
        assert!(
            blocks.contains(&source),
            "include/README.md has no ```{language} block equal to {file}: paste the file \
             into the README again"
        );
    }
}
