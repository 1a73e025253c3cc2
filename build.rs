//! Build script: links libtorch so that it is found at run time, generates the C header
//! with cbindgen and the C++ bridge with cxx.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let libtorch_lib = PathBuf::from(
        env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports the libtorch lib folder"),
    );

    link_libtorch(&libtorch_lib);
    println!(
        "cargo:rustc-env=BRAINSAM_LIBTORCH_VERSION={}",
        libtorch_version(&libtorch_lib)
    );
    generate_c_header(&manifest_dir, &out_dir);
    build_cxx_bridge(&manifest_dir, &out_dir);
    build_cuda_device_shim(&libtorch_lib);

    for path in [
        "build.rs",
        "cbindgen.toml",
        "src/ffi",
        "src/cxx_bridge.rs",
        "include/brainsam/progress.h",
        "src/cuda/device.cc",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=CI");
}

/// Every binary, test and the cdylib gets an rpath to libtorch, so nothing needs
/// LD_LIBRARY_PATH in the build tree. This absolute path names the build machine:
/// `scripts/package` replaces it with `$ORIGIN` in the packaged copies, which find an
/// installed torch instead (README "Install"). `libtorch_cuda` is linked explicitly because as-needed linking would
/// drop it (nothing references it directly) and CUDA would then never be available.
fn link_libtorch(libtorch_lib: &Path) {
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libtorch_lib.display());
    if libtorch_lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Compiles `src/cuda/device.cc` (CUDA memory figures and compute capability) when
/// libtorch has CUDA support and the CUDA runtime headers can be found: next to the PyPI
/// torch package (triton's or the nvidia wheels' copy), under `CUDA_HOME`, or in
/// /usr/local/cuda. Sets the `brainsam_cuda_device` cfg; without it the Rust side
/// reports memory and capability as unknown.
fn build_cuda_device_shim(libtorch_lib: &Path) {
    println!("cargo:rustc-check-cfg=cfg(brainsam_cuda_device)");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    if !libtorch_lib.join("libc10_cuda.so").exists() {
        return;
    }
    let root =
        fs::canonicalize(libtorch_lib.join("..")).unwrap_or_else(|_| libtorch_lib.join(".."));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(home) = env::var_os("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    if let Some(site_packages) = root.parent() {
        // The nvidia-cuda-runtime wheel ships cuda_runtime_api.h without crt/; triton
        // (a torch dependency) ships the complete runtime headers.
        for dir in [
            "triton/backends/nvidia/include",
            "nvidia/cu13/include",
            "nvidia/cuda_runtime/include",
        ] {
            candidates.push(site_packages.join(dir));
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    let Some(cuda_include) = candidates.into_iter().find(|dir| {
        dir.join("cuda_runtime_api.h").exists() && dir.join("crt/host_config.h").exists()
    }) else {
        println!("cargo:warning=CUDA runtime headers not found: GPU memory figures and capability checks disabled");
        return;
    };
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(root.join("include"))
        .include(cuda_include)
        .warnings(false)
        .file("src/cuda/device.cc")
        .compile("brainsam_cuda_device");
    println!("cargo:rustc-link-search=native={}", libtorch_lib.display());
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
    println!("cargo:rustc-cfg=brainsam_cuda_device");
}

/// The libtorch version, from a standalone libtorch's `build-version` file or from the
/// PyPI torch package's `version.py`.
fn libtorch_version(libtorch_lib: &Path) -> String {
    let root = libtorch_lib.parent().unwrap_or(libtorch_lib);
    if let Ok(text) = fs::read_to_string(root.join("build-version")) {
        return text.trim().to_string();
    }
    if let Ok(text) = fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                let version = rest
                    .trim_start_matches([' ', '=', ':', 's', 't', 'r'])
                    .trim();
                return version.trim_matches(['\'', '"']).to_string();
            }
        }
    }
    "unknown".to_string()
}

/// Generates `brainsam.h` into OUT_DIR and refreshes `include/brainsam.h` from it, except
/// under CI (`CI` set), where the committed header must already be current: the test
/// `c_header_is_current` compares the two.
fn generate_c_header(manifest_dir: &Path, out_dir: &Path) {
    let config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let version = env::var("CARGO_PKG_VERSION").expect("set by cargo");
    let mut config = config;
    config.after_includes = Some(format!(
        "\n/** The library version this header belongs to. */\n#define BRAINSAM_VERSION \"{version}\"\n"
    ));
    let generated = out_dir.join("brainsam.h");
    cbindgen::Builder::new()
        .with_crate(manifest_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the C header")
        .write_to_file(&generated);
    println!(
        "cargo:rustc-env=BRAINSAM_GENERATED_HEADER={}",
        generated.display()
    );
    refresh_committed_copy(&generated, &manifest_dir.join("include/brainsam.h"));
}

/// Compiles the cxx bridge (checking the generated C++ at every build) and copies the
/// generated header and glue source into `include/brainsam/`, with cxx's own support
/// files, so that C++ consumers compile the glue against the shared library.
fn build_cxx_bridge(manifest_dir: &Path, out_dir: &Path) {
    // include/ holds the C++ headers the bridge includes (brainsam/progress.h); consumers
    // have it on their include path too.
    cxx_build::bridge("src/cxx_bridge.rs")
        .include(manifest_dir.join("include"))
        .std("c++17")
        .compile("brainsam_cxx");
    let generated = out_dir.join("cxxbridge");
    let cxx_header =
        PathBuf::from(env::var("DEP_CXXBRIDGE1_HEADER").expect("cxx exports its header path"));
    let cxx_source = cxx_header
        .parent()
        .and_then(Path::parent)
        .map(|root| root.join("src/cxx.cc"))
        .expect("cxx crate layout");
    let target = manifest_dir.join("include/brainsam");
    let copies = [
        (
            generated.join("include/brainsam/src/cxx_bridge.rs.h"),
            target.join("src/cxx_bridge.rs.h"),
        ),
        (
            generated.join("sources/brainsam/src/cxx_bridge.rs.cc"),
            target.join("src/cxx_bridge.rs.cc"),
        ),
        (cxx_header, target.join("rust/cxx.h")),
    ];
    // cxx.cc includes its header by a path relative to the cxx crate; point it at our copy.
    let support = fs::read_to_string(&cxx_source)
        .unwrap_or_else(|e| panic!("{}: {e}", cxx_source.display()))
        .replace("#include \"../include/cxx.h\"", "#include \"rust/cxx.h\"");
    let support_copy = out_dir.join("cxx.cc");
    fs::write(&support_copy, support).expect("write OUT_DIR/cxx.cc");
    let copies = copies
        .into_iter()
        .chain([(support_copy, target.join("rust/cxx.cc"))]);
    for (from, to) in copies {
        refresh_committed_copy(&from, &to);
    }
}

fn refresh_committed_copy(generated: &Path, committed: &Path) {
    if env::var_os("CI").is_some() {
        return;
    }
    let new = fs::read(generated).unwrap_or_else(|e| panic!("{}: {e}", generated.display()));
    if fs::read(committed).ok().as_deref() != Some(new.as_slice()) {
        fs::create_dir_all(committed.parent().expect("has a parent")).expect("create include dir");
        fs::write(committed, new).unwrap_or_else(|e| panic!("{}: {e}", committed.display()));
    }
}
