// CUDA facts tch does not expose: memory figures from libtorch's caching allocator (the
// numbers PyTorch's torch.cuda.mem_get_info / max_memory_allocated report) and the
// device's compute capability (bf16 needs 8.0).
// Compiled only when libtorch has CUDA support and the CUDA runtime headers are found
// (build.rs); every function returns 0 on success and -1 on any error, never throws.

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include <cuda_runtime_api.h>

#include <cstdint>

// Declared here rather than through ATen/cuda/CUDAContext.h, which pulls in the headers
// of every CUDA library; defined in libtorch_cuda.
namespace at::cuda {
cudaDeviceProp* getDeviceProperties(c10::DeviceIndex device);
}

namespace {

bool valid_device(int device) {
  return device >= 0 && device < static_cast<int>(c10::cuda::device_count());
}

const size_t kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);

}  // namespace

extern "C" {

int brainsam_private_cuda_memory_info(int device, int64_t* free_bytes, int64_t* total_bytes) {
  try {
    if (!valid_device(device) || free_bytes == nullptr || total_bytes == nullptr) return -1;
    auto info = c10::cuda::CUDACachingAllocator::get()->getMemoryInfo(
        static_cast<c10::DeviceIndex>(device));
    *free_bytes = static_cast<int64_t>(info.first);
    *total_bytes = static_cast<int64_t>(info.second);
    return 0;
  } catch (...) {
    return -1;
  }
}

int brainsam_private_cuda_memory_stats(int device, int64_t* allocated, int64_t* peak_allocated,
                               int64_t* reserved, int64_t* peak_reserved) {
  try {
    if (!valid_device(device) || allocated == nullptr || peak_allocated == nullptr ||
        reserved == nullptr || peak_reserved == nullptr) {
      return -1;
    }
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
        static_cast<c10::DeviceIndex>(device));
    *allocated = stats.allocated_bytes[kAggregate].current;
    *peak_allocated = stats.allocated_bytes[kAggregate].peak;
    *reserved = stats.reserved_bytes[kAggregate].current;
    *peak_reserved = stats.reserved_bytes[kAggregate].peak;
    return 0;
  } catch (...) {
    return -1;
  }
}

int brainsam_private_cuda_reset_peak_memory(int device) {
  try {
    if (!valid_device(device)) return -1;
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (...) {
    return -1;
  }
}

int brainsam_private_cuda_capability(int device, int32_t* major, int32_t* minor) {
  try {
    if (!valid_device(device) || major == nullptr || minor == nullptr) return -1;
    const cudaDeviceProp* properties =
        at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(device));
    if (properties == nullptr) return -1;
    *major = properties->major;
    *minor = properties->minor;
    return 0;
  } catch (...) {
    return -1;
  }
}

int brainsam_private_cuda_empty_cache(void) {
  try {
    if (c10::cuda::device_count() == 0) return -1;
    c10::cuda::CUDACachingAllocator::emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
