//! Build script of the `brainsam` binary: the link arguments the library's build script
//! gives its own targets (an rpath to libtorch, libtorch_cuda kept linked) do not reach
//! other packages, so the library passes them on (`links = "brainsam"` metadata) and
//! they are applied here.

fn main() {
    let args = std::env::var("DEP_BRAINSAM_LINK_ARGS")
        .expect("the brainsam library's build script exports its link arguments");
    for arg in args.split('\u{1f}').filter(|arg| !arg.is_empty()) {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
