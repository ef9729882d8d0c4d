// Helpers the CUDA kernels share (cuda_kernel.cu, rows_cuda.cu).
#pragma once

#include <cuda_runtime.h>

namespace rmsprop_ops {

// Runs on the device that owns the param memory, whatever device is current, and restores it.
class DeviceGuard {
 public:
  explicit DeviceGuard(const void *ptr) {
    cudaPointerAttributes attr;
    if (cudaGetDevice(&prev_) != cudaSuccess) return;
    if (cudaPointerGetAttributes(&attr, ptr) == cudaSuccess && attr.device >= 0 && attr.device != prev_) {
      if (cudaSetDevice(attr.device) == cudaSuccess) switched_ = true;
    }
    cudaGetLastError();
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard &) = delete;
  DeviceGuard &operator=(const DeviceGuard &) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

}  // namespace rmsprop_ops
