// The DLPack ABI (https://dmlc.github.io/dlpack), as much of it as the core's front end reads: the legacy
// capsule ("dltensor", DLManagedTensor) and the versioned one of DLPack 1.x ("dltensor_versioned",
// DLManagedTensorVersioned, which adds a version and read-only / copied flags).
#pragma once

#include <cstdint>

namespace rmsprop_ops_py {

struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(DLManagedTensor *self);
};
struct DLPackVersion {
  uint32_t major;
  uint32_t minor;
};
struct DLManagedTensorVersioned {
  DLPackVersion version;
  void *manager_ctx;
  void (*deleter)(DLManagedTensorVersioned *self);
  uint64_t flags;
  DLTensor dl_tensor;
};

constexpr uint32_t kDLPackMajor = 1;  // the struct layout above; a higher major version may differ
constexpr uint32_t kDLPackMinor = 0;
constexpr uint64_t kDLFlagReadOnly = 1u << 0;
constexpr uint64_t kDLFlagIsCopied = 1u << 1;

enum { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLComplex = 5, kDLBool = 6 };
enum { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };

// NumPy's limit; a descriptor claiming more dimensions is refused before its shape array is read.
constexpr int32_t kMaxDims = 64;

}  // namespace rmsprop_ops_py
