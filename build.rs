//! Build script: links libtorch so that it is found at run time, generates the C header
//! with cbindgen and the C++ bridge with cxx. It writes only into OUT_DIR: the committed
//! copies of the generated files (include/, generated/cxx/) are refreshed by
//! `scripts/generate` and checked by `scripts/generate --check` (a scripts/test stage).

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
}

/// Every binary, test and the cdylib gets an rpath to libtorch, so nothing needs
/// LD_LIBRARY_PATH in the build tree. This absolute path names the build machine:
/// `scripts/package` replaces it with `$ORIGIN` in the packaged copies, which find an
/// installed torch instead (README "Install"). `libtorch_cuda` is linked explicitly because as-needed linking would
/// drop it (nothing references it directly) and CUDA would then never be available.
/// The same arguments go to the CLI package (cli/build.rs) as `DEP_BRAINSAM_LINK_ARGS`,
/// separated by U+001F.
fn link_libtorch(libtorch_lib: &Path) {
    let mut args = vec![format!("-Wl,-rpath,{}", libtorch_lib.display())];
    if libtorch_lib.join("libtorch_cuda.so").exists() {
        args.extend(["-Wl,--no-as-needed", "-ltorch_cuda", "-Wl,--as-needed"].map(String::from));
    }
    for arg in &args {
        println!("cargo:rustc-link-arg={arg}");
    }
    println!("cargo:link_args={}", args.join("\u{1f}"));
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

/// Where the generated files go inside OUT_DIR, laid out as in the repository
/// (`include/...` and `generated/cxx/...`); `scripts/generate` copies this tree into the
/// source tree (the build itself never writes there) and CI diffs it against the
/// committed copies.
fn generated_tree(out_dir: &Path) -> PathBuf {
    out_dir.join("generated")
}

/// Generates `include/brainsam.h` (in OUT_DIR) with cbindgen from the ABI layer alone:
/// cbindgen reads `src/ffi/mod.rs` and the modules it declares, nothing else of the crate.
fn generate_c_header(manifest_dir: &Path, out_dir: &Path) {
    let config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let version = env::var("CARGO_PKG_VERSION").expect("set by cargo");
    let mut config = config;
    config.after_includes = Some(format!(
        "\n/** The library version this header belongs to. */\n#define BRAINSAM_VERSION \"{version}\"\n"
    ));
    let generated = generated_tree(out_dir).join("include/brainsam.h");
    fs::create_dir_all(generated.parent().expect("has a parent")).expect("create OUT_DIR tree");
    cbindgen::Builder::new()
        .with_src(manifest_dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the C header")
        .write_to_file(&generated);
    println!(
        "cargo:rustc-env=BRAINSAM_GENERATED_DIR={}",
        generated_tree(out_dir).display()
    );
}

/// Compiles the cxx bridge (checking the generated C++ at every build) and puts the
/// generated header and glue source, with cxx's own support files, into the generated
/// tree: the headers under `include/brainsam/`, the sources that C++ consumers compile
/// against the shared library under `generated/cxx/`.
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
    let tree = generated_tree(out_dir);
    let copies = [
        (
            generated.join("include/brainsam/src/cxx_bridge.rs.h"),
            tree.join("include/brainsam/src/cxx_bridge.rs.h"),
        ),
        (
            generated.join("sources/brainsam/src/cxx_bridge.rs.cc"),
            tree.join("generated/cxx/cxx_bridge.rs.cc"),
        ),
        (cxx_header, tree.join("include/brainsam/rust/cxx.h")),
    ];
    for (from, to) in copies {
        copy(&from, &to);
    }
    // cxx.cc includes its header by a path relative to the cxx crate; point it at our copy.
    let support = fs::read_to_string(&cxx_source)
        .unwrap_or_else(|e| panic!("{}: {e}", cxx_source.display()))
        .replace("#include \"../include/cxx.h\"", "#include \"rust/cxx.h\"");
    write(&tree.join("generated/cxx/cxx.cc"), support.as_bytes());
}

fn copy(from: &Path, to: &Path) {
    let bytes = fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    write(to, &bytes);
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("has a parent"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
