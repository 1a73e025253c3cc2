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

/// Memory of one CUDA device: the device's free and total memory, and what libtorch's
/// caching allocator holds (the figures PyTorch's `torch.cuda.mem_get_info`,
/// `memory_allocated` and `max_memory_allocated` report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaMemory {
    /// Free device memory, in bytes.
    pub free_bytes: u64,
    /// Total device memory, in bytes.
    pub total_bytes: u64,
    /// Bytes in live tensors now.
    pub allocated_bytes: u64,
    /// Most bytes in live tensors since the last [`reset_cuda_peak_memory`].
    pub peak_allocated_bytes: u64,
    /// Bytes the allocator reserved from the device now (live tensors plus its cache).
    pub reserved_bytes: u64,
    /// Most bytes reserved since the last [`reset_cuda_peak_memory`].
    pub peak_reserved_bytes: u64,
}

impl CudaMemory {
    /// Bytes a new tensor can get: the device's free memory plus what the caching
    /// allocator holds without using it.
    pub fn available_bytes(&self) -> u64 {
        self.free_bytes + self.reserved_bytes.saturating_sub(self.allocated_bytes)
    }
}

#[cfg(brainsam_cuda_device)]
mod cuda_device_shim {
    extern "C" {
        pub fn brainsam_private_cuda_memory_info(
            device: i32,
            free_bytes: *mut i64,
            total_bytes: *mut i64,
        ) -> i32;
        pub fn brainsam_private_cuda_memory_stats(
            device: i32,
            allocated: *mut i64,
            peak_allocated: *mut i64,
            reserved: *mut i64,
            peak_reserved: *mut i64,
        ) -> i32;
        pub fn brainsam_private_cuda_reset_peak_memory(device: i32) -> i32;
        pub fn brainsam_private_cuda_empty_cache() -> i32;
        pub fn brainsam_private_cuda_capability(
            device: i32,
            major: *mut i32,
            minor: *mut i32,
        ) -> i32;
    }
}

/// Memory figures of CUDA device `device`; None without CUDA, for a device that does
/// not exist, or when BrainSAM was built without the CUDA runtime headers.
pub fn cuda_memory(device: usize) -> Option<CudaMemory> {
    #[cfg(brainsam_cuda_device)]
    {
        if !tch::Cuda::is_available() {
            return None;
        }
        let device = i32::try_from(device).ok()?;
        let (mut free, mut total) = (0i64, 0i64);
        let (mut allocated, mut peak_allocated, mut reserved, mut peak_reserved) =
            (0i64, 0i64, 0i64, 0i64);
        // SAFETY: the shim only writes through the given pointers, which point at live
        // locals, and catches every C++ exception.
        let ok = unsafe {
            cuda_device_shim::brainsam_private_cuda_memory_info(device, &mut free, &mut total) == 0
                && cuda_device_shim::brainsam_private_cuda_memory_stats(
                    device,
                    &mut allocated,
                    &mut peak_allocated,
                    &mut reserved,
                    &mut peak_reserved,
                ) == 0
        };
        let bytes = |v: i64| v.max(0) as u64;
        ok.then(|| CudaMemory {
            free_bytes: bytes(free),
            total_bytes: bytes(total),
            allocated_bytes: bytes(allocated),
            peak_allocated_bytes: bytes(peak_allocated),
            reserved_bytes: bytes(reserved),
            peak_reserved_bytes: bytes(peak_reserved),
        })
    }
    #[cfg(not(brainsam_cuda_device))]
    {
        let _ = device;
        None
    }
}

/// Starts a new peak for [`CudaMemory::peak_allocated_bytes`] and
/// [`CudaMemory::peak_reserved_bytes`]; false where [`cuda_memory`] is unavailable.
pub fn reset_cuda_peak_memory(device: usize) -> bool {
    #[cfg(brainsam_cuda_device)]
    {
        let Ok(device) = i32::try_from(device) else {
            return false;
        };
        // SAFETY: no pointers; the shim catches every C++ exception.
        tch::Cuda::is_available()
            && unsafe { cuda_device_shim::brainsam_private_cuda_reset_peak_memory(device) } == 0
    }
    #[cfg(not(brainsam_cuda_device))]
    {
        let _ = device;
        false
    }
}

/// Compute capability (major, minor) of CUDA device `device`; None where
/// [`cuda_memory`] is unavailable.
pub fn cuda_capability(device: usize) -> Option<(i32, i32)> {
    #[cfg(brainsam_cuda_device)]
    {
        if !tch::Cuda::is_available() {
            return None;
        }
        let device = i32::try_from(device).ok()?;
        let (mut major, mut minor) = (0i32, 0i32);
        // SAFETY: the shim only writes through the given pointers, which point at live
        // locals, and catches every C++ exception.
        let ok = unsafe {
            cuda_device_shim::brainsam_private_cuda_capability(device, &mut major, &mut minor)
        } == 0;
        ok.then_some((major, minor))
    }
    #[cfg(not(brainsam_cuda_device))]
    {
        let _ = device;
        None
    }
}

/// Returns the caching allocator's unused blocks to the device (so that other programs,
/// and the next measurement, see them free); false where unavailable.
pub fn empty_cuda_cache() -> bool {
    #[cfg(brainsam_cuda_device)]
    {
        // SAFETY: no arguments; the shim catches every C++ exception.
        tch::Cuda::is_available()
            && unsafe { cuda_device_shim::brainsam_private_cuda_empty_cache() } == 0
    }
    #[cfg(not(brainsam_cuda_device))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_memory_counts_the_allocators_unused_cache() {
        let memory = CudaMemory {
            free_bytes: 100,
            total_bytes: 1000,
            allocated_bytes: 600,
            peak_allocated_bytes: 800,
            reserved_bytes: 850,
            peak_reserved_bytes: 900,
        };
        assert_eq!(memory.available_bytes(), 350);
        let odd = CudaMemory {
            reserved_bytes: 10,
            ..memory
        };
        assert_eq!(odd.available_bytes(), 100, "never below the free memory");
    }

    #[test]
    fn cuda_memory_is_none_exactly_when_there_is_no_such_device() {
        let count = tch::Cuda::device_count().max(0) as usize;
        // A device past the last one never has figures.
        assert_eq!(cuda_memory(count), None);
        assert!(!reset_cuda_peak_memory(count));
        if count == 0 {
            assert_eq!(cuda_memory(0), None);
            assert!(!empty_cuda_cache());
        } else if cfg!(brainsam_cuda_device) {
            let memory = cuda_memory(0).expect("figures for device 0");
            assert!(memory.total_bytes > 0 && memory.free_bytes <= memory.total_bytes);
        }
    }
}
