// Storage types, math types and the one dtype dispatch of the library.
//
// float16 and bfloat16 are plain 16-bit structs with __host__ __device__ conversions written out in
// integer arithmetic, so the CPU build needs no CUDA header and both sides round the same way
// (round-to-nearest-even, NaN kept NaN).
#pragma once

#include <cstdint>
#include <cstring>

#include "rmsprop_ops/c_api.h"

#if defined(__CUDACC__)
#define RMSPROP_HD __host__ __device__ __forceinline__
#else
#define RMSPROP_HD inline __attribute__((always_inline))
#endif

namespace rmsprop_ops {

RMSPROP_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

RMSPROP_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

struct alignas(2) half_t {
  uint16_t bits;
};

struct alignas(2) bfloat16_t {
  uint16_t bits;
};

RMSPROP_HD float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);
  // Subnormal half: value = mant * 2^-24, exact in float.
  const float mag = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return bits_float(sign | float_bits(mag));
}

RMSPROP_HD uint16_t float_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN (NaN keeps a quiet payload bit)
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65536; [65520, 65536) rounds up below
  if (abs < 0x38800000u) {
    // Result is subnormal or zero: scale into the subnormal grid with one float add, which rounds to
    // nearest-even exactly as the hardware conversion does.
    const float r = bits_float(abs) + 0.5f;  // 0.5 = 2^-1: its ulp is 2^-24, the half subnormal step
    return static_cast<uint16_t>(sign | (float_bits(r) - 0x3f000000u));
  }
  const uint32_t mant_odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

RMSPROP_HD float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

RMSPROP_HD uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// MathT: the type the update rule computes in for a storage type (apex MATH_T, Paddle MPTypeTrait).
template <typename T>
struct math_type {
  using type = T;
};
template <>
struct math_type<half_t> {
  using type = float;
};
template <>
struct math_type<bfloat16_t> {
  using type = float;
};
template <typename T>
using math_t = typename math_type<T>::type;

template <typename M>
RMSPROP_HD M to_math(float v) { return v; }
template <typename M>
RMSPROP_HD M to_math(double v) { return v; }
template <typename M>
RMSPROP_HD M to_math(half_t v) { return half_to_float(v.bits); }
template <typename M>
RMSPROP_HD M to_math(bfloat16_t v) { return bf16_to_float(v.bits); }

template <typename T>
struct from_math_impl {
  template <typename M>
  RMSPROP_HD static T apply(M v) { return static_cast<T>(v); }
};
template <>
struct from_math_impl<half_t> {
  RMSPROP_HD static half_t apply(float v) { return half_t{float_to_half(v)}; }
};
template <>
struct from_math_impl<bfloat16_t> {
  RMSPROP_HD static bfloat16_t apply(float v) { return bfloat16_t{float_to_bf16(v)}; }
};
template <typename T, typename M>
RMSPROP_HD T from_math(M v) { return from_math_impl<T>::apply(v); }

inline const char *dtype_name(int32_t dtype) {
  switch (dtype) {
    case RMSPROP_OPS_FLOAT32: return "float32";
    case RMSPROP_OPS_FLOAT64: return "float64";
    case RMSPROP_OPS_FLOAT16: return "float16";
    case RMSPROP_OPS_BFLOAT16: return "bfloat16";
    case RMSPROP_OPS_BOOL: return "bool";
    case RMSPROP_OPS_INT32: return "int32";
    case RMSPROP_OPS_INT64: return "int64";
    default: return "unknown";
  }
}

inline int64_t dtype_size(int32_t dtype) {
  switch (dtype) {
    case RMSPROP_OPS_FLOAT32: case RMSPROP_OPS_INT32: return 4;
    case RMSPROP_OPS_FLOAT64: case RMSPROP_OPS_INT64: return 8;
    case RMSPROP_OPS_FLOAT16: case RMSPROP_OPS_BFLOAT16: return 2;
    case RMSPROP_OPS_BOOL: return 1;
    default: return 0;
  }
}

// The state dtype a param dtype requires (its math type), or -1 when params of that dtype are not
// supported at all.
inline int32_t state_dtype_for(int32_t param_dtype) {
  switch (param_dtype) {
    case RMSPROP_OPS_FLOAT32: case RMSPROP_OPS_FLOAT16: case RMSPROP_OPS_BFLOAT16: return RMSPROP_OPS_FLOAT32;
    case RMSPROP_OPS_FLOAT64: return RMSPROP_OPS_FLOAT64;
    default: return -1;
  }
}

// The one list of param dtypes with kernels, and the one message for the rest. PARAM_T is bound to the
// storage type inside __VA_ARGS__.
#define RMSPROP_OPS_DISPATCH_PARAM_DTYPE(DTYPE, PARAM_T, ON_ERROR, ...)                  \
  switch (DTYPE) {                                                                    \
    case RMSPROP_OPS_FLOAT32: { using PARAM_T = float; __VA_ARGS__; } break;          \
    case RMSPROP_OPS_FLOAT64: { using PARAM_T = double; __VA_ARGS__; } break;         \
    case RMSPROP_OPS_FLOAT16: { using PARAM_T = ::rmsprop_ops::half_t; __VA_ARGS__; } break; \
    case RMSPROP_OPS_BFLOAT16: { using PARAM_T = ::rmsprop_ops::bfloat16_t; __VA_ARGS__; } break; \
    default: { ON_ERROR(std::string("rmsprop: not implemented for '") +                   \
                        ::rmsprop_ops::dtype_name(DTYPE) + "'"); }                        \
  }

// Reads a scalar argument given by value or by pointer; on CUDA the pointer is device memory and this
// runs in the kernel.
RMSPROP_HD double load_scalar(const rmsprop_ops_scalar &s) {
  if (s.ptr == nullptr) return s.value;
  switch (s.dtype) {
    case RMSPROP_OPS_FLOAT32: return *static_cast<const float *>(s.ptr);
    case RMSPROP_OPS_FLOAT64: return *static_cast<const double *>(s.ptr);
    case RMSPROP_OPS_FLOAT16: return half_to_float(static_cast<const half_t *>(s.ptr)->bits);
    case RMSPROP_OPS_BFLOAT16: return bf16_to_float(static_cast<const bfloat16_t *>(s.ptr)->bits);
    case RMSPROP_OPS_BOOL: return *static_cast<const uint8_t *>(s.ptr) != 0 ? 1.0 : 0.0;
    case RMSPROP_OPS_INT32: return *static_cast<const int32_t *>(s.ptr);
    case RMSPROP_OPS_INT64: return static_cast<double>(*static_cast<const int64_t *>(s.ptr));
    default: return s.value;
  }
}

}  // namespace rmsprop_ops
