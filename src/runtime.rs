//! What the libtorch runtime offers: version, CUDA devices, threads.

/// The libtorch version BrainSAM was built against (read from the libtorch
/// folder at build time), e.g. `2.11.0+cu130`.
pub const LIBTORCH_VERSION: &str = env!("BRAINSAM_LIBTORCH_VERSION");

/// A snapshot of the compute runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// BrainSAM's own version (the crate version).
    pub brainsam_version: &'static str,
    /// The libtorch version BrainSAM was built against.
    pub libtorch_version: &'static str,
    /// Whether libtorch can use a CUDA device on this machine.
    pub cuda_available: bool,
    /// Number of CUDA devices libtorch sees (0 without CUDA).
    pub cuda_device_count: i64,
    /// Number of CPU threads libtorch uses for intra-op parallelism.
    pub cpu_threads: i32,
}

impl RuntimeInfo {
    /// Queries libtorch now.
    pub fn current() -> Self {
        RuntimeInfo {
            brainsam_version: env!("CARGO_PKG_VERSION"),
            libtorch_version: LIBTORCH_VERSION,
            cuda_available: tch::Cuda::is_available(),
            cuda_device_count: tch::Cuda::device_count(),
            cpu_threads: tch::get_num_threads(),
        }
    }
}

impl std::fmt::Display for RuntimeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "brainsam {}", self.brainsam_version)?;
        writeln!(f, "libtorch {}", self.libtorch_version)?;
        writeln!(
            f,
            "cuda: {} ({} device{})",
            if self.cuda_available {
                "available"
            } else {
                "not available"
            },
            self.cuda_device_count,
            if self.cuda_device_count == 1 { "" } else { "s" }
        )?;
        write!(f, "cpu threads: {}", self.cpu_threads)
    }
}
